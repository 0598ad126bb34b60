//! HDF5 files as the public datasets ship them (bdpy's BData, NSD's betas
//! and stimulus brick, MATLAB v7.3 files), read through the pure-Rust
//! `hdf5-reader` (docs/design-notes.md says why this reader). Every failure
//! becomes a [`Error::Format`] naming the file and the dataset inside it.

use std::path::{Path, PathBuf};

use hdf5_reader::{Datatype, Hdf5File, SliceInfo, SliceInfoElem};

use crate::error::{Error, Result};

/// An open HDF5 file and the function that asked for it (for messages).
pub struct H5 {
    file: Hdf5File,
    pub path: PathBuf,
    op: &'static str,
}

/// The signature every HDF5 file has at offset 0, 512, 1024, … (a MATLAB
/// v7.3 file keeps a 512-byte text header before it).
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// True if the file starts (or, after a 512-byte user block, continues) with
/// the HDF5 signature.
pub fn is_hdf5(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    for offset in [0u64, 512, 1024, 2048] {
        let mut sig = [0u8; 8];
        if f.seek(SeekFrom::Start(offset)).is_err() || f.read_exact(&mut sig).is_err() {
            return false;
        }
        if &sig == SIGNATURE {
            return true;
        }
    }
    false
}

impl H5 {
    pub fn open(op: &'static str, path: &Path) -> Result<H5> {
        if !path.exists() {
            return Err(Error::io(
                op,
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        crate::io::open_read(op, path)?;
        if !is_hdf5(path) {
            return Err(Error::format(
                op,
                path,
                "not an HDF5 file (no HDF5 signature)",
            ));
        }
        let file = Hdf5File::open(path)
            .map_err(|e| Error::format(op, path, format!("cannot read this HDF5 file: {e}")))?;
        Ok(H5 {
            file,
            path: path.to_path_buf(),
            op,
        })
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::format(self.op, &self.path, msg)
    }

    /// True if `name` is a dataset of the file.
    pub fn has_dataset(&self, name: &str) -> bool {
        self.file.dataset(name).is_ok()
    }

    /// True if `name` is a group of the file.
    pub fn has_group(&self, name: &str) -> bool {
        self.file.group(name).is_ok()
    }

    /// The names of the datasets and groups at the top of the file (for
    /// messages saying what a file holds instead).
    pub fn top_level(&self) -> Vec<String> {
        let Ok(root) = self.file.root_group() else {
            return Vec::new();
        };
        match root.member_names() {
            Ok((groups, datasets)) => {
                let mut all: Vec<String> = groups.into_iter().map(|g| g + "/").collect();
                all.extend(datasets);
                all.sort();
                all
            }
            Err(_) => Vec::new(),
        }
    }

    /// Dataset and subgroup names of the group `name`.
    pub fn members(&self, name: &str) -> Result<(Vec<String>, Vec<String>)> {
        let g = self
            .file
            .group(name)
            .map_err(|e| self.err(format!("no group '{name}': {e}")))?;
        g.member_names()
            .map_err(|e| self.err(format!("group '{name}': {e}")))
    }

    fn dataset(&self, name: &str) -> Result<hdf5_reader::Dataset> {
        self.file
            .dataset(name)
            .map_err(|_| self.err(format!("no dataset '{name}'")))
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self
            .dataset(name)?
            .shape()
            .iter()
            .map(|&d| d as usize)
            .collect())
    }

    /// A numeric dataset, whole, as f64 in C order, with its shape.
    pub fn read_f64(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>)> {
        let ds = self.dataset(name)?;
        let n = ds.ndim();
        self.read_numeric(name, &ds, &SliceInfo::all(n))
    }

    /// Part of a numeric dataset: `index` along axis 0 (that axis dropped),
    /// everything along the others; f64 in C order with the part's shape.
    pub fn read_f64_at(&self, name: &str, index: usize) -> Result<(Vec<usize>, Vec<f64>)> {
        let ds = self.dataset(name)?;
        let shape = ds.shape().to_vec();
        if shape.is_empty() || index as u64 >= shape[0] {
            return Err(self.err(format!(
                "dataset '{name}' has {} entries along its first axis, entry {index} was asked for",
                shape.first().copied().unwrap_or(0)
            )));
        }
        let mut sel = SliceInfo::all(shape.len());
        sel.selections[0] = SliceInfoElem::Index(index as u64);
        self.read_numeric(name, &ds, &sel)
    }

    fn read_numeric(
        &self,
        name: &str,
        ds: &hdf5_reader::Dataset,
        sel: &SliceInfo,
    ) -> Result<(Vec<usize>, Vec<f64>)> {
        fn take<T: hdf5_reader::H5Type + Copy>(
            ds: &hdf5_reader::Dataset,
            sel: &SliceInfo,
            f: impl Fn(T) -> f64,
        ) -> std::result::Result<(Vec<usize>, Vec<f64>), hdf5_reader::error::Error> {
            let a = ds.read_slice::<T>(sel)?;
            Ok((a.shape().to_vec(), a.iter().map(|&x| f(x)).collect()))
        }
        let r = match ds.dtype() {
            Datatype::FloatingPoint { size: 8, .. } => take::<f64>(ds, sel, |x| x),
            Datatype::FloatingPoint { size: 4, .. } => take::<f32>(ds, sel, |x| x as f64),
            Datatype::FixedPoint {
                size, signed: true, ..
            } => match size {
                1 => take::<i8>(ds, sel, |x| x as f64),
                2 => take::<i16>(ds, sel, |x| x as f64),
                4 => take::<i32>(ds, sel, |x| x as f64),
                _ => take::<i64>(ds, sel, |x| x as f64),
            },
            Datatype::FixedPoint {
                size,
                signed: false,
                ..
            } => match size {
                1 => take::<u8>(ds, sel, |x| x as f64),
                2 => take::<u16>(ds, sel, |x| x as f64),
                4 => take::<u32>(ds, sel, |x| x as f64),
                _ => take::<u64>(ds, sel, |x| x as f64),
            },
            other => {
                return Err(self.err(format!(
                    "dataset '{name}' must be numeric, it holds {}",
                    type_name(other)
                )))
            }
        };
        r.map_err(|e| self.err(format!("dataset '{name}': {e}")))
    }

    /// A string dataset (fixed-length or variable-length, as h5py writes
    /// lists of bytes or str), one string per element, trailing NULs and
    /// spaces removed.
    pub fn read_strings(&self, name: &str) -> Result<Vec<String>> {
        let ds = self.dataset(name)?;
        let v = ds
            .read_strings()
            .map_err(|e| self.err(format!("dataset '{name}' must hold strings: {e}")))?;
        Ok(v.into_iter()
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .collect())
    }
}

fn type_name(t: &Datatype) -> &'static str {
    match t {
        Datatype::String { .. } => "strings",
        Datatype::Compound { .. } => "compound records",
        Datatype::Array { .. } => "arrays",
        Datatype::Enum { .. } => "enumerations",
        Datatype::VarLen { .. } => "variable-length values",
        _ => "a non-numeric type",
    }
}
