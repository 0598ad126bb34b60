//! Script face of the captioners ([`crate::models::blip`]): `load_captioner`,
//! `caption_features`, `caption`, and the Captioner type.

use std::path::Path;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, Map, INT};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::session::Session;
use crate::error::{Error, Result};
use crate::models::blip::{Blip, GenerateOptions};
use crate::tensor::{kind_name, Tensor};

/// A captioner as scripts hold it (shared: Rhai clones values freely).
#[derive(Clone)]
pub struct CaptionerValue(pub Rc<Blip>);

impl std::fmt::Display for CaptionerValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.0;
        let v = &m.vision.config;
        let t = &m.text.config;
        let (tokens, d) = m.feature_shape();
        write!(
            f,
            "Captioner[BLIP: ViT {}px/{} × {} layers, text decoder {} layers × {}; features {tokens}×{d}; {:.1}M parameters; {}; {}; {}]",
            v.image_size,
            v.patch_size,
            v.num_hidden_layers,
            t.num_hidden_layers,
            t.hidden_size,
            m.parameter_count() as f64 / 1e6,
            crate::device::name(m.vs.device()),
            kind_name(m.vs.kind()),
            m.source.display()
        )
    }
}

const BATCH: OptDoc = OptDoc { name: "batch", ty: "int", default: "16", meaning: "images per forward pass" };

pub static LOAD_CAPTIONER: FnDoc = FnDoc {
    name: "load_captioner", domain: "captions",
    signature: "load_captioner(dir: string) -> Captioner",
    summary: "A BLIP captioner from a folder in transformers' BlipForConditionalGeneration layout (config.json, model.safetensors, tokenizer.json, preprocessor_config.json), e.g. Salesforce/blip-image-captioning-base or -large as downloaded from the hub, or a .safetensors file written by Captioner.save. Folders of other architectures are refused.",
    options: &[],
    example: "// let cap = load_captioner(\"models/blip-image-captioning-base\");\n// print(cap);   // Captioner[BLIP: ViT 384px/16 × 12 layers, text decoder 12 layers × 768; ...]",
};
pub static CAPTION_FEATURES: FnDoc = FnDoc {
    name: "caption_features", domain: "captions",
    signature: "caption_features(captioner: Captioner, images: ImageSet | Tensor, opts?: map) -> Tensor",
    summary: "The image tokens the captioner's text decoder reads (the vision model's last hidden state, N×tokens×d: 577×768 for BLIP base) after BlipImageProcessor's steps (each image as 8 bits, resized to image_size×image_size with torchvision's bicubic as transformers 5 does, CLIP mean/std); with pool: true the pooled class token (N×d), the vision model's pooler_output. These are what ridge predicts from the brain (Takagi & Nishimoto's z).",
    options: &[BATCH, OptDoc { name: "pool", ty: "bool", default: "false", meaning: "return the pooled class token (N×d) instead of every image token" }],
    example: "// let cap = load_captioner(\"models/blip-image-captioning-base\");\n// let z = caption_features(cap, load_images(\"stimuli\"));   // N×577×768",
};
pub static CAPTION: FnDoc = FnDoc {
    name: "caption", domain: "captions",
    signature: "caption(captioner: Captioner, features: Tensor, opts?: map) -> array",
    summary: "One caption per image from image-token features (N×tokens×d, true or predicted from the brain), generated as transformers' BlipForConditionalGeneration.generate does: the decoder starts from [DEC] (or the prompt), [SEP] ends a caption. Beam search and greedy decoding (beams: 1) give transformers' token ids exactly; sampling draws from the top-p nucleus (seeded; not token-equal to transformers). max_len and min_len count tokens as transformers' max_length/min_length do, the start token included.",
    options: &[
        OptDoc { name: "beams", ty: "int", default: "3", meaning: "beam width (1: greedy); length_penalty 1 and early_stopping false, as transformers' defaults" },
        OptDoc { name: "max_len", ty: "int", default: "20", meaning: "most tokens of a caption, start token included" },
        OptDoc { name: "min_len", ty: "int", default: "5", meaning: "[SEP] is forbidden before this many tokens" },
        OptDoc { name: "repetition_penalty", ty: "float", default: "1.5", meaning: "transformers' RepetitionPenaltyLogitsProcessor (1: none), as the paper" },
        OptDoc { name: "sample", ty: "bool", default: "false", meaning: "nucleus sampling instead of beam search (one draw per image)" },
        OptDoc { name: "top_p", ty: "float", default: "0.9", meaning: "nucleus mass when sampling" },
        OptDoc { name: "seed", ty: "int", default: "none", meaning: "seed of the draws when sampling (default: drawn from set_seed's generator)" },
        OptDoc { name: "prompt", ty: "string", default: "none", meaning: "text every caption starts with, e.g. \"a picture of\" (BLIP's conditional captioning)" },
        BATCH,
    ],
    example: "// let cap = load_captioner(\"models/blip-image-captioning-base\");\n// let z = caption_features(cap, load_images(\"stimuli\"));\n// print(caption(cap, z, #{beams: 3, max_len: 20, min_len: 5}));",
};
pub static CAPTIONER_TYPE: FnDoc = FnDoc {
    name: "Captioner", domain: "captions",
    signature: "cap.tokens -> int\ncap.dim -> int\ncap.image_size -> int\ncap.save(dir) -> string",
    summary: "A BLIP captioner: image tokens per image and their width (the shape caption expects), input size, and save as a folder BlipForConditionalGeneration.from_pretrained reads (or one .safetensors file).",
    options: &[],
    example: "// let cap = load_captioner(\"models/blip-image-captioning-base\");\n// print([cap.tokens, cap.dim]);   // [577, 768]\n// cap.save(\"my-captioner\");",
};

