//! The one error path from science code to scripts.
//!
//! Every registered function runs its body through [`guard`]: a science
//! [`Error`] becomes a Rhai runtime error (Rhai then fills in the call site's
//! line and column), and a panic inside a primitive is caught and reported the
//! same way, so a script stops politely and the REPL survives.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};

use rhai::{EvalAltResult, Position};

use crate::error::Error;

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

thread_local! {
    /// Where the last panic happened, captured by the hook for the report.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
    /// How many guards this thread is inside (a primitive calling back into
    /// the engine nests them).
    static GUARDED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Inside a guard, the panic hook only remembers where a panic happened:
/// [`guard`] reports it as a script error instead of a trace on stderr.
/// Elsewhere (the CLI's own code, a test's assertion in the same process)
/// the previous hook runs as before, so those messages are not lost.
pub fn install_panic_hook() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if GUARDED.with(|g| g.get()) == 0 {
            previous(info);
            return;
        }
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        PANIC_LOCATION.with(|p| *p.borrow_mut() = location);
    }));
}

/// Runs `f` counted as inside a guard (see [`install_panic_hook`]).
pub fn guarded<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    GUARDED.with(|g| g.set(g.get() + 1));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    r
}

/// A script-level runtime error with the message as it should be shown.
pub fn script_error(msg: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        msg.into().into(),
        Position::NONE,
    ))
}

pub fn to_rhai(err: Error) -> Box<EvalAltResult> {
    script_error(err.to_string())
}

/// Describes a caught panic payload without the word Rust uses for it.
pub fn describe_panic(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown failure".to_string());
    // libtorch's messages carry a C++ backtrace; keep the first line.
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let location = PANIC_LOCATION.with(|p| p.borrow_mut().take());
    match location {
        Some(loc) => format!("{first} (at {loc})"),
        None => first.to_string(),
    }
}

/// Runs a primitive's body: errors become script errors naming `op`, and a
/// panic becomes "op: internal error ..." instead of a crash.
pub fn guard<T>(op: &str, body: impl FnOnce() -> crate::error::Result<T>) -> RhaiResult<T> {
    crate::torch_warnings::running(op);
    match guarded(body) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(to_rhai(err)),
        Err(payload) => Err(script_error(format!(
            "{op}: internal error: {} — this is a bug in voxlab, please report it",
            describe_panic(payload.as_ref())
        ))),
    }
}

/// Like [`guard`] for bodies that already speak Rhai's error type (those that
/// build Rhai values or call back into the engine).
pub fn guard_rhai<T>(op: &str, body: impl FnOnce() -> RhaiResult<T>) -> RhaiResult<T> {
    crate::torch_warnings::running(op);
    match guarded(body) {
        Ok(result) => result,
        Err(payload) => Err(script_error(format!(
            "{op}: internal error: {} — this is a bug in voxlab, please report it",
            describe_panic(payload.as_ref())
        ))),
    }
}
