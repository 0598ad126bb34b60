//! .npy files against numpy-written fixtures (tests/fixtures/npy, made by
//! make_npy_fixtures.py beside them) and round trips.

use std::path::Path;

use voxlab::io::npy::{load_npy, save_npy};

use crate::common::fixture;

#[test]
fn reads_every_numpy_fixture_exactly() {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("npy/expected.json")).expect("expected.json"),
    )
    .expect("json");
    let cases = expected.as_object().expect("object");
    assert!(cases.len() >= 15);
    for (name, case) in cases {
        let t = load_npy(&fixture(&format!("npy/{name}.npy")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let shape: Vec<i64> = case["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .filter_map(|v| v.as_i64())
            .collect();
        assert_eq!(t.shape(), shape, "{name}: shape");
        let want: Vec<f64> = case["values"]
            .as_array()
            .expect("values")
            .iter()
            .filter_map(|v| v.as_f64())
            .collect();
        let got = t.to_f64_vec("test").expect("values");
        assert_eq!(got, want, "{name}: values");
        let dtype = case["dtype"].as_str().expect("dtype");
        let kind = voxlab::tensor::kind_name(t.kind());
        let expected_kind = match &dtype[1..] {
            "f4" => "f32",
            "f8" => "f64",
            "f2" => "f16",
            "i8" | "u4" | "u2" | "u8" => "i64",
            "i4" => "i32",
            "i2" => "i16",
            "i1" => "i8",
            "u1" => "u8",
            "b1" => "bool",
            other => panic!("{other}"),
        };
        assert_eq!(kind, expected_kind, "{name}: dtype {dtype}");
    }
}

#[test]
fn round_trips_every_dtype() {
    let dir = tempfile::tempdir().expect("temp dir");
    for kind in [
        tch::Kind::Float,
        tch::Kind::Double,
        tch::Kind::Int64,
        tch::Kind::Int,
        tch::Kind::Int16,
        tch::Kind::Int8,
        tch::Kind::Uint8,
        tch::Kind::Bool,
    ] {
        let t = voxlab::tensor::Tensor(
            tch::Tensor::from_slice(&[0.0f64, 1.0, 0.0, 5.0, 1.0, 2.0])
                .reshape([2, 3])
                .to_kind(kind),
        );
        let p = dir.path().join(format!("{kind:?}.npy"));
        save_npy(&t, &p).expect("save");
        let back = load_npy(&p).expect("load");
        assert_eq!(back.kind(), kind);
        assert_eq!(back.shape(), vec![2, 3]);
        assert_eq!(
            back.to_f64_vec("t").expect("v"),
            t.to_f64_vec("t").expect("v")
        );
        let bytes = std::fs::read(&p).expect("read");
        assert_eq!(
            (bytes[8] as usize + 10) % 64,
            0,
            "data must start on a 64-byte boundary"
        );
    }
}

#[test]
fn writes_the_file_numpy_checks() {
    // make_npy_fixtures.py asserts numpy reads this file back exactly.
    let t = voxlab::tensor::Tensor(
        tch::Tensor::arange(6, (tch::Kind::Double, tch::Device::Cpu)).reshape([2, 3]) / 4.0,
    );
    let p = fixture("npy/written_by_voxlab.npy");
    let dir = tempfile::tempdir().expect("temp dir");
    let fresh = dir.path().join("w.npy");
    save_npy(&t, &fresh).expect("save");
    assert_eq!(
        std::fs::read(&fresh).expect("fresh"),
        std::fs::read(&p).expect("committed fixture"),
        "save_npy output changed; rerun the fixture script"
    );
}

#[test]
fn bad_files_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.npy");
    let e = load_npy(&missing).expect_err("missing").to_string();
    assert!(e.starts_with("load_npy: ") && e.contains("nope.npy"), "{e}");
    let junk = dir.path().join("junk.npy");
    std::fs::write(&junk, b"hello world, not numpy").expect("write");
    let e = load_npy(&junk).expect_err("junk").to_string();
    assert!(e.contains("not an .npy file"), "{e}");
    let full = std::fs::read(fixture("npy/f4_c.npy")).expect("fixture");
    let cut = dir.path().join("cut.npy");
    std::fs::write(&cut, &full[..full.len() - 7]).expect("write");
    let e = load_npy(&cut).expect_err("truncated").to_string();
    assert!(e.contains("truncated"), "{e}");
    let complex = dir.path().join("c.npy");
    let mut bytes = full.clone();
    let pos = bytes.windows(3).position(|w| w == b"<f4").expect("descr");
    bytes[pos + 1] = b'c';
    std::fs::write(&complex, &bytes).expect("write");
    let e = load_npy(&complex).expect_err("complex").to_string();
    assert!(e.contains("dtype '<c4' is not supported"), "{e}");
    assert!(Path::new(&complex).exists());
}
