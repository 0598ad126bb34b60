//! BLIP's captioner in transformers' `BlipForConditionalGeneration` layout:
//! a ViT image encoder (pre-norm, fused `qkv` attention, learned position
//! parameter, post-LayerNorm) and a BERT-style text decoder (post-norm
//! layers with causal self-attention and cross-attention to the image
//! tokens, `cls.predictions` LM head tied to the word embeddings), both from
//! `models::nn`; `BlipImageProcessor`'s resize and normalisation; and
//! `generate` as transformers runs it for BLIP: greedy and beam search
//! (token for token) and nucleus sampling.
//!
//! A folder with Salesforce/blip-image-captioning-base's config.json loads
//! its released weights (the layout is checked name by name in the tests).

use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::clip::Preprocess;
use super::hf::{self, Config, NameRules};
use super::nn::{attention_bias, conv2d, dropout, embedding, layer_norm, linear, Activation};
use super::nn::{BlockCache, BlockConfig, BlockNames, TransformerBlock};
use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

/// transformers' BlipVisionConfig, the fields the encoder uses.
#[derive(Debug, Clone)]
pub struct BlipVisionConfig {
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub image_size: i64,
    pub patch_size: i64,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

impl BlipVisionConfig {
    pub fn from_config(op: &'static str, c: &Config) -> Result<BlipVisionConfig> {
        let v = BlipVisionConfig {
            hidden_size: c.int_or(op, "hidden_size", 768)?,
            intermediate_size: c.int_or(op, "intermediate_size", 3072)?,
            num_hidden_layers: c.int_or(op, "num_hidden_layers", 12)?,
            num_attention_heads: c.int_or(op, "num_attention_heads", 12)?,
            image_size: c.int_or(op, "image_size", 384)?,
            patch_size: c.int_or(op, "patch_size", 16)?,
            hidden_act: Activation::parse(op, "hidden_act", &c.str_or(op, "hidden_act", "gelu")?)?,
            layer_norm_eps: c.float_or(op, "layer_norm_eps", 1e-5)?,
        };
        check_heads(op, c, v.hidden_size, v.num_attention_heads)?;
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

    /// Image tokens: the class token and one per patch.
    pub fn tokens(&self) -> i64 {
        (self.image_size / self.patch_size).pow(2) + 1
    }
}

/// transformers' BlipTextConfig, the fields the decoder uses.
#[derive(Debug, Clone)]
pub struct BlipTextConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    /// The image tokens' width (BlipConfig sets it to the vision hidden size).
    pub encoder_hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub max_position_embeddings: i64,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub hidden_dropout_prob: f64,
    /// The start token (`[DEC]`).
    pub bos_token_id: i64,
    pub pad_token_id: i64,
    /// The end of a caption (`[SEP]`: generate's eos).
    pub sep_token_id: i64,
}

impl BlipTextConfig {
    pub fn from_config(
        op: &'static str,
        c: &Config,
        encoder_hidden_size: i64,
    ) -> Result<BlipTextConfig> {
        let t = BlipTextConfig {
            vocab_size: c.int_or(op, "vocab_size", 30524)?,
            hidden_size: c.int_or(op, "hidden_size", 768)?,
            encoder_hidden_size,
            intermediate_size: c.int_or(op, "intermediate_size", 3072)?,
            num_hidden_layers: c.int_or(op, "num_hidden_layers", 12)?,
            num_attention_heads: c.int_or(op, "num_attention_heads", 8)?,
            max_position_embeddings: c.int_or(op, "max_position_embeddings", 512)?,
            hidden_act: Activation::parse(op, "hidden_act", &c.str_or(op, "hidden_act", "gelu")?)?,
            layer_norm_eps: c.float_or(op, "layer_norm_eps", 1e-12)?,
            hidden_dropout_prob: c.float_or(op, "hidden_dropout_prob", 0.0)?,
            bos_token_id: c.int_or(op, "bos_token_id", 30522)?,
            pad_token_id: c.int_or(op, "pad_token_id", 0)?,
            sep_token_id: c.int_or(op, "sep_token_id", 102)?,
        };
        check_heads(op, c, t.hidden_size, t.num_attention_heads)?;
        for (key, id) in [
            ("bos_token_id", t.bos_token_id),
            ("pad_token_id", t.pad_token_id),
            ("sep_token_id", t.sep_token_id),
        ] {
            if id < 0 || id >= t.vocab_size {
                return Err(Error::format(
                    op,
                    &c.path,
                    format!(
                        "{}{key} {id} is outside the vocabulary (vocab_size {})",
                        c.prefix, t.vocab_size
                    ),
                ));
            }
        }
        Ok(t)
    }
}

fn check_heads(op: &'static str, c: &Config, hidden: i64, heads: i64) -> Result<()> {
    if heads <= 0 || hidden % heads != 0 {
        return Err(Error::format(
            op,
            &c.path,
            format!(
                "{}hidden_size {hidden} must be a positive multiple of num_attention_heads {heads}",
                c.prefix
            ),
        ));
    }
    Ok(())
}

/// transformers' BlipVisionModel (`vision_model.*`).
pub struct BlipVision {
    class_embedding: Tensor,
    patch_embedding: nn::Conv2D,
    position_embedding: Tensor,
    layers: Vec<TransformerBlock>,
    post_layernorm: nn::LayerNorm,
    pub config: BlipVisionConfig,
}

impl BlipVision {
    pub fn new(p: &nn::Path, c: &BlipVisionConfig) -> BlipVision {
        let e = p / "embeddings";
        let h = c.hidden_size;
        let block = BlockConfig {
            dim: h,
            heads: c.num_attention_heads,
            mlp_dim: c.intermediate_size,
            act: c.hidden_act,
            eps: c.layer_norm_eps,
            pre_norm: true,
            cross_dim: None,
            dropout: 0.0,
            qkv_bias: true,
        };
        BlipVision {
            class_embedding: e.randn_standard("class_embedding", &[1, 1, h]),
            patch_embedding: conv2d(
                &(&e / "patch_embedding"),
                3,
                h,
                c.patch_size,
                c.patch_size,
                0,
                true,
            ),
            position_embedding: e.randn_standard("position_embedding", &[1, c.tokens(), h]),
            layers: (0..c.num_hidden_layers)
                .map(|i| {
                    TransformerBlock::new(
                        &(p / "encoder" / "layers" / i),
                        block,
                        BlockNames::BLIP_VISION,
                    )
                })
                .collect(),
            post_layernorm: layer_norm(&(p / "post_layernorm"), h, c.layer_norm_eps),
            config: c.clone(),
        }
    }

