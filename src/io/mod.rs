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

/// Opens `path` for reading: the one place voxlab's loaders open a file.
/// It applies the `--sandbox` read rule and refuses a folder with a plain
/// message (a folder opens like a file on Linux, and reading it would
/// otherwise surface as "file too short" or a format error).
pub fn open_read(op: &'static str, path: &Path) -> Result<std::fs::File> {
    crate::sandbox::check_read(op, path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(op, path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(op, path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            op,
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is a directory, not a file",
            ),
        ));
    }
    Ok(file)
}

/// The whole content of a file, through [`open_read`].
pub fn read_bytes(op: &'static str, path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = open_read(op, path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(op, path, e))?;
    Ok(bytes)
}

/// A text file's content, through [`open_read`].
pub fn read_text(op: &'static str, path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = open_read(op, path)?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| Error::io(op, path, e))?;
    Ok(text)
}

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
