//! Pearson and Spearman correlation with p-values, equal to
//! `scipy.stats.pearsonr` and `scipy.stats.spearmanr`.

use super::common::{
    check_same_len, nan_error, np_mean, paired_nan, Alternative, NanPolicy, TestResult,
};
use super::dist::{pearson_pvalue, t_pvalue};
use super::rank::rankdata_average;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Options of [`pearson`] and [`spearman`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CorrelationOptions {
    /// `alternative`: "two-sided" (default) | "less" | "greater".
    pub alternative: Alternative,
    /// `nan_policy`: "propagate" (default) | "omit" | "raise".
    pub nan_policy: NanPolicy,
}

impl CorrelationOptions {
    pub fn alternative(mut self, a: Alternative) -> Self {
        self.alternative = a;
        self
    }
    pub fn nan_policy(mut self, p: NanPolicy) -> Self {
        self.nan_policy = p;
        self
    }
}

/// Options of [`pearson_columns`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PearsonColumnsOptions {
    /// `alternative`: "two-sided" (default) | "less" | "greater".
    pub alternative: Alternative,
    /// `nan_policy`: "propagate" (default) | "omit" | "raise"; applied per column.
    pub nan_policy: NanPolicy,
    /// `pvalues`: also compute p-values (default false).
    pub pvalues: bool,
}

impl PearsonColumnsOptions {}

/// Column-wise correlations: `r[j]` for column j, `pvalue` when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnCorrelations {
    pub r: Vec<f64>,
    pub pvalue: Option<Vec<f64>>,
}

/// Pearson's r on NaN-free data with n ≥ 2 (scipy's arithmetic).
fn pearson_clean(x: &[f64], y: &[f64], alt: Alternative) -> TestResult {
    let n = x.len();
    if n < 2 {
        return TestResult::nan(None);
    }
    let const_x = x.iter().all(|v| *v == x[0]);
    let const_y = y.iter().all(|v| *v == y[0]);
    if const_x || const_y {
        return TestResult::nan(None);
    }
    let scaled = |v: &[f64]| -> Vec<f64> {
        let mean = np_mean(v);
        let xm: Vec<f64> = v.iter().map(|a| a - mean).collect();
        let xmax = xm.iter().fold(0.0f64, |m, a| {
            if a.abs() > m || a.is_nan() {
                a.abs()
            } else {
                m
            }
        });
        let norm = xmax
            * xm.iter()
                .map(|a| (a / xmax) * (a / xmax))
                .sum::<f64>()
                .sqrt();
        xm.iter().map(|a| a / norm).collect()
    };
    let xs = scaled(x);
    let ys = scaled(y);
    let mut r: f64 = xs.iter().zip(&ys).map(|(a, b)| a * b).sum();
    r = r.clamp(-1.0, 1.0);
    if n == 2 {
        let r = r.round();
        return TestResult {
            statistic: r,
            pvalue: if r.is_nan() { f64::NAN } else { 1.0 },
            df: None,
        };
    }
    TestResult {
        statistic: r,
        pvalue: pearson_pvalue(r, n as f64, alt),
        df: None,
    }
}

/// Pearson's r = Σ(x−x̄)(y−ȳ) / (‖x−x̄‖‖y−ȳ‖), p from its exact null
/// distribution Beta(n/2−1, n/2−1) on (−1, 1). Matches
/// `scipy.stats.pearsonr(x, y, alternative=)` (n = 2 gives r = ±1, p = 1;
/// a constant input gives NaN); `nan_policy` "omit" drops pairs with a NaN
/// first (scipy's pearsonr itself always propagates). Inputs shorter than 2
/// are `Error::InvalidArgument`, as in scipy.
pub fn pearson(x: &[f64], y: &[f64], opts: &CorrelationOptions) -> Result<TestResult> {
    const OP: &str = "pearson";
    check_same_len(OP, x, y)?;
    if x.len() < 2 {
        return Err(Error::invalid(
            OP,
            format!("needs at least 2 observations, got {}", x.len()),
        ));
    }
    let Some((x, y)) = paired_nan(OP, x, y, opts.nan_policy)? else {
        return Ok(TestResult::nan(None));
    };
    Ok(pearson_clean(&x, &y, opts.alternative))
}

