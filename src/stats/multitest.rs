//! Multiple-testing corrections, equal to
//! `statsmodels.stats.multitest.multipletests`.

use super::common::{bad_choice, nan_error, NanPolicy};
use super::rank::cmp_nan_last;
use crate::error::{Error, Result};

/// False-discovery-rate procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FdrMethod {
    /// `"bh"`: Benjamini–Hochberg (independent or positively correlated tests).
    #[default]
    Bh,
    /// `"by"`: Benjamini–Yekutieli (any dependence).
    By,
}

impl FdrMethod {
    pub const NAMES: &'static [&'static str] = &["bh", "by"];

    /// Parses `"bh"` or `"by"` (option `method` of `op`).
    pub fn parse(op: &'static str, value: &str) -> Result<Self> {
        match value {
            "bh" => Ok(FdrMethod::Bh),
            "by" => Ok(FdrMethod::By),
            other => Err(bad_choice(op, "method", Self::NAMES, other)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FdrMethod::Bh => "bh",
            FdrMethod::By => "by",
        }
    }
}

/// Options of [`bonferroni`] and [`holm`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultitestOptions {
    /// `alpha`: family-wise error rate for `reject`, in (0, 1); default 0.05.
    pub alpha: f64,
    /// `nan_policy`: "propagate" (default: any NaN makes every q NaN and every
    /// reject false) | "omit" (NaN entries get q NaN, reject false, and do not
    /// count as tests) | "raise".
    pub nan_policy: NanPolicy,
}

impl Default for MultitestOptions {
    fn default() -> Self {
        MultitestOptions {
            alpha: 0.05,
            nan_policy: NanPolicy::Propagate,
        }
    }
}

impl MultitestOptions {
    /// Checks `alpha` ∈ (0, 1) (`Error::BadOption` otherwise).
    pub fn validate(&self, op: &'static str) -> Result<()> {
        check_alpha(op, self.alpha)
    }
}

/// Options of [`fdr`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FdrOptions {
    /// `method`: "bh" (default) | "by".
    pub method: FdrMethod,
    /// `alpha`: false discovery rate for `reject`, in (0, 1); default 0.05.
    pub alpha: f64,
    /// `nan_policy`: as in [`MultitestOptions`].
    pub nan_policy: NanPolicy,
}

impl Default for FdrOptions {
    fn default() -> Self {
        FdrOptions {
            method: FdrMethod::Bh,
            alpha: 0.05,
            nan_policy: NanPolicy::Propagate,
        }
    }
}

impl FdrOptions {
    /// Checks `alpha` ∈ (0, 1) (`Error::BadOption` otherwise).
    pub fn validate(&self, op: &'static str) -> Result<()> {
        check_alpha(op, self.alpha)
    }
}

/// Corrected p-values and decisions, in the order of the input.
#[derive(Debug, Clone, PartialEq)]
pub struct MultitestResult {
    /// Adjusted p-values (statsmodels' `pvals_corrected`; q-values for FDR).
    pub q: Vec<f64>,
    /// Whether each null hypothesis is rejected at `alpha`.
    pub reject: Vec<bool>,
}

fn check_alpha(op: &'static str, alpha: f64) -> Result<()> {
    if alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(Error::BadOption {
            op,
            key: "alpha".into(),
            expected: "a number in (0, 1)".into(),
            got: alpha.to_string(),
        })
    }
}

