//! Stable Diffusion's autoencoder in diffusers' `AutoencoderKL` layout: a
//! convolutional encoder to the mean and log-variance of a diagonal Gaussian
//! over latents (through `quant_conv`), and a decoder back to pixels
//! (after `post_quant_conv`), each with a middle block of two residual
//! blocks around one spatial self-attention. Images are in [−1, 1];
//! diffusion runs on latents multiplied by `scaling_factor`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::hf::{self, Config, NameRules};
use super::nn::{conv2d, group_norm, Downsample2d, ResnetBlock2d, ResnetBlockConfig};
use super::nn::{SpatialSelfAttention, Upsample2d};
use super::perceptual::PerceptualLoss;
use super::schedulers::Noise;
use super::train::{fit, History, LossTask, Metrics, TrainConfig};
use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

/// diffusers' VAE blocks use this epsilon in every norm.
const EPS: f64 = 1e-6;

#[derive(Debug, Clone)]
pub struct VaeConfig {
    pub in_channels: i64,
    pub out_channels: i64,
    pub latent_channels: i64,
    pub block_out_channels: Vec<i64>,
    pub layers_per_block: i64,
    pub norm_num_groups: i64,
    pub scaling_factor: f64,
    /// Subtracted before scaling (SD3/Flux VAEs); None for Stable Diffusion 1/2.
    pub shift_factor: Option<f64>,
    pub use_quant_conv: bool,
    pub use_post_quant_conv: bool,
    pub mid_block_add_attention: bool,
    pub sample_size: i64,
}

impl VaeConfig {
    pub fn from_config(op: &'static str, c: &Config) -> Result<VaeConfig> {
        c.only(op, "act_fn", &[json!("silu")])?;
        c.only(op, "latents_mean", &[])?;
        c.only(op, "latents_std", &[])?;
        let block_out_channels = c.ints(op, "block_out_channels", &[64])?;
        let n = block_out_channels.len();
        for (key, want) in [
            ("down_block_types", "DownEncoderBlock2D"),
            ("up_block_types", "UpDecoderBlock2D"),
        ] {
            let types = c.strs(op, key, &vec![want; n])?;
            if types.len() != n || types.iter().any(|t| t != want) {
                return Err(Error::format(
                    op,
                    &c.path,
                    format!("\"{key}\": expected {n} × {want} (one per block_out_channels entry), got {types:?}"),
                ));
            }
        }
        let v = VaeConfig {
            in_channels: c.int_or(op, "in_channels", 3)?,
            out_channels: c.int_or(op, "out_channels", 3)?,
            latent_channels: c.int_or(op, "latent_channels", 4)?,
            layers_per_block: c.int_or(op, "layers_per_block", 1)?,
            norm_num_groups: c.int_or(op, "norm_num_groups", 32)?,
            scaling_factor: c.float_or(op, "scaling_factor", 0.18215)?,
            shift_factor: if c.has("shift_factor") {
                Some(c.float_or(op, "shift_factor", 0.0)?)
            } else {
                None
            },
            use_quant_conv: c.bool_or(op, "use_quant_conv", true)?,
            use_post_quant_conv: c.bool_or(op, "use_post_quant_conv", true)?,
            mid_block_add_attention: c.bool_or(op, "mid_block_add_attention", true)?,
            sample_size: c.int_or(op, "sample_size", 32)?,
            block_out_channels,
        };
        if let Some(bad) = v
            .block_out_channels
            .iter()
            .find(|&&ch| ch % v.norm_num_groups != 0)
        {
            return Err(Error::format(
                op,
                &c.path,
                format!(
                    "block_out_channels entry {bad} is not a multiple of norm_num_groups {}",
                    v.norm_num_groups
                ),
            ));
        }
        Ok(v)
    }

    pub fn to_json(&self) -> Value {
        let n = self.block_out_channels.len();
        json!({
            "_class_name": "AutoencoderKL",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "latent_channels": self.latent_channels,
            "block_out_channels": self.block_out_channels,
            "down_block_types": vec!["DownEncoderBlock2D"; n],
            "up_block_types": vec!["UpDecoderBlock2D"; n],
            "layers_per_block": self.layers_per_block,
            "norm_num_groups": self.norm_num_groups,
            "act_fn": "silu",
            "scaling_factor": self.scaling_factor,
            "shift_factor": self.shift_factor,
            "use_quant_conv": self.use_quant_conv,
            "use_post_quant_conv": self.use_post_quant_conv,
            "mid_block_add_attention": self.mid_block_add_attention,
            "sample_size": self.sample_size,
        })
    }

