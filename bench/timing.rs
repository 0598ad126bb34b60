//! What the training-throughput examples share (included with `#[path]`).

/// CPU time of the whole process (all threads), which other programs on a
/// shared machine do not inflate as they do wall time.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// The threads of VOXLAB_THREADS (default 2) for libtorch and seed 0; returns
/// the thread count.
pub fn setup() -> i32 {
    let threads: i32 = std::env::var("VOXLAB_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    threads
}
