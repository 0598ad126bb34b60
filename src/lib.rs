//! voxlab: a scripting workbench for neural-decoding science.
//!
//! Science lives in plain Rust modules (`io`, `plot`, and later `stats`,
//! `data`, `models`, `eval`) that know nothing of scripts; `engine` exposes
//! them to Rhai, one registration file per domain; `cli` is the command line,
//! the REPL and the run records.

pub mod cancel;
pub mod cli;
pub mod data;
pub mod device;
pub mod engine;
pub mod error;
pub mod eval;
pub mod io;
pub mod models;
pub mod numfmt;
pub mod plot;
pub mod random;
pub mod sandbox;
pub mod stats;
pub mod tensor;
pub mod torch_warnings;

pub use error::{Error, Result};

/// voxlab's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Rhai version compiled in.
pub const RHAI_VERSION: &str = env!("VOXLAB_RHAI_VERSION");
/// The libtorch version linked against (from the torch wheel).
pub const LIBTORCH_VERSION: &str = env!("VOXLAB_LIBTORCH_VERSION");
