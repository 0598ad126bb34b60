//! Arbitrary bytes as a `.nii` file through the whole reader: header parse,
//! size checks, extension parsing, data decoding, and (when the bytes start
//! with the gzip magic) the gzip path. Any panic, an allocation over
//! `-rss_limit_mb` or a hang is a bug: the reader must return an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use voxlab::io::nifti::read_nifti;

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("voxlab-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d.join("in.nii")
}

fuzz_target!(|data: &[u8]| {
    let p = scratch();
    std::fs::write(&p, data).expect("write fuzz input");
    if let Ok(img) = read_nifti(&p, false) {
        assert_eq!(img.data.len(), img.dims.iter().product::<usize>());
        // the f64 path decodes with other conversions: only worth it when
        // the f32 read got that far
        let img64 = read_nifti(&p, true).expect("f32 read worked, f64 must too");
        assert_eq!(img64.dims, img.dims);
    }
});