    /// `pixels`: B×3×S×S, normalised. The last hidden state (post-normed:
    /// the image tokens the decoder attends to), B×tokens×hidden, and the
    /// pooled class token (post_layernorm once more, as transformers).
    pub fn forward(&self, pixels: &Tensor) -> (Tensor, Tensor) {
        let b = pixels.size()[0];
        let h = self.config.hidden_size;
        let patches = self
            .patch_embedding
            .forward(pixels)
            .flatten(2, -1)
            .transpose(1, 2);
        let cls = self.class_embedding.expand([b, 1, h], false);
        let mut x = Tensor::cat(&[cls, patches], 1) + &self.position_embedding;
        for layer in &self.layers {
            x = layer.forward(&x, None, None, None, false);
        }
        let last = self.post_layernorm.forward(&x);
        let pooled = self.post_layernorm.forward(&last.select(1, 0));
        (last, pooled)
    }
}

/// transformers' BlipTextLMHeadModel (`text_decoder.*`): `bert.*` without
/// token types or pooler, and the `cls.predictions` head.
pub struct BlipTextDecoder {
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    embeddings_norm: nn::LayerNorm,
    layers: Vec<TransformerBlock>,
    transform: nn::Linear,
    transform_norm: nn::LayerNorm,
    /// `cls.predictions.bias` (the decoder's bias when tied).
    bias: Tensor,
    /// `cls.predictions.decoder` when the checkpoint does not tie it to the
    /// word embeddings.
    decoder: Option<nn::Linear>,
    pub config: BlipTextConfig,
}

impl BlipTextDecoder {
    pub fn new(p: &nn::Path, c: &BlipTextConfig, tied: bool) -> BlipTextDecoder {
        let e = p / "bert" / "embeddings";
        let h = c.hidden_size;
        let block = BlockConfig {
            dim: h,
            heads: c.num_attention_heads,
            mlp_dim: c.intermediate_size,
            act: c.hidden_act,
            eps: c.layer_norm_eps,
            pre_norm: false,
            cross_dim: Some(c.encoder_hidden_size),
            dropout: c.hidden_dropout_prob,
            qkv_bias: true,
        };
        let head = p / "cls" / "predictions";
        BlipTextDecoder {
            word_embeddings: embedding(&(&e / "word_embeddings"), c.vocab_size, h),
            position_embeddings: embedding(
                &(&e / "position_embeddings"),
                c.max_position_embeddings,
                h,
            ),
            embeddings_norm: layer_norm(&(&e / "LayerNorm"), h, c.layer_norm_eps),
            layers: (0..c.num_hidden_layers)
                .map(|i| {
                    TransformerBlock::new(
                        &(p / "bert" / "encoder" / "layer" / i),
                        block,
                        BlockNames::BERT,
                    )
                })
                .collect(),
            transform: linear(&(&head / "transform" / "dense"), h, h, true),
            transform_norm: layer_norm(&(&head / "transform" / "LayerNorm"), h, c.layer_norm_eps),
            bias: head.zeros("bias", &[c.vocab_size]),
            decoder: (!tied).then(|| linear(&(&head / "decoder"), h, c.vocab_size, true)),
            config: c.clone(),
        }
    }

