//! CLIP in transformers' `CLIPModel` layout: a causal text transformer and a
//! ViT image transformer (both pre-norm, from `models::nn`), each projected
//! into the shared embedding space, with `CLIPImageProcessor`'s resize,
//! centre crop and normalisation. A ViT-B/32 config.json loads OpenAI's
//! released weights; the text tower alone is Stable Diffusion's text encoder.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::hf::{self, Config, NameRules};
use super::nn::{attention_bias, conv2d, embedding, layer_norm, linear, Activation};
use super::nn::{BlockConfig, BlockNames, TransformerBlock};
use crate::error::{Error, Result};
use crate::io::images::{resize, Filter, Rgb8};
use crate::tensor::{shape_text, tc};

/// One tower's transformer settings (CLIPTextConfig / CLIPVisionConfig).
#[derive(Debug, Clone)]
pub struct TowerConfig {
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

impl TowerConfig {
    fn from_config(op: &'static str, c: &Config, defaults: [i64; 4]) -> Result<TowerConfig> {
        let t = TowerConfig {
            hidden_size: c.int_or(op, "hidden_size", defaults[0])?,
            intermediate_size: c.int_or(op, "intermediate_size", defaults[1])?,
            num_hidden_layers: c.int_or(op, "num_hidden_layers", defaults[2])?,
            num_attention_heads: c.int_or(op, "num_attention_heads", defaults[3])?,
            hidden_act: Activation::parse(
                op,
                "hidden_act",
                &c.str_or(op, "hidden_act", "quick_gelu")?,
            )?,
            layer_norm_eps: c.float_or(op, "layer_norm_eps", 1e-5)?,
        };
        if t.hidden_size <= 0
            || t.num_attention_heads <= 0
            || t.hidden_size % t.num_attention_heads != 0
        {
            return Err(Error::format(
                op,
                &c.path,
                format!(
                    "{}hidden_size {} must be a positive multiple of num_attention_heads {}",
                    c.prefix, t.hidden_size, t.num_attention_heads
                ),
            ));
        }
        Ok(t)
    }

