//! Yu et al. 2020's voxel-conditioned GAN (`train_voxel_gan`): a
//! text-to-image GAN whose sentence embedding is replaced by the voxel
//! response, trained on the stimulus–response pairs.
//!
//! - Conditioning augmentation (StackGAN's CA_NET): the standardised voxels
//!   go through one linear map to μ and log σ² of the condition; c = μ + σ·ε,
//!   with the KL divergence to N(0, I) added to the generator's loss
//!   (weight 2). As the issue asks, the map is linear (StackGAN's CA_NET puts
//!   a GLU after its linear layer).
//! - Generator (StackGAN stage I): z (100-d) ⊕ c → linear → 4×4×(8·ngf),
//!   batch norm, ReLU → up-blocks (nearest ×2, 3×3 conv, batch norm, ReLU)
//!   up to the image size → 3×3 conv → tanh.
//! - Discriminator (DCGAN down-blocks, GAN-CLS's joint head): 4×4 stride-2
//!   convolutions down to 4×4, then the condition (as in GAN-CLS, the
//!   discriminator's own linear projection of the voxels to cond_dim and
//!   LeakyReLU(0.2)) tiled 4×4 and concatenated, a 3×3 conv with batch norm
//!   and LeakyReLU(0.2), and a 4×4 conv to one logit. (StackGAN gives its
//!   discriminator the generator's μ instead; on the simulated subject the
//!   KL term shrinks μ early and the discriminator then sees no condition.)
//! - Matching-aware loss (Reed et al.'s GAN-CLS): a real image with its own
//!   trial's voxels → real; a real image with another trial's voxels → fake
//!   (weight 0.5); a generated image → fake (weight 0.5). The generator's
//!   loss is non-saturating (its images → real). Optional R1 penalty
//!   γ/2·E‖∇ₓD(x, c)‖² on the real, matching pairs.
//! - Both networks train through the one trainer ([`train::fit`]) as two
//!   parameter groups with their own Adam (2e-4, β 0.5, 0.999): a step
//!   updates the discriminator, then the generator.
//! - A fixed grid (the same voxels, the same z and ε) is drawn every N
//!   epochs: true images above their samples, so a user can watch training.
//!
//! The architecture follows the images: square, 4·2^k pixels (k ≥ 1), with
//! k up-blocks and k down-blocks.

use std::path::PathBuf;

use tch::nn::{self, Module};
use tch::{Device, Kind, Reduction, Tensor};

use super::nn::{batch_norm, conv2d, leaky_relu, linear, ConvDownBlock, UpBlock};
use super::reconstruct::Reconstructor;
use super::train::{self, Group, History, Metrics, OptimConfig, Optimizer, Schedule};
use super::train::{StepContext, Task, TrainConfig};
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::random::SplitMix64;
use crate::tensor::{shape_text, tc};

const OP: &str = "train_voxel_gan";

/// Weight of the mismatching (real image, other trial's voxels) and of the
/// generated pairs in the discriminator's loss (GAN-CLS).
const MISMATCH_WEIGHT: f64 = 0.5;
const FAKE_WEIGHT: f64 = 0.5;

/// Sizes of the networks; the image size comes from the data.
#[derive(Debug, Clone, PartialEq)]
pub struct VoxelGanConfig {
    /// Noise dimensions (100 in GAN-CLS and StackGAN).
    pub z_dim: i64,
    /// Dimensions of the condition c (μ, σ from the voxels).
    pub cond_dim: i64,
    /// Generator width: 8·ngf channels at 4×4, halved by each up-block
    /// (never below ngf/2).
    pub ngf: i64,
    /// Discriminator width: ndf channels after the first down-block,
    /// doubled by each one after it (at most 8·ndf).
    pub ndf: i64,
    /// Weight of the KL term of the conditioning augmentation.
    pub kl_weight: f64,
}

impl VoxelGanConfig {
    /// Trains in minutes on 2 CPU cores on the simulated subject.
    pub fn small() -> VoxelGanConfig {
        VoxelGanConfig {
            z_dim: 100,
            cond_dim: 64,
            ngf: 16,
            ndf: 16,
            kl_weight: 2.0,
        }
    }

