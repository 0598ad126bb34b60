//! The one way work stops early: a deadline (`--max-seconds`), a memory
//! ceiling (`--max-memory`) and the interrupt signals (SIGINT, SIGTERM,
//! SIGHUP) all end in one stop flag.
//!
//! The flag is cheap to read (one relaxed atomic load until something asks for a stop), so the engine reads
//! it on every Rhai operation and long primitives read it between their steps
//! (permutations, folds, epochs, batches, chunks, kernel taps, sampling
//! steps) through [`check`]. A watchdog thread, started only when a run has a
//! deadline or a memory ceiling, compares the clock and the process's
//! resident size with the limits every [`WATCH_INTERVAL`] and raises the
//! flag; nothing on the hot path reads the clock or /proc.
//!
//! Allocations whose size is known in advance (tensor constructors, loaders,
//! kernels, simulated data) ask [`reserve`] first: a size that would pass the
//! ceiling or the machine's available memory is refused with a clear error
//! instead of being attempted (a failed allocation aborts the process).
//!
//! Signals: the first one marks the run interrupted and raises the flag (a
//! training loop that handles interrupts itself, see [`InterruptHandledHere`],
//! stops after its current step instead and the script goes on); a second
//! one ends the process at once with 128 + the signal's number.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often the watchdog compares the clock and the resident size with the
/// limits (a run stops within about this long of passing a limit, plus the
/// time the current step of a primitive takes).
pub const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// Why work stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// A signal (its number) interrupted the run.
    Interrupted(i32),
    /// `--max-seconds` passed.
    Deadline(f64),
    /// `--max-memory` (MB) passed.
    Memory(u64),
}

impl Stop {
    /// The short name run.json records under `stopped_by`.
    pub fn key(&self) -> String {
        match self {
            Stop::Interrupted(sig) => signal_name(*sig).to_string(),
            Stop::Deadline(_) => "max_seconds".into(),
            Stop::Memory(_) => "max_memory".into(),
        }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Interrupted(sig) => write!(f, "interrupted by {}", signal_name(*sig)),
            Stop::Deadline(s) => write!(f, "it ran longer than --max-seconds {s}"),
            Stop::Memory(mb) => write!(f, "memory use passed --max-memory {mb} MB"),
        }
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

// ---------------------------------------------------------------------------
// Signals (process-wide).

/// The first signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Whether that signal stops work at the next check (false when a training
/// loop took it over).
static SIGNAL_STOPS: AtomicBool = AtomicBool::new(false);
/// How many training loops are running that stop themselves on an interrupt.
static HANDLED_HERE: AtomicUsize = AtomicUsize::new(0);
static HANDLERS: std::sync::Once = std::sync::Once::new();
/// Raised once anything in the process asked for a stop (a signal, a limit);
/// until then the per-operation check is this one relaxed load.
static RAISED: AtomicBool = AtomicBool::new(false);

fn raise() {
    RAISED.store(true, Ordering::SeqCst);
}

fn note_signal(sig: i32) {
    if SIGNAL
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        SIGNAL_STOPS.store(HANDLED_HERE.load(Ordering::SeqCst) == 0, Ordering::SeqCst);
        raise();
    }
}

/// Set while the REPL waits for input: nothing is running that could stop
/// politely, so SIGTERM and SIGHUP end the process as they usually do.
static IDLE: AtomicBool = AtomicBool::new(false);

/// The REPL says whether it is waiting for input (see [`IDLE`]).
pub fn set_idle(idle: bool) {
    IDLE.store(idle, Ordering::SeqCst);
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Only atomics and _exit: async-signal-safe.
    let idle_end = sig != libc::SIGINT && IDLE.load(Ordering::SeqCst);
    if idle_end || SIGNAL.load(Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe and ends the process at once.
        unsafe { libc::_exit(128 + sig) };
    }
    note_signal(sig);
}

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP (once per process;
/// the command line does it, library users and tests do not).
pub fn install_signal_handlers() {
    HANDLERS.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: sigaction with a zeroed, then filled struct; the
            // handler only touches atomics and calls _exit.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
        }
    });
}

