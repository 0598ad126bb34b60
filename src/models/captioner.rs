//! The captioner trained in voxlab (`train_captioner`): BLIP's design at a
//! size of one's choosing, built as a [`Blip`] so that `caption_features`,
//! `caption` (greedy and beam search, the same generation code) and `save`
//! (a folder `BlipForConditionalGeneration.from_pretrained` reads) work on it
//! as on a downloaded BLIP.
//!
//! - Image tokens come from BLIP's ViT at a small size (trained with the
//!   decoder), or from given features (N×tokens×d, tokens = g²+1 as a ViT
//!   gives them: the vision tower then keeps its random weights and only the
//!   decoder is trained; caption those features, not images).
//! - The text decoder is BLIP's: post-norm BERT blocks with causal
//!   self-attention and cross-attention to the image tokens, the LM head
//!   tied to the word embeddings.
//! - The tokenizer is MiniLM's WordPiece (tokenizer.json from
//!   [`find_minilm`]) restricted to the word pieces the training captions
//!   use: a WordPiece tokenizer.json with the same normaliser and
//!   pre-tokeniser whose vocabulary is BLIP's special tokens ([PAD] [UNK]
//!   [CLS] [SEP] [MASK] [DEC]) and those pieces, so the output layer stays
//!   small. Greedy longest-match WordPiece splits every training word as the
//!   full vocabulary does; config.json's `voxlab.source_token_ids` maps each
//!   id back to MiniLM's.
//! - Trained with teacher forcing and cross-entropy (pad targets ignored)
//!   through the one trainer ([`train::fit`]); validation loss each epoch on
//!   a held-out split, best-epoch weights kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{json, Value};
use tch::{Device, Kind, Reduction, Tensor};

use super::blip::Blip;
use super::text::find_minilm;
use super::train::{
    self, History, LossTask, Metrics, OptimConfig, Optimizer, Schedule, TrainConfig,
};
use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

const OP: &str = "train_captioner";

/// The special tokens of the restricted vocabulary, ids 0–5 (BLIP's names).
pub const SPECIALS: [&str; 6] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"];
const PAD: i64 = 0;
const SEP: i64 = 3;
const DEC: i64 = 5;

/// Sizes of the trained captioner.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionerConfig {
    pub image_size: i64,
    pub patch_size: i64,
    pub vision_hidden: i64,
    pub vision_layers: i64,
    pub vision_heads: i64,
    pub vision_mlp: i64,
    pub hidden: i64,
    pub layers: i64,
    pub heads: i64,
    pub mlp: i64,
    /// Most tokens of a caption ([DEC] and [SEP] included).
    pub max_positions: i64,
    pub dropout: f64,
}

impl CaptionerConfig {
    /// The default: trains in minutes on 2 CPU cores (32 px images in 8 px
    /// patches: 17 image tokens of width 64; 2 + 2 layers).
    pub fn small() -> CaptionerConfig {
        CaptionerConfig {
            image_size: 32,
            patch_size: 8,
            vision_hidden: 64,
            vision_layers: 2,
            vision_heads: 4,
            vision_mlp: 256,
            hidden: 64,
            layers: 2,
            heads: 4,
            mlp: 256,
            max_positions: 40,
            dropout: 0.0,
        }
    }

    /// BLIP base's sizes (ViT-B/16 at 384 px, 12-layer 768-wide decoder;
    /// Li et al. 2022), for a GPU and real images.
    pub fn paper() -> CaptionerConfig {
        CaptionerConfig {
            image_size: 384,
            patch_size: 16,
            vision_hidden: 768,
            vision_layers: 12,
            vision_heads: 12,
            vision_mlp: 3072,
            hidden: 768,
            layers: 12,
            heads: 12,
            mlp: 3072,
            max_positions: 512,
            dropout: 0.0,
        }
    }

    pub fn parse(op: &'static str, name: &str) -> Result<CaptionerConfig> {
        super::size_preset(op, name, CaptionerConfig::small, CaptionerConfig::paper)
    }

