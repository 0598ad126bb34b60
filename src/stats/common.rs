//! Types shared by the statistics functions: the alternative hypothesis, the
//! NaN policy, the result of a test, and the input checks every test runs.

use crate::error::{Error, Result};

/// The alternative hypothesis of a test (scipy's `alternative=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Alternative {
    /// `"two-sided"`: the statistic differs from its null value (default).
    #[default]
    TwoSided,
    /// `"less"`: the statistic is smaller than under the null.
    Less,
    /// `"greater"`: the statistic is larger than under the null.
    Greater,
}

impl Alternative {
    /// The names a script may use, in the order they are listed in errors.
    pub const NAMES: &'static [&'static str] = &["two-sided", "less", "greater"];

    /// Parses `"two-sided"`, `"less"` or `"greater"` (the value of option
    /// `alternative` of function `op`); anything else is `Error::BadOption`
    /// listing the valid values.
    pub fn parse(op: &'static str, value: &str) -> Result<Self> {
        match value {
            "two-sided" => Ok(Alternative::TwoSided),
            "less" => Ok(Alternative::Less),
            "greater" => Ok(Alternative::Greater),
            other => Err(bad_choice(op, "alternative", Self::NAMES, other)),
        }
    }

    /// The script-facing name (`"two-sided"`, `"less"`, `"greater"`).
    pub fn name(self) -> &'static str {
        match self {
            Alternative::TwoSided => "two-sided",
            Alternative::Less => "less",
            Alternative::Greater => "greater",
        }
    }
}

/// What to do with NaN in the input (scipy's `nan_policy=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NanPolicy {
    /// `"propagate"`: any NaN makes the result NaN (default, as scipy).
    #[default]
    Propagate,
    /// `"omit"`: drop NaN observations (pairs, for paired tests) first.
    Omit,
    /// `"raise"`: a NaN is an `Error::InvalidArgument`.
    Raise,
}

impl NanPolicy {
    /// The names a script may use.
    pub const NAMES: &'static [&'static str] = &["propagate", "omit", "raise"];

    /// Parses `"propagate"`, `"omit"` or `"raise"` (option `nan_policy` of
    /// `op`); anything else is `Error::BadOption` listing the valid values.
    pub fn parse(op: &'static str, value: &str) -> Result<Self> {
        match value {
            "propagate" => Ok(NanPolicy::Propagate),
            "omit" => Ok(NanPolicy::Omit),
            "raise" => Ok(NanPolicy::Raise),
            other => Err(bad_choice(op, "nan_policy", Self::NAMES, other)),
        }
    }

    /// The script-facing name.
    pub fn name(self) -> &'static str {
        match self {
            NanPolicy::Propagate => "propagate",
            NanPolicy::Omit => "omit",
            NanPolicy::Raise => "raise",
        }
    }
}

/// The outcome of a hypothesis test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestResult {
    /// The test statistic (tau, r, rho or t).
    pub statistic: f64,
    /// The p-value for the chosen alternative.
    pub pvalue: f64,
    /// Degrees of freedom, for tests that have them (t-tests); `None` else.
    pub df: Option<f64>,
}

impl TestResult {
    pub(crate) fn nan(df: Option<f64>) -> Self {
        TestResult {
            statistic: f64::NAN,
            pvalue: f64::NAN,
            df,
        }
    }
}

/// `Error::BadOption` for a string option whose value is not one of `valid`.
pub(crate) fn bad_choice(op: &'static str, key: &str, valid: &[&str], got: &str) -> Error {
    let list = valid
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Error::BadOption {
        op,
        key: key.to_string(),
        expected: format!("one of {list}"),
        got: format!("'{got}'"),
    }
}

pub(crate) fn nan_error(op: &'static str) -> Error {
    Error::invalid(op, "input contains NaN (nan_policy is 'raise')")
}

/// Checks that two paired samples have the same length.
pub(crate) fn check_same_len(op: &'static str, x: &[f64], y: &[f64]) -> Result<()> {
    if x.len() != y.len() {
        return Err(Error::shape(
            op,
            "length of y",
            format!("{} (the length of x)", x.len()),
            y.len().to_string(),
        ));
    }
    Ok(())
}

/// Applies the NaN policy to paired samples. `Ok(None)`: propagate with a NaN
/// present (the caller returns NaN). Otherwise the pairs with no NaN.
pub(crate) fn paired_nan(
    op: &'static str,
    x: &[f64],
    y: &[f64],
    policy: NanPolicy,
) -> Result<Option<(Vec<f64>, Vec<f64>)>> {
    let has_nan = x.iter().chain(y.iter()).any(|v| v.is_nan());
    if !has_nan {
        return Ok(Some((x.to_vec(), y.to_vec())));
    }
    match policy {
        NanPolicy::Propagate => Ok(None),
        NanPolicy::Raise => Err(nan_error(op)),
        NanPolicy::Omit => {
            let (a, b): (Vec<f64>, Vec<f64>) = x
                .iter()
                .zip(y)
                .filter(|(a, b)| !a.is_nan() && !b.is_nan())
                .map(|(a, b)| (*a, *b))
                .unzip();
            Ok(Some((a, b)))
        }
    }
}

/// Applies the NaN policy to one sample (see [`paired_nan`]).
pub(crate) fn single_nan(
    op: &'static str,
    x: &[f64],
    policy: NanPolicy,
) -> Result<Option<Vec<f64>>> {
    if !x.iter().any(|v| v.is_nan()) {
        return Ok(Some(x.to_vec()));
    }
    match policy {
        NanPolicy::Propagate => Ok(None),
        NanPolicy::Raise => Err(nan_error(op)),
        NanPolicy::Omit => Ok(Some(x.iter().copied().filter(|v| !v.is_nan()).collect())),
    }
}

/// Sum with numpy's pairwise summation (blocks of 8 accumulators, split at
/// 128), so means agree with `np.mean` to the last bit in most cases.
pub(crate) fn np_sum(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 8 {
        let mut s = 0.0;
        for v in x {
            s += v;
        }
        s
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&x[..8]);
        let mut i = 8;
        while i + 8 <= n {
            for k in 0..8 {
                r[k] += x[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += x[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&x[..n2]) + np_sum(&x[n2..])
    }
}

/// `np.mean`: pairwise sum divided by n.
pub(crate) fn np_mean(x: &[f64]) -> f64 {
    np_sum(x) / x.len() as f64
}
