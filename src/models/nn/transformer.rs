//! Transformer blocks: self-attention, optional cross-attention and a
//! feed-forward network, each with a residual connection, normalised before
//! (pre-norm: CLIP, ViT, GPT) or after (post-norm: BERT, BLIP's text
//! decoder) the sub-layer.

use tch::nn::{self, Module};
use tch::Tensor;

use super::attention::{AttentionConfig, AttentionNames, KvCache, MultiHeadAttention};
use super::layers::{at, dropout, layer_norm, linear, Activation};

/// Where a block's parts live, relative to the block's path.
#[derive(Debug, Clone, Copy)]
pub struct BlockNames {
    /// Prefix of the self-attention's projections.
    pub self_attn: &'static str,
    pub self_attn_names: AttentionNames,
    pub self_attn_norm: &'static str,
    pub cross_attn: &'static str,
    pub cross_attn_names: AttentionNames,
    pub cross_attn_norm: &'static str,
    pub fc1: &'static str,
    pub fc2: &'static str,
    pub mlp_norm: &'static str,
}

impl BlockNames {
    /// transformers' BertLayer (BLIP's text layers add `crossattention`).
    pub const BERT: BlockNames = BlockNames {
        self_attn: "attention",
        self_attn_names: AttentionNames::BERT,
        self_attn_norm: "attention.output.LayerNorm",
        cross_attn: "crossattention",
        cross_attn_names: AttentionNames::BERT,
        cross_attn_norm: "crossattention.output.LayerNorm",
        fc1: "intermediate.dense",
        fc2: "output.dense",
        mlp_norm: "output.LayerNorm",
    };
    /// transformers' CLIPEncoderLayer.
    pub const CLIP: BlockNames = BlockNames {
        self_attn: "self_attn",
        self_attn_names: AttentionNames::CLIP,
        self_attn_norm: "layer_norm1",
        cross_attn: "cross_attn",
        cross_attn_names: AttentionNames::CLIP,
        cross_attn_norm: "layer_norm_cross",
        fc1: "mlp.fc1",
        fc2: "mlp.fc2",
        mlp_norm: "layer_norm2",
    };
    /// transformers' BlipEncoderLayer (BLIP's vision layers): CLIP's names
    /// with a fused `self_attn.qkv` and `self_attn.projection`.
    pub const BLIP_VISION: BlockNames = BlockNames {
        self_attn_names: AttentionNames::BLIP_VISION,
        cross_attn_names: AttentionNames::BLIP_VISION,
        ..BlockNames::CLIP
    };
    /// diffusers' BasicTransformerBlock (Stable Diffusion's UNet): attn1,
    /// attn2 (cross), and a GEGLU feed-forward `ff.net.0.proj` → `ff.net.2`.
    pub const DIFFUSERS: BlockNames = BlockNames {
        self_attn: "attn1",
        self_attn_names: AttentionNames::DIFFUSERS,
        self_attn_norm: "norm1",
        cross_attn: "attn2",
        cross_attn_names: AttentionNames::DIFFUSERS,
        cross_attn_norm: "norm2",
        fc1: "ff.net.0.proj",
        fc2: "ff.net.2",
        mlp_norm: "norm3",
    };
}

#[derive(Debug, Clone, Copy)]
pub struct BlockConfig {
    pub dim: i64,
    pub heads: i64,
    pub mlp_dim: i64,
    pub act: Activation,
    pub eps: f64,
    /// Normalise before each sub-layer (true) or after its residual sum.
    pub pre_norm: bool,
    /// Width of the context for cross-attention; None: no cross-attention.
    pub cross_dim: Option<i64>,
    /// Dropout on attention probabilities and after each sub-layer (training).
    pub dropout: f64,
    /// Whether the q, k and v projections have a bias (transformers: yes;
    /// diffusers' `attention_bias`: no by default).
    pub qkv_bias: bool,
}

/// The position-wise feed-forward network fc2(act(fc1(x))); with a gated
/// activation (GEGLU) fc1 is twice `hidden` wide and the gate halves it.
pub struct FeedForward {
    fc1: nn::Linear,
    fc2: nn::Linear,
    act: Activation,
}

impl FeedForward {
    pub fn new(p: &nn::Path, fc1: &str, fc2: &str, dim: i64, hidden: i64, act: Activation) -> Self {
        FeedForward {
            fc1: linear(&at(p, fc1), dim, hidden * act.input_factor(), true),
            fc2: linear(&at(p, fc2), hidden, dim, true),
            act,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&self.act.apply(&self.fc1.forward(x)))
    }
}

pub struct TransformerBlock {
    self_attn: MultiHeadAttention,
    self_attn_norm: nn::LayerNorm,
    cross: Option<(MultiHeadAttention, nn::LayerNorm)>,
    mlp: FeedForward,
    mlp_norm: nn::LayerNorm,
    pre_norm: bool,
    dropout: f64,
}

impl TransformerBlock {
    pub fn new(p: &nn::Path, c: BlockConfig, names: BlockNames) -> TransformerBlock {
        let mut ac = AttentionConfig::new(c.dim, c.heads);
        ac.dropout = c.dropout;
        ac.qkv_bias = c.qkv_bias;
        let cross = c.cross_dim.map(|cd| {
            (
                MultiHeadAttention::new(
                    &at(p, names.cross_attn),
                    ac.cross(cd),
                    names.cross_attn_names,
                ),
                layer_norm(&at(p, names.cross_attn_norm), c.dim, c.eps),
            )
        });
        TransformerBlock {
            self_attn: MultiHeadAttention::new(&at(p, names.self_attn), ac, names.self_attn_names),
            self_attn_norm: layer_norm(&at(p, names.self_attn_norm), c.dim, c.eps),
            cross,
            mlp: FeedForward::new(p, names.fc1, names.fc2, c.dim, c.mlp_dim, c.act),
            mlp_norm: layer_norm(&at(p, names.mlp_norm), c.dim, c.eps),
            pre_norm: c.pre_norm,
            dropout: c.dropout,
        }
    }

