//! Models from brain data to features and back: ridge decoders and encoders,
//! ResNets with torchvision-compatible weights (in time: decoders, GANs,
//! mappers, diffusion).
pub mod blip;
pub mod captioner;
pub mod classifier;
pub mod clip;
pub mod diffusion;
pub mod hf;
pub mod beliy;
pub mod nn;
pub mod perceptual;
pub mod reconstruct;
pub mod resnet;
pub mod schedulers;
pub mod ridge;
pub mod text;
pub mod train;
pub mod unet;
pub mod vae;
pub mod voxel_gan;

pub use ridge::{fit_ridge, RidgeModel, RidgeOptions, RidgeScore, Scoring};
