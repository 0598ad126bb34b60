//! Where heavy work runs: device choice, libtorch's CUDA library, threads.
//!
//! libtorch_cuda is loaded at start-up only when an NVIDIA driver is present.
//! Linking it unconditionally costs ~0.1 s and ~350 MB of memory at every start
//! on CPU-only machines (measured), for nothing; opening it with dlopen runs its
//! static initialisers exactly as linking would, so `tch::Cuda::is_available()`
//! becomes true on a GPU machine. The library is found through the binary's
//! rpath (set by build.rs) or LD_LIBRARY_PATH.

use std::cell::Cell;
use std::sync::OnceLock;

use crate::error::{Error, Result};

thread_local! {
    static CURRENT: Cell<Option<tch::Device>> = const { Cell::new(None) };
}

static CUDA_LOAD: OnceLock<CudaLoad> = OnceLock::new();

/// What happened when voxlab looked for libtorch's CUDA library.
#[derive(Debug, Clone)]
pub enum CudaLoad {
    /// No NVIDIA driver on this machine; the library was not opened.
    NoDriver,
    Loaded,
    /// A driver is present but libtorch_cuda.so could not be opened.
    Failed(String),
}

fn nvidia_driver_present() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists()
        || std::path::Path::new("/dev/nvidiactl").exists()
}

/// Opens libtorch_cuda.so when a GPU driver is present. Idempotent; call it
/// before any other libtorch call.
pub fn init_cuda() -> &'static CudaLoad {
    CUDA_LOAD.get_or_init(|| {
        if std::env::var_os("VOXLAB_NO_CUDA").is_some() || !nvidia_driver_present() {
            return CudaLoad::NoDriver;
        }
        let name = c"libtorch_cuda.so";
        // SAFETY: dlopen with a valid NUL-terminated name; the handle is kept
        // open for the life of the process on purpose.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns a pointer to a static NUL-terminated string or null.
            let msg = unsafe {
                let e = libc::dlerror();
                if e.is_null() {
                    "unknown dlopen error".to_string()
                } else {
                    std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
                }
            };
            CudaLoad::Failed(msg)
        } else {
            CudaLoad::Loaded
        }
    })
}

pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

/// The device new tensors go to: CUDA when available unless `set_device`
/// chose otherwise.
pub fn current() -> tch::Device {
    CURRENT.with(|c| {
        c.get().unwrap_or_else(|| {
            let d = if cuda_available() {
                tch::Device::Cuda(0)
            } else {
                tch::Device::Cpu
            };
            c.set(Some(d));
            d
        })
    })
}

pub fn name(device: tch::Device) -> String {
    match device {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(0) => "cuda".into(),
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Parses "cpu", "cuda" or "cuda:N", checking that CUDA is there.
pub fn parse(op: &'static str, text: &str) -> Result<tch::Device> {
    let device = match text {
        "cpu" => tch::Device::Cpu,
        "cuda" | "gpu" => tch::Device::Cuda(0),
        other => match other
            .strip_prefix("cuda:")
            .and_then(|i| i.parse::<usize>().ok())
        {
            Some(i) => tch::Device::Cuda(i),
            None => {
                return Err(Error::invalid(
                    op,
                    format!("expected a device \"cpu\", \"cuda\" or \"cuda:N\", got \"{other}\""),
                ))
            }
        },
    };
    if let tch::Device::Cuda(i) = device {
        let count = tch::Cuda::device_count() as usize;
        if i >= count {
            return Err(Error::invalid(
                op,
                format!(
                    "device \"{text}\" is not available: this machine has {count} CUDA device(s)"
                ),
            ));
        }
    }
    Ok(device)
}

pub fn set_current(device: tch::Device) {
    CURRENT.with(|c| c.set(Some(device)));
}

/// Number of threads libtorch and rayon use (default: all cores, or
/// VOXLAB_THREADS).
pub fn init_threads(threads: Option<usize>) {
    let n = threads
        .or_else(|| std::env::var("VOXLAB_THREADS").ok()?.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, max_threads());
    // Fails only when the global pool exists already (a second init in tests).
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    // After the pool: in this libtorch the setting is process-wide, and a
    // worker that set it would change it for everyone.
    tch::set_num_threads(n as i32);
}

/// Most threads a script may ask for: 4 × the machine's cores. More only
/// slow the work down, and libtorch creates them all at once (100,000
/// threads hang the machine).
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn set_threads(n: usize) {
    tch::set_num_threads(n.max(1) as i32);
}

pub fn threads() -> usize {
    tch::get_num_threads().max(1) as usize
}

/// Seeds libtorch's generators (CPU and CUDA) so that the same seed gives the
/// same numbers on the same device.
pub fn seed(seed: i64) {
    tch::manual_seed(seed);
    if cuda_available() {
        tch::Cuda::manual_seed_all(seed as u64);
    }
}
