//! A latent diffusion pipeline in diffusers' StableDiffusionPipeline folder
//! layout: `model_index.json`, `unet/`, `vae/`, `text_encoder/` (a
//! CLIPTextModel), `tokenizer/` (CLIP's BPE: tokenizer.json, or vocab.json
//! + merges.txt as the Stable Diffusion v1 repositories ship it) and
//! `scheduler/scheduler_config.json`. Sampling follows diffusers'
//! text-to-image and img2img pipelines step for step (prompt padding to the
//! tokenizer's max length, "" as the unconditional prompt, classifier-free
//! guidance on a doubled batch, DDIM or DDPM steps, VAE scaling), so the
//! same initial noise gives the same images.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::nn;
use tch::{Device, Kind, Tensor};

use super::clip::{ClipText, ClipTextConfig};
use super::hf::{self, Config, NameRules};
use super::schedulers::{Noise, Scheduler, SchedulerConfig};
use super::unet::UnetModel;
use super::vae::VaeModel;
use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

/// Stable Diffusion's text encoder: CLIP's text transformer and its tokenizer.
pub struct TextEncoder {
    pub vs: nn::VarStore,
    pub model: ClipText,
    pub tokenizer: tokenizers::Tokenizer,
    /// Prompts are padded (and cut) to this many tokens.
    pub max_length: usize,
    pub pad_id: i64,
    pub special: SpecialTokens,
}

/// CLIPTokenizer's special tokens: tokenizer_config.json's, CLIP's where it
/// names none.
#[derive(Debug, Clone)]
pub struct SpecialTokens {
    pub bos: String,
    pub eos: String,
    pub unk: String,
    pub pad: String,
}

impl SpecialTokens {
    fn read(settings: &Config) -> SpecialTokens {
        let v = &settings.value;
        SpecialTokens {
            bos: token_name(v.get("bos_token"), "<|startoftext|>"),
            eos: token_name(v.get("eos_token"), "<|endoftext|>"),
            unk: token_name(v.get("unk_token"), "<|endoftext|>"),
            pad: token_name(v.get("pad_token"), "<|endoftext|>"),
        }
    }
}

/// Stable Diffusion's files name the weights `text_model.*`; transformers 5
/// saves a CLIPTextModel without that prefix. Both load.
const TEXT_NAMES: NameRules = NameRules {
    strip_prefixes: &["text_model."],
    ignore: &["position_ids"],
    optional: &[],
};

/// CLIP's split pattern (transformers' CLIPTokenizer).
const CLIP_SPLIT: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

fn token_name(v: Option<&Value>, default: &str) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string(),
        _ => default.to_string(),
    }
}