/// Spearman's rho = Pearson's r of the average ranks; p from
/// t = rho·√((n−2)/((1+rho)(1−rho))) with n−2 degrees of freedom. Matches
/// `scipy.stats.spearmanr(x, y, nan_policy=, alternative=)`, including its
/// quirks: n ≤ 1 or a constant input → NaN; with "omit", pairs holding a NaN
/// or ±inf are dropped (scipy masks invalid values there).
pub fn spearman(x: &[f64], y: &[f64], opts: &CorrelationOptions) -> Result<TestResult> {
    const OP: &str = "spearman";
    check_same_len(OP, x, y)?;
    let n = x.len();
    if n <= 1 {
        return Ok(TestResult::nan(None));
    }
    if x.iter().all(|v| *v == x[0]) || y.iter().all(|v| *v == y[0]) {
        return Ok(TestResult::nan(None));
    }
    let has_nan = x.iter().chain(y).any(|v| v.is_nan());
    let (x, y): (Vec<f64>, Vec<f64>) = if has_nan {
        match opts.nan_policy {
            NanPolicy::Propagate => return Ok(TestResult::nan(None)),
            NanPolicy::Raise => return Err(nan_error(OP)),
            NanPolicy::Omit => {
                let (a, b): (Vec<f64>, Vec<f64>) = x
                    .iter()
                    .zip(y)
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
                    .map(|(a, b)| (*a, *b))
                    .unzip();
                if a.len() < 2 || a.iter().chain(&b).all(|v| *v == 0.0) {
                    return Ok(TestResult::nan(None));
                }
                (a, b)
            }
        }
    } else {
        (x.to_vec(), y.to_vec())
    };
    let n = x.len();
    let rx = rankdata_average(&x);
    let ry = rankdata_average(&y);
    // np.corrcoef: covariance / (n−1), divided by each standard deviation.
    let mx = np_mean(&rx);
    let my = np_mean(&ry);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        let (da, db) = (a - mx, b - my);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    let f = (n - 1) as f64;
    let rs = ((sxy / f) / (sxx / f).sqrt() / (syy / f).sqrt()).clamp(-1.0, 1.0);
    let dof = n as f64 - 2.0;
    let q = dof / ((rs + 1.0) * (1.0 - rs));
    let t = rs * (if q < 0.0 { 0.0 } else { q }).sqrt();
    Ok(TestResult {
        statistic: rs,
        pvalue: t_pvalue(t, dof, opts.alternative),
        df: None,
    })
}

/// Pearson's r of each column of two row-major `n_rows × n_cols` matrices
/// (predicted vs measured responses, one column per voxel/unit): r_j as in
/// [`pearson`]; p-values when `opts.pvalues`. Matches
/// `scipy.stats.pearsonr(a, b, axis=0)`. Columns run in parallel.
pub fn pearson_columns(
    a: &[f64],
    b: &[f64],
    n_rows: usize,
    n_cols: usize,
    opts: &PearsonColumnsOptions,
) -> Result<ColumnCorrelations> {
    const OP: &str = "pearson_columns";
    let want = n_rows
        .checked_mul(n_cols)
        .ok_or_else(|| Error::invalid(OP, format!("matrix size {n_rows} × {n_cols} overflows")))?;
    for (what, m) in [("length of predicted", a), ("length of measured", b)] {
        if m.len() != want {
            return Err(Error::shape(
                OP,
                what,
                format!("{want} ({n_rows} rows × {n_cols} columns)"),
                m.len().to_string(),
            ));
        }
    }
    if n_rows < 2 {
        return Err(Error::invalid(
            OP,
            format!("needs at least 2 rows, got {n_rows}"),
        ));
    }
    let res: Result<Vec<TestResult>> = (0..n_cols)
        .into_par_iter()
        .map(|j| {
            let x: Vec<f64> = (0..n_rows).map(|i| a[i * n_cols + j]).collect();
            let y: Vec<f64> = (0..n_rows).map(|i| b[i * n_cols + j]).collect();
            match paired_nan(OP, &x, &y, opts.nan_policy)? {
                None => Ok(TestResult::nan(None)),
                Some((x, y)) => Ok(pearson_clean(&x, &y, opts.alternative)),
            }
        })
        .collect();
    let res = res?;
    Ok(ColumnCorrelations {
        r: res.iter().map(|t| t.statistic).collect(),
        pvalue: opts.pvalues.then(|| res.iter().map(|t| t.pvalue).collect()),
    })
}
