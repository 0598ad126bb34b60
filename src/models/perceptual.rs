//! Image losses for networks that output images: a perceptual L1 loss on
//! the stages of a fixed ResNet (with an optional pixel term) and total
//! variation. Beliy et al.'s decoder and the small KL autoencoder train with
//! them.
//!
//! As in Beliy et al.'s image loss, each term is an L1 distance divided by
//! the per-channel mean absolute activation over a reference image set (the
//! training images, [`PerceptualLoss::calibrate`]; so stages of different
//! scales weigh as their weights say):
//!   L = Σ_l w_l · mean_{n,c,h,w} |φ_l(x̂) − φ_l(x)| / (m_{l,c} + ε),
//!   m_{l,c} = mean over the reference images and positions of |φ_l|_c,
//! with φ_pixels the image itself (m = 1 before calibration). The ResNet
//! sees ImageNet-normalised images; its parameters are frozen, gradients
//! flow to x̂ only.

use std::rc::Rc;

use tch::{Kind, Tensor};

use super::resnet::{prepare_images, Arch, ResNet};
use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

const EPS: f64 = 1e-6;

pub struct PerceptualLoss {
    /// Shared with the caller when given (then not frozen: no optimiser
    /// sees it, and only the reconstructions' gradients are asked for).
    net: Rc<ResNet>,
    /// (stage name, weight), in network order.
    stages: Vec<(String, f64)>,
    pixel_weight: f64,
    /// Per-channel normalisers (1×C×1×1), pixels first, then each stage.
    scales: Option<Vec<Tensor>>,
}

impl PerceptualLoss {
    /// A loss on the given stages of `net` (names as [`ResNet::stage_names`])
    /// plus `pixel_weight` × the pixel L1 term. The network is frozen.
    pub fn new(
        op: &'static str,
        mut net: Rc<ResNet>,
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
        if let Some(owned) = Rc::get_mut(&mut net) {
            owned.vs.freeze();
        }
        Ok(PerceptualLoss {
            net,
            stages,
            pixel_weight,
            scales: None,
        })
    }

    /// Beliy et al.'s weights moved to a ResNet: 0.7 on the first stage
    /// (conv1, ½ resolution, as VGG19 block1_conv2 is the first block),
    /// 0.15 on the end of layer1 (¼ resolution, as block2_conv2) and 0.15
    /// on the pixels.
    pub fn beliy(op: &'static str, net: Rc<ResNet>) -> Result<PerceptualLoss> {
        let layer1 = net.layer_stage(op, "layer1")?;
        PerceptualLoss::new(op, net, vec![("conv1".into(), 0.7), (layer1, 0.15)], 0.15)
    }

    /// [`PerceptualLoss::beliy`] on a ResNet18 with fixed random weights
    /// (when no pretrained network is given): [`ResNet::seeded`]'s, drawn
    /// only up to layer1, the last stage the loss reads.
    pub fn beliy_random(
        op: &'static str,
        device: tch::Device,
        seed: u64,
    ) -> Result<PerceptualLoss> {
        PerceptualLoss::beliy(
            op,
            Rc::new(ResNet::seeded_until(
                Arch::ResNet18,
                1,
                device,
                seed,
                "layer1",
            )?),
        )
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

    /// Sets the per-channel normalisers from reference images (N×3×H×W in
    /// [0, 1], e.g. the training images), in batches of 64.
    pub fn calibrate(&mut self, op: &'static str, images: &Tensor) -> Result<()> {
        let n = images.size().first().copied().unwrap_or(0);
        if n == 0 {
            return Err(Error::invalid(op, "perceptual loss: no reference images"));
        }
        let device = self.device();
        let k = self.stages.len() + 1;
        let mut sums: Vec<Option<Tensor>> = (0..k).map(|_| None).collect();
        let channel_mean = |t: &Tensor| -> Result<Tensor> {
            // Sum over images, mean over positions: divided by n at the end.
            let m = tc(
                op,
                tc(op, t.f_abs())?.f_mean_dim(Some([2i64, 3].as_slice()), true, Kind::Float),
            )?;
            tc(
                op,
                m.f_sum_dim_intlist(Some([0i64].as_slice()), true, Kind::Float),
            )
        };
        tch::no_grad(|| -> Result<()> {
            let mut start = 0;
            while start < n {
                let len = 64.min(n - start);
                let x = tc(op, images.f_narrow(0, start, len))?;
                let x = tc(op, tc(op, x.f_to_kind(Kind::Float))?.f_to_device(device))?;
                let mut parts = vec![channel_mean(&x)?];
                if let Some((last, _)) = self.stages.last() {
                    let acts = self
                        .net
                        .stages_until(&prepare_images(op, &x, device)?, last)?;
                    for (name, _) in &self.stages {
                        let a = acts.iter().find(|(s, _)| s == name).map(|(_, t)| t);
                        if let Some(a) = a {
                            parts.push(channel_mean(a)?);
                        }
                    }
                }
                for (slot, p) in sums.iter_mut().zip(parts) {
                    *slot = Some(match slot.take() {
                        None => p,
                        Some(acc) => tc(op, acc.f_add(&p))?,
                    });
                }
                start += len;
            }
            Ok(())
        })?;
        self.scales = Some(
            sums.into_iter()
                .flatten()
                .map(|s| tc(op, s.f_div_scalar(n as f64)))
                .collect::<Result<_>>()?,
        );
        Ok(())
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
        let scale = |i: usize| self.scales.as_ref().and_then(|s| s.get(i));
        if self.pixel_weight > 0.0 {
            let term = normalised_l1(op, recon, &target.detach(), scale(0))?;
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
        for (i, (name, w)) in self.stages.iter().enumerate() {
            let a = fr.iter().find(|(n, _)| n == name).map(|(_, t)| t);
            let b = ft.iter().find(|(n, _)| n == name).map(|(_, t)| t);
            if let (Some(a), Some(b)) = (a, b) {
                let term = normalised_l1(op, a, b, scale(i + 1))?;
                let term = tc(op, term.f_to_device(recon.device()))?;
                total = tc(op, total.f_add(&tc(op, term.f_mul_scalar(*w))?))?;
            }
        }
        Ok(total)
    }
}

/// mean |a − b| / (scale_c + ε), a and b N×C×H×W, scale 1×C×1×1 (none: 1).
fn normalised_l1(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    scale: Option<&Tensor>,
) -> Result<Tensor> {
    let d = tc(op, tc(op, a.f_sub(b))?.f_abs())?;
    let d = match scale {
        Some(s) => tc(
            op,
            d.f_div(&tc(
                op,
                tc(op, s.f_to_device(d.device()))?.f_add_scalar(EPS),
            )?),
        )?,
        None => d,
    };
    tc(op, d.f_mean(Kind::Float))
}

/// Total variation as Beliy et al.'s image loss: the mean over pixels and
/// channels of ((∂x)² + (∂y)²)^exponent (their exponent 1.25, i.e.
/// Mahendran & Vedaldi's V^β with β = 2.5), the differences taken to the
/// right and lower neighbour.
pub fn total_variation(op: &'static str, x: &Tensor, exponent: f64) -> Result<Tensor> {
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
        tc(op, sq.f_pow_tensor_scalar(exponent))?.f_mean(Kind::Float),
    )
}
