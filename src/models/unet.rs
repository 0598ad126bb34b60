//! Stable Diffusion's denoiser in diffusers' `UNet2DConditionModel` layout:
//! a timestep embedding (plus an optional class embedding added to it), down
//! blocks of residual blocks with or without spatial transformers that
//! cross-attend to the context, a middle block, and up blocks that take the
//! down path's states as skips. Every block is built from `models::nn`; the
//! parameter names are diffusers', so a `unet/` folder loads as it is.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::hf::{self, Config, NameRules};
use super::nn::{conv2d, group_norm, timestep_sinusoid, TimestepEmbedding};
use super::nn::{Downsample2d, ResnetBlock2d, ResnetBlockConfig, Upsample2d};
use super::nn::{SpatialTransformer, SpatialTransformerConfig};
use crate::error::{Error, Result};
use crate::tensor::shape_text;

/// How the optional class conditioning enters the timestep embedding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClassEmbedding {
    /// `class_embed_type: "projection"`: a TimestepEmbedding MLP of a
    /// B×`input_dim` vector (Sun et al.'s fMRI embedding, image embeddings).
    Projection { input_dim: i64 },
    /// `class_embed_type: "timestep"`: the labels are scalars embedded like
    /// the timestep.
    Timestep,
}

#[derive(Debug, Clone)]
pub struct UnetConfig {
    pub in_channels: i64,
    pub out_channels: i64,
    pub block_out_channels: Vec<i64>,
    /// Per block: whether it has spatial transformers (CrossAttn*Block2D).
    pub down_attention: Vec<bool>,
    pub up_attention: Vec<bool>,
    pub mid_block: bool,
    pub layers_per_block: Vec<i64>,
    pub transformer_layers_per_block: Vec<i64>,
    /// Heads per block (diffusers' `num_attention_heads`, or its older name
    /// `attention_head_dim`, which counts heads too).
    pub heads: Vec<i64>,
    pub cross_attention_dim: i64,
    pub norm_num_groups: i64,
    pub norm_eps: f64,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
    pub downsample_padding: i64,
    pub use_linear_projection: bool,
    pub class_embedding: Option<ClassEmbedding>,
    pub sample_size: i64,
    pub dropout: f64,
}

