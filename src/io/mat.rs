//! MATLAB .mat files: numeric variables of v5 files (what scipy.io.savemat
//! and MATLAB's default -v7 write) through the `matfile` crate, and of v7.3
//! files, which are HDF5 behind a 512-byte text header.

use std::path::Path;

use super::hdf5::{self, H5};
use crate::error::{Error, Result};

/// A numeric MATLAB variable: its MATLAB size (rows, columns, …) and values
/// in MATLAB's column-major order.
#[derive(Debug, Clone)]
pub struct MatArray {
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
}

impl MatArray {
    /// Element (row, column) of a 2-D variable, 0-based.
    pub fn at(&self, row: usize, col: usize) -> f64 {
        self.data[row + col * self.dims[0]]
    }
}

/// The numeric variables `names` of a .mat file (v5 or v7.3), each an error
/// naming the file when missing or not numeric.
pub fn load_vars(op: &'static str, path: &Path, names: &[&str]) -> Result<Vec<MatArray>> {
    if !path.exists() {
        return Err(Error::io(
            op,
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    // The sandbox rule and a folder's message apply before the file is probed.
    let file = crate::io::open_read(op, path)?;
    if hdf5::is_hdf5(path) {
        // v7.3: each variable is a dataset; HDF5 (C order) lists MATLAB's
        // dimensions reversed, so the values already are column-major.
        let h = H5::open(op, path)?;
        return names
            .iter()
            .map(|&n| {
                if !h.has_dataset(n) {
                    return Err(Error::format(
                        op,
                        path,
                        format!(
                            "no variable '{n}' (this MATLAB v7.3 file has: {})",
                            h.top_level().join(", ")
                        ),
                    ));
                }
                let (shape, data) = h.read_f64(n)?;
                Ok(MatArray {
                    dims: shape.into_iter().rev().collect(),
                    data,
                })
            })
            .collect();
    }
    let mat = matfile::MatFile::parse(std::io::BufReader::new(file)).map_err(|e| {
        Error::format(
            op,
            path,
            format!("not a readable MATLAB v5 .mat file ({e})"),
        )
    })?;
    names
        .iter()
        .map(|&n| {
            let a = mat.find_by_name(n).ok_or_else(|| {
                let have: Vec<&str> = mat.arrays().iter().map(|a| a.name()).collect();
                Error::format(
                    op,
                    path,
                    format!(
                        "no numeric variable '{n}' (the file has: {})",
                        have.join(", ")
                    ),
                )
            })?;
            Ok(MatArray {
                dims: a.size().clone(),
                data: numeric(a.data()),
            })
        })
        .collect()
}

fn numeric(d: &matfile::NumericData) -> Vec<f64> {
    use matfile::NumericData as N;
    match d {
        N::Int8 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::UInt8 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::Int16 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::UInt16 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::Int32 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::UInt32 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::Int64 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::UInt64 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::Single { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::Double { real, .. } => real.clone(),
    }
}
