//! n-way identification of predicted features against true features.
//!
//! With `pred` and `truth` both items × features, let S[i, j] be the
//! similarity of prediction i to true item j (Pearson correlation across
//! features, cosine similarity, or minus the Euclidean distance). Item i is
//! identified in a trial when its own truth beats the candidates it is
//! compared with: S[i, i] > S[i, j] for every candidate j (a tie with the best
//! candidate among k tied counts 1/(k+1)).
//!
//! * ways = 2 (NSD-style, as MindEye / Brain-Diffuser compute it): every other
//!   item is a candidate once; item i's score is the fraction of the N−1 pairs
//!   it wins. No randomness.
//! * ways = m > 2 (GOD-style m-way top-1): in each of `repeats` trials, m−1
//!   distinct others are drawn uniformly at random (SplitMix64 seeded by
//!   `seed`, so results repeat exactly); item i's score is the fraction of
//!   trials won. With m = N every other item is a candidate, in one trial.
//!
//! The result: the mean over items; a 95% interval (percentile bootstrap over
//! items, 2000 resamples, same seed); chance = 1/ways; and a one-sided
//! p-value for "the predictions carry no information about which item they
//! belong to".
//!
//! * `PTest::Permutation` (the default): a permutation test of the pairing.
//!   Under that null hypothesis every assignment π of predictions to true
//!   items is as likely as the real one, so the statistic
//!   T(π) = mean_i E[i, π(i)] is compared with T(identity), where E[i, j] is
//!   the expected trial score of prediction i if truth j were its own (for
//!   2-way and m = N exactly the per-item score above; for random m-way draws
//!   the value the draws estimate, computed exactly from the ranks — see
//!   [`expected_trial`] — so the test has no Monte-Carlo noise of its own
//!   beyond the permutations). With N! ≤ permutations every pairing is
//!   enumerated and p = #{π: T(π) ≥ T(id)} / N! (exact, as
//!   `scipy.stats.permutation_test(..., permutation_type="pairings")`);
//!   otherwise p = (1 + #{T(π) ≥ T(id)}) / (1 + B) over B random pairings
//!   (SplitMix64 from the seed), so the smallest p is 1/(B+1). This test is
//!   exact: under the null hypothesis P(p ≤ α) ≤ α.
//! * `PTest::Binomial`: P(X ≥ k) with X ~ Binomial(N, 1/ways) and
//!   k = round(mean · N), the test this function used first. It treats
//!   each item's averaged score as one Bernoulli trial, whose variance is
//!   below a Bernoulli's, so it is conservative: under the null a 2-way
//!   item score is about uniform on [0, 1] (sd 1/√12 ≈ 0.29, against a coin
//!   flip's 0.5), so the binomial needs about 1.7 times the distance from
//!   chance for the same p. (A binomial over the N·(N−1) pairs would be the opposite
//!   mistake: they share items, and random predictions reach p ≈ 0.01.)

use tch::{Device, Kind, Tensor as T};

use crate::error::{Error, Result};
use crate::random::SplitMix64;
use crate::stats::dist::ibeta_pair;
use crate::tensor::{shape_text, tc, Tensor};
use statrs::function::gamma::ln_gamma;

const OP: &str = "identification";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Correlation,
    Cosine,
    Euclidean,
}

