//! Student's and Welch's t-tests, equal to `scipy.stats.ttest_1samp`,
//! `ttest_rel` and `ttest_ind`.

use super::common::{
    check_same_len, np_mean, paired_nan, single_nan, Alternative, NanPolicy, TestResult,
};
use super::dist::t_pvalue;
use crate::error::Result;

/// Options of [`ttest_1samp`] and [`ttest_rel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TTestOptions {
    /// `alternative`: "two-sided" (default) | "less" | "greater".
    pub alternative: Alternative,
    /// `nan_policy`: "propagate" (default) | "omit" | "raise".
    pub nan_policy: NanPolicy,
}

impl TTestOptions {
    pub fn alternative(mut self, a: Alternative) -> Self {
        self.alternative = a;
        self
    }
    pub fn nan_policy(mut self, p: NanPolicy) -> Self {
        self.nan_policy = p;
        self
    }
}

/// Options of [`ttest_ind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TTestIndOptions {
    /// `equal_var`: true (default) = Student's pooled-variance test,
    /// false = Welch's test.
    pub equal_var: bool,
    /// `alternative`: "two-sided" (default) | "less" | "greater".
    pub alternative: Alternative,
    /// `nan_policy`: "propagate" (default) | "omit" (each sample on its own) | "raise".
    pub nan_policy: NanPolicy,
}

impl Default for TTestIndOptions {
    fn default() -> Self {
        TTestIndOptions {
            equal_var: true,
            alternative: Alternative::TwoSided,
            nan_policy: NanPolicy::Propagate,
        }
    }
}

impl TTestIndOptions {
    pub fn equal_var(mut self, e: bool) -> Self {
        self.equal_var = e;
        self
    }
    pub fn alternative(mut self, a: Alternative) -> Self {
        self.alternative = a;
        self
    }
    pub fn nan_policy(mut self, p: NanPolicy) -> Self {
        self.nan_policy = p;
        self
    }
}

/// (mean, variance with ddof = 1) as scipy computes them: mean of squared
/// deviations times n/(n−1); NaN for n = 1.
fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = np_mean(x);
    let sq: Vec<f64> = x.iter().map(|v| (v - m) * (v - m)).collect();
    (m, np_mean(&sq) * (n / (n - 1.0)))
}

fn nan_t() -> TestResult {
    TestResult::nan(Some(f64::NAN))
}

fn one_sample(x: &[f64], popmean: f64, alt: Alternative) -> TestResult {
    let n = x.len();
    if n == 0 {
        return nan_t();
    }
    let (m, v) = mean_var(x);
    let df = n as f64 - 1.0;
    let t = (m - popmean) / (v / n as f64).sqrt();
    TestResult {
        statistic: t,
        pvalue: t_pvalue(t, df, alt),
        df: Some(df),
    }
}

/// One-sample t-test: t = (x̄ − μ0)/(s/√n), df = n − 1. Matches
/// `scipy.stats.ttest_1samp(x, popmean, nan_policy=, alternative=)`
/// (n = 1 gives NaN t and p; a NaN under "propagate" makes t, p and df NaN).
pub fn ttest_1samp(x: &[f64], popmean: f64, opts: &TTestOptions) -> Result<TestResult> {
    const OP: &str = "ttest_1samp";
    match single_nan(OP, x, opts.nan_policy)? {
        None => Ok(nan_t()),
        Some(x) => Ok(one_sample(&x, popmean, opts.alternative)),
    }
}

/// Paired t-test: the one-sample test of d = a − b against 0, df = n − 1.
/// Matches `scipy.stats.ttest_rel(a, b, nan_policy=, alternative=)`
/// ("omit" drops pairs with a NaN).
pub fn ttest_rel(a: &[f64], b: &[f64], opts: &TTestOptions) -> Result<TestResult> {
    const OP: &str = "ttest_rel";
    check_same_len(OP, a, b)?;
    match paired_nan(OP, a, b, opts.nan_policy)? {
        None => Ok(nan_t()),
        Some((a, b)) => {
            let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
            Ok(one_sample(&d, 0.0, opts.alternative))
        }
    }
}

/// Two-sample t-test: t = (ā − b̄)/se. Student (`equal_var`): pooled
/// s² = ((n1−1)s1² + (n2−1)s2²)/(n1+n2−2), se = s√(1/n1+1/n2), df = n1+n2−2.
/// Welch: se = √(s1²/n1 + s2²/n2), Welch–Satterthwaite df. Matches
/// `scipy.stats.ttest_ind(a, b, equal_var=, nan_policy=, alternative=)`.
pub fn ttest_ind(a: &[f64], b: &[f64], opts: &TTestIndOptions) -> Result<TestResult> {
    const OP: &str = "ttest_ind";
    let a = single_nan(OP, a, opts.nan_policy)?;
    let b = single_nan(OP, b, opts.nan_policy)?;
    let (Some(a), Some(b)) = (a, b) else {
        return Ok(nan_t());
    };
    if a.is_empty() || b.is_empty() {
        return Ok(nan_t());
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (m1, mut v1) = mean_var(&a);
    let (m2, mut v2) = mean_var(&b);
    let (df, denom) = if opts.equal_var {
        if a.len() == 1 {
            v1 = 0.0;
        }
        if b.len() == 1 {
            v2 = 0.0;
        }
        let df = n1 + n2 - 2.0;
        let svar = ((n1 - 1.0) * v1 + (n2 - 1.0) * v2) / df;
        (df, (svar * (1.0 / n1 + 1.0 / n2)).sqrt())
    } else {
        let vn1 = v1 / n1;
        let vn2 = v2 / n2;
        let mut df = (vn1 + vn2).powi(2) / (vn1.powi(2) / (n1 - 1.0) + vn2.powi(2) / (n2 - 1.0));
        if df.is_nan() {
            df = 1.0;
        }
        (df, (vn1 + vn2).sqrt())
    };
    let t = (m1 - m2) / denom;
    Ok(TestResult {
        statistic: t,
        pvalue: t_pvalue(t, df, opts.alternative),
        df: Some(df),
    })
}
