//! Boolean masks and ROIs on a voxel grid, and moving data between volumes
//! and voxel matrices in nilearn's order.
//!
//! A [`Mask`] keeps its x·y·z boolean grid and affine, and the flat file-order
//! index (x fastest) of each true voxel, listed in C order over (x, y, z) —
//! the column order of nilearn's `NiftiMasker`/`apply_mask`. Masking a
//! volume loaded from a file is then one `index_select` on the file-order
//! view of its data, without a transposed copy.

use std::fmt;
use std::path::Path;

use tch::{Kind, Tensor as TchTensor};

use super::volume::Volume;
use crate::error::{Error, Result};
use crate::io::table::{self, Column};
use crate::tensor::{shape_text, tc, Tensor};

#[derive(Clone)]
pub struct Mask {
    /// x·y·z, bool, on the CPU.
    pub data: Tensor,
    pub affine: [[f64; 4]; 4],
    pub voxel_size: Vec<f64>,
    /// i64 file-order flat indices (x + nx·y + nx·ny·z) of the true voxels,
    /// in C order over (x, y, z).
    indices: Tensor,
    count: usize,
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn affine_text(a: &[[f64; 4]; 4]) -> String {
    let rows: Vec<String> = a
        .iter()
        .map(|r| {
            let v: Vec<String> = r.iter().map(|&x| trim_num(x)).collect();
            format!("[{}]", v.join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// numpy's `allclose` (rtol 1e-5, atol 1e-8), as nilearn compares affines.
pub fn affines_close(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> bool {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .all(|(x, y)| (x - y).abs() <= 1e-8 + 1e-5 * y.abs())
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vs: Vec<String> = self.voxel_size.iter().map(|&v| trim_num(v)).collect();
        write!(
            f,
            "Mask[{} voxels; {}; {} mm]",
            self.count,
            shape_text(&self.data.shape()),
            vs.join("×")
        )
    }
}

impl Mask {
    /// A mask from an x·y·z tensor: true where the value is non-zero (NaN
    /// counts as non-zero, as numpy's `astype(bool)`).
    pub fn from_tensor(op: &'static str, data: &Tensor, affine: [[f64; 4]; 4]) -> Result<Mask> {
        let mut t = tc(op, data.0.f_to_device(tch::Device::Cpu))?;
        let shape = t.size();
        if shape.len() == 4 && shape[3] == 1 {
            t = tc(op, t.f_select(3, 0))?;
        }
        if t.dim() != 3 {
            return Err(Error::invalid(
                op,
                format!(
                    "a mask is 3-D (x·y·z), got shape {}",
                    shape_text(&data.shape())
                ),
            ));
        }
        let b = if t.kind() == Kind::Bool {
            t
        } else {
            tc(op, t.f_ne(0))?
        };
        let b = tc(op, b.f_contiguous())?;
        let dims = b.size();
        let (nx, ny) = (dims[0], dims[1]);
        // nonzero lists (x, y, z) in C order over the grid: nilearn's order.
        let nz = tc(op, b.f_nonzero())?;
        let count = nz.size()[0] as usize;
        let indices = weighted_sum(op, &nz, [1, nx, nx * ny])?;
        let voxel_size = Volume::from_tensor(op, Tensor(b.shallow_clone()), affine)?.voxel_size;
        Ok(Mask {
            data: Tensor(b),
            affine,
            voxel_size,
            indices: Tensor(indices),
            count,
        })
    }

    pub fn from_volume(op: &'static str, v: &Volume) -> Result<Mask> {
        let mut m = Mask::from_tensor(op, &v.data, v.affine)?;
        m.voxel_size = v.voxel_size.iter().take(3).copied().collect();
        Ok(m)
    }

    /// Reads a NIfTI mask: non-zero voxels are in.
    pub fn load(op: &'static str, path: &Path) -> Result<Mask> {
        let v = Volume::load(path, false).map_err(|e| relabel(e, op))?;
        Mask::from_volume(op, &v).map_err(|e| match e {
            Error::InvalidArgument { op, msg } => Error::format(op, path, msg),
            other => other,
        })
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn shape(&self) -> Vec<i64> {
        self.data.shape()
    }

    /// File-order flat indices (x + nx·y + nx·ny·z) of the true voxels, in
    /// the mask's column order: where each column sits in a volume read from
    /// a NIfTI file (or in an HDF5 z × y × x array, the same order).
    pub fn file_order_indices(&self, op: &'static str) -> Result<Vec<usize>> {
        Ok(self
            .indices
            .to_f64_vec(op)?
            .into_iter()
            .map(|i| i as usize)
            .collect())
    }

    /// Flat indices (C order over x, y, z) of the true voxels, as nilearn
    /// would compute with `np.flatnonzero(mask)`.
    pub fn c_order_indices(&self, op: &'static str) -> Result<Tensor> {
        let nz = tc(op, self.data.0.f_nonzero())?;
        let d = self.shape();
        Ok(Tensor(weighted_sum(op, &nz, [d[1] * d[2], d[2], 1])?))
    }

    /// Errors unless `shape`/`affine` describe this mask's grid.
    pub fn check_grid(
        &self,
        op: &'static str,
        what: &str,
        shape: &[i64],
        affine: &[[f64; 4]; 4],
    ) -> Result<()> {
        let mine = self.shape();
        if shape.len() < 3 || shape[..3] != mine[..] {
            return Err(Error::shape(
                op,
                format!("{what} grid"),
                format!("the mask's {}", shape_text(&mine)),
                shape_text(&shape[..shape.len().min(3)]),
            ));
        }
        if !affines_close(&self.affine, affine) {
            return Err(Error::shape(
                op,
                format!("{what} affine"),
                format!("the mask's {}", affine_text(&self.affine)),
                affine_text(affine),
            ));
        }
        Ok(())
    }

    /// Voxel data inside the mask: a 3-D volume gives a vector (voxels), a
    /// 4-D one a matrix t × voxels, columns in nilearn's order.
    pub fn apply(&self, op: &'static str, v: &Volume) -> Result<Tensor> {
        let shape = v.shape();
        self.check_grid(op, "volume", &shape, &v.affine)?;
        let rev: Vec<i64> = (0..shape.len() as i64).rev().collect();
        let t = tc(op, v.data.0.f_permute(&rev))?;
        let idx = tc(op, self.indices.0.f_to_device(t.device()))?;
        if shape.len() == 3 {
            let flat = tc(op, t.f_reshape([-1]))?;
            Ok(Tensor(tc(op, flat.f_index_select(0, &idx))?))
        } else {
            let flat = tc(op, t.f_reshape([shape[3], -1]))?;
            Ok(Tensor(tc(op, flat.f_index_select(1, &idx))?))
        }
    }

    /// The inverse of [`Mask::apply`]: a vector (voxels) gives a 3-D volume, a
    /// matrix t × voxels a 4-D one; voxels outside the mask are 0.
    pub fn unmask(&self, op: &'static str, x: &Tensor) -> Result<Volume> {
        let shape = x.shape();
        let n = self.count as i64;
        let ok = match shape.len() {
            1 => shape[0] == n,
            2 => shape[1] == n,
            _ => false,
        };
        if !ok {
            return Err(Error::shape(
                op,
                "data",
                format!("{n} (voxels) or t×{n}"),
                shape_text(&shape),
            ));
        }
        let d = self.shape();
        let t = if shape.len() == 1 { 1 } else { shape[0] };
        let src = tc(op, x.0.f_reshape([t, n]))?;
        let idx = tc(op, self.indices.0.f_to_device(src.device()))?;
        let out = tc(
            op,
            TchTensor::f_zeros([t, d[0] * d[1] * d[2]], (src.kind(), src.device())),
        )?;
        let out = tc(op, out.f_index_copy(1, &idx, &src))?;
        let out = tc(op, out.f_reshape([t, d[2], d[1], d[0]]))?;
        let out = if shape.len() == 1 {
            tc(op, tc(op, out.f_select(0, 0))?.f_permute([2, 1, 0]))?
        } else {
            tc(op, out.f_permute([3, 2, 1, 0]))?
        };
        let mut v = Volume::from_tensor(op, Tensor(out), self.affine)?;
        v.voxel_size = self.voxel_size.clone();
        Ok(v)
    }

    /// The mask as a float32 x·y·z volume of 0 and 1.
    pub fn to_volume(&self, op: &'static str) -> Result<Volume> {
        let t = tc(op, self.data.0.f_to_kind(Kind::Float))?;
        let mut v = Volume::from_tensor(op, Tensor(t), self.affine)?;
        v.voxel_size = self.voxel_size.clone();
        Ok(v)
    }

    fn combine(op: &'static str, masks: &[Mask], union: bool) -> Result<Mask> {
        let Some(first) = masks.first() else {
            return Err(Error::invalid(op, "needs at least one mask"));
        };
        let mut acc = first.data.0.shallow_clone();
        for (i, m) in masks.iter().enumerate().skip(1) {
            first.check_grid(op, &format!("mask {}", i + 1), &m.shape(), &m.affine)?;
            acc = if union {
                tc(op, acc.f_logical_or(&m.data.0))?
            } else {
                tc(op, acc.f_logical_and(&m.data.0))?
            };
        }
        let mut out = Mask::from_tensor(op, &Tensor(acc), first.affine)?;
        out.voxel_size = first.voxel_size.clone();
        Ok(out)
    }

    pub fn union(op: &'static str, masks: &[Mask]) -> Result<Mask> {
        Mask::combine(op, masks, true)
    }

    pub fn intersect(op: &'static str, masks: &[Mask]) -> Result<Mask> {
        Mask::combine(op, masks, false)
    }
}

/// Σ_c nz[:, c]·w[c] for an n×3 index matrix (integer matmul is not
/// available on every backend).
fn weighted_sum(op: &'static str, nz: &TchTensor, w: [i64; 3]) -> Result<TchTensor> {
    let mut acc = tc(op, nz.f_select(1, 0))?;
    acc = tc(op, acc.f_mul_scalar(w[0]))?;
    for (c, &wc) in w.iter().enumerate().skip(1) {
        let col = tc(op, nz.f_select(1, c as i64))?;
        acc = tc(op, acc.f_add(&tc(op, col.f_mul_scalar(wc))?))?;
    }
    tc(op, acc.f_contiguous())
}

/// Errors from the NIfTI reader carry its op name; report them as ours.
fn relabel(e: Error, op: &'static str) -> Error {
    match e {
        Error::Io { path, source, .. } => Error::Io { op, path, source },
        Error::Format { path, msg, .. } => Error::Format { op, path, msg },
        Error::InvalidArgument { msg, .. } => Error::InvalidArgument { op, msg },
        Error::ShapeMismatch {
            what,
            expected,
            got,
            ..
        } => Error::ShapeMismatch {
            op,
            what,
            expected,
            got,
        },
        Error::Torch { msg, .. } => Error::Torch { op, msg },
        other => other,
    }
}

/// A label image and its table → one mask per named label, in table order.
///
/// The table is a CSV with a header: the label values come from the column
/// named `index` (else `label`, `value` or `id`, else the first numeric
/// column) and the names from `name` (else the first text column). Values in
/// the image that the table does not list are ignored; a label the table
/// lists but the image lacks is an error (a mismatched table, most likely).
pub fn load_atlas(op: &'static str, image: &Path, labels: &Path) -> Result<Vec<(String, Mask)>> {
    let vol = Volume::load(image, true).map_err(|e| relabel(e, op))?;
    let shape = vol.shape();
    let data = if shape.len() == 4 && shape[3] == 1 {
        tc(op, vol.data.0.f_select(3, 0))?
    } else if shape.len() == 3 {
        vol.data.0.shallow_clone()
    } else {
        return Err(Error::format(
            op,
            image,
            format!(
                "an atlas is a 3-D label image, got shape {}",
                shape_text(&shape)
            ),
        ));
    };
    let table = table::load_csv(labels, b',').map_err(|e| relabel(e, op))?;
    let numeric = |name: &str| match table.column(name) {
        Some(Column::Number(v)) => Some(v.clone()),
        _ => None,
    };
    let index = ["index", "label", "value", "id"]
        .iter()
        .find_map(|n| numeric(n))
        .or_else(|| {
            table.columns.iter().find_map(|(_, c)| match c {
                Column::Number(v) => Some(v.clone()),
                _ => None,
            })
        })
        .ok_or_else(|| {
            Error::format(
                op,
                labels,
                "no numeric column of label values (expected a column 'index')",
            )
        })?;
    let names = match table.column("name") {
        Some(Column::Text(v)) => Some(v.clone()),
        _ => table.columns.iter().find_map(|(_, c)| match c {
            Column::Text(v) => Some(v.clone()),
            _ => None,
        }),
    }
    .ok_or_else(|| {
        Error::format(
            op,
            labels,
            "no text column of region names (expected a column 'name')",
        )
    })?;
    let mut out: Vec<(String, Mask)> = Vec::with_capacity(names.len());
    for (row, (value, name)) in index.iter().zip(&names).enumerate() {
        if name.is_empty() {
            return Err(Error::format(
                op,
                labels,
                format!("row {}: empty region name", row + 2),
            ));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(Error::format(
                op,
                labels,
                format!("row {}: region name '{name}' appears twice", row + 2),
            ));
        }
        let m = tc(op, data.f_eq(*value))?;
        let mut mask = Mask::from_tensor(op, &Tensor(m), vol.affine)?;
        mask.voxel_size = vol.voxel_size.iter().take(3).copied().collect();
        if mask.count() == 0 {
            return Err(Error::format(
                op,
                labels,
                format!(
                    "row {}: label {} ('{name}') has no voxels in {}",
                    row + 2,
                    trim_num(*value),
                    image.display()
                ),
            ));
        }
        out.push((name.clone(), mask));
    }
    Ok(out)
}