    /// Hidden states of the embeddings and of every layer (B×L×hidden each)
    /// for tokens `ids` (B×L; `mask` 1 = token, 0 = right padding) reading
    /// the image tokens `image` (B×T×encoder_hidden_size).
    pub fn hidden_states(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        image: &Tensor,
        train: bool,
    ) -> Vec<Tensor> {
        let l = ids.size()[1];
        let positions = Tensor::arange(l, (Kind::Int64, ids.device())).unsqueeze(0);
        let x = self.word_embeddings.forward(ids) + self.position_embeddings.forward(&positions);
        let mut x = dropout(
            self.embeddings_norm.forward(&x),
            self.config.hidden_dropout_prob,
            train,
        );
        let bias = attention_bias(mask, true, l, x.kind(), x.device());
        let mut states = vec![x.shallow_clone()];
        for layer in &self.layers {
            x = layer.forward(&x, bias.as_ref(), Some(image), None, train);
            states.push(x.shallow_clone());
        }
        states
    }

    /// The LM head on hidden states: B×L×vocab.
    pub fn head(&self, h: &Tensor) -> Tensor {
        let h = self
            .transform_norm
            .forward(&self.config.hidden_act.apply(&self.transform.forward(h)));
        match &self.decoder {
            Some(d) => d.forward(&h),
            None => h.matmul(&self.word_embeddings.ws.tr()) + &self.bias,
        }
    }

    /// Next-token logits for every position, B×L×vocab.
    pub fn logits(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        image: &Tensor,
        train: bool,
    ) -> Tensor {
        let states = self.hidden_states(ids, mask, image, train);
        self.head(&states[states.len() - 1])
    }
}

/// How beam search stops (transformers' `early_stopping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyStopping {
    /// `False` (transformers' and BLIP's default): stop a batch item when
    /// no running beam can beat its worst finished one at the current length.
    Heuristic,
    /// `True`: stop once `beams` hypotheses are finished.
    Done,
    /// `"never"`: the canonical bound (with a positive length penalty, at max_length).
    Never,
}

/// `generate`'s settings; the defaults are the `caption` options'.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub beams: i64,
    /// transformers' max_length: tokens in all, the start token included.
    pub max_len: i64,
    /// transformers' min_length: [SEP] is forbidden before this many tokens.
    pub min_len: i64,
    pub repetition_penalty: f64,
    pub length_penalty: f64,
    pub early_stopping: EarlyStopping,
    pub sample: bool,
    pub top_p: f64,
    pub seed: Option<u64>,
    /// Text the captions start with (BLIP's "a picture of"); None: [DEC] alone.
    pub prompt: Option<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            beams: 3,
            max_len: 20,
            min_len: 5,
            repetition_penalty: 1.5,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            sample: false,
            top_p: 0.9,
            seed: None,
            prompt: None,
        }
    }
}

impl GenerateOptions {
    pub fn validate(&self, op: &'static str) -> Result<()> {
        let bad = |key: &str, expected: &str, got: String| Error::BadOption {
            op,
            key: key.into(),
            expected: expected.into(),
            got,
        };
        if self.beams < 1 {
            return Err(bad("beams", "an integer ≥ 1", self.beams.to_string()));
        }
        if self.max_len < 2 {
            return Err(bad(
                "max_len",
                "an integer ≥ 2 (the start token and at least one more)",
                self.max_len.to_string(),
            ));
        }
        if self.min_len < 0 || self.min_len > self.max_len {
            return Err(bad(
                "min_len",
                &format!("an integer from 0 to max_len ({})", self.max_len),
                self.min_len.to_string(),
            ));
        }
        if !(self.repetition_penalty > 0.0) || !self.repetition_penalty.is_finite() {
            return Err(bad(
                "repetition_penalty",
                "a positive number (1: none)",
                self.repetition_penalty.to_string(),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad("top_p", "a number in (0, 1]", self.top_p.to_string()));
        }
        Ok(())
    }
}

/// transformers' RepetitionPenaltyLogitsProcessor: the score of every token
/// already in `ids` (B×L) divided by the penalty when positive, multiplied
/// when negative.
fn repetition_penalty(ids: &Tensor, scores: &Tensor, penalty: f64) -> Tensor {
    if penalty == 1.0 {
        return scores.copy();
    }
    let s = scores.gather(1, ids, false);
    let s = (&s * penalty).where_self(&s.lt(0.0), &(&s / penalty));
    scores.scatter(1, ids, &s)
}

/// The logits processors transformers builds for these options, in its
/// order: repetition penalty, then min length (no [SEP] before min_len).
fn process(ids: &Tensor, scores: &Tensor, o: &GenerateOptions, eos: i64) -> Tensor {
    let s = repetition_penalty(ids, scores, o.repetition_penalty);
    if ids.size()[1] < o.min_len {
        let _ = s.narrow(1, eos, 1).fill_(f64::NEG_INFINITY);
    }
    s
}

/// splitmix64: the uniform draws of sampling, seeded per call.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl BlipTextDecoder {
    /// Next-token logits (B×vocab) after the new tokens `ids` (B×l), which
    /// follow the `caches`' earlier positions: each step feeds only what is
    /// new, as transformers' generate does with past_key_values (an empty
    /// `caches` starts from position 0 with the whole prefix).
    fn step_logits(&self, ids: &Tensor, image: &Tensor, caches: &mut Vec<BlockCache>) -> Tensor {
        if caches.is_empty() {
            caches.resize_with(self.layers.len(), BlockCache::default);
        }
        let past = caches[0].self_kv.len();
        let l = ids.size()[1];
        let positions =
            Tensor::arange_start(past, past + l, (Kind::Int64, ids.device())).unsqueeze(0);
        let x = self.word_embeddings.forward(ids) + self.position_embeddings.forward(&positions);
        let mut x = self.embeddings_norm.forward(&x);
        for (layer, cache) in self.layers.iter().zip(caches.iter_mut()) {
            x = layer.forward_step(&x, Some(image), cache);
        }
        self.head(&x.select(1, -1)).to_kind(Kind::Float)
    }

