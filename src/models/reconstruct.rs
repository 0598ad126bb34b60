//! The one verb of every reconstruction model: brain responses (or what a
//! pipeline predicts from them) in, stimulus images out.
//!
//! Each model names what it reads and how it is steered: Beliy et al.'s
//! encoder–decoder and the voxel-conditioned GAN read voxel responses
//! (trials × voxels), a latent-diffusion pipeline reads predicted latents and
//! conditioning. Scripts call all of them as `reconstruct(model, inputs,
//! opts)` (src/engine/reconstruction.rs); scores come from
//! [`crate::eval::reconstruction::reconstruction_scores`].

use crate::data::ImageSet;
use crate::error::Result;

pub trait Reconstructor {
    /// What the model reconstructs from.
    type Input: ?Sized;
    /// How (samples, seed, steps, …); `Default` gives the documented defaults.
    type Options: Default;
    /// One image per input row (or `samples` per row, grouped by row when
    /// the model draws several), values in [0, 1], on the CPU.
    fn reconstruct(&self, input: &Self::Input, opts: &Self::Options) -> Result<ImageSet>;
}

/// How a linear decoder's predictions become images.
#[derive(Debug, Clone, Default)]
pub struct PixelDecoding {
    /// (height, width); None: square images, the size found from the
    /// number of targets (3·s²).
    pub size: Option<(usize, usize)>,
}

/// The linear baseline: a ridge model fitted from voxels to the flattened
/// RGB pixels (C order, 3×H×W) predicts each image directly; values are
/// clipped to [0, 1].
impl Reconstructor for super::ridge::RidgeModel {
    type Input = crate::tensor::Tensor;
    type Options = PixelDecoding;

    fn reconstruct(&self, input: &Self::Input, opts: &PixelDecoding) -> Result<ImageSet> {
        use crate::error::Error;
        use crate::tensor::tc;
        const OP: &str = "reconstruct";
        let targets = self.n_targets() as usize;
        let (h, w) = match opts.size {
            Some(hw) => hw,
            None => {
                let s = ((targets / 3) as f64).sqrt().round() as usize;
                (s, s)
            }
        };
        if h == 0 || w == 0 || 3 * h * w != targets {
            return Err(Error::invalid(
                OP,
                format!(
                    "a ridge model reconstructs images from its targets, 3·H·W pixel values: it has {targets} targets, which is not 3·{h}·{w}{}",
                    if opts.size.is_none() { " (give image_size for non-square images)" } else { "" }
                ),
            ));
        }
        let pred = self.predict(OP, input)?.0;
        let n = pred.size()[0];
        let images = tc(OP, pred.f_reshape([n, 3, h as i64, w as i64]))?;
        let images = tc(
            OP,
            tc(OP, images.f_clamp(0.0, 1.0))?.f_to_kind(tch::Kind::Float),
        )?;
        let images = tc(OP, images.f_to_device(tch::Device::Cpu))?;
        Ok(ImageSet {
            data: crate::tensor::Tensor(images),
            ids: (0..n).map(|i| format!("recon{i:04}")).collect(),
        })
    }
}
