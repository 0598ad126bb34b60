//! Script face of latent diffusion ([`crate::models::diffusion`]):
//! `load_diffusion`, `diffusion_pipeline`, `encode_images`, `text_states`,
//! `decode_latents`, `generate`, the DiffusionPipeline type, and its form of
//! the shared verb `reconstruct` (documented in the one `reconstruct` entry).

use std::path::Path;
use std::rc::Rc;

use rhai::{Dynamic, Engine, Map, INT};

use super::error::{guard, RhaiResult};
use super::eval::images;
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::session::Session;
use super::tensor::to_tensor;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::models::diffusion::{
    Conditioning, DiffusionPipeline, GenerateOptions, ReconstructInputs, SmallDiffusionConfig,
};
use crate::models::reconstruct::Reconstructor;
use crate::models::schedulers::Noise;
use crate::models::train::History;
use crate::models::vae::{AutoencoderTraining, VaeConfig, VaeModel};
use crate::tensor::{kind_name, Tensor};

/// A pipeline as scripts hold it (shared: Rhai clones values freely).
#[derive(Clone)]
pub struct PipelineValue(pub Rc<DiffusionPipeline>, pub Option<Rc<History>>);

/// An autoencoder trained by train_autoencoder, with its training history.
#[derive(Clone)]
pub struct AutoencoderValue(pub Rc<VaeModel>, pub Option<Rc<History>>);

impl std::fmt::Display for AutoencoderValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.0.vae.config;
        let params: usize = self.0.vs.variables().values().map(|t| t.numel()).sum();
        write!(
            f,
            "Autoencoder[KL, {}px images ↔ {}×{}×{} latents; channels {:?}; scaling factor {:.4}; {:.2}M parameters; {}]",
            c.sample_size,
            c.latent_channels,
            c.sample_size / c.downscale(),
            c.sample_size / c.downscale(),
            c.block_out_channels,
            c.scaling_factor,
            params as f64 / 1e6,
            crate::device::name(self.0.vs.device()),
        )
    }
}

impl std::fmt::Display for PipelineValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.0;
        let u = &p.unet.unet.config;
        let params =
            |vs: &tch::nn::VarStore| vs.variables().values().map(|t| t.numel()).sum::<usize>();
        let text = match &p.text {
            Some(t) => format!(
                "CLIP text encoder {} layers × {}, {} tokens",
                t.model.config.tower.num_hidden_layers,
                t.model.config.tower.hidden_size,
                t.max_length
            ),
            None => "no text encoder".into(),
        };
        write!(
            f,
            "DiffusionPipeline[{}px images ↔ {}×{}×{} latents; UNet {:?}, conditioning ×{}; {text}; {} sampling ({}); {:.1}M parameters; {}; {}; {}]",
            p.latent_size() * p.vae_scale(),
            u.in_channels,
            p.latent_size(),
            p.latent_size(),
            u.block_out_channels,
            u.cross_attention_dim,
            match p.scheduler.sampler {
                crate::models::schedulers::Sampler::Ddim => "DDIM",
                crate::models::schedulers::Sampler::Ddpm => "DDPM",
            },
            p.scheduler.source_class,
            (params(&p.unet.vs) + params(&p.vae.vs) + p.text.as_ref().map_or(0, |t| params(&t.vs))) as f64 / 1e6,
            crate::device::name(p.device()),
            kind_name(p.kind),
            if p.source.as_os_str().is_empty() { "fresh weights".to_string() } else { p.source.display().to_string() }
        )
    }
}

const BATCH: OptDoc = OptDoc {
    name: "batch",
    ty: "int",
    default: "8",
    meaning: "images per forward pass",
};
const SEED: OptDoc = OptDoc {
    name: "seed",
    ty: "int",
    default: "none",
    meaning: "seed of the draws (default: set_seed's generator as it is); on the CPU the same seed draws what PyTorch's torch.manual_seed generator draws, so diffusers with generator=torch.manual_seed(seed) starts from the same noise",
};

