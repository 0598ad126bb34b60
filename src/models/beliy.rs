//! Beliy et al. 2019, "From voxels to pixels and back: self-supervision in
//! natural-image reconstruction from fMRI" (NeurIPS), as the authors' code
//! (WeizmannVision/ssfmri2im) builds and trains it; the BNU paper's
//! section 3 reconstruction.
//!
//! - Encoder E (image → voxels): a first convolution (stride 2, fixed when
//!   taken from a pretrained network's first layer, learned otherwise) with
//!   ReLU and batch norm; two [3×3 stride-2 convolution, ReLU, batch norm]
//!   blocks (S → S/2 → S/4 → S/8); dropout; a dense layer to the voxels
//!   whose weights carry a spatial group-lasso penalty.
//! - Decoder D (voxels → image): a dense layer to an S/8 × S/8 × C map (group
//!   lasso), three [3×3 convolution, ReLU, ×2 nearest upsampling, batch norm]
//!   blocks, a 3×3 convolution to RGB with a sigmoid.
//! - Stage 1: E alone on the labeled pairs (random shifts), MSE + 0.1 ×
//!   negative cosine, SGD with Nesterov momentum and a multi-step schedule.
//! - Stage 2: D with E frozen (its dropout still on, its batch norms in
//!   inference mode); every batch mixes, as the authors' 64-row batches
//!   (D run on each stack at once), labeled pairs (D(y) vs x), unlabeled
//!   images (D(E(x)) vs x) and unlabeled fMRI (E(D(y)) vs y: test fMRI
//!   averaged over a random third of each stimulus' repeats, and/or given
//!   extra fMRI). Image loss: perceptual L1 on fixed ResNet stages + pixel L1
//!   (normalised per channel by the training images) + total variation;
//!   voxel loss: SNR-weighted MAE + 0.1 × negative cosine.
//!
//! Both stages go through [`super::train::fit`] with their own [`Task`].
//!
//! Differences from the authors' code: the perceptual network is a ResNet
//! (VGG19 weights are not among voxlab's networks; the stages are the ones
//! of the same resolutions, see [`PerceptualLoss::beliy`]); Adam without
//! AMSGrad; batch norms with PyTorch's momentum; the paired E(x) vs y term of
//! stage 2, which trains nothing while E is frozen, is not computed.

use tch::nn;
use tch::{Device, Kind, Tensor};

use super::nn::layers::{batch_norm_frozen_batch_stats, batch_norm_with, conv2d, dropout, linear};
use super::perceptual::{total_variation, PerceptualLoss};
use super::reconstruct::Reconstructor;
use super::train::{
    fit, state_of, Group, History, Metrics, OptimConfig, Optimizer, Schedule, StepContext, Task,
    TrainConfig,
};
use crate::data::{Dataset, ImageSet};
use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

const OP: &str = "train_beliy";

/// The architecture and training settings. [`BeliyConfig::paper`] is the
/// authors' (112 px, GPU); [`BeliyConfig::small`] trains on 2 CPU cores in
/// about a minute on the simulated subject.
#[derive(Debug, Clone, PartialEq)]
pub struct BeliyConfig {
    /// Image side; a multiple of 8 (the encoder halves it three times).
    pub image_size: i64,
    /// A learned first convolution's channels and kernel (a given
    /// pretrained one brings its own).
    pub first_channels: i64,
    pub first_kernel: i64,
    /// Channels of the encoder's two stride-2 blocks.
    pub encoder_channels: i64,
    /// Channels of the decoder's map and blocks.
    pub decoder_channels: i64,
    /// Encoder dropout in stage 1 and (frozen encoder) stage 2.
    pub dropout_stage1: f64,
    pub dropout_stage2: f64,
    /// Group lasso of the encoder's dense layer: l1 × mean|W| + gl × mean
    /// over positions and voxels of the channel RMS (neighbour weight gl_n).
    /// The weights are the paper's, for its 14 × 14 × 32 (encoder) and
    /// 14 × 14 × 64 (decoder) maps; at other sizes they are scaled so that
    /// each weight feels the same pull (a mean over fewer weights or groups
    /// weighs each one more): l1 × (numel / paper numel), gl × (groups /
    /// paper groups).
    pub encoder_l1: f64,
    pub encoder_gl: f64,
    pub decoder_l1: f64,
    pub decoder_gl: f64,
    pub gl_neighbours: f64,
    /// A factor on every penalty (group lasso and kernel penalties) above.
    pub penalty: f64,
    /// Keras l1/l2 kernel penalties (sums) of the encoder's and decoder's convolutions.
    pub encoder_conv_l1: f64,
    pub encoder_conv_l2: f64,
    pub decoder_conv_l1: f64,
    /// Weight of the negative cosine in both voxel losses.
    pub cosine_weight: f64,
    pub tv_weight: f64,
    /// Power of (dx² + dy²) in the total variation.
    pub tv_exponent: f64,
    /// Random shifts of the encoder's training images, ± pixels.
    pub max_shift: i64,
    pub encoder_epochs: usize,
    pub decoder_epochs: usize,
    /// Labeled pairs per step, and unlabeled images / unlabeled fMRI per step.
    pub batch: usize,
    pub unpaired_batch: usize,
    /// Stage 1's optimiser: the authors' SGD with Nesterov momentum, or Adam.
    pub encoder_optimizer: Optimizer,
    pub encoder_lr: f64,
    pub decoder_lr: f64,
    /// Fraction of each test stimulus' repeats averaged into an unlabeled
    /// fMRI sample (3 → a random third, as the authors).
    pub test_fraction: usize,
    /// Every batch norm's eps and momentum (PyTorch's convention: the
    /// newest batch's weight in the running statistics). The authors'
    /// Keras layers: eps 1e-3, momentum 0.99, i.e. 0.01 here.
    pub bn_eps: f64,
    pub bn_momentum: f64,
}

