//! Script face of the captioners ([`crate::models::blip`],
//! [`crate::models::captioner`]): `load_captioner`, `train_captioner`,
//! `caption_features`, `caption`, `caption_retrieval`, and the Captioner type.

use std::path::Path;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, Map, INT};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::session::Session;
use crate::error::{Error, Result};
use crate::models::blip::{Blip, GenerateOptions};
use crate::models::captioner::{self, CaptionerConfig, CaptionerOptions};
use crate::models::train::History;
use crate::tensor::{kind_name, Tensor};

/// A captioner as scripts hold it (shared: Rhai clones values freely), with
/// its training history when train_captioner made it.
#[derive(Clone)]
pub struct CaptionerValue(pub Rc<Blip>, pub Option<Rc<History>>);

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

const BATCH: OptDoc = OptDoc {
    name: "batch",
    ty: "int",
    default: "16",
    meaning: "images per forward pass",
};

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
pub static CAPTION_LAYERS: FnDoc = FnDoc {
    name: "caption_layers", domain: "captions",
    signature: "caption_layers(captioner: Captioner, captions: array, features: Tensor, opts?: map) -> map",
    summary: "The captioner's text-decoder states for each caption read with its image (teacher forcing: [DEC] caption [SEP], cross-attending to the image tokens `features`, N×tokens×d from caption_features), mean-pooled over the caption's tokens: \"embeddings\" and \"layer1\" … \"layerN\", N×hidden each — the BERT-layer features of Takagi & Nishimoto's encoding models (figures 6–7).",
    options: &[BATCH],
    example: "// let cap = load_captioner(\"models/blip-image-captioning-base\");\n// let f = caption_layers(cap, ds.captions, caption_features(cap, ds.images));",
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
    signature: "cap.tokens -> int\ncap.dim -> int\ncap.image_size -> int\ncap.vocab_size -> int\ncap.history -> map or ()\ncap.save(dir) -> string",
    summary: "A BLIP captioner: image tokens per image and their width (the shape caption expects), input size, output vocabulary, the training history (train_captioner's; () for a loaded one), and save as a folder BlipForConditionalGeneration.from_pretrained reads (or one .safetensors file).",
    options: &[],
    example: "// let cap = load_captioner(\"models/blip-image-captioning-base\");\n// print([cap.tokens, cap.dim]);   // [577, 768]\n// cap.save(\"my-captioner\");",
};