pub static LOAD_DIFFUSION: FnDoc = FnDoc {
    name: "load_diffusion", domain: "diffusion",
    signature: "load_diffusion(dir: string, opts?: map) -> DiffusionPipeline",
    summary: "A latent diffusion pipeline from a folder in diffusers' StableDiffusionPipeline layout, as downloaded (e.g. Stable Diffusion v1.4/v1.5): model_index.json, unet/ (UNet2DConditionModel), vae/ (AutoencoderKL), text_encoder/ (CLIPTextModel) with tokenizer/ (tokenizer.json, or vocab.json + merges.txt), scheduler/scheduler_config.json. Weights in float16 or bfloat16 are converted on load. Sampling is DDIM over the scheduler's betas (its timestep spacing, offset, prediction type and clipping), or DDPM for a DDPMScheduler config; Stable Diffusion's PNDMScheduler config gives DDIM as in Takagi & Nishimoto's code. A listed part whose folder is missing, or a component of another architecture, is an error naming it.",
    options: &[OptDoc { name: "dtype", ty: "string", default: "\"auto\"", meaning: "auto (float16 on a GPU, float32 on the CPU), float32 or float16" }],
    example: "// let pipe = load_diffusion(\"models/stable-diffusion-v1-5\");\n// print(pipe);   // DiffusionPipeline[512px images ↔ 4×64×64 latents; ...]",
};
pub static DIFFUSION_PIPELINE: FnDoc = FnDoc {
    name: "diffusion_pipeline", domain: "diffusion",
    signature: "diffusion_pipeline(opts?: map) -> DiffusionPipeline",
    summary: "A small latent diffusion pipeline of Stable Diffusion's design with fresh (untrained) weights and no text encoder — conditioned on given N×tokens×cond_dim tensors: an AutoencoderKL (one resnet per level, mid-block attention, scaling factor 1) and a UNet2DConditionModel with spatial transformers at every level (linear projections, GEGLU), Stable Diffusion's scaled-linear DDIM schedule. For CPU experiments and examples; the same code as load_diffusion's.",
    options: &[
        OptDoc { name: "image_size", ty: "int", default: "32", meaning: "pixels per side" },
        OptDoc { name: "vae_channels", ty: "array of int", default: "[16, 32, 32]", meaning: "autoencoder widths per level (each level after the first halves the size)" },
        OptDoc { name: "latent_channels", ty: "int", default: "4", meaning: "latent channels" },
        OptDoc { name: "unet_channels", ty: "array of int", default: "[32, 64]", meaning: "UNet widths per level" },
        OptDoc { name: "cond_dim", ty: "int", default: "32", meaning: "width of the conditioning tokens (cross_attention_dim)" },
        OptDoc { name: "heads", ty: "int", default: "2", meaning: "attention heads" },
        OptDoc { name: "groups", ty: "int", default: "8", meaning: "group-norm groups" },
        OptDoc { name: "seed", ty: "int", default: "none", meaning: "seed of the initial weights" },
    ],
    example: "let pipe = diffusion_pipeline(#{image_size: 32, seed: 0});\nprint(pipe);\nprint([pipe.latent_channels, pipe.latent_size, pipe.cond_dim]);   // [4, 8, 32]",
};
pub static ENCODE_IMAGES: FnDoc = FnDoc {
    name: "encode_images", domain: "diffusion",
    signature: "encode_images(pipe: DiffusionPipeline, images: ImageSet | Tensor, opts?: map) -> Tensor",
    summary: "The autoencoder's latents of images (N×3×H×W in [0, 1], H and W multiples of the VAE's downscale), times its scaling_factor — the z that diffusion works on and that Takagi & Nishimoto predict from early visual cortex: the posterior mean, or a posterior sample (sample: true, as Stable Diffusion's img2img encodes). N×latent_channels×H/f×W/f.",
    options: &[OptDoc { name: "sample", ty: "bool", default: "false", meaning: "a posterior sample instead of its mean" }, SEED, BATCH],
    example: "let pipe = diffusion_pipeline(#{image_size: 32, seed: 0});\nlet z = encode_images(pipe, rand([2, 3, 32, 32]));\nprint(z.shape);   // [2, 4, 8, 8]",
};
pub static TEXT_STATES: FnDoc = FnDoc {
    name: "text_states", domain: "diffusion",
    signature: "text_states(pipe: DiffusionPipeline, captions: array | string, opts?: map) -> Tensor",
    summary: "The conditioning c a pipeline with a text encoder (load_diffusion's, with text_encoder/ and tokenizer/) gives captions: its CLIP text encoder's last hidden states, each caption tokenized, cut and padded to the tokenizer's max length as diffusers' pipelines do — N×tokens×width (N×77×768 for Stable Diffusion v1.x), what generate and reconstruct condition on when given the captions themselves. Takagi & Nishimoto predict these states, flattened, from higher visual cortex with ridge; reconstruct(pipe, #{z, c}) takes the prediction back in this shape. A pipeline without a text encoder (diffusion_pipeline, train_diffusion) is an error.",
    options: &[OptDoc { name: "batch", ty: "int", default: "64", meaning: "captions per forward pass" }],
    example: "let pipe = load_diffusion(\"tests/fixtures/hf/tiny-sd\");\nlet c = text_states(pipe, [\"a red square\", \"a blue circle\"]);\nprint(c.shape);   // [2, 16, 32]: the tokenizer's 16 tokens × the encoder's 32\nprint([pipe.tokens, pipe.cond_dim]);",
};
pub static DECODE_LATENTS: FnDoc = FnDoc {
    name: "decode_latents", domain: "diffusion",
    signature: "decode_latents(pipe: DiffusionPipeline, z: Tensor, opts?: map) -> ImageSet",
    summary: "Images from scaled latents (N×latent_channels×h×w, as encode_images gives or ridge predicts): divided by the scaling_factor, decoded, mapped from [−1, 1] to [0, 1] and clipped, as diffusers' pipelines post-process.",
    options: &[BATCH],
    example: "let pipe = diffusion_pipeline(#{image_size: 32, seed: 0});\nlet images = decode_latents(pipe, encode_images(pipe, rand([2, 3, 32, 32])));\nprint(images);   // ImageSet[2 images; 3×32×32; …]",
};
pub static GENERATE: FnDoc = FnDoc {
    name: "generate", domain: "diffusion",
    signature: "generate(pipe: DiffusionPipeline, conditions: Tensor | array | string, opts?: map) -> ImageSet",
    summary: "Text-to-image: for each conditioning row (N×tokens×cond_dim tensor, or captions through the pipeline's text encoder, padded to its max length as diffusers does), `samples` images from standard-normal latents denoised in `steps` DDIM (or DDPM) steps with classifier-free guidance (the unconditional input is the text encoder's states of \"\" — zeros without a text encoder — and guidance ≤ 1 switches it off), then decoded. Images grouped by row (ids gen0000_0, gen0000_1, …). Step for step diffusers' StableDiffusionPipeline: the same initial latents give its images.",
    options: &[
        OptDoc { name: "steps", ty: "int", default: "50", meaning: "denoising steps (≥ 1)" },
        OptDoc { name: "guidance", ty: "float", default: "7.5", meaning: "classifier-free guidance scale (diffusers' guidance_scale)" },
        OptDoc { name: "eta", ty: "float", default: "0.0", meaning: "DDIM's eta (0: deterministic)" },
        OptDoc { name: "samples", ty: "int", default: "1", meaning: "images per conditioning row" },
        OptDoc { name: "latent_size", ty: "int", default: "none", meaning: "latent side (default: the UNet's sample_size)" },
        SEED,
        BATCH,
    ],
    example: "let pipe = diffusion_pipeline(#{image_size: 32, seed: 0});\nlet c = randn([2, 4, 32]);   // 2 conditions of 4 tokens × cond_dim\nlet images = generate(pipe, c, #{steps: 2, guidance: 3.0, seed: 1});\nprint(images);   // ImageSet[2 images; 3×32×32; …]",
};
pub static DIFFUSION_TYPE: FnDoc = FnDoc {
    name: "DiffusionPipeline", domain: "diffusion",
    signature: "pipe.latent_channels -> int\npipe.latent_size -> int\npipe.image_size -> int\npipe.cond_dim -> int\npipe.tokens -> int or ()\npipe.scaling_factor -> float\npipe.sampler -> string\npipe.save(dir) -> string (the folder written)",
    summary: "A latent diffusion pipeline: the latents' channels and side, the images' side, the conditioning's width (the UNet's cross_attention_dim) and token count (the text encoder's max length; () without one), the VAE's scaling factor, and the sampler (DDIM or DDPM). pipe.save(dir) writes a folder diffusers' StableDiffusionPipeline.from_pretrained reads and load_diffusion reads back: model_index.json, unet/, vae/, scheduler/ and, for a pipeline with a text encoder (one read by load_diffusion), text_encoder/ (CLIPTextModel: config.json, model.safetensors) and tokenizer/ (tokenizer.json, tokenizer_config.json); a pipeline without one lists text_encoder and tokenizer as null.",
    options: &[],
    example: "let pipe = diffusion_pipeline(#{image_size: 32, seed: 0});\nprint([pipe.image_size, pipe.latent_size, pipe.cond_dim, pipe.sampler]);\npipe.save(\"pipe\");",
};