/// The CLIP tokenizer of a folder: its tokenizer.json, or else the one
/// transformers' CLIPTokenizer builds from vocab.json and merges.txt.
fn clip_tokenizer(
    op: &'static str,
    dir: &Path,
    special: &SpecialTokens,
) -> Result<tokenizers::Tokenizer> {
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return tokenizers::Tokenizer::from_file(&json)
            .map_err(|e| Error::format(op, &json, format!("not a tokenizer.json: {e}")));
    }
    use tokenizers::models::bpe::BPE;
    use tokenizers::normalizers::{Lowercase, Replace, Sequence as Norms, NFC};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizers;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::processors::roberta::RobertaProcessing;
    use tokenizers::{AddedToken, SplitDelimiterBehavior};
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    for f in [&vocab, &merges] {
        if !f.is_file() {
            return Err(Error::format(
                op,
                dir,
                "no tokenizer.json and no vocab.json + merges.txt: not a CLIP tokenizer folder",
            ));
        }
    }
    let SpecialTokens { bos, eos, unk, pad } = special.clone();
    let bad = |e: Box<dyn std::error::Error + Send + Sync>| {
        Error::format(op, dir, format!("cannot build the CLIP tokenizer: {e}"))
    };
    let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .unk_token(unk.clone())
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix("</w>".into())
        .build()
        .map_err(bad)?;
    let mut tok = tokenizers::Tokenizer::new(bpe);
    let replace =
        Replace::new(SplitPattern::Regex(r"\s+".into()).into_replace(), " ").map_err(bad)?;
    tok.with_normalizer(Some(Norms::new(vec![
        NFC.into(),
        replace.into(),
        Lowercase.into(),
    ])));
    let split = Split::new(
        SplitPattern::Regex(CLIP_SPLIT.into()),
        SplitDelimiterBehavior::Removed,
        true,
    )
    .map_err(bad)?;
    tok.with_pre_tokenizer(Some(PreTokenizers::new(vec![
        split.into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tok.with_decoder(Some(ByteLevel::default()));
    let id = |t: &str| {
        tok.token_to_id(t)
            .ok_or_else(|| Error::format(op, &vocab, format!("the vocabulary has no token {t}")))
    };
    let (bos_id, eos_id) = (id(&bos)?, id(&eos)?);
    tok.with_post_processor(Some(
        RobertaProcessing::new((eos.clone(), eos_id), (bos.clone(), bos_id))
            .trim_offsets(false)
            .add_prefix_space(false),
    ));
    let mut specials = vec![bos, eos, unk, pad];
    specials.dedup();
    let added: Vec<AddedToken> = specials
        .into_iter()
        .map(|t| AddedToken::from(t, true))
        .collect();
    tok.add_special_tokens(&added);
    Ok(tok)
}

/// tokenizers' Replace takes its own pattern type.
trait IntoReplace {
    fn into_replace(self) -> tokenizers::normalizers::replace::ReplacePattern;
}

impl IntoReplace for tokenizers::pre_tokenizers::split::SplitPattern {
    fn into_replace(self) -> tokenizers::normalizers::replace::ReplacePattern {
        use tokenizers::normalizers::replace::ReplacePattern;
        use tokenizers::pre_tokenizers::split::SplitPattern;
        match self {
            SplitPattern::Regex(r) => ReplacePattern::Regex(r),
            SplitPattern::String(s) => ReplacePattern::String(s),
        }
    }
}

impl TextEncoder {
    pub fn load(
        op: &'static str,
        text_dir: &Path,
        tok_dir: &Path,
        device: Device,
    ) -> Result<TextEncoder> {
        let cfg = hf::read_config(op, text_dir)?;
        let model_type = cfg.str_or(op, "model_type", "clip_text_model")?;
        if model_type != "clip_text_model" {
            return Err(Error::format(
                op,
                &cfg.path,
                format!("model_type is \"{model_type}\": the text encoder must be a CLIPTextModel"),
            ));
        }
        let config = ClipTextConfig::from_config(op, &cfg)?;
        let vs = nn::VarStore::new(device);
        let model = ClipText::new(&vs.root(), &config);
        hf::load_weights(
            op,
            &vs,
            &hf::weight_files(op, text_dir, &["model"])?,
            TEXT_NAMES,
        )?;
        let settings_path = tok_dir.join("tokenizer_config.json");
        let settings = if settings_path.is_file() {
            Config::read(op, &settings_path)?
        } else {
            Config {
                path: settings_path,
                prefix: String::new(),
                value: serde_json::json!({}),
            }
        };
        let special = SpecialTokens::read(&settings);
        let tokenizer = clip_tokenizer(op, tok_dir, &special)?;
        let max_length = settings
            .int_or(op, "model_max_length", config.max_position_embeddings)?
            .min(config.max_position_embeddings)
            .max(2) as usize;
        let pad_id = tokenizer
            .token_to_id(&special.pad)
            .map(i64::from)
            .unwrap_or(config.pad_token_id);
        Ok(TextEncoder {
            vs,
            model,
            tokenizer,
            max_length,
            pad_id,
            special,
        })
    }

    /// Writes `text_encoder/` as transformers' `CLIPTextModel.from_pretrained`
    /// reads it (config.json, model.safetensors named without the
    /// `text_model.` prefix, as transformers 5 saves) and `tokenizer/` as
    /// its `CLIPTokenizer.from_pretrained` reads it (tokenizer.json and
    /// tokenizer_config.json with the max length and special tokens).
    pub fn save(&self, op: &'static str, text_dir: &Path, tok_dir: &Path) -> Result<()> {
        hf::save_folder(op, text_dir, &self.vs, &self.model.config.to_json(), &[])?;
        let s = &self.special;
        let settings = serde_json::json!({
            "tokenizer_class": "CLIPTokenizer",
            "model_max_length": self.max_length,
            "bos_token": s.bos,
            "eos_token": s.eos,
            "unk_token": s.unk,
            "pad_token": s.pad,
        });
        hf::create_folder(op, tok_dir)?;
        hf::write_config(op, &tok_dir.join("tokenizer_config.json"), &settings)?;
        hf::write_side_files(
            op,
            tok_dir,
            &[(
                "tokenizer.json".to_string(),
                hf::tokenizer_json(op, &self.tokenizer)?,
            )],
        )
    }

    /// Token ids, each prompt cut to `max_length` (keeping its end-of-text)
    /// and padded to it, N×max_length.
    pub fn tokenize(&self, op: &'static str, texts: &[String]) -> Result<Tensor> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::invalid(op, format!("tokenizer failed: {e}")))?;
        let l = self.max_length;
        let mut ids = vec![self.pad_id; enc.len() * l];
        for (row, e) in enc.iter().enumerate() {
            let mut t: Vec<i64> = e.get_ids().iter().map(|&i| i as i64).collect();
            if t.len() > l {
                // transformers truncates before adding the special tokens.
                let last = t[t.len() - 1];
                t.truncate(l - 1);
                t.push(last);
            }
            ids[row * l..row * l + t.len()].copy_from_slice(&t);
        }
        tc(
            op,
            Tensor::from_slice(&ids).f_view([enc.len() as i64, l as i64]),
        )
    }

    /// The last hidden states (N×max_length×hidden), no attention mask, as
    /// Stable Diffusion conditions on them.
    pub fn encode(&self, op: &'static str, texts: &[String]) -> Result<Tensor> {
        if texts.is_empty() {
            return Err(Error::invalid(op, "no texts: give at least one caption"));
        }
        let ids = self.tokenize(op, texts)?.to_device(self.vs.device());
        let (states, _) = tch::no_grad(|| self.model.forward(&ids, None));
        states
            .last()
            .map(|t| t.to_kind(Kind::Float))
            .ok_or_else(|| Error::invalid(op, "the text encoder has no layers"))
    }
}

/// Settings of one sampling run.
#[derive(Debug, Clone, Copy)]
pub struct SampleSettings {
    pub steps: i64,
    /// Classifier-free guidance scale; ≤ 1: no unconditional pass.
    pub guidance: f64,
    pub eta: f64,
}

pub struct DiffusionPipeline {
    pub unet: UnetModel,
    pub vae: VaeModel,
    pub text: Option<TextEncoder>,
    pub scheduler: SchedulerConfig,
    pub source: PathBuf,
    /// The kind the networks compute in (Float; Half on a GPU when asked).
    pub kind: Kind,
}

/// Reads model_index.json and names the folder of a component it must list.
fn component(
    op: &'static str,
    dir: &Path,
    index: &Config,
    name: &str,
    classes: &[&str],
) -> Result<Option<PathBuf>> {
    let entry = index.value.get(name);
    let class = match entry {
        None => return Ok(None),
        Some(Value::Array(a)) if a.len() == 2 => match &a[1] {
            Value::Null => return Ok(None),
            Value::String(s) => s.clone(),
            _ => String::new(),
        },
        Some(_) => String::new(),
    };
    if !classes.is_empty() && !classes.contains(&class.as_str()) {
        return Err(Error::format(
            op,
            &index.path,
            format!(
                "\"{name}\" is {}, voxlab reads {} here",
                entry.map(Value::to_string).unwrap_or_default(),
                classes.join(" or ")
            ),
        ));
    }
    let sub = dir.join(name);
    if !sub.is_dir() {
        return Err(Error::format(
            op,
            dir,
            format!(
                "model_index.json lists \"{name}\" ({class}) but the folder {name}/ is missing"
            ),
        ));
    }
    Ok(Some(sub))
}

impl DiffusionPipeline {
    /// A diffusers pipeline folder as it is on disk; float16 or bfloat16
    /// weights are converted to `kind` (Float on the CPU).
    pub fn load(
        op: &'static str,
        dir: &Path,
        device: Device,
        kind: Kind,
    ) -> Result<DiffusionPipeline> {
        let dir = hf::model_dir(op, dir)?;
        let index_path = dir.join("model_index.json");
        if !index_path.is_file() {
            return Err(Error::format(
                op,
                &dir,
                "no model_index.json: not a diffusers pipeline folder",
            ));
        }
        let index = Config::read(op, &index_path)?;
        let required = |name: &str, classes: &[&str]| -> Result<PathBuf> {
            component(op, &dir, &index, name, classes)?.ok_or_else(|| {
                Error::format(op, &index_path, format!("the pipeline has no \"{name}\": a diffusion pipeline needs unet, vae and scheduler"))
            })
        };
        let unet_dir = required("unet", &["UNet2DConditionModel"])?;
        let vae_dir = required("vae", &["AutoencoderKL"])?;
        let scheduler_dir = required("scheduler", &[])?;
        let text_dir = component(op, &dir, &index, "text_encoder", &["CLIPTextModel"])?;
        let tok_dir = component(
            op,
            &dir,
            &index,
            "tokenizer",
            &["CLIPTokenizer", "CLIPTokenizerFast"],
        )?;
        let text = match (text_dir, tok_dir) {
            (Some(t), Some(k)) => Some(TextEncoder::load(op, &t, &k, device)?),
            (None, None) => None,
            _ => {
                return Err(Error::format(
                    op,
                    &index_path,
                    "a text encoder needs its tokenizer and a tokenizer its text encoder: list both or neither",
                ))
            }
        };
        let sched_path = scheduler_dir.join("scheduler_config.json");
        if !sched_path.is_file() {
            return Err(Error::format(
                op,
                &scheduler_dir,
                "no scheduler_config.json",
            ));
        }
        let scheduler = SchedulerConfig::from_config(op, &Config::read(op, &sched_path)?)?;
        let mut pipe = DiffusionPipeline {
            unet: UnetModel::load(op, &unet_dir, device)?,
            vae: VaeModel::load(op, &vae_dir, device)?,
            text,
            scheduler,
            source: dir,
            kind: Kind::Float,
        };
        if kind == Kind::Half {
            pipe.unet.vs.half();
            pipe.vae.vs.half();
            if let Some(t) = &mut pipe.text {
                t.vs.half();
            }
            pipe.kind = Kind::Half;
        }
        if let (Some(t), Some(cross)) =
            (&pipe.text, Some(pipe.unet.unet.config.cross_attention_dim))
        {
            if t.model.config.tower.hidden_size != cross {
                return Err(Error::format(
                    op,
                    &pipe.source,
                    format!(
                        "the text encoder's hidden_size {} differs from the UNet's cross_attention_dim {cross}",
                        t.model.config.tower.hidden_size
                    ),
                ));
            }
        }
        Ok(pipe)
    }

    pub fn device(&self) -> Device {
        self.unet.vs.device()
    }

    /// Pixels per latent along each side.
    pub fn vae_scale(&self) -> i64 {
        self.vae.vae.config.downscale()
    }

    /// The default latent side (the UNet's sample_size).
    pub fn latent_size(&self) -> i64 {
        self.unet.unet.config.sample_size
    }

    pub fn text_encoder(&self, op: &'static str) -> Result<&TextEncoder> {
        self.text.as_ref().ok_or_else(|| {
            Error::invalid(op, "this pipeline has no text_encoder/tokenizer: give conditioning tensors instead of captions")
        })
    }

    /// Checks conditioning (N×tokens×cross_attention_dim).
    pub fn check_conditioning(&self, op: &'static str, c: &Tensor, n: Option<i64>) -> Result<()> {
        let s = c.size();
        let d = self.unet.unet.config.cross_attention_dim;
        if s.len() != 3 || s[2] != d || s[1] == 0 || n.is_some_and(|n| s[0] != n) || s[0] == 0 {
            let rows = n.map(|n| n.to_string()).unwrap_or_else(|| "N".into());
            return Err(Error::shape(
                op,
                "conditioning",
                format!("{rows}×tokens×{d} (the UNet's cross_attention_dim)"),
                shape_text(&s),
            ));
        }
        Ok(())
    }

    /// The unconditional conditioning for `n` samples: the text encoder's
    /// states of "" (zeros of `like`'s shape without a text encoder).
    pub fn unconditional(&self, op: &'static str, like: &Tensor) -> Result<Tensor> {
        let n = like.size()[0] as usize;
        match &self.text {
            Some(t) => {
                let u = t.encode(op, &vec![String::new(); n])?;
                if u.size()[1] != like.size()[1] {
                    return Err(Error::shape(
                        op,
                        "conditioning",
                        format!(
                            "N×{}×{} like the text encoder's (its unconditional prompt \"\" is guided against)",
                            u.size()[1],
                            u.size()[2]
                        ),
                        shape_text(&like.size()),
                    ));
                }
                Ok(u)
            }
            None => Ok(like.zeros_like()),
        }
    }

    /// Denoises scaled latents over `timesteps` with the scheduler `s`.
    #[allow(clippy::too_many_arguments)]
    pub fn denoise(
        &self,
        op: &'static str,
        latents: Tensor,
        timesteps: &[i64],
        cond: &Tensor,
        uncond: Option<&Tensor>,
        settings: SampleSettings,
        s: &Scheduler,
        noise: &mut Noise,
    ) -> Result<Tensor> {
        let device = self.device();
        let unet = &self.unet.unet;
        let context = match uncond {
            Some(u) => tc(op, Tensor::f_cat(&[u, cond], 0))?,
            None => cond.shallow_clone(),
        }
        .to_device(device)
        .to_kind(self.kind);
        let mut x = latents.to_device(device).to_kind(Kind::Float);
        for &t in timesteps {
            let input = match uncond {
                Some(_) => Tensor::cat(&[&x, &x], 0),
                None => x.shallow_clone(),
            };
            let tt = Tensor::from(t).to_device(device);
            unet.check_inputs(op, &input, &tt, &context, None)?;
            let out = tch::no_grad(|| {
                unet.forward(&input.to_kind(self.kind), &tt, &context, None, false)
            })
            .to_kind(Kind::Float);
            let out = match uncond {
                Some(_) => {
                    let parts = out.chunk(2, 0);
                    &parts[0] + (&parts[1] - &parts[0]) * settings.guidance
                }
                None => out,
            };
            x = s.step(op, &out, t, &x, settings.eta, noise)?;
        }
        Ok(x)
    }

    fn scheduler_for(&self, op: &'static str, steps: i64) -> Result<Scheduler> {
        let mut s = Scheduler::new(self.scheduler.clone());
        s.set_timesteps(op, steps)?;
        Ok(s)
    }

    fn guidance_pair(
        &self,
        op: &'static str,
        cond: &Tensor,
        settings: SampleSettings,
        uncond: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        if settings.guidance <= 1.0 {
            return Ok(None);
        }
        match uncond {
            Some(u) => {
                self.check_conditioning(op, u, Some(cond.size()[0]))?;
                Ok(Some(u.shallow_clone()))
            }
            None => Ok(Some(self.unconditional(op, cond)?)),
        }
    }

    /// Text-to-image: from initial latents (N×C×h×w, standard normal,
    /// scaled by the scheduler's initial sigma 1) to denoised scaled latents.
    pub fn text_to_image(
        &self,
        op: &'static str,
        cond: &Tensor,
        uncond: Option<&Tensor>,
        initial: &Tensor,
        settings: SampleSettings,
        noise: &mut Noise,
    ) -> Result<Tensor> {
        self.check_conditioning(op, cond, Some(initial.size()[0]))?;
        self.check_latents(op, initial)?;
        let s = self.scheduler_for(op, settings.steps)?;
        let uncond = self.guidance_pair(op, cond, settings, uncond)?;
        let steps = s.timesteps.clone();
        self.denoise(
            op,
            initial.shallow_clone(),
            &steps,
            cond,
            uncond.as_ref(),
            settings,
            &s,
            noise,
        )
    }

    /// Checks scaled latents against the UNet.
    pub fn check_latents(&self, op: &'static str, z: &Tensor) -> Result<()> {
        let c = &self.unet.unet.config;
        let s = z.size();
        let f = c.downscale();
        if s.len() != 4
            || s[1] != c.in_channels
            || s[2] == 0
            || s[3] == 0
            || s[2] % f != 0
            || s[3] % f != 0
        {
            return Err(Error::shape(
                op,
                "latents",
                format!(
                    "N×{}×h×w with h and w multiples of {f} (e.g. N×{}×{}×{})",
                    c.in_channels, c.in_channels, c.sample_size, c.sample_size
                ),
                shape_text(&s),
            ));
        }
        Ok(())
    }

    /// img2img: images in [0, 1] (N×3×H×W) encoded (a posterior sample),
    /// noised to the schedule's timestep at `strength`, then denoised.
    pub fn image_to_image(
        &self,
        op: &'static str,
        images: &Tensor,
        cond: &Tensor,
        uncond: Option<&Tensor>,
        strength: f64,
        settings: SampleSettings,
        noise: &mut Noise,
    ) -> Result<Tensor> {
        let s = self.scheduler_for(op, settings.steps)?;
        let timesteps = s.img2img_timesteps(op, strength)?;
        self.vae.vae.check_images(op, images)?;
        self.check_conditioning(op, cond, Some(images.size()[0]))?;
        let uncond = self.guidance_pair(op, cond, settings, uncond)?;
        let x =
            (images.to_device(self.device()).to_kind(Kind::Float) * 2.0 - 1.0).to_kind(self.kind);
        let dist = tch::no_grad(|| self.vae.vae.encode(&x, false));
        let mean = dist.mean.to_kind(Kind::Float);
        let eps = noise.draw(op, &mean)?;
        let z = (mean + dist.std().to_kind(Kind::Float) * eps) * self.vae.vae.config.scaling_factor;
        let n = noise.draw(op, &z)?;
        let start = s.add_noise(&z, &n, timesteps[0]);
        self.denoise(
            op,
            start,
            &timesteps,
            cond,
            uncond.as_ref(),
            settings,
            &s,
            noise,
        )
    }

    /// Images in [0, 1] → scaled latents: the posterior mean, or a sample.
    pub fn encode_images(
        &self,
        op: &'static str,
        images: &Tensor,
        sample: bool,
        noise: &mut Noise,
    ) -> Result<Tensor> {
        self.vae.encode_images(op, images, sample, noise, self.kind)
    }

    /// Scaled latents → images in [0, 1] (N×3×H×W, float, on the CPU).
    pub fn decode_latents(&self, op: &'static str, z: &Tensor) -> Result<Tensor> {
        self.vae.decode_latents(op, z, self.kind)
    }
}

/// Noise given as a list, consumed in order.
pub fn given_noise(draws: Vec<Tensor>) -> Noise {
    Noise::Given(VecDeque::from(draws))
}

/// What a pipeline is conditioned on: tensors (N×tokens×cross_attention_dim,
/// e.g. predicted from the brain) or captions for its text encoder.
pub enum Conditioning {
    States(Tensor),
    Captions(Vec<String>),
}

impl DiffusionPipeline {
    /// The text encoder's conditioning states of captions, `batch` at a
    /// time: N×max_length×hidden float32 on the CPU — the c the UNet
    /// cross-attends to (77×768 for Stable Diffusion v1), which Takagi &
    /// Nishimoto predict from higher visual cortex.
    pub fn text_states(&self, op: &'static str, texts: &[String], batch: usize) -> Result<Tensor> {
        let encoder = self.text.as_ref().ok_or_else(|| {
            Error::invalid(op, "this pipeline has no text encoder (a folder's text_encoder/ and tokenizer/, as load_diffusion reads them); a pipeline from diffusion_pipeline or train_diffusion is conditioned on given tensors")
        })?;
        if texts.is_empty() {
            return Err(Error::invalid(op, "no captions: give at least one"));
        }
        let mut parts = Vec::with_capacity(texts.len().div_ceil(batch.max(1)));
        for chunk in texts.chunks(batch.max(1)) {
            crate::cancel::check(op)?;
            parts.push(tc(op, encoder.encode(op, chunk)?.f_to_device(Device::Cpu))?);
        }
        tc(op, Tensor::f_cat(&parts, 0))
    }

    /// The conditioning states, N×tokens×d, checked against the UNet.
    pub fn conditioning(&self, op: &'static str, c: &Conditioning) -> Result<Tensor> {
        let t = match c {
            Conditioning::States(t) => t.to_kind(Kind::Float),
            Conditioning::Captions(texts) => self.text_encoder(op)?.encode(op, texts)?,
        };
        self.check_conditioning(op, &t, None)?;
        Ok(t)
    }
}

/// How [`DiffusionPipeline::generate`] and `reconstruct` sample.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub steps: i64,
    pub guidance: f64,
    pub eta: f64,
    /// img2img only: how far the start is noised (1: pure noise).
    pub strength: f64,
    /// Seed of libtorch's generator before the first draw (None: as it is).
    pub seed: Option<i64>,
    /// Images per conditioning row, grouped by row.
    pub samples: i64,
    /// Rows sampled together (each doubled for guidance).
    pub batch: i64,
    /// Latent side (None: the UNet's sample_size).
    pub latent_size: Option<i64>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            steps: 50,
            guidance: 5.0,
            eta: 0.0,
            strength: 0.8,
            seed: None,
            samples: 1,
            batch: 8,
            latent_size: None,
        }
    }
}