/// Validates p, applies the NaN policy, sorts the usable p-values, runs
/// `f` on the sorted values and scatters the result back.
fn run(
    op: &'static str,
    p: &[f64],
    alpha: f64,
    policy: NanPolicy,
    f: impl Fn(&[f64]) -> (Vec<f64>, Vec<bool>),
) -> Result<MultitestResult> {
    check_alpha(op, alpha)?;
    if let Some((i, v)) = p
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_nan() && !(0.0..=1.0).contains(*v))
    {
        return Err(Error::invalid(
            op,
            format!("p-values must lie in [0, 1], got {v} at index {i}"),
        ));
    }
    let n = p.len();
    let mut q = vec![f64::NAN; n];
    let mut reject = vec![false; n];
    if p.iter().any(|v| v.is_nan()) {
        match policy {
            NanPolicy::Raise => return Err(nan_error(op)),
            NanPolicy::Propagate => return Ok(MultitestResult { q, reject }),
            NanPolicy::Omit => {}
        }
    }
    let mut idx: Vec<usize> = (0..n).filter(|&i| !p[i].is_nan()).collect();
    idx.sort_by(|&a, &b| cmp_nan_last(p[a], p[b]));
    let sorted: Vec<f64> = idx.iter().map(|&i| p[i]).collect();
    let (qs, rs) = f(&sorted);
    for (k, &i) in idx.iter().enumerate() {
        q[i] = qs[k].min(1.0);
        reject[i] = rs[k];
    }
    Ok(MultitestResult { q, reject })
}

/// Benjamini–Hochberg / Benjamini–Yekutieli: q_(i) = min_{j≥i} p_(j)·m·c/j
/// (c = 1 for BH, c = Σ_{k≤m} 1/k for BY), capped at 1; reject p_(i) for
/// i ≤ max{i : p_(i) ≤ i·α/(m·c)}. Matches statsmodels
/// `multipletests(p, alpha, method='fdr_bh' | 'fdr_by')` (pvals_corrected,
/// reject).
pub fn fdr(p: &[f64], opts: &FdrOptions) -> Result<MultitestResult> {
    let by = opts.method == FdrMethod::By;
    let alpha = opts.alpha;
    run("fdr", p, alpha, opts.nan_policy, |ps| {
        let m = ps.len();
        let cm = if by {
            let inv: Vec<f64> = (1..=m).map(|k| 1.0 / k as f64).collect();
            super::common::np_sum(&inv)
        } else {
            1.0
        };
        let ecdf: Vec<f64> = (1..=m)
            .map(|i| {
                let e = i as f64 / m as f64;
                if by {
                    e / cm
                } else {
                    e
                }
            })
            .collect();
        let mut reject: Vec<bool> = ps.iter().zip(&ecdf).map(|(p, e)| *p <= e * alpha).collect();
        if let Some(last) = reject.iter().rposition(|r| *r) {
            reject[..last].iter_mut().for_each(|r| *r = true);
        }
        let mut q: Vec<f64> = ps.iter().zip(&ecdf).map(|(p, e)| p / e).collect();
        for i in (0..m.saturating_sub(1)).rev() {
            if q[i + 1] < q[i] {
                q[i] = q[i + 1];
            }
        }
        (q, reject)
    })
}

/// Bonferroni: q_i = min(1, m·p_i); reject when p_i ≤ α/m. Matches
/// statsmodels `multipletests(p, alpha, method='bonferroni')`.
pub fn bonferroni(p: &[f64], opts: &MultitestOptions) -> Result<MultitestResult> {
    let alpha = opts.alpha;
    run("bonferroni", p, alpha, opts.nan_policy, |ps| {
        let m = ps.len() as f64;
        (
            ps.iter().map(|p| p * m).collect(),
            ps.iter().map(|p| *p <= alpha / m).collect(),
        )
    })
}

/// Holm step-down: q_(i) = min(1, max_{j≤i} (m−j+1)·p_(j)); reject p_(i)
/// while every p_(j), j ≤ i, is ≤ α/(m−j+1). Matches statsmodels
/// `multipletests(p, alpha, method='holm')`.
pub fn holm(p: &[f64], opts: &MultitestOptions) -> Result<MultitestResult> {
    let alpha = opts.alpha;
    run("holm", p, alpha, opts.nan_policy, |ps| {
        let m = ps.len();
        let first_fail = (0..m)
            .position(|i| ps[i] > alpha / (m - i) as f64)
            .unwrap_or(m);
        let reject = (0..m).map(|i| i < first_fail).collect();
        let mut q: Vec<f64> = (0..m).map(|i| ps[i] * (m - i) as f64).collect();
        for i in 1..m {
            if q[i - 1] > q[i] {
                q[i] = q[i - 1];
            }
        }
        (q, reject)
    })
}
