//! The elementary layers: linear, convolutions, normalisations, embeddings and
//! activation functions, with PyTorch's default initialisation and parameter
//! names (`weight`, `bias`).

use tch::nn::{self, Module};
use tch::Tensor;

use crate::error::{Error, Result};

/// The sub-path at a dotted name ("attention.self.query"): tch's `/`
/// takes one component at a time.
pub fn at<'a>(p: &nn::Path<'a>, dotted: &str) -> nn::Path<'a> {
    let mut parts = dotted.split('.');
    let first = parts.next().unwrap_or(dotted);
    parts.fold(p.sub(first), |path, part| path.sub(part))
}

/// A linear layer `y = x Wᵀ + b` (torch.nn.Linear: weight out×in).
pub fn linear(p: &nn::Path, c_in: i64, c_out: i64, bias: bool) -> nn::Linear {
    nn::linear(
        p,
        c_in,
        c_out,
        nn::LinearConfig {
            bias,
            ..Default::default()
        },
    )
}

/// A 2-D convolution (torch.nn.Conv2d: weight out×in×k×k).
pub fn conv2d(
    p: &nn::Path,
    c_in: i64,
    c_out: i64,
    kernel: i64,
    stride: i64,
    padding: i64,
    bias: bool,
) -> nn::Conv2D {
    nn::conv2d(
        p,
        c_in,
        c_out,
        kernel,
        nn::ConvConfig {
            stride,
            padding,
            bias,
            ..Default::default()
        },
    )
}

/// A 1-D convolution (torch.nn.Conv1d: weight out×in×k).
pub fn conv1d(
    p: &nn::Path,
    c_in: i64,
    c_out: i64,
    kernel: i64,
    stride: i64,
    padding: i64,
    bias: bool,
) -> nn::Conv1D {
    nn::conv1d(
        p,
        c_in,
        c_out,
        kernel,
        nn::ConvConfig {
            stride,
            padding,
            bias,
            ..Default::default()
        },
    )
}

/// Layer normalisation over the last dimension (torch.nn.LayerNorm).
pub fn layer_norm(p: &nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![dim],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}

/// Group normalisation over channels (torch.nn.GroupNorm, affine).
pub fn group_norm(p: &nn::Path, groups: i64, channels: i64, eps: f64) -> nn::GroupNorm {
    nn::group_norm(
        p,
        groups,
        channels,
        nn::GroupNormConfig {
            eps,
            ..Default::default()
        },
    )
}

/// Batch normalisation over the channels of N×C×H×W (`nd` 2) or N×C (`nd`
/// 1) inputs as torch.nn.BatchNorm2d/1d initialises it: weight 1, bias 0,
/// running mean 0 and variance 1, momentum 0.1, eps 1e-5. (tch's own
/// default draws the weight from U(0, 1).)
pub fn batch_norm(p: &nn::Path, nd: usize, channels: i64) -> nn::BatchNorm {
    batch_norm_with(p, nd, channels, 1e-5, 0.1, nn::Init::Const(1.0))
}

/// [`batch_norm`] with a chosen eps, momentum (PyTorch's convention: the
/// weight of the newest batch in the running statistics; Keras' `momentum`
/// m is PyTorch's 1 − m) and initial weight (bias 0).
pub fn batch_norm_with(
    p: &nn::Path,
    nd: usize,
    channels: i64,
    eps: f64,
    momentum: f64,
    weight_init: nn::Init,
) -> nn::BatchNorm {
    let config = nn::BatchNormConfig {
        ws_init: weight_init,
        eps,
        momentum,
        ..Default::default()
    };
    if nd == 1 {
        nn::batch_norm1d(p, channels, config)
    } else {
        nn::batch_norm2d(p, channels, config)
    }
}

/// torch.nn.functional.leaky_relu with a chosen slope in (0, 1) (tch's
/// `leaky_relu` has PyTorch's default 0.01 only): max(x, slope·x).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    x.maximum(&(x * slope))
}

/// A lookup table (torch.nn.Embedding, N(0, 1) initialisation).
pub fn embedding(p: &nn::Path, count: i64, dim: i64) -> nn::Embedding {
    nn::embedding(p, count, dim, Default::default())
}

/// Dropout that costs nothing when it does nothing: libtorch's dropout in
/// training mode draws a mask even for p = 0 (measured: a 6-layer encoder's
/// training step was much slower than PyTorch's, whose modules skip it).
pub fn dropout(x: Tensor, p: f64, train: bool) -> Tensor {
    if train && p > 0.0 {
        x.dropout(p, true)
    } else {
        x
    }
}

/// The activation functions the reference configs name (`hidden_act`,
/// `act_fn`), with their exact formulas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// x·Φ(x) with the exact normal CDF (transformers "gelu").
    Gelu,
    /// The tanh approximation ("gelu_new", "gelu_pytorch_tanh", "gelu_fast").
    GeluTanh,
    /// x·σ(1.702x), OpenAI CLIP's "quick_gelu".
    QuickGelu,
    Relu,
    /// x·σ(x) ("silu", "swish").
    Silu,
    Tanh,
    /// diffusers' GEGLU gate: the input's first half times gelu of its
    /// second half (the feed-forward's first projection is twice as wide).
    Geglu,
}

impl Activation {
    /// The activation a config string names; `op` and `what` go into the error.
    pub fn parse(op: &'static str, what: &str, name: &str) -> Result<Activation> {
        Ok(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "quick_gelu" => Activation::QuickGelu,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            "tanh" => Activation::Tanh,
            other => {
                return Err(Error::invalid(
                    op,
                    format!(
                        "{what}: unknown activation \"{other}\" (known: gelu, gelu_new, \
                         gelu_pytorch_tanh, quick_gelu, relu, silu, swish, tanh)"
                    ),
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_pytorch_tanh",
            Activation::QuickGelu => "quick_gelu",
            Activation::Relu => "relu",
            Activation::Silu => "silu",
            Activation::Tanh => "tanh",
            Activation::Geglu => "geglu",
        }
    }

    /// How many times wider than its output the activation's input is.
    pub fn input_factor(self) -> i64 {
        if self == Activation::Geglu {
            2
        } else {
            1
        }
    }

    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Gelu => x.gelu("none"),
            Activation::GeluTanh => x.gelu("tanh"),
            Activation::QuickGelu => x * (x * 1.702).sigmoid(),
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
            Activation::Tanh => x.tanh(),
            Activation::Geglu => {
                let half = x.size().last().copied().unwrap_or(0) / 2;
                x.narrow(-1, 0, half) * x.narrow(-1, half, half).gelu("none")
            }
        }
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.apply(x)
    }
}

/// A batch norm applied with the statistics of the batch it is given, as
/// in training, but leaving its running statistics untouched: a frozen
/// network that Keras 2 (before TensorFlow 2) still ran in training mode,
/// since its `trainable = False` froze the weights only. cuDNN allowed, as
/// tch's own batch norm allows it (the same kernel as a training pass on CUDA).
pub fn batch_norm_frozen_batch_stats(bn: &nn::BatchNorm, x: &Tensor, eps: f64) -> Tensor {
    Tensor::batch_norm(
        x,
        bn.ws.as_ref(),
        bn.bs.as_ref(),
        None::<&Tensor>,
        None::<&Tensor>,
        true,
        0.0,
        eps,
        true,
    )
}