    /// Pixels per latent along each side.
    pub fn downscale(&self) -> i64 {
        1 << (self.block_out_channels.len() - 1)
    }

    fn resnet(&self, c_in: i64, c_out: i64) -> ResnetBlockConfig {
        ResnetBlockConfig {
            groups: self.norm_num_groups,
            eps: EPS,
            ..ResnetBlockConfig::new(c_in, c_out)
        }
    }
}

/// UNetMidBlock2D without a timestep: resnet, (attention), resnet.
struct MidBlock {
    first: ResnetBlock2d,
    attention: Option<SpatialSelfAttention>,
    second: ResnetBlock2d,
}

impl MidBlock {
    fn new(p: &nn::Path, c: &VaeConfig, ch: i64) -> MidBlock {
        MidBlock {
            first: ResnetBlock2d::new(&(p / "resnets" / 0), c.resnet(ch, ch)),
            attention: c.mid_block_add_attention.then(|| {
                SpatialSelfAttention::new(&(p / "attentions" / 0), ch, c.norm_num_groups, EPS)
            }),
            second: ResnetBlock2d::new(&(p / "resnets" / 1), c.resnet(ch, ch)),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = self.first.forward(x, None, train);
        if let Some(a) = &self.attention {
            h = a.forward(&h);
        }
        self.second.forward(&h, None, train)
    }
}

/// DownEncoderBlock2D / UpDecoderBlock2D: resnets, then a resampling.
struct Stage {
    resnets: Vec<ResnetBlock2d>,
    down: Option<Downsample2d>,
    up: Option<Upsample2d>,
}

impl Stage {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for r in &self.resnets {
            h = r.forward(&h, None, train);
        }
        if let Some(d) = &self.down {
            h = d.forward(&h);
        }
        if let Some(u) = &self.up {
            h = u.forward(&h);
        }
        h
    }
}

struct Encoder {
    conv_in: nn::Conv2D,
    stages: Vec<Stage>,
    mid: MidBlock,
    norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
}

impl Encoder {
    fn new(p: &nn::Path, c: &VaeConfig) -> Encoder {
        let chans = &c.block_out_channels;
        let n = chans.len();
        let mut out_ch = chans[0];
        let stages = (0..n)
            .map(|i| {
                let in_ch = out_ch;
                out_ch = chans[i];
                let bp = p / "down_blocks" / i as i64;
                Stage {
                    resnets: (0..c.layers_per_block)
                        .map(|j| {
                            let cin = if j == 0 { in_ch } else { out_ch };
                            ResnetBlock2d::new(&(&bp / "resnets" / j), c.resnet(cin, out_ch))
                        })
                        .collect(),
                    // The encoder pads right and bottom, then convolves without padding.
                    down: (i + 1 < n)
                        .then(|| Downsample2d::new(&(&bp / "downsamplers" / 0), out_ch, out_ch, 0)),
                    up: None,
                }
            })
            .collect();
        let last = chans[n - 1];
        Encoder {
            conv_in: conv2d(&(p / "conv_in"), c.in_channels, chans[0], 3, 1, 1, true),
            stages,
            mid: MidBlock::new(&(p / "mid_block"), c, last),
            norm_out: group_norm(&(p / "conv_norm_out"), c.norm_num_groups, last, EPS),
            conv_out: conv2d(
                &(p / "conv_out"),
                last,
                2 * c.latent_channels,
                3,
                1,
                1,
                true,
            ),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = self.conv_in.forward(x);
        for s in &self.stages {
            h = s.forward(&h, train);
        }
        h = self.mid.forward(&h, train);
        self.conv_out.forward(&self.norm_out.forward(&h).silu())
    }
}

struct Decoder {
    conv_in: nn::Conv2D,
    mid: MidBlock,
    stages: Vec<Stage>,
    norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
}

impl Decoder {
    fn new(p: &nn::Path, c: &VaeConfig) -> Decoder {
        let rev: Vec<i64> = c.block_out_channels.iter().rev().copied().collect();
        let n = rev.len();
        let mut out_ch = rev[0];
        let stages = (0..n)
            .map(|i| {
                let in_ch = out_ch;
                out_ch = rev[i];
                let bp = p / "up_blocks" / i as i64;
                Stage {
                    resnets: (0..c.layers_per_block + 1)
                        .map(|j| {
                            let cin = if j == 0 { in_ch } else { out_ch };
                            ResnetBlock2d::new(&(&bp / "resnets" / j), c.resnet(cin, out_ch))
                        })
                        .collect(),
                    down: None,
                    up: (i + 1 < n)
                        .then(|| Upsample2d::new(&(&bp / "upsamplers" / 0), out_ch, out_ch)),
                }
            })
            .collect();
        Decoder {
            conv_in: conv2d(&(p / "conv_in"), c.latent_channels, rev[0], 3, 1, 1, true),
            mid: MidBlock::new(&(p / "mid_block"), c, rev[0]),
            stages,
            norm_out: group_norm(&(p / "conv_norm_out"), c.norm_num_groups, rev[n - 1], EPS),
            conv_out: conv2d(&(p / "conv_out"), rev[n - 1], c.out_channels, 3, 1, 1, true),
        }
    }

