//! NIfTI reader/writer against nibabel's reading of the fixtures in
//! tests/fixtures/nifti (made by make_nifti_fixtures.py) and of the real files
//! in ../shared/realdata/nifti.

use std::path::{Path, PathBuf};

use serde_json::Value;
use voxlab::error::Error;
use voxlab::io::nifti::{
    read_nifti, write_nifti, write_nifti_f64, HeaderValue, NiftiData, NiftiImage, WriteOptions,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nifti")
}

fn real_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realdata/nifti");
    if d.is_dir() {
        Some(d)
    } else {
        println!(
            "note: {} not found; real-file NIfTI checks skipped",
            d.display()
        );
        None
    }
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json"))
        .expect("tests/fixtures/nifti/expected.json");
    serde_json::from_str(&text).expect("valid expected.json")
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => panic!("not a number: {other}"),
    }
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(num).collect()
}

/// A scratch directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("voxlab-nifti-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn same_bits(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

fn check_affine(name: &str, img: &NiftiImage, want: &Value) {
    let rows = want.as_array().unwrap();
    for (i, row) in rows.iter().enumerate() {
        for (j, v) in nums(row).iter().enumerate() {
            assert!(
                close(img.affine[i][j], *v, 1e-6),
                "{name}: affine[{i}][{j}] = {} but nibabel says {v}\n{:?}",
                img.affine[i][j],
                img.affine
            );
        }
    }
}

fn values(img: &NiftiImage) -> Vec<f64> {
    img.data.to_f64_vec()
}

