//! Representational dissimilarity matrices and their comparison (RSA).
//!
//! [`rdm`] equals `scipy.spatial.distance.squareform(pdist(x, metric))` for
//! the metrics "correlation", "euclidean", "sqeuclidean" and "cosine", but is
//! computed with one libtorch matrix product on the tensor's device (the GPU
//! when present): ‖xᵢ − xⱼ‖² = ‖xᵢ‖² + ‖xⱼ‖² − 2·xᵢ·xⱼ on column-centred data
//! (centring leaves distances unchanged and removes most cancellation).
//! Small inputs (at most [`PAIRWISE_MAX_WORK`] pair × feature terms, e.g.
//! every model RDM built from a few category or rating columns) are instead
//! computed pair by pair in float64 as scipy does, so that equal patterns give
//! bit-identical distances: with the matrix product, rounding splits a
//! categorical model's two distances into several nearly equal values, and
//! rank statistics (Kendall, Spearman) then count those as order, not ties.
//! [`rsa`] compares the upper triangles (diagonal excluded) of two RDMs;
//! [`kendall_fdr`] compares every RDM of one set with every RDM of another
//! (e.g. 19 ROIs × 22 network layers) and corrects the p-values by FDR.

use tch::{Kind, Tensor as TchTensor};

use super::common::{bad_choice, TestResult};
use super::correlation::{pearson, spearman, CorrelationOptions};
use super::kendall::{kendall_matrix, kendall_tau, KendallOptions, KendallVariant};
use super::multitest::{fdr, FdrOptions};
use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc, Tensor};

/// Dissimilarity between two stimulus patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RdmMetric {
    /// 1 − Pearson r of the two patterns (scipy "correlation"; the default).
    #[default]
    Correlation,
    /// ‖a − b‖.
    Euclidean,
    /// ‖a − b‖².
    SqEuclidean,
    /// 1 − a·b / (‖a‖‖b‖).
    Cosine,
}

impl RdmMetric {
    pub const NAMES: &'static [&'static str] =
        &["correlation", "euclidean", "sqeuclidean", "cosine"];

    pub fn parse(op: &'static str, value: &str) -> Result<Self> {
        Ok(match value {
            "correlation" => RdmMetric::Correlation,
            "euclidean" => RdmMetric::Euclidean,
            "sqeuclidean" => RdmMetric::SqEuclidean,
            "cosine" => RdmMetric::Cosine,
            other => return Err(bad_choice(op, "metric", Self::NAMES, other)),
        })
    }
}

/// stimuli × features → stimuli × stimuli dissimilarities in `kind` (f32 or
/// f64) on the device of `x`. Symmetric with an exact zero diagonal, as
/// scipy's `squareform`. A zero-norm pattern (cosine) or a constant pattern
/// (correlation) gives NaN dissimilarities off the diagonal, as scipy does.
pub fn rdm(x: &Tensor, metric: RdmMetric, kind: Kind) -> Result<Tensor> {
    const OP: &str = "rdm";
    if x.ndim() != 2 || x.shape()[0] < 2 || x.shape()[1] < 1 {
        return Err(Error::shape(
            OP,
            "x",
            "a stimuli × features matrix with at least 2 stimuli",
            shape_text(&x.shape()),
        ));
    }
    let n = x.shape()[0];
    let p = x.shape()[1];
    if (n as f64) * (n as f64 - 1.0) / 2.0 * (p as f64) <= PAIRWISE_MAX_WORK {
        let values = x.to_f64_vec(OP)?;
        let d = pairwise_rdm(&values, n as usize, p as usize, metric);
        let d = Tensor::from_f64(OP, &d, &[n, n], kind)?;
        return Ok(Tensor(tc(OP, d.inner().f_to_device(x.inner().device()))?));
    }
    let x = tc(OP, x.inner().f_to_kind(kind))?;
    let d = match metric {
        RdmMetric::Euclidean | RdmMetric::SqEuclidean => {
            let mean = tc(OP, x.f_mean_dim(0, true, kind))?;
            let xc = tc(OP, x.f_sub(&mean))?;
            let g = tc(OP, xc.f_matmul(&tc(OP, xc.f_transpose(0, 1))?))?;
            let sq = tc(OP, g.f_diagonal(0, 0, 1))?;
            let d = tc(
                OP,
                (|| {
                    sq.f_unsqueeze(1)?
                        .f_add(&sq.f_unsqueeze(0)?)?
                        .f_sub(&g.f_mul_scalar(2.0)?)
                })(),
            )?;
            let d = tc(OP, d.f_clamp_min(0.0))?;
            if metric == RdmMetric::Euclidean {
                tc(OP, d.f_sqrt())?
            } else {
                d
            }
        }
        RdmMetric::Cosine | RdmMetric::Correlation => {
            let xc = if metric == RdmMetric::Correlation {
                let mean = tc(OP, x.f_mean_dim(1, true, kind))?;
                tc(OP, x.f_sub(&mean))?
            } else {
                x
            };
            let norm = tc(
                OP,
                (|| xc.f_square()?.f_sum_dim_intlist(1, true, kind)?.f_sqrt())(),
            )?;
            // 0/0 = NaN for a zero-norm pattern, as scipy.
            let u = tc(OP, xc.f_div(&norm))?;
            let s = tc(OP, u.f_matmul(&tc(OP, u.f_transpose(0, 1))?))?;
            // 1 − s, clipped to [0, 2] as scipy's correlation/cosine do
            // (rounding can push |s| a hair above 1).
            tc(OP, (|| s.f_neg()?.f_add_scalar(1.0)?.f_clamp(0.0, 2.0))())?
        }
    };
    // Exact symmetry and a zero diagonal.
    let d = tc(OP, (|| d.f_add(&d.f_transpose(0, 1)?)?.f_mul_scalar(0.5))())?;
    let eye = tc(OP, TchTensor::f_eye(n, (Kind::Bool, d.device())))?;
    let d = tc(OP, d.f_masked_fill(&eye, 0.0))?;
    Ok(Tensor(d))
}