    /// GAN-CLS / StackGAN stage I widths (ngf = ndf = 64, c 128-d), for a
    /// GPU and real data.
    pub fn paper() -> VoxelGanConfig {
        VoxelGanConfig {
            z_dim: 100,
            cond_dim: 128,
            ngf: 64,
            ndf: 64,
            kl_weight: 2.0,
        }
    }

    pub fn parse(op: &'static str, name: &str) -> Result<VoxelGanConfig> {
        super::size_preset(op, name, VoxelGanConfig::small, VoxelGanConfig::paper)
    }

    pub fn validate(&self, op: &'static str) -> Result<()> {
        for (key, v, min) in [
            ("z_dim", self.z_dim, 1),
            ("cond_dim", self.cond_dim, 1),
            ("ngf", self.ngf, 2),
            ("ndf", self.ndf, 1),
        ] {
            if v < min {
                return Err(Error::BadOption {
                    op,
                    key: key.into(),
                    expected: format!("an integer ≥ {min}"),
                    got: v.to_string(),
                });
            }
        }
        if !(self.kl_weight >= 0.0 && self.kl_weight.is_finite()) {
            return Err(Error::BadOption {
                op,
                key: "kl_weight".into(),
                expected: "a number ≥ 0".into(),
                got: self.kl_weight.to_string(),
            });
        }
        Ok(())
    }
}

/// The number of ×2 stages between 4×4 and an image of `size` pixels, or an
/// error naming the sizes the architecture takes.
pub fn stages_for(op: &'static str, height: i64, width: i64) -> Result<i64> {
    let ok =
        height == width && height >= 8 && height % 4 == 0 && (height as u64 / 4).is_power_of_two();
    if !ok {
        return Err(Error::shape(
            op,
            "images",
            "square images of 4·2^k pixels (8, 16, 32, 64, 128, 256, …)",
            format!("{height}×{width}"),
        ));
    }
    Ok((height / 4).trailing_zeros() as i64)
}

/// Channels after up-block `k` (1-based) of the generator.
fn g_channels(ngf: i64, k: i64) -> i64 {
    ((ngf * 8) >> k.min(62)).max(ngf / 2)
}

/// Channels after down-block `k` (1-based) of the discriminator.
fn d_channels(ndf: i64, k: i64) -> i64 {
    ndf << (k - 1).min(3)
}

struct Generator {
    ca: nn::Linear,
    fc: nn::Linear,
    fc_norm: nn::BatchNorm,
    up_blocks: Vec<UpBlock>,
    conv_out: nn::Conv2D,
    c0: i64,
}

impl Generator {
    fn new(p: &nn::Path, voxels: i64, c: &VoxelGanConfig, stages: i64) -> Generator {
        let c0 = c.ngf * 8;
        let up_blocks = (1..=stages)
            .map(|k| {
                UpBlock::new(
                    &(p / "up_blocks" / (k - 1)),
                    g_channels(c.ngf, k - 1),
                    g_channels(c.ngf, k),
                )
            })
            .collect();
        Generator {
            ca: linear(&(p / "ca" / "fc"), voxels, 2 * c.cond_dim, true),
            fc: linear(&(p / "fc"), c.z_dim + c.cond_dim, c0 * 16, false),
            fc_norm: batch_norm(&(p / "fc_norm"), 1, c0 * 16),
            up_blocks,
            conv_out: conv2d(
                &(p / "conv_out"),
                g_channels(c.ngf, stages),
                3,
                3,
                1,
                1,
                true,
            ),
            c0,
        }
    }

    /// μ and log σ² of the condition from standardised voxels (B×V).
    fn condition(&self, voxels: &Tensor) -> (Tensor, Tensor) {
        let h = self.ca.forward(voxels);
        let parts = h.chunk(2, 1);
        (parts[0].shallow_clone(), parts[1].shallow_clone())
    }

