//! Multi-head scaled dot-product attention, self- and cross-, with an
//! additive bias for padding and causality.
//!
//! One struct serves every architecture; only the names of its four
//! projections differ (see [`AttentionNames`]), or q, k and v are one fused
//! linear (BLIP's and ViT-in-LAVIS' `qkv`, its output split in three). The product itself runs in
//! libtorch's `scaled_dot_product_attention`, the kernel transformers and
//! diffusers call by default ("sdpa").

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::layers::{at, linear};

/// Where the query, key, value and output projections live, relative to the
/// path the attention is built on.
#[derive(Debug, Clone, Copy)]
pub struct AttentionNames {
    pub q: &'static str,
    pub k: &'static str,
    pub v: &'static str,
    pub out: &'static str,
    /// One fused q|k|v linear (weight 3·inner×dim, rows q then k then v)
    /// instead of three: its name; `q`, `k` and `v` are then unused.
    pub qkv: Option<&'static str>,
}

impl AttentionNames {
    /// BERT (and BLIP's text decoder): `self.query`… with the output
    /// projection in `output.dense`.
    pub const BERT: AttentionNames = AttentionNames {
        q: "self.query",
        k: "self.key",
        v: "self.value",
        out: "output.dense",
        qkv: None,
    };
    /// CLIP, ViT in transformers' CLIP/BLIP: `q_proj`, `k_proj`, `v_proj`, `out_proj`.
    pub const CLIP: AttentionNames = AttentionNames {
        q: "q_proj",
        k: "k_proj",
        v: "v_proj",
        out: "out_proj",
        qkv: None,
    };
    /// diffusers' `Attention`: `to_q`, `to_k`, `to_v`, `to_out.0`.
    pub const DIFFUSERS: AttentionNames = AttentionNames {
        q: "to_q",
        k: "to_k",
        v: "to_v",
        out: "to_out.0",
        qkv: None,
    };
    /// BLIP's vision attention: a fused `qkv` and a `projection` output.
    pub const BLIP_VISION: AttentionNames = AttentionNames {
        q: "",
        k: "",
        v: "",
        out: "projection",
        qkv: Some("qkv"),
    };
}

#[derive(Debug, Clone, Copy)]
pub struct AttentionConfig {
    /// Width of the queries (and of the output).
    pub dim: i64,
    pub heads: i64,
    /// Width of one head (dim / heads in transformers; diffusers sets it).
    pub head_dim: i64,
    /// Width of the keys' and values' source: `dim` for self-attention,
    /// the context's width for cross-attention.
    pub context_dim: i64,
    /// Whether q, k and v projections have a bias (transformers: yes;
    /// diffusers: no by default).
    pub qkv_bias: bool,
    pub out_bias: bool,
    /// Dropout on the attention probabilities while training.
    pub dropout: f64,
}

impl AttentionConfig {
    /// Self-attention of `dim` split into `heads`, biases everywhere.
    pub fn new(dim: i64, heads: i64) -> AttentionConfig {
        AttentionConfig {
            dim,
            heads,
            head_dim: dim / heads.max(1),
            context_dim: dim,
            qkv_bias: true,
            out_bias: true,
            dropout: 0.0,
        }
    }

    pub fn cross(mut self, context_dim: i64) -> AttentionConfig {
        self.context_dim = context_dim;
        self
    }
}

/// Keys and values kept between decoding steps, B×heads×L×head_dim each, so
/// that generation attends over earlier positions without recomputing them
/// (transformers' past_key_values).
#[derive(Default)]
pub struct KvCache {
    pub keys: Option<Tensor>,
    pub values: Option<Tensor>,
}