impl GenerateOptions {
    fn settings(&self) -> SampleSettings {
        SampleSettings {
            steps: self.steps,
            guidance: self.guidance,
            eta: self.eta,
        }
    }

    fn check(&self, op: &'static str) -> Result<()> {
        if self.steps < 1 {
            return Err(Error::invalid(
                op,
                format!("steps must be ≥ 1, got {}", self.steps),
            ));
        }
        if self.samples < 1 || self.batch < 1 {
            return Err(Error::invalid(
                op,
                format!(
                    "samples and batch must be ≥ 1, got {} and {}",
                    self.samples, self.batch
                ),
            ));
        }
        if !(self.eta >= 0.0) || !self.guidance.is_finite() {
            return Err(Error::invalid(
                op,
                format!(
                    "eta must be ≥ 0 and guidance finite, got {} and {}",
                    self.eta, self.guidance
                ),
            ));
        }
        if !(self.strength > 0.0 && self.strength <= 1.0) {
            return Err(Error::invalid(
                op,
                format!("strength must be in (0, 1], got {}", self.strength),
            ));
        }
        Ok(())
    }
}

/// Rows `samples` times each, grouped by row.
fn repeat_rows(op: &'static str, t: &Tensor, samples: i64) -> Result<Tensor> {
    if samples == 1 {
        return Ok(t.shallow_clone());
    }
    tc(op, t.f_repeat_interleave_self_int(samples, Some(0), None))
}