fn positive(op: &'static str, key: &str, v: i64) -> Result<i64> {
    if v < 1 {
        return Err(Error::BadOption {
            op,
            key: key.into(),
            expected: "an integer ≥ 1".into(),
            got: v.to_string(),
        });
    }
    Ok(v)
}

fn int_list(o: &Opts, key: &str, default: Vec<i64>) -> Result<Vec<i64>> {
    match o.opt_f64_list(key)? {
        None => Ok(default),
        Some(v) => v
            .iter()
            .map(|&x| {
                if x >= 1.0 && x.fract() == 0.0 {
                    Ok(x as i64)
                } else {
                    Err(Error::BadOption {
                        op: o.op(),
                        key: key.into(),
                        expected: "positive integers".into(),
                        got: format!("{v:?}"),
                    })
                }
            })
            .collect(),
    }
}

fn pipeline_arg(v: &PipelineValue) -> &DiffusionPipeline {
    &v.0
}

/// Conditioning from a tensor, a caption or an array of captions.
fn conditioning(op: &'static str, v: &Dynamic) -> Result<Conditioning> {
    if v.is_string()
        || v.is_array()
            && v.read_lock::<rhai::Array>()
                .is_some_and(|a| a.iter().all(|x| x.is_string()))
    {
        return Ok(Conditioning::Captions(super::nets::texts_named(
            op, "captions", v,
        )?));
    }
    let t = to_tensor(op, "conditions", v).map_err(|_| {
        Error::invalid(
            op,
            format!(
                "conditions: expected a Tensor (N×tokens×d) or captions (strings), got {}",
                v.type_name()
            ),
        )
    })?;
    Ok(Conditioning::States(t.0))
}