pub static TRAIN_CAPTIONER: FnDoc = FnDoc {
    name: "train_captioner", domain: "captions",
    signature: "train_captioner(images: ImageSet | Tensor, captions: array, opts?: map) -> Captioner",
    summary: "Trains a captioner of BLIP's design in voxlab, for when no pretrained one is at hand: image tokens from a small ViT (BLIP's vision model, trained with the decoder on N×3×H×W images in [0, 1], resized to image_size) or from given features; BLIP's text decoder (post-norm BERT blocks, causal self-attention, cross-attention to the image tokens, LM head tied to the word embeddings); MiniLM's WordPiece tokenizer restricted to the word pieces of the training captions (plus [PAD] [UNK] [CLS] [SEP] [MASK] [DEC]), so the output layer stays small. Teacher forcing and cross-entropy through the one trainer (options shared by every training function: help(\"Training\")); validation loss (and val_token_acc) each epoch on val_split, the best epoch's weights kept. The result is a BLIP captioner like load_captioner's: caption_features, caption (greedy and beam search) and save (a folder BlipForConditionalGeneration.from_pretrained reads) work on it. size: \"small\" (default: 32 px / 8 px patches, 17 image tokens × 64, 2 ViT and 2 decoder layers, about 0.3M parameters; minutes on 2 CPU cores) or \"paper\" (BLIP base: ViT-B/16 at 384 px, 12-layer 768-wide decoder; for a GPU and real data); the size options below override it.",
    options: crate::training_options!([
        OptDoc { name: "size", ty: "string", default: "small", meaning: "small or paper (BLIP base sizes)" },
        OptDoc { name: "image_size", ty: "int", default: "none", meaning: "ViT input size (small: 32, paper: 384)" },
        OptDoc { name: "patch_size", ty: "int", default: "none", meaning: "ViT patch size (small: 8, paper: 16)" },
        OptDoc { name: "hidden", ty: "int", default: "none", meaning: "width of the decoder and the ViT (small: 64, paper: 768); the feed-forward is 4× as wide" },
        OptDoc { name: "layers", ty: "int", default: "none", meaning: "text decoder layers (small: 2, paper: 12)" },
        OptDoc { name: "vision_layers", ty: "int", default: "none", meaning: "ViT layers (small: 2, paper: 12)" },
        OptDoc { name: "heads", ty: "int", default: "none", meaning: "attention heads of the decoder and the ViT (small: 4, paper: 12)" },
        OptDoc { name: "max_positions", ty: "int", default: "none", meaning: "most tokens of a caption, [DEC] and [SEP] included (small: 40, paper: 512)" },
        OptDoc { name: "features", ty: "Tensor", default: "none", meaning: "image tokens to train on instead of the ViT (N×tokens×d, tokens = g²+1 as ViT features; the captioner's vision tower then stays untrained: caption such features, not images)" },
        OptDoc { name: "val_split", ty: "float", default: "0.1", meaning: "fraction of the pairs held out (after a seeded shuffle) for validation" },
        OptDoc { name: "tokenizer", ty: "string", default: "none", meaning: "a WordPiece tokenizer.json (or its folder) to restrict (default: MiniLM's, found as text_encoder finds it)" },
    ], epochs: "30", batch: "32", lr: "0.001", optimizer: "adamw", weight_decay: "0.01"),
    example: "let ds = simulate_subject(#{n_train: 24, n_test: 4, test_repeats: 1, image_size: 32, grid: [16, 16, 16], save: false});\nlet cap = train_captioner(ds.images, ds.captions, #{epochs: 2, batch: 8, seed: 0, verbose: false});\nprint(cap.history.val_loss);\nlet z = caption_features(cap, ds.images);   // N×17×64\nprint(caption(cap, z, #{beams: 2, max_len: 16}));",
};
pub static CAPTION_RETRIEVAL: FnDoc = FnDoc {
    name: "caption_retrieval", domain: "captions",
    signature: "caption_retrieval(pred: Tensor, corpus_embeddings: Tensor, corpus_captions: array, opts?: map) -> map",
    summary: "The captions of a corpus nearest to predicted embeddings (N×d, e.g. ridge predictions in MiniLM or CLIP text space) by cosine similarity to the corpus embeddings (M×d, one per corpus caption, same space): a map of arrays, one row per prediction, nearest first — captions (N×k strings), similarity (N×k cosines), index (N×k corpus rows). k is capped at M.",
    options: &[OptDoc { name: "k", ty: "int", default: "5", meaning: "captions per prediction" }],
    example: "let corpus = [\"a red circle\", \"a blue square\", \"a green star\"];\nlet e = tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]);\nlet r = caption_retrieval(tensor([[0.9, 0.1]]), e, corpus, #{k: 2});\nprint(r.captions[0]);     // [\"a red circle\", \"a green star\"]\nprint(r.similarity[0]);",
};

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
    for doc in [
        &LOAD_CAPTIONER,
        &TRAIN_CAPTIONER,
        &CAPTION_FEATURES,
        &CAPTION_LAYERS,
        &CAPTION,
        &CAPTION_RETRIEVAL,
        &CAPTIONER_TYPE,
    ] {
        help.add(doc);
    }
    engine.register_type_with_name::<CaptionerValue>("Captioner");
    engine.register_fn("to_string", |m: &mut CaptionerValue| m.to_string());
    engine.register_fn("to_debug", |m: &mut CaptionerValue| m.to_string());
    engine.register_get("tokens", |m: &mut CaptionerValue| {
        m.0.feature_shape().0 as INT
    });
    engine.register_get("dim", |m: &mut CaptionerValue| m.0.feature_shape().1 as INT);
    engine.register_get("image_size", |m: &mut CaptionerValue| {
        m.0.vision.config.image_size as INT
    });
    engine.register_get("vocab_size", |m: &mut CaptionerValue| {
        m.0.text.config.vocab_size as INT
    });
    engine.register_get("history", |m: &mut CaptionerValue| {
        m.1.as_ref().map_or(Dynamic::UNIT, |h| {
            Dynamic::from_map(super::train::history_map(h))
        })
    });
    let s = session.clone();
    let train =
        move |images: Dynamic, captions: Dynamic, opts: Map| -> RhaiResult<CaptionerValue> {
            guard("train_captioner", || {
                const OP: &str = "train_captioner";
                let o = Opts::parse(&TRAIN_CAPTIONER, opts)?;
                let captions = super::nets::texts_named(OP, "captions", &captions)?;
                let mut config = CaptionerConfig::parse(OP, &o.string("size")?)?;
                let int = |key: &str, v: &mut i64| -> Result<()> {
                    if let Some(x) = o.opt_i64(key)? {
                        *v = x;
                    }
                    Ok(())
                };
                int("image_size", &mut config.image_size)?;
                int("patch_size", &mut config.patch_size)?;
                int("layers", &mut config.layers)?;
                int("vision_layers", &mut config.vision_layers)?;
                int("max_positions", &mut config.max_positions)?;
                if let Some(h) = o.opt_i64("hidden")? {
                    (
                        config.hidden,
                        config.vision_hidden,
                        config.mlp,
                        config.vision_mlp,
                    ) = (h, h, 4 * h, 4 * h);
                }
                if let Some(h) = o.opt_i64("heads")? {
                    (config.heads, config.vision_heads) = (h, h);
                }
                let features = match o.raw("features") {
                    Some(f) if !f.is_unit() => Some(
                        super::tensor::to_tensor(OP, "features", &f)
                            .map_err(|_| Error::BadOption {
                                op: OP,
                                key: "features".into(),
                                expected: "a Tensor (N×tokens×d)".into(),
                                got: f.type_name().to_string(),
                            })?
                            .0,
                    ),
                    _ => None,
                };
                let device = crate::device::current();
                let defaults = CaptionerOptions::new(device);
                let opts = CaptionerOptions {
                    config,
                    features,
                    val_split: o.f64("val_split")?,
                    tokenizer: o.opt_string("tokenizer")?.map(Into::into),
                    device,
                    train: super::train::train_config_from(&o, OP, defaults.train, &s)?,
                };
                let images = if opts.features.is_some() && images.is_unit() {
                    None
                } else {
                    let (t, _) = super::data::images_of(OP, "images", &images)?;
                    Some(crate::data::images::as_batch(OP, &t)?)
                };
                if let (Some(x), Some(f)) = (&images, &opts.features) {
                    if x.size()[0] != f.size()[0] {
                        return Err(Error::invalid(
                            OP,
                            format!(
                                "{} images but features has {} rows",
                                x.size()[0],
                                f.size()[0]
                            ),
                        ));
                    }
                }
                let (blip, history) =
                    captioner::train_captioner(images.as_ref(), &captions, &opts)?;
                Ok(CaptionerValue(Rc::new(blip), Some(Rc::new(history))))
            })
        };
    let train2 = train.clone();
    engine.register_fn("train_captioner", move |x: Dynamic, c: Dynamic| {
        train2(x, c, Map::new())
    });
    engine.register_fn("train_captioner", train);
    let retrieval =
        |pred: Tensor, corpus: Tensor, captions: Dynamic, opts: Map| -> RhaiResult<Map> {
            guard("caption_retrieval", || {
                const OP: &str = "caption_retrieval";
                let o = Opts::parse(&CAPTION_RETRIEVAL, opts)?;
                let captions = super::nets::texts_named(OP, "corpus_captions", &captions)?;
                let k = o.i64("k")?;
                if k < 1 {
                    return Err(Error::BadOption {
                        op: OP,
                        key: "k".into(),
                        expected: "an integer ≥ 1".into(),
                        got: k.to_string(),
                    });
                }
                let m = corpus.0.size().first().copied().unwrap_or(0);
                if corpus.0.dim() == 2 && m != captions.len() as i64 {
                    return Err(Error::invalid(
                        OP,
                        format!(
                            "corpus_embeddings has {m} rows but corpus_captions has {} captions",
                            captions.len()
                        ),
                    ));
                }
                let r = crate::eval::retrieval::retrieve(OP, &pred.0, &corpus.0, k as usize)?;
                let rows = |f: &dyn Fn(usize, usize) -> Dynamic| -> Dynamic {
                    Dynamic::from_array(
                        r.index
                            .iter()
                            .enumerate()
                            .map(|(i, row)| {
                                Dynamic::from_array((0..row.len()).map(|j| f(i, j)).collect())
                            })
                            .collect(),
                    )
                };
                let mut out = Map::new();
                out.insert(
                    "captions".into(),
                    rows(&|i, j| Dynamic::from(captions[r.index[i][j] as usize].clone())),
                );
                out.insert(
                    "similarity".into(),
                    rows(&|i, j| Dynamic::from_float(r.similarity[i][j])),
                );
                out.insert(
                    "index".into(),
                    rows(&|i, j| Dynamic::from_int(r.index[i][j] as INT)),
                );
                Ok(out)
            })
        };
    engine.register_fn(
        "caption_retrieval",
        move |p: Tensor, c: Tensor, t: Dynamic| retrieval(p, c, t, Map::new()),
    );
    engine.register_fn("caption_retrieval", retrieval);
    engine.register_fn(
        "load_captioner",
        |dir: &str| -> RhaiResult<CaptionerValue> {
            guard("load_captioner", || {
                Ok(CaptionerValue(
                    Rc::new(Blip::load(
                        "load_captioner",
                        Path::new(dir),
                        crate::device::current(),
                    )?),
                    None,
                ))
            })
        },
    );
    let features = |m: &mut CaptionerValue, images: Dynamic, opts: Map| -> RhaiResult<Tensor> {
        guard("caption_features", || {
            const OP: &str = "caption_features";
            let o = Opts::parse(&CAPTION_FEATURES, opts)?;
            let (t, _) = super::data::images_of(OP, "images", &images)?;
            let batch = crate::data::images::as_batch(OP, &t)?;
            Ok(Tensor(m.0.features(
                OP,
                &batch,
                batch_of(&o)?,
                o.bool("pool")?,
            )?))
        })
    };
    engine.register_fn(
        "caption_features",
        move |m: &mut CaptionerValue, i: Dynamic| features(m, i, Map::new()),
    );
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
    let layers = |m: &mut CaptionerValue,
                  captions: Dynamic,
                  features: Tensor,
                  opts: Map|
     -> RhaiResult<Map> {
        guard("caption_layers", || {
            const OP: &str = "caption_layers";
            let o = Opts::parse(&CAPTION_LAYERS, opts)?;
            let texts = super::nets::texts_named(OP, "captions", &captions)?;
            Ok(m.0
                .decoder_layers(OP, &texts, &features.0, batch_of(&o)?)?
                .into_iter()
                .map(|(k, t)| (k.into(), Dynamic::from(Tensor(t))))
                .collect())
        })
    };
    engine.register_fn(
        "caption_layers",
        move |m: &mut CaptionerValue, c: Dynamic, f: Tensor| layers(m, c, f, Map::new()),
    );
    engine.register_fn("caption_layers", layers);
    engine.register_fn("caption", move |m: &mut CaptionerValue, f: Tensor| {
        caption(m, f, Map::new())
    });
    engine.register_fn("caption", caption);
    let s = session.clone();
    engine.register_fn(
        "save",
        move |m: &mut CaptionerValue, path: &str| -> RhaiResult<String> {
            guard("save", || s.save(path, |out| m.0.save("save", out)))
        },
    );
}