    /// Images in [−1, 1] from noise z (B×z_dim) and condition c (B×cond_dim).
    fn forward_t(&self, z: &Tensor, c: &Tensor, train: bool) -> Tensor {
        let h = self
            .fc
            .forward(&Tensor::cat(&[z, c], 1))
            .apply_t(&self.fc_norm, train)
            .relu();
        let mut h = h.view([-1, self.c0, 4, 4]);
        for b in &self.up_blocks {
            h = b.forward_t(&h, train);
        }
        self.conv_out.forward(&h).tanh()
    }
}

struct Discriminator {
    /// GAN-CLS's projection of the condition (here the voxels) before it is tiled.
    cond_fc: nn::Linear,
    down_blocks: Vec<ConvDownBlock>,
    joint_conv: nn::Conv2D,
    joint_norm: nn::BatchNorm,
    logits: nn::Conv2D,
}

impl Discriminator {
    fn new(p: &nn::Path, voxels: i64, c: &VoxelGanConfig, stages: i64) -> Discriminator {
        let down_blocks = (1..=stages)
            .map(|k| {
                let c_in = if k == 1 { 3 } else { d_channels(c.ndf, k - 1) };
                ConvDownBlock::new(
                    &(p / "down_blocks" / (k - 1)),
                    c_in,
                    d_channels(c.ndf, k),
                    k > 1,
                )
            })
            .collect();
        let top = d_channels(c.ndf, stages);
        Discriminator {
            cond_fc: linear(&(p / "cond_fc"), voxels, c.cond_dim, true),
            down_blocks,
            joint_conv: conv2d(&(p / "joint_conv"), top + c.cond_dim, top, 3, 1, 1, false),
            joint_norm: batch_norm(&(p / "joint_norm"), 2, top),
            logits: conv2d(&(p / "logits"), top, 1, 4, 4, 0, true),
        }
    }

    /// One logit per pair of an image (B×3×S×S in [−1, 1]) and a condition (B×cond_dim).
    fn forward_t(&self, x: &Tensor, voxels: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for b in &self.down_blocks {
            h = b.forward_t(&h, train);
        }
        let cond = leaky_relu(&self.cond_fc.forward(voxels), 0.2);
        let s = cond.size();
        let tiled = cond
            .view([s[0], s[1], 1, 1])
            .expand([s[0], s[1], 4, 4], false);
        let h = self
            .joint_conv
            .forward(&Tensor::cat(&[&h, &tiled], 1))
            .apply_t(&self.joint_norm, train);
        leaky_relu(&h, 0.2).apply(&self.logits).view([-1])
    }
}

/// A trained voxel-conditioned GAN.
pub struct VoxelGan {
    pub vs: nn::VarStore,
    pub config: VoxelGanConfig,
    /// Image edge in pixels.
    pub image_size: i64,
    /// Voxels of a condition (columns of the betas it was trained on).
    pub voxels: i64,
    /// The ROIs whose voxels it reads, in order (None: all of a dataset's voxels).
    pub rois: Option<Vec<String>>,
    /// Per-voxel mean and standard deviation of the training betas (the
    /// standardisation applied to every input).
    voxel_mean: Tensor,
    voxel_std: Tensor,
    g: Generator,
    d: Discriminator,
}