impl BeliyConfig {
    /// The authors' settings: 112 px; 80 encoder epochs (SGD 0.1, Nesterov
    /// 0.9, ÷10 after epochs 21, 36, 46, 51), 150 decoder epochs (Adam 1e-3,
    /// ×0.2 every 30), batches of 48 pairs + 16 unlabeled.
    pub fn paper() -> BeliyConfig {
        BeliyConfig {
            image_size: 112,
            first_channels: 64,
            first_kernel: 7,
            encoder_channels: 32,
            decoder_channels: 64,
            dropout_stage1: 0.5,
            dropout_stage2: 0.25,
            encoder_l1: 10.0,
            encoder_gl: 800.0,
            decoder_l1: 20.0,
            decoder_gl: 400.0,
            gl_neighbours: 0.5,
            penalty: 1.0,
            encoder_conv_l1: 1e-5,
            encoder_conv_l2: 1e-3,
            decoder_conv_l1: 1e-5,
            cosine_weight: 0.1,
            tv_weight: 1.0,
            tv_exponent: 1.25,
            max_shift: 5,
            encoder_epochs: 80,
            decoder_epochs: 150,
            batch: 48,
            unpaired_batch: 16,
            encoder_optimizer: Optimizer::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: true,
            },
            encoder_lr: 0.1,
            decoder_lr: 1e-3,
            test_fraction: 3,
            bn_eps: 1e-3,
            bn_momentum: 0.01,
        }
    }

    /// The same design at 32 px with half the channels and fewer epochs,
    /// for 2 CPU cores. Stage 1 uses Adam (1e-2) and every penalty a tenth
    /// of the paper's pull: the encoder's dense layer gets gradients of
    /// order 1/voxels from the voxel-mean losses, which SGD at 0.1 moves by
    /// a few thousandths of the weights' scale in the ~130–260 steps a CPU
    /// run affords (the authors ran ~1500), and at the paper's penalty the
    /// group lasso outweighs the single-trial data term at GOD-like SNR
    /// (measured on the simulated subject: the encoder then predicts the
    /// voxel means, training cosine 0.000). Adam's rate: mean r of the
    /// encoder's predictions with the test responses on the simulated
    /// subject (1200 pairs, seed 0) 0.12 at 3e-4, 0.26 at 1e-3, 0.44 at
    /// 3e-3, 0.56 at 1e-2, 0.54 at 3e-2; and the unlabeled data help the
    /// decoder only with the better encoder (docs/papers/bnu.md).
    pub fn small() -> BeliyConfig {
        BeliyConfig {
            image_size: 32,
            first_channels: 32,
            first_kernel: 5,
            encoder_channels: 16,
            decoder_channels: 32,
            max_shift: 2,
            encoder_epochs: 20,
            decoder_epochs: 20,
            batch: 48,
            unpaired_batch: 16,
            encoder_optimizer: Optimizer::adam(),
            encoder_lr: 1e-2,
            penalty: 0.1,
            // Keras' 0.01 would leave a third of the initial statistics
            // (0 and 1) in the decoder's after a quick run's 120 steps.
            bn_momentum: 0.1,
            ..BeliyConfig::paper()
        }
    }

    /// The encoder's multi-step schedule scaled to its epochs (the paper's
    /// milestones 21, 36, 46, 51 of 80).
    fn encoder_schedule(&self) -> Schedule {
        let e = self.encoder_epochs as f64;
        let mut milestones: Vec<usize> = [21.0, 36.0, 46.0, 51.0]
            .iter()
            .map(|m| ((m / 80.0) * e).round().max(1.0) as usize)
            .collect();
        milestones.dedup();
        Schedule::MultiStep {
            milestones,
            gamma: 0.1,
        }
    }

    /// The decoder's ×0.2 every fifth of its epochs (the paper: every 30 of
    /// 150, so epochs 1–30 run at the full rate, 31–60 at a fifth, …).
    fn decoder_schedule(&self) -> Schedule {
        let every = (self.decoder_epochs as f64 / 5.0).round().max(1.0) as usize;
        Schedule::MultiStep {
            milestones: (1..5)
                .map(|k| k * every)
                .filter(|&m| m < self.decoder_epochs)
                .collect(),
            gamma: 0.2,
        }
    }

    pub fn validate(&self, op: &'static str) -> Result<()> {
        let bad = |key: &str, expected: &str, got: String| Error::BadOption {
            op,
            key: key.into(),
            expected: expected.into(),
            got,
        };
        if self.image_size < 16 || self.image_size % 8 != 0 {
            return Err(bad(
                "image_size",
                "a multiple of 8, at least 16 (the encoder halves the image three times)",
                self.image_size.to_string(),
            ));
        }
        for (k, v) in [
            ("first_channels", self.first_channels),
            ("encoder_channels", self.encoder_channels),
            ("decoder_channels", self.decoder_channels),
        ] {
            if v < 1 {
                return Err(bad(k, "an integer ≥ 1", v.to_string()));
            }
        }
        if self.first_kernel < 1 || self.first_kernel % 2 == 0 {
            return Err(bad(
                "first_kernel",
                "an odd integer ≥ 1",
                self.first_kernel.to_string(),
            ));
        }
        for (k, v) in [
            ("dropout_stage1", self.dropout_stage1),
            ("dropout_stage2", self.dropout_stage2),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(bad(k, "a number in [0, 1)", v.to_string()));
            }
        }
        for (k, v) in [
            ("encoder_epochs", self.encoder_epochs),
            ("decoder_epochs", self.decoder_epochs),
            ("batch", self.batch),
            ("test_fraction", self.test_fraction),
        ] {
            if v < 1 {
                return Err(bad(k, "an integer ≥ 1", v.to_string()));
            }
        }
        if !(self.penalty >= 0.0 && self.penalty.is_finite()) {
            return Err(bad("penalty", "a number ≥ 0", self.penalty.to_string()));
        }
        if !(self.bn_eps > 0.0 && self.bn_eps.is_finite()) {
            return Err(bad("bn_eps", "a number > 0", self.bn_eps.to_string()));
        }
        if !(self.bn_momentum > 0.0 && self.bn_momentum <= 1.0) {
            return Err(bad(
                "bn_momentum",
                "a number in (0, 1]",
                self.bn_momentum.to_string(),
            ));
        }
        if self.max_shift < 0 || self.max_shift * 2 >= self.image_size {
            return Err(bad(
                "max_shift",
                "pixels ≥ 0 and under half the image",
                self.max_shift.to_string(),
            ));
        }
        Ok(())
    }
}

