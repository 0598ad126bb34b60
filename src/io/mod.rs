//! Reading and writing files: NIfTI, images, npy arrays, CSV tables, JSON.
pub mod dicom;
pub mod hdf5;
pub mod images;
pub mod mat;
pub mod nifti;
pub mod npy;
pub mod safetensors;
pub mod table;

use std::path::Path;

use crate::error::{Error, Result};

/// Writes a file so that readers never see it half-written: a temporary file
/// in the same folder, then a rename.
pub fn write_atomic(op: &'static str, path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::sandbox::check_write(op, dir.as_ref())?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(op, dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(op, &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(op, path, e)
    })
}
