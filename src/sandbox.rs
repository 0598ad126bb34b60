//! What a script may touch in `--sandbox` mode (teaching labs, untrusted
//! scripts; any `--max-*` limit turns it on too).
//!
//! Reads are allowed inside the script's folder, the output folder and the
//! folders given with `--allow-read` (the stdlib is inside the binary);
//! writes only inside the output folder. Paths are resolved (symbolic links
//! and `..` included) before they are compared, so neither climbs out.
//! Every file access of a primitive passes through [`check_read`] or
//! [`check_write`]; outside sandbox mode both allow everything. Scripts have
//! no way to run a shell command at all (Rhai has none and voxlab adds none).

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::error::{Error, Result};

/// The folders a sandboxed run may read and write (resolved paths).
#[derive(Debug, Clone)]
pub struct Policy {
    pub read: Vec<PathBuf>,
    pub write: PathBuf,
}

static POLICY: RwLock<Option<Policy>> = RwLock::new(None);

/// Turns sandbox mode on for this process with these folders (the command
/// line does it once, before the script starts).
pub fn enable(script_dir: &Path, out_dir: &Path, allow_read: &[PathBuf]) -> Result<()> {
    const OP: &str = "--sandbox";
    let resolve = |p: &Path| std::fs::canonicalize(p).map_err(|e| Error::io(OP, p, e));
    let write = resolve(out_dir)?;
    let mut read = vec![resolve(script_dir)?, write.clone()];
    for p in allow_read {
        read.push(resolve(p)?);
    }
    if let Ok(mut policy) = POLICY.write() {
        *policy = Some(Policy { read, write });
    }
    Ok(())
}

/// Whether sandbox mode is on.
pub fn active() -> bool {
    POLICY.read().map(|p| p.is_some()).unwrap_or(false)
}

/// `path` with every existing ancestor resolved: the file itself may not
/// exist yet (a write), but the folders it would land in do.
fn resolved(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut tail = Vec::new();
    let mut head = absolute.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(head) {
            let mut out = real;
            for part in tail.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (head.parent(), head.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_os_string());
                head = parent;
            }
            // ".." or the root: keep it unresolved, which no rule allows.
            _ => return absolute,
        }
    }
}

fn refuse(op: &'static str, path: &Path, rule: &str) -> Error {
    Error::invalid(
        op,
        format!("{}: not allowed in --sandbox mode: {rule}", path.display()),
    )
}

/// Refuses `path` when sandbox mode is on and `allowed` says no.
fn check(
    op: &'static str,
    path: &Path,
    allowed: impl Fn(&Policy, &Path) -> bool,
    rule: &str,
) -> Result<()> {
    let Ok(guard) = POLICY.read() else {
        return Ok(());
    };
    let Some(policy) = guard.as_ref() else {
        return Ok(());
    };
    let real = resolved(path);
    if real
        .components()
        .any(|c| c == std::path::Component::ParentDir)
        || !allowed(policy, &real)
    {
        return Err(refuse(op, path, rule));
    }
    Ok(())
}

/// A primitive is about to read `path`.
pub fn check_read(op: &'static str, path: &Path) -> Result<()> {
    check(
        op,
        path,
        |p, real| p.read.iter().any(|root| real.starts_with(root)),
        "scripts read only inside the script's folder, the output folder and folders given with --allow-read",
    )
}

/// A primitive is about to write `path`.
pub fn check_write(op: &'static str, path: &Path) -> Result<()> {
    check(
        op,
        path,
        |p, real| real.starts_with(&p.write),
        "scripts write only inside the output folder",
    )
}