fn image_set(images: tch::Tensor, prefix: &str, per: i64) -> ImageSet {
    let n = images.size()[0];
    ImageSet {
        data: Tensor(images),
        ids: (0..n)
            .map(|i| {
                if per == 1 {
                    format!("{prefix}{i:04}")
                } else {
                    format!("{prefix}{:04}_{}", i / per, i % per)
                }
            })
            .collect(),
    }
}

fn load(dir: &str, opts: Map) -> Result<PipelineValue> {
    const OP: &str = "load_diffusion";
    let o = Opts::parse(&LOAD_DIFFUSION, opts)?;
    let device = crate::device::current();
    let kind = match o.choice("dtype", &["auto", "float32", "float16"])?.as_str() {
        "float16" => tch::Kind::Half,
        "float32" => tch::Kind::Float,
        _ if device.is_cuda() => tch::Kind::Half,
        _ => tch::Kind::Float,
    };
    if kind == tch::Kind::Half && !device.is_cuda() {
        return Err(Error::invalid(
            OP,
            "dtype float16 needs a GPU (use_device(\"cuda\")); on the CPU use float32",
        ));
    }
    Ok(PipelineValue(
        Rc::new(DiffusionPipeline::load(OP, Path::new(dir), device, kind)?),
        None,
    ))
}

fn small(opts: Map) -> Result<PipelineValue> {
    const OP: &str = "diffusion_pipeline";
    let o = Opts::parse(&DIFFUSION_PIPELINE, opts)?;
    let d = SmallDiffusionConfig::default();
    let c = SmallDiffusionConfig {
        image_size: positive(OP, "image_size", o.i64("image_size")?)?,
        vae_channels: int_list(&o, "vae_channels", d.vae_channels)?,
        latent_channels: positive(OP, "latent_channels", o.i64("latent_channels")?)?,
        unet_channels: int_list(&o, "unet_channels", d.unet_channels)?,
        cond_dim: positive(OP, "cond_dim", o.i64("cond_dim")?)?,
        heads: positive(OP, "heads", o.i64("heads")?)?,
        groups: positive(OP, "groups", o.i64("groups")?)?,
    };
    if let Some(s) = o.opt_i64("seed")? {
        crate::device::seed(s);
    }
    Ok(PipelineValue(
        Rc::new(DiffusionPipeline::small(OP, &c, crate::device::current())?),
        None,
    ))
}

fn encode(p: &VaeModel, kind: tch::Kind, x: &Dynamic, opts: Map) -> Result<Tensor> {
    const OP: &str = "encode_images";
    let o = Opts::parse(&ENCODE_IMAGES, opts)?;
    let batch = positive(OP, "batch", o.i64("batch")?)?;
    let sample = o.bool("sample")?;
    if let Some(s) = o.opt_i64("seed")? {
        crate::device::seed(s);
    }
    let x = images(OP, "images", x)?;
    let n = x.size().first().copied().unwrap_or(0);
    if n == 0 {
        return Err(Error::invalid(OP, "images is empty"));
    }
    let mut noise = Noise::Generator;
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        parts.push(
            p.encode_images(OP, &x.narrow(0, start, len), sample, &mut noise, kind)?
                .to_device(tch::Device::Cpu),
        );
        start += len;
    }
    Ok(Tensor(crate::tensor::tc(
        OP,
        tch::Tensor::f_cat(&parts, 0),
    )?))
}

fn text_states(p: &DiffusionPipeline, captions: &Dynamic, opts: Map) -> Result<Tensor> {
    const OP: &str = "text_states";
    let o = Opts::parse(&TEXT_STATES, opts)?;
    let batch = positive(OP, "batch", o.i64("batch")?)?;
    let texts = super::nets::texts_named(OP, "captions", captions)?;
    Ok(Tensor(p.text_states(OP, &texts, batch as usize)?))
}

fn decode(p: &VaeModel, kind: tch::Kind, z: &Dynamic, opts: Map) -> Result<ImageSet> {
    const OP: &str = "decode_latents";
    let o = Opts::parse(&DECODE_LATENTS, opts)?;
    let batch = positive(OP, "batch", o.i64("batch")?)?;
    let z = to_tensor(OP, "z", z)?.0;
    p.vae.check_latents(OP, &z)?;
    let n = z.size()[0];
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        parts.push(p.decode_latents(OP, &z.narrow(0, start, len), kind)?);
        start += len;
    }
    Ok(image_set(
        crate::tensor::tc(OP, tch::Tensor::f_cat(&parts, 0))?,
        "dec",
        1,
    ))
}

/// Sampling options shared by generate and reconstruct; `img2img`: the
/// reconstruct form (strength, no batch or latent_size).
fn generate_options(o: &Opts, op: &'static str, img2img: bool) -> Result<GenerateOptions> {
    let d = GenerateOptions::default();
    Ok(GenerateOptions {
        steps: o.i64("steps")?,
        guidance: o.f64("guidance")?,
        eta: o.f64("eta")?,
        strength: if img2img {
            o.f64("strength")?
        } else {
            d.strength
        },
        seed: o.opt_i64("seed")?,
        samples: positive(op, "samples", o.i64("samples")?)?,
        batch: if img2img {
            d.batch
        } else {
            positive(op, "batch", o.i64("batch")?)?
        },
        latent_size: if img2img {
            None
        } else {
            o.opt_i64("latent_size")?
        },
    })
}

