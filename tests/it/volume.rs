//! Volumes from scripts: load_nifti/save_nifti against nibabel's values
//! (tests/fixtures/nifti/expected.json, made by make_nifti_fixtures.py).

use crate::common::{engine_in, eval_in, fixture};

fn expected() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture("nifti/expected.json")).expect("expected.json"),
    )
    .expect("json")
}

fn numbers(v: &rhai::Dynamic) -> Vec<f64> {
    fn walk(v: &rhai::Dynamic, out: &mut Vec<f64>) {
        if let Some(a) = v.read_lock::<rhai::Array>() {
            a.iter().for_each(|x| walk(x, out));
        } else if let Ok(x) = v.as_float() {
            out.push(x);
        } else if let Ok(i) = v.as_int() {
            out.push(i as f64);
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

#[test]
fn script_sees_nibabels_data_shape_and_affine() {
    let exp = expected();
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    for name in ["dt_uint8", "dt_int16", "dt_int32"] {
        let case = &exp["cases"][name];
        let file = fixture(&format!("nifti/{}", case["file"].as_str().expect("file")));
        // Fortran order of [x, y, z] is C order of [z, y, x].
        let script = format!("let v = load_nifti(\"{}\", #{{dtype: \"f64\"}}); [v.shape, to_array(v.affine), to_array(v.data.transpose(0, 2).flatten()), v.voxel_size]", file.display());
        let v = eval_in(&vox, &script).unwrap_or_else(|e| panic!("{name}: {e}"));
        let parts = v.into_array().expect("array");
        let want = |k: &str| -> Vec<f64> {
            case[k]
                .as_array()
                .expect(k)
                .iter()
                .flat_map(|x| x.as_array().cloned().unwrap_or_else(|| vec![x.clone()]))
                .filter_map(|x| x.as_f64())
                .collect()
        };
        assert_eq!(numbers(&parts[0]), want("shape"), "{name} shape");
        for (a, b) in numbers(&parts[1]).iter().zip(want("affine")) {
            assert!((a - b).abs() < 1e-6, "{name} affine {a} vs {b}");
        }
        assert_eq!(numbers(&parts[2]), want("data"), "{name} data");
        assert_eq!(numbers(&parts[3]), want("zooms"), "{name} voxel sizes");
    }
}

#[test]
fn real_big_endian_file_and_4d_epi() {
    let real = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realdata/nifti");
    if !real.exists() {
        eprintln!("skipped: ../shared/realdata/nifti is not present");
        return;
    }
    let exp = expected();
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let a = &exp["real"]["anatomical.nii"];
    let v = eval_in(
        &vox,
        &format!(
            "let v = load_nifti(\"{}\", #{{dtype: \"f64\"}}); [v.shape, v.data.sum().item()]",
            real.join("anatomical.nii").display()
        ),
    )
    .expect("anatomical");
    let parts = v.into_array().expect("array");
    assert_eq!(voxlab::cli::show(&parts[0]), "[33, 41, 25]");
    assert_eq!(parts[1].as_float().ok(), a["sum"].as_f64());
    let v = eval_in(
        &vox,
        &format!(
            "let v = load_nifti(\"{}\"); [v.shape, v.tr]",
            real.join("example4d.nii.gz").display()
        ),
    )
    .expect("4d");
    let want_shape = exp["real"]["example4d.nii.gz"]["shape"]
        .to_string()
        .replace(',', ", ");
    assert_eq!(
        voxlab::cli::show(&v.into_array().expect("array")[0]),
        want_shape
    );
}

#[test]
fn save_and_load_round_trip_with_affine_and_tr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let v = eval_in(&vox, r#"
        set_seed(5);
        let x = randn([4, 5, 6, 3]);
        let aff = tensor([[2, 0, 0, -10], [0, 2.5, 0, 20], [0, 0, 3, -30], [0, 0, 0, 1]]);
        let p = save_nifti(x, "bold.nii.gz", #{affine: aff, tr: 1.5});
        let v = load_nifti(p);
        [(v.data - x).abs().max().item(), to_array(v.affine)[1][1], v.voxel_size, v.tr, v.header.sform_code]
    "#).expect("round trip");
    assert_eq!(voxlab::cli::show(&v), "[0.0, 2.5, [2.0, 2.5, 3.0], 1.5, 2]");
    let err = eval_in(&vox, "save_nifti(ones([3, 3]), \"x.nii\")").expect_err("2-D");
    assert!(
        err.contains("save_nifti: a volume is 3-D or 4-D, got shape 3×3"),
        "{err}"
    );
    let err = eval_in(&vox, "load_nifti(\"/nonexistent/brain.nii\")").expect_err("missing");
    assert!(
        err.starts_with("load_nifti: /nonexistent/brain.nii"),
        "{err}"
    );
    let err = eval_in(
        &vox,
        "save_nifti(ones([3, 3, 3]), \"x.nii\", #{affine: eye(3)})",
    )
    .expect_err("3x3 affine");
    assert!(err.contains("affine: expected 4×4, got 3×3"), "{err}");
}

/// Max |voxlab − nilearn| and how many voxels differ by more than `tol`
/// relative to the largest |value|.
fn compare(got: &[f64], want: &[f64], tol: f64) -> (f64, usize) {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    let mut worst = 0.0f64;
    let mut off = 0;
    for (g, w) in got.iter().zip(want) {
        let d = (g - w).abs();
        worst = worst.max(d);
        if d > tol * scale {
            off += 1;
        }
    }
    (worst / scale, off)
}

#[test]
fn resample_to_img_equals_nilearn_on_real_oblique_files() {
    let real = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realdata/nifti");
    if !real.exists() {
        eprintln!("skipped: ../shared/realdata/nifti is not present");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    for (name, file) in [("epi", "example4d.nii.gz"), ("zmap", "image_10426.nii.gz")] {
        for interp in ["nearest", "linear", "continuous"] {
            let script = format!(
                "let src = load_nifti(\"{}\");\nlet target = load_nifti(\"{}\");\nlet r = resample_to_img(src, target, #{{interpolation: \"{interp}\"}});\n[r.shape, to_array(r.affine), to_array(r.data.flatten())]",
                real.join(file).display(),
                real.join("anatomical.nii").display()
            );
            let v = eval_in(&vox, &script).unwrap_or_else(|e| panic!("{name} {interp}: {e}"));
            let parts = v.into_array().expect("array");
            let want =
                voxlab::io::npy::load_npy(&fixture(&format!("resample/{name}_{interp}.npy")))
                    .expect("fixture");
            let shape: Vec<i64> = numbers(&parts[0]).iter().map(|&x| x as i64).collect();
            assert_eq!(shape, want.shape(), "{name} {interp}: shape");
            let want = want.to_f64_vec("test").expect("values");
            let (worst, off) = compare(&numbers(&parts[2]), &want, 1e-5);
            // nearest picks the same voxel (ties at exactly .5 aside), the
            // interpolations agree to float32 rounding.
            assert!(
                off == 0,
                "{name} {interp}: {off} voxels differ, worst {worst:e}"
            );
        }
    }
}

#[test]
fn resample_to_img_checks_its_inputs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let make = "let a = load_nifti(save_nifti(randn([4, 4, 4]), \"a.nii\"));\nlet far = load_nifti(save_nifti(zeros([4, 4, 4]), \"b.nii\", #{affine: tensor([[1.0, 0.0, 0.0, 500.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])}));\n";
    for (call, want) in [
        (
            "resample_to_img(a, a, #{interpolation: \"cubic\"})",
            "interpolation must be",
        ),
        (
            "resample_to_img(a, far)",
            "does not contain any of the source",
        ),
        (
            "resample_to_img(a, 3)",
            "target: expected a Volume or a Mask",
        ),
        (
            "resample_to_img(a, a, #{order: 1})",
            "unknown option 'order'",
        ),
    ] {
        let e = eval_in(&vox, &format!("{make}{call}")).expect_err(call);
        assert!(
            e.contains("resample_to_img") && e.contains(want),
            "{call}: {e}"
        );
    }
    // The same grid gives the volume back.
    let same = eval_in(
        &vox,
        &format!("{make}(resample_to_img(a, a).data - a.data).abs().max().item()"),
    )
    .expect("same grid");
    assert_eq!(same.as_float().expect("float"), 0.0);
}
