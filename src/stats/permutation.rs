//! Permutation tests, with scipy.stats.permutation_test's conventions.
//!
//! The null distribution comes from relabelling the data:
//! - `pairings` (correlations): y is shuffled against x;
//! - `rdm` (RSA, a Mantel test): the stimuli of the second RDM are shuffled
//!   (rows and columns together) and the upper triangles compared again;
//! - `independent` (difference of means): the pooled observations are
//!   re-split into groups of the original sizes;
//! - `samples` (paired difference): the two members of each pair are swapped
//!   (the sign of each difference flipped).
//!
//! When every relabelling can be enumerated within `n_permutations` the test
//! is exact (the null holds every relabelling, the identity included) and
//! p = #{null ≥ observed}/N. Otherwise `n_permutations` random relabellings
//! are drawn and p = (#{null ≥ observed} + 1)/(n_permutations + 1)
//! (Phipson & Smyth 2010), so p is never 0. "less" counts null ≤ observed;
//! "two-sided" is 2·min(p_less, p_greater) clipped to 1. Comparisons allow a
//! relative tolerance of 100·ε·|observed| (scipy's `gamma`), so ties with the
//! observed statistic count. The exact p-values equal scipy's to rounding.

use rayon::prelude::*;

use super::common::{bad_choice, check_same_len, np_mean, Alternative};
use super::rdm::{upper_of, RsaMethod};
use crate::error::{Error, Result};

/// The statistic of a built-in permutation test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PermStatistic {
    /// Pearson r of x and y (pairings).
    #[default]
    Pearson,
    Spearman,
    KendallB,
    KendallA,
    /// mean(x) − mean(y) of two independent groups.
    MeanDiff,
    /// mean(x − y) of paired samples.
    MeanPairedDiff,
}