    /// transformers' `_sample` without sampling: the arg-max token, rows
    /// that ended continue with the pad id. B×L out.
    fn greedy(&self, start: &Tensor, image: &Tensor, o: &GenerateOptions) -> Tensor {
        let (eos, pad) = (self.config.sep_token_id, self.config.pad_token_id);
        let mut ids = start.shallow_clone();
        let mut unfinished = Tensor::ones([ids.size()[0]], (Kind::Int64, ids.device()));
        let mut rng = o.seed.map(SplitMix);
        let mut caches = Vec::new();
        let mut new = ids.shallow_clone();
        while ids.size()[1] < o.max_len {
            let scores = process(&ids, &self.step_logits(&new, image, &mut caches), o, eos);
            let next = match rng.as_mut() {
                None => scores.argmax(-1, false),
                Some(r) => nucleus(&scores, o.top_p, r),
            };
            let next: Tensor = &next * &unfinished + (unfinished.ones_like() - &unfinished) * pad;
            ids = Tensor::cat(&[ids, next.unsqueeze(1)], 1);
            new = next.unsqueeze(1);
            unfinished = unfinished * next.ne(eos).to_kind(Kind::Int64);
            if unfinished.max().int64_value(&[]) == 0 {
                break;
            }
        }
        ids
    }