impl DiffusionPipeline {
    fn seed(&self, o: &GenerateOptions) {
        if let Some(s) = o.seed {
            crate::device::seed(s);
        }
    }

    /// Text-to-image from conditioning: N·samples images in [0, 1].
    pub fn generate(
        &self,
        op: &'static str,
        c: &Conditioning,
        o: &GenerateOptions,
    ) -> Result<Tensor> {
        o.check(op)?;
        let cond = repeat_rows(op, &self.conditioning(op, c)?, o.samples)?;
        let side = o.latent_size.unwrap_or_else(|| self.latent_size());
        let ch = self.unet.unet.config.in_channels;
        self.seed(o);
        let mut noise = Noise::Generator;
        let n = cond.size()[0];
        let mut out = Vec::new();
        let mut start = 0;
        while start < n {
            let len = o.batch.min(n - start);
            let c = cond.narrow(0, start, len);
            let init = Tensor::randn([len, ch, side, side], (Kind::Float, Device::Cpu));
            let z = self.text_to_image(op, &c, None, &init, o.settings(), &mut noise)?;
            out.push(self.decode_latents(op, &z)?);
            start += len;
        }
        tc(op, Tensor::f_cat(&out, 0))
    }

    /// Takagi & Nishimoto's reconstruction: decode the (predicted, scaled)
    /// latents `z`, re-encode the decoded images, noise them to
    /// `strength`, and denoise with the conditioning (img2img):
    /// N·samples images in [0, 1].
    pub fn reconstruct_from(
        &self,
        op: &'static str,
        z: &Tensor,
        c: &Conditioning,
        o: &GenerateOptions,
    ) -> Result<Tensor> {
        o.check(op)?;
        self.check_latents(op, z)?;
        let cond = self.conditioning(op, c)?;
        if cond.size()[0] != z.size()[0] {
            return Err(Error::invalid(
                op,
                format!(
                    "z has {} rows but the conditioning {}: give one per image",
                    z.size()[0],
                    cond.size()[0]
                ),
            ));
        }
        let (z, cond) = (
            repeat_rows(op, z, o.samples)?,
            repeat_rows(op, &cond, o.samples)?,
        );
        self.seed(o);
        let mut noise = Noise::Generator;
        let n = z.size()[0];
        let mut out = Vec::new();
        let mut start = 0;
        while start < n {
            let len = o.batch.min(n - start);
            let images = self.decode_latents(op, &z.narrow(0, start, len))?;
            let zt = self.image_to_image(
                op,
                &images,
                &cond.narrow(0, start, len),
                None,
                o.strength,
                o.settings(),
                &mut noise,
            )?;
            out.push(self.decode_latents(op, &zt)?);
            start += len;
        }
        tc(op, Tensor::f_cat(&out, 0))
    }
}

