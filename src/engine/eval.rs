//! Script face of [`crate::eval`]: identification protocols.

use rhai::{Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::tensor::to_tensor;
use crate::error::Error;
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

pub fn register(engine: &mut Engine, help: &mut HelpRegistry) {
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