fn generate(p: &DiffusionPipeline, c: &Dynamic, opts: Map) -> Result<ImageSet> {
    const OP: &str = "generate";
    let o = Opts::parse(&GENERATE, opts)?;
    let go = generate_options(&o, OP, false)?;
    if let Some(s) = go.latent_size {
        positive(OP, "latent_size", s)?;
    }
    let images = p.generate(OP, &conditioning(OP, c)?, &go)?;
    Ok(image_set(images, "gen", go.samples))
}

/// The keys `reconstruct(DiffusionPipeline, …)` takes.
const RECONSTRUCT_KEYS: &[&str] = &["strength", "steps", "guidance", "eta", "seed", "samples"];

fn reconstruct(p: &DiffusionPipeline, inputs: Map, opts: Map) -> Result<ImageSet> {
    const OP: &str = "reconstruct";
    let o = super::reconstruction::form_options("DiffusionPipeline", RECONSTRUCT_KEYS, opts)?;
    let go = generate_options(&o, OP, true)?;
    for key in inputs.keys() {
        if !["z", "c", "captions"].contains(&key.as_str()) {
            return Err(Error::invalid(OP, format!("inputs: unknown key '{key}' (reconstruct(DiffusionPipeline, …) reads z and c or captions)")));
        }
    }
    let z = inputs.get("z").ok_or_else(|| {
        Error::invalid(
            OP,
            "inputs: give z, the predicted latents (N×latent_channels×h×w)",
        )
    })?;
    let z = to_tensor(OP, "inputs.z", z)?.0;
    let c = match (inputs.get("c"), inputs.get("captions")) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(OP, "inputs: give c or captions, not both"))
        }
        (Some(c), None) => Conditioning::States(to_tensor(OP, "inputs.c", c)?.0),
        (None, Some(t)) => Conditioning::Captions(super::nets::texts_named(OP, "captions", t)?),
        (None, None) => {
            return Err(Error::invalid(
                OP,
                "inputs: give c (predicted conditioning, N×tokens×d) or captions",
            ))
        }
    };
    p.reconstruct(&ReconstructInputs { z, c }, &go)
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    for doc in [
        &LOAD_DIFFUSION,
        &DIFFUSION_PIPELINE,
        &ENCODE_IMAGES,
        &TEXT_STATES,
        &DECODE_LATENTS,
        &GENERATE,
        &DIFFUSION_TYPE,
        &TRAIN_AUTOENCODER,
        &TRAIN_DIFFUSION,
        &AUTOENCODER_TYPE,
    ] {
        help.add(doc);
    }
    engine.register_type_with_name::<PipelineValue>("DiffusionPipeline");
    engine.register_fn("to_string", |p: &mut PipelineValue| p.to_string());
    engine.register_fn("to_debug", |p: &mut PipelineValue| p.to_string());
    engine.register_get("latent_channels", |p: &mut PipelineValue| {
        p.0.unet.unet.config.in_channels as INT
    });
    engine.register_get("latent_size", |p: &mut PipelineValue| {
        p.0.latent_size() as INT
    });
    engine.register_get("image_size", |p: &mut PipelineValue| {
        (p.0.latent_size() * p.0.vae_scale()) as INT
    });
    engine.register_get("cond_dim", |p: &mut PipelineValue| {
        p.0.unet.unet.config.cross_attention_dim as INT
    });
    engine.register_get("tokens", |p: &mut PipelineValue| {
        p.0.text
            .as_ref()
            .map_or(Dynamic::UNIT, |t| Dynamic::from_int(t.max_length as INT))
    });
    engine.register_get("scaling_factor", |p: &mut PipelineValue| {
        p.0.vae.vae.config.scaling_factor
    });
    engine.register_get("sampler", |p: &mut PipelineValue| {
        match p.0.scheduler.sampler {
            crate::models::schedulers::Sampler::Ddim => "DDIM".to_string(),
            crate::models::schedulers::Sampler::Ddpm => "DDPM".to_string(),
        }
    });

    engine.register_fn("load_diffusion", |d: &str| -> RhaiResult<PipelineValue> {
        guard("load_diffusion", || load(d, Map::new()))
    });
    engine.register_fn(
        "load_diffusion",
        |d: &str, o: Map| -> RhaiResult<PipelineValue> { guard("load_diffusion", || load(d, o)) },
    );
    engine.register_fn("diffusion_pipeline", || -> RhaiResult<PipelineValue> {
        guard("diffusion_pipeline", || small(Map::new()))
    });
    engine.register_fn(
        "diffusion_pipeline",
        |o: Map| -> RhaiResult<PipelineValue> { guard("diffusion_pipeline", || small(o)) },
    );
    engine.register_fn(
        "encode_images",
        |p: PipelineValue, x: Dynamic| -> RhaiResult<Tensor> {
            guard("encode_images", || {
                encode(&p.0.vae, p.0.kind, &x, Map::new())
            })
        },
    );
    engine.register_fn(
        "encode_images",
        |p: PipelineValue, x: Dynamic, o: Map| -> RhaiResult<Tensor> {
            guard("encode_images", || encode(&p.0.vae, p.0.kind, &x, o))
        },
    );
    engine.register_fn(
        "text_states",
        |p: PipelineValue, c: Dynamic| -> RhaiResult<Tensor> {
            guard("text_states", || text_states(&p.0, &c, Map::new()))
        },
    );
    engine.register_fn(
        "text_states",
        |p: PipelineValue, c: Dynamic, o: Map| -> RhaiResult<Tensor> {
            guard("text_states", || text_states(&p.0, &c, o))
        },
    );
    engine.register_fn(
        "decode_latents",
        |p: PipelineValue, z: Dynamic| -> RhaiResult<ImageSet> {
            guard("decode_latents", || {
                decode(&p.0.vae, p.0.kind, &z, Map::new())
            })
        },
    );
    engine.register_fn(
        "decode_latents",
        |p: PipelineValue, z: Dynamic, o: Map| -> RhaiResult<ImageSet> {
            guard("decode_latents", || decode(&p.0.vae, p.0.kind, &z, o))
        },
    );
    engine.register_fn(
        "generate",
        |p: PipelineValue, c: Dynamic| -> RhaiResult<ImageSet> {
            guard("generate", || generate(pipeline_arg(&p), &c, Map::new()))
        },
    );
    engine.register_fn(
        "generate",
        |p: PipelineValue, c: Dynamic, o: Map| -> RhaiResult<ImageSet> {
            guard("generate", || generate(pipeline_arg(&p), &c, o))
        },
    );
    engine.register_fn(
        "reconstruct",
        |p: PipelineValue, i: Map| -> RhaiResult<ImageSet> {
            guard("reconstruct", || {
                reconstruct(pipeline_arg(&p), i, Map::new())
            })
        },
    );
    engine.register_fn(
        "reconstruct",
        |p: PipelineValue, i: Map, o: Map| -> RhaiResult<ImageSet> {
            guard("reconstruct", || reconstruct(pipeline_arg(&p), i, o))
        },
    );

    engine.register_get("history", |p: &mut PipelineValue| {
        p.1.as_ref().map_or(Dynamic::UNIT, |h| {
            Dynamic::from_map(super::train::history_map(h))
        })
    });
    engine.register_type_with_name::<AutoencoderValue>("Autoencoder");
    engine.register_fn("to_string", |a: &mut AutoencoderValue| a.to_string());
    engine.register_fn("to_debug", |a: &mut AutoencoderValue| a.to_string());
    engine.register_get("latent_channels", |a: &mut AutoencoderValue| {
        a.0.vae.config.latent_channels as INT
    });
    engine.register_get("downscale", |a: &mut AutoencoderValue| {
        a.0.vae.config.downscale() as INT
    });
    engine.register_get("scaling_factor", |a: &mut AutoencoderValue| {
        a.0.vae.config.scaling_factor
    });
    engine.register_get("history", |a: &mut AutoencoderValue| {
        a.1.as_ref().map_or(Dynamic::UNIT, |h| {
            Dynamic::from_map(super::train::history_map(h))
        })
    });
    engine.register_fn(
        "encode_images",
        |a: AutoencoderValue, x: Dynamic| -> RhaiResult<Tensor> {
            guard("encode_images", || {
                encode(&a.0, tch::Kind::Float, &x, Map::new())
            })
        },
    );
    engine.register_fn(
        "encode_images",
        |a: AutoencoderValue, x: Dynamic, o: Map| -> RhaiResult<Tensor> {
            guard("encode_images", || encode(&a.0, tch::Kind::Float, &x, o))
        },
    );
    engine.register_fn(
        "decode_latents",
        |a: AutoencoderValue, z: Dynamic| -> RhaiResult<ImageSet> {
            guard("decode_latents", || {
                decode(&a.0, tch::Kind::Float, &z, Map::new())
            })
        },
    );
    engine.register_fn(
        "decode_latents",
        |a: AutoencoderValue, z: Dynamic, o: Map| -> RhaiResult<ImageSet> {
            guard("decode_latents", || decode(&a.0, tch::Kind::Float, &z, o))
        },
    );
    let s = session.clone();
    engine.register_fn(
        "save",
        move |a: &mut AutoencoderValue, path: &str| -> RhaiResult<String> {
            guard("save", || s.save(path, |out| a.0.save("save", out)))
        },
    );
    let s = session.clone();
    engine.register_fn(
        "save",
        move |p: &mut PipelineValue, path: &str| -> RhaiResult<String> {
            guard("save", || s.save(path, |out| p.0.save("save", out)))
        },
    );
    let s = session.clone();
    let train_ae = move |images: Dynamic, opts: Map| -> RhaiResult<AutoencoderValue> {
        guard("train_autoencoder", || train_autoencoder(&images, opts, &s))
    };
    let t2 = train_ae.clone();
    engine.register_fn("train_autoencoder", move |images: Dynamic| {
        t2(images, Map::new())
    });
    engine.register_fn("train_autoencoder", train_ae);
    let s = session.clone();
    let train_dm = move |a: AutoencoderValue,
                         images: Dynamic,
                         c: Dynamic,
                         opts: Map|
          -> RhaiResult<PipelineValue> {
        guard("train_diffusion", || {
            train_diffusion(&a, &images, &c, opts, &s)
        })
    };
    let t2 = train_dm.clone();
    engine.register_fn(
        "train_diffusion",
        move |a: AutoencoderValue, images: Dynamic, c: Dynamic| t2(a, images, c, Map::new()),
    );
    engine.register_fn("train_diffusion", train_dm);
}