    fn forward(&self, z: &Tensor, train: bool) -> Tensor {
        let mut h = self.mid.forward(&self.conv_in.forward(z), train);
        for s in &self.stages {
            h = s.forward(&h, train);
        }
        self.conv_out.forward(&self.norm_out.forward(&h).silu())
    }
}

/// The encoder's diagonal Gaussian over latents (diffusers'
/// DiagonalGaussianDistribution): mean and log-variance clamped to [−30, 20].
pub struct LatentDist {
    pub mean: Tensor,
    pub logvar: Tensor,
}

impl LatentDist {
    pub fn std(&self) -> Tensor {
        (&self.logvar * 0.5).exp()
    }

    /// mean + std · noise (noise: standard normal of the mean's shape).
    pub fn sample_with(&self, noise: &Tensor) -> Tensor {
        &self.mean + self.std() * noise
    }

    /// KL divergence to N(0, I), summed over a latent's elements (B values).
    pub fn kl(&self) -> Tensor {
        ((&self.mean * &self.mean) + self.logvar.exp() - 1.0 - &self.logvar).sum_dim_intlist(
            [1i64, 2, 3].as_slice(),
            false,
            self.mean.kind(),
        ) * 0.5
    }
}

pub struct AutoencoderKl {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<nn::Conv2D>,
    post_quant_conv: Option<nn::Conv2D>,
    pub config: VaeConfig,
}

impl AutoencoderKl {
    pub fn new(p: &nn::Path, c: &VaeConfig) -> AutoencoderKl {
        let l2 = 2 * c.latent_channels;
        AutoencoderKl {
            encoder: Encoder::new(&(p / "encoder"), c),
            decoder: Decoder::new(&(p / "decoder"), c),
            quant_conv: c
                .use_quant_conv
                .then(|| conv2d(&(p / "quant_conv"), l2, l2, 1, 1, 0, true)),
            post_quant_conv: c.use_post_quant_conv.then(|| {
                conv2d(
                    &(p / "post_quant_conv"),
                    c.latent_channels,
                    c.latent_channels,
                    1,
                    1,
                    0,
                    true,
                )
            }),
            config: c.clone(),
        }
    }

    /// Checks B×in_channels×H×W images (H, W multiples of the downscale).
    pub fn check_images(&self, op: &'static str, x: &Tensor) -> Result<()> {
        let s = x.size();
        let f = self.config.downscale();
        if s.len() != 4
            || s[1] != self.config.in_channels
            || s[2] % f != 0
            || s[3] % f != 0
            || s[2] == 0
        {
            return Err(Error::shape(
                op,
                "images",
                format!(
                    "N×{}×H×W with H and W multiples of {f} (the VAE's downscale)",
                    self.config.in_channels
                ),
                shape_text(&s),
            ));
        }
        Ok(())
    }

    /// Checks B×latent_channels×h×w latents.
    pub fn check_latents(&self, op: &'static str, z: &Tensor) -> Result<()> {
        let s = z.size();
        if s.len() != 4 || s[1] != self.config.latent_channels || s[2] == 0 || s[3] == 0 {
            return Err(Error::shape(
                op,
                "latents",
                format!(
                    "N×{}×h×w (the VAE's latent_channels)",
                    self.config.latent_channels
                ),
                shape_text(&s),
            ));
        }
        Ok(())
    }