    fn block(&self) -> BlockConfig {
        BlockConfig {
            dim: self.hidden_size,
            heads: self.num_attention_heads,
            mlp_dim: self.intermediate_size,
            act: self.hidden_act,
            eps: self.layer_norm_eps,
            pre_norm: true,
            cross_dim: None,
            dropout: 0.0,
            qkv_bias: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClipTextConfig {
    pub tower: TowerConfig,
    pub vocab_size: i64,
    pub max_position_embeddings: i64,
    pub bos_token_id: i64,
    pub eos_token_id: i64,
    pub pad_token_id: i64,
}

impl ClipTextConfig {
    pub fn from_config(op: &'static str, c: &Config) -> Result<ClipTextConfig> {
        Ok(ClipTextConfig {
            tower: TowerConfig::from_config(op, c, [512, 2048, 12, 8])?,
            vocab_size: c.int_or(op, "vocab_size", 49408)?,
            max_position_embeddings: c.int_or(op, "max_position_embeddings", 77)?,
            bos_token_id: c.int_or(op, "bos_token_id", 49406)?,
            eos_token_id: c.int_or(op, "eos_token_id", 49407)?,
            pad_token_id: c.int_or(op, "pad_token_id", 1)?,
        })
    }

    /// The config.json of a `CLIPTextModel` (transformers' CLIPTextConfig)
    /// with these settings, as Stable Diffusion's `text_encoder/` holds it.
    pub fn to_json(&self) -> Value {
        let t = &self.tower;
        serde_json::json!({
            "architectures": ["CLIPTextModel"],
            "model_type": "clip_text_model",
            "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size,
            "num_hidden_layers": t.num_hidden_layers,
            "num_attention_heads": t.num_attention_heads,
            "hidden_act": t.hidden_act.name(),
            "layer_norm_eps": t.layer_norm_eps,
            "attention_dropout": 0.0,
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.max_position_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ClipVisionConfig {
    pub tower: TowerConfig,
    pub image_size: i64,
    pub patch_size: i64,
    pub num_channels: i64,
}

impl ClipVisionConfig {
    pub fn from_config(op: &'static str, c: &Config) -> Result<ClipVisionConfig> {
        let v = ClipVisionConfig {
            tower: TowerConfig::from_config(op, c, [768, 3072, 12, 12])?,
            image_size: c.int_or(op, "image_size", 224)?,
            patch_size: c.int_or(op, "patch_size", 32)?,
            num_channels: c.int_or(op, "num_channels", 3)?,
        };
        if v.patch_size <= 0 || v.image_size % v.patch_size != 0 {
            return Err(Error::format(
                op,
                &c.path,
                format!(
                    "{}image_size {} is not a multiple of patch_size {}",
                    c.prefix, v.image_size, v.patch_size
                ),
            ));
        }
        Ok(v)
    }
}

/// transformers' CLIPTextTransformer (`text_model.*`).
pub struct ClipText {
    token_embedding: nn::Embedding,
    position_embedding: nn::Embedding,
    layers: Vec<TransformerBlock>,
    final_layer_norm: nn::LayerNorm,
    pub config: ClipTextConfig,
}

impl ClipText {
    pub fn new(p: &nn::Path, c: &ClipTextConfig) -> ClipText {
        let e = p / "embeddings";
        let h = c.tower.hidden_size;
        ClipText {
            token_embedding: embedding(&(&e / "token_embedding"), c.vocab_size, h),
            position_embedding: embedding(
                &(&e / "position_embedding"),
                c.max_position_embeddings,
                h,
            ),
            layers: (0..c.tower.num_hidden_layers)
                .map(|i| {
                    TransformerBlock::new(
                        &(p / "encoder" / "layers" / i),
                        c.tower.block(),
                        BlockNames::CLIP,
                    )
                })
                .collect(),
            final_layer_norm: layer_norm(&(p / "final_layer_norm"), h, c.tower.layer_norm_eps),
            config: c.clone(),
        }
    }

    /// Hidden states after every layer (the last one final-normed, as
    /// transformers' `last_hidden_state`) and the pooled (end-of-text) state.
    /// `ids`, `mask`: B×L int64.
    pub fn forward(&self, ids: &Tensor, mask: Option<&Tensor>) -> (Vec<Tensor>, Tensor) {
        let l = ids.size()[1];
        let positions = Tensor::arange(l, (Kind::Int64, ids.device())).unsqueeze(0);
        let mut x = self.token_embedding.forward(ids) + self.position_embedding.forward(&positions);
        let bias = attention_bias(mask, true, l, x.kind(), x.device());
        let mut states = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            x = layer.forward(&x, bias.as_ref(), None, None, false);
            states.push(x.shallow_clone());
        }
        let last = self.final_layer_norm.forward(&x);
        // transformers: with the legacy eos id 2 the end of text is the
        // largest token id; otherwise the first occurrence of eos_token_id.
        let eos = if self.config.eos_token_id == 2 {
            ids.argmax(-1, false)
        } else {
            ids.eq(self.config.eos_token_id)
                .to_kind(Kind::Int)
                .argmax(-1, false)
        };
        let rows = Tensor::arange(ids.size()[0], (Kind::Int64, ids.device()));
        let pooled = last.index(&[Some(rows), Some(eos)]);
        if let Some(s) = states.last_mut() {
            *s = last;
        }
        (states, pooled)
    }
}

/// transformers' CLIPVisionTransformer (`vision_model.*`).
pub struct ClipVision {
    class_embedding: Tensor,
    patch_embedding: nn::Conv2D,
    position_embedding: nn::Embedding,
    pre_layrnorm: nn::LayerNorm,
    layers: Vec<TransformerBlock>,
    post_layernorm: nn::LayerNorm,
    pub config: ClipVisionConfig,
}

impl ClipVision {
    pub fn new(p: &nn::Path, c: &ClipVisionConfig) -> ClipVision {
        let e = p / "embeddings";
        let h = c.tower.hidden_size;
        let patches = (c.image_size / c.patch_size).pow(2);
        ClipVision {
            class_embedding: e.randn_standard("class_embedding", &[h]),
            patch_embedding: conv2d(
                &(&e / "patch_embedding"),
                c.num_channels,
                h,
                c.patch_size,
                c.patch_size,
                0,
                false,
            ),
            position_embedding: embedding(&(&e / "position_embedding"), patches + 1, h),
            // (sic: transformers' name)
            pre_layrnorm: layer_norm(&(p / "pre_layrnorm"), h, c.tower.layer_norm_eps),
            layers: (0..c.tower.num_hidden_layers)
                .map(|i| {
                    TransformerBlock::new(
                        &(p / "encoder" / "layers" / i),
                        c.tower.block(),
                        BlockNames::CLIP,
                    )
                })
                .collect(),
            post_layernorm: layer_norm(&(p / "post_layernorm"), h, c.tower.layer_norm_eps),
            config: c.clone(),
        }
    }

    /// `pixels`: B×3×S×S, already normalised. Returns the last hidden state
    /// (B×(1+patches)×hidden) and the pooled class token (post-normed).
    pub fn forward(&self, pixels: &Tensor) -> (Tensor, Tensor) {
        let b = pixels.size()[0];
        let patches = self
            .patch_embedding
            .forward(pixels)
            .flatten(2, -1)
            .transpose(1, 2);
        let h = self.config.tower.hidden_size;
        let cls = self
            .class_embedding
            .view([1, 1, h])
            .expand([b, 1, h], false);
        let n = patches.size()[1] + 1;
        let positions = Tensor::arange(n, (Kind::Int64, pixels.device())).unsqueeze(0);
        let x = Tensor::cat(&[cls, patches], 1) + self.position_embedding.forward(&positions);
        let mut x = self.pre_layrnorm.forward(&x);
        for layer in &self.layers {
            x = layer.forward(&x, None, None, None, false);
        }
        let pooled = self.post_layernorm.forward(&x.select(1, 0));
        (x, pooled)
    }
}

/// Which implementation of the resize a processor reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resizer {
    /// transformers ≥ 5's `CLIPImageProcessor`: torchvision's resize of the
    /// 8-bit image (torch's antialiased bicubic in float, clamped and rounded
    /// back to 8 bits).
    Torchvision,
    /// Pillow's `Image.resize` (transformers 4, `CLIPImageProcessorPil`, the
    /// openai `clip` package). The two differ by up to ~0.015 in [0, 1].
    Pil,
}

impl Resizer {
    pub fn parse(op: &'static str, name: &str) -> Result<Resizer> {
        match name {
            "torchvision" => Ok(Resizer::Torchvision),
            "pil" => Ok(Resizer::Pil),
            other => Err(Error::invalid(
                op,
                format!("processor must be \"torchvision\" or \"pil\", got \"{other}\""),
            )),
        }
    }
}

/// CLIPImageProcessor's settings (preprocessor_config.json, or CLIP's
/// defaults for the model's image size).
#[derive(Debug, Clone)]
pub struct Preprocess {
    /// Resize to exactly height×width instead (`size: {height, width}`, as
    /// BlipImageProcessor): no aspect kept, no crop.
    pub exact: Option<(i64, i64)>,
    pub shortest_edge: i64,
    pub crop: (i64, i64),
    pub mean: [f64; 3],
    pub std: [f64; 3],
    pub filter: Filter,
    pub resizer: Resizer,
}

impl Preprocess {
    pub fn defaults(image_size: i64) -> Preprocess {
        Preprocess {
            exact: None,
            shortest_edge: image_size,
            crop: (image_size, image_size),
            mean: [0.48145466, 0.4578275, 0.40821073],
            std: [0.26862954, 0.26130258, 0.27577711],
            filter: Filter::Bicubic,
            resizer: Resizer::Torchvision,
        }
    }

    pub fn read(op: &'static str, dir: &Path, image_size: i64) -> Result<Preprocess> {
        let path = dir.join("preprocessor_config.json");
        let mut p = Preprocess::defaults(image_size);
        if !path.is_file() {
            return Ok(p);
        }
        let c = Config::read(op, &path)?;
        let v = &c.value;
        match v.get("size") {
            Some(Value::Number(n)) => p.shortest_edge = n.as_i64().unwrap_or(image_size),
            Some(Value::Object(m)) => {
                if let Some(s) = m.get("shortest_edge").and_then(Value::as_i64) {
                    p.shortest_edge = s;
                } else if let (Some(h), Some(w)) = (
                    m.get("height").and_then(Value::as_i64),
                    m.get("width").and_then(Value::as_i64),
                ) {
                    p.exact = Some((h, w));
                }
            }
            _ => {}
        }
        match v.get("crop_size") {
            Some(Value::Number(n)) => {
                let s = n.as_i64().unwrap_or(image_size);
                p.crop = (s, s);
            }
            Some(Value::Object(m)) => {
                let get = |k| m.get(k).and_then(Value::as_i64).unwrap_or(image_size);
                p.crop = (get("height"), get("width"));
            }
            _ => {}
        }
        let triple = |key: &str, into: &mut [f64; 3]| -> Result<()> {
            if let Some(a) = v.get(key) {
                let vals: Vec<f64> = a
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default();
                if vals.len() != 3 {
                    return Err(Error::format(
                        op,
                        &path,
                        format!("\"{key}\": expected 3 numbers, got {a}"),
                    ));
                }
                into.copy_from_slice(&vals);
            }
            Ok(())
        };
        if let Some(hw) = p.exact {
            p.crop = hw;
            p.shortest_edge = hw.0.min(hw.1);
        }
        if matches!(
            v.get("image_processor_type").and_then(Value::as_str),
            Some("CLIPImageProcessorPil" | "BlipImageProcessorPil")
        ) {
            p.resizer = Resizer::Pil;
        }
        triple("image_mean", &mut p.mean)?;
        triple("image_std", &mut p.std)?;
        // PIL's resample codes: 0 nearest, 2 bilinear, 3 bicubic, 1 lanczos.
        p.filter = match v.get("resample").and_then(Value::as_i64) {
            Some(0) => Filter::Nearest,
            Some(2) => Filter::Bilinear,
            Some(1) => Filter::Lanczos,
            _ => Filter::Bicubic,
        };
        if p.shortest_edge < p.crop.0.min(p.crop.1) {
            return Err(Error::format(
                op,
                &path,
                format!(
                    "size {} is smaller than crop_size {:?}",
                    p.shortest_edge, p.crop
                ),
            ));
        }
        Ok(p)
    }

    /// Images N×3×H×W in [0, 1] → CLIP's pixel values N×3×crop (with
    /// `exact`, BLIP's: resized to height×width, not cropped): each image
    /// as 8 bits (what the processor sees), resized so its shorter side is
    /// `shortest_edge` (the longer one int(edge·long/short), as
    /// transformers rounds) by the chosen [`Resizer`], centre-cropped,
    /// scaled to [0, 1], normalised.
    pub fn apply(&self, op: &'static str, images: &Tensor) -> Result<Tensor> {
        let s = images.size();
        let (h, w) = (s[2], s[3]);
        let (new_h, new_w) = if let Some(hw) = self.exact {
            hw
        } else if w <= h {
            (
                (self.shortest_edge as f64 * h as f64 / w as f64) as i64,
                self.shortest_edge,
            )
        } else {
            (
                self.shortest_edge,
                (self.shortest_edge as f64 * w as f64 / h as f64) as i64,
            )
        };
        let (ch, cw) = self.crop;
        let (top, left) = ((new_h - ch) / 2, (new_w - cw) / 2);
        let mut out = Vec::with_capacity(s[0] as usize);
        for i in 0..s[0] {
            let img = crate::data::images::to_rgb8(op, &images.get(i))?;
            let resized = match self.resizer {
                Resizer::Pil => rgb8_tensor(
                    op,
                    &resize(&img, new_w as usize, new_h as usize, self.filter),
                )?,
                Resizer::Torchvision => {
                    torchvision_resize(op, &rgb8_tensor(op, &img)?, new_h, new_w, self.filter)?
                }
            };
            out.push(resized.narrow(1, top, ch).narrow(2, left, cw));
        }
        let x = tc(op, Tensor::f_stack(&out, 0))?.to_device(images.device());
        let mean = Tensor::from_slice(&self.mean)
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1])
            .to_device(images.device());
        let std = Tensor::from_slice(&self.std)
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1])
            .to_device(images.device());
        Ok((x - mean) / std)
    }
}

/// torchvision's `resize` of an 8-bit image (given here as k/255 floats):
/// on the CPU it runs libtorch's antialiased kernels on the 8-bit values
/// themselves (bilinear and bicubic have native uint8 paths), so the same
/// kernel runs here on the same bytes.
fn torchvision_resize(
    op: &'static str,
    img: &Tensor,
    h: i64,
    w: i64,
    filter: Filter,
) -> Result<Tensor> {
    let x = (img * 255.0).round().to_kind(Kind::Uint8).unsqueeze(0);
    let y = match filter {
        Filter::Bicubic => tc(op, x.f_internal_upsample_bicubic2d_aa([h, w], false, None, None))?,
        Filter::Bilinear => tc(op, x.f_internal_upsample_bilinear2d_aa([h, w], false, None, None))?,
        Filter::Nearest => tc(op, x.f_upsample_nearest2d([h, w], None, None))?,
        _ => {
            return Err(Error::invalid(
                op,
                "the torchvision processor supports nearest, bilinear and bicubic resampling; use processor \"pil\" for others",
            ))
        }
    };
    Ok(y.squeeze_dim(0).to_kind(Kind::Float) / 255.0)
}

fn rgb8_tensor(op: &'static str, img: &Rgb8) -> Result<Tensor> {
    let t = tc(
        op,
        Tensor::from_slice(&img.pixels).f_view([img.height as i64, img.width as i64, 3]),
    )?;
    Ok(t.permute([2, 0, 1]).to_kind(Kind::Float) / 255.0)
}

/// The networks of a CLIPModel before weights and tokenizer are attached.
struct Architecture {
    vs: nn::VarStore,
    text: ClipText,
    vision: ClipVision,
    text_projection: nn::Linear,
    visual_projection: nn::Linear,
    logit_scale: Tensor,
    projection_dim: i64,
}

/// The whole CLIPModel with its tokenizer and image preprocessing.
pub struct Clip {
    pub vs: nn::VarStore,
    pub text: ClipText,
    pub vision: ClipVision,
    text_projection: nn::Linear,
    visual_projection: nn::Linear,
    pub logit_scale: Tensor,
    pub projection_dim: i64,
    pub raw_config: Value,
    pub tokenizer: tokenizers::Tokenizer,
    pub preprocess: Preprocess,
    pub source: PathBuf,
    /// Tokenizer and preprocessor files as read (written again on save).
    pub side_files: Vec<(String, String)>,
}

const CLIP_NAMES: NameRules = NameRules {
    strip_prefixes: &[],
    ignore: &["position_ids"],
    optional: &[],
};

impl Clip {
    /// The architecture config.json describes, freshly initialised: the
    /// variables are named and shaped as transformers' CLIPModel's.
    fn build(op: &'static str, cfg: &Config, device: Device) -> Result<Architecture> {
        let model_type = cfg.str_or(op, "model_type", "clip")?;
        if model_type != "clip" {
            return Err(Error::format(
                op,
                &cfg.path,
                format!("model_type is \"{model_type}\", not \"clip\""),
            ));
        }
        let text_cfg = ClipTextConfig::from_config(op, &cfg.sub(op, "text_config")?)?;
        let vision_cfg = ClipVisionConfig::from_config(op, &cfg.sub(op, "vision_config")?)?;
        let projection_dim = cfg.int_or(op, "projection_dim", 512)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let text = ClipText::new(&(&root / "text_model"), &text_cfg);
        let vision = ClipVision::new(&(&root / "vision_model"), &vision_cfg);
        let text_projection = linear(
            &(&root / "text_projection"),
            text_cfg.tower.hidden_size,
            projection_dim,
            false,
        );
        let visual_projection = linear(
            &(&root / "visual_projection"),
            vision_cfg.tower.hidden_size,
            projection_dim,
            false,
        );
        let init = cfg.float_or(op, "logit_scale_init_value", 2.6592)?;
        let logit_scale = root.var("logit_scale", &[], nn::Init::Const(init));
        Ok(Architecture {
            vs,
            text,
            vision,
            text_projection,
            visual_projection,
            logit_scale,
            projection_dim,
        })
    }

