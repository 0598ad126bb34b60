//! The one error type of voxlab's science code.
//!
//! Science modules (`io`, `data`, `stats`, `models`, `eval`, `plot`) return
//! [`Result`]; the engine turns an [`Error`] into a Rhai runtime error in one
//! place (`engine::error`), and Rhai adds the script position. Every variant
//! names the operation (`op`, the script-facing function name) so a message
//! always says which function complained.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two inputs whose shapes must agree do not.
    #[error("{op}: {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        op: &'static str,
        what: String,
        expected: String,
        got: String,
    },
    /// An argument has an unusable value (out of range, wrong kind, empty...).
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
    /// An option key the function does not know.
    #[error("{op}: unknown option '{key}'; valid options are: {valid}")]
    UnknownOption {
        op: &'static str,
        key: String,
        valid: String,
    },
    /// An option given with the wrong type or an impossible value.
    #[error("{op}: option '{key}' expects {expected}, got {got}")]
    BadOption {
        op: &'static str,
        key: String,
        expected: String,
        got: String,
    },
    /// The operating system refused a file operation.
    #[error("{op}: {}: {}", .path.display(), plain_io(.source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what the format says.
    #[error("{op}: {path}: {msg}")]
    Format {
        op: &'static str,
        path: PathBuf,
        msg: String,
    },
    /// libtorch refused an operation; `msg` is the first line of its message.
    #[error("{op}: {msg}")]
    Torch { op: &'static str, msg: String },
    /// A limit or a signal stopped the run while `op` was working.
    #[error("{op}: script stopped: {stop}")]
    Stopped {
        op: &'static str,
        stop: crate::cancel::Stop,
    },
}

/// An operating-system error as a sentence ("No such file or directory"),
/// without Rust's " (os error 2)".
pub fn plain_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

impl Error {
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }

    pub fn shape(
        op: &'static str,
        what: impl Into<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Error::ShapeMismatch {
            op,
            what: what.into(),
            expected: expected.into(),
            got: got.into(),
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn format(op: &'static str, path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            op,
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// Wraps a libtorch error, keeping only the first line of its message
    /// (libtorch appends a C++ backtrace that means nothing to a scientist).
    pub fn torch(op: &'static str, err: tch::TchError) -> Self {
        let text = err.to_string();
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("libtorch error");
        let first = first.strip_prefix("Torch(\"").unwrap_or(first);
        Error::Torch {
            op,
            msg: first.trim_end_matches("\")").to_string(),
        }
    }
}