pub static TRAIN_AUTOENCODER: FnDoc = FnDoc {
    name: "train_autoencoder", domain: "diffusion",
    signature: "train_autoencoder(images: ImageSet | Tensor, opts?: map) -> Autoencoder",
    summary: "Trains a KL autoencoder of Stable Diffusion's design (the AutoencoderKL code load_diffusion runs, small) on square images in [0, 1] through the one trainer (options shared by every training function: help(\"Training\")): each step encodes, draws a posterior sample, decodes, and minimises L1 + perceptual_weight × a perceptual L1 on a fixed random ResNet18's first stages (Beliy et al.'s weights; the pixel term included) + kl_weight × the KL divergence to N(0, I) (Stable Diffusion's weighting: 1e-6 on per-image sums, here both sides per pixel). Validation loss and L1 each epoch on val_split, best epoch kept. Afterwards the scaling factor is set to 1/std of the training latents (as Stable Diffusion's 0.18215), so encode_images gives unit-variance latents for train_diffusion. channels sets the levels: each after the first halves the size (default: 64 px → 8×8×4).",
    options: crate::training_options!([
        OptDoc { name: "channels", ty: "array of int", default: "[32, 64, 64, 64]", meaning: "widths per level (levels − 1 halvings)" },
        OptDoc { name: "latent_channels", ty: "int", default: "4", meaning: "latent channels" },
        OptDoc { name: "groups", ty: "int", default: "8", meaning: "group-norm groups (dividing every width)" },
        OptDoc { name: "kl_weight", ty: "float", default: "1e-6", meaning: "weight of the KL term" },
        OptDoc { name: "perceptual_weight", ty: "float", default: "1.0", meaning: "weight of the perceptual term" },
        OptDoc { name: "val_split", ty: "float", default: "0.1", meaning: "fraction of the images held out (seeded) for validation" },
    ], epochs: "20", batch: "16", lr: "0.001", optimizer: "adamw", weight_decay: "0.0"),
    example: "let images = rand([6, 3, 16, 16]);\nlet ae = train_autoencoder(images, #{channels: [8, 16], groups: 4, epochs: 1, batch: 4, seed: 0, verbose: false});\nprint(ae);\nlet z = encode_images(ae, images);   // 6×4×8×8\nprint(decode_latents(ae, z));",
};
pub static TRAIN_DIFFUSION: FnDoc = FnDoc {
    name: "train_diffusion", domain: "diffusion",
    signature: "train_diffusion(autoencoder: Autoencoder, images: ImageSet | Tensor, conditions: Tensor, opts?: map) -> DiffusionPipeline",
    summary: "Trains a conditional latent diffusion model of Stable Diffusion's design (the UNet2DConditionModel code load_diffusion runs, small: spatial transformers with cross-attention at every level) on the autoencoder's latents of the images (scaled posterior means), conditioned on `conditions` (N×tokens×d: caption embeddings, CLIP or MiniLM vectors as N×1×d, any sequence), through the one trainer: DDPM's ε-prediction objective with Stable Diffusion's scaled-linear betas over 1000 steps and uniform timesteps; each condition is replaced by zeros with probability cond_dropout, so that generate's and reconstruct's classifier-free guidance has its unconditional input (zeros without a text encoder); an exponential moving average of the weights (ema_decay) becomes the pipeline's weights. Validation loss on fixed timesteps and noise each epoch. The result samples with DDIM (generate, reconstruct) and saves as a diffusers folder (pipe.save).",
    options: crate::training_options!([
        OptDoc { name: "unet_channels", ty: "array of int", default: "[32, 64]", meaning: "UNet widths per level" },
        OptDoc { name: "heads", ty: "int", default: "2", meaning: "attention heads" },
        OptDoc { name: "groups", ty: "int", default: "8", meaning: "group-norm groups" },
        OptDoc { name: "cond_dropout", ty: "float", default: "0.1", meaning: "probability of training a step's condition as unconditional (zeros)" },
        OptDoc { name: "ema_decay", ty: "float", default: "0.999", meaning: "decay of the weights' moving average" },
        OptDoc { name: "val_split", ty: "float", default: "0.1", meaning: "fraction of the pairs held out (seeded) for validation" },
    ], epochs: "30", batch: "32", lr: "0.0003", optimizer: "adamw", weight_decay: "0.0"),
    example: "let images = rand([6, 3, 16, 16]);\nlet ae = train_autoencoder(images, #{channels: [8, 16], groups: 4, epochs: 1, batch: 4, seed: 0, verbose: false});\nlet c = randn([6, 2, 8]);\nlet pipe = train_diffusion(ae, images, c, #{unet_channels: [8, 16], groups: 4, epochs: 1, batch: 4, seed: 0, verbose: false});\nprint(pipe.history.val_loss);\nprint(generate(pipe, c.slice(0, 0, 2), #{steps: 3, guidance: 2.0, seed: 0}));",
};
pub static AUTOENCODER_TYPE: FnDoc = FnDoc {
    name: "Autoencoder", domain: "diffusion",
    signature: "ae.latent_channels -> int\nae.downscale -> int\nae.scaling_factor -> float\nae.history -> map or ()\nae.save(dir) -> string",
    summary: "A KL autoencoder (train_autoencoder): latent channels, pixels per latent along a side, the scaling factor encode_images applies, the training history, and save as a folder diffusers' AutoencoderKL.from_pretrained reads. encode_images and decode_latents take it as they take a pipeline; a DiffusionPipeline's pipe.history and pipe.save(dir) likewise (see DiffusionPipeline).",
    options: &[],
    example: "let ae = train_autoencoder(rand([4, 3, 16, 16]), #{channels: [8, 16], groups: 4, epochs: 1, batch: 4, val_split: 0.25, seed: 0, verbose: false});\nprint([ae.latent_channels, ae.downscale]);   // [4, 2]\nae.save(\"ae\");",
};

