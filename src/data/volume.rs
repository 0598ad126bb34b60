//! A brain image: voxel data in x, y, z[, t] order (as nibabel's
//! `get_fdata()`), its affine (voxel → world, mm), voxel sizes and TR.

use std::fmt;
use std::path::Path;

use tch::{Kind, Tensor as TchTensor};

use crate::error::{Error, Result};
use crate::io::nifti::{self, HeaderValue, NiftiData, NiftiImage, WriteOptions};
use crate::tensor::{shape_text, tc, Tensor};

#[derive(Clone)]
pub struct Volume {
    /// x·y·z or x·y·z·t (float32 unless loaded as float64).
    pub data: Tensor,
    /// Voxel indices (i, j, k, 1) → world coordinates, row-major.
    pub affine: [[f64; 4]; 4],
    /// Spatial voxel sizes in mm.
    pub voxel_size: Vec<f64>,
    /// Repetition time in seconds, for 4-D images that have one.
    pub tr: Option<f64>,
    /// Raw header fields as read (empty for volumes made in a script).
    pub header: Vec<(String, HeaderValue)>,
}

impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vs: Vec<String> = self
            .voxel_size
            .iter()
            .map(|v| {
                format!("{v:.3}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string()
            })
            .collect();
        write!(
            f,
            "Volume[{}; voxels {} mm",
            shape_text(&self.data.shape()),
            vs.join("×")
        )?;
        if let Some(tr) = self.tr {
            write!(f, "; TR {tr} s")?;
        }
        write!(f, "]")
    }
}

/// File-order values (x fastest) with dims [nx, ny, nz, ...] → a tensor
/// indexed [x, y, z, ...]: reshape to the reversed dims, then permute. The
/// permuted view needs no second copy of the data.
fn file_order_tensor(op: &'static str, data: NiftiData, dims: &[usize]) -> Result<TchTensor> {
    let rev: Vec<i64> = dims.iter().rev().map(|&d| d as i64).collect();
    let flat = match data {
        NiftiData::F32(v) => tc(op, TchTensor::f_from_slice(&v))?,
        NiftiData::F64(v) => tc(op, TchTensor::f_from_slice(&v))?,
    };
    let t = tc(op, flat.f_reshape(&rev))?;
    let perm: Vec<i64> = (0..rev.len() as i64).rev().collect();
    tc(op, t.f_permute(&perm))
}

impl Volume {
    pub fn from_nifti(img: NiftiImage) -> Result<Volume> {
        const OP: &str = "load_nifti";
        let NiftiImage {
            dims,
            data,
            affine,
            voxel_size,
            tr,
            header,
            ..
        } = img;
        let t = file_order_tensor(OP, data, &dims)?;
        Ok(Volume {
            data: Tensor(t),
            affine,
            voxel_size,
            tr,
            header,
        })
    }

    /// Reads a NIfTI file; the voxels are decoded straight into the
    /// tensor's storage (no second full-size copy).
    pub fn load(path: &Path, f64: bool) -> Result<Volume> {
        const OP: &str = "load_nifti";
        let (img, flat) = nifti::read_nifti_tensor(path, f64)?;
        let rev: Vec<i64> = img.dims.iter().rev().map(|&d| d as i64).collect();
        let t = tc(OP, flat.f_reshape(&rev))?;
        let perm: Vec<i64> = (0..rev.len() as i64).rev().collect();
        let t = tc(OP, t.f_permute(&perm))?;
        Ok(Volume {
            data: Tensor(t),
            affine: img.affine,
            voxel_size: img.voxel_size,
            tr: img.tr,
            header: img.header,
        })
    }

    /// A volume from a 3-D/4-D tensor and an affine (voxel sizes from the
    /// affine's column norms).
    pub fn from_tensor(op: &'static str, data: Tensor, affine: [[f64; 4]; 4]) -> Result<Volume> {
        let nd = data.ndim();
        if !(3..=4).contains(&nd) {
            return Err(Error::invalid(
                op,
                format!(
                    "a volume is 3-D or 4-D, got shape {}",
                    shape_text(&data.shape())
                ),
            ));
        }
        let voxel_size = (0..3)
            .map(|c| {
                (0..3)
                    .map(|r| affine[r][c] * affine[r][c])
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        Ok(Volume {
            data,
            affine,
            voxel_size,
            tr: None,
            header: Vec::new(),
        })
    }

    pub fn shape(&self) -> Vec<i64> {
        self.data.shape()
    }

    /// Writes .nii or .nii.gz: float32 unless the data is float64; the affine
    /// goes into sform and qform.
    pub fn save(&self, path: &Path) -> Result<()> {
        const OP: &str = "save_nifti";
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::sandbox::check_write(OP, parent.as_ref())?;
            std::fs::create_dir_all(parent).map_err(|e| Error::io(OP, parent, e))?;
        }
        let dims: Vec<usize> = self.shape().iter().map(|&d| d as usize).collect();
        // Tensor [x, y, z, t] → file order (x fastest): reverse the axes, then C-order.
        let perm: Vec<i64> = (0..dims.len() as i64).rev().collect();
        let t = tc(OP, self.data.0.f_to_device(tch::Device::Cpu))?;
        let f64_data = self.data.kind() == Kind::Double;
        let kind = if f64_data { Kind::Double } else { Kind::Float };
        // A no-op when the data already lie in file order (unmask's output
        // does), so a large volume is written without a copy.
        let t = tc(OP, tc(OP, t.f_permute(&perm))?.f_to_kind(kind))?;
        let t = tc(OP, t.f_contiguous())?;
        let n = t.numel();
        // qform_code 1 (scanner) so readers that ignore sform still place the image.
        let opts = WriteOptions {
            tr: self.tr,
            qform_code: 1,
            ..WriteOptions::default()
        };
        if f64_data {
            nifti::write_nifti_f64(path, &dims, tensor_slice::<f64>(&t, n), self.affine, &opts)
        } else {
            nifti::write_nifti(path, &dims, tensor_slice::<f32>(&t, n), self.affine, &opts)
        }
    }
}

/// The inverse of a 4×4 matrix (an affine: voxel ↔ world), by Gauss–Jordan
/// elimination with partial pivoting; None when it is singular.
pub fn invert_affine(m: &[[f64; 4]; 4]) -> Option<[[f64; 4]; 4]> {
    let mut a = *m;
    let mut inv = [[0.0; 4]; 4];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for col in 0..4 {
        let pivot = (col..4).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let p = a[col][col];
        for c in 0..4 {
            a[col][c] /= p;
            inv[col][c] /= p;
        }
        for r in 0..4 {
            if r != col {
                let f = a[r][col];
                for c in 0..4 {
                    a[r][c] -= f * a[col][c];
                    inv[r][c] -= f * inv[col][c];
                }
            }
        }
    }
    Some(inv)
}

/// The `n` values of a contiguous CPU tensor of element type `T`, borrowed.
fn tensor_slice<T>(t: &TchTensor, n: usize) -> &[T] {
    if n == 0 {
        return &[];
    }
    // SAFETY: callers pass a contiguous CPU tensor of exactly n elements of
    // type T (made so just before); the slice borrows `t`, so the storage
    // outlives it, and nothing writes to the tensor while it is borrowed.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, n) }
}