impl PermStatistic {
    pub const NAMES: &'static [&'static str] = &[
        "pearson",
        "spearman",
        "kendall_b",
        "kendall_a",
        "mean_diff",
        "mean_paired_diff",
    ];

    pub fn parse(op: &'static str, value: &str) -> Result<Self> {
        Ok(match value {
            "pearson" => PermStatistic::Pearson,
            "spearman" => PermStatistic::Spearman,
            "kendall_b" => PermStatistic::KendallB,
            "kendall_a" => PermStatistic::KendallA,
            "mean_diff" => PermStatistic::MeanDiff,
            "mean_paired_diff" => PermStatistic::MeanPairedDiff,
            other => return Err(bad_choice(op, "statistic", Self::NAMES, other)),
        })
    }

    fn correlation(self) -> Option<RsaMethod> {
        match self {
            PermStatistic::Pearson => Some(RsaMethod::Pearson),
            PermStatistic::Spearman => Some(RsaMethod::Spearman),
            PermStatistic::KendallB => Some(RsaMethod::KendallB),
            PermStatistic::KendallA => Some(RsaMethod::KendallA),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PermutationOptions {
    pub statistic: PermStatistic,
    /// Random relabellings when exact enumeration would need more.
    pub n_permutations: usize,
    pub alternative: Alternative,
    /// x and y are RDMs (n×n, row-major): permute the stimuli of y.
    pub rdm: bool,
    /// Seed of the random relabellings (the engine draws it from set_seed's generator).
    pub seed: u64,
}

impl Default for PermutationOptions {
    fn default() -> Self {
        PermutationOptions {
            statistic: PermStatistic::Pearson,
            n_permutations: 9999,
            alternative: Alternative::TwoSided,
            rdm: false,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PermutationResult {
    pub statistic: f64,
    pub pvalue: f64,
    /// The null distribution (every relabelling when exact).
    pub null: Vec<f64>,
    pub exact: bool,
}

/// SplitMix64: the k-th random relabelling depends only on (seed, k), so
/// results do not depend on the number of threads.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}

struct Rng(u64);
impl Rng {
    fn new(seed: u64, k: u64) -> Self {
        Rng(splitmix(seed ^ splitmix(k.wrapping_add(1))))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        splitmix(self.0)
    }
    /// Uniform in 0..n (n ≥ 1), by rejection.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next();
            if v < zone {
                return v % n;
            }
        }
    }
}

/// The k-th random permutation of 0..n (Fisher–Yates).
pub fn random_permutation(seed: u64, k: u64, n: usize) -> Vec<usize> {
    let mut rng = Rng::new(seed, k);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}

/// n! when it is at most `limit`.
fn factorial_upto(n: usize, limit: usize) -> Option<usize> {
    let mut f: usize = 1;
    for k in 2..=n {
        f = f.checked_mul(k)?;
        if f > limit {
            return None;
        }
    }
    Some(f)
}

fn binomial_upto(n: usize, k: usize, limit: usize) -> Option<usize> {
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        c = c * (n - i) as u128 / (i + 1) as u128;
        if c > limit as u128 {
            return None;
        }
    }
    Some(c as usize)
}

/// Relabellings evaluated between two checks of the run's stop flag.
const CHUNK: u64 = 1024;

/// `f(k)` for k in 0..count, in parallel, a chunk at a time: the run's stop
/// flag (deadline, memory, signals) is checked between chunks, and the
/// null distribution's memory is reserved before it is allocated.
fn par_null(count: u64, f: impl Fn(u64) -> Result<f64> + Sync) -> Result<Vec<f64>> {
    const OP: &str = "permutation_test";
    crate::cancel::reserve(
        OP,
        &format!("the null distribution of {count} relabellings"),
        count as f64 * 8.0,
    )?;
    let mut out = Vec::with_capacity(count as usize);
    let mut start = 0;
    while start < count {
        crate::cancel::check(OP)?;
        let end = (start + CHUNK).min(count);
        out.extend(
            (start..end)
                .into_par_iter()
                .map(&f)
                .collect::<Result<Vec<f64>>>()?,
        );
        start = end;
    }
    Ok(out)
}

/// Every permutation of 0..n in lexicographic order.
pub fn all_permutations(n: usize) -> Vec<Vec<usize>> {
    let mut p: Vec<usize> = (0..n).collect();
    let mut out = vec![p.clone()];
    loop {
        let Some(i) = (1..n).rev().find(|&i| p[i - 1] < p[i]) else {
            return out;
        };
        let j = (i..n).rev().find(|&j| p[j] > p[i - 1]).unwrap_or(i);
        p.swap(i - 1, j);
        p[i..].reverse();
        out.push(p.clone());
    }
}

/// p-value of `observed` against `null` (scipy's rules, see the module docs).
pub fn permutation_pvalue(observed: f64, null: &[f64], exact: bool, alt: Alternative) -> f64 {
    if observed.is_nan() {
        return f64::NAN;
    }
    let gamma = (100.0 * f64::EPSILON * observed).abs();
    let adj = if exact { 0.0 } else { 1.0 };
    let n = null.len() as f64;
    let less = (null.iter().filter(|&&v| v <= observed + gamma).count() as f64 + adj) / (n + adj);
    let greater =
        (null.iter().filter(|&&v| v >= observed - gamma).count() as f64 + adj) / (n + adj);
    let p = match alt {
        Alternative::Less => less,
        Alternative::Greater => greater,
        Alternative::TwoSided => 2.0 * less.min(greater),
    };
    p.clamp(0.0, 1.0)
}

fn check_n(op: &'static str, n_perm: usize) -> Result<()> {
    if n_perm == 0 {
        return Err(Error::BadOption {
            op,
            key: "n_permutations".into(),
            expected: "a positive integer".into(),
            got: "0".into(),
        });
    }
    Ok(())
}

/// A permutation test of a built-in statistic on x and y (see the module
/// docs for the relabelling each statistic uses). With `rdm`, x and y are
/// n×n RDMs in row-major order.
pub fn permutation_test(
    x: &[f64],
    y: &[f64],
    opts: &PermutationOptions,
) -> Result<PermutationResult> {
    const OP: &str = "permutation_test";
    check_n(OP, opts.n_permutations)?;
    let np = opts.n_permutations;
    let stat = opts.statistic;
    if opts.rdm {
        let Some(method) = stat.correlation() else {
            return Err(Error::invalid(
                OP,
                "with rdm: true the statistic must be a correlation (pearson, spearman, kendall_b, kendall_a)",
            ));
        };
        check_same_len(OP, x, y)?;
        let n = (x.len() as f64).sqrt().round() as usize;
        if n * n != x.len() || n < 3 {
            return Err(Error::shape(
                OP,
                "RDMs",
                "two square matrices of at least 3×3",
                format!("{} values", x.len()),
            ));
        }
        let ux = upper_of(x, n);
        let eval = |p: &[usize]| -> Result<f64> {
            let mut uy = Vec::with_capacity(ux.len());
            for i in 0..n {
                for j in i + 1..n {
                    uy.push(y[p[i] * n + p[j]]);
                }
            }
            Ok(method.compare(&ux, &uy)?.statistic)
        };
        return run_perms(n, np, opts, eval);
    }
    check_same_len(OP, x, y).or_else(|e| {
        if stat == PermStatistic::MeanDiff {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    match stat {
        PermStatistic::MeanDiff => {
            let (nx, n) = (x.len(), x.len() + y.len());
            if nx == 0 || y.is_empty() {
                return Err(Error::invalid(OP, "both groups need observations"));
            }
            let pooled: Vec<f64> = x.iter().chain(y).copied().collect();
            let diff = |ix: &[usize]| -> f64 {
                let mut inx = vec![false; n];
                ix.iter().for_each(|&i| inx[i] = true);
                let a: Vec<f64> = (0..n).filter(|&i| inx[i]).map(|i| pooled[i]).collect();
                let b: Vec<f64> = (0..n).filter(|&i| !inx[i]).map(|i| pooled[i]).collect();
                np_mean(&a) - np_mean(&b)
            };
            let observed = np_mean(x) - np_mean(y);
            if let Some(total) = binomial_upto(n, nx, np) {
                crate::cancel::reserve(
                    OP,
                    &format!("the null distribution of {total} splits"),
                    total as f64 * 8.0,
                )?;
                let mut null = Vec::with_capacity(total);
                let mut comb: Vec<usize> = (0..nx).collect();
                loop {
                    if null.len() % CHUNK as usize == 0 {
                        crate::cancel::check(OP)?;
                    }
                    null.push(diff(&comb));
                    // next combination
                    let Some(i) = (0..nx).rev().find(|&i| comb[i] != i + n - nx) else {
                        break;
                    };
                    comb[i] += 1;
                    for j in i + 1..nx {
                        comb[j] = comb[j - 1] + 1;
                    }
                }
                return Ok(finish(observed, null, true, opts.alternative));
            }
            let null = par_null(np as u64, |k| {
                Ok(diff(&random_permutation(opts.seed, k, n)[..nx]))
            })?;
            Ok(finish(observed, null, false, opts.alternative))
        }
        PermStatistic::MeanPairedDiff => {
            let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
            let n = d.len();
            if n == 0 {
                return Err(Error::invalid(OP, "no observations"));
            }
            let flipped = |signs: &dyn Fn(usize) -> bool| -> f64 {
                let v: Vec<f64> = (0..n)
                    .map(|i| if signs(i) { -d[i] } else { d[i] })
                    .collect();
                np_mean(&v)
            };
            let observed = np_mean(&d);
            if n < 63 && (1usize << n) <= np {
                let null = par_null(1u64 << n, |m| Ok(flipped(&|i| (m >> i) & 1 == 1)))?;
                return Ok(finish(observed, null, true, opts.alternative));
            }
            let null = par_null(np as u64, |k| {
                let mut rng = Rng::new(opts.seed, k);
                let signs: Vec<bool> = (0..n).map(|_| rng.next() >> 63 == 1).collect();
                Ok(flipped(&|i| signs[i]))
            })?;
            Ok(finish(observed, null, false, opts.alternative))
        }
        _ => {
            let method = stat.correlation().ok_or_else(|| {
                Error::invalid(OP, "internal: a statistic that is not a correlation")
            })?;
            let n = x.len();
            if n < 2 {
                return Err(Error::invalid(OP, "need at least 2 pairs"));
            }
            let eval = |p: &[usize]| -> Result<f64> {
                let yp: Vec<f64> = p.iter().map(|&i| y[i]).collect();
                Ok(method.compare(x, &yp)?.statistic)
            };
            run_perms(n, np, opts, eval)
        }
    }
}

/// The exact test holds every permutation of n items at once.
fn reserve_permutations(total: usize, n: usize) -> Result<()> {
    crate::cancel::reserve(
        "permutation_test",
        &format!("all {total} permutations of {n} items"),
        total as f64 * (n as f64 * 8.0 + 32.0),
    )
}

fn finish(observed: f64, null: Vec<f64>, exact: bool, alt: Alternative) -> PermutationResult {
    PermutationResult {
        statistic: observed,
        pvalue: permutation_pvalue(observed, &null, exact, alt),
        null,
        exact,
    }
}

/// Relabellings of n items: all of them when n! ≤ n_perm, else n_perm random.
fn run_perms(
    n: usize,
    np: usize,
    opts: &PermutationOptions,
    eval: impl Fn(&[usize]) -> Result<f64> + Sync,
) -> Result<PermutationResult> {
    let identity: Vec<usize> = (0..n).collect();
    let observed = eval(&identity)?;
    let (null, exact) = if let Some(total) = factorial_upto(n, np) {
        reserve_permutations(total, n)?;
        let all = all_permutations(n);
        (par_null(total as u64, |k| eval(&all[k as usize]))?, true)
    } else {
        (
            par_null(np as u64, |k| eval(&random_permutation(opts.seed, k, n)))?,
            false,
        )
    };
    Ok(finish(observed, null, exact, opts.alternative))
}

/// A permutation test of any statistic: `stat(perm)` is the statistic with
/// the labels of n items permuted by `perm` (`perm[i]` is the item whose
/// label item i now carries); the observed value is `stat(identity)`.
/// Exact when n! ≤ n_permutations. Runs `stat` sequentially (it may be a
/// script closure).
pub fn permutation_test_with(
    n: usize,
    opts: &PermutationOptions,
    mut stat: impl FnMut(&[usize]) -> Result<f64>,
) -> Result<PermutationResult> {
    const OP: &str = "permutation_test";
    check_n(OP, opts.n_permutations)?;
    if n < 2 {
        return Err(Error::invalid(
            OP,
            format!("need at least 2 items to permute, got {n}"),
        ));
    }
    crate::cancel::reserve(OP, &format!("a permutation of {n} items"), n as f64 * 8.0)?;
    let identity: Vec<usize> = (0..n).collect();
    let observed = stat(&identity)?;
    let np = opts.n_permutations;
    let mut checked = |p: &[usize]| {
        crate::cancel::check(OP)?;
        stat(p)
    };
    let (null, exact) = if let Some(total) = factorial_upto(n, np) {
        reserve_permutations(total, n)?;
        (
            all_permutations(n)
                .iter()
                .map(|p| checked(p))
                .collect::<Result<Vec<f64>>>()?,
            true,
        )
    } else {
        crate::cancel::reserve(
            OP,
            &format!("the null distribution of {np} relabellings"),
            np as f64 * 8.0,
        )?;
        (
            (0..np as u64)
                .map(|k| checked(&random_permutation(opts.seed, k, n)))
                .collect::<Result<Vec<f64>>>()?,
            false,
        )
    };
    Ok(finish(observed, null, exact, opts.alternative))
}