fn train_autoencoder(images: &Dynamic, opts: Map, session: &Session) -> Result<AutoencoderValue> {
    const OP: &str = "train_autoencoder";
    let o = Opts::parse(&TRAIN_AUTOENCODER, opts)?;
    let x = images_of(OP, images)?;
    let channels = int_list(&o, "channels", vec![32, 64, 64, 64])?;
    let groups = positive(OP, "groups", o.i64("groups")?)?;
    if let Some(bad) = channels.iter().find(|&&c| c % groups != 0) {
        return Err(Error::BadOption {
            op: OP,
            key: "channels".into(),
            expected: format!("multiples of groups {groups}"),
            got: bad.to_string(),
        });
    }
    let device = crate::device::current();
    let mut train = crate::models::train::TrainConfig::new(OP);
    train.epochs = 20;
    let config = VaeConfig {
        in_channels: 3,
        out_channels: 3,
        latent_channels: positive(OP, "latent_channels", o.i64("latent_channels")?)?,
        block_out_channels: channels,
        layers_per_block: 1,
        norm_num_groups: groups,
        scaling_factor: 1.0,
        shift_factor: None,
        use_quant_conv: true,
        use_post_quant_conv: true,
        mid_block_add_attention: true,
        sample_size: x.size().get(2).copied().unwrap_or(0),
    };
    let t = AutoencoderTraining {
        config,
        kl_weight: o.f64("kl_weight")?,
        perceptual_weight: o.f64("perceptual_weight")?,
        val_split: o.f64("val_split")?,
        train: super::train::train_config_from(&o, OP, train, session)?,
        device,
    };
    let (model, history) = crate::models::vae::train_autoencoder(OP, &x, &t)?;
    Ok(AutoencoderValue(Rc::new(model), Some(Rc::new(history))))
}