impl KvCache {
    pub fn len(&self) -> i64 {
        self.keys.as_ref().map_or(0, |k| k.size()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the rows `rows` (beam search continuing other beams).
    pub fn reorder(&mut self, rows: &Tensor) {
        self.keys = self.keys.as_ref().map(|k| k.index_select(0, rows));
        self.values = self.values.as_ref().map(|v| v.index_select(0, rows));
    }
}

/// The input projections: three linears, or one fused.
enum Projections {
    Separate {
        q: nn::Linear,
        k: nn::Linear,
        v: nn::Linear,
    },
    Fused {
        qkv: nn::Linear,
        inner: i64,
    },
}

pub struct MultiHeadAttention {
    proj: Projections,
    out: nn::Linear,
    heads: i64,
    head_dim: i64,
    dropout: f64,
}

impl MultiHeadAttention {
    pub fn new(p: &nn::Path, c: AttentionConfig, names: AttentionNames) -> MultiHeadAttention {
        let inner = c.heads * c.head_dim;
        let proj = match names.qkv {
            // A fused projection reads keys and values from the queries' width.
            Some(name) => Projections::Fused {
                qkv: linear(&at(p, name), c.dim, 3 * inner, c.qkv_bias),
                inner,
            },
            None => Projections::Separate {
                q: linear(&at(p, names.q), c.dim, inner, c.qkv_bias),
                k: linear(&at(p, names.k), c.context_dim, inner, c.qkv_bias),
                v: linear(&at(p, names.v), c.context_dim, inner, c.qkv_bias),
            },
        };
        MultiHeadAttention {
            proj,
            out: linear(&at(p, names.out), inner, c.dim, c.out_bias),
            heads: c.heads,
            head_dim: c.head_dim,
            dropout: c.dropout,
        }
    }

    fn split_heads(&self, x: &Tensor) -> Tensor {
        let (b, l) = (x.size()[0], x.size()[1]);
        x.view([b, l, self.heads, self.head_dim]).transpose(1, 2)
    }

    fn project_kv(&self, src: &Tensor) -> (Tensor, Tensor) {
        let (k, v) = match &self.proj {
            Projections::Separate { k, v, .. } => (k.forward(src), v.forward(src)),
            Projections::Fused { qkv, inner } => {
                let part = |i: i64| {
                    let w = qkv.ws.narrow(0, i * inner, *inner);
                    let b = qkv.bs.as_ref().map(|b| b.narrow(0, i * inner, *inner));
                    src.linear(&w, b.as_ref())
                };
                (part(1), part(2))
            }
        };
        (self.split_heads(&k), self.split_heads(&v))
    }

    fn project_q(&self, x: &Tensor) -> Tensor {
        let q = match &self.proj {
            Projections::Separate { q, .. } => q.forward(x),
            Projections::Fused { qkv, inner } => {
                let w = qkv.ws.narrow(0, 0, *inner);
                let b = qkv.bs.as_ref().map(|b| b.narrow(0, 0, *inner));
                x.linear(&w, b.as_ref())
            }
        };
        self.split_heads(&q)
    }

    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, lq: i64) -> Tensor {
        let y = Tensor::scaled_dot_product_attention(q, k, v, bias, 0.0, false, None, false);
        let b = q.size()[0];
        self.out.forward(
            &y.transpose(1, 2)
                .contiguous()
                .view([b, lq, self.heads * self.head_dim]),
        )
    }

    /// Causal self-attention of new positions `x` (B×l×dim) over the cached
    /// earlier ones and themselves (inference); their keys and values join
    /// the cache.
    pub fn forward_incremental(&self, x: &Tensor, cache: &mut KvCache) -> Tensor {
        let lq = x.size()[1];
        let q = self.project_q(x);
        let (k_new, v_new) = self.project_kv(x);
        let (k, v) = match (cache.keys.take(), cache.values.take()) {
            (Some(k), Some(v)) => (Tensor::cat(&[k, k_new], 2), Tensor::cat(&[v, v_new], 2)),
            _ => (k_new, v_new),
        };
        let lk = k.size()[2];
        // Query i (absolute position lk − lq + i) sees keys up to itself.
        let bias = (lq > 1).then(|| {
            let keep = Tensor::ones([lq, lk], (Kind::Bool, x.device())).tril(lk - lq);
            Tensor::zeros([lq, lk], (x.kind(), x.device()))
                .masked_fill(&keep.logical_not(), f32::MIN as f64)
                .view([1, 1, lq, lk])
        });
        let y = self.attend(&q, &k, &v, bias.as_ref(), lq);
        cache.keys = Some(k);
        cache.values = Some(v);
        y
    }

    /// Cross-attention to `context` whose keys and values are projected at
    /// the first call and kept in `cache` (inference).
    pub fn forward_cross_cached(
        &self,
        x: &Tensor,
        context: &Tensor,
        cache: &mut KvCache,
    ) -> Tensor {
        if cache.is_empty() {
            let (k, v) = self.project_kv(context);
            cache.keys = Some(k);
            cache.values = Some(v);
        }
        let q = self.project_q(x);
        match (&cache.keys, &cache.values) {
            (Some(k), Some(v)) => self.attend(&q, k, v, None, x.size()[1]),
            _ => self.forward(x, Some(context), None, false),
        }
    }

    /// `x`: B×Lq×dim queries; `context`: B×Lk×context_dim keys and values
    /// (None: self-attention); `bias`: additive, broadcastable to
    /// B×heads×Lq×Lk (see [`attention_bias`]).
    pub fn forward(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
        bias: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let src = context.unwrap_or(x);
        let (q, k, v) = match &self.proj {
            Projections::Separate { q, k, v } => (q.forward(x), k.forward(src), v.forward(src)),
            Projections::Fused { qkv, inner } if context.is_none() => {
                let y = qkv.forward(x);
                (
                    y.narrow(-1, 0, *inner),
                    y.narrow(-1, *inner, *inner),
                    y.narrow(-1, 2 * *inner, *inner),
                )
            }
            Projections::Fused { qkv, inner } => {
                // Cross-attention through a fused projection: its q rows on
                // the queries, its k and v rows on the context.
                let part = |i: i64, t: &Tensor| {
                    let w = qkv.ws.narrow(0, i * inner, *inner);
                    let b = qkv.bs.as_ref().map(|b| b.narrow(0, i * inner, *inner));
                    t.linear(&w, b.as_ref())
                };
                (part(0, x), part(1, src), part(2, src))
            }
        };
        let (q, k, v) = (
            self.split_heads(&q),
            self.split_heads(&k),
            self.split_heads(&v),
        );
        let p = if train { self.dropout } else { 0.0 };
        let y = Tensor::scaled_dot_product_attention(&q, &k, &v, bias, p, false, None, false);
        let (b, lq) = (x.size()[0], x.size()[1]);
        let y = y
            .transpose(1, 2)
            .contiguous()
            .view([b, lq, self.heads * self.head_dim]);
        self.out.forward(&y)
    }
}

/// The additive attention bias (0 where attending is allowed, the most
/// negative float elsewhere, as transformers builds it) for keys of which
/// `key_padding` (B×Lk, 1 = token, 0 = padding) marks the real ones, and/or a
/// causal order (query i sees keys ≤ i). Shape B×1×Lq×Lk (1×1×Lq×Lk without
/// padding); None when nothing is masked.
pub fn attention_bias(
    key_padding: Option<&Tensor>,
    causal: bool,
    lq: i64,
    kind: Kind,
    device: tch::Device,
) -> Option<Tensor> {
    let mut keep: Option<Tensor> = None;
    if let Some(m) = key_padding {
        let (b, lk) = (m.size()[0], m.size()[1]);
        let k = m.ne(0).view([b, 1, 1, lk]).expand([b, 1, lq, lk], false);
        keep = Some(k);
    }
    if causal {
        let lk = key_padding.map(|m| m.size()[1]).unwrap_or(lq);
        let c = Tensor::ones([lq, lk], (Kind::Bool, device))
            .tril(lk - lq)
            .view([1, 1, lq, lk]);
        keep = Some(match keep {
            Some(k) => k.logical_and(&c),
            None => c,
        });
    }
    let min = match kind {
        Kind::Double => f64::MIN,
        Kind::Half => -65504.0,
        Kind::BFloat16 => -3.3895313892515355e38,
        _ => f32::MIN as f64,
    };
    keep.map(|k| Tensor::zeros(k.size(), (kind, device)).masked_fill(&k.logical_not(), min))
}

/// diffusers' `Attention` as the VAE's mid-block uses it: group norm, one
/// head self-attention over the H·W positions (all projections biased),
/// plus the input.
pub struct SpatialSelfAttention {
    group_norm: tch::nn::GroupNorm,
    attn: MultiHeadAttention,
}

impl SpatialSelfAttention {
    pub fn new(p: &nn::Path, channels: i64, groups: i64, eps: f64) -> SpatialSelfAttention {
        SpatialSelfAttention {
            group_norm: super::layers::group_norm(&(p / "group_norm"), groups, channels, eps),
            attn: MultiHeadAttention::new(
                p,
                AttentionConfig::new(channels, 1),
                AttentionNames::DIFFUSERS,
            ),
        }
    }

    /// `x`: B×C×H×W.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let s = x.size();
        let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
        let t = self
            .group_norm
            .forward(x)
            .view([b, c, h * w])
            .transpose(1, 2);
        let y = self.attn.forward(&t, None, None, false);
        y.transpose(1, 2).contiguous().view([b, c, h, w]) + x
    }
}