/// A pretrained first convolution (torchvision layout, out × 3 × k × k).
pub struct FirstConv {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// Where it came from ("resnet conv1.weight of …").
    pub source: String,
}

impl FirstConv {
    /// The first layer of a torchvision state dict in safetensors: ResNet's
    /// `conv1.weight` or AlexNet/VGG's `features.0.weight` (+ bias).
    pub fn from_safetensors(op: &'static str, path: &std::path::Path) -> Result<FirstConv> {
        let f = crate::io::safetensors::File::open(op, path)?;
        let names: Vec<String> = f.shapes(op)?.into_iter().map(|(n, _)| n).collect();
        let (w, b) = if names.iter().any(|n| n == "conv1.weight") {
            ("conv1.weight", None)
        } else if names.iter().any(|n| n == "features.0.weight") {
            ("features.0.weight", Some("features.0.bias"))
        } else {
            return Err(Error::format(
                op,
                path,
                "expected a torchvision state dict with conv1.weight (ResNet) or features.0.weight (AlexNet, VGG)",
            ));
        };
        let weight = tc(op, f.tensor(op, w)?.f_to_kind(Kind::Float))?;
        let s = weight.size();
        if s.len() != 4 || s[1] != 3 || s[2] != s[3] || s[2] % 2 == 0 {
            return Err(Error::format(
                op,
                path,
                format!(
                    "{w} must be out × 3 × k × k with k odd, got {}",
                    shape_text(&s)
                ),
            ));
        }
        let bias = match b {
            Some(b) if names.iter().any(|n| n == b) => {
                Some(tc(op, f.tensor(op, b)?.f_to_kind(Kind::Float))?)
            }
            _ => None,
        };
        Ok(FirstConv {
            weight,
            bias,
            source: format!("{w} of {}", path.display()),
        })
    }
}

/// Group lasso of a dense layer's weights arranged voxels × channels × H × W:
/// l1·mean|W| + gl·mean_{v,h,w} sqrt(mean_c W̃²), W̃² the squares smoothed
/// with their 4 neighbours (edge-replicated) at weight gl_n.
fn group_lasso(w4: &Tensor, l1: f64, gl: f64, gl_n: f64) -> Tensor {
    let sq = w4.square();
    let sq = if gl_n > 0.0 {
        let (h, w) = (sq.size()[2], sq.size()[3]);
        let padded = sq.pad([1, 1, 1, 1], "replicate", None);
        let up = padded.narrow(2, 0, h).narrow(3, 1, w);
        let down = padded.narrow(2, 2, h).narrow(3, 1, w);
        let left = padded.narrow(2, 1, h).narrow(3, 0, w);
        let right = padded.narrow(2, 1, h).narrow(3, 2, w);
        let avg = (up + down + left + right) / 4.0;
        (&sq + avg * gl_n) / (1.0 + gl_n)
    } else {
        sq
    };
    let groups = (sq.mean_dim(Some([1i64].as_slice()), false, Kind::Float) + 1e-12).sqrt();
    w4.abs().mean(Kind::Float) * l1 + groups.mean(Kind::Float) * gl
}

/// The group-lasso weights for a map of `channels` × side × side, scaled
/// from the paper's (`paper_channels` × 14 × 14) so that the penalty's
/// gradient per weight is the paper's: the l1 term is a mean over all
/// weights, the group term a mean over positions × voxels.
fn paper_strength(l1: f64, gl: f64, channels: i64, side: i64, paper_channels: i64) -> (f64, f64) {
    let positions = (side * side) as f64 / 196.0;
    (
        l1 * positions * channels as f64 / paper_channels as f64,
        gl * positions,
    )
}

/// Σ|w| and Σw² of convolution kernels (Keras' l1/l2 regularisers).
fn kernel_penalty(convs: &[&nn::Conv2D], l1: f64, l2: f64) -> Tensor {
    let mut total = Tensor::zeros([], (Kind::Float, convs[0].ws.device()));
    for c in convs {
        if l1 > 0.0 {
            total += c.ws.abs().sum(Kind::Float) * l1;
        }
        if l2 > 0.0 {
            total += c.ws.square().sum(Kind::Float) * l2;
        }
    }
    total
}

fn imagenet_normalise(x: &Tensor) -> Tensor {
    let dev = x.device();
    let mean = Tensor::from_slice(&super::resnet::IMAGENET_MEAN)
        .to_kind(Kind::Float)
        .to_device(dev)
        .reshape([1, 3, 1, 1]);
    let std = Tensor::from_slice(&super::resnet::IMAGENET_STD)
        .to_kind(Kind::Float)
        .to_device(dev)
        .reshape([1, 3, 1, 1]);
    (x - mean) / std
}

/// The encoder's and decoder's batch norms: the config's eps and momentum,
/// weights drawn from U(0, 1) (libtorch-rs' default) where Keras starts
/// them at 1. Measured on the simulated subject (full size, seed 0, test
/// responses predicted by the stage-1 encoder): mean r 0.56 with U(0, 1),
/// 0.43 with ones, at the small config's learning rate.
fn beliy_batch_norm(p: &nn::Path, channels: i64, c: &BeliyConfig) -> nn::BatchNorm {
    let weight = nn::Init::Uniform { lo: 0.0, up: 1.0 };
    batch_norm_with(p, 2, channels, c.bn_eps, c.bn_momentum, weight)
}

pub struct Encoder {
    first: nn::Conv2D,
    first_bn: nn::BatchNorm,
    blocks: Vec<(nn::Conv2D, nn::BatchNorm)>,
    fc: nn::Linear,
    channels: i64,
    side: i64,
    bn_eps: f64,
}

/// Which statistics the encoder's batch norms normalise with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EncoderNorm {
    /// Stage 1: the batch's, updating the running statistics.
    Train,
    /// Stage 2, E frozen: still the batch's (as the authors' Keras 2 ran a
    /// frozen model: `trainable = False` froze its weights, not its batch
    /// norms' training mode), running statistics left as stage 1 left them.
    Frozen,
    /// Inference: the running statistics.
    Running,
}

