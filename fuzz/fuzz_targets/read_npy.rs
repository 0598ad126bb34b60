//! Arbitrary bytes as a `.npy` file through `load_npy`: magic, version,
//! header dict (descr, fortran_order, shape), sizes against the file, and
//! data decoding. Any panic, an allocation over `-rss_limit_mb` or a hang is
//! a bug: the reader must return an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use voxlab::io::npy::load_npy;

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("voxlab-fuzz-npy-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d.join("in.npy")
}

fuzz_target!(|data: &[u8]| {
    let p = scratch();
    std::fs::write(&p, data).expect("write fuzz input");
    if let Ok(t) = load_npy(&p) {
        let numel: i64 = t.shape().iter().product();
        assert_eq!(numel as usize, t.numel());
    }
});