/// The inputs of `reconstruct` for a diffusion pipeline.
pub struct ReconstructInputs {
    pub z: Tensor,
    pub c: Conditioning,
}

impl super::reconstruct::Reconstructor for DiffusionPipeline {
    type Input = ReconstructInputs;
    type Options = GenerateOptions;

    fn reconstruct(
        &self,
        input: &ReconstructInputs,
        opts: &GenerateOptions,
    ) -> Result<crate::data::ImageSet> {
        let images = self.reconstruct_from("reconstruct", &input.z, &input.c, opts)?;
        let n = images.size()[0];
        let per = opts.samples.max(1);
        Ok(crate::data::ImageSet {
            data: crate::tensor::Tensor(images),
            ids: (0..n)
                .map(|i| {
                    if per == 1 {
                        format!("recon{i:04}")
                    } else {
                        format!("recon{:04}_{}", i / per, i % per)
                    }
                })
                .collect(),
        })
    }
}

/// A small latent diffusion pipeline of the same design with fresh weights
/// (no text encoder: it is conditioned on given tensors), for training on a
/// CPU and for examples.
#[derive(Debug, Clone)]
pub struct SmallDiffusionConfig {
    pub image_size: i64,
    pub vae_channels: Vec<i64>,
    pub latent_channels: i64,
    pub unet_channels: Vec<i64>,
    pub cond_dim: i64,
    pub heads: i64,
    pub groups: i64,
}