fn batch_of(o: &Opts) -> Result<usize> {
    let b = o.i64("batch")?;
    if b < 1 {
        return Err(Error::BadOption { op: o.op(), key: "batch".into(), expected: "an integer ≥ 1".into(), got: b.to_string() });
    }
    Ok(b as usize)
}

fn generate_options(o: &Opts) -> Result<GenerateOptions> {
    let g = GenerateOptions {
        beams: o.i64("beams")?,
        max_len: o.i64("max_len")?,
        min_len: o.i64("min_len")?,
        repetition_penalty: o.f64("repetition_penalty")?,
        sample: o.bool("sample")?,
        top_p: o.f64("top_p")?,
        seed: o.opt_i64("seed")?.map(|s| s as u64),
        prompt: o.opt_string("prompt")?,
        ..GenerateOptions::default()
    };
    g.validate(o.op())?;
    Ok(g)
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    for doc in [&LOAD_CAPTIONER, &CAPTION_FEATURES, &CAPTION, &CAPTIONER_TYPE] {
        help.add(doc);
    }
    engine.register_type_with_name::<CaptionerValue>("Captioner");
    engine.register_fn("to_string", |m: &mut CaptionerValue| m.to_string());
    engine.register_fn("to_debug", |m: &mut CaptionerValue| m.to_string());
    engine.register_get("tokens", |m: &mut CaptionerValue| m.0.feature_shape().0 as INT);
    engine.register_get("dim", |m: &mut CaptionerValue| m.0.feature_shape().1 as INT);
    engine.register_get("image_size", |m: &mut CaptionerValue| m.0.vision.config.image_size as INT);
    engine.register_fn("load_captioner", |dir: &str| -> RhaiResult<CaptionerValue> {
        guard("load_captioner", || {
            Ok(CaptionerValue(Rc::new(Blip::load("load_captioner", Path::new(dir), crate::device::current())?)))
        })
    });
    let features = |m: &mut CaptionerValue, images: Dynamic, opts: Map| -> RhaiResult<Tensor> {
        guard("caption_features", || {
            const OP: &str = "caption_features";
            let o = Opts::parse(&CAPTION_FEATURES, opts)?;
            let (t, _) = super::data::images_of(OP, &images)?;
            let batch = crate::data::images::as_batch(OP, &t)?;
            Ok(Tensor(m.0.features(OP, &batch, batch_of(&o)?, o.bool("pool")?)?))
        })
    };
    engine.register_fn("caption_features", move |m: &mut CaptionerValue, i: Dynamic| features(m, i, Map::new()));
    engine.register_fn("caption_features", features);
    let caption = |m: &mut CaptionerValue, features: Tensor, opts: Map| -> RhaiResult<Array> {
        guard("caption", || {
            const OP: &str = "caption";
            let o = Opts::parse(&CAPTION, opts)?;
            let g = generate_options(&o)?;
            let texts = m.0.caption(OP, &features.0, &g, batch_of(&o)?)?;
            Ok(texts.into_iter().map(Dynamic::from).collect())
        })
    };
    engine.register_fn("caption", move |m: &mut CaptionerValue, f: Tensor| caption(m, f, Map::new()));
    engine.register_fn("caption", caption);
    let s = session.clone();
    engine.register_fn("save", move |m: &mut CaptionerValue, path: &str| -> RhaiResult<String> {
        guard("save", || s.save(path, |out| m.0.save("save", out)))
    });
}