impl UnetConfig {
    pub fn from_config(op: &'static str, c: &Config) -> Result<UnetConfig> {
        // Settings of UNet2DConditionModel that change the computation and
        // that this implementation does not have: refused, not ignored.
        for key in [
            "addition_embed_type",
            "time_cond_proj_dim",
            "encoder_hid_dim",
            "encoder_hid_dim_type",
            "num_class_embeds",
            "time_embedding_dim",
            "time_embedding_act_fn",
            "timestep_post_act",
            "mid_block_only_cross_attention",
        ] {
            c.only(op, key, &[])?;
        }
        c.only(op, "only_cross_attention", &[json!(false)])?;
        c.only(op, "dual_cross_attention", &[json!(false)])?;
        c.only(op, "center_input_sample", &[json!(false)])?;
        c.only(op, "class_embeddings_concat", &[json!(false)])?;
        c.only(op, "resnet_time_scale_shift", &[json!("default")])?;
        c.only(op, "time_embedding_type", &[json!("positional")])?;
        c.only(op, "attention_type", &[json!("default")])?;
        c.only(op, "act_fn", &[json!("silu")])?;
        c.only(op, "conv_in_kernel", &[json!(3)])?;
        c.only(op, "conv_out_kernel", &[json!(3)])?;
        c.only(op, "mid_block_scale_factor", &[json!(1), json!(1.0)])?;
        c.only(op, "resnet_out_scale_factor", &[json!(1), json!(1.0)])?;
        c.only(op, "resnet_skip_time_act", &[json!(false)])?;
        c.only(op, "reverse_transformer_layers_per_block", &[])?;
        let block_out_channels = c.ints(op, "block_out_channels", &[320, 640, 1280, 1280])?;
        let n = block_out_channels.len();
        let down = c.strs(
            op,
            "down_block_types",
            &[
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ],
        )?;
        let up = c.strs(
            op,
            "up_block_types",
            &[
                "UpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
            ],
        )?;
        let kinds = |types: &[String], key: &str, plain: &str, attn: &str| -> Result<Vec<bool>> {
            if types.len() != n {
                return Err(Error::format(
                    op,
                    &c.path,
                    format!(
                        "\"{key}\" lists {} blocks but block_out_channels has {n}",
                        types.len()
                    ),
                ));
            }
            types
                .iter()
                .map(|t| match t.as_str() {
                    s if s == plain => Ok(false),
                    s if s == attn => Ok(true),
                    other => Err(Error::format(
                        op,
                        &c.path,
                        format!("\"{key}\": block type \"{other}\" is not implemented (known: {plain}, {attn})"),
                    )),
                })
                .collect()
        };
        let down_attention = kinds(
            &down,
            "down_block_types",
            "DownBlock2D",
            "CrossAttnDownBlock2D",
        )?;
        let up_attention = kinds(&up, "up_block_types", "UpBlock2D", "CrossAttnUpBlock2D")?;
        let mid_block = match c.value.get("mid_block_type") {
            None => true,
            Some(Value::Null) => false,
            Some(v) if v == "UNetMidBlock2DCrossAttn" => true,
            Some(v) => {
                return Err(Error::format(
                    op,
                    &c.path,
                    format!("\"mid_block_type\" {v} is not implemented (known: UNetMidBlock2DCrossAttn, null)"),
                ))
            }
        };
        let head_key = if c.has("num_attention_heads") {
            "num_attention_heads"
        } else {
            "attention_head_dim"
        };
        let heads = c.ints_per(op, head_key, n, 8)?;
        let class_embedding = match c.str_or(op, "class_embed_type", "")?.as_str() {
            "" => None,
            "projection" => Some(ClassEmbedding::Projection {
                input_dim: c.int(op, "projection_class_embeddings_input_dim")?,
            }),
            "timestep" => Some(ClassEmbedding::Timestep),
            other => {
                return Err(Error::format(
                    op,
                    &c.path,
                    format!("\"class_embed_type\" \"{other}\" is not implemented (known: projection, timestep, null)"),
                ))
            }
        };
        let cfg = UnetConfig {
            in_channels: c.int_or(op, "in_channels", 4)?,
            out_channels: c.int_or(op, "out_channels", 4)?,
            down_attention,
            up_attention,
            mid_block,
            layers_per_block: c.ints_per(op, "layers_per_block", n, 2)?,
            transformer_layers_per_block: c.ints_per(op, "transformer_layers_per_block", n, 1)?,
            heads,
            cross_attention_dim: c.int_or(op, "cross_attention_dim", 1280)?,
            norm_num_groups: c.int_or(op, "norm_num_groups", 32)?,
            norm_eps: c.float_or(op, "norm_eps", 1e-5)?,
            flip_sin_to_cos: c.bool_or(op, "flip_sin_to_cos", true)?,
            freq_shift: c.float_or(op, "freq_shift", 0.0)?,
            downsample_padding: c.int_or(op, "downsample_padding", 1)?,
            use_linear_projection: c.bool_or(op, "use_linear_projection", false)?,
            class_embedding,
            sample_size: c.int_or(op, "sample_size", 64)?,
            dropout: c.float_or(op, "dropout", 0.0)?,
            block_out_channels,
        };
        cfg.check(op, &c.path)?;
        Ok(cfg)
    }

