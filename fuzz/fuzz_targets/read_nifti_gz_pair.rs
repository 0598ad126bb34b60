//! Structured variants of the input, so the fuzzer mutates *uncompressed*
//! NIfTI bytes but the reader sees them through gzip and `.hdr`/`.img`
//! pairs:
//!
//! `data[0] & 3` picks the layout, `data[1..3]` (u16 LE) a split point,
//! the rest is the body.
//!   0: body gzipped -> `g.nii.gz`
//!   1: `p.hdr` = body[..split], `p.img` = body[split..] (plain pair)
//!   2: the same pair, both gzipped (`z.hdr.gz` / `z.img.gz`)
//!   3: body as two gzip members split at `split` -> `m.nii.gz`
//! `data[0] & 4` reads a pair through its image file instead of its header.
#![no_main]

use flate2::{write::GzEncoder, Compression};
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::path::{Path, PathBuf};
use voxlab::io::nifti::read_nifti;

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("voxlab-fuzz-gz-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn gz(raw: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(raw).expect("gzip");
    e.finish().expect("gzip")
}

fn check(p: &Path) {
    if let Ok(img) = read_nifti(p, false) {
        assert_eq!(img.data.len(), img.dims.iter().product::<usize>());
        let img64 = read_nifti(p, true).expect("f32 read worked, f64 must too");
        assert_eq!(img64.dims, img.dims);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let mode = data[0];
    let body = &data[3..];
    let split = (u16::from_le_bytes([data[1], data[2]]) as usize).min(body.len());
    let (head, tail) = body.split_at(split);
    let d = scratch();
    let via_img = mode & 4 != 0;
    let w = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).expect("write fuzz input");
        p
    };
    match mode & 3 {
        0 => check(&w("g.nii.gz", &gz(body))),
        1 => {
            let h = w("p.hdr", head);
            let i = w("p.img", tail);
            check(if via_img { &i } else { &h });
        }
        2 => {
            let h = w("z.hdr.gz", &gz(head));
            let i = w("z.img.gz", &gz(tail));
            check(if via_img { &i } else { &h });
        }
        _ => {
            let mut two = gz(head);
            two.extend_from_slice(&gz(tail));
            check(&w("m.nii.gz", &two));
        }
    }
});