    pub fn validate(&self, op: &'static str) -> Result<()> {
        let bad = |key: &str, expected: &str, got: i64| Error::BadOption {
            op,
            key: key.into(),
            expected: expected.into(),
            got: got.to_string(),
        };
        for (k, v) in [
            ("layers", self.layers),
            ("vision_layers", self.vision_layers),
            ("heads", self.heads),
            ("hidden", self.hidden),
            ("patch_size", self.patch_size),
        ] {
            if v < 1 {
                return Err(bad(k, "an integer ≥ 1", v));
            }
        }
        if self.hidden % self.heads != 0 {
            return Err(bad(
                "hidden",
                &format!("a multiple of heads ({})", self.heads),
                self.hidden,
            ));
        }
        if self.vision_hidden % self.vision_heads != 0 {
            return Err(bad(
                "hidden",
                &format!(
                    "a multiple of heads ({}) for the vision tower",
                    self.vision_heads
                ),
                self.vision_hidden,
            ));
        }
        if self.image_size < self.patch_size || self.image_size % self.patch_size != 0 {
            return Err(bad(
                "image_size",
                &format!("a multiple of patch_size ({})", self.patch_size),
                self.image_size,
            ));
        }
        Ok(())
    }
}

/// Everything `train_captioner` is told.
pub struct CaptionerOptions {
    pub config: CaptionerConfig,
    /// Image tokens to caption from instead of images (N×tokens×d).
    pub features: Option<Tensor>,
    /// Fraction of the pairs held out (after a seeded shuffle) for validation.
    pub val_split: f64,
    /// A tokenizer.json (or a folder with one) of a WordPiece tokenizer; None: MiniLM's.
    pub tokenizer: Option<PathBuf>,
    pub device: Device,
    pub train: TrainConfig,
}

impl CaptionerOptions {
    /// train_captioner's defaults: the small config, 30 epochs of 32 pairs,
    /// AdamW at lr 1e-3 with weight decay 0.01, 10 % validation, keeping the
    /// epoch of lowest validation loss.
    pub fn new(device: Device) -> CaptionerOptions {
        let mut train = TrainConfig::new(OP);
        train.epochs = 30;
        train.batch = 32;
        train.optim = OptimConfig {
            optimizer: Optimizer::adamw(),
            lr: 1e-3,
            weight_decay: 0.01,
            schedule: Schedule::Constant,
            clip_grad_norm: None,
        };
        train.verbose = true;
        CaptionerOptions {
            config: CaptionerConfig::small(),
            features: None,
            val_split: 0.1,
            tokenizer: None,
            device,
            train,
        }
    }
}

/// A WordPiece tokenizer restricted to the pieces some texts use.
pub struct Vocabulary {
    pub tokenizer: tokenizers::Tokenizer,
    /// For each id of the restricted vocabulary, the source tokenizer's id
    /// (-1 for a special token it lacks, such as [DEC]).
    pub source_ids: Vec<i64>,
}