impl VoxelGan {
    /// A network for `voxels` voxels and images of `image_size` pixels.
    pub fn new(
        op: &'static str,
        config: VoxelGanConfig,
        voxels: i64,
        image_size: i64,
        device: Device,
    ) -> Result<VoxelGan> {
        config.validate(op)?;
        let stages = stages_for(op, image_size, image_size)?;
        if voxels < 1 {
            return Err(Error::shape(op, "betas", "at least one voxel", "0 columns"));
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let g = Generator::new(&(&root / "generator"), voxels, &config, stages);
        let d = Discriminator::new(&(&root / "discriminator"), voxels, &config, stages);
        let voxel_mean = root.zeros_no_train("voxel_mean", &[voxels]);
        let voxel_std = root.ones_no_train("voxel_std", &[voxels]);
        Ok(VoxelGan {
            vs,
            config,
            image_size,
            voxels,
            rois: None,
            voxel_mean,
            voxel_std,
            g,
            d,
        })
    }

    pub fn parameter_count(&self) -> i64 {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// Checks betas (N×V, V = the model's voxels) and standardises them.
    fn standardise(&self, op: &'static str, betas: &Tensor) -> Result<Tensor> {
        let s = betas.size();
        if s.len() != 2 || s[1] != self.voxels {
            return Err(Error::shape(
                op,
                "betas",
                format!(
                    "trials × {} voxels (the voxels the GAN was trained on)",
                    self.voxels
                ),
                shape_text(&s),
            ));
        }
        if s[0] < 1 {
            return Err(Error::shape(
                op,
                "betas",
                "at least one row (trial)",
                shape_text(&s),
            ));
        }
        let x = tc(
            op,
            tc(op, betas.f_to_kind(Kind::Float))?.f_to_device(self.vs.device()),
        )?;
        tc(
            op,
            tc(op, x.f_sub(&self.voxel_mean))?.f_div(&self.voxel_std),
        )
    }

    /// The discriminator's logit for each pair of an image (B×3×S×S in
    /// [−1, 1]) and a standardised voxel response (B×voxels): how real it
    /// judges the image given that response.
    pub fn discriminator_logits(&self, images: &Tensor, voxels: &Tensor, train: bool) -> Tensor {
        self.d.forward_t(images, voxels, train)
    }

    /// `samples` images per row of betas (N×V), rows in order, a row's
    /// samples together: N·samples × 3 × S × S in [0, 1]. c = μ + σ·ε (or μ
    /// without `condition_noise`); z and ε are
    /// drawn from `seed` (SplitMix64), so a seed gives the same images on
    /// every machine and thread count.
    pub fn draw(
        &self,
        op: &'static str,
        betas: &Tensor,
        samples: usize,
        seed: u64,
        condition_noise: bool,
    ) -> Result<Tensor> {
        if samples < 1 {
            return Err(Error::BadOption {
                op,
                key: "samples".into(),
                expected: "an integer ≥ 1".into(),
                got: samples.to_string(),
            });
        }
        let y = self.standardise(op, betas)?;
        let n = y.size()[0];
        let rows = tc(op, y.f_repeat_interleave_self_int(samples as i64, 0, None))?;
        let mut rng = SplitMix64::new(seed);
        let m = n * samples as i64;
        let z = normal(&mut rng, m, self.config.z_dim, self.vs.device());
        let eps = normal(&mut rng, m, self.config.cond_dim, self.vs.device());
        let mut out = Vec::new();
        tch::no_grad(|| {
            let mut start = 0;
            while start < m {
                let len = 256.min(m - start);
                let (mu, logvar) = self.g.condition(&rows.narrow(0, start, len));
                let c = if condition_noise {
                    &mu + (&logvar * 0.5).exp() * eps.narrow(0, start, len)
                } else {
                    mu
                };
                let x = self.g.forward_t(&z.narrow(0, start, len), &c, false);
                out.push(((x + 1.0) * 0.5).clamp(0.0, 1.0));
                start += len;
            }
        });
        tc(op, Tensor::f_cat(&out, 0))
    }
}

/// How `reconstruct` draws from the GAN.
#[derive(Debug, Clone)]
pub struct Sampling {
    /// Images per row of betas.
    pub samples: usize,
    /// Seed of z and ε (SplitMix64).
    pub seed: u64,
    /// c = μ + σ·ε (true, as in training) or c = μ.
    pub condition_noise: bool,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            samples: 1,
            seed: 0,
            condition_noise: true,
        }
    }
}

impl Reconstructor for VoxelGan {
    type Input = crate::tensor::Tensor;
    type Options = Sampling;

    fn reconstruct(&self, betas: &Self::Input, o: &Sampling) -> Result<ImageSet> {
        const OP: &str = "reconstruct";
        let x = self.draw(OP, &betas.0, o.samples, o.seed, o.condition_noise)?;
        let x = tc(OP, x.f_to_device(Device::Cpu))?;
        let n = x.size()[0];
        Ok(ImageSet {
            data: crate::tensor::Tensor(x),
            ids: (1..=n).map(|i| format!("recon{i:04}")).collect(),
        })
    }
}

