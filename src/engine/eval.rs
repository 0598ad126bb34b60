//! Script face of [`crate::eval`]: identification protocols, image
//! similarity, feature correlations and caption metrics.

use rhai::{Array, Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::tensor::to_tensor;
use crate::error::Error;
use crate::eval::captions::{self, BleuOptions, CaptionScoreOptions, Smoothing};
use crate::eval::image_metrics;
use crate::eval::{identification, IdentificationOptions, Metric, PTest};
use crate::tensor::Tensor;

pub static IDENTIFICATION: FnDoc = FnDoc {
    name: "identification",
    domain: "eval",
    signature: "identification(pred: Tensor, truth: Tensor, opts?: map) -> #{protocol, ways, mean, ci, chance, p, test, trials, scores}",
    summary: "n-way top-1 identification of predicted features (items × features) against true features. \
S[i, j] = similarity of prediction i to truth j (Pearson r across features, cosine, or −Euclidean distance); \
a trial is won when S[i, i] beats every candidate S[i, j] (a tie among k+1 at the top counts 1/(k+1)). \
ways: 2 = NSD-style, every other item once (score = fraction of the N−1 pairs won, as MindEye/Brain-Diffuser); \
m > 2 = GOD-style, m−1 distinct random others per trial, `repeats` trials per item; m = N = all others at once. \
mean = mean over items of the per-item scores (`scores`); ci = 95% percentile bootstrap over items (2000 resamples); \
chance = 1/ways; p = one-sided permutation test of the pairing (the null hypothesis: predictions carry no information about which item is theirs): \
the statistic mean_i E[i, π(i)], E[i, j] = the expected trial score of prediction i were truth j its own (the per-item score for 2-way and m = N; for random m-way draws its exact expectation from the ranks), \
is compared with the real pairing's over `permutations` random pairings, p = (1 + #{T(π) ≥ T})/(1 + permutations), or over all N! pairings when N! ≤ permutations (exact, as scipy.stats.permutation_test with permutation_type=\"pairings\"); \
test: \"binomial\" gives the older one-sided binomial over items, P(X ≥ round(mean·N)) with X ~ Binomial(N, 1/ways), which is conservative (each item's score averages several trials); test says which was used. Deterministic for a given seed.",
    options: &[
        OptDoc { name: "ways", ty: "int", default: "2", meaning: "candidates per trial including the true item (2 … number of items)" },
        OptDoc { name: "repeats", ty: "int", default: "100", meaning: "random draws per item when 2 < ways < items" },
        OptDoc { name: "metric", ty: "string", default: "correlation", meaning: "correlation (Pearson), cosine or euclidean" },
        OptDoc { name: "seed", ty: "int", default: "0", meaning: "seed of the candidate draws, the bootstrap and the permutations" },
        OptDoc { name: "test", ty: "string", default: "permutation", meaning: "p-value: permutation (of the pairing) or binomial (over items, conservative)" },
        OptDoc { name: "permutations", ty: "int", default: "10000", meaning: "random pairings of the permutation test (all N! when not more); the smallest p is 1/(permutations + 1)" },
    ],
    example: "set_seed(0);\nlet truth = randn([50, 100]);\nlet pred = truth + 2.0 * randn([50, 100]);\nlet r = identification(pred, truth, #{ways: 50});\nprint(`${r.protocol}: ${r.mean} (chance ${r.chance}, p = ${r.p})`);\nlet two = identification(pred, truth);",
};

pub static SSIM: FnDoc = FnDoc {
    name: "ssim",
    domain: "eval",
    signature: "ssim(a: ImageSet | Tensor, b: ImageSet | Tensor) -> #{mean, values}",
    summary: "Structural similarity of image pairs as the NSD reconstruction papers compute it: scikit-image structural_similarity on rgb2gray images with Gaussian weights (σ = 1.5), use_sample_covariance=False, data_range=1; b is resized to a's size (bilinear, antialiased) when they differ. values has one SSIM per pair.",
    options: &[],
    example: "let a = rand([2, 3, 32, 32]);
print(ssim(a, a).mean);   // 1.0",
};
pub static PIXCORR: FnDoc = FnDoc {
    name: "pixcorr",
    domain: "eval",
    signature: "pixcorr(a: ImageSet | Tensor, b: ImageSet | Tensor) -> #{mean, values}",
    summary: "Pixel correlation of image pairs: Pearson r over the flattened RGB values (b resized to a's size, bilinear, when they differ).",
    options: &[],
    example: "let a = rand([2, 3, 16, 16]);
print(pixcorr(a, a * 0.5 + 0.1).mean);   // 1.0",
};
pub static FEATURE_CORR: FnDoc = FnDoc {
    name: "feature_corr",
    domain: "eval",
    signature: "feature_corr(pred: Tensor, truth: Tensor) -> #{per_sample, per_feature, mean_sample, mean_feature}",
    summary: "Pearson r between predicted and true features (samples × features): per sample (across features) and per feature (across samples), with their means (NaN skipped).",
    options: &[],
    example: "let t = randn([20, 8]);
let r = feature_corr(t + 0.5 * randn([20, 8]), t);
print(r.mean_feature);",
};

pub static BLEU: FnDoc = FnDoc {
    name: "bleu",
    domain: "eval",
    signature: "bleu(candidates: array, references: array, opts?: map) -> #{bleu1, bleu2, bleu3, bleu4}",
    summary: "BLEU-1 … BLEU-4 equal to nltk.translate.bleu_score.corpus_bleu (to 1e-12): uniform weights, n-gram counts clipped by their maximum count in any of a candidate's references, brevity penalty against the closest reference length (ties to the shorter). references[i] is a string or an array of strings (several references per candidate). \
Tokens: each text lower-cased and split on whitespace (Python's text.lower().split(); punctuation stays attached to its word). \
With sentence: true, nltk's sentence_bleu per candidate: bleuN is then their mean and values.bleuN the per-candidate scores. \
Without smoothing, as nltk, a zero n-gram precision is replaced by sys.float_info.min, so BLEU of that order and above is ~1e-77 rather than 0, with a warning (nltk's UserWarning); smoothing: \"method1\" is SmoothingFunction().method1 (0.1 added to zero counts). No unigram overlap at all gives 0. An empty candidate scores as nltk scores it; an empty reference list or an empty reference string is an error.",
    options: &[
        OptDoc { name: "smoothing", ty: "string", default: "\"none\"", meaning: "none (nltk's default, method0) or method1" },
        OptDoc { name: "sentence", ty: "bool", default: "false", meaning: "sentence BLEU per candidate (mean in bleuN, per candidate in values) instead of corpus BLEU" },
    ],
    example: "let r = bleu([\"a red square on the left\", \"a blue circle\"],\n             [[\"a red square at the left\", \"there is a red square on the left\"], \"a small blue circle\"]);\nprint(r.bleu4);\nlet s = bleu([\"a red square\"], [\"a red square on the left\"], #{sentence: true, smoothing: \"method1\"});\nprint(s.values.bleu4);",
};
pub static ROUGE_L: FnDoc = FnDoc {
    name: "rouge_l",
    domain: "eval",
    signature: "rouge_l(candidates: array, references: array) -> #{rouge_l, values}",
    summary: "ROUGE-L F-measure equal to the rouge-score package (RougeScorer(['rougeL']), to 1e-12): longest common subsequence of tokens, F = 2PR/(P + R). Tokens as rouge-score's default tokenizer: lower-case, every run of characters other than a–z and 0–9 is a separator (so punctuation and non-ASCII letters split words); no stemming. With several references (references[i] an array) the maximum F, as score_multi. rouge_l is the mean over candidates, values the per-candidate F.",
    options: &[],
    example: "let r = rouge_l([\"A red square, on the left!\"], [[\"a red square at the left\", \"a square\"]]);\nprint(r.rouge_l);",
};
pub static TEXT_SIMILARITY: FnDoc = FnDoc {
    name: "text_similarity",
    domain: "eval",
    signature: "text_similarity(encoder: TextEncoder | Clip, a: array, b: array) -> #{similarity, values}",
    summary: "Cosine similarity of the sentence embeddings of a[i] and b[i] (L2-normalised embed_text; MiniLM as MindEye2 reports sentence similarity, or CLIP's text tower). similarity is the mean over pairs, values the per-pair cosines.",
    options: &[],
    example: "let enc = load_text_encoder(\"minilm\");\nlet s = text_similarity(enc, [\"a red square\", \"a dog\"], [\"a crimson square\", \"a blue circle\"]);\nprint(s.values);",
};
pub static CAPTION_SCORES: FnDoc = FnDoc {
    name: "caption_scores",
    domain: "eval",
    signature: "caption_scores(candidates: array, references: array, opts?: map) -> #{bleu1 … bleu4, rouge_l, similarity, <metric>_chance, <metric>_chance_sd, <metric>_p, metrics, permutations}",
    summary: "Caption metrics against chance, as Takagi & Nishimoto report BLEU-4 \"2.4 ± 1.7\" for random captions: for each metric (corpus bleu1 … bleu4 as bleu(), mean rouge_l as rouge_l(), and with an encoder the mean cosine similarity of each candidate with its references' embeddings, averaged over its references) the score of candidates against their own references; <metric>_chance and <metric>_chance_sd: mean and sd (ddof 0) of the same metric over `permutations` random pairings of every candidate with another item's references (derangements: no candidate keeps its own); <metric>_p = (1 + #{chance ≥ score})/(1 + permutations). metrics lists the metric names in order; plot_bars draws the result (score bars with stars by p, chance bars with ± sd). Tokenisation as bleu and rouge_l. Random pairings follow set_seed unless seed is given.",
    options: &[
        OptDoc { name: "permutations", ty: "int", default: "1000", meaning: "random pairings for the chance level (≥ 1)" },
        OptDoc { name: "encoder", ty: "TextEncoder | Clip", default: "none", meaning: "sentence encoder for the similarity metric (none: no similarity)" },
        OptDoc { name: "smoothing", ty: "string", default: "\"none\"", meaning: "BLEU smoothing: none or method1 (as bleu)" },
        OptDoc { name: "seed", ty: "int", default: "none", meaning: "seed of the random pairings (default: drawn from set_seed's generator)" },
    ],
    example: "set_seed(0);\nlet refs = [\"a red square on the left\", \"a blue circle at the top\", \"a green star in the middle\", \"a yellow cross on grass\", \"a black triangle over water\"];\nlet cands = [\"a red square at the left\", \"a blue circle on the top\", \"a green star in the centre\", \"a yellow cross on the grass\", \"a black triangle over the water\"];\nlet s = caption_scores(cands, refs, #{permutations: 200});\nprint(`BLEU-1 ${s.bleu1} (chance ${s.bleu1_chance} ± ${s.bleu1_chance_sd}, p = ${s.bleu1_p})`);\nplot_bars(s, #{y_label: \"score\"}).save(\"caption_scores.png\");\nlet enc = load_text_encoder(\"minilm\");\nlet t = caption_scores(cands, refs, #{encoder: enc, permutations: 100});\nprint(t.similarity);",
};

/// Strings of an array argument, named in errors.
fn string_array(op: &'static str, what: &str, v: &Dynamic) -> crate::error::Result<Vec<String>> {
    let arr = v.read_lock::<Array>().ok_or_else(|| {
        Error::invalid(
            op,
            format!(
                "{what}: expected an array of strings, got {}",
                v.type_name()
            ),
        )
    })?;
    arr.iter()
        .enumerate()
        .map(|(i, t)| {
            if t.is_string() {
                Ok(t.to_string())
            } else {
                Err(Error::invalid(
                    op,
                    format!("{what}[{i}]: expected a string, got {}", t.type_name()),
                ))
            }
        })
        .collect()
}

/// References: one string or an array of strings per candidate.
fn reference_lists(op: &'static str, v: &Dynamic) -> crate::error::Result<Vec<Vec<String>>> {
    let arr = v.read_lock::<Array>().ok_or_else(|| {
        Error::invalid(op, format!("references: expected an array (a string or an array of strings per candidate), got {}", v.type_name()))
    })?;
    arr.iter()
        .enumerate()
        .map(|(i, r)| {
            if r.is_string() {
                Ok(vec![r.to_string()])
            } else if r.is_array() {
                string_array(op, &format!("references[{i}]"), r)
            } else {
                Err(Error::invalid(
                    op,
                    format!(
                        "references[{i}]: expected a string or an array of strings, got {}",
                        r.type_name()
                    ),
                ))
            }
        })
        .collect()
}

type Embedder = Box<dyn Fn(&[String]) -> crate::error::Result<tch::Tensor>>;

/// An embedding function from a TextEncoder or a Clip value.
fn embedder(op: &'static str, v: &Dynamic) -> crate::error::Result<Embedder> {
    if let Some(e) = v.read_lock::<super::nets::TextEncoderValue>() {
        let e = e.0.clone();
        return Ok(Box::new(move |t: &[String]| {
            let o = crate::models::text::EmbedOptions {
                normalize: Some(true),
                ..Default::default()
            };
            e.embed(op, t, &o)
        }));
    }
    if let Some(c) = v.read_lock::<super::nets::ClipValue>() {
        let c = c.0.clone();
        return Ok(Box::new(move |t: &[String]| c.embed_text(op, t, 32)));
    }
    Err(Error::invalid(
        op,
        format!(
            "encoder: expected a TextEncoder (load_text_encoder) or a Clip (load_clip), got {}",
            v.type_name()
        ),
    ))
}

fn f64_tensor(op: &'static str, v: &[f64]) -> crate::error::Result<Tensor> {
    Tensor::from_f64(op, v, &[v.len() as i64], tch::Kind::Double)
}

/// Images as an N×3×H×W tensor from an ImageSet or a tensor.
pub(super) fn images(
    op: &'static str,
    arg: &str,
    v: &Dynamic,
) -> crate::error::Result<tch::Tensor> {
    if let Some(set) = v.read_lock::<crate::data::ImageSet>() {
        return Ok(set.data.0.shallow_clone());
    }
    Ok(to_tensor(op, arg, v)?.0)
}

fn nan_mean(v: &[f64]) -> f64 {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if finite.is_empty() {
        f64::NAN
    } else {
        finite.iter().sum::<f64>() / finite.len() as f64
    }
}

fn values_map(op: &'static str, v: Vec<f64>) -> crate::error::Result<Map> {
    let mut m = Map::new();
    m.insert("mean".into(), Dynamic::from_float(nan_mean(&v)));
    m.insert(
        "values".into(),
        Dynamic::from(Tensor::from_f64(
            op,
            &v,
            &[v.len() as i64],
            tch::Kind::Double,
        )?),
    );
    Ok(m)
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry) {
    for doc in [&SSIM, &PIXCORR, &FEATURE_CORR] {
        help.add(doc);
    }
    engine.register_fn("ssim", |a: Dynamic, b: Dynamic| -> RhaiResult<Map> {
        guard("ssim", || {
            values_map(
                "ssim",
                image_metrics::ssim(&images("ssim", "a", &a)?, &images("ssim", "b", &b)?)?,
            )
        })
    });
    engine.register_fn("pixcorr", |a: Dynamic, b: Dynamic| -> RhaiResult<Map> {
        guard("pixcorr", || {
            values_map(
                "pixcorr",
                image_metrics::pixcorr(&images("pixcorr", "a", &a)?, &images("pixcorr", "b", &b)?)?,
            )
        })
    });
    engine.register_fn(
        "feature_corr",
        |p: Dynamic, t: Dynamic| -> RhaiResult<Map> {
            guard("feature_corr", || {
                const OP: &str = "feature_corr";
                let (s, f) = image_metrics::feature_corr(
                    &to_tensor(OP, "pred", &p)?.0,
                    &to_tensor(OP, "truth", &t)?.0,
                )?;
                let mut m = Map::new();
                m.insert("mean_sample".into(), Dynamic::from_float(nan_mean(&s)));
                m.insert("mean_feature".into(), Dynamic::from_float(nan_mean(&f)));
                m.insert(
                    "per_sample".into(),
                    Dynamic::from(Tensor::from_f64(
                        OP,
                        &s,
                        &[s.len() as i64],
                        tch::Kind::Double,
                    )?),
                );
                m.insert(
                    "per_feature".into(),
                    Dynamic::from(Tensor::from_f64(
                        OP,
                        &f,
                        &[f.len() as i64],
                        tch::Kind::Double,
                    )?),
                );
                Ok(m)
            })
        },
    );
    help.add(&IDENTIFICATION);
    let f = |pred: Dynamic, truth: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard("identification", || {
            const OP: &str = "identification";
            let o = Opts::parse(&IDENTIFICATION, opts)?;
            let seed = o.i64("seed")?;
            if seed < 0 {
                return Err(Error::invalid(OP, format!("seed must be ≥ 0, got {seed}")));
            }
            let opts = IdentificationOptions {
                ways: o.i64("ways")?,
                repeats: o.i64("repeats")?,
                metric: Metric::parse(OP, &o.string("metric")?)?,
                seed: seed as u64,
                test: PTest::parse(OP, &o.string("test")?, o.i64("permutations")?)?,
            };
            let r = identification(
                &to_tensor(OP, "pred", &pred)?,
                &to_tensor(OP, "truth", &truth)?,
                &opts,
            )?;
            let mut m = Map::new();
            m.insert("protocol".into(), Dynamic::from(r.protocol));
            m.insert("ways".into(), Dynamic::from_int(r.ways));
            m.insert("mean".into(), Dynamic::from_float(r.mean));
            m.insert(
                "ci".into(),
                Dynamic::from_array(vec![
                    Dynamic::from_float(r.ci.0),
                    Dynamic::from_float(r.ci.1),
                ]),
            );
            m.insert("chance".into(), Dynamic::from_float(r.chance));
            m.insert("p".into(), Dynamic::from_float(r.p));
            m.insert("test".into(), Dynamic::from(r.test));
            m.insert("trials".into(), Dynamic::from_int(r.trials as i64));
            let n = r.scores.len() as i64;
            m.insert(
                "scores".into(),
                Dynamic::from(Tensor::from_f64(OP, &r.scores, &[n], tch::Kind::Double)?),
            );
            Ok(m)
        })
    };
    engine.register_fn("identification", move |p: Dynamic, t: Dynamic| {
        f(p, t, Map::new())
    });
    engine.register_fn("identification", f);
    for doc in [&BLEU, &ROUGE_L, &TEXT_SIMILARITY, &CAPTION_SCORES] {
        help.add(doc);
    }
    let bleu = |c: Dynamic, r: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard("bleu", || {
            const OP: &str = "bleu";
            let o = Opts::parse(&BLEU, opts)?;
            let bo = BleuOptions {
                smoothing: Smoothing::parse(OP, &o.string("smoothing")?)?,
                sentence: o.bool("sentence")?,
            };
            let b = captions::bleu(
                &string_array(OP, "candidates", &c)?,
                &reference_lists(OP, &r)?,
                &bo,
            )?;
            let mut m = Map::new();
            for (k, v) in b.scores.iter().enumerate() {
                m.insert(format!("bleu{}", k + 1).into(), Dynamic::from_float(*v));
            }
            if let Some(values) = b.values {
                let mut vm = Map::new();
                for (k, v) in values.iter().enumerate() {
                    vm.insert(
                        format!("bleu{}", k + 1).into(),
                        Dynamic::from(f64_tensor(OP, v)?),
                    );
                }
                m.insert("values".into(), Dynamic::from_map(vm));
            }
            Ok(m)
        })
    };
    engine.register_fn("bleu", move |c: Dynamic, r: Dynamic| bleu(c, r, Map::new()));
    engine.register_fn("bleu", bleu);
    engine.register_fn("rouge_l", |c: Dynamic, r: Dynamic| -> RhaiResult<Map> {
        guard("rouge_l", || {
            const OP: &str = "rouge_l";
            let res = captions::rouge_l(
                &string_array(OP, "candidates", &c)?,
                &reference_lists(OP, &r)?,
            )?;
            let mut m = Map::new();
            m.insert("rouge_l".into(), Dynamic::from_float(res.mean));
            m.insert("values".into(), Dynamic::from(f64_tensor(OP, &res.values)?));
            Ok(m)
        })
    });
    engine.register_fn(
        "text_similarity",
        |e: Dynamic, a: Dynamic, b: Dynamic| -> RhaiResult<Map> {
            guard("text_similarity", || {
                const OP: &str = "text_similarity";
                let embed = embedder(OP, &e)?;
                let v = captions::similarity_with(
                    OP,
                    &*embed,
                    &string_array(OP, "a", &a)?,
                    &string_array(OP, "b", &b)?,
                )?;
                let mut m = Map::new();
                m.insert(
                    "similarity".into(),
                    Dynamic::from_float(v.iter().sum::<f64>() / v.len() as f64),
                );
                m.insert("values".into(), Dynamic::from(f64_tensor(OP, &v)?));
                Ok(m)
            })
        },
    );
    let scores = |c: Dynamic, r: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard("caption_scores", || {
            const OP: &str = "caption_scores";
            let o = Opts::parse(&CAPTION_SCORES, opts)?;
            let np = o.i64("permutations")?;
            if np < 1 {
                return Err(Error::BadOption {
                    op: OP,
                    key: "permutations".into(),
                    expected: "a positive integer".into(),
                    got: np.to_string(),
                });
            }
            let seed = match o.opt_i64("seed")? {
                Some(s) if s < 0 => {
                    return Err(Error::invalid(OP, format!("seed must be ≥ 0, got {s}")))
                }
                Some(s) => s as u64,
                None => super::stats::torch_seed(OP)?,
            };
            let embed = match o.raw("encoder") {
                Some(e) => Some(embedder(OP, &e)?),
                None => None,
            };
            let so = CaptionScoreOptions {
                permutations: np as usize,
                seed,
                smoothing: Smoothing::parse(OP, &o.string("smoothing")?)?,
            };
            let res = captions::caption_scores(
                &string_array(OP, "candidates", &c)?,
                &reference_lists(OP, &r)?,
                &so,
                embed.as_deref(),
            )?;
            let mut m = Map::new();
            for s in &res {
                m.insert(s.name.into(), Dynamic::from_float(s.score));
                m.insert(
                    format!("{}_chance", s.name).into(),
                    Dynamic::from_float(s.chance),
                );
                m.insert(
                    format!("{}_chance_sd", s.name).into(),
                    Dynamic::from_float(s.chance_sd),
                );
                m.insert(format!("{}_p", s.name).into(), Dynamic::from_float(s.p));
            }
            m.insert(
                "metrics".into(),
                Dynamic::from_array(
                    res.iter()
                        .map(|s| Dynamic::from(s.name.to_string()))
                        .collect(),
                ),
            );
            m.insert("permutations".into(), Dynamic::from_int(np));
            Ok(m)
        })
    };
    engine.register_fn("caption_scores", move |c: Dynamic, r: Dynamic| {
        scores(c, r, Map::new())
    });
    engine.register_fn("caption_scores", scores);
}