impl Metric {
    pub fn parse(op: &'static str, s: &str) -> Result<Self> {
        match s {
            "correlation" | "pearson" => Ok(Metric::Correlation),
            "cosine" => Ok(Metric::Cosine),
            "euclidean" => Ok(Metric::Euclidean),
            other => Err(Error::invalid(
                op,
                format!(
                    "unknown metric \"{other}\"; expected \"correlation\", \"cosine\" or \"euclidean\""
                ),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Correlation => "correlation",
            Metric::Cosine => "cosine",
            Metric::Euclidean => "euclidean",
        }
    }
}

/// How the p-value of an identification is computed (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PTest {
    /// Permutation test of the pairing with at most this many pairings
    /// (all of them when N! is not larger).
    Permutation(u64),
    /// One-sided binomial over items (conservative).
    Binomial,
}

/// Permutations of the default test: the smallest p it can give is 1/10001.
pub const DEFAULT_PERMUTATIONS: u64 = 10_000;

impl PTest {
    pub fn parse(op: &'static str, name: &str, permutations: i64) -> Result<Self> {
        if permutations < 1 {
            return Err(Error::invalid(
                op,
                format!("permutations must be ≥ 1, got {permutations}"),
            ));
        }
        match name {
            "permutation" => Ok(PTest::Permutation(permutations as u64)),
            "binomial" => Ok(PTest::Binomial),
            other => Err(Error::invalid(
                op,
                format!("unknown test \"{other}\"; expected \"permutation\" or \"binomial\""),
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdentificationOptions {
    pub ways: i64,
    pub repeats: i64,
    pub metric: Metric,
    pub seed: u64,
    pub test: PTest,
}

#[derive(Debug, Clone)]
pub struct Identification {
    /// e.g. "2-way all pairs, correlation" or "50-way top-1 ×100, correlation".
    pub protocol: String,
    pub ways: i64,
    pub mean: f64,
    pub ci: (f64, f64),
    pub chance: f64,
    pub p: f64,
    /// How p was computed, e.g. "permutation of the pairing, 10000 random
    /// pairings" or "binomial over items".
    pub test: String,
    pub trials: u64,
    /// Per-item fraction of trials won.
    pub scores: Vec<f64>,
}

/// Similarity matrix S[i, j] = sim(pred_i, truth_j), items × items, f64 on the CPU.
pub fn similarity(pred: &Tensor, truth: &Tensor, metric: Metric) -> Result<Vec<f64>> {
    let p = tc(OP, pred.as_floating(OP)?.f_to_kind(Kind::Double))?;
    let t = tc(OP, truth.as_floating(OP)?.f_to_kind(Kind::Double))?;
    let t = tc(OP, t.f_to_device(p.device()))?;
    let s = match metric {
        Metric::Correlation | Metric::Cosine => {
            let prep = |x: &T| -> Result<T> {
                let x = if metric == Metric::Correlation {
                    let m = tc(
                        OP,
                        x.f_mean_dim(Some([1i64].as_slice()), true, Kind::Double),
                    )?;
                    tc(OP, x.f_sub(&m))?
                } else {
                    x.shallow_clone()
                };
                let norm = tc(
                    OP,
                    tc(OP, x.f_square())?.f_sum_dim_intlist(
                        Some([1i64].as_slice()),
                        true,
                        Kind::Double,
                    ),
                )?;
                tc(OP, x.f_div(&tc(OP, norm.f_sqrt())?))
            };
            tc(
                OP,
                prep(&p)?.f_matmul(&tc(OP, prep(&t)?.f_transpose(0, 1))?),
            )?
        }
        Metric::Euclidean => {
            let d = tc(OP, T::f_cdist(&p, &t, 2.0, None::<i64>))?;
            tc(OP, d.f_neg())?
        }
    };
    let s = tc(OP, s.f_to_device(Device::Cpu))?;
    let s = tc(OP, s.f_contiguous())?;
    tc(OP, Vec::<f64>::try_from(&tc(OP, s.f_reshape([-1]))?))
}

/// Score of one trial: 1 if the own truth beats every candidate, 1/(k+1) if it
/// ties with k of them at the top, else 0 (also when a similarity is NaN).
fn trial(own: f64, candidates: impl Iterator<Item = f64>) -> f64 {
    // An undefined similarity (a constant row under correlation) never wins.
    if own.is_nan() {
        return 0.0;
    }
    let mut ties = 0u32;
    for c in candidates {
        if c > own || c.is_nan() {
            return 0.0;
        }
        if c == own {
            ties += 1;
        }
    }
    1.0 / f64::from(ties + 1)
}

/// Expected score of one trial that draws `draws` distinct candidates
/// uniformly from the n − 1 others, of which `beats` beat the own
/// similarity (or are NaN), `ties` equal it and `below` are below it: the
/// trial is won when no beating candidate is drawn, scoring 1/(k+1) with k
/// tied ones drawn, so
/// E = Σ_k C(ties, k) · C(below, draws − k) / C(n − 1, draws) / (k + 1).
/// For draws = 1 this is (below + ties/2)/(n − 1), the two-way score.
pub fn expected_trial(beats: usize, ties: usize, below: usize, draws: usize) -> f64 {
    let others = beats + ties + below;
    if draws == 0 || draws > others {
        return 0.0;
    }
    if draws == 1 {
        return (below as f64 + 0.5 * ties as f64) / others as f64;
    }
    let ln_choose = |n: usize, k: usize| -> f64 {
        ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
    };
    let total = ln_choose(others, draws);
    (0..=ties.min(draws))
        .filter(|&k| draws - k <= below)
        .map(|k| (ln_choose(ties, k) + ln_choose(below, draws - k) - total).exp() / (k + 1) as f64)
        .sum()
}

/// E[i * n + j]: the expected trial score of prediction i if truth j were
/// its own, for every pair (row-wise ranks, O(n² log n)).
fn expected_scores(s: &[f64], n: usize, draws: usize) -> Vec<f64> {
    let mut e = vec![0.0; n * n];
    let mut sorted: Vec<f64> = Vec::with_capacity(n);
    for i in 0..n {
        let row = &s[i * n..(i + 1) * n];
        sorted.clear();
        sorted.extend(row.iter().copied().filter(|v| !v.is_nan()));
        sorted.sort_by(|a, b| a.total_cmp(b));
        let nan = n - sorted.len();
        for j in 0..n {
            let own = row[j];
            if own.is_nan() {
                continue;
            }
            let lo = sorted.partition_point(|&v| v < own);
            let hi = sorted.partition_point(|&v| v <= own);
            // The own entry is one of the equal ones.
            let ties = hi - lo - 1;
            let beats = sorted.len() - hi + nan;
            e[i * n + j] = expected_trial(beats, ties, lo, draws);
        }
    }
    e
}

/// The permutation test of the pairing on the expected-score matrix: exact
/// over all n! pairings when that is at most `b`, else `b` random ones.
fn permutation_p(e: &[f64], n: usize, b: u64, seed: u64) -> (f64, String) {
    let stat =
        |perm: &[usize]| -> f64 { perm.iter().enumerate().map(|(i, &j)| e[i * n + j]).sum() };
    let identity: Vec<usize> = (0..n).collect();
    let observed = stat(&identity);
    // Sums of the same terms in another order may differ in the last bits.
    let at_least = |t: f64| t >= observed - 1e-12 * observed.abs().max(1.0);
    let factorial = (1..=n as u64).try_fold(1u64, |acc, k| acc.checked_mul(k));
    match factorial {
        Some(total) if total <= b => {
            // Heap's algorithm visits every permutation once.
            let mut perm = identity.clone();
            let mut c = vec![0usize; n];
            let mut count = u64::from(at_least(observed));
            let mut i = 0;
            while i < n {
                if c[i] < i {
                    if i % 2 == 0 {
                        perm.swap(0, i);
                    } else {
                        perm.swap(c[i], i);
                    }
                    count += u64::from(at_least(stat(&perm)));
                    c[i] += 1;
                    i = 0;
                } else {
                    c[i] = 0;
                    i += 1;
                }
            }
            (
                count as f64 / total as f64,
                format!("permutation of the pairing, exact over all {total} pairings"),
            )
        }
        _ => {
            let mut rng = SplitMix64::new(seed);
            let mut perm = identity;
            let mut count = 0u64;
            for _ in 0..b {
                for k in (1..n).rev() {
                    let j = rng.below(k as u64 + 1) as usize;
                    perm.swap(k, j);
                }
                count += u64::from(at_least(stat(&perm)));
            }
            (
                (count + 1) as f64 / (b + 1) as f64,
                format!("permutation of the pairing, {b} random pairings"),
            )
        }
    }
}

/// One-sided binomial P(X ≥ k), X ~ Binomial(n, q).
pub fn binomial_sf(k: u64, n: u64, q: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    // P(X ≥ k) = I_q(k, n − k + 1).
    ibeta_pair(k as f64, (n - k + 1) as f64, q, 1.0 - q).0
}

pub fn identification(
    pred: &Tensor,
    truth: &Tensor,
    o: &IdentificationOptions,
) -> Result<Identification> {
    if pred.ndim() != 2 || pred.shape() != truth.shape() {
        return Err(Error::shape(
            OP,
            "pred and truth",
            "two items × features matrices of the same shape",
            format!(
                "{} and {}",
                shape_text(&pred.shape()),
                shape_text(&truth.shape())
            ),
        ));
    }
    let n = pred.shape()[0];
    if n < 2 {
        return Err(Error::invalid(
            OP,
            format!("need at least 2 items, got {n}"),
        ));
    }
    if o.ways < 2 || o.ways > n {
        return Err(Error::invalid(
            OP,
            format!(
                "ways must be between 2 and the number of items ({n}), got {}",
                o.ways
            ),
        ));
    }
    if o.repeats < 1 {
        return Err(Error::invalid(
            OP,
            format!("repeats must be ≥ 1, got {}", o.repeats),
        ));
    }
    let s = similarity(pred, truth, o.metric)?;
    let n = n as usize;
    // NaN in the inputs would lose every comparison silently (mean 0,
    // p = 1): name the rows instead. (A constant row under a correlation
    // metric is defined to lose: it carries no pattern.)
    for (what, t) in [("pred", pred), ("truth", truth)] {
        let rows = tc(OP, tc(OP, t.0.f_isnan())?.f_any_dim(1, false))?;
        let rows = tc(OP, tc(OP, rows.f_nonzero())?.f_reshape([-1]))?;
        let bad = tc(OP, Vec::<i64>::try_from(&rows))?;
        if !bad.is_empty() {
            let shown: Vec<String> = bad.iter().take(10).map(|i| i.to_string()).collect();
            return Err(Error::invalid(
                OP,
                format!(
                    "{what} holds NaN in {} of {n} rows ({}{}); identification cannot rank them",
                    bad.len(),
                    shown.join(", "),
                    if bad.len() > 10 { ", …" } else { "" }
                ),
            ));
        }
    }
    let ways = o.ways as usize;
    let row = |i: usize| &s[i * n..(i + 1) * n];
    let mut rng = SplitMix64::new(o.seed);
    let (scores, trials, protocol): (Vec<f64>, u64, String) = if ways == 2 {
        let scores = (0..n)
            .map(|i| {
                let r = row(i);
                let won: f64 = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| trial(r[i], std::iter::once(r[j])))
                    .sum();
                won / (n - 1) as f64
            })
            .collect();
        (
            scores,
            (n * (n - 1)) as u64,
            format!("2-way all pairs, {}", o.metric.name()),
        )
    } else if ways == n {
        let scores = (0..n)
            .map(|i| {
                let r = row(i);
                trial(r[i], (0..n).filter(|&j| j != i).map(|j| r[j]))
            })
            .collect();
        (
            scores,
            n as u64,
            format!("{ways}-way top-1 against all others, {}", o.metric.name()),
        )
    } else {
        let reps = o.repeats as usize;
        let mut pool: Vec<usize> = Vec::with_capacity(n - 1);
        let scores = (0..n)
            .map(|i| {
                let r = row(i);
                let mut won = 0.0;
                for _ in 0..reps {
                    pool.clear();
                    pool.extend((0..n).filter(|&j| j != i));
                    // Partial Fisher–Yates: the first ways−1 are the draw.
                    for k in 0..ways - 1 {
                        let j = k + rng.below((pool.len() - k) as u64) as usize;
                        pool.swap(k, j);
                    }
                    won += trial(r[i], pool[..ways - 1].iter().map(|&j| r[j]));
                }
                won / reps as f64
            })
            .collect();
        (
            scores,
            (n * reps) as u64,
            format!("{ways}-way top-1 ×{reps} random draws, {}", o.metric.name()),
        )
    };
    let mean = scores.iter().sum::<f64>() / n as f64;
    // Percentile bootstrap over items.
    const B: usize = 2000;
    let mut boot = SplitMix64::new(o.seed ^ 0xB007_5742_D1CE_0001);
    let mut means: Vec<f64> = (0..B)
        .map(|_| {
            (0..n)
                .map(|_| scores[boot.below(n as u64) as usize])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(|a, b| a.total_cmp(b));
    let q = |f: f64| -> f64 {
        // Linear interpolation between order statistics (numpy's default).
        let pos = f * (B - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        means[lo] + (means[hi] - means[lo]) * (pos - lo as f64)
    };
    let ci = (q(0.025), q(0.975));
    let chance = 1.0 / ways as f64;
    let (p, test) = match o.test {
        PTest::Binomial => {
            let k = (mean * n as f64).round() as u64;
            (
                binomial_sf(k, n as u64, chance),
                "binomial over items".to_string(),
            )
        }
        PTest::Permutation(b) => {
            let e = expected_scores(&s, n, ways - 1);
            permutation_p(&e, n, b, o.seed ^ 0x9E37_79B9_7F4A_7C15)
        }
    };
    Ok(Identification {
        protocol,
        ways: o.ways,
        mean,
        ci,
        chance,
        p,
        test,
        trials,
        scores,
    })
}
