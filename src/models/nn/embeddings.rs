//! Position and timestep embeddings: fixed sinusoids (1-D as in "Attention
//! is all you need", 2-D sin-cos grids as MAE and DC-MAE use), learned
//! position tables, and diffusers' timestep embedding with its MLP.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::layers::{embedding, linear, Activation};

/// Sinusoids of `positions` (length N) in `dim` channels: the first half
/// sin(p·ω_i), the second cos(p·ω_i), ω_i = 10000^(−i/(dim/2)) — MAE's
/// `get_1d_sincos_pos_embed_from_grid`, computed in float64. N×dim, float32.
pub fn sincos_1d(dim: i64, positions: &[f64]) -> Tensor {
    let half = (dim / 2) as usize;
    let mut out = vec![0f64; positions.len() * dim as usize];
    for (n, &p) in positions.iter().enumerate() {
        for i in 0..half {
            let omega = 1.0 / 10000f64.powf(i as f64 / half as f64);
            out[n * dim as usize + i] = (p * omega).sin();
            out[n * dim as usize + half + i] = (p * omega).cos();
        }
    }
    Tensor::from_slice(&out)
        .view([positions.len() as i64, dim])
        .to_kind(Kind::Float)
}

/// MAE's `get_2d_sincos_pos_embed(dim, grid, cls_token)`: for patch (row h,
/// column w) in row-major order, the first dim/2 channels encode w and the
/// last dim/2 encode h; with `cls_token` a row of zeros comes first.
/// (grid² [+1])×dim, float32.
pub fn sincos_2d(dim: i64, grid: i64, cls_token: bool) -> Tensor {
    let (mut ws, mut hs) = (Vec::new(), Vec::new());
    for h in 0..grid {
        for w in 0..grid {
            ws.push(w as f64);
            hs.push(h as f64);
        }
    }
    let emb = Tensor::cat(&[sincos_1d(dim / 2, &ws), sincos_1d(dim / 2, &hs)], 1);
    if cls_token {
        Tensor::cat(
            &[Tensor::zeros([1, dim], (Kind::Float, Device::Cpu)), emb],
            0,
        )
    } else {
        emb
    }
}

/// diffusers' `get_timestep_embedding`: t (N, float) → N×dim sinusoids with
/// frequencies exp(−ln(max_period)·i/(dim/2 − shift)); sin then cos, or cos
/// then sin when `flip_sin_to_cos` (Stable Diffusion's UNet: flip, shift 0).
pub fn timestep_sinusoid(
    t: &Tensor,
    dim: i64,
    flip_sin_to_cos: bool,
    shift: f64,
    max_period: f64,
) -> Tensor {
    let half = dim / 2;
    let exponent = Tensor::arange(half, (Kind::Float, t.device())) * (-(max_period.ln()))
        / (half as f64 - shift);
    let args = t.to_kind(Kind::Float).unsqueeze(1) * exponent.exp().unsqueeze(0);
    let (sin, cos) = (args.sin(), args.cos());
    let emb = if flip_sin_to_cos {
        Tensor::cat(&[cos, sin], -1)
    } else {
        Tensor::cat(&[sin, cos], -1)
    };
    if dim % 2 == 1 {
        emb.constant_pad_nd([0, 1])
    } else {
        emb
    }
}

/// diffusers' TimestepEmbedding: linear_1 → SiLU → linear_2.
#[derive(Debug)]
pub struct TimestepEmbedding {
    linear_1: nn::Linear,
    linear_2: nn::Linear,
    act: Activation,
}

impl TimestepEmbedding {
    pub fn new(p: &nn::Path, c_in: i64, dim: i64) -> TimestepEmbedding {
        TimestepEmbedding {
            linear_1: linear(&(p / "linear_1"), c_in, dim, true),
            linear_2: linear(&(p / "linear_2"), dim, dim, true),
            act: Activation::Silu,
        }
    }
}

impl Module for TimestepEmbedding {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.linear_2
            .forward(&self.act.apply(&self.linear_1.forward(x)))
    }
}

/// A learned table of position vectors (BERT's and CLIP's
/// `position_embedding(s)`): positions 0..L → L×dim.
pub struct LearnedPositions {
    table: nn::Embedding,
    pub max_positions: i64,
}

impl LearnedPositions {
    pub fn new(p: &nn::Path, max_positions: i64, dim: i64) -> LearnedPositions {
        LearnedPositions {
            table: embedding(p, max_positions, dim),
            max_positions,
        }
    }

    /// The first `len` positions, 1×len×dim.
    pub fn first(&self, len: i64) -> Tensor {
        let ids = Tensor::arange(len, (Kind::Int64, self.table.ws.device()));
        self.table.forward(&ids).unsqueeze(0)
    }

    pub fn weight(&self) -> &Tensor {
        &self.table.ws
    }
}