    /// Images in [−1, 1] → the latent distribution (unscaled latents).
    pub fn encode(&self, x: &Tensor, train: bool) -> LatentDist {
        let mut moments = self.encoder.forward(x, train);
        if let Some(q) = &self.quant_conv {
            moments = q.forward(&moments);
        }
        let l = self.config.latent_channels;
        LatentDist {
            mean: moments.narrow(1, 0, l),
            logvar: moments.narrow(1, l, l).clamp(-30.0, 20.0),
        }
    }

    /// Unscaled latents → images (about [−1, 1]).
    pub fn decode(&self, z: &Tensor, train: bool) -> Tensor {
        let z = match &self.post_quant_conv {
            Some(q) => q.forward(z),
            None => z.shallow_clone(),
        };
        self.decoder.forward(&z, train)
    }

    /// Unscaled → the scaled latents diffusion works on.
    pub fn scale(&self, z: &Tensor) -> Tensor {
        match self.config.shift_factor {
            Some(s) => (z - s) * self.config.scaling_factor,
            None => z * self.config.scaling_factor,
        }
    }

    pub fn unscale(&self, z: &Tensor) -> Tensor {
        match self.config.shift_factor {
            Some(s) => z / self.config.scaling_factor + s,
            None => z / self.config.scaling_factor,
        }
    }
}

/// An autoencoder with its variables, as loaded from (or saved to) a `vae/` folder.
pub struct VaeModel {
    pub vs: nn::VarStore,
    pub vae: AutoencoderKl,
    pub source: PathBuf,
}

impl VaeModel {
    pub fn build(config: &VaeConfig, device: Device) -> VaeModel {
        let vs = nn::VarStore::new(device);
        let vae = AutoencoderKl::new(&vs.root(), config);
        VaeModel {
            vs,
            vae,
            source: PathBuf::new(),
        }
    }

    /// A diffusers `vae/` folder (config.json + diffusion_pytorch_model.safetensors).
    pub fn load(op: &'static str, dir: &Path, device: Device) -> Result<VaeModel> {
        let (dir, cfg, files) = hf::diffusers_folder(op, dir)?;
        let mut m = VaeModel::build(&VaeConfig::from_config(op, &cfg)?, device);
        hf::load_weights(op, &m.vs, &files, NameRules::default())?;
        m.source = dir;
        Ok(m)
    }

    pub fn save(&self, op: &'static str, dir: &Path) -> Result<()> {
        hf::save_diffusers(op, &self.vs, &self.vae.config.to_json(), dir)
    }
}

impl VaeModel {
    /// Images in [0, 1] (N×3×H×W) → scaled latents: the posterior mean,
    /// or a posterior sample. Computes in `kind`; returns float32.
    pub fn encode_images(
        &self,
        op: &'static str,
        images: &Tensor,
        sample: bool,
        noise: &mut Noise,
        kind: Kind,
    ) -> Result<Tensor> {
        self.vae.check_images(op, images)?;
        let device = self.vs.device();
        let x = (images.to_device(device).to_kind(Kind::Float) * 2.0 - 1.0).to_kind(kind);
        let dist = tch::no_grad(|| self.vae.encode(&x, false));
        let mean = dist.mean.to_kind(Kind::Float);
        let z = if sample {
            let eps = noise.draw(op, &mean)?;
            mean + dist.std().to_kind(Kind::Float) * eps
        } else {
            mean
        };
        Ok(self.vae.scale(&z))
    }

