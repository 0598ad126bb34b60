//! run.json: the record every `voxlab run` leaves in its output folder,
//! written atomically (temporary file + rename), also when the script fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::engine::Session;

/// Format version of run.json; bump when fields change meaning.
pub const RECORD_FORMAT: u32 = 1;

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// UTC time as RFC 3339 ("2026-11-23T19:12:05Z"), without a date crate.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// "20261123-191205" for folder names.
pub fn compact_timestamp(t: SystemTime) -> String {
    rfc3339(t)
        .replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string()
}

/// "20261123-191205-042": [`compact_timestamp`] with milliseconds.
pub fn compact_timestamp_ms(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .subsec_millis();
    format!("{}-{ms:03}", compact_timestamp(t))
}

/// Days since 1970-01-01 to (year, month, day) — Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub struct RunInfo<'a> {
    pub script: &'a Path,
    pub script_text: &'a str,
    pub started: SystemTime,
    pub duration: Duration,
    pub error: Option<&'a crate::cli::diagnostic::Diagnostic>,
    pub ending: Ending,
    pub args: &'a [String],
}

/// How a run ended, as run.json records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Ok,
    Failed,
    /// A signal stopped the script, or Ctrl-C stopped a training run (the
    /// script went on with the best weights so far).
    Interrupted(i32),
    /// A limit stopped the script: "max_seconds", "max_memory" or
    /// "max_operations".
    Stopped(String),
}

impl Ending {
    /// run.json's "status".
    pub fn status(&self) -> &'static str {
        match self {
            Ending::Ok => "ok",
            Ending::Failed => "failed",
            Ending::Interrupted(_) => "interrupted",
            Ending::Stopped(_) => "stopped",
        }
    }

    /// run.json's "stopped_by": the limit's name or the signal's.
    pub fn stopped_by(&self) -> Option<String> {
        match self {
            Ending::Interrupted(sig) => Some(crate::cancel::signal_name(*sig).to_string()),
            Ending::Stopped(limit) => Some(limit.clone()),
            _ => None,
        }
    }

    /// The exit code: 0, 1, or 128 + the signal's number as shells report it.
    pub fn exit_code(&self) -> i32 {
        match self {
            Ending::Ok => 0,
            Ending::Failed | Ending::Stopped(_) => 1,
            Ending::Interrupted(sig) => 128 + sig,
        }
    }
}

/// Exit code of a run Ctrl-C interrupted (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Builds the record from what the session saw.
pub fn build(info: &RunInfo, session: &Session) -> Value {
    let state = session.state();
    let out_dir = state.out_dir.clone();
    let files: Vec<Value> = state
        .files
        .iter()
        .map(|f| {
            let shown: PathBuf = f
                .strip_prefix(&out_dir)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| f.clone());
            Value::String(shown.display().to_string())
        })
        .collect();
    let metrics: Map<String, Value> = state.metrics.iter().cloned().collect();
    let params: Map<String, Value> = state
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let given: Map<String, Value> = state
        .given
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let error = info.error.map(|d| {
        json!({
            "message": d.message,
            "line": d.location.as_ref().map(|l| l.line),
            "column": d.location.as_ref().map(|l| l.column),
            "source": d.location.as_ref().and_then(|l| l.source.clone()),
        })
    });
    drop(state);
    let unused = session.unused_params();
    let device = crate::device::current();
    json!({
        "format": RECORD_FORMAT,
        "status": info.ending.status(),
        "stopped_by": info.ending.stopped_by(),
        "error": error,
        "script": {
            "path": info.script.display().to_string(),
            "sha256": sha256_hex(info.script_text.as_bytes()),
        },
        "command": info.args,
        "parameters": params,
        "set": given,
        "unused_set": unused,
        "seed": session.state().seed,
        "device": crate::device::name(device),
        "cuda_available": crate::device::cuda_available(),
        "threads": crate::device::threads(),
        "versions": {
            "voxlab": crate::VERSION,
            "rhai": crate::RHAI_VERSION,
            "libtorch": crate::LIBTORCH_VERSION,
            "tch": env!("VOXLAB_TCH_VERSION"),
        },
        "started": rfc3339(info.started),
        "duration_s": (info.duration.as_secs_f64() * 1000.0).round() / 1000.0,
        "metrics": metrics,
        "files": files,
    })
}

pub fn write(dir: &Path, record: &Value) -> crate::Result<PathBuf> {
    let path = dir.join("run.json");
    let text = serde_json::to_string_pretty(record)
        .map_err(|e| crate::Error::invalid("run", e.to_string()))?;
    crate::io::write_atomic("run", &path, format!("{text}\n").as_bytes())?;
    Ok(path)
}