impl Default for SmallDiffusionConfig {
    fn default() -> Self {
        SmallDiffusionConfig {
            image_size: 32,
            vae_channels: vec![16, 32, 32],
            latent_channels: 4,
            unet_channels: vec![32, 64],
            cond_dim: 32,
            heads: 2,
            groups: 8,
        }
    }
}

impl DiffusionPipeline {
    pub fn small(
        op: &'static str,
        c: &SmallDiffusionConfig,
        device: Device,
    ) -> Result<DiffusionPipeline> {
        let scale = 1i64 << (c.vae_channels.len().max(1) - 1);
        let down = 1i64 << (c.unet_channels.len().max(1) - 1);
        if c.vae_channels.is_empty()
            || c.unet_channels.is_empty()
            || c.image_size % (scale * down) != 0
        {
            return Err(Error::invalid(
                op,
                format!(
                    "image_size {} must be a multiple of {} (the autoencoder's ×{scale} and the UNet's ×{down} downsampling)",
                    c.image_size,
                    scale * down
                ),
            ));
        }
        for &ch in c.vae_channels.iter().chain(&c.unet_channels) {
            if ch % c.groups != 0 || ch % c.heads != 0 {
                return Err(Error::invalid(
                    op,
                    format!(
                        "channel counts must be multiples of groups {} and heads {}, got {ch}",
                        c.groups, c.heads
                    ),
                ));
            }
        }
        let vae = super::vae::VaeConfig {
            in_channels: 3,
            out_channels: 3,
            latent_channels: c.latent_channels,
            block_out_channels: c.vae_channels.clone(),
            layers_per_block: 1,
            norm_num_groups: c.groups,
            scaling_factor: 1.0,
            shift_factor: None,
            use_quant_conv: true,
            use_post_quant_conv: true,
            mid_block_add_attention: true,
            sample_size: c.image_size,
        };
        let n = c.unet_channels.len();
        let unet = super::unet::UnetConfig {
            in_channels: c.latent_channels,
            out_channels: c.latent_channels,
            block_out_channels: c.unet_channels.clone(),
            down_attention: vec![true; n],
            up_attention: vec![true; n],
            mid_block: true,
            layers_per_block: vec![1; n],
            transformer_layers_per_block: vec![1; n],
            heads: vec![c.heads; n],
            cross_attention_dim: c.cond_dim,
            norm_num_groups: c.groups,
            norm_eps: 1e-5,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            downsample_padding: 1,
            use_linear_projection: true,
            class_embedding: None,
            sample_size: c.image_size / scale,
            dropout: 0.0,
        };
        Ok(DiffusionPipeline {
            unet: UnetModel::build(&unet, device),
            vae: VaeModel::build(&vae, device),
            text: None,
            scheduler: SchedulerConfig::stable_diffusion(super::schedulers::Sampler::Ddim),
            source: PathBuf::new(),
            kind: Kind::Float,
        })
    }
}