    /// transformers 5's vectorised `_beam_search`, step for step (top 2·beams
    /// continuations, finished hypotheses scored with the length penalty,
    /// the early-stopping heuristic, the output cut to the longest kept
    /// hypothesis and filled with the pad id, or [SEP] when the pad id is 0).
    fn beam_search(&self, start: &Tensor, image: &Tensor, o: &GenerateOptions) -> Tensor {
        let dev = start.device();
        let (b, mut cur) = (start.size()[0], start.size()[1]);
        let (nb, max_len, lp) = (o.beams, o.max_len, o.length_penalty);
        let eos = self.config.sep_token_id;
        let pad = self.config.pad_token_id;
        let keep = 2 * nb;
        let v = self.config.vocab_size;
        let prompt_len = cur;
        let image = image.repeat_interleave_self_int(nb, 0, None);
        let top_mask = Tensor::cat(
            &[
                Tensor::ones([nb], (Kind::Bool, dev)),
                Tensor::zeros([nb], (Kind::Bool, dev)),
            ],
            0,
        );
        let fill = if pad != 0 { pad } else { eos };
        let mut running = Tensor::full([b, nb, max_len], fill, (Kind::Int64, dev));
        let _ = running
            .narrow(2, 0, cur)
            .copy_(&start.unsqueeze(1).expand([b, nb, cur], false));
        let mut sequences = running.copy();
        let mut running_scores = Tensor::zeros([b, nb], (Kind::Float, dev));
        let _ = running_scores.narrow(1, 1, nb - 1).fill_(-1e9);
        let mut beam_scores = Tensor::full([b, nb], -1e9, (Kind::Float, dev));
        let mut finished = Tensor::zeros([b, nb], (Kind::Bool, dev));
        let mut unsatisfied = Tensor::ones([b, 1], (Kind::Bool, dev));
        let mut running_indices = Tensor::full([b, nb, max_len - cur], -1, (Kind::Int, dev));
        let mut beam_indices = running_indices.copy();
        let gather = |t: &Tensor, idx: &Tensor| {
            let mut idx = idx.shallow_clone();
            while idx.dim() < t.dim() {
                idx = idx.unsqueeze(-1);
            }
            t.take_along_dim(&idx, 1)
        };
        let neg = |t: &Tensor| t.to_kind(Kind::Float) * -1e9;
        let mut caches: Vec<BlockCache> = Vec::new();
        loop {
            let flat = running.narrow(2, 0, cur).reshape([b * nb, cur]);
            // The first step feeds the prompt, later ones the last token.
            let new = if caches.is_empty() {
                flat.shallow_clone()
            } else {
                flat.narrow(1, cur - 1, 1)
            };
            let logits = self.step_logits(&new, &image, &mut caches);
            let log_probs = process(&flat, &logits.log_softmax(-1, Kind::Float), o, eos);
            let log_probs =
                (log_probs.view([b, nb, v]) + running_scores.unsqueeze(-1)).reshape([b, nb * v]);
            let (topk_scores, topk_indices) = log_probs.topk(keep, -1, true, true);
            let from_beam = topk_indices.divide_scalar_mode(v, "floor");
            let topk_running_indices = gather(&running_indices, &from_beam);
            let topk_running = gather(&running, &from_beam);
            let _ = topk_running
                .narrow(2, cur, 1)
                .copy_(&topk_indices.remainder(v).unsqueeze(-1));
            let offset = Tensor::arange(b, (Kind::Int64, dev)).view([-1, 1]) * nb;
            let _ = topk_running_indices
                .narrow(2, cur - prompt_len, 1)
                .copy_(&(&from_beam + &offset).unsqueeze(-1));
            // d. which continuations end here ([SEP], or max_length reached)
            let hits = if cur + 1 >= max_len {
                Tensor::ones([b, keep], (Kind::Bool, dev))
            } else {
                topk_running.select(2, cur).eq(eos)
            };
            // e. the best unfinished ones run on
            let running_log_probs = &topk_scores + neg(&hits);
            let next = running_log_probs.topk(nb, -1, true, true).1;
            // The cache follows the beams that run on (their rows' origins).
            let origin = (gather(&from_beam, &next) + &offset).reshape([b * nb]);
            for c in caches.iter_mut() {
                c.self_kv.reorder(&origin);
            }
            running = gather(&topk_running, &next);
            running_scores = gather(&running_log_probs, &next);
            running_indices = gather(&topk_running_indices, &next);
            // f. finished ones among the top `beams` join the kept hypotheses
            let did_finish = hits.logical_and(&top_mask.unsqueeze(0));
            let mut scored = &topk_scores / ((cur + 1 - prompt_len) as f64).powf(lp);
            if o.early_stopping == EarlyStopping::Done {
                scored += neg(&finished.all_dim(-1, true));
            }
            scored += neg(&unsatisfied.logical_not());
            scored += neg(&did_finish.logical_not());
            let merged_seq = Tensor::cat(&[&sequences, &topk_running], 1);
            let merged_scores = Tensor::cat(&[&beam_scores, &scored], 1);
            let merged_idx = Tensor::cat(&[&beam_indices, &topk_running_indices], 1);
            let merged_fin = Tensor::cat(&[&finished, &did_finish], 1);
            let best = merged_scores.topk(nb, -1, true, true).1;
            sequences = gather(&merged_seq, &best);
            beam_scores = gather(&merged_scores, &best);
            beam_indices = gather(&merged_idx, &best);
            finished = gather(&merged_fin, &best);
            cur += 1;
            // can a running beam still beat the worst finished one?
            let best_len = if o.early_stopping == EarlyStopping::Never && lp > 0.0 {
                max_len - prompt_len
            } else {
                cur - prompt_len
            };
            let best_possible = running_scores.narrow(1, 0, 1) / (best_len as f64).powf(lp);
            let worst = beam_scores
                .min_dim(1, true)
                .0
                .expand([b, nb], false)
                .where_self(&finished, &Tensor::full([b, nb], -1e9, (Kind::Float, dev)));
            unsatisfied =
                unsatisfied.logical_and(&best_possible.gt_tensor(&worst).any_dim(-1, true));
            let improvable = bool::try_from(unsatisfied.any()).unwrap_or(false);
            let open = !(o.early_stopping == EarlyStopping::Done
                && bool::try_from(finished.all()).unwrap_or(false));
            let valid = !bool::try_from(hits.all()).unwrap_or(true);
            if !(improvable && open && valid) {
                break;
            }
        }
        let sequences = sequences.select(1, 0);
        let indices = beam_indices.select(1, 0);
        let generated = (indices + 1)
            .ne(0)
            .sum_dim_intlist(1, false, Kind::Int64)
            .max()
            .int64_value(&[]);
        sequences.narrow(1, 0, prompt_len + generated)
    }
}

/// One draw per row from the tokens whose probabilities, largest first,
/// sum to `top_p` (the top token always kept), as transformers' TopPLogitsWarper.
fn nucleus(scores: &Tensor, top_p: f64, rng: &mut SplitMix) -> Tensor {
    let probs = scores.softmax(-1, Kind::Double).to_device(Device::Cpu);
    let (sorted, order) = probs.sort(-1, true);
    let (rows, v) = (sorted.size()[0], sorted.size()[1]);
    let sorted: Vec<f64> = Vec::try_from(sorted.reshape([-1])).unwrap_or_default();
    let order: Vec<i64> = Vec::try_from(order.reshape([-1])).unwrap_or_default();
    let mut out = Vec::with_capacity(rows as usize);
    for r in 0..rows as usize {
        let row = &sorted[r * v as usize..(r + 1) * v as usize];
        let mut keep = 0;
        let mut mass = 0.0;
        while keep < row.len() && (keep == 0 || mass < top_p) && row[keep] > 0.0 {
            mass += row[keep];
            keep += 1;
        }
        let u = rng.next_f64() * mass;
        let (mut acc, mut pick) = (0.0, keep.saturating_sub(1));
        for (j, p) in row[..keep].iter().enumerate() {
            acc += p;
            if u < acc {
                pick = j;
                break;
            }
        }
        out.push(order[r * v as usize + pick]);
    }
    Tensor::from_slice(&out).to_device(scores.device())
}

