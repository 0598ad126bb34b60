//! Image and feature similarity as the reconstruction papers report them.
//!
//! - `ssim`: scikit-image's `structural_similarity` on greyscale images
//!   (`rgb2gray` weights 0.2125, 0.7154, 0.0721), Gaussian weights σ = 1.5
//!   (truncate 3.5 → an 11-tap window), `use_sample_covariance=False`,
//!   `data_range=1`, K1 = 0.01, K2 = 0.03, averaged over the image after
//!   cropping 5 pixels per side. The crop means only windows that lie inside
//!   the image count, so a valid-mode separable convolution computes it
//!   exactly (the border mode of the filter never matters).
//! - `pixcorr`: Pearson r over the flattened RGB values of each pair.
//! - `feature_corr`: Pearson r per sample (rows) and per feature (columns).

use tch::{Kind, Tensor as TchTensor};

use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

/// N×3×H×W float64 batches of equal size; `b` is resized to `a`'s size with
/// bilinear interpolation (antialiased) when they differ.
fn paired(op: &'static str, a: &TchTensor, b: &TchTensor) -> Result<(TchTensor, TchTensor)> {
    let fix = |t: &TchTensor, what: &str| -> Result<TchTensor> {
        let t = if t.dim() == 3 {
            tc(op, t.f_unsqueeze(0))?
        } else {
            t.shallow_clone()
        };
        let s = t.size();
        if s.len() != 4 || s[1] != 3 {
            return Err(Error::shape(
                op,
                what,
                "N×3×H×W or 3×H×W RGB images",
                shape_text(&s),
            ));
        }
        tc(
            op,
            tc(op, t.f_to_kind(Kind::Double))?.f_to_device(tch::Device::Cpu),
        )
    };
    let (a, mut b) = (fix(a, "a")?, fix(b, "b")?);
    let (sa, sb) = (a.size(), b.size());
    if sa[0] != sb[0] {
        return Err(Error::shape(
            op,
            "image counts",
            format!("{} (as a)", sa[0]),
            sb[0].to_string(),
        ));
    }
    if sa[2..] != sb[2..] {
        b = tc(
            op,
            b.f_upsample_bilinear2d([sa[2], sa[3]], false, None, None),
        )?;
    }
    Ok((a, b))
}

/// Pearson r between matching rows of two n×p float64 matrices.
fn row_pearson(op: &'static str, x: &TchTensor, y: &TchTensor) -> Result<Vec<f64>> {
    let centre = |t: &TchTensor| -> Result<TchTensor> {
        let m = tc(
            op,
            t.f_mean_dim(Some([1i64].as_slice()), true, Kind::Double),
        )?;
        tc(op, t.f_sub(&m))
    };
    let (xc, yc) = (centre(x)?, centre(y)?);
    let sum = |t: TchTensor| {
        tc(
            op,
            t.f_sum_dim_intlist(Some([1i64].as_slice()), false, Kind::Double),
        )
    };
    let num = sum(tc(op, xc.f_mul(&yc))?)?;
    let den = tc(
        op,
        tc(
            op,
            sum(tc(op, xc.f_square())?)?.f_mul(&sum(tc(op, yc.f_square())?)?),
        )?
        .f_sqrt(),
    )?;
    tc(op, Vec::<f64>::try_from(&tc(op, num.f_div(&den))?))
}

pub fn pixcorr(a: &TchTensor, b: &TchTensor) -> Result<Vec<f64>> {
    const OP: &str = "pixcorr";
    let (a, b) = paired(OP, a, b)?;
    row_pearson(
        OP,
        &tc(OP, a.f_flatten(1, -1))?,
        &tc(OP, b.f_flatten(1, -1))?,
    )
}