/// The signal that interrupted this run, if any (also when a training loop
/// took it over and the script went on).
pub fn interrupt_signal() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Marks the run interrupted as SIGINT does (tests, and Ctrl-C handling that
/// arrives by other means).
pub fn request_interrupt() {
    note_signal(libc::SIGINT);
}

/// Forgets an interrupt (the REPL, before the next input).
pub fn clear_interrupt() {
    SIGNAL_STOPS.store(false, Ordering::SeqCst);
    SIGNAL.store(0, Ordering::SeqCst);
}

/// While alive, an interrupt does not stop work at the next check: the
/// training loop that holds it stops itself after its current step, keeps
/// its best weights, and the script continues.
pub struct InterruptHandledHere(());

impl InterruptHandledHere {
    pub fn new() -> Self {
        HANDLED_HERE.fetch_add(1, Ordering::SeqCst);
        InterruptHandledHere(())
    }
}

impl Default for InterruptHandledHere {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for InterruptHandledHere {
    fn drop(&mut self) {
        HANDLED_HERE.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------
// Limits of one run (one engine).

const NONE: u8 = 0;
const DEADLINE: u8 = 1;
const MEMORY: u8 = 2;

/// The stop flag of one run with its limits.
#[derive(Debug)]
pub struct Token {
    reason: AtomicU8,
    max_seconds: Option<f64>,
    max_memory_mb: Option<u64>,
    started: Instant,
}

impl Token {
    /// A token for a run with these limits; starts the watchdog when there
    /// is a deadline or a memory ceiling.
    pub fn new(max_seconds: Option<f64>, max_memory_mb: Option<u64>) -> Arc<Token> {
        let token = Arc::new(Token {
            reason: AtomicU8::new(NONE),
            max_seconds,
            max_memory_mb,
            started: Instant::now(),
        });
        if max_seconds.is_some() || max_memory_mb.is_some() {
            let weak = Arc::downgrade(&token);
            let _ = std::thread::Builder::new()
                .name("voxlab-watchdog".into())
                .spawn(move || watch(weak));
        }
        token
    }

    /// Why work must stop now, if it must. One relaxed load while nothing
    /// asked for a stop.
    #[inline]
    pub fn stop(&self) -> Option<Stop> {
        if !RAISED.load(Ordering::Relaxed) {
            return None;
        }
        if SIGNAL_STOPS.load(Ordering::Relaxed) {
            return Some(Stop::Interrupted(SIGNAL.load(Ordering::SeqCst)));
        }
        self.limit_stop()
    }

    /// A limit that has passed (not a signal).
    #[inline]
    pub fn limit_stop(&self) -> Option<Stop> {
        match self.reason.load(Ordering::Relaxed) {
            NONE => None,
            DEADLINE => Some(Stop::Deadline(self.max_seconds.unwrap_or(0.0))),
            _ => Some(Stop::Memory(self.max_memory_mb.unwrap_or(0))),
        }
    }

    pub fn max_memory_mb(&self) -> Option<u64> {
        self.max_memory_mb
    }
}

fn watch(token: Weak<Token>) {
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        let Some(t) = token.upgrade() else { return };
        if t.reason.load(Ordering::Relaxed) != NONE {
            return;
        }
        if t.max_seconds
            .is_some_and(|s| t.started.elapsed().as_secs_f64() > s)
        {
            t.reason.store(DEADLINE, Ordering::SeqCst);
            raise();
            return;
        }
        if let Some(limit) = t.max_memory_mb {
            if resident_bytes().is_some_and(|b| b > limit * MIB) {
                t.reason.store(MEMORY, Ordering::SeqCst);
                raise();
                return;
            }
        }
    }
}

thread_local! {
    /// The token of the run evaluating on this thread.
    static CURRENT: RefCell<Option<Arc<Token>>> = const { RefCell::new(None) };
}

/// Makes `token` the current run's on this thread until the guard drops.
pub fn enter(token: Arc<Token>) -> Entered {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(token));
    Entered { previous }
}

pub struct Entered {
    previous: Option<Arc<Token>>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// The current run's token on this thread (to hand to worker threads).
pub fn current() -> Option<Arc<Token>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Why work must stop now, if it must (for the current run on this thread).
pub fn stop_reason() -> Option<Stop> {
    if !RAISED.load(Ordering::Relaxed) {
        return None;
    }
    let by_signal = SIGNAL_STOPS.load(Ordering::Relaxed);
    if by_signal {
        return Some(Stop::Interrupted(SIGNAL.load(Ordering::SeqCst)));
    }
    CURRENT.with(|c| c.borrow().as_ref().and_then(|t| t.limit_stop()))
}

/// Long primitives call this between steps: an error naming `op` and the
/// reason once the run must stop.
#[inline]
pub fn check(op: &'static str) -> Result<()> {
    match stop_reason() {
        None => Ok(()),
        Some(stop) => Err(Error::Stopped { op, stop }),
    }
}

/// Like [`check`], but a limit only (training loops handle signals themselves).
pub fn check_limits(op: &'static str) -> Result<()> {
    match CURRENT.with(|c| c.borrow().as_ref().and_then(|t| t.limit_stop())) {
        None => Ok(()),
        Some(stop) => Err(Error::Stopped { op, stop }),
    }
}

// ---------------------------------------------------------------------------
// Memory.

const MIB: u64 = 1024 * 1024;

/// Resident size of this process in bytes (Linux).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some(pages * page)
}

/// Memory the machine can still give (MemAvailable, Linux), in bytes.
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// "512 MB", "3.2 GB", for messages.
pub fn size_text(bytes: f64) -> String {
    let mb = bytes / MIB as f64;
    if mb >= 1024.0 * 1024.0 {
        format!("{:.1} TB", mb / (1024.0 * 1024.0))
    } else if mb >= 1024.0 {
        format!("{:.1} GB", mb / 1024.0)
    } else {
        format!("{mb:.0} MB")
    }
}

/// Refuses, before it is attempted, an allocation of `bytes` (f64, so that
/// products of huge counts do not overflow) that would pass the run's
/// `--max-memory` or the memory this machine has available. `what` says
/// what would be allocated ("a float32 tensor of shape [125, 1000, 1000]").
pub fn reserve(op: &'static str, what: &str, bytes: f64) -> Result<()> {
    if !bytes.is_finite() || bytes < 0.0 {
        return Err(Error::invalid(
            op,
            format!("{what}: its size is not a number"),
        ));
    }
    // Small allocations are not worth reading /proc for.
    if bytes < 16.0 * MIB as f64 {
        return Ok(());
    }
    if let Some(token) = current() {
        if let Some(limit) = token.max_memory_mb {
            let used = resident_bytes().unwrap_or(0) as f64;
            if used + bytes > (limit * MIB) as f64 {
                token.reason.store(MEMORY, Ordering::SeqCst);
                raise();
                return Err(Error::invalid(
                    op,
                    format!(
                        "{what} needs {}; with {} in use that passes --max-memory {limit} MB",
                        size_text(bytes),
                        size_text(used)
                    ),
                ));
            }
        }
    }
    if let Some(free) = available_bytes() {
        if bytes > free as f64 {
            return Err(Error::invalid(
                op,
                format!(
                    "{what} needs {}, more than the {} this machine has available",
                    size_text(bytes),
                    size_text(free as f64)
                ),
            ));
        }
    }
    Ok(())
}

/// Bytes per element of a tensor kind.
pub fn kind_bytes(kind: tch::Kind) -> f64 {
    kind.elt_size_in_bytes() as f64
}

/// [`reserve`] for a tensor of `shape` and `kind`.
pub fn reserve_tensor(op: &'static str, shape: &[i64], kind: tch::Kind) -> Result<()> {
    let numel: f64 = shape.iter().map(|&d| d.max(0) as f64).product();
    reserve(
        op,
        &format!(
            "a {} tensor of shape {shape:?}",
            crate::tensor::kind_name(kind)
        ),
        numel * kind_bytes(kind),
    )
}
