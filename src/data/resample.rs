//! Resampling a volume onto another image's voxel grid, as nilearn's
//! `resample_to_img` does it (scipy.ndimage.affine_transform underneath):
//! every target voxel is mapped through `inv(source affine) · target
//! affine` into source voxel coordinates and interpolated there —
//! nearest (order 0), trilinear (order 1) or cubic B-spline (order 3,
//! "continuous", with the spline prefilter). Points outside the source
//! grid get the fill value; interpolation stencils that reach past the
//! edge read mirrored voxels, as scipy's `mode="constant"` does.
//! Oblique affines are handled like any other: the map is a full 3×3
//! matrix plus an offset.

use rayon::prelude::*;
use tch::Kind;

use super::volume::invert_affine as invert;
use super::Volume;
use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc, Tensor};

const OP: &str = "resample_to_img";

/// How values between voxel centres are estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// The value of the closest voxel (labels, masks).
    Nearest,
    /// Trilinear.
    Linear,
    /// Cubic B-spline (nilearn's "continuous").
    Continuous,
}

impl Interpolation {
    pub fn parse(name: &str) -> Result<Interpolation> {
        match name {
            "nearest" => Ok(Interpolation::Nearest),
            "linear" => Ok(Interpolation::Linear),
            "continuous" => Ok(Interpolation::Continuous),
            other => Err(Error::invalid(
                OP,
                format!("interpolation must be \"nearest\", \"linear\" or \"continuous\", got \"{other}\""),
            )),
        }
    }

    fn order(self) -> usize {
        match self {
            Interpolation::Nearest => 0,
            Interpolation::Linear => 1,
            Interpolation::Continuous => 3,
        }
    }
}

fn matmul4(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut out = [[0.0; 4]; 4];
    for (r, row) in out.iter_mut().enumerate() {
        for (c, x) in row.iter_mut().enumerate() {
            *x = (0..4).map(|k| a[r][k] * b[k][c]).sum();
        }
    }
    out
}