/// How [`train_diffusion`] trains.
pub struct DiffusionTraining {
    pub unet_channels: Vec<i64>,
    pub heads: i64,
    pub groups: i64,
    /// Share of training steps' conditions replaced by zeros (the
    /// unconditional input of classifier-free guidance).
    pub cond_dropout: f64,
    /// Exponential moving average of the weights kept for sampling.
    pub ema_decay: f64,
    pub val_split: f64,
    pub train: super::train::TrainConfig,
    pub device: Device,
}

/// The denoising objective on fixed latents and conditions, with EMA weights.
struct DenoiseTask<'a> {
    vs: &'a nn::VarStore,
    unet: &'a super::unet::Unet,
    schedule: Scheduler,
    z: Tensor,
    c: Tensor,
    /// Validation latents, conditions, timesteps and noise (fixed draws).
    val: Option<(Tensor, Tensor, Tensor, Tensor)>,
    ema: Vec<(String, Tensor)>,
    params: Vec<(String, Tensor)>,
    decay: f64,
    /// Optimiser steps taken, for the moving average's warm-up.
    steps: u64,
    dropout: f64,
}

impl DenoiseTask<'_> {
    fn loss(&self, z: &Tensor, c: &Tensor, t: &Tensor, noise: &Tensor, train: bool) -> Tensor {
        let (a, b) = self.schedule.coefficients(t, z);
        let x_t = z * a + noise * b;
        let target = self.schedule.target(z, noise, t);
        let pred = self.unet.forward(&x_t, t, c, None, train);
        (pred - target).square().mean(Kind::Float)
    }
}

impl super::train::Task for DenoiseTask<'_> {
    fn n_train(&self) -> i64 {
        self.z.size()[0]
    }
    fn groups(&self) -> Vec<super::train::Group> {
        vec![super::train::Group::trainable("model", self.vs)]
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        let mut s = super::train::state_of(self.vs);
        s.extend(
            self.ema
                .iter()
                .map(|(n, t)| (format!("ema.{n}"), t.shallow_clone())),
        );
        s
    }
    fn train_step(
        &mut self,
        batch: &[i64],
        ctx: &mut super::train::StepContext,
    ) -> Result<super::train::Metrics> {
        const OP: &str = "train_diffusion";
        let device = self.z.device();
        let i = Tensor::from_slice(batch).to_device(device);
        let z = self.z.index_select(0, &i);
        let mut c = self.c.index_select(0, &i);
        let b = z.size()[0];
        if self.dropout > 0.0 {
            let keep = Tensor::rand([b], (Kind::Float, device))
                .ge(self.dropout)
                .to_kind(Kind::Float);
            c = c * keep.view([b, 1, 1]);
        }
        let t = Tensor::randint(
            self.schedule.config.num_train_timesteps,
            [b],
            (Kind::Int64, device),
        );
        let noise = z.randn_like();
        let loss = self.loss(&z, &c, &t, &noise, true);
        ctx.backward_step("model", &loss)?;
        // diffusers' EMAModel warm-up: the average follows the weights
        // closely at first ((1 + k) / (10 + k) after k steps, capped at
        // ema_decay), so a short training run does not end with an average
        // still dominated by the random initial weights.
        self.steps += 1;
        let k = self.steps as f64;
        let decay = self.decay.min((1.0 + k) / (10.0 + k));
        tch::no_grad(|| -> Result<()> {
            for ((_, e), (_, p)) in self.ema.iter_mut().zip(&self.params) {
                let _ = tc(OP, e.f_mul_scalar_(decay))?;
                let _ = tc(OP, e.f_add_(&(p * (1.0 - decay))))?;
            }
            Ok(())
        })?;
        Ok(super::train::Metrics::new().with("loss", ctx.value(&loss)?))
    }
    fn validate(&mut self) -> Result<Option<super::train::Metrics>> {
        let Some((z, c, t, n)) = &self.val else {
            return Ok(None);
        };
        let loss = tch::no_grad(|| self.loss(z, c, t, n, false));
        Ok(Some(
            super::train::Metrics::new().with("loss", loss.double_value(&[])),
        ))
    }
}