impl Encoder {
    pub fn new(p: &nn::Path, c: &BeliyConfig, voxels: i64, first: Option<&FirstConv>) -> Encoder {
        let (out, k, bias) = match first {
            Some(f) => (f.weight.size()[0], f.weight.size()[2], f.bias.is_some()),
            None => (c.first_channels, c.first_kernel, true),
        };
        let conv1 = conv2d(&(p / "conv1"), 3, out, k, 2, k / 2, bias);
        let mut blocks = Vec::new();
        let mut c_in = out;
        for i in 0..2 {
            let q = p / "blocks" / i;
            blocks.push((
                conv2d(&(&q / "conv"), c_in, c.encoder_channels, 3, 2, 1, true),
                beliy_batch_norm(&(&q / "bn"), c.encoder_channels, c),
            ));
            c_in = c.encoder_channels;
        }
        let side = c.image_size / 8;
        Encoder {
            first_bn: beliy_batch_norm(&(p / "bn1"), out, c),
            first: conv1,
            blocks,
            fc: linear(&(p / "fc"), c.encoder_channels * side * side, voxels, true),
            channels: c.encoder_channels,
            side,
            bn_eps: c.bn_eps,
        }
    }

    fn normalise(&self, bn: &nn::BatchNorm, h: &Tensor, norm: EncoderNorm) -> Tensor {
        match norm {
            EncoderNorm::Train => h.apply_t(bn, true),
            EncoderNorm::Frozen => batch_norm_frozen_batch_stats(bn, h, self.bn_eps),
            EncoderNorm::Running => h.apply_t(bn, false),
        }
    }

    /// Copies of the batch norms' running means and variances, in order.
    pub fn running_statistics(&self) -> Vec<Tensor> {
        std::iter::once(&self.first_bn)
            .chain(self.blocks.iter().map(|(_, bn)| bn))
            .flat_map(|bn| [bn.running_mean.copy(), bn.running_var.copy()])
            .collect()
    }

    /// Predicted voxels for images in [0, 1].
    pub fn forward(&self, x: &Tensor, norm: EncoderNorm, dropout_p: f64) -> Tensor {
        let h = imagenet_normalise(x).apply(&self.first).relu();
        let mut h = self.normalise(&self.first_bn, &h, norm);
        for (conv, bn) in &self.blocks {
            h = self.normalise(bn, &h.apply(conv).relu(), norm);
        }
        dropout(h.flatten(1, -1), dropout_p, dropout_p > 0.0).apply(&self.fc)
    }

    fn penalty(&self, c: &BeliyConfig) -> Tensor {
        let v = self.fc.ws.size()[0];
        let w4 = self.fc.ws.reshape([v, self.channels, self.side, self.side]);
        let convs: Vec<&nn::Conv2D> = self.blocks.iter().map(|(conv, _)| conv).collect();
        let (l1, gl) = paper_strength(c.encoder_l1, c.encoder_gl, self.channels, self.side, 32);
        (group_lasso(&w4, l1, gl, c.gl_neighbours)
            + kernel_penalty(&convs, c.encoder_conv_l1, c.encoder_conv_l2))
            * c.penalty
    }
}

pub struct Decoder {
    fc: nn::Linear,
    blocks: Vec<(nn::Conv2D, nn::BatchNorm)>,
    out: nn::Conv2D,
    channels: i64,
    side: i64,
}

impl Decoder {
    fn new(p: &nn::Path, c: &BeliyConfig, voxels: i64) -> Decoder {
        let side = c.image_size / 8;
        let ch = c.decoder_channels;
        let blocks = (0..3)
            .map(|i| {
                let q = p / "blocks" / i;
                (
                    conv2d(&(&q / "conv"), ch, ch, 3, 1, 1, true),
                    beliy_batch_norm(&(&q / "bn"), ch, c),
                )
            })
            .collect();
        Decoder {
            fc: linear(&(p / "fc"), voxels, ch * side * side, true),
            blocks,
            out: conv2d(&(p / "out"), ch, 3, 3, 1, 1, true),
            channels: ch,
            side,
        }
    }

    /// Images in [0, 1] for (standardised) voxel responses.
    pub fn forward(&self, y: &Tensor, train: bool) -> Tensor {
        let n = y.size()[0];
        let mut h = y
            .apply(&self.fc)
            .reshape([n, self.channels, self.side, self.side]);
        for (conv, bn) in &self.blocks {
            let s = h.size();
            h = h
                .apply(conv)
                .relu()
                .upsample_nearest2d([s[2] * 2, s[3] * 2], None, None)
                .apply_t(bn, train);
        }
        h.apply(&self.out).sigmoid()
    }

    fn penalty(&self, c: &BeliyConfig) -> Tensor {
        let v = self.fc.ws.size()[1];
        // fc.ws is (C·H·W) × voxels; the groups are a position's channels per voxel.
        let w4 = self
            .fc
            .ws
            .transpose(0, 1)
            .reshape([v, self.channels, self.side, self.side]);
        let mut convs: Vec<&nn::Conv2D> = self.blocks.iter().map(|(conv, _)| conv).collect();
        convs.push(&self.out);
        let (l1, gl) = paper_strength(c.decoder_l1, c.decoder_gl, self.channels, self.side, 64);
        (group_lasso(&w4, l1, gl, c.gl_neighbours) + kernel_penalty(&convs, c.decoder_conv_l1, 0.0))
            * c.penalty
    }
}

/// What `train_beliy` is given beside the dataset.
pub struct BeliyOptions {
    pub config: BeliyConfig,
    /// Voxel columns of the dataset's betas to use (None: all).
    pub columns: Option<Vec<i64>>,
    /// Their description (ROI names) for display.
    pub voxel_source: String,
    /// Self-supervision on: stage 2 mixes unlabeled images and fMRI.
    pub unlabeled: bool,
    /// Natural images without fMRI, N×3×H×W in [0, 1] (any size).
    pub unlabeled_images: Option<Tensor>,
    /// Unlabeled fMRI, trials × voxels (the dataset's voxels, or the selected ones).
    pub unlabeled_fmri: Option<Tensor>,
    /// Also the dataset's test fMRI (no images), averaged over a random
    /// fraction of each stimulus' repeats, as the authors.
    pub test_fmri: bool,
    pub first_conv: Option<FirstConv>,
    /// A pretrained ResNet for the perceptual loss (None: fixed random weights).
    pub perceptual: Option<std::rc::Rc<super::resnet::ResNet>>,
    pub seed: i64,
    pub device: Device,
    pub verbose: bool,
    pub progress: bool,
}

