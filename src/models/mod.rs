//! Models from brain data to features and back: ridge decoders and encoders,
//! ResNets with torchvision-compatible weights (in time: decoders, GANs,
//! mappers, diffusion).
pub mod beliy;
pub mod blip;
pub mod captioner;
pub mod classifier;
pub mod clip;
pub mod diffusion;
pub mod hf;
pub mod nn;
pub mod perceptual;
pub mod reconstruct;
pub mod resnet;
pub mod ridge;
pub mod schedulers;
pub mod text;
pub mod train;
pub mod unet;
pub mod vae;
pub mod voxel_gan;

pub use ridge::{fit_ridge, RidgeModel, RidgeOptions, RidgeScore, Scoring};

/// One of a paper model's two sizes by the name a script gives it (option
/// `size`): "small" (2 CPU cores, the simulated subject) or "paper" (the
/// authors' configuration, for a GPU and real data).
pub fn size_preset<T>(
    op: &'static str,
    name: &str,
    small: fn() -> T,
    paper: fn() -> T,
) -> crate::error::Result<T> {
    match name {
        "small" => Ok(small()),
        "paper" => Ok(paper()),
        other => Err(crate::error::Error::BadOption {
            op,
            key: "size".into(),
            expected: "small or paper".into(),
            got: format!("\"{other}\""),
        }),
    }
}