/// The tokenizer.json at `path` (or in the folder `path`), restricted to
/// BLIP's special tokens and the pieces of `texts`.
pub fn restricted_vocabulary(
    op: &'static str,
    path: &Path,
    texts: &[String],
) -> Result<Vocabulary> {
    let path = if path.is_dir() {
        path.join("tokenizer.json")
    } else {
        path.to_path_buf()
    };
    let text = crate::io::read_text(op, &path)?;
    let bad = |msg: String| Error::format(op, &path, msg);
    let mut base = tokenizers::Tokenizer::from_str(&text)
        .map_err(|e| bad(format!("not a tokenizer.json: {e}")))?;
    base.with_padding(None);
    base.with_truncation(None).map_err(|e| bad(e.to_string()))?;
    let mut v: Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    if v["model"]["type"] != "WordPiece" {
        return Err(bad(format!(
            "model.type is {}: train_captioner restricts WordPiece tokenizers (BERT, MiniLM)",
            v["model"]["type"]
        )));
    }
    let mut pieces: BTreeMap<i64, String> = BTreeMap::new();
    for t in texts {
        let enc = base
            .encode(t.as_str(), false)
            .map_err(|e| Error::invalid(op, format!("tokenizer failed: {e}")))?;
        for (&id, tok) in enc.get_ids().iter().zip(enc.get_tokens()) {
            if !SPECIALS.contains(&tok.as_str()) {
                pieces.insert(id as i64, tok.clone());
            }
        }
    }
    let mut vocab = serde_json::Map::new();
    let mut source_ids = Vec::new();
    let mut added = Vec::new();
    for (i, s) in SPECIALS.iter().enumerate() {
        vocab.insert(s.to_string(), json!(i));
        source_ids.push(base.token_to_id(s).map_or(-1, |x| x as i64));
        added.push(json!({"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}));
    }
    for (id, tok) in &pieces {
        vocab.insert(tok.clone(), json!(source_ids.len()));
        source_ids.push(*id);
    }
    v["model"]["vocab"] = Value::Object(vocab);
    v["model"]["unk_token"] = json!("[UNK]");
    v["added_tokens"] = Value::Array(added);
    v["truncation"] = Value::Null;
    v["padding"] = Value::Null;
    if let Some(st) = v["post_processor"]
        .get_mut("special_tokens")
        .and_then(Value::as_object_mut)
    {
        for (name, id) in [("[CLS]", 2), ("[SEP]", 3)] {
            if let Some(t) = st.get_mut(name) {
                t["ids"] = json!([id]);
            }
        }
    }
    let tokenizer = tokenizers::Tokenizer::from_str(&v.to_string())
        .map_err(|e| bad(format!("restricted tokenizer: {e}")))?;
    Ok(Vocabulary {
        tokenizer,
        source_ids,
    })
}

/// transformers' BlipConfig for these sizes (what `save` writes as config.json).
fn blip_config(c: &CaptionerConfig, vocab: &Vocabulary, vision_trained: bool) -> Value {
    json!({
        "architectures": ["BlipForConditionalGeneration"],
        "model_type": "blip",
        "label_smoothing": 0.0,
        "tie_word_embeddings": true,
        "text_config": {
            "model_type": "blip_text_model",
            "vocab_size": vocab.source_ids.len(),
            "hidden_size": c.hidden,
            "encoder_hidden_size": c.vision_hidden,
            "intermediate_size": c.mlp,
            "num_hidden_layers": c.layers,
            "num_attention_heads": c.heads,
            "max_position_embeddings": c.max_positions,
            "hidden_act": "gelu",
            "hidden_dropout_prob": c.dropout,
            "attention_probs_dropout_prob": 0.0,
            "layer_norm_eps": 1e-12,
            "bos_token_id": DEC,
            "pad_token_id": PAD,
            "sep_token_id": SEP,
            "eos_token_id": SEP,
            "is_decoder": true,
            "tie_word_embeddings": true,
            "label_smoothing": 0.0
        },
        "vision_config": {
            "model_type": "blip_vision_model",
            "hidden_size": c.vision_hidden,
            "intermediate_size": c.vision_mlp,
            "num_hidden_layers": c.vision_layers,
            "num_attention_heads": c.vision_heads,
            "image_size": c.image_size,
            "patch_size": c.patch_size,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-5,
            "attention_dropout": 0.0
        },
        "voxlab": {
            "trained_by": "train_captioner",
            "vision_tower": if vision_trained { "trained with the decoder" } else { "untrained: the decoder was trained on given features" },
            "source_token_ids": vocab.source_ids
        }
    })
}

/// The side files of a saved captioner: BlipImageProcessor's and the
/// tokenizer's configs.
fn side_files(c: &CaptionerConfig, max_len: i64) -> Vec<(String, String)> {
    let pre = json!({
        "do_convert_rgb": true, "do_normalize": true, "do_rescale": true, "do_resize": true,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "BlipImageProcessor",
        "processor_class": "BlipProcessor",
        "resample": 3, "rescale_factor": 0.00392156862745098,
        "size": {"height": c.image_size, "width": c.image_size}
    });
    let tok = json!({
        "backend": "tokenizers", "tokenizer_class": "BertTokenizer", "do_lower_case": true,
        "bos_token": "[DEC]", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "unk_token": "[UNK]", "mask_token": "[MASK]", "model_max_length": max_len,
        "processor_class": "BlipProcessor"
    });
    vec![
        (
            "preprocessor_config.json".into(),
            serde_json::to_string_pretty(&pre).unwrap_or_default(),
        ),
        (
            "tokenizer_config.json".into(),
            serde_json::to_string_pretty(&tok).unwrap_or_default(),
        ),
    ]
}

/// Captions as padded token rows: [DEC] pieces [SEP], N×L.
fn caption_ids(
    op: &'static str,
    tok: &tokenizers::Tokenizer,
    captions: &[String],
    max_positions: i64,
) -> Result<Tensor> {
    let mut rows = Vec::with_capacity(captions.len());
    for (i, c) in captions.iter().enumerate() {
        let enc = tok
            .encode(c.as_str(), true)
            .map_err(|e| Error::invalid(op, format!("tokenizer failed: {e}")))?;
        let mut ids: Vec<i64> = enc.get_ids().iter().map(|&x| x as i64).collect();
        if ids.len() < 3 {
            return Err(Error::invalid(
                op,
                format!("captions[{i}] has no words: {c:?}"),
            ));
        }
        ids[0] = DEC;
        if ids.len() as i64 > max_positions {
            return Err(Error::invalid(
                op,
                format!("captions[{i}] has {} tokens with [DEC] and [SEP], more than the decoder's {max_positions} positions (max_positions)", ids.len()),
            ));
        }
        rows.push(ids);
    }
    let l = rows.iter().map(Vec::len).max().unwrap_or(0);
    let flat: Vec<i64> = rows
        .iter()
        .flat_map(|r| {
            r.iter()
                .copied()
                .chain(std::iter::repeat(PAD).take(l - r.len()))
        })
        .collect();
    tc(
        op,
        Tensor::from_slice(&flat).f_reshape([captions.len() as i64, l as i64]),
    )
}

/// Draws `name`'s values from N(0, 0.02²), as BERT and ViT initialise
/// embeddings (tch's embedding starts at N(0, 1)).
fn small_init(vs: &tch::nn::VarStore) {
    // In name order: the variables come as a HashMap, whose order changes
    // from process to process, and each draw must go to the same tensor.
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (name, mut t) in vars {
            let embedding = name.ends_with("embeddings.weight")
                || name.ends_with("class_embedding")
                || name.ends_with("position_embedding");
            if embedding {
                let _ = t.copy_(&(t.randn_like() * 0.02));
            }
        }
    });
}

/// Trains a captioner on images in [0, 1] (N×3×H×W, any size) or on given
/// image-token features, with one caption per image.
pub fn train_captioner(
    images: Option<&Tensor>,
    captions: &[String],
    o: &CaptionerOptions,
) -> Result<(Blip, History)> {
    let n = captions.len() as i64;
    if n == 0 {
        return Err(Error::invalid(
            OP,
            "captions is empty: give one caption per image",
        ));
    }
    if let Some((i, _)) = captions
        .iter()
        .enumerate()
        .find(|(_, c)| c.trim().is_empty())
    {
        return Err(Error::invalid(
            OP,
            format!("captions[{i}] is an empty string"),
        ));
    }
    let mut config = o.config.clone();
    match (&o.features, images) {
        (Some(f), _) => {
            let s = f.size();
            let g = if s.len() == 3 {
                ((s[1] - 1).max(0) as f64).sqrt().round() as i64
            } else {
                0
            };
            if s.len() != 3 || g < 1 || g * g + 1 != s[1] || s[2] < 1 {
                return Err(Error::shape(OP, "features", "N×tokens×d with tokens = g²+1 (a class token and a g×g patch grid, as ViT features)", shape_text(&s)));
            }
            if s[0] != n {
                return Err(Error::shape(
                    OP,
                    "features",
                    format!("{n} rows (one per caption)"),
                    shape_text(&s),
                ));
            }
            config.vision_hidden = s[2];
            config.vision_heads = (1..=config.vision_heads.max(1))
                .rev()
                .find(|h| s[2] % h == 0)
                .unwrap_or(1);
            config.image_size = g * config.patch_size;
            config.vision_mlp = 4 * s[2];
        }
        (None, Some(x)) => {
            let s = x.size();
            if s.len() != 4 || s[1] != 3 {
                return Err(Error::shape(
                    OP,
                    "images",
                    "N×3×H×W (RGB in [0, 1])",
                    shape_text(&s),
                ));
            }
            if s[0] != n {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "{} images but {n} captions: give one caption per image",
                        s[0]
                    ),
                ));
            }
        }
        (None, None) => return Err(Error::invalid(OP, "no images and no features option")),
    }
    config.validate(OP)?;
    o.train.validate()?;
    if !(0.0..1.0).contains(&o.val_split) {
        return Err(Error::BadOption {
            op: OP,
            key: "val_split".into(),
            expected: "a fraction in [0, 1)".into(),
            got: o.val_split.to_string(),
        });
    }
    let n_val = ((n as f64) * o.val_split).round() as i64;
    if n - n_val < 1 {
        return Err(Error::invalid(
            OP,
            format!("val_split {} leaves no training pairs of {n}", o.val_split),
        ));
    }
    if let Some(seed) = o.train.seed {
        crate::device::seed(seed);
    }
    let tok_path = match &o.tokenizer {
        Some(p) => p.clone(),
        None => find_minilm(OP)?.join("tokenizer.json"),
    };
    let vocab = restricted_vocabulary(OP, &tok_path, captions)?;
    let ids =
        caption_ids(OP, &vocab.tokenizer, captions, config.max_positions)?.to_device(o.device);
    let cfg = blip_config(&config, &vocab, o.features.is_none());
    let blip = Blip::new(
        OP,
        cfg,
        vocab.tokenizer,
        side_files(&config, config.max_positions),
        o.device,
    )?;
    small_init(&blip.vs);

    // Inputs once: normalised pixels for the ViT, or the given features.
    let inputs = match (&o.features, images) {
        (Some(f), _) => tc(OP, f.f_to_kind(Kind::Float))?.to_device(o.device),
        (None, None) => return Err(Error::invalid(OP, "no images and no features option")),
        (None, Some(x)) => {
            let mut parts = Vec::new();
            let mut start = 0;
            while start < n {
                let len = 256.min(n - start);
                parts.push(
                    blip.preprocess
                        .apply(OP, &x.narrow(0, start, len))?
                        .to_device(o.device),
                );
                start += len;
            }
            tc(OP, Tensor::f_cat(&parts, 0))?
        }
    };
    let order = tc(OP, Tensor::f_randperm(n, (Kind::Int64, Device::Cpu)))?.to_device(o.device);
    let train_idx = order.narrow(0, 0, n - n_val);
    let val_idx = order.narrow(0, n - n_val, n_val);
    let given = o.features.is_some();
    let l = ids.size()[1];
    let v = blip.text.config.vocab_size;
    // Summed cross-entropy of next tokens (pads ignored) and the count of targets.
    let loss_of = |idx: &Tensor, train: bool| -> (Tensor, Tensor, Tensor) {
        let x = inputs.index_select(0, idx);
        let image = if given { x } else { blip.vision.forward(&x).0 };
        let rows = ids.index_select(0, idx);
        let inp = rows.narrow(1, 0, l - 1);
        let tgt = rows.narrow(1, 1, l - 1);
        let mask = inp.ne(PAD).to_kind(Kind::Int64);
        let logits = blip
            .text
            .logits(&inp, Some(&mask), &image, train)
            .reshape([-1, v]);
        let tgt = tgt.reshape([-1]);
        let sum = logits.cross_entropy_loss::<Tensor>(&tgt, None, Reduction::Sum, PAD, 0.0);
        let real = tgt.ne(PAD);
        let correct = logits
            .argmax(-1, false)
            .eq_tensor(&tgt)
            .logical_and(&real)
            .sum(Kind::Float);
        (sum, real.sum(Kind::Float), correct)
    };
    let mut task = LossTask {
        vs: &blip.vs,
        n_train: n - n_val,
        loss: |batch: &[i64]| {
            let b = Tensor::from_slice(batch).to_device(o.device);
            let (sum, count, _) = loss_of(&train_idx.index_select(0, &b), true);
            Ok(sum / count.clamp_min(1.0))
        },
        validate: || {
            if n_val == 0 {
                return Ok(None);
            }
            let (mut sum, mut count, mut correct) = (0.0, 0.0, 0.0);
            tch::no_grad(|| {
                let mut start = 0;
                while start < n_val {
                    let len = 256.min(n_val - start);
                    let (s, c, k) = loss_of(&val_idx.narrow(0, start, len), false);
                    sum += s.double_value(&[]);
                    count += c.double_value(&[]);
                    correct += k.double_value(&[]);
                    start += len;
                }
            });
            let count: f64 = f64::max(count, 1.0);
            Ok(Some(
                Metrics::new()
                    .with("loss", sum / count)
                    .with("token_acc", correct / count),
            ))
        },
    };
    let history = train::fit(&mut task, &o.train)?;
    Ok((blip, history))
}
