//! L2-regularised linear regression (ridge) with alpha chosen by K-fold
//! cross-validation, for decoders (voxels → features) and encoding models
//! (features → voxels).
//!
//! One eigendecomposition per training set serves every alpha: of the Gram
//! matrix XᵀX (features × features) when samples ≥ features (primal), of the
//! kernel XXᵀ (samples × samples) when samples < features (dual). With
//! eigenvalues λ and eigenvectors V (primal) or U (dual), the prediction on
//! held-out rows for every alpha is
//!
//! ```text
//! primal: Ŷ(α) = (X_te V) diag(1/(λ+α)) Vᵀ X_trᵀ Y_tr
//! dual:   Ŷ(α) = (K_te,tr U) diag(1/(λ+α)) Uᵀ Y_tr
//! ```
//!
//! Everything left of Y_tr depends on the features only, so it is formed
//! once per fold, for all alphas stacked, and the work per target is one
//! product with that operator (see `FoldOperator`): the cost grows with
//! samples × rank × alphas per target, independent of how many targets share
//! the features (encoding models: tens of thousands of voxels on a few
//! hundred samples). In the dual form the (uncentered) kernel of all samples
//! is computed once and every fold's centered kernel is sliced from it; the
//! refit maps targets through precomputed (X V)ᵀ and V, or Uᵀ and Xᵀ U.
//! Targets are processed in
//! chunks of `chunk` columns, so the working memory beyond the data stays
//! bounded (100k voxels fit).
//!
//! Cross-validation follows himalaya's `RidgeCV` (and scikit-learn's `KFold`
//! without shuffling): contiguous folds, the first n mod k of them one sample
//! longer; per fold the training mean is removed from X and Y (when fitting an
//! intercept); each fold is scored per target (R² as himalaya's `r2_score`, or
//! himalaya's default `l2_neg_loss`), scores are averaged over folds, ties go
//! to the larger alpha (himalaya's 1e-10·log α slope), and the model is refit
//! on all samples with the chosen alpha of each target.

use std::collections::HashMap;
use std::path::Path;

use tch::{Device, Kind, Tensor as T};

use crate::error::{Error, Result};
use crate::tensor::{kind_name, shape_text, tc, Tensor};

const OP: &str = "fit_ridge";

/// How a fold's predictions are scored to choose alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoring {
    /// 1 − SSE/SST on the held-out fold (SST about the fold's own mean; a
    /// constant target scores 0), as himalaya.scoring.r2_score.
    R2,
    /// −SSE/n on the held-out fold, himalaya's default `l2_neg_loss`.
    L2,
}