pub struct Beliy {
    pub config: BeliyConfig,
    pub encoder_vs: nn::VarStore,
    pub decoder_vs: nn::VarStore,
    pub encoder: Encoder,
    pub decoder: Decoder,
    /// Voxel columns of the training dataset's betas (None: all of them).
    pub columns: Option<Vec<i64>>,
    pub voxel_source: String,
    /// The training voxels' mean and sd (1 × voxels): inputs are standardised with them.
    pub mean: Tensor,
    pub sd: Tensor,
    /// SNR per voxel, normalised to mean 1 (the voxel-loss weights).
    pub snr: Tensor,
    pub first_conv: String,
    pub unlabeled: bool,
    pub encoder_history: History,
    pub decoder_history: History,
}

impl Beliy {
    pub fn voxels(&self) -> i64 {
        self.mean.size()[1]
    }

    pub fn device(&self) -> Device {
        self.decoder_vs.device()
    }

    /// Responses (trials × voxels of the training data, or × the dataset's
    /// voxels when the model uses a subset) standardised as in training.
    fn standardise(&self, op: &'static str, betas: &Tensor) -> Result<Tensor> {
        let s = betas.size();
        let v = self.voxels();
        let x = match (&self.columns, s.as_slice()) {
            (_, [_, w]) if *w == v => betas.shallow_clone(),
            (Some(cols), [_, w]) if cols.iter().all(|&c| c < *w) && *w > v => {
                let idx = Tensor::from_slice(cols).to_device(betas.device());
                tc(op, betas.f_index_select(1, &idx))?
            }
            _ => {
                return Err(Error::shape(
                    op,
                    "betas",
                    format!(
                        "trials × {v} voxels (the model's {}){}",
                        self.voxel_source,
                        if self.columns.is_some() {
                            ", or trials × the training dataset's voxels"
                        } else {
                            ""
                        }
                    ),
                    shape_text(&s),
                ))
            }
        };
        let x = tc(
            op,
            tc(op, x.f_to_kind(Kind::Float))?.f_to_device(self.device()),
        )?;
        Ok((x - &self.mean) / &self.sd)
    }

    /// Predicted (standardised) voxel responses of images in [0, 1].
    pub fn encode(&self, op: &'static str, images: &Tensor, batch: i64) -> Result<Tensor> {
        let x = prepare(op, images, self.config.image_size, self.device())?;
        let n = x.size()[0];
        let mut parts = Vec::new();
        tch::no_grad(|| {
            let mut s = 0;
            while s < n {
                let len = batch.min(n - s);
                parts.push(
                    self.encoder
                        .forward(&x.narrow(0, s, len), EncoderNorm::Running, 0.0)
                        .to_device(Device::Cpu),
                );
                s += len;
            }
        });
        tc(op, Tensor::f_cat(&parts, 0))
    }
}

/// Options of `reconstruct` for a Beliy model.
#[derive(Debug, Clone)]
pub struct BeliyReconstruct {
    pub batch: i64,
}

impl Default for BeliyReconstruct {
    fn default() -> Self {
        BeliyReconstruct { batch: 64 }
    }
}

impl Reconstructor for Beliy {
    type Input = Tensor;
    type Options = BeliyReconstruct;

    fn reconstruct(&self, betas: &Tensor, o: &BeliyReconstruct) -> Result<ImageSet> {
        const OP: &str = "reconstruct";
        if o.batch < 1 {
            return Err(Error::BadOption {
                op: OP,
                key: "batch".into(),
                expected: "an integer ≥ 1".into(),
                got: o.batch.to_string(),
            });
        }
        let y = self.standardise(OP, betas)?;
        let n = y.size()[0];
        let mut parts = Vec::new();
        tch::no_grad(|| {
            let mut s = 0;
            while s < n {
                let len = o.batch.min(n - s);
                parts.push(
                    self.decoder
                        .forward(&y.narrow(0, s, len), false)
                        .to_device(Device::Cpu),
                );
                s += len;
            }
        });
        let images = tc(OP, Tensor::f_cat(&parts, 0))?;
        Ok(ImageSet {
            data: crate::tensor::Tensor(images),
            ids: (0..n).map(|i| format!("recon{i:04}")).collect(),
        })
    }
}

/// Images as float N×3×S×S on `device`: averaged over blocks when S divides
/// their size, bilinear otherwise.
fn prepare(op: &'static str, images: &Tensor, size: i64, device: Device) -> Result<Tensor> {
    let s = images.size();
    if s.len() != 4 || s[1] != 3 {
        return Err(Error::shape(
            op,
            "images",
            "N×3×H×W RGB in [0, 1]",
            shape_text(&s),
        ));
    }
    let x = tc(
        op,
        tc(op, images.f_to_kind(Kind::Float))?.f_to_device(device),
    )?;
    if s[2] == size && s[3] == size {
        return Ok(x);
    }
    if s[2] % size == 0 && s[3] % size == 0 {
        return tc(op, x.f_adaptive_avg_pool2d([size, size]));
    }
    tc(op, x.f_upsample_bilinear2d([size, size], false, None, None))
}

/// Each image shifted by its own random offset in ±max pixels, the border
/// replicated (scipy.ndimage.shift, order 0, mode nearest, as the authors).
fn random_shift(x: &Tensor, max: i64) -> Tensor {
    if max == 0 {
        return x.shallow_clone();
    }
    let s = x.size();
    let padded = x.pad([max, max, max, max], "replicate", None);
    let offsets = Tensor::randint(2 * max + 1, [s[0], 2], (Kind::Int64, Device::Cpu));
    let off: Vec<i64> = Vec::<i64>::try_from(offsets.flatten(0, -1)).unwrap_or_default();
    let shifted: Vec<Tensor> = (0..s[0] as usize)
        .map(|i| {
            padded
                .get(i as i64)
                .narrow(1, off[2 * i], s[2])
                .narrow(2, off[2 * i + 1], s[3])
        })
        .collect();
    Tensor::stack(&shifted, 0)
}

/// −cos(a_i, b_i) averaged over rows (Keras' cosine_proximity).
fn negative_cosine(a: &Tensor, b: &Tensor) -> Tensor {
    -Tensor::cosine_similarity(a, b, 1, 1e-8).mean(Kind::Float)
}

