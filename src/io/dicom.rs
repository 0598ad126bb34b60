//! DICOM → NIfTI through Chris Rorden's dcm2niix (the converter the field
//! uses; the PyPI package `dcm2niix` ships it and `make env` installs it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::error::{Error, Result};

/// Where dcm2niix is looked for: `$VOXLAB_DCM2NIIX` alone when it is set;
/// otherwise next to the active virtual environment's python
/// (`$VIRTUAL_ENV/bin`), next to the environment voxlab was built with, then
/// every folder on `PATH`.
pub fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("VOXLAB_DCM2NIIX") {
        out.push(PathBuf::from(p));
        return out;
    }
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        out.push(Path::new(&v).join("bin/dcm2niix"));
    }
    if let Some(v) = option_env!("VIRTUAL_ENV") {
        out.push(Path::new(v).join("bin/dcm2niix"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        out.extend(std::env::split_paths(&path).map(|d| d.join("dcm2niix")));
    }
    out
}

pub fn find_dcm2niix() -> Option<PathBuf> {
    candidates().into_iter().find(|p| p.is_file())
}

fn snapshot(dir: &Path) -> HashMap<PathBuf, (SystemTime, u64)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((e.path(), (m.modified().ok()?, m.len())))
        })
        .collect()
}

fn is_nifti(p: &Path) -> bool {
    let name = p.to_string_lossy();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// Converts every DICOM series under `dir` (dcm2niix searches 5 folders
/// deep) into gzipped NIfTI files with BIDS JSON sidecars in `out_dir`
/// (created if needed), named by dcm2niix's default `%f_%p_%t_%s`. Returns
/// the NIfTI files written, sorted.
pub fn dicom_to_nifti(op: &'static str, dir: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    crate::sandbox::check_read(op, dir)?;
    if !dir.is_dir() {
        return Err(Error::invalid(
            op,
            format!("{}: not a folder", dir.display()),
        ));
    }
    let exe = find_dcm2niix().ok_or_else(|| {
        let looked: Vec<String> = candidates()
            .iter()
            .take(3)
            .map(|p| p.display().to_string())
            .collect();
        Error::invalid(
            op,
            format!(
                "dcm2niix was not found (looked at {}{}); install it with `pip install dcm2niix` or `make env`, or set VOXLAB_DCM2NIIX",
                looked.join(", "),
                if candidates().len() > 3 { " and the rest of PATH" } else { "" }
            ),
        )
    })?;
    crate::sandbox::check_write(op, out_dir.as_ref())?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(op, out_dir, e))?;
    let before = snapshot(out_dir);
    let out = Command::new(&exe)
        .args(["-z", "y", "-b", "y", "-o"])
        .arg(out_dir)
        .arg(dir)
        .output()
        .map_err(|e| Error::io(op, &exe, e))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = snapshot(out_dir)
            .into_iter()
            .filter(|(p, stamp)| is_nifti(p) && before.get(p) != Some(stamp))
            .map(|(p, _)| p)
            .collect();
        v.sort();
        v
    };
    if written.is_empty() {
        let reason = text
            .lines()
            .find(|l| l.contains("Error") || l.contains("Unable to find"))
            .unwrap_or("it wrote no NIfTI file")
            .trim()
            .to_string();
        let reason = if !out.status.success() && reason.contains("Unable to find any DICOM") {
            format!("no DICOM images found: {reason}")
        } else {
            reason
        };
        return Err(Error::invalid(
            op,
            format!(
                "dcm2niix ({}) converted nothing in {}: {reason}",
                exe.display(),
                dir.display()
            ),
        ));
    }
    Ok(written)
}