    fn check(&self, op: &'static str, path: &Path) -> Result<()> {
        for (i, &ch) in self.block_out_channels.iter().enumerate() {
            if ch % self.norm_num_groups != 0 || ch % self.heads[i] != 0 {
                return Err(Error::format(
                    op,
                    path,
                    format!(
                        "block_out_channels[{i}] = {ch} must be a multiple of norm_num_groups {} \
                         and of the block's {} attention heads",
                        self.norm_num_groups, self.heads[i]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The config.json diffusers writes for this architecture.
    pub fn to_json(&self) -> Value {
        let down: Vec<&str> = self
            .down_attention
            .iter()
            .map(|&a| {
                if a {
                    "CrossAttnDownBlock2D"
                } else {
                    "DownBlock2D"
                }
            })
            .collect();
        let up: Vec<&str> = self
            .up_attention
            .iter()
            .map(|&a| if a { "CrossAttnUpBlock2D" } else { "UpBlock2D" })
            .collect();
        let (class_type, class_dim) = match self.class_embedding {
            None => (Value::Null, Value::Null),
            Some(ClassEmbedding::Projection { input_dim }) => {
                (json!("projection"), json!(input_dim))
            }
            Some(ClassEmbedding::Timestep) => (json!("timestep"), Value::Null),
        };
        json!({
            "_class_name": "UNet2DConditionModel",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "block_out_channels": self.block_out_channels,
            "down_block_types": down,
            "up_block_types": up,
            "mid_block_type": if self.mid_block { json!("UNetMidBlock2DCrossAttn") } else { Value::Null },
            "layers_per_block": self.layers_per_block,
            "transformer_layers_per_block": self.transformer_layers_per_block,
            "attention_head_dim": self.heads,
            "cross_attention_dim": self.cross_attention_dim,
            "norm_num_groups": self.norm_num_groups,
            "norm_eps": self.norm_eps,
            "flip_sin_to_cos": self.flip_sin_to_cos,
            "freq_shift": self.freq_shift,
            "downsample_padding": self.downsample_padding,
            "use_linear_projection": self.use_linear_projection,
            "class_embed_type": class_type,
            "projection_class_embeddings_input_dim": class_dim,
            "sample_size": self.sample_size,
            "dropout": self.dropout,
        })
    }

    fn time_embed_dim(&self) -> i64 {
        self.block_out_channels[0] * 4
    }

    fn resnet(&self, c_in: i64, c_out: i64) -> ResnetBlockConfig {
        ResnetBlockConfig {
            temb_dim: Some(self.time_embed_dim()),
            groups: self.norm_num_groups,
            eps: self.norm_eps,
            dropout: self.dropout,
            ..ResnetBlockConfig::new(c_in, c_out)
        }
    }

    fn transformer(&self, channels: i64, block: usize) -> SpatialTransformerConfig {
        SpatialTransformerConfig {
            channels,
            heads: self.heads[block],
            layers: self.transformer_layers_per_block[block],
            context_dim: self.cross_attention_dim,
            groups: self.norm_num_groups,
            linear_projection: self.use_linear_projection,
            dropout: self.dropout,
        }
    }

    /// How much smaller the deepest feature map is than the input.
    pub fn downscale(&self) -> i64 {
        1 << (self.block_out_channels.len() - 1)
    }
}

/// CrossAttnDownBlock2D / DownBlock2D.
struct DownBlock {
    resnets: Vec<ResnetBlock2d>,
    attentions: Vec<SpatialTransformer>,
    downsample: Option<Downsample2d>,
}

/// CrossAttnUpBlock2D / UpBlock2D.
struct UpBlock {
    resnets: Vec<ResnetBlock2d>,
    attentions: Vec<SpatialTransformer>,
    upsample: Option<Upsample2d>,
}

/// UNetMidBlock2DCrossAttn: resnet, transformer, resnet.
struct MidBlock {
    first: ResnetBlock2d,
    attention: SpatialTransformer,
    second: ResnetBlock2d,
}

pub struct Unet {
    conv_in: nn::Conv2D,
    time_embedding: TimestepEmbedding,
    class_embedding: Option<ClassEmbed>,
    down: Vec<DownBlock>,
    mid: Option<MidBlock>,
    up: Vec<UpBlock>,
    conv_norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
    pub config: UnetConfig,
}

enum ClassEmbed {
    Mlp(TimestepEmbedding),
}

impl Unet {
    pub fn new(p: &nn::Path, c: &UnetConfig) -> Unet {
        let chans = &c.block_out_channels;
        let n = chans.len();
        let temb = c.time_embed_dim();
        let mut down = Vec::with_capacity(n);
        let mut out_ch = chans[0];
        for i in 0..n {
            let in_ch = out_ch;
            out_ch = chans[i];
            let bp = p / "down_blocks" / i as i64;
            let layers = c.layers_per_block[i];
            down.push(DownBlock {
                resnets: (0..layers)
                    .map(|j| {
                        let cin = if j == 0 { in_ch } else { out_ch };
                        ResnetBlock2d::new(&(&bp / "resnets" / j), c.resnet(cin, out_ch))
                    })
                    .collect(),
                attentions: if c.down_attention[i] {
                    (0..layers)
                        .map(|j| {
                            SpatialTransformer::new(
                                &(&bp / "attentions" / j),
                                c.transformer(out_ch, i),
                            )
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                downsample: (i + 1 < n).then(|| {
                    Downsample2d::new(
                        &(&bp / "downsamplers" / 0),
                        out_ch,
                        out_ch,
                        c.downsample_padding,
                    )
                }),
            });
        }
        let last = chans[n - 1];
        let mid = c.mid_block.then(|| {
            let mp = p / "mid_block";
            MidBlock {
                first: ResnetBlock2d::new(&(&mp / "resnets" / 0), c.resnet(last, last)),
                attention: SpatialTransformer::new(
                    &(&mp / "attentions" / 0),
                    c.transformer(last, n - 1),
                ),
                second: ResnetBlock2d::new(&(&mp / "resnets" / 1), c.resnet(last, last)),
            }
        });
        let rev: Vec<i64> = chans.iter().rev().copied().collect();
        let mut up = Vec::with_capacity(n);
        let mut out_ch = rev[0];
        for i in 0..n {
            let prev_out = out_ch;
            out_ch = rev[i];
            let in_ch = rev[(i + 1).min(n - 1)];
            let block = n - 1 - i;
            let layers = c.layers_per_block[block] + 1;
            let bp = p / "up_blocks" / i as i64;
            up.push(UpBlock {
                resnets: (0..layers)
                    .map(|j| {
                        let skip = if j == layers - 1 { in_ch } else { out_ch };
                        let cin = if j == 0 { prev_out } else { out_ch };
                        ResnetBlock2d::new(&(&bp / "resnets" / j), c.resnet(cin + skip, out_ch))
                    })
                    .collect(),
                attentions: if c.up_attention[i] {
                    (0..layers)
                        .map(|j| {
                            SpatialTransformer::new(
                                &(&bp / "attentions" / j),
                                c.transformer(out_ch, block),
                            )
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                upsample: (i + 1 < n)
                    .then(|| Upsample2d::new(&(&bp / "upsamplers" / 0), out_ch, out_ch)),
            });
        }
        let class_embedding = c.class_embedding.map(|k| {
            let input = match k {
                ClassEmbedding::Projection { input_dim } => input_dim,
                ClassEmbedding::Timestep => chans[0],
            };
            ClassEmbed::Mlp(TimestepEmbedding::new(
                &(p / "class_embedding"),
                input,
                temb,
            ))
        });
        Unet {
            conv_in: conv2d(&(p / "conv_in"), c.in_channels, chans[0], 3, 1, 1, true),
            time_embedding: TimestepEmbedding::new(&(p / "time_embedding"), chans[0], temb),
            class_embedding,
            down,
            mid,
            up,
            conv_norm_out: group_norm(
                &(p / "conv_norm_out"),
                c.norm_num_groups,
                chans[0],
                c.norm_eps,
            ),
            conv_out: conv2d(&(p / "conv_out"), chans[0], c.out_channels, 3, 1, 1, true),
            config: c.clone(),
        }
    }

    fn sinusoid(&self, t: &Tensor) -> Tensor {
        timestep_sinusoid(
            t,
            self.config.block_out_channels[0],
            self.config.flip_sin_to_cos,
            self.config.freq_shift,
            10000.0,
        )
    }

    /// Checks the inputs of [`Self::forward`] against the config.
    pub fn check_inputs(
        &self,
        op: &'static str,
        sample: &Tensor,
        timesteps: &Tensor,
        context: &Tensor,
        class_labels: Option<&Tensor>,
    ) -> Result<()> {
        let c = &self.config;
        let s = sample.size();
        let f = c.downscale();
        if s.len() != 4
            || s[1] != c.in_channels
            || s[2] % f != 0
            || s[3] % f != 0
            || s[2] == 0
            || s[3] == 0
        {
            return Err(Error::shape(
                op,
                "latents",
                format!("B×{}×H×W with H and W multiples of {f} (the UNet's in_channels and its downsampling)", c.in_channels),
                shape_text(&s),
            ));
        }
        let t = timesteps.size();
        if !(t.is_empty() || t == [s[0]] || t == [1]) {
            return Err(Error::shape(
                op,
                "timesteps",
                format!("one timestep or {}", s[0]),
                shape_text(&t),
            ));
        }
        let x = context.size();
        if x.len() != 3 || x[0] != s[0] || x[2] != c.cross_attention_dim {
            return Err(Error::shape(
                op,
                "conditioning",
                format!(
                    "{}×tokens×{} (the UNet's cross_attention_dim)",
                    s[0], c.cross_attention_dim
                ),
                shape_text(&x),
            ));
        }
        match (c.class_embedding, class_labels) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(Error::invalid(
                op,
                "class labels were given but the UNet has no class embedding",
            )),
            (Some(_), None) => Err(Error::invalid(
                op,
                "the UNet has a class embedding: give class labels",
            )),
            (Some(k), Some(l)) => {
                let want = match k {
                    ClassEmbedding::Projection { input_dim } => vec![s[0], input_dim],
                    ClassEmbedding::Timestep => vec![s[0]],
                };
                if l.size() != want {
                    return Err(Error::shape(
                        op,
                        "class labels",
                        shape_text(&want),
                        shape_text(&l.size()),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The predicted noise (or v, or sample) for `sample` (B×C×H×W) at
    /// `timesteps` (a scalar or B, any numeric kind), attending to
    /// `context` (B×L×cross_attention_dim). Inputs checked by
    /// [`Self::check_inputs`].
    pub fn forward(
        &self,
        sample: &Tensor,
        timesteps: &Tensor,
        context: &Tensor,
        class_labels: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let b = sample.size()[0];
        let t = timesteps
            .to_kind(Kind::Float)
            .reshape([-1])
            .expand([b], false);
        let mut emb = self
            .time_embedding
            .forward(&self.sinusoid(&t).to_kind(sample.kind()));
        if let (Some(ClassEmbed::Mlp(mlp)), Some(labels)) = (&self.class_embedding, class_labels) {
            let input = match self.config.class_embedding {
                Some(ClassEmbedding::Timestep) => self.sinusoid(&labels.to_kind(Kind::Float)),
                _ => labels.shallow_clone(),
            };
            emb = emb + mlp.forward(&input.to_kind(sample.kind()));
        }
        let mut h = self.conv_in.forward(sample);
        let mut skips = vec![h.shallow_clone()];
        for block in &self.down {
            for (j, resnet) in block.resnets.iter().enumerate() {
                h = resnet.forward(&h, Some(&emb), train);
                if let Some(attn) = block.attentions.get(j) {
                    h = attn.forward(&h, context, train);
                }
                skips.push(h.shallow_clone());
            }
            if let Some(d) = &block.downsample {
                h = d.forward(&h);
                skips.push(h.shallow_clone());
            }
        }
        if let Some(m) = &self.mid {
            h = m.first.forward(&h, Some(&emb), train);
            h = m.attention.forward(&h, context, train);
            h = m.second.forward(&h, Some(&emb), train);
        }
        for block in &self.up {
            for (j, resnet) in block.resnets.iter().enumerate() {
                let skip = skips.pop().unwrap_or_else(|| h.shallow_clone());
                h = resnet.forward(&Tensor::cat(&[&h, &skip], 1), Some(&emb), train);
                if let Some(attn) = block.attentions.get(j) {
                    h = attn.forward(&h, context, train);
                }
            }
            if let Some(u) = &block.upsample {
                h = u.forward(&h);
            }
        }
        self.conv_out
            .forward(&self.conv_norm_out.forward(&h).silu())
    }
}

/// A UNet with its variables, as loaded from (or saved to) a `unet/` folder.
pub struct UnetModel {
    pub vs: nn::VarStore,
    pub unet: Unet,
    pub source: PathBuf,
}

impl UnetModel {
    pub fn build(config: &UnetConfig, device: Device) -> UnetModel {
        let vs = nn::VarStore::new(device);
        let unet = Unet::new(&vs.root(), config);
        UnetModel {
            vs,
            unet,
            source: PathBuf::new(),
        }
    }

    /// A diffusers `unet/` folder (config.json + diffusion_pytorch_model.safetensors).
    pub fn load(op: &'static str, dir: &Path, device: Device) -> Result<UnetModel> {
        let (dir, cfg, files) = hf::diffusers_folder(op, dir)?;
        let mut m = UnetModel::build(&UnetConfig::from_config(op, &cfg)?, device);
        hf::load_weights(op, &m.vs, &files, NameRules::default())?;
        m.source = dir;
        Ok(m)
    }

    pub fn save(&self, op: &'static str, dir: &Path) -> Result<()> {
        hf::save_diffusers(op, &self.vs, &self.unet.config.to_json(), dir)
    }
}
