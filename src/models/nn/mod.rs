//! Layers written once, named after the Hugging Face modules they mirror.
//!
//! Every network in voxlab composes these (DESIGN.md, "Networks"): a model
//! file holds only its config, its forward pass and its loss. Each layer is a
//! small struct built over a `tch::nn::Path`, so the names of its parameters
//! are the names the reference implementation gives them (`attention.self.query`
//! in BERT, `self_attn.q_proj` in CLIP, `to_q` in diffusers) and weights
//! downloaded from a hub load without renaming.
//!
//! Forward passes take tensors whose shapes the model entry points have
//! already checked against the config, so they use tch's infallible ops; the
//! engine's guard turns anything left into a script error.

pub mod attention;
pub mod conv;
pub mod embeddings;
pub mod layers;
pub mod transformer;

pub use attention::{
    attention_bias, AttentionConfig, AttentionNames, KvCache, MultiHeadAttention,
    SpatialSelfAttention,
};
pub use conv::{
    ConvDownBlock, Downsample2d, ResnetBlock2d, ResnetBlockConfig, UpBlock, Upsample2d,
};
pub use embeddings::{
    sincos_1d, sincos_2d, timestep_sinusoid, LearnedPositions, TimestepEmbedding,
};
pub use layers::{
    at, batch_norm, conv1d, conv2d, dropout, embedding, group_norm, layer_norm, leaky_relu, linear,
    Activation,
};
pub use transformer::{
    BlockCache, BlockConfig, BlockNames, FeedForward, SpatialTransformer, SpatialTransformerConfig,
    TransformerBlock,
};