    /// Names and shapes of the parameters the config.json at `path`
    /// describes (what a weights file for it must hold), sorted by name.
    pub fn layout(op: &'static str, path: &Path) -> Result<Vec<(String, Vec<i64>)>> {
        let a = Clip::build(op, &Config::read(op, path)?, Device::Cpu)?;
        Ok(hf::layout_of(&a.vs))
    }

    /// Reads a model folder, or one file written by [`Clip::save`].
    pub fn load(op: &'static str, path: &Path, device: Device) -> Result<Clip> {
        if super::text::is_single_file(path) && path.is_file() {
            let unpacked = hf::unpack_single(op, path, SINGLE_FORMAT)?;
            let mut clip = Clip::load(op, &unpacked.dir, device)?;
            clip.source = path.to_path_buf();
            return Ok(clip);
        }
        let dir = hf::model_dir(op, path)?;
        let cfg = hf::read_config(op, &dir)?;
        let Architecture {
            vs,
            text,
            vision,
            text_projection,
            visual_projection,
            logit_scale,
            projection_dim,
        } = Clip::build(op, &cfg, device)?;
        let (text_cfg, vision_cfg) = (text.config.clone(), vision.config.clone());
        let files = hf::weight_files(op, &dir, &["model"])?;
        hf::load_weights(op, &vs, &files, CLIP_NAMES)?;
        let mut tokenizer = hf::load_tokenizer(op, &dir, text_cfg.vocab_size)?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: text_cfg.max_position_embeddings as usize,
                ..Default::default()
            }))
            .map_err(|e| Error::format(op, &dir.join("tokenizer.json"), e.to_string()))?;
        let preprocess = Preprocess::read(op, &dir, vision_cfg.image_size)?;
        let side_files = hf::read_side_files(op, &dir, SIDE_FILES)?;
        Ok(Clip {
            vs,
            text,
            vision,
            text_projection,
            visual_projection,
            logit_scale,
            projection_dim,
            raw_config: cfg.value,
            tokenizer,
            preprocess,
            source: dir,
            side_files,
        })
    }

    pub fn parameter_count(&self) -> i64 {
        self.vs.variables().values().map(|t| t.numel() as i64).sum()
    }

    /// Token ids (with start and end of text, cut at the context length)
    /// padded to the longest with the pad id, and the mask.
    pub fn tokenize(&self, op: &'static str, texts: &[String]) -> Result<(Tensor, Tensor)> {
        if texts.is_empty() {
            return Err(Error::invalid(op, "texts is empty: give at least one text"));
        }
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::invalid(op, format!("tokenizer failed: {e}")))?;
        let cut = enc
            .iter()
            .filter(|e| !e.get_overflowing().is_empty())
            .count();
        if cut > 0 {
            eprintln!(
                "warning: {op}: {cut} text(s) longer than CLIP's {} tokens were truncated",
                self.text.config.max_position_embeddings
            );
        }
        let l = enc.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut ids = vec![self.text.config.pad_token_id; enc.len() * l];
        let mut mask = vec![0i64; enc.len() * l];
        for (row, e) in enc.iter().enumerate() {
            for (j, &t) in e.get_ids().iter().enumerate() {
                ids[row * l + j] = t as i64;
                mask[row * l + j] = 1;
            }
        }
        let shape = [enc.len() as i64, l as i64];
        let device = self.vs.device();
        Ok((
            tc(op, Tensor::from_slice(&ids).f_view(shape))?.to_device(device),
            tc(op, Tensor::from_slice(&mask).f_view(shape))?.to_device(device),
        ))
    }

    /// `get_text_features`: projected end-of-text states, N×projection_dim
    /// (not normalised, as transformers returns them).
    pub fn text_features(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        tch::no_grad(|| {
            self.text_projection
                .forward(&self.text.forward(ids, Some(mask)).1)
        })
    }

    /// Checks N×3×S×S pixel values against the vision tower.
    pub fn check_pixels(&self, op: &'static str, pixels: &Tensor) -> Result<()> {
        let s = pixels.size();
        let size = self.vision.config.image_size;
        if s.len() != 4 || s[1] != self.vision.config.num_channels || s[2] != size || s[3] != size {
            return Err(Error::shape(
                op,
                "pixel values",
                format!("N×3×{size}×{size} (the vision tower's image_size)"),
                shape_text(&s),
            ));
        }
        Ok(())
    }

    /// `get_image_features` on preprocessed pixel values, N×projection_dim.
    pub fn image_features(&self, pixels: &Tensor) -> Tensor {
        tch::no_grad(|| {
            self.visual_projection
                .forward(&self.vision.forward(pixels).1)
        })
    }

    /// Images in [0, 1] (N×3×H×W, any size) → preprocessed → features.
    pub fn embed_images(&self, op: &'static str, images: &Tensor, batch: usize) -> Result<Tensor> {
        self.embed_images_with(op, images, batch, &self.preprocess)
    }

    /// [`Self::embed_images`] with other preprocessing settings.
    pub fn embed_images_with(
        &self,
        op: &'static str,
        images: &Tensor,
        batch: usize,
        pre: &Preprocess,
    ) -> Result<Tensor> {
        let n = images.size()[0];
        if n == 0 {
            return Err(Error::invalid(op, "images is empty"));
        }
        let mut parts = Vec::new();
        let mut start = 0;
        while start < n {
            let len = (batch as i64).min(n - start);
            let pixels = pre.apply(op, &images.narrow(0, start, len))?;
            let pixels = pixels.to_device(self.vs.device());
            self.check_pixels(op, &pixels)?;
            parts.push(self.image_features(&pixels));
            start += len;
        }
        tc(op, Tensor::f_cat(&parts, 0))
    }

    /// Texts → features, in batches.
    pub fn embed_text(&self, op: &'static str, texts: &[String], batch: usize) -> Result<Tensor> {
        let mut parts = Vec::new();
        for chunk in texts.chunks(batch.max(1)) {
            let (ids, mask) = self.tokenize(op, chunk)?;
            parts.push(self.text_features(&ids, &mask));
        }
        if parts.is_empty() {
            return Err(Error::invalid(op, "texts is empty: give at least one text"));
        }
        tc(op, Tensor::f_cat(&parts, 0))
    }

    /// CLIP's image–text logits: exp(logit_scale)·cos(image, text), images × texts.
    pub fn logits(&self, image_features: &Tensor, text_features: &Tensor) -> Tensor {
        let i = super::text::l2_normalize(image_features);
        let t = super::text::l2_normalize(text_features);
        i.matmul(&t.tr()) * self.logit_scale.exp()
    }

    /// Writes the model as a folder `CLIPModel.from_pretrained` reads, or
    /// for a path ending in .safetensors as one file with config.json and
    /// the tokenizer and preprocessor files in its metadata.
    pub fn save(&self, op: &'static str, path: &Path) -> Result<()> {
        let mut config = self.raw_config.clone();
        if let Some(m) = config.as_object_mut() {
            m.insert("architectures".into(), serde_json::json!(["CLIPModel"]));
        }
        let mut files = vec![(
            "tokenizer.json".to_string(),
            hf::tokenizer_json(op, &self.tokenizer)?,
        )];
        files.extend(self.side_files.iter().cloned());
        hf::save_model(op, path, &self.vs, SINGLE_FORMAT, &config, &files)
    }
}

/// The model kind recorded in a single-file CLIP.
const SINGLE_FORMAT: &str = "voxlab.Clip";

/// Files of a CLIP folder kept as they are, besides tokenizer.json.
const SIDE_FILES: &[&str] = &[
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "preprocessor_config.json",
];