/// The data both stages draw from, on the model's device.
struct Prepared {
    x_train: Tensor,
    y_train: Tensor,
    /// Unlabeled images (stage 2), N×3×S×S.
    x_unlabeled: Option<Tensor>,
    /// Unlabeled fMRI given as is, trials × voxels (standardised).
    y_unlabeled: Option<Tensor>,
    /// Standardised test trials grouped by stimulus, for random-fraction averages.
    test_groups: Vec<Tensor>,
    snr: Tensor,
}

struct EncoderTask<'a> {
    cfg: &'a BeliyConfig,
    vs: &'a nn::VarStore,
    encoder: &'a Encoder,
    data: &'a Prepared,
}

impl Task for EncoderTask<'_> {
    fn n_train(&self) -> i64 {
        self.data.x_train.size()[0]
    }
    fn groups(&self) -> Vec<Group> {
        vec![Group::trainable("encoder", self.vs)]
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        state_of(self.vs)
    }
    fn train_step(&mut self, batch: &[i64], ctx: &mut StepContext) -> Result<Metrics> {
        let idx = Tensor::from_slice(batch).to_device(self.data.x_train.device());
        let x = random_shift(&self.data.x_train.index_select(0, &idx), self.cfg.max_shift);
        let y = self.data.y_train.index_select(0, &idx);
        let pred = self
            .encoder
            .forward(&x, EncoderNorm::Train, self.cfg.dropout_stage1);
        let mse = pred.mse_loss(&y, tch::Reduction::Mean);
        let cos = negative_cosine(&pred, &y);
        let reg = self.encoder.penalty(self.cfg);
        let loss = &mse + &cos * self.cfg.cosine_weight + &reg;
        ctx.backward_step("encoder", &loss)?;
        Ok(Metrics::new()
            .with("loss", ctx.value(&loss)?)
            .with("mse", ctx.value(&mse)?)
            .with("cosine", -ctx.value(&cos)?))
    }
}

struct DecoderTask<'a> {
    cfg: &'a BeliyConfig,
    vs: &'a nn::VarStore,
    encoder: &'a Encoder,
    decoder: &'a Decoder,
    data: &'a Prepared,
    image_loss: &'a PerceptualLoss,
    unlabeled: bool,
}

impl DecoderTask<'_> {
    fn image_loss(&self, recon: &Tensor, target: &Tensor) -> Result<Tensor> {
        let l = self.image_loss.loss(OP, recon, target)?;
        let tv = total_variation(OP, recon, self.cfg.tv_exponent)?;
        Ok(l + tv * self.cfg.tv_weight)
    }

    fn voxel_loss(&self, pred: &Tensor, y: &Tensor) -> Tensor {
        let mae = ((pred - y).abs() * &self.data.snr).mean(Kind::Float);
        mae + negative_cosine(pred, y) * self.cfg.cosine_weight
    }

    /// `n` unlabeled fMRI samples: given trials, and test fMRI averaged
    /// over a random fraction of each stimulus' repeats.
    fn unlabeled_fmri(&self, n: i64) -> Option<Tensor> {
        let given = self
            .data
            .y_unlabeled
            .as_ref()
            .map(|t| t.size()[0])
            .unwrap_or(0);
        let groups = self.data.test_groups.len() as i64;
        let pool = given + groups;
        if pool == 0 || n == 0 {
            return None;
        }
        let picks = Vec::<i64>::try_from(Tensor::randint(pool, [n], (Kind::Int64, Device::Cpu)))
            .unwrap_or_default();
        let frac = self.cfg.test_fraction as i64;
        let rows: Vec<Tensor> = picks
            .iter()
            .map(|&k| {
                if k < given {
                    self.data
                        .y_unlabeled
                        .as_ref()
                        .map(|t| t.get(k))
                        .unwrap_or_else(|| Tensor::zeros([1], (Kind::Float, Device::Cpu)))
                } else {
                    let g = &self.data.test_groups[(k - given) as usize];
                    let r = g.size()[0];
                    // Each repeat kept with probability 1/frac; at least one.
                    let mut keep = Tensor::randint(frac, [r], (Kind::Int64, Device::Cpu)).eq(0);
                    if keep.sum(Kind::Int64).int64_value(&[]) == 0 {
                        keep = keep.zeros_like();
                        let one = Tensor::randint(r, [1], (Kind::Int64, Device::Cpu));
                        keep = keep.index_fill(0, &one, 1);
                    }
                    let idx = keep.nonzero().flatten(0, -1).to_device(g.device());
                    g.index_select(0, &idx)
                        .mean_dim(Some([0i64].as_slice()), false, Kind::Float)
                }
            })
            .collect();
        Some(Tensor::stack(&rows, 0))
    }
}