/// Largest n(n−1)/2 · features for which [`rdm`] computes pair by pair
/// (about 0.05 s on one core); larger inputs use the matrix product.
pub const PAIRWISE_MAX_WORK: f64 = 5e7;

/// scipy's pdist formulas, one pair at a time in float64 (rows of the n × p
/// row-major `x`), as a full symmetric n × n matrix with a zero diagonal.
fn pairwise_rdm(x: &[f64], n: usize, p: usize, metric: RdmMetric) -> Vec<f64> {
    use rayon::prelude::*;
    let row = |i: usize| &x[i * p..(i + 1) * p];
    // correlation = cosine of the row-centred patterns
    let centred: Vec<f64>;
    let rows: &[f64] = if metric == RdmMetric::Correlation {
        centred = (0..n)
            .flat_map(|i| {
                let r = row(i);
                let mean = r.iter().sum::<f64>() / p as f64;
                r.iter().map(move |v| v - mean)
            })
            .collect();
        &centred
    } else {
        x
    };
    let at = |i: usize| &rows[i * p..(i + 1) * p];
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
    let norms: Vec<f64> = (0..n).map(|i| dot(at(i), at(i)).sqrt()).collect();
    let upper: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            (i + 1..n)
                .map(|j| match metric {
                    RdmMetric::Euclidean | RdmMetric::SqEuclidean => {
                        let s: f64 = at(i)
                            .iter()
                            .zip(at(j))
                            .map(|(u, v)| (u - v) * (u - v))
                            .sum();
                        if metric == RdmMetric::Euclidean {
                            s.sqrt()
                        } else {
                            s
                        }
                    }
                    // 0/0 = NaN for a zero-norm pattern, as scipy; clipped
                    // to [0, 2] as scipy's correlation and cosine are.
                    RdmMetric::Cosine | RdmMetric::Correlation => {
                        (1.0 - dot(at(i), at(j)) / (norms[i] * norms[j])).clamp(0.0, 2.0)
                    }
                })
                .collect()
        })
        .collect();
    let mut d = vec![0.0; n * n];
    for (i, r) in upper.iter().enumerate() {
        for (k, &v) in r.iter().enumerate() {
            let j = i + 1 + k;
            d[i * n + j] = v;
            d[j * n + i] = v;
        }
    }
    d
}

/// The strict upper triangle of a square matrix in row-major order (i < j),
/// the order of scipy's condensed distance vectors.
pub fn upper_triangle(op: &'static str, m: &Tensor) -> Result<Vec<f64>> {
    let s = m.shape();
    if s.len() != 2 || s[0] != s[1] || s[0] < 2 {
        return Err(Error::shape(
            op,
            "RDM",
            "a square matrix of at least 2×2",
            shape_text(&s),
        ));
    }
    let n = s[0] as usize;
    let v = m.to_f64_vec(op)?;
    Ok(upper_of(&v, n))
}

/// Upper triangle (i < j, row-major) of an n×n row-major matrix.
pub fn upper_of(v: &[f64], n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        out.extend_from_slice(&v[i * n + i + 1..(i + 1) * n]);
    }
    out
}