/// Checks one image against a nibabel record (case or real file).
fn check_against(name: &str, img: &NiftiImage, want: &Value, f64_data: bool) {
    let shape: Vec<usize> = want["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(img.dims, shape, "{name}: dims");
    assert_eq!(
        img.data.len(),
        shape.iter().product::<usize>(),
        "{name}: data length"
    );
    match (&img.data, f64_data) {
        (NiftiData::F64(_), true) | (NiftiData::F32(_), false) => {}
        _ => panic!("{name}: wrong data precision"),
    }
    check_affine(name, img, &want["affine"]);
    let zooms = nums(&want["zooms"]);
    assert_eq!(
        img.zooms.len(),
        zooms.len(),
        "{name}: zooms {:?} vs {zooms:?}",
        img.zooms
    );
    for (a, b) in img.zooms.iter().zip(&zooms) {
        assert!(
            close(*a, *b, 1e-12),
            "{name}: zooms {:?} vs {zooms:?}",
            img.zooms
        );
    }
    match want["tr"].as_f64() {
        Some(tr) => assert!(
            close(img.tr.unwrap_or(f64::NAN), tr, 1e-12),
            "{name}: tr {:?}",
            img.tr
        ),
        None => assert_eq!(img.tr, None, "{name}: tr"),
    }
    assert_eq!(
        img.datatype as i64,
        want["datatype"].as_i64().unwrap(),
        "{name}: datatype"
    );

    let got = values(img);
    // nibabel's get_fdata(float32) == get_fdata() rounded once to f32
    // (checked by the fixture script), so exact comparison in both modes.
    let expect = |v: f64| if f64_data { v } else { v as f32 as f64 };
    if let Some(data) = want.get("data") {
        let data = nums(data);
        assert_eq!(got.len(), data.len(), "{name}: value count");
        for (i, (g, w)) in got.iter().zip(&data).enumerate() {
            assert!(
                same_bits(*g, expect(*w)),
                "{name}: value {i} is {g}, nibabel says {}",
                expect(*w)
            );
        }
    }
    if let Some(samples) = want.get("samples") {
        for s in samples.as_array().unwrap() {
            let i = s[0].as_u64().unwrap() as usize;
            let w = expect(num(&s[1]));
            assert!(
                same_bits(got[i], w),
                "{name}: value {i} is {}, nibabel says {w}",
                got[i]
            );
        }
    }
    let finite = got.iter().all(|v| v.is_finite());
    if finite {
        let key = if f64_data { "sum" } else { "sum_f32" };
        let key = if want.get(key).is_some() { key } else { "sum" };
        if let Some(sum) = want.get(key).and_then(Value::as_f64) {
            let s: f64 = got.iter().sum();
            let tol = if f64_data || key == "sum_f32" {
                1e-9
            } else {
                1e-6
            };
            assert!(close(s, sum, tol), "{name}: sum {s} vs nibabel {sum}");
        }
        for (key, f) in [("min", f64::min as fn(f64, f64) -> f64), ("max", f64::max)] {
            if let Some(w) = want.get(key).and_then(Value::as_f64) {
                let g = got.iter().copied().fold(got[0], f);
                assert!(same_bits(g, expect(w)), "{name}: {key} {g} vs {w}");
            }
        }
        if let Some(mean) = want.get("mean").and_then(Value::as_f64) {
            let m = got.iter().sum::<f64>() / got.len() as f64;
            assert!(close(m, mean, 1e-6), "{name}: mean {m} vs {mean}");
        }
    }
}

#[test]
fn fixtures_match_nibabel_f64() {
    let exp = expected();
    let cases = exp["cases"].as_object().unwrap();
    assert!(cases.len() >= 60, "expected.json has {} cases", cases.len());
    for (name, want) in cases {
        let path = fixture_dir().join(want["file"].as_str().unwrap());
        let img = read_nifti(&path, true).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_against(name, &img, want, true);
    }
}

#[test]
fn fixtures_match_nibabel_f32() {
    let exp = expected();
    for (name, want) in exp["cases"].as_object().unwrap() {
        let path = fixture_dir().join(want["file"].as_str().unwrap());
        let img = read_nifti(&path, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_against(name, &img, want, false);
    }
}

#[test]
fn real_files_match_nibabel() {
    let Some(dir) = real_dir() else { return };
    let exp = expected();
    let real = exp["real"].as_object().unwrap();
    assert!(
        !real.is_empty(),
        "expected.json has no real-file references"
    );
    for (fname, want) in real {
        for f64_data in [true, false] {
            let img =
                read_nifti(&dir.join(fname), f64_data).unwrap_or_else(|e| panic!("{fname}: {e}"));
            check_against(fname, &img, want, f64_data);
            assert_eq!(
                img.header_value("endian"),
                Some(&HeaderValue::Text(want["endian"].as_str().unwrap().into())),
                "{fname}"
            );
            match img.header_value("extension_codes") {
                Some(HeaderValue::Ints(c)) => {
                    assert_eq!(
                        c.len() as u64,
                        want["n_extensions"].as_u64().unwrap(),
                        "{fname}"
                    )
                }
                other => panic!("{fname}: extension_codes {other:?}"),
            }
        }
    }
}

#[test]
fn pair_given_either_file_and_header_map() {
    let d = fixture_dir();
    let a = read_nifti(&d.join("pair_n1_le.hdr"), false).unwrap();
    let b = read_nifti(&d.join("pair_n1_le.img"), false).unwrap();
    assert_eq!(a.data, b.data);
    let c = read_nifti(&d.join("enc_n1_le.nii"), false).unwrap();
    assert_eq!(a.data, c.data);
    assert_eq!(a.dims, vec![5, 4, 3, 2]);
    let e = read_nifti(&d.join("extensions.nii"), false).unwrap();
    assert_eq!(
        e.header_value("extension_codes"),
        Some(&HeaderValue::Ints(vec![6, 4]))
    );
    assert_eq!(e.header_value("datatype"), Some(&HeaderValue::Int(4)));
    assert_eq!(e.datatype_name, "int16");
    assert_eq!(e.header_value("sform_code"), Some(&HeaderValue::Int(2)));
    let be = read_nifti(&d.join("enc_n2_be.nii.gz"), false).unwrap();
    assert_eq!(be.version, 2);
    assert_eq!(
        be.header_value("endian"),
        Some(&HeaderValue::Text("big".into()))
    );
    assert_eq!(be.header_value("scl_slope"), Some(&HeaderValue::Float(0.5)));
    assert_eq!(be.voxel_size.len(), 3);
    assert_eq!(be.tr, Some(2.5));
}

#[test]
fn rgb_has_a_last_channel_axis() {
    let img = read_nifti(&fixture_dir().join("rgb24.nii"), false).unwrap();
    assert_eq!(img.dims, vec![5, 4, 3, 3]);
    assert_eq!(img.datatype, 128);
    assert_eq!(img.voxel_size.len(), 3);
    let img = read_nifti(&fixture_dir().join("rgba32.nii"), true).unwrap();
    assert_eq!(img.dims, vec![5, 4, 3, 4]);
    // values themselves are checked against nibabel in fixtures_match_nibabel_*
}

// ---------------------------------------------------------------------------
// Errors: never a panic, always a precise message
// ---------------------------------------------------------------------------

fn format_msg(r: voxlab::error::Result<NiftiImage>) -> String {
    match r {
        Err(Error::Format { op, msg, .. }) => {
            assert_eq!(op, "load_nifti");
            msg
        }
        Err(other) => panic!("expected a Format error, got {other:?}"),
        Ok(img) => panic!("expected a Format error, got an image {:?}", img.dims),
    }
}

#[test]
fn missing_file_is_io_error_naming_path() {
    let p = fixture_dir().join("no_such_file.nii.gz");
    match read_nifti(&p, false) {
        Err(e @ Error::Io { .. }) => {
            let Error::Io { op, path, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*op, "load_nifti");
            assert_eq!(path, &p);
            assert!(e.to_string().contains("no_such_file.nii.gz"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // a pair whose .img is missing names the .img
    let t = TempDir::new("pair");
    std::fs::copy(fixture_dir().join("pair_n1_le.hdr"), t.path("lonely.hdr")).unwrap();
    match read_nifti(&t.path("lonely.hdr"), false) {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("lonely.img"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn complex_is_a_clear_format_error() {
    let msg = format_msg(read_nifti(&fixture_dir().join("err_complex64.nii"), false));
    assert!(msg.contains("complex"), "{msg}");
}

#[test]
fn truncated_and_corrupt_files() {
    let t = TempDir::new("trunc");
    let raw = std::fs::read(fixture_dir().join("dt_int16.nii")).unwrap();

    std::fs::write(t.path("short_data.nii"), &raw[..raw.len() - 10]).unwrap();
    let msg = format_msg(read_nifti(&t.path("short_data.nii"), false));
    assert!(
        msg.contains("truncated") && msg.contains("120 bytes"),
        "{msg}"
    );

    std::fs::write(t.path("short_hdr.nii"), &raw[..200]).unwrap();
    let msg = format_msg(read_nifti(&t.path("short_hdr.nii"), false));
    assert!(msg.contains("truncated inside the NIfTI-1 header"), "{msg}");

    std::fs::write(t.path("empty.nii"), b"").unwrap();
    let msg = format_msg(read_nifti(&t.path("empty.nii"), false));
    assert!(msg.contains("too short"), "{msg}");

    let mut bad = raw.clone();
    bad[344..348].copy_from_slice(b"xyz\0");
    std::fs::write(t.path("magic.nii"), &bad).unwrap();
    let msg = format_msg(read_nifti(&t.path("magic.nii"), false));
    assert!(msg.contains("bad magic"), "{msg}");

    let mut bad = raw.clone();
    bad[0..4].copy_from_slice(&1234i32.to_le_bytes());
    std::fs::write(t.path("sizeof.nii"), &bad).unwrap();
    let msg = format_msg(read_nifti(&t.path("sizeof.nii"), false));
    assert!(msg.contains("not a NIfTI file"), "{msg}");

    // unknown datatype code
    let mut bad = raw.clone();
    bad[70..72].copy_from_slice(&999i16.to_le_bytes());
    std::fs::write(t.path("dtype.nii"), &bad).unwrap();
    let msg = format_msg(read_nifti(&t.path("dtype.nii"), false));
    assert!(msg.contains("unknown datatype code 999"), "{msg}");

    // absurd dims: 7 x 32767 (no allocation attempted)
    let mut bad = raw.clone();
    bad[40..42].copy_from_slice(&7i16.to_le_bytes());
    for i in 1..8 {
        bad[40 + 2 * i..42 + 2 * i].copy_from_slice(&32767i16.to_le_bytes());
    }
    std::fs::write(t.path("huge.nii"), &bad).unwrap();
    let msg = format_msg(read_nifti(&t.path("huge.nii"), false));
    assert!(
        msg.contains("too large") || msg.contains("truncated"),
        "{msg}"
    );
    // same, gzipped: rejected by the deflate bound
    let gz = gzip(&bad);
    std::fs::write(t.path("huge.nii.gz"), &gz).unwrap();
    let msg = format_msg(read_nifti(&t.path("huge.nii.gz"), false));
    assert!(
        msg.contains("too large") || msg.contains("can hold"),
        "{msg}"
    );

    // dim[0] out of range and negative dims
    let mut bad = raw.clone();
    bad[40..42].copy_from_slice(&9i16.to_le_bytes());
    std::fs::write(t.path("ndim.nii"), &bad).unwrap();
    assert!(format_msg(read_nifti(&t.path("ndim.nii"), false)).contains("dim[0] = 9"));
    let mut bad = raw.clone();
    bad[44..46].copy_from_slice(&(-4i16).to_le_bytes());
    std::fs::write(t.path("negdim.nii"), &bad).unwrap();
    assert!(format_msg(read_nifti(&t.path("negdim.nii"), false)).contains("negative"));

    // dim[0] = 0: nibabel's shape (0,), no data
    let mut zero = raw.clone();
    zero[40..42].copy_from_slice(&0i16.to_le_bytes());
    std::fs::write(t.path("ndim0.nii"), &zero).unwrap();
    let img = read_nifti(&t.path("ndim0.nii"), false).unwrap();
    assert_eq!(img.dims, vec![0]);
    assert!(img.data.is_empty());
    assert_eq!(img.zooms, vec![1.0]);

    // vox_offset 0 in a single file: data at 352
    let mut zero = raw.clone();
    zero[108..112].copy_from_slice(&0f32.to_le_bytes());
    std::fs::write(t.path("off0.nii"), &zero).unwrap();
    let a = read_nifti(&t.path("off0.nii"), false).unwrap();
    let b = read_nifti(&fixture_dir().join("dt_int16.nii"), false).unwrap();
    assert_eq!(a.data, b.data);

    // vox_offset past the end, and inside the header
    let mut bad = raw.clone();
    bad[108..112].copy_from_slice(&1.0e6f32.to_le_bytes());
    std::fs::write(t.path("offset.nii"), &bad).unwrap();
    let msg = format_msg(read_nifti(&t.path("offset.nii"), false));
    assert!(msg.contains("past the end"), "{msg}");
    let mut bad = raw.clone();
    bad[108..112].copy_from_slice(&100.0f32.to_le_bytes());
    std::fs::write(t.path("offset2.nii"), &bad).unwrap();
    assert!(format_msg(read_nifti(&t.path("offset2.nii"), false)).contains("inside"));

    // truncated and corrupt gzip
    let gz = std::fs::read(fixture_dir().join("enc_n1_le.nii.gz")).unwrap();
    std::fs::write(t.path("short.nii.gz"), &gz[..gz.len() / 2]).unwrap();
    let msg = format_msg(read_nifti(&t.path("short.nii.gz"), false));
    assert!(msg.contains("truncated") || msg.contains("gzip"), "{msg}");
    let mut bad = gz.clone();
    for b in &mut bad[20..60] {
        *b ^= 0x5a;
    }
    std::fs::write(t.path("corrupt.nii.gz"), &bad).unwrap();
    let _ = format_msg(read_nifti(&t.path("corrupt.nii.gz"), false));
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

/// Every prefix of a file and many random header corruptions: errors allowed,
/// panics not.
#[test]
fn never_panics_on_damaged_files() {
    let t = TempDir::new("fuzz");
    for src in [
        "dt_float64.nii",
        "enc_n2_be.nii",
        "rgb24.nii",
        "extensions.nii",
        "aff_qform_only.nii",
    ] {
        let raw = std::fs::read(fixture_dir().join(src)).unwrap();
        let p = t.path(src);
        for cut in (0..raw.len()).step_by(7) {
            std::fs::write(&p, &raw[..cut]).unwrap();
            assert!(
                read_nifti(&p, false).is_err(),
                "{src} cut at {cut} read fine"
            );
        }
        let mut state: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let hsize = if src.contains("n2") { 540 } else { 348 };
        for _ in 0..400 {
            let mut bad = raw.clone();
            for _ in 0..(1 + next() % 4) {
                let at = (next() % hsize as u64) as usize;
                bad[at] = next() as u8;
            }
            std::fs::write(&p, &bad).unwrap();
            let _ = read_nifti(&p, next() % 2 == 0);
        }
    }
}

/// Hostile inputs in tests/fixtures/nifti/fuzz: hand-made ones
/// (make_nasty.py there) and any the fuzzer found (fuzz/README.md). A file
/// named `ok_*` must load, `err_*` must be a Format error naming that file;
/// f32 and f64 reads alike, and never a panic.
#[test]
fn fuzz_regressions_never_panic() {
    let dir = fixture_dir().join("fuzz");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("ok_") || n.starts_with("err_"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        let p = dir.join(name);
        for want_f64 in [false, true] {
            match read_nifti(&p, want_f64) {
                Ok(img) => {
                    assert!(name.starts_with("ok_"), "{name} loaded: {:?}", img.dims);
                    assert_eq!(img.data.len(), img.dims.iter().product::<usize>());
                }
                Err(Error::Format { op, path, msg }) => {
                    assert!(name.starts_with("err_"), "{name}: {msg}");
                    assert_eq!(op, "load_nifti");
                    assert_eq!(path, p, "{name}: {msg}");
                }
                Err(other) => panic!("{name}: expected a Format error, got {other:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

/// The two files voxlab writes for make_nifti_fixtures.py to check with
/// nibabel (keep in sync with `check_rust_written` there).
const RUST_AFF: [[f64; 4]; 4] = [
    [-2.0, 0.1, 0.0, 90.0],
    [0.0, 1.9, -0.3, -126.0],
    [0.05, 0.3, 2.1, -72.0],
    [0.0, 0.0, 0.0, 1.0],
];

fn rust_values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f64 * 0.1).sin() * 100.0 + i as f64 * 0.25) as f32)
        .collect()
}

fn write_rust_fixtures(dir: &Path) {
    let dims = [6usize, 5, 4, 3];
    let opts = WriteOptions {
        tr: Some(2.0),
        ..Default::default()
    };
    write_nifti(
        &dir.join("rust_written.nii"),
        &dims,
        &rust_values(360),
        RUST_AFF,
        &opts,
    )
    .unwrap();
    let opts = WriteOptions {
        f64: true,
        ..Default::default()
    };
    write_nifti(
        &dir.join("rust_written_f64.nii.gz"),
        &dims[..3],
        &rust_values(120),
        RUST_AFF,
        &opts,
    )
    .unwrap();
}

#[test]
#[ignore = "rewrites tests/fixtures/nifti/rust_written*; then run make_nifti_fixtures.py"]
fn regenerate_rust_written_fixtures() {
    write_rust_fixtures(&fixture_dir());
}

#[test]
fn rust_written_fixtures_are_current() {
    let t = TempDir::new("rustfix");
    write_rust_fixtures(&t.0);
    let committed = std::fs::read(fixture_dir().join("rust_written.nii")).unwrap();
    let fresh = std::fs::read(t.path("rust_written.nii")).unwrap();
    assert!(
        committed == fresh,
        "rust_written.nii differs from what write_nifti writes now"
    );
    let a = read_nifti(&fixture_dir().join("rust_written_f64.nii.gz"), true).unwrap();
    let b = read_nifti(&t.path("rust_written_f64.nii.gz"), true).unwrap();
    assert_eq!(a.data, b.data);
    assert_eq!(a.header, b.header);
}

fn f32_affine(a: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut o = *a;
    for row in o.iter_mut().take(3) {
        for v in row {
            *v = *v as f32 as f64;
        }
    }
    o
}

#[test]
fn write_read_roundtrip() {
    let t = TempDir::new("rt");
    let dims = [7usize, 6, 5, 4];
    let data = rust_values(7 * 6 * 5 * 4);
    for name in ["a.nii", "a.nii.gz", "B.NII.GZ"] {
        for f64_store in [false, true] {
            let p = t.path(name);
            let opts = WriteOptions {
                f64: f64_store,
                tr: Some(1.5),
                ..Default::default()
            };
            write_nifti(&p, &dims, &data, RUST_AFF, &opts).unwrap();
            let img = read_nifti(&p, false).unwrap();
            assert_eq!(img.dims, dims);
            assert_eq!(img.data, NiftiData::F32(data.clone()));
            assert_eq!(img.affine, f32_affine(&RUST_AFF));
            assert_eq!(img.tr, Some(1.5));
            assert_eq!(img.datatype, if f64_store { 64 } else { 16 });
            assert_eq!(img.header_value("xyzt_units"), Some(&HeaderValue::Int(10)));
            assert_eq!(img.header_value("sform_code"), Some(&HeaderValue::Int(2)));
            assert_eq!(img.header_value("qform_code"), Some(&HeaderValue::Int(0)));
        }
    }
    // f64 values stored exactly
    let d64: Vec<f64> = (0..210).map(|i| (i as f64).sqrt() * 1e-3 + 1e10).collect();
    write_nifti_f64(
        &t.path("d.nii"),
        &[7, 6, 5],
        &d64,
        RUST_AFF,
        &WriteOptions::default(),
    )
    .unwrap();
    let img = read_nifti(&t.path("d.nii"), true).unwrap();
    assert_eq!(img.data, NiftiData::F64(d64));
}

#[test]
fn qform_written_like_nibabel() {
    let t = TempDir::new("qform");
    // rigid + zooms (right- and left-handed): the qform reproduces the affine
    let th: f64 = 0.4;
    let (c, s) = (th.cos(), th.sin());
    let rh = [
        [2.0 * c, -2.5 * s, 0.0, 10.0],
        [2.0 * s, 2.5 * c, 0.0, -20.0],
        [0.0, 0.0, 3.0, 5.5],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let mut lh = rh;
    for row in &mut lh {
        row[0] = -row[0];
    }
    let lps = [
        [-1.0, 0.0, 0.0, 90.0],
        [0.0, -1.0, 0.0, 126.0],
        [0.0, 0.0, 1.0, -72.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let data = rust_values(24);
    for (k, aff) in [rh, lh, lps, RUST_AFF].iter().enumerate() {
        let p = t.path(&format!("q{k}.nii"));
        let opts = WriteOptions {
            sform_code: 0,
            qform_code: 1,
            ..Default::default()
        };
        write_nifti(&p, &[4, 3, 2], &data, *aff, &opts).unwrap();
        let img = read_nifti(&p, false).unwrap();
        let det = aff[0][0] * (aff[1][1] * aff[2][2] - aff[1][2] * aff[2][1])
            - aff[0][1] * (aff[1][0] * aff[2][2] - aff[1][2] * aff[2][0])
            + aff[0][2] * (aff[1][0] * aff[2][1] - aff[1][1] * aff[2][0]);
        let qfac = if det > 0.0 { 1.0 } else { -1.0 };
        match img.header_value("pixdim") {
            Some(HeaderValue::Floats(p)) => assert_eq!(p[0], qfac, "case {k}"),
            other => panic!("{other:?}"),
        }
        if k < 3 {
            // no shears: the qform is the affine (to float32 precision)
            for i in 0..4 {
                for j in 0..4 {
                    assert!(
                        (img.affine[i][j] - aff[i][j]).abs() < 1e-5,
                        "case {k}: {:?} vs {aff:?}",
                        img.affine
                    );
                }
            }
        }
        assert_eq!(img.voxel_size.len(), 3);
    }
}

#[test]
fn writer_rejects_bad_arguments() {
    let t = TempDir::new("wbad");
    let d = rust_values(24);
    let o = WriteOptions::default();
    let e = write_nifti(&t.path("x.img"), &[4, 3, 2], &d, RUST_AFF, &o).unwrap_err();
    assert!(e.to_string().contains(".nii or .nii.gz"), "{e}");
    let e = write_nifti(&t.path("x.nii"), &[4, 3, 3], &d, RUST_AFF, &o).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                op: "save_nifti",
                ..
            }
        ),
        "{e}"
    );
    let mut sing = RUST_AFF;
    for row in &mut sing {
        row[1] = 0.0;
    }
    let e = write_nifti(&t.path("x.nii"), &[4, 3, 2], &d, sing, &o).unwrap_err();
    assert!(e.to_string().contains("column 1"), "{e}");
    let e = write_nifti(&t.path("no_dir/x.nii"), &[4, 3, 2], &d, RUST_AFF, &o).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Io {
                op: "save_nifti",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn writer_switches_to_nifti2_for_big_dims() {
    let t = TempDir::new("w2");
    let n = 40000;
    let data: Vec<f32> = (0..n).map(|i| (i % 97) as f32).collect();
    let p = t.path("big.nii.gz");
    write_nifti(&p, &[n, 1], &data, RUST_AFF, &WriteOptions::default()).unwrap();
    let img = read_nifti(&p, false).unwrap();
    assert_eq!(img.version, 2);
    assert_eq!(img.dims, vec![n, 1]);
    assert_eq!(img.data, NiftiData::F32(data));
}