impl Task for DecoderTask<'_> {
    fn n_train(&self) -> i64 {
        self.data.x_train.size()[0]
    }
    fn groups(&self) -> Vec<Group> {
        vec![Group::trainable("decoder", self.vs)]
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        state_of(self.vs)
    }
    /// One step of the authors' encdec model: D runs once on the paired
    /// trials stacked with the unlabeled fMRI, and once on E's predictions
    /// for the (shifted) paired images stacked with the unlabeled images;
    /// each row's loss is taken from the output its kind uses (paired:
    /// D(y) vs x; unlabeled image: D(E(x)) vs x; unlabeled fMRI: E(D(y))
    /// vs y), the rest only shares the batch. Batch norm in D thus sees the
    /// authors' 64-row mixed batches, and E (frozen) normalises each of its
    /// two 64-row batches with that batch's statistics, as Keras 2 ran the
    /// authors' frozen encoder. Running D separately per kind instead
    /// gave each kind its own batch statistics (16 averaged test responses
    /// normalised among themselves) and running statistics blended from
    /// three distributions; on the simulated subject that made the
    /// unlabeled data hurt on seed 0 (docs/papers/bnu.md states both).
    fn train_step(&mut self, batch: &[i64], ctx: &mut StepContext) -> Result<Metrics> {
        let dev = self.data.x_train.device();
        let idx = Tensor::from_slice(batch).to_device(dev);
        let x = self.data.x_train.index_select(0, &idx);
        let y = self.data.y_train.index_select(0, &idx);
        let n_paired = batch.len() as i64;
        let n_un = if self.unlabeled {
            self.cfg.unpaired_batch as i64
        } else {
            0
        };
        // The unlabeled fMRI are decoded in one batch with the pairs; E then
        // reads that whole batch of D's images (its batch norms normalise
        // with the batch's statistics, the pairs' images included, as the
        // authors' model computes E(D(y)) for all 64 rows).
        let unlabeled_fmri = self.unlabeled_fmri(n_un).map(|yu| yu.to_device(dev));
        let decoded = match &unlabeled_fmri {
            Some(yu) => self.decoder.forward(&Tensor::cat(&[&y, yu], 0), true),
            None => self.decoder.forward(&y, true),
        };
        let recon = decoded.narrow(0, 0, n_paired);
        let paired = self.image_loss(&recon, &x)?;
        let mut metrics = Metrics::new().with("paired_image", ctx.value(&paired)?);
        let mut loss = paired.shallow_clone();
        if n_un > 0 {
            // The authors average each output's loss over the batch's 64
            // rows: pairs weigh 48/64, each unlabeled kind 16/64.
            let w = n_un as f64 / (n_paired + n_un) as f64;
            loss = &paired * (1.0 - w);
            if let Some(xu_all) = &self.data.x_unlabeled {
                let pick = Tensor::randint(xu_all.size()[0], [n_un], (Kind::Int64, Device::Cpu))
                    .to_device(dev);
                let xu = xu_all.index_select(0, &pick);
                let codes = tch::no_grad(|| {
                    let shifted = random_shift(&x, self.cfg.max_shift);
                    self.encoder.forward(
                        &Tensor::cat(&[&shifted, &xu], 0),
                        EncoderNorm::Frozen,
                        self.cfg.dropout_stage2,
                    )
                });
                let out = self.decoder.forward(&codes, true).narrow(0, n_paired, n_un);
                let l = self.image_loss(&out, &xu)?;
                metrics = metrics.with("unlabeled_image", ctx.value(&l)?);
                loss = loss + l * w;
            }
            if let Some(yu) = &unlabeled_fmri {
                let back = self
                    .encoder
                    .forward(&decoded, EncoderNorm::Frozen, self.cfg.dropout_stage2)
                    .narrow(0, n_paired, yu.size()[0]);
                let l = self.voxel_loss(&back, yu);
                metrics = metrics.with("unlabeled_fmri", ctx.value(&l)?);
                loss = loss + l * w;
            }
        }
        let loss = loss + self.decoder.penalty(self.cfg);
        ctx.backward_step("decoder", &loss)?;
        Ok(metrics.with("loss", ctx.value(&loss)?))
    }
}

/// SNR per voxel as the authors' calc_snr: variance over stimuli of the
/// test averages / mean over stimuli of the within-stimulus variance
/// (ddof 0), normalised to mean 1. Ones when no stimulus has 2 repeats.
fn snr(groups: &[Tensor], voxels: i64, device: Device) -> Tensor {
    let repeated: Vec<&Tensor> = groups.iter().filter(|g| g.size()[0] >= 2).collect();
    if repeated.len() < 2 {
        return Tensor::ones([1, voxels], (Kind::Float, device));
    }
    let means: Vec<Tensor> = repeated
        .iter()
        .map(|g| g.mean_dim(Some([0i64].as_slice()), false, Kind::Float))
        .collect();
    let signal = Tensor::stack(&means, 0).var_correction(Some([0i64].as_slice()), 0, false);
    let noise: Vec<Tensor> = repeated
        .iter()
        .map(|g| g.var_correction(Some([0i64].as_slice()), 0, false))
        .collect();
    let noise = Tensor::stack(&noise, 0).mean_dim(Some([0i64].as_slice()), false, Kind::Float);
    let r = signal / (noise + 1e-12);
    let r = &r / r.mean(Kind::Float);
    r.reshape([1, voxels])
}

fn check_unlabeled_width(
    what: &str,
    t: &Tensor,
    all: i64,
    cols: &Option<Vec<i64>>,
) -> Result<Tensor> {
    let s = t.size();
    let used = cols.as_ref().map_or(all, |c| c.len() as i64);
    match s.as_slice() {
        [_, w] if *w == used && (cols.is_none() || *w != all) => Ok(t.shallow_clone()),
        [_, w] if *w == all => match cols {
            Some(c) => tc(
                OP,
                t.f_index_select(1, &Tensor::from_slice(c).to_device(t.device())),
            ),
            None => Ok(t.shallow_clone()),
        },
        _ => Err(Error::shape(
            OP,
            what,
            format!(
                "trials × {all} voxels (the dataset's){}",
                if cols.is_some() {
                    format!(" or × {used} (the selected ones)")
                } else {
                    String::new()
                }
            ),
            shape_text(&s),
        )),
    }
}

