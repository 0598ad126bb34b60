//! Convolutional blocks in diffusers' layout: the residual block with an
//! optional timestep projection, and the ×2 down- and up-sampling layers.
//! Stable Diffusion's VAE and UNet, Beliy's decoder and the GAN generators
//! compose these.

use tch::nn::{self, Module};
use tch::Tensor;

use super::layers::{batch_norm, conv2d, dropout, group_norm, leaky_relu, linear};

#[derive(Debug, Clone, Copy)]
pub struct ResnetBlockConfig {
    pub c_in: i64,
    pub c_out: i64,
    /// Width of the timestep embedding added after the first convolution
    /// (`time_emb_proj`); None: no timestep input (VAE blocks).
    pub temb_dim: Option<i64>,
    pub groups: i64,
    pub eps: f64,
    pub dropout: f64,
    /// diffusers' `output_scale_factor`: (shortcut + h) / factor.
    pub output_scale: f64,
}

impl ResnetBlockConfig {
    pub fn new(c_in: i64, c_out: i64) -> Self {
        ResnetBlockConfig {
            c_in,
            c_out,
            temb_dim: None,
            groups: 32,
            eps: 1e-6,
            dropout: 0.0,
            output_scale: 1.0,
        }
    }
}

/// diffusers' ResnetBlock2D: norm1 → SiLU → conv1 (+ time_emb_proj(SiLU(temb)))
/// → norm2 → SiLU → dropout → conv2, plus the input (through a 1×1
/// `conv_shortcut` when the channel count changes).
pub struct ResnetBlock2d {
    norm1: nn::GroupNorm,
    conv1: nn::Conv2D,
    time_emb_proj: Option<nn::Linear>,
    norm2: nn::GroupNorm,
    conv2: nn::Conv2D,
    shortcut: Option<nn::Conv2D>,
    dropout: f64,
    output_scale: f64,
}

impl ResnetBlock2d {
    pub fn new(p: &nn::Path, c: ResnetBlockConfig) -> ResnetBlock2d {
        ResnetBlock2d {
            norm1: group_norm(&(p / "norm1"), c.groups, c.c_in, c.eps),
            conv1: conv2d(&(p / "conv1"), c.c_in, c.c_out, 3, 1, 1, true),
            time_emb_proj: c
                .temb_dim
                .map(|t| linear(&(p / "time_emb_proj"), t, c.c_out, true)),
            norm2: group_norm(&(p / "norm2"), c.groups, c.c_out, c.eps),
            conv2: conv2d(&(p / "conv2"), c.c_out, c.c_out, 3, 1, 1, true),
            shortcut: (c.c_in != c.c_out)
                .then(|| conv2d(&(p / "conv_shortcut"), c.c_in, c.c_out, 1, 1, 0, true)),
            dropout: c.dropout,
            output_scale: c.output_scale,
        }
    }

    /// `x`: B×c_in×H×W; `temb`: B×temb_dim (used when the block has a projection).
    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>, train: bool) -> Tensor {
        let mut h = self.conv1.forward(&self.norm1.forward(x).silu());
        if let (Some(proj), Some(t)) = (&self.time_emb_proj, temb) {
            h = h + proj.forward(&t.silu()).unsqueeze(-1).unsqueeze(-1);
        }
        let h = dropout(self.norm2.forward(&h).silu(), self.dropout, train);
        let h = self.conv2.forward(&h);
        let skip = match &self.shortcut {
            Some(s) => s.forward(x),
            None => x.shallow_clone(),
        };
        let y = skip + h;
        if self.output_scale == 1.0 {
            y
        } else {
            y / self.output_scale
        }
    }
}

/// diffusers' Downsample2D with a convolution: 3×3, stride 2, padding 1
/// (padding 0 pads right and bottom by one first, as the VAE encoder does).
#[derive(Debug)]
pub struct Downsample2d {
    conv: nn::Conv2D,
    pad_first: bool,
}

impl Downsample2d {
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, padding: i64) -> Downsample2d {
        Downsample2d {
            conv: conv2d(&(p / "conv"), c_in, c_out, 3, 2, padding, true),
            pad_first: padding == 0,
        }
    }
}

impl Module for Downsample2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        if self.pad_first {
            self.conv.forward(&x.constant_pad_nd([0, 1, 0, 1]))
        } else {
            self.conv.forward(x)
        }
    }
}

/// diffusers' Upsample2D with a convolution: nearest-neighbour ×2, then 3×3.
#[derive(Debug)]
pub struct Upsample2d {
    conv: nn::Conv2D,
}

impl Upsample2d {
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64) -> Upsample2d {
        Upsample2d {
            conv: conv2d(&(p / "conv"), c_in, c_out, 3, 1, 1, true),
        }
    }
}

impl Module for Upsample2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        let s = x.size();
        let up = x.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None);
        self.conv.forward(&up)
    }
}

/// A GAN generator's up-block (StackGAN's `upBlock`): nearest-neighbour ×2
/// and a 3×3 convolution ([`Upsample2d`]), batch norm, ReLU.
#[derive(Debug)]
pub struct UpBlock {
    up: Upsample2d,
    norm: nn::BatchNorm,
}

impl UpBlock {
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64) -> UpBlock {
        UpBlock {
            up: Upsample2d::new(p, c_in, c_out),
            norm: batch_norm(&(p / "norm"), 2, c_out),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.up.forward(x).apply_t(&self.norm, train).relu()
    }
}

/// A DCGAN discriminator's down-block: 4×4 convolution with stride 2 and
/// padding 1 (halving the size), batch norm (none in the first block, as
/// DCGAN), LeakyReLU(0.2).
#[derive(Debug)]
pub struct ConvDownBlock {
    conv: nn::Conv2D,
    norm: Option<nn::BatchNorm>,
}

impl ConvDownBlock {
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, norm: bool) -> ConvDownBlock {
        ConvDownBlock {
            conv: conv2d(&(p / "conv"), c_in, c_out, 4, 2, 1, !norm),
            norm: norm.then(|| batch_norm(&(p / "norm"), 2, c_out)),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.conv.forward(x);
        let h = match &self.norm {
            Some(n) => h.apply_t(n, train),
            None => h,
        };
        leaky_relu(&h, 0.2)
    }
}
