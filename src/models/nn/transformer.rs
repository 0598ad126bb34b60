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
}

/// The position-wise feed-forward network fc2(act(fc1(x))).
pub struct FeedForward {
    fc1: nn::Linear,
    fc2: nn::Linear,
    act: Activation,
}

impl FeedForward {
    pub fn new(p: &nn::Path, fc1: &str, fc2: &str, dim: i64, hidden: i64, act: Activation) -> Self {
        FeedForward {
            fc1: linear(&at(p, fc1), dim, hidden, true),
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