/// Trains a conditional latent diffusion model of Stable Diffusion's design
/// on the latents of `images` (the autoencoder's scaled posterior means)
/// and conditions (N×tokens×d): the DDPM objective (ε-prediction, scaled-
/// linear betas over 1000 steps, uniform timesteps), conditions dropped to
/// zeros at `cond_dropout` for classifier-free guidance, EMA weights kept
/// for sampling (DDIM over the same betas).
pub fn train_diffusion(
    op: &'static str,
    vae: &VaeModel,
    images: &Tensor,
    conditions: &Tensor,
    o: &DiffusionTraining,
) -> Result<(DiffusionPipeline, super::train::History)> {
    let (s, cs) = (images.size(), conditions.size());
    if cs.len() != 3 || cs[0] != s[0] || cs[1] < 1 || cs[2] < 1 {
        return Err(Error::shape(
            op,
            "conditions",
            format!(
                "{}×tokens×d (one condition sequence per image)",
                s.first().copied().unwrap_or(0)
            ),
            shape_text(&cs),
        ));
    }
    if !(0.0..1.0).contains(&o.cond_dropout)
        || !(0.0..1.0).contains(&o.ema_decay)
        || !(0.0..1.0).contains(&o.val_split)
    {
        return Err(Error::invalid(
            op,
            format!(
                "cond_dropout, ema_decay and val_split must be in [0, 1), got {}, {} and {}",
                o.cond_dropout, o.ema_decay, o.val_split
            ),
        ));
    }
    let small = SmallDiffusionConfig {
        image_size: s[2],
        vae_channels: vae.vae.config.block_out_channels.clone(),
        latent_channels: vae.vae.config.latent_channels,
        unet_channels: o.unet_channels.clone(),
        cond_dim: cs[2],
        heads: o.heads,
        groups: o.groups,
    };
    let mut pipe = DiffusionPipeline::small(op, &small, o.device)?;
    tch::no_grad(|| pipe.vae.vs.copy(&vae.vs)).map_err(|e| Error::torch(op, e))?;
    pipe.vae.vae.config = vae.vae.config.clone();
    let mut z = Vec::new();
    let mut noise = Noise::Generator;
    for start in (0..s[0]).step_by(32) {
        let len = 32.min(s[0] - start);
        z.push(pipe.encode_images(op, &images.narrow(0, start, len), false, &mut noise)?);
    }
    let z = tc(op, Tensor::f_cat(&z, 0))?.to_device(o.device);
    let c = tc(op, conditions.f_to_kind(Kind::Float))?.to_device(o.device);
    let (train_idx, val_idx) = super::vae::split_rows(s[0], o.val_split, o.train.seed.unwrap_or(0));
    let (train_idx, val_idx) = (train_idx.to_device(o.device), val_idx.to_device(o.device));
    let schedule = Scheduler::new(pipe.scheduler.clone());
    let val = (val_idx.numel() > 0).then(|| {
        let vz = z.index_select(0, &val_idx);
        let n = vz.size()[0];
        // Fixed draws, so that epochs are compared on the same noise.
        let steps = schedule.config.num_train_timesteps;
        let t: Vec<i64> = (0..n).map(|i| (i * 997 + 13) % steps).collect();
        let t = Tensor::from_slice(&t).to_device(o.device);
        let g = Tensor::randn(vz.size(), (Kind::Float, Device::Cpu)).to_device(o.device);
        (vz, c.index_select(0, &val_idx), t, g)
    });
    let params: Vec<(String, Tensor)> = {
        let mut v: Vec<(String, Tensor)> = pipe.unet.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let ema = params
        .iter()
        .map(|(n, p)| (n.clone(), p.detach().copy()))
        .collect();
    let history = {
        let mut task = DenoiseTask {
            vs: &pipe.unet.vs,
            unet: &pipe.unet.unet,
            schedule,
            z: z.index_select(0, &train_idx),
            c: c.index_select(0, &train_idx),
            val,
            ema,
            params,
            decay: o.ema_decay,
            steps: 0,
            dropout: o.cond_dropout,
        };
        let history = super::train::fit(&mut task, &o.train)?;
        tch::no_grad(|| -> Result<()> {
            for ((_, e), (_, p)) in task.ema.iter().zip(task.params.iter_mut()) {
                tc(op, p.f_copy_(e))?;
            }
            Ok(())
        })?;
        history
    };
    Ok((pipe, history))
}

impl DiffusionPipeline {
    /// Writes the pipeline as a folder diffusers' StableDiffusionPipeline
    /// (or DiffusionPipeline.from_pretrained) reads: model_index.json,
    /// unet/, vae/, scheduler/, and text_encoder/ with tokenizer/ when the
    /// pipeline has a text encoder (a pipeline trained in voxlab is
    /// conditioned on tensors and lists both as null).
    pub fn save(&self, op: &'static str, dir: &Path) -> Result<()> {
        hf::create_folder(op, dir)?;
        let (text_encoder, tokenizer) = match self.text {
            Some(_) => (
                serde_json::json!(["transformers", "CLIPTextModel"]),
                serde_json::json!(["transformers", "CLIPTokenizer"]),
            ),
            None => (
                serde_json::json!([null, null]),
                serde_json::json!([null, null]),
            ),
        };
        let index = serde_json::json!({
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": "0.42.1",
            "feature_extractor": [null, null],
            "image_encoder": [null, null],
            "requires_safety_checker": false,
            "safety_checker": [null, null],
            "scheduler": ["diffusers", match self.scheduler.sampler {
                super::schedulers::Sampler::Ddim => "DDIMScheduler",
                super::schedulers::Sampler::Ddpm => "DDPMScheduler",
            }],
            "text_encoder": text_encoder,
            "tokenizer": tokenizer,
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        });
        hf::write_config(op, &dir.join("model_index.json"), &index)?;
        self.unet.save(op, &dir.join("unet"))?;
        self.vae.save(op, &dir.join("vae"))?;
        if let Some(t) = &self.text {
            t.save(op, &dir.join("text_encoder"), &dir.join("tokenizer"))?;
        }
        let sched = dir.join("scheduler");
        hf::create_folder(op, &sched)?;
        hf::write_config(
            op,
            &sched.join("scheduler_config.json"),
            &self.scheduler.to_json(),
        )
    }
}