/// numpy.allclose with its default tolerances.
fn allclose(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> bool {
    (0..4).all(|r| (0..4).all(|c| (a[r][c] - b[r][c]).abs() <= 1e-8 + 1e-5 * b[r][c].abs()))
}

/// Index `idx` reflected into [0, len) about the edge voxels (scipy's mirror).
pub fn mirror(idx: i64, len: i64) -> i64 {
    if len <= 1 {
        return 0;
    }
    let s2 = 2 * len - 2;
    if idx < 0 {
        let i = s2 * (-idx / s2) + idx;
        if i <= 1 - len {
            i + s2
        } else {
            -i
        }
    } else if idx >= len {
        let i = idx - s2 * (idx / s2);
        if i >= len {
            s2 - i
        } else {
            i
        }
    } else {
        idx
    }
}

/// Cubic B-spline prefilter of one line in place (mirror boundary), the
/// recursive filter of Unser et al. as scipy's spline_filter1d applies it.
pub fn spline_filter_line(c: &mut [f64]) {
    let n = c.len();
    if n < 2 {
        return;
    }
    let z: f64 = 3f64.sqrt() - 2.0;
    let gain = (1.0 - z) * (1.0 - 1.0 / z);
    for x in c.iter_mut() {
        *x *= gain;
    }
    // Causal initialisation for a mirrored signal.
    let z_n_1 = z.powi(n as i32 - 1);
    let mut c0 = c[0] + z_n_1 * c[n - 1];
    let mut z_i = z;
    for i in 1..n - 1 {
        c0 += z_i * (c[i] + z_n_1 * c[n - 1 - i]);
        z_i *= z;
    }
    c[0] = c0 / (1.0 - z_n_1 * z_n_1);
    for i in 1..n {
        c[i] += z * c[i - 1];
    }
    c[n - 1] = (z * c[n - 2] + c[n - 1]) * z / (z * z - 1.0);
    for i in (0..n - 1).rev() {
        c[i] = z * (c[i + 1] - c[i]);
    }
}

/// Prefilters a C-order nx·ny·nz volume along each axis in turn.
fn spline_filter(data: &mut [f64], dims: [usize; 3]) {
    let [nx, ny, nz] = dims;
    let strides = [ny * nz, nz, 1];
    let mut line = Vec::new();
    for axis in 0..3 {
        let len = dims[axis];
        let stride = strides[axis];
        let others: Vec<usize> = (0..nx * ny * nz)
            .filter(|&i| (i / stride) % len == 0)
            .collect();
        for start in others {
            line.clear();
            line.extend((0..len).map(|k| data[start + k * stride]));
            spline_filter_line(&mut line);
            for (k, v) in line.iter().enumerate() {
                data[start + k * stride] = *v;
            }
        }
    }
}

/// Interpolation weights of the (order + 1) voxels from the stencil start.
pub fn weights(cc: f64, order: usize) -> [f64; 4] {
    let mut w = [0.0; 4];
    match order {
        0 => w[0] = 1.0,
        1 => {
            let x = cc - cc.floor();
            w[0] = 1.0 - x;
            w[1] = 1.0 - w[0];
        }
        _ => {
            let y = cc - cc.floor();
            let z = 1.0 - y;
            w[1] = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
            w[2] = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
            w[0] = z * z * z / 6.0;
            w[3] = 1.0 - w[0] - w[1] - w[2];
        }
    }
    w
}

/// One 3-D volume (C order, coefficients already prefiltered for order 3)
/// sampled at every voxel of a `shape` grid through `a · index + b`.
fn transform(
    coeffs: &[f64],
    dims: [usize; 3],
    a: [[f64; 3]; 3],
    b: [f64; 3],
    shape: [usize; 3],
    order: usize,
    fill: f64,
) -> Vec<f64> {
    let diagonal = (0..3).all(|r| (0..3).all(|c| r == c || a[r][c] == 0.0));
    let len = [dims[0] as i64, dims[1] as i64, dims[2] as i64];
    let strides = [dims[1] * dims[2], dims[2], 1];
    let plane = shape[1] * shape[2];
    let mut out = vec![0.0; shape[0] * plane];
    out.par_chunks_mut(plane).enumerate().for_each(|(i, slab)| {
        for j in 0..shape[1] {
            for k in 0..shape[2] {
                let o = [i as f64, j as f64, k as f64];
                let mut cc = [0.0; 3];
                for (h, c) in cc.iter_mut().enumerate() {
                    *c = if diagonal {
                        // scipy's zoom_shift path: (index + b/a)·a.
                        (o[h] + b[h] / a[h][h]) * a[h][h]
                    } else {
                        o[0] * a[h][0] + o[1] * a[h][1] + o[2] * a[h][2] + b[h]
                    };
                }
                slab[j * shape[2] + k] = sample(coeffs, &len, &strides, &cc, order, fill);
            }
        }
    });
    out
}

fn sample(
    coeffs: &[f64],
    len: &[i64; 3],
    strides: &[usize; 3],
    cc: &[f64; 3],
    order: usize,
    fill: f64,
) -> f64 {
    let mut idx = [[0usize; 4]; 3];
    let mut w = [[0.0; 4]; 3];
    for h in 0..3 {
        let c = cc[h];
        if !(c >= 0.0 && c <= (len[h] - 1) as f64) {
            return fill;
        }
        let start = if order % 2 == 1 {
            c.floor() as i64 - order as i64 / 2
        } else {
            (c + 0.5).floor() as i64 - order as i64 / 2
        };
        for l in 0..=order {
            idx[h][l] = mirror(start + l as i64, len[h]) as usize * strides[h];
        }
        w[h] = weights(c, order);
    }
    let mut total = 0.0;
    for l0 in 0..=order {
        for l1 in 0..=order {
            for l2 in 0..=order {
                let v = coeffs[idx[0][l0] + idx[1][l1] + idx[2][l2]];
                total += if order > 0 {
                    v * w[0][l0] * w[1][l1] * w[2][l2]
                } else {
                    v
                };
            }
        }
    }
    total
}

/// Corner-based extent of the source data in target voxel coordinates
/// (nilearn's get_bounds): the maxima along each axis.
fn source_extent_max(dims: [usize; 3], to_target: &[[f64; 4]; 4]) -> [f64; 3] {
    let mut max = [f64::NEG_INFINITY; 3];
    for corner in 0..8 {
        let p = [
            if corner & 1 == 0 {
                0.0
            } else {
                (dims[0] - 1) as f64
            },
            if corner & 2 == 0 {
                0.0
            } else {
                (dims[1] - 1) as f64
            },
            if corner & 4 == 0 {
                0.0
            } else {
                (dims[2] - 1) as f64
            },
        ];
        for (r, m) in max.iter_mut().enumerate() {
            let v = (0..3).map(|c| to_target[r][c] * p[c]).sum::<f64>() + to_target[r][3];
            *m = m.max(v);
        }
    }
    max
}

/// `source` resampled onto the grid of `target_shape` (3 spatial sizes)
/// with `target_affine`; 4-D sources are resampled volume by volume.
pub fn resample(
    source: &Volume,
    target_affine: [[f64; 4]; 4],
    target_shape: [usize; 3],
    interpolation: Interpolation,
    fill_value: f64,
) -> Result<Volume> {
    let shape = source.shape();
    let dims = [shape[0] as usize, shape[1] as usize, shape[2] as usize];
    let frames: usize = shape[3..].iter().product::<i64>() as usize;
    let kind = source.data.kind();
    let same_grid = dims == target_shape && allclose(&target_affine, &source.affine);
    if same_grid {
        let mut v = source.clone();
        v.affine = target_affine;
        return Ok(v);
    }
    let inv_source = invert(&source.affine).ok_or_else(|| {
        Error::invalid(
            OP,
            "the source volume's affine is singular (no voxel-to-mm inverse)",
        )
    })?;
    let inv_target = invert(&target_affine)
        .ok_or_else(|| Error::invalid(OP, "the target's affine is singular"))?;
    let max = source_extent_max(dims, &matmul4(&inv_target, &source.affine));
    if max.iter().any(|m| *m < 0.0) {
        return Err(Error::invalid(
            OP,
            "the target's field of view does not contain any of the source's data",
        ));
    }
    let map = if target_affine == source.affine {
        let mut eye = [[0.0; 4]; 4];
        for (i, row) in eye.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        eye
    } else {
        matmul4(&inv_source, &target_affine)
    };
    let a = [
        [map[0][0], map[0][1], map[0][2]],
        [map[1][0], map[1][1], map[1][2]],
        [map[2][0], map[2][1], map[2][2]],
    ];
    let b = [map[0][3], map[1][3], map[2][3]];

    // Source values in C order over (x, y, z, frame).
    let flat = tc(OP, source.data.0.f_to_device(tch::Device::Cpu))?;
    let flat = tc(OP, tc(OP, flat.f_to_kind(Kind::Double))?.f_reshape([-1]))?;
    let values = Vec::<f64>::try_from(&flat).map_err(|e| Error::torch(OP, e))?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            OP,
            "the source holds NaN or infinite values; replace them first (nan_to_num)",
        ));
    }
    let n_in = dims[0] * dims[1] * dims[2];
    let n_out = target_shape.iter().product::<usize>();
    let mut out = vec![0.0; n_out * frames];
    for f in 0..frames {
        let mut vol: Vec<f64> = (0..n_in).map(|i| values[i * frames + f]).collect();
        if interpolation == Interpolation::Continuous {
            spline_filter(&mut vol, dims);
        }
        let r = transform(
            &vol,
            dims,
            a,
            b,
            target_shape,
            interpolation.order(),
            fill_value,
        );
        for (i, v) in r.into_iter().enumerate() {
            out[i * frames + f] = v;
        }
    }
    let mut out_shape: Vec<i64> = target_shape.iter().map(|&d| d as i64).collect();
    out_shape.extend_from_slice(&shape[3..]);
    let out_kind = if kind == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    };
    let data = Tensor::from_f64(OP, &out, &out_shape, out_kind)?;
    let data = Tensor(tc(OP, data.0.f_to_device(source.data.device()))?);
    let mut v = Volume::from_tensor(OP, data, target_affine)?;
    v.tr = source.tr;
    if v.shape().len() != out_shape.len() {
        return Err(Error::invalid(
            OP,
            format!("unexpected result shape {}", shape_text(&v.shape())),
        ));
    }
    Ok(v)
}