/// The whole BlipForConditionalGeneration with tokenizer and processor.
pub struct Blip {
    pub vs: nn::VarStore,
    pub vision: BlipVision,
    pub text: BlipTextDecoder,
    pub tied: bool,
    pub raw_config: Value,
    pub tokenizer: tokenizers::Tokenizer,
    pub preprocess: Preprocess,
    pub source: PathBuf,
    pub side_files: Vec<(String, String)>,
}

/// The model kind recorded in a single-file captioner.
const SINGLE_FORMAT: &str = "voxlab.Blip";

/// Files of a BLIP folder kept as they are, besides tokenizer.json.
const SIDE_FILES: &[&str] = &[
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "preprocessor_config.json",
    "processor_config.json",
    "generation_config.json",
];

impl Blip {
    fn build(
        op: &'static str,
        cfg: &Config,
        device: Device,
    ) -> Result<(nn::VarStore, BlipVision, BlipTextDecoder, bool)> {
        let model_type = cfg.str_or(op, "model_type", "")?;
        if model_type != "blip" {
            return Err(Error::format(
                op,
                &cfg.path,
                format!("model_type is \"{model_type}\", not \"blip\" (a BlipForConditionalGeneration folder)"),
            ));
        }
        if let Some(archs) = cfg.value.get("architectures").and_then(Value::as_array) {
            let names: Vec<&str> = archs.iter().filter_map(Value::as_str).collect();
            if !names.is_empty() && !names.contains(&"BlipForConditionalGeneration") {
                return Err(Error::format(
                    op,
                    &cfg.path,
                    format!("architectures is {names:?}: only BlipForConditionalGeneration is a captioner"),
                ));
            }
        }
        let vision_cfg = BlipVisionConfig::from_config(op, &cfg.sub(op, "vision_config")?)?;
        let text_cfg =
            BlipTextConfig::from_config(op, &cfg.sub(op, "text_config")?, vision_cfg.hidden_size)?;
        let tied = cfg
            .value
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let vision = BlipVision::new(&(&root / "vision_model"), &vision_cfg);
        let text = BlipTextDecoder::new(&(&root / "text_decoder"), &text_cfg, tied);
        Ok((vs, vision, text, tied))
    }

    /// A freshly initialised captioner from a config.json value (what
    /// [`Blip::save`] writes back), its tokenizer and the side files to save
    /// with it; preprocessing resizes to the vision tower's image_size.
    pub fn new(
        op: &'static str,
        config: Value,
        tokenizer: tokenizers::Tokenizer,
        side_files: Vec<(String, String)>,
        device: Device,
    ) -> Result<Blip> {
        let cfg = Config {
            path: PathBuf::from("config.json"),
            prefix: String::new(),
            value: config,
        };
        let (vs, vision, text, tied) = Blip::build(op, &cfg, device)?;
        let s = vision.config.image_size;
        let mut preprocess = Preprocess::defaults(s);
        preprocess.exact = Some((s, s));
        Ok(Blip {
            vs,
            vision,
            text,
            tied,
            raw_config: cfg.value,
            tokenizer,
            preprocess,
            source: PathBuf::from("(trained in voxlab)"),
            side_files,
        })
    }

    /// Names and shapes of the parameters the config.json at `path` describes.
    pub fn layout(op: &'static str, path: &Path) -> Result<Vec<(String, Vec<i64>)>> {
        let (vs, ..) = Blip::build(op, &Config::read(op, path)?, Device::Cpu)?;
        Ok(hf::layout_of(&vs))
    }