pub fn ssim(a: &TchTensor, b: &TchTensor) -> Result<Vec<f64>> {
    const OP: &str = "ssim";
    let (a, b) = paired(OP, a, b)?;
    let (h, w) = (a.size()[2], a.size()[3]);
    const RADIUS: i64 = 5;
    if h <= 2 * RADIUS || w <= 2 * RADIUS {
        return Err(Error::invalid(
            OP,
            format!(
                "images must be at least 11×11 pixels for the 11-tap Gaussian window, got {h}×{w}"
            ),
        ));
    }
    let grey = |t: &TchTensor| -> Result<TchTensor> {
        let wts = tc(OP, TchTensor::f_from_slice(&[0.2125f64, 0.7154, 0.0721]))?;
        let wts = tc(OP, wts.f_reshape([1, 3, 1, 1]))?;
        tc(
            OP,
            tc(OP, t.f_mul(&wts))?.f_sum_dim_intlist(Some([1i64].as_slice()), true, Kind::Double),
        )
    };
    let (x, y) = (grey(&a)?, grey(&b)?);
    let sigma = 1.5f64;
    let taps: Vec<f64> = (-RADIUS..=RADIUS)
        .map(|i| (-0.5 * (i * i) as f64 / (sigma * sigma)).exp())
        .collect();
    let total: f64 = taps.iter().sum();
    let taps: Vec<f64> = taps.iter().map(|t| t / total).collect();
    let k = tc(OP, TchTensor::f_from_slice(&taps))?;
    let (kv, kh) = (
        tc(OP, k.f_reshape([1, 1, 11, 1]))?,
        tc(OP, k.f_reshape([1, 1, 1, 11]))?,
    );
    let filter = |t: &TchTensor| -> Result<TchTensor> {
        let v = tc(
            OP,
            t.f_conv2d(&kv, None::<TchTensor>, [1, 1], [0, 0], [1, 1], 1),
        )?;
        tc(
            OP,
            v.f_conv2d(&kh, None::<TchTensor>, [1, 1], [0, 0], [1, 1], 1),
        )
    };
    let mul = |p: &TchTensor, q: &TchTensor| tc(OP, p.f_mul(q));
    let (ux, uy) = (filter(&x)?, filter(&y)?);
    let (uxx, uyy, uxy) = (
        filter(&mul(&x, &x)?)?,
        filter(&mul(&y, &y)?)?,
        filter(&mul(&x, &y)?)?,
    );
    let vx = tc(OP, uxx.f_sub(&mul(&ux, &ux)?))?;
    let vy = tc(OP, uyy.f_sub(&mul(&uy, &uy)?))?;
    let vxy = tc(OP, uxy.f_sub(&mul(&ux, &uy)?))?;
    let (c1, c2) = ((0.01f64).powi(2), (0.03f64).powi(2));
    let num = mul(
        &tc(
            OP,
            tc(OP, mul(&ux, &uy)?.f_mul_scalar(2.0))?.f_add_scalar(c1),
        )?,
        &tc(OP, tc(OP, vxy.f_mul_scalar(2.0))?.f_add_scalar(c2))?,
    )?;
    let den1 = tc(
        OP,
        tc(OP, mul(&ux, &ux)?.f_add(&mul(&uy, &uy)?))?.f_add_scalar(c1),
    )?;
    let den2 = tc(OP, tc(OP, vx.f_add(&vy))?.f_add_scalar(c2))?;
    let s = tc(OP, num.f_div(&mul(&den1, &den2)?))?;
    let m = tc(
        OP,
        s.f_mean_dim(Some([1i64, 2, 3].as_slice()), false, Kind::Double),
    )?;
    tc(OP, Vec::<f64>::try_from(&m))
}

/// Per-sample (row) and per-feature (column) Pearson r of two n×p matrices.
pub fn feature_corr(pred: &TchTensor, truth: &TchTensor) -> Result<(Vec<f64>, Vec<f64>)> {
    const OP: &str = "feature_corr";
    let (sp, st) = (pred.size(), truth.size());
    if sp.len() != 2 || sp != st {
        return Err(Error::shape(
            OP,
            "pred and truth",
            "two matrices of the same shape (samples × features)",
            format!("{} and {}", shape_text(&sp), shape_text(&st)),
        ));
    }
    let p = tc(
        OP,
        tc(OP, pred.f_to_kind(Kind::Double))?.f_to_device(tch::Device::Cpu),
    )?;
    let t = tc(
        OP,
        tc(OP, truth.f_to_kind(Kind::Double))?.f_to_device(tch::Device::Cpu),
    )?;
    let per_sample = row_pearson(OP, &p, &t)?;
    let per_feature = row_pearson(
        OP,
        &tc(OP, p.f_transpose(0, 1))?,
        &tc(OP, t.f_transpose(0, 1))?,
    )?;
    Ok((per_sample, per_feature))
}