/// An m×d standard-normal tensor from a SplitMix64 stream.
fn normal(rng: &mut SplitMix64, m: i64, d: i64, device: Device) -> Tensor {
    let v: Vec<f32> = (0..m * d).map(|_| rng.normal() as f32).collect();
    Tensor::from_slice(&v).view([m, d]).to_device(device)
}

/// Everything `train_voxel_gan` is told.
pub struct VoxelGanOptions {
    pub config: VoxelGanConfig,
    /// γ of the R1 penalty on real, matching pairs (0: none).
    pub r1_gamma: f64,
    /// Draw the fixed sample grid every N epochs (and after the last).
    pub sample_every: usize,
    /// Where the grids go (`epoch-NNNN.png`); None: no grids.
    pub samples_dir: Option<PathBuf>,
    pub device: Device,
    pub train: TrainConfig,
}

impl VoxelGanOptions {
    /// The papers' optimisation: Adam 2e-4 with β (0.5, 0.999) for both
    /// networks, batch 64; no validation metric, so the last epoch is kept.
    pub fn new(device: Device) -> VoxelGanOptions {
        let mut train = TrainConfig::new(OP);
        train.epochs = 100;
        train.batch = 64;
        train.optim = OptimConfig {
            optimizer: Optimizer::Adam {
                beta1: 0.5,
                beta2: 0.999,
                eps: 1e-8,
            },
            lr: 2e-4,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            clip_grad_norm: None,
        };
        train.monitor = None;
        train.verbose = true;
        VoxelGanOptions {
            config: VoxelGanConfig::small(),
            r1_gamma: 0.0,
            sample_every: 5,
            samples_dir: None,
            device,
            train,
        }
    }
}

/// The training pairs and the fixed grid, as the trainer's task.
struct GanTask<'a> {
    gan: &'a VoxelGan,
    /// Standardised training voxels (N×V) and images in [−1, 1].
    voxels: Tensor,
    images: Tensor,
    r1_gamma: f64,
    /// Voxels (standardised), z, ε and true images of the sample grid.
    grid: Option<(Tensor, Tensor, Tensor, Tensor)>,
    sample_every: usize,
    samples_dir: Option<PathBuf>,
    epochs: usize,
    epoch: usize,
}

fn bce(logits: &Tensor, target: f64) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(
        &logits.full_like(target),
        None,
        None,
        Reduction::Mean,
    )
}