    /// One residual sub-layer, normalised where the block's style puts it.
    fn residual(
        &self,
        x: &Tensor,
        norm: &nn::LayerNorm,
        train: bool,
        f: impl FnOnce(&Tensor) -> Tensor,
    ) -> Tensor {
        if self.pre_norm {
            x + dropout(f(&norm.forward(x)), self.dropout, train)
        } else {
            norm.forward(&(x + dropout(f(x), self.dropout, train)))
        }
    }

    /// `x`: B×L×dim; `bias`: the self-attention's additive bias; `context`
    /// and `context_bias`: the cross-attention's keys (ignored without one).
    pub fn forward(
        &self,
        x: &Tensor,
        bias: Option<&Tensor>,
        context: Option<&Tensor>,
        context_bias: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let mut h = self.residual(x, &self.self_attn_norm, train, |y| {
            self.self_attn.forward(y, None, bias, train)
        });
        if let (Some((attn, norm)), Some(ctx)) = (&self.cross, context) {
            h = self.residual(&h, norm, train, |y| {
                attn.forward(y, Some(ctx), context_bias, train)
            });
        }
        self.residual(&h, &self.mlp_norm, train, |y| self.mlp.forward(y))
    }

    /// One decoding step (inference, causal self-attention): the new
    /// positions `x` (B×l×dim) attend over the cached earlier ones; the
    /// cross-attention's keys and values of `context` are computed once.
    pub fn forward_step(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
        cache: &mut BlockCache,
    ) -> Tensor {
        let mut h = self.residual(x, &self.self_attn_norm, false, |y| {
            self.self_attn.forward_incremental(y, &mut cache.self_kv)
        });
        if let (Some((attn, norm)), Some(ctx)) = (&self.cross, context) {
            h = self.residual(&h, norm, false, |y| {
                attn.forward_cross_cached(y, ctx, &mut cache.cross_kv)
            });
        }
        self.residual(&h, &self.mlp_norm, false, |y| self.mlp.forward(y))
    }
}

/// What a block keeps between decoding steps.
#[derive(Default)]
pub struct BlockCache {
    pub self_kv: KvCache,
    pub cross_kv: KvCache,
}

/// diffusers' Transformer2DModel over a feature map (Stable Diffusion's
/// spatial transformer): group norm → `proj_in` (1×1 conv, or a linear on
/// the flattened positions with `use_linear_projection`) → BasicTransformer
/// blocks attending over the H·W positions and cross-attending to the
/// context → `proj_out`, plus the input.
pub struct SpatialTransformer {
    norm: nn::GroupNorm,
    proj_in: Projection,
    blocks: Vec<TransformerBlock>,
    proj_out: Projection,
}

enum Projection {
    Conv(nn::Conv2D),
    Linear(nn::Linear),
}

#[derive(Debug, Clone, Copy)]
pub struct SpatialTransformerConfig {
    pub channels: i64,
    pub heads: i64,
    pub layers: i64,
    pub context_dim: i64,
    pub groups: i64,
    pub linear_projection: bool,
    pub dropout: f64,
}

impl SpatialTransformer {
    pub fn new(p: &nn::Path, c: SpatialTransformerConfig) -> SpatialTransformer {
        let proj = |name: &str| {
            if c.linear_projection {
                Projection::Linear(linear(&(p / name), c.channels, c.channels, true))
            } else {
                Projection::Conv(super::layers::conv2d(
                    &(p / name),
                    c.channels,
                    c.channels,
                    1,
                    1,
                    0,
                    true,
                ))
            }
        };
        let block = BlockConfig {
            dim: c.channels,
            heads: c.heads,
            mlp_dim: 4 * c.channels,
            act: Activation::Geglu,
            eps: 1e-5,
            pre_norm: true,
            cross_dim: Some(c.context_dim),
            dropout: c.dropout,
            qkv_bias: false,
        };
        SpatialTransformer {
            norm: super::layers::group_norm(&(p / "norm"), c.groups, c.channels, 1e-6),
            proj_in: proj("proj_in"),
            blocks: (0..c.layers)
                .map(|i| {
                    TransformerBlock::new(
                        &(p / "transformer_blocks" / i),
                        block,
                        BlockNames::DIFFUSERS,
                    )
                })
                .collect(),
            proj_out: proj("proj_out"),
        }
    }

    /// `x`: B×C×H×W; `context`: B×L×context_dim.
    pub fn forward(&self, x: &Tensor, context: &Tensor, train: bool) -> Tensor {
        let s = x.size();
        let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
        let to_tokens = |t: Tensor| t.view([b, c, h * w]).transpose(1, 2);
        let mut t = match &self.proj_in {
            Projection::Conv(conv) => to_tokens(conv.forward(&self.norm.forward(x))),
            Projection::Linear(l) => l.forward(&to_tokens(self.norm.forward(x))),
        };
        for block in &self.blocks {
            t = block.forward(&t, None, Some(context), None, train);
        }
        let to_map = |t: Tensor| t.transpose(1, 2).contiguous().view([b, c, h, w]);
        let y = match &self.proj_out {
            Projection::Conv(conv) => conv.forward(&to_map(t)),
            Projection::Linear(l) => to_map(l.forward(&t)),
        };
        y + x
    }
}
