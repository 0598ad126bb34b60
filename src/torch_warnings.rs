//! libtorch's own warnings come through voxlab's warning path.
//!
//! An operation libtorch only warns about (`std` with no degrees of freedom
//! left, a deprecated argument, ...) would print its raw line on stderr,
//! `[W1201 12:00:00.000 ReduceOps.cpp:1831] Warning: std(): degrees of
//! freedom is <= 0 ...`, with a C++ file and line that mean nothing to a
//! scientist. A small C++ handler (csrc/torch_warnings.cpp, built by
//! build.rs) replaces c10's default one and hands each message here; it is
//! printed as voxlab's warnings are, `warning: OP: message`, naming the
//! script function that was running.

use std::cell::{Cell, RefCell};
use std::io::Write;

extern "C" {
    fn voxlab_route_torch_warnings();
}

thread_local! {
    /// Whether this thread's libtorch warnings come here already.
    static ROUTED: Cell<bool> = const { Cell::new(false) };
    /// The script function running on this thread (for the message).
    static RUNNING: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Called before each primitive runs: routes this thread's libtorch
/// warnings here (once per thread) and notes the primitive's name.
pub fn running(op: &str) {
    ROUTED.with(|routed| {
        if !routed.get() {
            // SAFETY: installs a handler object with static lifetime; no
            // arguments, callable from any thread.
            unsafe { voxlab_route_torch_warnings() };
            routed.set(true);
        }
    });
    RUNNING.with(|r| {
        if let Ok(mut name) = r.try_borrow_mut() {
            name.clear();
            name.push_str(op);
        }
    });
}

/// The line voxlab prints for a libtorch warning `msg` raised while `op`
/// ran: its first line, without libtorch's "Warning: " prefix.
pub fn message(op: &str, msg: &str) -> String {
    let first = msg
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let first = first.strip_prefix("Warning: ").unwrap_or(first);
    if op.is_empty() {
        format!("warning: {first}")
    } else {
        format!("warning: {op}: {first}")
    }
}

/// Called by the C++ handler for each warning (on the thread that raised it).
#[no_mangle]
extern "C" fn voxlab_torch_warning(msg: *const std::os::raw::c_char, len: usize) {
    if msg.is_null() {
        return;
    }
    // SAFETY: the handler passes a std::string's data and size, alive for
    // the duration of this call.
    let bytes = unsafe { std::slice::from_raw_parts(msg as *const u8, len) };
    let text = String::from_utf8_lossy(bytes);
    let op = RUNNING.with(|r| r.try_borrow().map(|s| s.clone()).unwrap_or_default());
    // No panic may cross back into C++: write errors are ignored.
    let _ = writeln!(std::io::stderr(), "{}", message(&op, &text));
}