fn train_diffusion(
    a: &AutoencoderValue,
    images: &Dynamic,
    c: &Dynamic,
    opts: Map,
    session: &Session,
) -> Result<PipelineValue> {
    const OP: &str = "train_diffusion";
    let o = Opts::parse(&TRAIN_DIFFUSION, opts)?;
    let x = images_of(OP, images)?;
    let c = to_tensor(OP, "conditions", c)?.0;
    let t = crate::models::diffusion::DiffusionTraining {
        unet_channels: int_list(&o, "unet_channels", vec![32, 64])?,
        heads: positive(OP, "heads", o.i64("heads")?)?,
        groups: positive(OP, "groups", o.i64("groups")?)?,
        cond_dropout: o.f64("cond_dropout")?,
        ema_decay: o.f64("ema_decay")?,
        val_split: o.f64("val_split")?,
        train: super::train::train_config_from(
            &o,
            OP,
            crate::models::train::TrainConfig::new(OP),
            session,
        )?,
        device: crate::device::current(),
    };
    let (pipe, history) = crate::models::diffusion::train_diffusion(OP, &a.0, &x, &c, &t)?;
    Ok(PipelineValue(Rc::new(pipe), Some(Rc::new(history))))
}

/// Images (ImageSet or N×3×H×W tensor in [0, 1]).
fn images_of(op: &'static str, v: &Dynamic) -> Result<tch::Tensor> {
    images(op, "images", v)
}