impl Task for GanTask<'_> {
    fn n_train(&self) -> i64 {
        self.voxels.size()[0]
    }

    fn groups(&self) -> Vec<Group> {
        let of = |prefix: &str| {
            train::state_of(&self.gan.vs)
                .into_iter()
                .filter(|(n, t)| n.starts_with(prefix) && t.requires_grad())
                .collect()
        };
        vec![
            Group::new("discriminator", of("discriminator.")),
            Group::new("generator", of("generator.")),
        ]
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        train::state_of(&self.gan.vs)
    }

    fn train_step(&mut self, batch: &[i64], ctx: &mut StepContext) -> Result<Metrics> {
        self.epoch = ctx.epoch();
        let (g, d) = (&self.gan.g, &self.gan.d);
        let b = batch.len() as i64;
        let idx = Tensor::from_slice(batch).to_device(self.voxels.device());
        let y = self.voxels.index_select(0, &idx);
        let mut x = self.images.index_select(0, &idx);
        let (mu, logvar) = g.condition(&y);
        let eps = mu.randn_like();
        let c = &mu + (&logvar * 0.5).exp() * eps;
        let z = Tensor::randn([b, self.gan.config.z_dim], (Kind::Float, x.device()));
        let fake = g.forward_t(&z, &c, true);

        // Discriminator: matching → real, mismatching (each image with the
        // next row's voxels: another trial) and generated → fake.
        if self.r1_gamma > 0.0 {
            x = x.set_requires_grad(true);
        }
        let real = d.forward_t(&x, &y, true);
        let wrong = d.forward_t(&x, &y.roll([1], [0]), true);
        let fake_d = d.forward_t(&fake.detach(), &y, true);
        let mut d_loss =
            bce(&real, 1.0) + bce(&wrong, 0.0) * MISMATCH_WEIGHT + bce(&fake_d, 0.0) * FAKE_WEIGHT;
        let mut r1_value = 0.0;
        if self.r1_gamma > 0.0 {
            let grad = tc(
                OP,
                Tensor::f_run_backward(&[real.sum(Kind::Float)], &[&x], true, true),
            )?;
            let r1 = grad[0]
                .square()
                .sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Float)
                .mean(Kind::Float);
            r1_value = ctx.value(&r1)?;
            d_loss = d_loss + r1 * (self.r1_gamma / 2.0);
        }
        ctx.backward_step("discriminator", &d_loss)?;

        // Generator: its images → real (non-saturating), plus the KL term.
        let g_adv = bce(&d.forward_t(&fake, &y, true), 1.0);
        let kl = ((&mu.square() + logvar.exp() - &logvar - 1.0) * 0.5).mean(Kind::Float);
        let g_loss = &g_adv + &kl * self.gan.config.kl_weight;
        ctx.backward_step("generator", &g_loss)?;

        let mut m = Metrics::new()
            .with("d_loss", ctx.value(&d_loss)?)
            .with("g_loss", ctx.value(&g_loss)?)
            .with("kl", ctx.value(&kl)?)
            .with("d_real", ctx.value(&real.sigmoid().mean(Kind::Float))?)
            .with("d_wrong", ctx.value(&wrong.sigmoid().mean(Kind::Float))?)
            .with("d_fake", ctx.value(&fake_d.sigmoid().mean(Kind::Float))?);
        if self.r1_gamma > 0.0 {
            m = m.with("r1", r1_value);
        }
        Ok(m)
    }

    /// Draws the fixed grid (true images above samples) at the epochs asked
    /// for; there is no validation metric.
    fn validate(&mut self) -> Result<Option<Metrics>> {
        let (Some((y, z, eps, truth)), Some(dir)) = (&self.grid, &self.samples_dir) else {
            return Ok(None);
        };
        if !(self.epoch.is_multiple_of(self.sample_every) || self.epoch == self.epochs) {
            return Ok(None);
        }
        let g = &self.gan.g;
        let (mu, logvar) = g.condition(y);
        let c = &mu + (&logvar * 0.5).exp() * eps;
        let samples = ((g.forward_t(z, &c, false) + 1.0) * 0.5).clamp(0.0, 1.0);
        let both = Tensor::cat(&[truth, &samples], 0).to_device(Device::Cpu);
        let cols = truth.size()[0] as usize;
        let grid = crate::data::images::grid(OP, &crate::tensor::Tensor(both), cols, 2, 1.0)?;
        let img = crate::data::images::to_rgb8(OP, &grid.0)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(OP, dir, e))?;
        crate::io::images::write_rgb(OP, &dir.join(format!("epoch-{:04}.png", self.epoch)), &img)?;
        Ok(None)
    }
}