/// How two RDMs are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RsaMethod {
    /// Kendall's tau-b, as scipy.stats.kendalltau (the default).
    #[default]
    KendallB,
    /// Kendall's tau-a, as rsatoolbox's "tau-a"; p-value as scipy's for C − D.
    KendallA,
    Spearman,
    Pearson,
}

impl RsaMethod {
    pub const NAMES: &'static [&'static str] = &["kendall_b", "kendall_a", "spearman", "pearson"];

    pub fn parse(op: &'static str, value: &str) -> Result<Self> {
        Ok(match value {
            "kendall_b" => RsaMethod::KendallB,
            "kendall_a" => RsaMethod::KendallA,
            "spearman" => RsaMethod::Spearman,
            "pearson" => RsaMethod::Pearson,
            other => return Err(bad_choice(op, "method", Self::NAMES, other)),
        })
    }

    /// The statistic of two condensed vectors with its p-value.
    pub fn compare(self, a: &[f64], b: &[f64]) -> Result<TestResult> {
        match self {
            RsaMethod::KendallB => kendall_tau(a, b, &KendallOptions::default()),
            RsaMethod::KendallA => {
                kendall_tau(a, b, &KendallOptions::default().variant(KendallVariant::A))
            }
            RsaMethod::Spearman => spearman(a, b, &CorrelationOptions::default()),
            RsaMethod::Pearson => pearson(a, b, &CorrelationOptions::default()),
        }
    }
}

/// Compares the upper triangles of two RDMs of the same size.
pub fn rsa(a: &Tensor, b: &Tensor, method: RsaMethod) -> Result<TestResult> {
    const OP: &str = "rsa";
    if a.shape() != b.shape() {
        return Err(Error::shape(
            OP,
            "rdm_a and rdm_b",
            "two RDMs of the same size",
            format!("{} and {}", shape_text(&a.shape()), shape_text(&b.shape())),
        ));
    }
    let (ua, ub) = (upper_triangle(OP, a)?, upper_triangle(OP, b)?);
    method.compare(&ua, &ub)
}

/// Which p-values one FDR correction covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CorrectOver {
    /// All rows × cols p-values together (the default).
    #[default]
    All,
    /// Each row separately (e.g. per ROI, across layers).
    Row,
}

impl CorrectOver {
    pub const NAMES: &'static [&'static str] = &["all", "row"];

    pub fn parse(op: &'static str, value: &str) -> Result<Self> {
        match value {
            "all" => Ok(CorrectOver::All),
            "row" => Ok(CorrectOver::Row),
            other => Err(bad_choice(op, "correct_over", Self::NAMES, other)),
        }
    }
}

/// Result of [`kendall_fdr`]: rows×cols row-major matrices.
#[derive(Debug, Clone)]
pub struct KendallFdr {
    pub tau: Vec<f64>,
    pub p: Vec<f64>,
    pub q: Vec<f64>,
    pub significant: Vec<bool>,
}

/// Kendall tau between every condensed RDM of `rows` and of `cols` (in
/// parallel), then Benjamini–Hochberg FDR over all pairs or per row. A NaN
/// p-value (constant RDM) stays NaN in q and is never significant.
pub fn kendall_fdr(
    rows: &[&[f64]],
    cols: &[&[f64]],
    kendall: &KendallOptions,
    fdr_opts: &FdrOptions,
    over: CorrectOver,
) -> Result<KendallFdr> {
    const OP: &str = "kendall_fdr";
    if rows.is_empty() || cols.is_empty() {
        return Err(Error::invalid(OP, "both RDM sets must be non-empty"));
    }
    let (tau, p) = kendall_matrix(rows, cols, kendall).map_err(|e| retag(e, OP))?;
    let mut fo = *fdr_opts;
    fo.nan_policy = super::NanPolicy::Omit;
    let (q, significant) = match over {
        CorrectOver::All => {
            let r = fdr(&p, &fo)?;
            (r.q, r.reject)
        }
        CorrectOver::Row => {
            let nc = cols.len();
            let mut q = Vec::with_capacity(p.len());
            let mut s = Vec::with_capacity(p.len());
            for row in p.chunks(nc) {
                let r = fdr(row, &fo)?;
                q.extend(r.q);
                s.extend(r.reject);
            }
            (q, s)
        }
    };
    Ok(KendallFdr {
        tau,
        p,
        q,
        significant,
    })
}

fn retag(e: Error, op: &'static str) -> Error {
    match e {
        Error::ShapeMismatch {
            what,
            expected,
            got,
            ..
        } => Error::ShapeMismatch {
            op,
            what: format!("RDM sizes ({what})"),
            expected,
            got,
        },
        other => other,
    }
}
