//! Script face of [`crate::eval`]: identification protocols, image
//! similarity and feature correlations.

use rhai::{Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::tensor::to_tensor;
use crate::error::Error;
use crate::eval::image_metrics;
use crate::eval::{identification, IdentificationOptions, Metric};
use crate::tensor::Tensor;

pub static IDENTIFICATION: FnDoc = FnDoc {
    name: "identification",
    domain: "eval",
    signature: "identification(pred: Tensor, truth: Tensor, opts?: map) -> #{protocol, ways, mean, ci, chance, p, trials, scores}",
    summary: "n-way top-1 identification of predicted features (items × features) against true features. \
S[i, j] = similarity of prediction i to truth j (Pearson r across features, cosine, or −Euclidean distance); \
a trial is won when S[i, i] beats every candidate S[i, j] (a tie among k+1 at the top counts 1/(k+1)). \
ways: 2 = NSD-style, every other item once (score = fraction of the N−1 pairs won, as MindEye/Brain-Diffuser); \
m > 2 = GOD-style, m−1 distinct random others per trial, `repeats` trials per item; m = N = all others at once. \
mean = mean over items of the per-item scores (`scores`); ci = 95% percentile bootstrap over items (2000 resamples); \
chance = 1/ways; p = one-sided binomial over items, P(X ≥ round(mean·N)) with X ~ Binomial(N, 1/ways) \
(conservative: the trials = N(N−1) pairs or N·repeats draws share items, and a binomial over them would be \
far too optimistic). Deterministic for a given seed.",
    options: &[
        OptDoc { name: "ways", ty: "int", default: "2", meaning: "candidates per trial including the true item (2 … number of items)" },
        OptDoc { name: "repeats", ty: "int", default: "100", meaning: "random draws per item when 2 < ways < items" },
        OptDoc { name: "metric", ty: "string", default: "correlation", meaning: "correlation (Pearson), cosine or euclidean" },
        OptDoc { name: "seed", ty: "int", default: "0", meaning: "seed of the candidate draws and the bootstrap" },
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

/// Images as an N×3×H×W tensor from an ImageSet or a tensor.
fn images(op: &'static str, v: &Dynamic) -> crate::error::Result<tch::Tensor> {
    if let Some(set) = v.read_lock::<crate::data::ImageSet>() {
        return Ok(set.data.0.shallow_clone());
    }
    Ok(to_tensor(op, v)?.0)
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
                image_metrics::ssim(&images("ssim", &a)?, &images("ssim", &b)?)?,
            )
        })
    });
    engine.register_fn("pixcorr", |a: Dynamic, b: Dynamic| -> RhaiResult<Map> {
        guard("pixcorr", || {
            values_map(
                "pixcorr",
                image_metrics::pixcorr(&images("pixcorr", &a)?, &images("pixcorr", &b)?)?,
            )
        })
    });
    engine.register_fn(
        "feature_corr",
        |p: Dynamic, t: Dynamic| -> RhaiResult<Map> {
            guard("feature_corr", || {
                const OP: &str = "feature_corr";
                let (s, f) =
                    image_metrics::feature_corr(&to_tensor(OP, &p)?.0, &to_tensor(OP, &t)?.0)?;
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
            };
            let r = identification(&to_tensor(OP, &pred)?, &to_tensor(OP, &truth)?, &opts)?;
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
}
