//! Image losses for networks that output images: a perceptual L1 loss on
//! the stages of a fixed ResNet (with an optional pixel term) and total
//! variation. Beliy et al.'s decoder and the small KL autoencoder train with
//! them.
//!
//! As in Beliy et al.'s image loss, each term is an L1 distance divided by
//! the per-channel mean absolute value of the target's activations (so
//! stages of different scales weigh as their weights say):
//!   L = Σ_l w_l · mean_{n,c,h,w} |φ_l(x̂) − φ_l(x)| / (mean_{n,h,w} |φ_l(x)|_c + ε)
//! with φ_pixels the image itself. The ResNet sees ImageNet-normalised
//! images; its parameters are frozen, gradients flow to x̂ only.

use tch::{Kind, Tensor};

use super::resnet::{prepare_images, Arch, ResNet};
use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

const EPS: f64 = 1e-6;

pub struct PerceptualLoss {
    net: ResNet,
    /// (stage name, weight), in network order.
    stages: Vec<(String, f64)>,
    pixel_weight: f64,
}

impl PerceptualLoss {
    /// A loss on the given stages of `net` (names as [`ResNet::stage_names`])
    /// plus `pixel_weight` × the pixel L1 term. The network is frozen.
    pub fn new(
        op: &'static str,
        mut net: ResNet,
        stages: Vec<(String, f64)>,
        pixel_weight: f64,
    ) -> Result<PerceptualLoss> {
        let names = net.stage_names();
        for (s, w) in &stages {
            if !names.contains(s) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "perceptual loss: no ResNet stage \"{s}\"; stages are {}",
                        names.join(", ")
                    ),
                ));
            }
            if !(w.is_finite() && *w >= 0.0) {
                return Err(Error::invalid(
                    op,
                    format!("perceptual loss: the weight of \"{s}\" must be ≥ 0, got {w}"),
                ));
            }
        }
        let mut stages = stages;
        stages.sort_by_key(|(s, _)| names.iter().position(|n| n == s));
        net.vs.freeze();
        Ok(PerceptualLoss {
            net,
            stages,
            pixel_weight,
        })
    }

    /// Beliy et al.'s weights moved to a ResNet: 0.7 on the first stage
    /// (conv1, ½ resolution, as VGG19 block1_conv2 is the first block),
    /// 0.15 on the end of layer1 (¼ resolution, as block2_conv2) and 0.15
    /// on the pixels.
    pub fn beliy(op: &'static str, net: ResNet) -> Result<PerceptualLoss> {
        let layer1 = net.layer_stage(op, "layer1")?;
        PerceptualLoss::new(op, net, vec![("conv1".into(), 0.7), (layer1, 0.15)], 0.15)
    }

    /// [`PerceptualLoss::beliy`] on a ResNet18 with fixed random weights
    /// (when no pretrained network is given).
    pub fn beliy_random(
        op: &'static str,
        device: tch::Device,
        seed: u64,
    ) -> Result<PerceptualLoss> {
        PerceptualLoss::beliy(op, ResNet::seeded(Arch::ResNet18, 1, device, seed)?)
    }

    pub fn device(&self) -> tch::Device {
        self.net.vs.device()
    }

    /// The stages and weights used (pixels included as "pixels").
    pub fn terms(&self) -> Vec<(String, f64)> {
        let mut t = vec![("pixels".to_string(), self.pixel_weight)];
        t.extend(self.stages.iter().cloned());
        t
    }

    /// The loss of reconstructions `recon` against `target` (both N×3×H×W
    /// in [0, 1], same shape); a scalar with gradients to `recon`.
    pub fn loss(&self, op: &'static str, recon: &Tensor, target: &Tensor) -> Result<Tensor> {
        if recon.size() != target.size() {
            return Err(Error::shape(
                op,
                "perceptual loss",
                format!(
                    "reconstructions shaped as the targets ({})",
                    shape_text(&target.size())
                ),
                shape_text(&recon.size()),
            ));
        }
        let mut total = tc(op, Tensor::f_zeros([], (Kind::Float, recon.device())))?;
        if self.pixel_weight > 0.0 {
            let term = normalised_l1(op, recon, &target.detach())?;
            total = tc(
                op,
                total.f_add(&tc(op, term.f_mul_scalar(self.pixel_weight))?),
            )?;
        }
        let Some((last, _)) = self.stages.last() else {
            return Ok(total);
        };
        let device = self.device();
        let xr = prepare_images(op, recon, device)?;
        let xt = prepare_images(op, target, device)?;
        let fr = self.net.stages_until(&xr, last)?;
        let ft = tch::no_grad(|| self.net.stages_until(&xt, last))?;
        for (name, w) in &self.stages {
            let a = fr.iter().find(|(n, _)| n == name).map(|(_, t)| t);
            let b = ft.iter().find(|(n, _)| n == name).map(|(_, t)| t);
            if let (Some(a), Some(b)) = (a, b) {
                let term = normalised_l1(op, a, b)?;
                let term = tc(op, term.f_to_device(recon.device()))?;
                total = tc(op, total.f_add(&tc(op, term.f_mul_scalar(*w))?))?;
            }
        }
        Ok(total)
    }
}

/// mean |a − b| / (per-channel mean |b| + ε), a and b N×C×H×W.
fn normalised_l1(op: &'static str, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let scale = tc(
        op,
        tc(op, b.f_abs())?.f_mean_dim(Some([0i64, 2, 3].as_slice()), true, Kind::Float),
    )?;
    let scale = tc(op, scale.f_add_scalar(EPS))?;
    let d = tc(op, tc(op, a.f_sub(b))?.f_abs())?;
    tc(op, tc(op, d.f_div(&scale))?.f_mean(Kind::Float))
}

/// Total variation with exponent β (Mahendran & Vedaldi's V^β, as Beliy et
/// al. use with β = 1.25): mean over pixels of ((∂x)² + (∂y)²)^{β/2}, the
/// differences taken to the right and down neighbour.
pub fn total_variation(op: &'static str, x: &Tensor, beta: f64) -> Result<Tensor> {
    let s = x.size();
    if s.len() != 4 || s[2] < 2 || s[3] < 2 {
        return Err(Error::shape(
            op,
            "total variation",
            "N×C×H×W images with H, W ≥ 2",
            shape_text(&s),
        ));
    }
    let (h, w) = (s[2], s[3]);
    let core = tc(op, tc(op, x.f_narrow(2, 0, h - 1))?.f_narrow(3, 0, w - 1))?;
    let down = tc(op, tc(op, x.f_narrow(2, 1, h - 1))?.f_narrow(3, 0, w - 1))?;
    let right = tc(op, tc(op, x.f_narrow(2, 0, h - 1))?.f_narrow(3, 1, w - 1))?;
    let dy = tc(op, tc(op, down.f_sub(&core))?.f_square())?;
    let dx = tc(op, tc(op, right.f_sub(&core))?.f_square())?;
    // A small floor keeps the gradient of the power finite where the image is flat.
    let sq = tc(op, tc(op, dx.f_add(&dy))?.f_add_scalar(1e-8))?;
    tc(
        op,
        tc(op, sq.f_pow_tensor_scalar(beta / 2.0))?.f_mean(Kind::Float),
    )
}
