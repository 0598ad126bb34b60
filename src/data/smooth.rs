//! Gaussian smoothing in millimetres, as nilearn's `smooth_img`.
//!
//! nilearn (`image._smooth_array`): non-finite values become 0; the voxel
//! sizes are the column norms of the affine's 3×3 part; σ (voxels) =
//! fwhm / (√(8 ln 2) · voxel size) per axis; each spatial axis with σ ≠ 0 is
//! filtered in turn by `scipy.ndimage.gaussian_filter1d` — a kernel
//! exp(−x²/2σ²) normalised to sum 1 over x = −r…r with r = ⌊4σ + 0.5⌋, and
//! edges in `reflect` mode (d c b a | a b c d | d c b a). scipy accumulates
//! in f64 and stores each pass in the array's dtype; so does this.

use tch::{Kind, Tensor as TchTensor};

use super::volume::Volume;
use crate::error::{Error, Result};
use crate::tensor::{tc, Tensor};

/// scipy's `_gaussian_kernel1d(sigma, 0, radius)` with its radius.
fn kernel(sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as i64;
    let w: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let sum: f64 = w.iter().sum();
    w.into_iter().map(|x| x / sum).collect()
}

/// Source index of padded position i on an axis of n in scipy's `reflect`
/// mode (d c b a | a b c d | d c b a).
fn reflect_one(i: i64, n: i64) -> i64 {
    let m = i.rem_euclid(2 * n);
    if m >= n {
        2 * n - 1 - m
    } else {
        m
    }
}

/// Kernels with more taps than this are folded as uniform (see [`folded`]).
const MAX_TAPS: i64 = 1 << 24;

/// The kernel folded onto one period of the reflected axis. `reflect` mode
/// repeats the axis with period 2n, so tap x of the kernel reads the same
/// voxel as tap x mod 2n: summing the taps per residue gives at most 2n
/// weights W[d] (offset d − r, r = the returned radius) whose filter equals
/// scipy's, however wide the kernel (a 1e6 mm FWHM is millions of taps).
/// A kernel wider than [`MAX_TAPS`] has σ > 2·10⁶ voxels, where the folded
/// weights are uniform to 1e-8 relative (below float32's precision), and is
/// taken as uniform without summing its taps.
fn folded(sigma: f64, n: i64) -> (Vec<f64>, i64) {
    let period = 2 * n;
    let radius = (4.0 * sigma + 0.5).min(9e15) as i64;
    if 2 * radius + 1 <= period {
        return (kernel(sigma), radius);
    }
    if 2 * radius + 1 > MAX_TAPS {
        return (vec![1.0 / period as f64; period as usize], 0);
    }
    let w = kernel(sigma);
    let mut out = vec![0.0; period as usize];
    for (k, wk) in w.iter().enumerate() {
        out[(k as i64 - radius).rem_euclid(period) as usize] += wk;
    }
    (out, 0)
}

fn filter_axis(
    op: &'static str,
    t: &TchTensor,
    axis: i64,
    sigma: f64,
    store: Kind,
) -> Result<TchTensor> {
    let n = t.size()[axis as usize];
    let (w, r) = folded(sigma, n);
    let taps = w.len() as i64;
    // Padded positions −r … n − 1 − r + taps − 1: the first tap reads −r.
    let idx: Vec<i64> = (-r..n + taps - 1 - r).map(|i| reflect_one(i, n)).collect();
    let padded_numel = t.numel() as f64 / n as f64 * (n + taps - 1) as f64;
    crate::cancel::reserve(op, "the padded volume", padded_numel * 8.0 * 2.0)?;
    let idx = TchTensor::from_slice(&idx).to_device(t.device());
    let padded = tc(op, t.f_index_select(axis, &idx))?;
    let mut acc = tc(op, t.f_zeros_like())?;
    for (k, &wk) in w.iter().enumerate() {
        crate::cancel::check(op)?;
        let part = tc(op, padded.f_narrow(axis, k as i64, n))?;
        acc = tc(op, acc.f_add(&tc(op, part.f_mul_scalar(wk))?))?;
    }
    // Round to the stored dtype between passes, as scipy's output array does.
    if store != Kind::Double {
        acc = tc(op, tc(op, acc.f_to_kind(store))?.f_to_kind(Kind::Double))?;
    }
    Ok(acc)
}

/// FWHM in mm → σ in voxels per spatial axis.
pub fn sigmas(op: &'static str, affine: &[[f64; 4]; 4], fwhm: &[f64]) -> Result<[f64; 3]> {
    let fwhm: [f64; 3] = match fwhm {
        [f] => [*f; 3],
        [a, b, c] => [*a, *b, *c],
        other => {
            return Err(Error::invalid(
                op,
                format!(
                    "fwhm is one number or three (x, y, z), got {} numbers",
                    other.len()
                ),
            ))
        }
    };
    if let Some(bad) = fwhm.iter().find(|f| !(f.is_finite() && **f >= 0.0)) {
        return Err(Error::invalid(
            op,
            format!("fwhm must be finite and ≥ 0 mm, got {bad}"),
        ));
    }
    let ratio = (8.0 * 2f64.ln()).sqrt();
    let mut out = [0.0; 3];
    for c in 0..3 {
        let vox = (0..3)
            .map(|r| affine[r][c] * affine[r][c])
            .sum::<f64>()
            .sqrt();
        out[c] = if fwhm[c] == 0.0 {
            0.0
        } else if vox == 0.0 {
            return Err(Error::invalid(
                op,
                format!("the affine's axis {c} has zero length"),
            ));
        } else {
            fwhm[c] / (ratio * vox)
        };
    }
    Ok(out)
}

/// Smooths the spatial axes of a 3-D or 4-D volume (4-D: each volume in turn,
/// so memory stays near one volume's f64 copy). The result keeps the input's
/// dtype (integers become float32), affine, voxel sizes and TR.
pub fn smooth(op: &'static str, v: &Volume, fwhm: &[f64]) -> Result<Volume> {
    let size = v.data.0.size();
    if !(3..=4).contains(&size.len()) {
        return Err(Error::invalid(
            op,
            format!(
                "smoothing needs a 3-D or 4-D volume, got {} dimensions",
                size.len()
            ),
        ));
    }
    if let Some(axis) = size.iter().take(3).position(|&d| d == 0) {
        return Err(Error::invalid(
            op,
            format!("the volume's spatial axis {axis} has length 0"),
        ));
    }
    let sig = sigmas(op, &v.affine, fwhm)?;
    let kind = if v.data.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    };
    let one = |vol: &TchTensor| -> Result<TchTensor> {
        let mut t = tc(op, vol.f_to_kind(Kind::Double))?;
        let finite = tc(op, t.f_isfinite())?;
        t = tc(op, t.f_where_scalarother(&finite, 0.0))?;
        for (axis, &s) in sig.iter().enumerate() {
            if s != 0.0 {
                t = filter_axis(op, &t, axis as i64, s, kind)?;
            }
        }
        tc(op, t.f_to_kind(kind))
    };
    let data = &v.data.0;
    let out = if data.dim() == 4 {
        let n = data.size()[3];
        let vols = (0..n)
            .map(|i| {
                crate::cancel::check(op)?;
                one(&tc(op, data.f_select(3, i))?)
            })
            .collect::<Result<Vec<_>>>()?;
        tc(op, TchTensor::f_stack(&vols, 3))?
    } else {
        one(data)?
    };
    let mut s = v.clone();
    s.data = Tensor(out);
    Ok(s)
}