/// Trains E (stage 1) then D (stage 2) on a dataset's training trials.
pub fn train_beliy(ds: &Dataset, o: BeliyOptions) -> Result<Beliy> {
    let c = o.config.clone();
    c.validate(OP)?;
    // The networks' initial weights, the shifts and dropout draw from
    // libtorch's generator: seeded here (as the other trainers do), two
    // trainings with the same seed in one run start alike and give the
    // same model, whatever the script drew before.
    crate::device::seed(o.seed);
    let train = ds.split(OP, "train")?;
    let test = ds.split(OP, "test")?;
    if train.is_empty() {
        return Err(Error::invalid(OP, "the dataset has no training trials"));
    }
    if test.is_empty() {
        return Err(Error::invalid(OP, "the dataset has no test trials: Beliy's SNR weights and unlabeled fMRI come from the test repeats, and the reconstructions are scored on them"));
    }
    let images = train.trial_images(OP)?.ok_or_else(|| {
        Error::invalid(
            OP,
            "the dataset has no stimulus images (load it with images: true)",
        )
    })?;
    let dev = o.device;
    let all_voxels = ds.betas.shape()[1];
    let pick = |b: &Tensor| -> Result<Tensor> {
        let b = tc(OP, tc(OP, b.f_to_kind(Kind::Float))?.f_to_device(dev))?;
        match &o.columns {
            Some(cols) => {
                if let Some(bad) = cols.iter().find(|&&c| c < 0 || c >= all_voxels) {
                    return Err(Error::invalid(
                        OP,
                        format!("voxel column {bad} is outside the dataset's {all_voxels} voxels"),
                    ));
                }
                tc(
                    OP,
                    b.f_index_select(1, &Tensor::from_slice(cols).to_device(dev)),
                )
            }
            None => Ok(b),
        }
    };
    let y_raw = pick(&train.betas.0)?;
    let voxels = y_raw.size()[1];
    if voxels < 1 {
        return Err(Error::invalid(OP, "no voxels selected"));
    }
    let mean = y_raw.mean_dim(Some([0i64].as_slice()), true, Kind::Float);
    let sd = y_raw
        .std_dim(Some([0i64].as_slice()), false, true)
        .clamp_min(1e-6);
    let standard = |t: &Tensor| (t - &mean) / &sd;
    let y_train = standard(&y_raw);
    let x_train = prepare(OP, &images.data.0, c.image_size, dev)?;

    // Test trials grouped by stimulus (their order of first appearance).
    let y_test = standard(&pick(&test.betas.0)?);
    let mut order: Vec<&str> = Vec::new();
    for t in &test.trials {
        if !order.contains(&t.stimulus.as_str()) {
            order.push(&t.stimulus);
        }
    }
    let test_groups: Vec<Tensor> = order
        .iter()
        .map(|s| {
            let rows: Vec<i64> = test
                .trials
                .iter()
                .enumerate()
                .filter(|(_, t)| t.stimulus == *s)
                .map(|(i, _)| i as i64)
                .collect();
            y_test.index_select(0, &Tensor::from_slice(&rows).to_device(dev))
        })
        .collect();
    let snr = snr(&test_groups, voxels, dev);

    let x_unlabeled = match &o.unlabeled_images {
        Some(t) if o.unlabeled => {
            if t.size().first().copied().unwrap_or(0) == 0 {
                return Err(Error::invalid(OP, "unlabeled_images is empty"));
            }
            Some(prepare(OP, t, c.image_size, dev)?)
        }
        _ => None,
    };
    let y_unlabeled = match &o.unlabeled_fmri {
        Some(t) if o.unlabeled => {
            let t = tc(OP, tc(OP, t.f_to_kind(Kind::Float))?.f_to_device(dev))?;
            Some(standard(&check_unlabeled_width(
                "unlabeled_fmri",
                &t,
                all_voxels,
                &o.columns,
            )?))
        }
        _ => None,
    };
    let data = Prepared {
        x_train,
        y_train,
        x_unlabeled,
        y_unlabeled,
        test_groups: if o.unlabeled && o.test_fmri {
            test_groups
        } else {
            Vec::new()
        },
        snr: snr.shallow_clone(),
    };

    let mut encoder_vs = nn::VarStore::new(dev);
    let encoder = Encoder::new(&encoder_vs.root(), &c, voxels, o.first_conv.as_ref());
    let first_source = match &o.first_conv {
        Some(f) => {
            tch::no_grad(|| -> Result<()> {
                let mut w = encoder.first.ws.shallow_clone();
                tc(OP, w.f_copy_(&f.weight.to_device(dev)))?;
                if let (Some(b), Some(mut bias)) = (
                    &f.bias,
                    encoder.first.bs.as_ref().map(|b| b.shallow_clone()),
                ) {
                    tc(OP, bias.f_copy_(&b.to_device(dev)))?;
                }
                Ok(())
            })?;
            let _ = encoder.first.ws.shallow_clone().set_requires_grad(false);
            if let Some(b) = &encoder.first.bs {
                let _ = b.shallow_clone().set_requires_grad(false);
            }
            format!("fixed, {}", f.source)
        }
        None => "learned".to_string(),
    };
    let stage = |op: &'static str, epochs: usize, optim: OptimConfig| -> TrainConfig {
        let mut t = TrainConfig::new(op);
        t.epochs = epochs;
        t.batch = c.batch;
        t.optim = optim;
        t.seed = Some(o.seed);
        t.monitor = None;
        t.verbose = o.verbose;
        t.progress = o.progress;
        t
    };
    let enc_cfg = stage(
        "train_beliy (stage 1: encoder)",
        c.encoder_epochs,
        OptimConfig {
            optimizer: c.encoder_optimizer.clone(),
            lr: c.encoder_lr,
            weight_decay: 0.0,
            schedule: c.encoder_schedule(),
            clip_grad_norm: None,
        },
    );
    let encoder_history = {
        let mut task = EncoderTask {
            cfg: &c,
            vs: &encoder_vs,
            encoder: &encoder,
            data: &data,
        };
        fit(&mut task, &enc_cfg)?
    };
    encoder_vs.freeze();

    let decoder_vs = nn::VarStore::new(dev);
    let decoder = Decoder::new(&decoder_vs.root(), &c, voxels);
    let mut image_loss = match o.perceptual {
        Some(net) => PerceptualLoss::beliy(OP, net)?,
        None => PerceptualLoss::beliy_random(
            OP,
            dev,
            super::super::eval::reconstruction::RANDOM_RESNET_SEED,
        )?,
    };
    image_loss.calibrate(OP, &data.x_train)?;
    let dec_cfg = stage(
        "train_beliy (stage 2: decoder)",
        c.decoder_epochs,
        OptimConfig {
            optimizer: Optimizer::adam(),
            lr: c.decoder_lr,
            weight_decay: 0.0,
            schedule: c.decoder_schedule(),
            clip_grad_norm: None,
        },
    );
    let decoder_history = {
        let mut task = DecoderTask {
            cfg: &c,
            vs: &decoder_vs,
            encoder: &encoder,
            decoder: &decoder,
            data: &data,
            image_loss: &image_loss,
            unlabeled: o.unlabeled,
        };
        fit(&mut task, &dec_cfg)?
    };
    Ok(Beliy {
        config: c,
        encoder_vs,
        decoder_vs,
        encoder,
        decoder,
        columns: o.columns,
        voxel_source: o.voxel_source,
        mean,
        sd,
        snr,
        first_conv: first_source,
        unlabeled: o.unlabeled,
        encoder_history,
        decoder_history,
    })
}