    /// Scaled latents → images in [0, 1] (N×3×H×W, float32, on the CPU).
    pub fn decode_latents(&self, op: &'static str, z: &Tensor, kind: Kind) -> Result<Tensor> {
        self.vae.check_latents(op, z)?;
        let z = self
            .vae
            .unscale(&z.to_device(self.vs.device()).to_kind(Kind::Float));
        let x = tch::no_grad(|| self.vae.decode(&z.to_kind(kind), false));
        Ok((x.to_kind(Kind::Float) / 2.0 + 0.5)
            .clamp(0.0, 1.0)
            .to_device(Device::Cpu))
    }
}

/// How [`train_autoencoder`] trains.
pub struct AutoencoderTraining {
    pub config: VaeConfig,
    /// Weight of the KL term as Stable Diffusion's autoencoder weighs it
    /// (1e-6 on the per-image sum, against the per-image sum of the L1 and
    /// perceptual terms); here both sides are divided by the pixel count.
    pub kl_weight: f64,
    pub perceptual_weight: f64,
    pub val_split: f64,
    pub train: TrainConfig,
    pub device: Device,
}

/// Trains a KL autoencoder of Stable Diffusion's design on images in
/// [0, 1]: L1 + perceptual (a fixed random ResNet18's first stages, as
/// [`PerceptualLoss::beliy_random`]) on the decoded posterior sample, plus
/// the KL term. Afterwards the scaling factor is set to 1 / std of the
/// training latents, as Stable Diffusion's 0.18215 was chosen.
pub fn train_autoencoder(
    op: &'static str,
    images: &Tensor,
    o: &AutoencoderTraining,
) -> Result<(VaeModel, History)> {
    let s = images.size();
    let mut config = o.config.clone();
    if s.len() != 4 || s[1] != 3 || s[2] != s[3] || s[2] % config.downscale() != 0 || s[0] < 2 {
        return Err(Error::shape(
            op,
            "images",
            format!(
                "N×3×S×S with N ≥ 2 and S a multiple of {} (the autoencoder's downscale)",
                config.downscale()
            ),
            shape_text(&s),
        ));
    }
    if !(0.0..1.0).contains(&o.val_split) {
        return Err(Error::invalid(
            op,
            format!("val_split must be in [0, 1), got {}", o.val_split),
        ));
    }
    config.sample_size = s[2];
    let (train_idx, val_idx) = split_rows(s[0], o.val_split, o.train.seed.unwrap_or(0));
    let x = tc(op, images.f_to_kind(Kind::Float))?.to_device(o.device) * 2.0 - 1.0;
    let model = VaeModel::build(&config, o.device);
    let perceptual = PerceptualLoss::beliy_random(op, o.device, 0)?;
    let pixels = (3 * s[2] * s[3]) as f64;
    let vae = &model.vae;
    let loss_of = |x: &Tensor, train: bool| -> Result<(Tensor, Tensor)> {
        let dist = vae.encode(x, train);
        let z = dist.sample_with(&dist.mean.randn_like());
        let rec = vae.decode(&z, train);
        let l1 = (&rec - x).abs().mean(Kind::Float);
        let p = perceptual.loss(op, &((&rec + 1.0) / 2.0), &((x + 1.0) / 2.0))?;
        let kl = dist.kl().mean(Kind::Float) / pixels;
        Ok((&l1 + p * o.perceptual_weight + kl * o.kl_weight, l1))
    };
    let train_x = x.index_select(0, &train_idx.to_device(o.device));
    let val_x = (val_idx.numel() > 0).then(|| x.index_select(0, &val_idx.to_device(o.device)));
    let mut task = LossTask {
        vs: &model.vs,
        n_train: train_x.size()[0],
        loss: |batch: &[i64]| {
            let i = Tensor::from_slice(batch).to_device(o.device);
            Ok(loss_of(&train_x.index_select(0, &i), true)?.0)
        },
        validate: || {
            let Some(v) = &val_x else { return Ok(None) };
            let (loss, l1) = tch::no_grad(|| loss_of(v, false))?;
            Ok(Some(
                Metrics::new()
                    .with("loss", loss.double_value(&[]))
                    .with("l1", l1.double_value(&[])),
            ))
        },
    };
    let history = fit(&mut task, &o.train)?;
    // 1 / std of the training latents: diffusion then sees unit-variance inputs.
    let std = tch::no_grad(|| {
        let parts: Vec<Tensor> = (0..train_x.size()[0])
            .step_by(32)
            .map(|start| {
                let len = 32.min(train_x.size()[0] - start);
                vae.encode(&train_x.narrow(0, start, len), false).mean
            })
            .collect();
        Tensor::cat(&parts, 0).std(true).double_value(&[])
    });
    let mut model = model;
    model.vae.config.scaling_factor = if std > 1e-8 { 1.0 / std } else { 1.0 };
    Ok((model, history))
}

/// A seeded split of `n` rows into training and validation positions.
pub fn split_rows(n: i64, val_split: f64, seed: i64) -> (Tensor, Tensor) {
    let mut order: Vec<i64> = (0..n).collect();
    let mut rng = crate::random::SplitMix64::new(seed as u64 ^ 0x5eed_d1ff);
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let n_val = ((n as f64 * val_split).round() as i64)
        .min(n - 1)
        .max(if val_split > 0.0 { 1 } else { 0 });
    let (val, train) = order.split_at(n_val as usize);
    (Tensor::from_slice(train), Tensor::from_slice(val))
}