/// Trains a voxel-conditioned GAN on `voxels` (N×V betas of the training
/// trials) and their `images` (N×3×S×S in [0, 1]); `grid` (voxels, images)
/// are the pairs of the sample grid (at most 8 are drawn).
pub fn train_voxel_gan(
    voxels: &Tensor,
    images: &Tensor,
    grid: Option<(&Tensor, &Tensor)>,
    o: &VoxelGanOptions,
) -> Result<(VoxelGan, History)> {
    o.train.validate()?;
    let vs_ = voxels.size();
    let is_ = images.size();
    if vs_.len() != 2 {
        return Err(Error::shape(
            OP,
            "betas",
            "trials × voxels",
            shape_text(&vs_),
        ));
    }
    if is_.len() != 4 || is_[1] != 3 {
        return Err(Error::shape(
            OP,
            "images",
            "N×3×H×W (one per trial)",
            shape_text(&is_),
        ));
    }
    if vs_[0] != is_[0] {
        return Err(Error::invalid(
            OP,
            format!(
                "{} training trials but {} images (one per trial expected)",
                vs_[0], is_[0]
            ),
        ));
    }
    if vs_[0] < 2 {
        return Err(Error::invalid(
            OP,
            format!(
                "{} training trials; the matching-aware loss needs at least 2 (an image with another trial's voxels)",
                vs_[0]
            ),
        ));
    }
    if o.train.batch < 2 {
        return Err(Error::BadOption {
            op: OP,
            key: "batch".into(),
            expected: "an integer ≥ 2 (mismatching pairs come from the same batch)".into(),
            got: o.train.batch.to_string(),
        });
    }
    if vs_[0] as usize % o.train.batch == 1 {
        return Err(Error::BadOption {
            op: OP,
            key: "batch".into(),
            expected: format!(
                "a size that does not leave a last batch of one trial ({} trials)",
                vs_[0]
            ),
            got: o.train.batch.to_string(),
        });
    }
    if !(o.r1_gamma >= 0.0 && o.r1_gamma.is_finite()) {
        return Err(Error::BadOption {
            op: OP,
            key: "r1_gamma".into(),
            expected: "a number ≥ 0".into(),
            got: o.r1_gamma.to_string(),
        });
    }
    if o.sample_every < 1 {
        return Err(Error::BadOption {
            op: OP,
            key: "sample_every".into(),
            expected: "an integer ≥ 1 (epochs)".into(),
            got: o.sample_every.to_string(),
        });
    }
    if let Some(seed) = o.train.seed {
        crate::device::seed(seed);
    }
    stages_for(OP, is_[2], is_[3])?;
    let mut gan = VoxelGan::new(OP, o.config.clone(), vs_[1], is_[2], o.device)?;
    let y = tc(
        OP,
        tc(OP, voxels.f_to_kind(Kind::Float))?.f_to_device(o.device),
    )?;
    tch::no_grad(|| -> Result<()> {
        let mean = tc(OP, y.f_mean_dim(0, false, Kind::Float))?;
        let std = tc(OP, y.f_std_dim(0, true, false))?;
        // Constant voxels stay at 0 after centring instead of dividing by 0.
        let std = &std + std.le(1e-8).to_kind(Kind::Float);
        let _ = gan.voxel_mean.f_copy_(&mean);
        let _ = gan.voxel_std.f_copy_(&std);
        Ok(())
    })?;
    let train_voxels = gan.standardise(OP, voxels)?;
    let x = tc(
        OP,
        tc(OP, images.f_to_kind(Kind::Float))?.f_to_device(o.device),
    )?;
    let train_images = tc(OP, tc(OP, x.f_mul_scalar(2.0))?.f_sub_scalar(1.0))?;
    let grid = match (grid, &o.samples_dir) {
        (Some((gy, gx)), Some(_)) => {
            let k = gy.size().first().copied().unwrap_or(0).min(8);
            if k < 1 {
                None
            } else {
                let gyk = gan.standardise(OP, &gy.narrow(0, 0, k))?;
                let gs = gx.size();
                if gs.len() != 4 || gs[0] < k || gs[1..] != is_[1..] {
                    return Err(Error::shape(
                        OP,
                        "sample grid images",
                        format!("{k}×{}", shape_text(&is_[1..])),
                        shape_text(&gs),
                    ));
                }
                let mut rng = SplitMix64::new(o.train.seed.unwrap_or(0) as u64 ^ 0x6A11_D5EE);
                let z = normal(&mut rng, k, gan.config.z_dim, o.device);
                let eps = normal(&mut rng, k, gan.config.cond_dim, o.device);
                let truth = tc(OP, gx.narrow(0, 0, k).f_to_kind(Kind::Float))?.to_device(o.device);
                Some((gyk, z, eps, truth))
            }
        }
        _ => None,
    };
    let mut task = GanTask {
        gan: &gan,
        voxels: train_voxels,
        images: train_images,
        r1_gamma: o.r1_gamma,
        grid,
        sample_every: o.sample_every,
        samples_dir: o.samples_dir.clone(),
        epochs: o.train.epochs,
        epoch: 0,
    };
    let history = train::fit(&mut task, &o.train)?;
    Ok((gan, history))
}