impl Scoring {
    pub fn parse(op: &'static str, s: &str) -> Result<Self> {
        match s {
            "r2" => Ok(Scoring::R2),
            "l2" | "neg_mse" => Ok(Scoring::L2),
            other => Err(Error::invalid(
                op,
                format!("unknown scoring \"{other}\"; expected \"r2\" or \"l2\""),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scoring::R2 => "r2",
            Scoring::L2 => "l2",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RidgeOptions {
    pub alphas: Vec<f64>,
    pub cv: i64,
    pub alpha_per_target: bool,
    pub fit_intercept: bool,
    pub standardize: bool,
    pub kind: Kind,
    pub device: Device,
    /// Targets per chunk.
    pub chunk: i64,
    pub scoring: Scoring,
    /// Show a progress bar on stderr (only when it is a terminal and the fit
    /// has run for more than a second).
    pub progress: bool,
}

impl Default for RidgeOptions {
    fn default() -> Self {
        RidgeOptions {
            alphas: vec![1.0],
            cv: 5,
            alpha_per_target: true,
            fit_intercept: true,
            standardize: false,
            kind: Kind::Float,
            device: Device::Cpu,
            chunk: 10_000,
            scoring: Scoring::R2,
            progress: true,
        }
    }
}

/// A fitted ridge model: `predict(x) = x · coef + intercept`.
pub struct RidgeModel {
    /// features × targets, in the units of the original x (standardization
    /// folded in).
    pub coef: T,
    /// targets.
    pub intercept: T,
    /// The alpha chosen for each target (targets).
    pub alphas: T,
    /// Mean cross-validation score of each candidate alpha for each target
    /// (candidates × targets); None when only one alpha was given.
    pub cv_scores: Option<T>,
    pub candidates: Vec<f64>,
    pub n_samples: i64,
    pub cv: i64,
    pub alpha_per_target: bool,
    pub fit_intercept: bool,
    pub standardize: bool,
    pub scoring: Scoring,
}

impl Clone for RidgeModel {
    fn clone(&self) -> Self {
        RidgeModel {
            coef: self.coef.shallow_clone(),
            intercept: self.intercept.shallow_clone(),
            alphas: self.alphas.shallow_clone(),
            cv_scores: self.cv_scores.as_ref().map(|t| t.shallow_clone()),
            candidates: self.candidates.clone(),
            n_samples: self.n_samples,
            cv: self.cv,
            alpha_per_target: self.alpha_per_target,
            fit_intercept: self.fit_intercept,
            standardize: self.standardize,
            scoring: self.scoring,
        }
    }
}

impl std::fmt::Display for RidgeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.coef.size();
        let alphas = if self.candidates.len() == 1 {
            format!("alpha={}", self.candidates[0])
        } else {
            format!(
                "{} alphas, {}-fold cv, {}",
                self.candidates.len(),
                self.cv,
                if self.alpha_per_target {
                    "per target"
                } else {
                    "shared"
                }
            )
        };
        write!(
            f,
            "RidgeModel[{} features → {} targets; {}; {}; {}]",
            s[0],
            s[1],
            alphas,
            kind_name(self.coef.kind()),
            crate::device::name(self.coef.device())
        )
    }
}

/// Score of predictions against measured targets.
pub struct RidgeScore {
    /// R² per target (sklearn r2_score, raw values).
    pub r2: T,
    /// Pearson r per target.
    pub r: T,
    pub mean_r2: f64,
    pub mean_r: f64,
}

fn mean0(x: &T) -> Result<T> {
    tc(OP, x.f_mean_dim(Some([0i64].as_slice()), true, x.kind()))
}

fn mm(a: &T, b: &T) -> Result<T> {
    tc(OP, a.f_matmul(b))
}

fn tr(a: &T) -> Result<T> {
    tc(OP, a.f_transpose(0, 1))
}

fn check_finite(op: &'static str, what: &str, t: &T) -> Result<()> {
    let ok = tc(op, t.f_isfinite())?;
    let ok = tc(op, ok.f_all())?;
    if tc(op, ok.f_int64_value(&[]))? == 0 {
        let bad = tc(op, tc(op, t.f_isfinite())?.f_logical_not())?;
        let n = tc(op, tc(op, bad.f_sum(Kind::Int64))?.f_int64_value(&[]))?;
        return Err(Error::invalid(
            op,
            format!("{what} contains {n} NaN or infinite value(s); remove or impute them first"),
        ));
    }
    Ok(())
}

/// Contiguous K folds as scikit-learn's KFold(shuffle=False): (start, len)
/// of each held-out block.
pub fn kfold(n: i64, k: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::with_capacity(k as usize);
    let mut start = 0;
    for i in 0..k {
        let len = n / k + i64::from(i < n % k);
        out.push((start, len));
        start += len;
    }
    out
}

/// Column statistics used to centre/scale x: (mean or None, 1/sd or None).
struct Prep {
    x_mean: Option<T>,
    x_inv_sd: Option<T>,
}

impl Prep {
    fn new(x: &T, fit_intercept: bool, standardize: bool) -> Result<Prep> {
        let x_mean = if fit_intercept { Some(mean0(x)?) } else { None };
        let x_inv_sd = if standardize {
            let sd = tc(OP, x.f_std_dim(Some([0i64].as_slice()), false, true))?;
            // A constant column keeps scale 1 (as StandardScaler).
            let zero = tc(OP, sd.f_eq(0.0))?;
            let sd = tc(OP, sd.f_masked_fill(&zero, 1.0))?;
            Some(tc(OP, sd.f_reciprocal())?)
        } else {
            None
        };
        Ok(Prep { x_mean, x_inv_sd })
    }

    fn apply(&self, x: &T) -> Result<T> {
        let mut out = x.shallow_clone();
        if let Some(m) = &self.x_mean {
            out = tc(OP, out.f_sub(m))?;
        }
        if let Some(s) = &self.x_inv_sd {
            out = tc(OP, out.f_mul(s))?;
        }
        Ok(out)
    }
}

/// One eigendecomposition of a (processed) training set.
struct Decomp {
    /// Eigenvalues, clamped at 0 (float error can make tiny ones negative).
    lambda: T,
    basis: Basis,
}

enum Basis {
    /// XᵀX = V diag(λ) Vᵀ; `x` is the processed training x.
    Primal { v: T, x: T },
    /// XXᵀ = U diag(λ) Uᵀ; `x` is the processed training x (None when only
    /// predictions are needed).
    Dual { u: T, x: Option<T> },
}

impl Decomp {
    fn from_gram(g: &T, primal: bool, x: Option<T>) -> Result<Decomp> {
        let (lambda, vecs) = tc(OP, g.f_linalg_eigh("L"))?;
        let lambda = tc(OP, lambda.f_clamp_min(0.0))?;
        let basis = if primal {
            Basis::Primal {
                v: vecs,
                x: x.ok_or_else(|| Error::invalid(OP, "internal: the primal basis needs x"))?,
            }
        } else {
            Basis::Dual { u: vecs, x }
        };
        Ok(Decomp { lambda, basis })
    }

    /// The rank × samples matrix B that takes targets into the eigenbasis,
    /// W = B Y: (X V)ᵀ (primal) or Uᵀ (dual). Formed once, so that each
    /// target costs one rank × samples product, whatever the features.
    fn to_basis(&self) -> Result<T> {
        match &self.basis {
            Basis::Primal { v, x } => tr(&mm(x, v)?),
            Basis::Dual { u, .. } => tr(u),
        }
    }

    /// The features × rank matrix C with coefficients = C · (W scaled per
    /// target): V (primal) or Xᵀ U (dual).
    fn from_basis(&self) -> Result<T> {
        match &self.basis {
            Basis::Primal { v, .. } => Ok(v.shallow_clone()),
            Basis::Dual { u, x } => mm(
                &tr(x.as_ref().ok_or_else(|| {
                    Error::invalid(OP, "internal: coefficients of a dual basis need x")
                })?)?,
                u,
            ),
        }
    }
}

/// The rows of `t` outside [start, start+len).
fn outside(t: &T, n: i64, start: i64, len: i64) -> Result<T> {
    let head = tc(OP, t.f_narrow(0, 0, start))?;
    let tail = tc(OP, t.f_narrow(0, start + len, n - start - len))?;
    tc(OP, T::f_cat(&[head, tail], 0))
}

/// The columns of a square kernel outside [start, start+len).
fn outside_cols(t: &T, n: i64, start: i64, len: i64) -> Result<T> {
    let head = tc(OP, t.f_narrow(1, 0, start))?;
    let tail = tc(OP, t.f_narrow(1, start + len, n - start - len))?;
    tc(OP, T::f_cat(&[head, tail], 1))
}

/// How one fold turns training targets into held-out predictions for every
/// alpha at once, as one matrix product per chunk of targets. With Z the
/// held-out rows in the eigenbasis (held-out × rank), D(α) = diag(1/(λ+α))
/// and B the fold's [`Decomp::to_basis`], the predictions are
/// [Z D(α₁); Z D(α₂); …] · (B Y_tr). Either the alphas' operators are
/// applied to W = B Y_tr (`Projected`), or B is folded in first, giving the
/// fold's smoother [Z D(α) B] (alphas·held-out × training samples) applied to
/// Y_tr directly (`Smoother`); the cheaper per target is chosen (the same
/// numbers, associated differently).
enum FoldOperator {
    Projected { zd: T, b: T },
    Smoother(T),
}

impl FoldOperator {
    fn new(z: &T, lambda: &T, b: &T, alphas: &[f64]) -> Result<FoldOperator> {
        let mut rows = Vec::with_capacity(alphas.len());
        for &a in alphas {
            let d = tc(OP, tc(OP, lambda.f_add_scalar(a))?.f_reciprocal())?;
            rows.push(tc(OP, z.f_mul(&d))?);
        }
        let zd = tc(OP, T::f_cat(&rows, 0))?;
        // Multiply-adds per target: rank·(training + alphas·held-out) when
        // projecting first, alphas·held-out·training with the smoother.
        let (stacked, rank) = (zd.size()[0], zd.size()[1]);
        let n_tr = b.size()[1];
        Ok(if stacked * n_tr < rank * (n_tr + stacked) {
            FoldOperator::Smoother(mm(&zd, b)?)
        } else {
            FoldOperator::Projected {
                zd,
                b: b.shallow_clone(),
            }
        })
    }

    /// Held-out predictions of every alpha, (alphas·held-out) × targets.
    fn predict(&self, y_tr: &T) -> Result<T> {
        match self {
            FoldOperator::Projected { zd, b } => mm(zd, &mm(b, y_tr)?),
            FoldOperator::Smoother(s) => mm(s, y_tr),
        }
    }
}

/// Per-target fold scores (candidates × targets, f64) of the predictions of
/// every alpha, `pred` as [`FoldOperator::predict`] gives them.
fn fold_scores(pred: &T, y_te: &T, n_alphas: i64, scoring: Scoring) -> Result<T> {
    let (n_te, c) = (y_te.size()[0], y_te.size()[1]);
    let pred = tc(OP, pred.f_reshape([n_alphas, n_te, c]))?;
    let err = tc(OP, tc(OP, y_te.f_unsqueeze(0))?.f_sub(&pred))?;
    let sse = tc(
        OP,
        tc(OP, err.f_square())?.f_sum_dim_intlist(Some([1i64].as_slice()), false, Kind::Double),
    )?;
    match scoring {
        Scoring::R2 => {
            let centred = tc(OP, y_te.f_sub(&mean0(y_te)?))?;
            let sst = tc(
                OP,
                tc(OP, centred.f_square())?.f_sum_dim_intlist(
                    Some([0i64].as_slice()),
                    true,
                    Kind::Double,
                ),
            )?;
            let r2 = tc(OP, tc(OP, sse.f_div(&sst))?.f_rsub_scalar(1.0))?;
            let zero = tc(OP, tc(OP, sst.f_eq(0.0))?.f_expand_as(&r2))?;
            tc(OP, r2.f_masked_fill(&zero, 0.0))
        }
        Scoring::L2 => tc(OP, sse.f_div_scalar(-(n_te as f64))),
    }
}

/// Fits ridge regression of `y` (samples × targets, or samples) on `x`
/// (samples × features).
pub fn fit_ridge(x: &Tensor, y: &Tensor, o: &RidgeOptions) -> Result<RidgeModel> {
    // ---- checks before any work
    if x.ndim() != 2 {
        return Err(Error::shape(
            OP,
            "x",
            "a samples × features matrix",
            shape_text(&x.shape()),
        ));
    }
    if y.ndim() != 1 && y.ndim() != 2 {
        return Err(Error::shape(
            OP,
            "y",
            "a samples × targets matrix or a vector",
            shape_text(&y.shape()),
        ));
    }
    let (n, p) = (x.shape()[0], x.shape()[1]);
    if y.shape()[0] != n {
        return Err(Error::invalid(
            OP,
            format!("x has {n} rows but y has {}", y.shape()[0]),
        ));
    }
    if n < 2 || p < 1 {
        return Err(Error::invalid(
            OP,
            format!("need at least 2 samples and 1 feature, got x of {n}×{p}"),
        ));
    }
    if o.alphas.is_empty() {
        return Err(Error::invalid(OP, "alphas is empty; give at least one"));
    }
    if let Some(a) = o.alphas.iter().find(|a| !(a.is_finite() && **a > 0.0)) {
        return Err(Error::invalid(
            OP,
            format!("alphas must be finite and > 0, got {a}"),
        ));
    }
    let search = o.alphas.len() > 1;
    if search && o.cv < 2 {
        return Err(Error::invalid(
            OP,
            format!("cv must be ≥ 2 folds to choose among alphas, got {}", o.cv),
        ));
    }
    if search && o.cv > n {
        return Err(Error::invalid(
            OP,
            format!("cv = {} folds but there are only {n} samples", o.cv),
        ));
    }
    if o.chunk < 1 {
        return Err(Error::invalid(
            OP,
            format!("chunk must be ≥ 1 target, got {}", o.chunk),
        ));
    }
    if !matches!(o.kind, Kind::Float | Kind::Double) {
        return Err(Error::invalid(
            OP,
            format!("dtype must be f32 or f64, got {}", kind_name(o.kind)),
        ));
    }
    let x = tc(OP, x.0.f_to_device(o.device))?;
    let x = tc(OP, x.f_to_kind(o.kind))?;
    let y = tc(OP, y.0.f_to_device(o.device))?;
    let y = tc(OP, y.f_to_kind(o.kind))?;
    let y = if y.dim() == 1 {
        tc(OP, y.f_reshape([n, 1]))?
    } else {
        y
    };
    check_finite(OP, "x", &x)?;
    check_finite(OP, "y", &y)?;
    let t = y.size()[1];
    let chunks: Vec<(i64, i64)> = (0..t)
        .step_by(o.chunk as usize)
        .map(|s| (s, o.chunk.min(t - s)))
        .collect();

    let steps = if search { o.cv as usize + 1 } else { 1 } * chunks.len();
    let mut bar = Progress::new(o.progress, steps);

    // ---- choose alpha per target by K-fold CV
    let na = o.alphas.len();
    let mut kernel = None;
    let (chosen, cv_scores) = if search {
        let (scores, k) = cross_validate(&x, &y, o, &chunks, &mut bar)?;
        kernel = k;
        let mean = tc(OP, scores.f_div_scalar(o.cv as f64))?;
        let log_a: Vec<f64> = o.alphas.iter().map(|a| a.ln() * 1e-10).collect();
        let slope = tc(OP, T::f_from_slice(&log_a))?;
        let slope = tc(OP, slope.f_to_device(o.device))?;
        let slope = tc(OP, slope.f_reshape([na as i64, 1]))?;
        let bumped = tc(OP, mean.f_add(&slope))?;
        let idx = if o.alpha_per_target {
            tc(OP, bumped.f_argmax(0, false))?
        } else {
            let m = tc(
                OP,
                bumped.f_mean_dim(Some([1i64].as_slice()), false, Kind::Double),
            )?;
            let best = tc(OP, m.f_argmax(0, false))?;
            tc(OP, best.f_expand([t], false))?
        };
        let idx: Vec<i64> = tc(
            OP,
            Vec::<i64>::try_from(&tc(OP, idx.f_to_device(Device::Cpu))?),
        )?;
        let chosen: Vec<f64> = idx.iter().map(|&i| o.alphas[i as usize]).collect();
        (chosen, Some(tc(OP, mean.f_to_kind(o.kind))?))
    } else {
        (vec![o.alphas[0]; t as usize], None)
    };

    // ---- refit on all samples
    let prep = Prep::new(&x, o.fit_intercept, o.standardize)?;
    let xp = prep.apply(&x)?;
    let primal = n >= p;
    let decomp = if primal {
        Decomp::from_gram(&mm(&tr(&xp)?, &xp)?, true, Some(xp.shallow_clone()))?
    } else {
        // The kernel of all samples from cross-validation, centred, when
        // there is one (no standardization): saves a second n×n×p product.
        let k = match kernel.take() {
            Some(k) if o.fit_intercept => double_centre(&k)?,
            Some(k) => k,
            None => mm(&xp, &tr(&xp)?)?,
        };
        Decomp::from_gram(&k, false, Some(xp.shallow_clone()))?
    };
    let y_mean = if o.fit_intercept {
        Some(mean0(&y)?)
    } else {
        None
    };
    let alpha_t = tc(OP, T::f_from_slice(&chosen))?;
    let alpha_t = tc(OP, alpha_t.f_to_device(o.device))?;
    let alpha_t = tc(OP, alpha_t.f_to_kind(o.kind))?;
    let lam = tc(OP, decomp.lambda.f_unsqueeze(1))?;
    let (to_basis, from_basis) = (decomp.to_basis()?, decomp.from_basis()?);
    let mut coefs = Vec::with_capacity(chunks.len());
    for &(s, c) in &chunks {
        crate::cancel::check(OP)?;
        let yc = tc(OP, y.f_narrow(1, s, c))?;
        let yc = match &y_mean {
            Some(m) => tc(OP, yc.f_sub(&tc(OP, m.f_narrow(1, s, c))?))?,
            None => yc,
        };
        let w = mm(&to_basis, &yc)?;
        let a = tc(OP, alpha_t.f_narrow(0, s, c))?;
        let a = tc(OP, a.f_unsqueeze(0))?;
        let d = tc(OP, tc(OP, lam.f_add(&a))?.f_reciprocal())?;
        let coef = mm(&from_basis, &tc(OP, w.f_mul(&d))?)?;
        coefs.push(coef);
        bar.step("refit");
    }
    drop((decomp, to_basis, from_basis));
    bar.finish();
    let mut coef = tc(OP, T::f_cat(&coefs, 1))?;
    drop(coefs);
    if let Some(s) = &prep.x_inv_sd {
        coef = tc(OP, coef.f_mul(&tr(s)?))?;
    }
    let intercept = match (&y_mean, &prep.x_mean) {
        (Some(ym), Some(xm)) if o.fit_intercept => {
            let i = tc(OP, ym.f_sub(&mm(xm, &coef)?))?;
            tc(OP, i.f_reshape([t]))?
        }
        _ => tc(OP, T::f_zeros([t], (o.kind, o.device)))?,
    };
    Ok(RidgeModel {
        coef,
        intercept,
        alphas: alpha_t,
        cv_scores,
        candidates: o.alphas.clone(),
        n_samples: n,
        cv: if search { o.cv } else { 0 },
        alpha_per_target: o.alpha_per_target,
        fit_intercept: o.fit_intercept,
        standardize: o.standardize,
        scoring: o.scoring,
    })
}

/// K − r1ᵀ − 1rᵀ + c with r the row means and c the grand mean: the kernel of
/// the column-centred data.
fn double_centre(k: &T) -> Result<T> {
    let r = tc(OP, k.f_mean_dim(Some([1i64].as_slice()), true, k.kind()))?;
    let c = tc(OP, r.f_mean(k.kind()))?;
    let rt = tr(&r)?;
    tc(OP, tc(OP, tc(OP, k.f_sub(&r))?.f_sub(&rt))?.f_add(&c))
}

/// Sum over folds of the per-target scores (candidates × targets, f64), and
/// the uncentered kernel of all samples when the dual form computed it.
fn cross_validate(
    x: &T,
    y: &T,
    o: &RidgeOptions,
    chunks: &[(i64, i64)],
    bar: &mut Progress,
) -> Result<(T, Option<T>)> {
    let (n, p) = (x.size()[0], x.size()[1]);
    let t = y.size()[1];
    let na = o.alphas.len() as i64;
    let total = tc(OP, T::f_zeros([na, t], (Kind::Double, o.device)))?;
    // The uncentered kernel of all samples, sliced by every fold (dual form
    // without standardization: centering is done on the kernel itself).
    let folds = kfold(n, o.cv);
    let n_tr_min = folds.iter().map(|&(_, l)| n - l).min().unwrap_or(n);
    let full_kernel = if n_tr_min < p && !o.standardize {
        Some(mm(x, &tr(x)?)?)
    } else {
        None
    };
    for &(start, len) in &folds {
        crate::cancel::check(OP)?;
        let n_tr = n - len;
        let x_te = tc(OP, x.f_narrow(0, start, len))?;
        let y_te_all = tc(OP, y.f_narrow(0, start, len))?;
        let y_tr_all = outside(y, n, start, len)?;
        let primal = n_tr >= p;
        let (decomp, z) = if let (Some(k), false) = (&full_kernel, primal) {
            // Kernel rows/cols of this fold, double-centred with the
            // training mean when fitting an intercept.
            let k_rows_tr = outside(k, n, start, len)?;
            let k_tr = outside_cols(&k_rows_tr, n, start, len)?;
            let k_te = outside_cols(&tc(OP, k.f_narrow(0, start, len))?, n, start, len)?;
            let (k_tr, k_te) = if o.fit_intercept {
                let r = tc(
                    OP,
                    k_tr.f_mean_dim(Some([1i64].as_slice()), true, k_tr.kind()),
                )?;
                let c = tc(OP, r.f_mean(k_tr.kind()))?;
                let rt = tr(&r)?;
                let s = tc(
                    OP,
                    k_te.f_mean_dim(Some([1i64].as_slice()), true, k_te.kind()),
                )?;
                let k_tr = tc(OP, tc(OP, tc(OP, k_tr.f_sub(&r))?.f_sub(&rt))?.f_add(&c))?;
                let k_te = tc(OP, tc(OP, tc(OP, k_te.f_sub(&s))?.f_sub(&rt))?.f_add(&c))?;
                (k_tr, k_te)
            } else {
                (k_tr, k_te)
            };
            let d = Decomp::from_gram(&k_tr, false, None)?;
            let Basis::Dual { u, .. } = &d.basis else {
                unreachable!()
            };
            let z = mm(&k_te, u)?;
            (d, z)
        } else {
            let x_tr = outside(x, n, start, len)?;
            let prep = Prep::new(&x_tr, o.fit_intercept, o.standardize)?;
            let xp_tr = prep.apply(&x_tr)?;
            let xp_te = prep.apply(&x_te)?;
            if primal {
                let d = Decomp::from_gram(&mm(&tr(&xp_tr)?, &xp_tr)?, true, Some(xp_tr))?;
                let Basis::Primal { v, .. } = &d.basis else {
                    unreachable!()
                };
                let z = mm(&xp_te, v)?;
                (d, z)
            } else {
                let d = Decomp::from_gram(&mm(&xp_tr, &tr(&xp_tr)?)?, false, None)?;
                let Basis::Dual { u, .. } = &d.basis else {
                    unreachable!()
                };
                let z = mm(&mm(&xp_te, &tr(&xp_tr)?)?, u)?;
                (d, z)
            }
        };
        let operator = FoldOperator::new(&z, &decomp.lambda, &decomp.to_basis()?, &o.alphas)?;
        drop((decomp, z));
        for &(s, c) in chunks {
            crate::cancel::check(OP)?;
            let y_tr = tc(OP, y_tr_all.f_narrow(1, s, c))?;
            let y_te = tc(OP, y_te_all.f_narrow(1, s, c))?;
            let (y_tr, y_te) = if o.fit_intercept {
                let m = mean0(&y_tr)?;
                (tc(OP, y_tr.f_sub(&m))?, tc(OP, y_te.f_sub(&m))?)
            } else {
                (y_tr, y_te)
            };
            let pred = operator.predict(&y_tr)?;
            let sc = fold_scores(&pred, &y_te, na, o.scoring)?;
            let mut part = tc(OP, total.f_narrow(1, s, c))?;
            let _ = tc(OP, part.f_add_(&sc))?;
            bar.step("cross-validation");
        }
    }
    Ok((total, full_kernel))
}

impl RidgeModel {
    pub fn n_features(&self) -> i64 {
        self.coef.size()[0]
    }

    pub fn n_targets(&self) -> i64 {
        self.coef.size()[1]
    }

    /// x (samples × features) → predictions (samples × targets).
    pub fn predict(&self, op: &'static str, x: &Tensor) -> Result<Tensor> {
        let p = self.n_features();
        let x1 = x.ndim() == 1;
        if !(x.ndim() == 2 || x1) || x.shape()[x.ndim() - 1] != p {
            return Err(Error::shape(
                op,
                "x",
                format!("samples × {p} features (as in training)"),
                shape_text(&x.shape()),
            ));
        }
        let xx = tc(op, x.0.f_to_device(self.coef.device()))?;
        let xx = tc(op, xx.f_to_kind(self.coef.kind()))?;
        let xx = if x1 {
            tc(op, xx.f_reshape([1, p]))?
        } else {
            xx
        };
        let pred = tc(op, tc(op, xx.f_matmul(&self.coef))?.f_add(&self.intercept))?;
        Ok(Tensor(pred))
    }

    /// R² (as sklearn r2_score per target) and Pearson r of the predictions of
    /// x against y, per target, with their means.
    pub fn score(&self, op: &'static str, x: &Tensor, y: &Tensor) -> Result<RidgeScore> {
        let pred = self.predict(op, x)?.0;
        let n = pred.size()[0];
        let y = tc(op, y.0.f_to_device(pred.device()))?;
        let y = tc(op, y.f_to_kind(pred.kind()))?;
        let y = if y.dim() == 1 && self.n_targets() == 1 {
            tc(op, y.f_reshape([-1, 1]))?
        } else {
            y
        };
        if y.size() != pred.size() {
            return Err(Error::shape(
                op,
                "y",
                format!("{n}×{} (samples of x × targets)", self.n_targets()),
                shape_text(&y.size()),
            ));
        }
        let ym = tc(op, y.f_mean_dim(Some([0i64].as_slice()), true, y.kind()))?;
        let yc = tc(op, y.f_sub(&ym))?;
        let sst = tc(
            op,
            tc(op, yc.f_square())?.f_sum_dim_intlist(Some([0i64].as_slice()), false, Kind::Double),
        )?;
        let sse = tc(
            op,
            tc(op, tc(op, y.f_sub(&pred))?.f_square())?.f_sum_dim_intlist(
                Some([0i64].as_slice()),
                false,
                Kind::Double,
            ),
        )?;
        let r2 = tc(op, tc(op, sse.f_div(&sst))?.f_rsub_scalar(1.0))?;
        // sklearn: a constant target scores 1 when predicted exactly, else 0.
        let zero = tc(op, sst.f_eq(0.0))?;
        let exact = tc(op, sse.f_eq(0.0))?;
        let r2 = tc(
            op,
            r2.f_masked_fill(&tc(op, zero.f_logical_and(&exact))?, 1.0),
        )?;
        let r2 = tc(
            op,
            r2.f_masked_fill(
                &tc(op, zero.f_logical_and(&tc(op, exact.f_logical_not())?))?,
                0.0,
            ),
        )?;
        let pm = tc(
            op,
            pred.f_mean_dim(Some([0i64].as_slice()), true, pred.kind()),
        )?;
        let pc = tc(op, pred.f_sub(&pm))?;
        let num = tc(
            op,
            tc(op, pc.f_mul(&yc))?.f_sum_dim_intlist(Some([0i64].as_slice()), false, Kind::Double),
        )?;
        let sp = tc(
            op,
            tc(op, pc.f_square())?.f_sum_dim_intlist(Some([0i64].as_slice()), false, Kind::Double),
        )?;
        let r = tc(op, num.f_div(&tc(op, tc(op, sp.f_mul(&sst))?.f_sqrt())?))?;
        let mean = |t: &T| -> Result<f64> {
            tc(
                op,
                tc(op, t.f_nanmean(None::<&[i64]>, false, Kind::Double))?.f_double_value(&[]),
            )
        };
        Ok(RidgeScore {
            mean_r2: mean(&r2)?,
            mean_r: mean(&r)?,
            r2: tc(op, r2.f_to_kind(pred.kind()))?,
            r: tc(op, r.f_to_kind(pred.kind()))?,
        })
    }

    /// Writes one safetensors file: tensors coef, intercept, alphas,
    /// candidates (and cv_scores), with the settings as JSON in the header
    /// metadata under "voxlab".
    pub fn save(&self, op: &'static str, path: &Path) -> Result<()> {
        let meta = serde_json::json!({
            "format": "voxlab.RidgeModel",
            "version": 1,
            "n_samples": self.n_samples,
            "cv": self.cv,
            "alpha_per_target": self.alpha_per_target,
            "fit_intercept": self.fit_intercept,
            "standardize": self.standardize,
            "scoring": self.scoring.name(),
            "voxlab": crate::VERSION,
        });
        let cand = tc(op, T::f_from_slice(&self.candidates))?;
        let mut tensors: Vec<(String, T)> = vec![
            ("coef".into(), self.coef.shallow_clone()),
            ("intercept".into(), self.intercept.shallow_clone()),
            ("alphas".into(), self.alphas.shallow_clone()),
            ("candidates".into(), cand),
        ];
        if let Some(s) = &self.cv_scores {
            tensors.push(("cv_scores".into(), s.shallow_clone()));
        }
        let mut info = HashMap::new();
        info.insert("voxlab".to_string(), meta.to_string());
        crate::io::safetensors::write(op, path, &tensors, Some(info))
    }

    pub fn load(op: &'static str, path: &Path, device: Device) -> Result<RidgeModel> {
        let bytes = crate::io::read_bytes(op, path)?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::format(op, path, format!("not a safetensors file: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::format(op, path, e.to_string()))?;
        let meta = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("voxlab"))
            .ok_or_else(|| {
                Error::format(op, path, "no voxlab metadata: not saved by RidgeModel.save")
            })?;
        let meta: serde_json::Value = serde_json::from_str(meta)
            .map_err(|e| Error::format(op, path, format!("bad metadata: {e}")))?;
        if meta["format"] != "voxlab.RidgeModel" {
            return Err(Error::format(
                op,
                path,
                format!("holds {}, not a RidgeModel", meta["format"]),
            ));
        }
        let get = |name: &str| -> Result<Option<T>> {
            match st.tensor(name) {
                Ok(view) => {
                    let t: T = tc(op, T::try_from(view))?;
                    Ok(Some(tc(op, t.f_to_device(device))?))
                }
                Err(_) => Ok(None),
            }
        };
        let need = |name: &str| -> Result<T> {
            get(name)?.ok_or_else(|| Error::format(op, path, format!("tensor '{name}' is missing")))
        };
        let cand = need("candidates")?;
        let candidates = tc(
            op,
            Vec::<f64>::try_from(&tc(
                op,
                tc(op, cand.f_to_device(Device::Cpu))?.f_to_kind(Kind::Double),
            )?),
        )?;
        let b = |k: &str| meta[k].as_bool().unwrap_or(false);
        Ok(RidgeModel {
            coef: need("coef")?,
            intercept: need("intercept")?,
            alphas: need("alphas")?,
            cv_scores: get("cv_scores")?,
            candidates,
            n_samples: meta["n_samples"].as_i64().unwrap_or(0),
            cv: meta["cv"].as_i64().unwrap_or(0),
            alpha_per_target: b("alpha_per_target"),
            fit_intercept: b("fit_intercept"),
            standardize: b("standardize"),
            scoring: Scoring::parse(op, meta["scoring"].as_str().unwrap_or("r2"))?,
        })
    }
}

/// A one-line progress bar on stderr for long fits: shown only when stderr
/// is a terminal and the fit has taken more than a second; erased at the end.
pub struct Progress {
    enabled: bool,
    total: usize,
    done: usize,
    start: std::time::Instant,
    shown: bool,
}

impl Progress {
    pub fn new(enabled: bool, total: usize) -> Progress {
        use std::io::IsTerminal;
        Progress {
            enabled: enabled && std::io::stderr().is_terminal(),
            total: total.max(1),
            done: 0,
            start: std::time::Instant::now(),
            shown: false,
        }
    }

    pub fn step(&mut self, what: &str) {
        self.done += 1;
        let elapsed = self.start.elapsed().as_secs_f64();
        if !self.enabled || elapsed < 1.0 {
            return;
        }
        let width = 24;
        let filled = width * self.done.min(self.total) / self.total;
        eprint!(
            "\r\x1b[Kfit_ridge: {what} [{}{}] {}/{} {elapsed:.0} s",
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.done,
            self.total
        );
        self.shown = true;
    }

    pub fn finish(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}