    /// Reads a model folder, or one file written by [`Blip::save`].
    pub fn load(op: &'static str, path: &Path, device: Device) -> Result<Blip> {
        if super::text::is_single_file(path) && path.is_file() {
            let unpacked = hf::unpack_single(op, path, SINGLE_FORMAT)?;
            let mut m = Blip::load(op, &unpacked.dir, device)?;
            m.source = path.to_path_buf();
            return Ok(m);
        }
        let dir = hf::model_dir(op, path)?;
        let cfg = hf::read_config(op, &dir)?;
        let (vs, vision, text, tied) = Blip::build(op, &cfg, device)?;
        let files = hf::weight_files(op, &dir, &["model"])?;
        // Tied: the decoder is the word embeddings and cls.predictions.bias;
        // checkpoints that store it anyway hold the same tensors.
        let ignore: &[&str] = if tied {
            &["position_ids", "text_decoder.cls.predictions.decoder."]
        } else {
            &["position_ids"]
        };
        hf::load_weights(
            op,
            &vs,
            &files,
            NameRules {
                strip_prefixes: &[],
                ignore,
                optional: &[],
            },
        )?;
        let mut tokenizer = hf::load_tokenizer(op, &dir, text.config.vocab_size)?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::format(op, &dir.join("tokenizer.json"), e.to_string()))?;
        let preprocess = Preprocess::read(op, &dir, vision.config.image_size)?;
        let preprocess = if dir.join("preprocessor_config.json").is_file() {
            preprocess
        } else {
            let mut p = preprocess;
            let s = vision.config.image_size;
            p.exact = Some((s, s));
            p
        };
        let side_files = hf::read_side_files(op, &dir, SIDE_FILES)?;
        Ok(Blip {
            vs,
            vision,
            text,
            tied,
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

    /// Image tokens per image and their width.
    pub fn feature_shape(&self) -> (i64, i64) {
        (self.vision.config.tokens(), self.vision.config.hidden_size)
    }

    /// Checks N×3×S×S pixel values against the vision tower.
    pub fn check_pixels(&self, op: &'static str, pixels: &Tensor) -> Result<()> {
        let s = pixels.size();
        let size = self.vision.config.image_size;
        if s.len() != 4 || s[1] != 3 || s[2] != size || s[3] != size {
            return Err(Error::shape(
                op,
                "pixel values",
                format!("N×3×{size}×{size} (the vision tower's image_size)"),
                shape_text(&s),
            ));
        }
        Ok(())
    }

    /// Images in [0, 1] (N×3×H×W, any size) → BlipImageProcessor → the
    /// vision model's last hidden state (N×tokens×d), or with `pool` its
    /// pooled class token (N×d).
    pub fn features(
        &self,
        op: &'static str,
        images: &Tensor,
        batch: usize,
        pool: bool,
    ) -> Result<Tensor> {
        let n = images.size()[0];
        if n == 0 {
            return Err(Error::invalid(op, "images is empty"));
        }
        let mut parts = Vec::new();
        let mut start = 0;
        while start < n {
            let len = (batch as i64).min(n - start);
            let pixels = self
                .preprocess
                .apply(op, &images.narrow(0, start, len))?
                .to_device(self.vs.device());
            self.check_pixels(op, &pixels)?;
            let (last, pooled) = tch::no_grad(|| self.vision.forward(&pixels));
            parts.push(if pool { pooled } else { last });
            start += len;
        }
        tc(op, Tensor::f_cat(&parts, 0))
    }

    /// Checks image-token features (true or predicted) against the decoder.
    pub fn check_features(&self, op: &'static str, f: &Tensor) -> Result<()> {
        let (t, d) = self.feature_shape();
        let s = f.size();
        if s.len() != 3 || s[1] != t || s[2] != d || s[0] == 0 {
            let hint = if s.len() == 2 {
                " (pooled features cannot be captioned: give the image tokens, caption_features without pool)"
            } else {
                ""
            };
            return Err(Error::shape(
                op,
                "features",
                format!("N×{t}×{d} (this captioner's image tokens × width){hint}"),
                shape_text(&s),
            ));
        }
        Ok(())
    }

    /// The start tokens: [DEC], or the prompt as BLIP's generate makes it
    /// (the tokenizer's [CLS] … [SEP] with [CLS] replaced by [DEC], [SEP] dropped).
    pub fn start_tokens(&self, op: &'static str, prompt: Option<&str>) -> Result<Vec<i64>> {
        let bos = self.text.config.bos_token_id;
        let Some(p) = prompt else {
            return Ok(vec![bos]);
        };
        let enc = self
            .tokenizer
            .encode(p, true)
            .map_err(|e| Error::invalid(op, format!("tokenizer failed: {e}")))?;
        let mut ids: Vec<i64> = enc.get_ids().iter().map(|&i| i as i64).collect();
        if ids.len() < 2 {
            return Ok(vec![bos]);
        }
        ids[0] = bos;
        ids.pop();
        Ok(ids)
    }

    /// Token ids as transformers' `generate` returns them (N×L, finished
    /// rows filled) for image tokens `features` (N×tokens×d).
    pub fn generate(
        &self,
        op: &'static str,
        features: &Tensor,
        o: &GenerateOptions,
    ) -> Result<Tensor> {
        o.validate(op)?;
        self.check_features(op, features)?;
        let start = self.start_tokens(op, o.prompt.as_deref())?;
        let max_pos = self.text.config.max_position_embeddings;
        if o.max_len > max_pos {
            return Err(Error::BadOption {
                op,
                key: "max_len".into(),
                expected: format!("at most {max_pos} (the decoder's max_position_embeddings)"),
                got: o.max_len.to_string(),
            });
        }
        if start.len() as i64 >= o.max_len {
            return Err(Error::BadOption {
                op,
                key: "max_len".into(),
                expected: format!("more than the prompt's {} tokens", start.len()),
                got: o.max_len.to_string(),
            });
        }
        let device = self.vs.device();
        let features = features.to_device(device).to_kind(self.vs.kind());
        let n = features.size()[0];
        let start = Tensor::from_slice(&start)
            .to_device(device)
            .unsqueeze(0)
            .expand([n, start.len() as i64], false)
            .contiguous();
        Ok(tch::no_grad(|| {
            if o.sample {
                let seed = o.seed.unwrap_or_else(|| {
                    (Tensor::rand([1], (Kind::Double, Device::Cpu)).double_value(&[0]) * 9.007e15)
                        as u64
                });
                let mut oo = o.clone();
                oo.seed = Some(seed);
                self.text.greedy(&start, &features, &oo)
            } else if o.beams == 1 {
                let mut oo = o.clone();
                oo.seed = None;
                self.text.greedy(&start, &features, &oo)
            } else {
                self.text.beam_search(&start, &features, o)
            }
        }))
    }

    /// Token ids → text, special tokens skipped (transformers' batch_decode).
    pub fn decode(&self, op: &'static str, ids: &Tensor) -> Result<Vec<String>> {
        let rows: Vec<Vec<i64>> = Vec::try_from(ids.to_device(Device::Cpu))
            .map_err(|e: tch::TchError| Error::invalid(op, e.to_string()))?;
        rows.iter()
            .map(|r| {
                let r: Vec<u32> = r.iter().map(|&i| i as u32).collect();
                self.tokenizer
                    .decode(&r, true)
                    .map_err(|e| Error::invalid(op, format!("tokenizer failed: {e}")))
            })
            .collect()
    }

    /// The text decoder's states for each caption read with its image
    /// (teacher forcing: [DEC] caption [SEP], cross-attending to
    /// `features`, N×tokens×d), mean-pooled over the caption's tokens:
    /// "embeddings", then "layer1" … "layerN", N×hidden each — the language
    /// features of Takagi & Nishimoto's per-layer encoding models.
    pub fn decoder_layers(
        &self,
        op: &'static str,
        captions: &[String],
        features: &Tensor,
        batch: usize,
    ) -> Result<Vec<(String, Tensor)>> {
        self.check_features(op, features)?;
        let n = features.size()[0];
        if captions.len() as i64 != n {
            return Err(Error::shape(
                op,
                "captions",
                format!("{n} (one per row of features)"),
                captions.len().to_string(),
            ));
        }
        let bos = self.text.config.bos_token_id;
        let pad = self.text.config.pad_token_id;
        let max = self.text.config.max_position_embeddings as usize;
        let device = self.vs.device();
        let mut parts: Vec<Vec<Tensor>> = Vec::new();
        for (start, chunk) in (0..captions.len())
            .step_by(batch.max(1))
            .map(|s| (s, &captions[s..(s + batch.max(1)).min(captions.len())]))
        {
            let enc = self
                .tokenizer
                .encode_batch(chunk.to_vec(), true)
                .map_err(|e| Error::invalid(op, format!("tokenizer failed: {e}")))?;
            let rows: Vec<Vec<i64>> = enc
                .iter()
                .map(|e| {
                    let mut ids: Vec<i64> =
                        e.get_ids().iter().map(|&i| i as i64).take(max).collect();
                    if let Some(first) = ids.first_mut() {
                        *first = bos;
                    }
                    ids
                })
                .collect();
            let l = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
            let mut flat = vec![pad; rows.len() * l];
            let mut mask = vec![0i64; rows.len() * l];
            for (r, ids) in rows.iter().enumerate() {
                for (j, &t) in ids.iter().enumerate() {
                    flat[r * l + j] = t;
                    mask[r * l + j] = 1;
                }
            }
            let shape = [rows.len() as i64, l as i64];
            let ids = tc(op, Tensor::from_slice(&flat).f_view(shape))?.to_device(device);
            let mask = tc(op, Tensor::from_slice(&mask).f_view(shape))?.to_device(device);
            let image = features
                .narrow(0, start as i64, rows.len() as i64)
                .to_device(device);
            let states = tch::no_grad(|| self.text.hidden_states(&ids, Some(&mask), &image, false));
            parts.push(
                states
                    .iter()
                    .map(|h| super::text::Pooling::Mean.apply(h, &mask))
                    .collect(),
            );
        }
        let layers = parts.first().map(Vec::len).unwrap_or(0);
        (0..layers)
            .map(|k| {
                let rows: Vec<&Tensor> = parts.iter().map(|p| &p[k]).collect();
                let name = if k == 0 {
                    "embeddings".to_string()
                } else {
                    format!("layer{k}")
                };
                Ok((name, tc(op, Tensor::f_cat(&rows, 0))?))
            })
            .collect()
    }

    /// Captions for image-token features, `batch` images at a time.
    pub fn caption(
        &self,
        op: &'static str,
        features: &Tensor,
        o: &GenerateOptions,
        batch: usize,
    ) -> Result<Vec<String>> {
        o.validate(op)?;
        self.check_features(op, features)?;
        let n = features.size()[0];
        let mut out = Vec::with_capacity(n as usize);
        let mut start = 0;
        while start < n {
            let len = (batch as i64).min(n - start);
            let ids = self.generate(op, &features.narrow(0, start, len), o)?;
            out.extend(self.decode(op, &ids)?);
            start += len;
        }
        Ok(out)
    }

    /// Writes a folder `BlipForConditionalGeneration.from_pretrained` reads
    /// (tied weights stored once, as transformers saves them), or for a path
    /// ending in .safetensors one file with the config and side files.
    pub fn save(&self, op: &'static str, path: &Path) -> Result<()> {
        let mut config = self.raw_config.clone();
        if let Some(m) = config.as_object_mut() {
            m.insert(
                "architectures".into(),
                serde_json::json!(["BlipForConditionalGeneration"]),
            );
        }
        let mut files = vec![(
            "tokenizer.json".to_string(),
            hf::tokenizer_json(op, &self.tokenizer)?,
        )];
        files.extend(self.side_files.iter().cloned());
        hf::save_model(op, path, &self.vs, SINGLE_FORMAT, &config, &files)
    }
}
