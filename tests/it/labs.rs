//! The teaching labs (examples/) run end to end at reduced size
//! (`--set quick=true`): exit 0, run.json with status ok, every figure a valid
//! image, and each lab's key result holds (ROI sizes, the right model per ROI,
//! decoding and identification well above chance).

use std::path::Path;

use serde_json::Value;

use crate::common::voxlab_in;

/// Runs examples/<lab>.rhai with quick=true (plus `extra` --set pairs) in a
/// temporary folder; checks exit 0, status ok and the figures; returns the
/// metrics.
fn run_lab(lab: &str, extra: &[&str], figures: &[&str]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("examples").join(format!("{lab}.rhai"));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = vec![
        "run".to_string(),
        script.display().to_string(),
        "--set".into(),
        "quick=true".into(),
        "--out".into(),
        "out".into(),
    ];
    for s in extra {
        args.push("--set".into());
        args.push(s.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = voxlab_in(dir.path(), &args, None);
    assert_eq!(o.code, 0, "{lab}: {}", o.stderr);
    let out = dir.path().join("out");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(record["status"], "ok", "{lab}");
    assert!(
        record["unused_set"].as_array().is_none_or(|a| a.is_empty()),
        "{lab} ignores a --set: {}",
        record["unused_set"]
    );
    for fig in figures {
        let bytes = std::fs::read(out.join(fig)).unwrap_or_else(|_| panic!("{lab}: {fig} written"));
        assert!(
            image::load_from_memory(&bytes).is_ok(),
            "{lab}: {fig} is not a valid image"
        );
    }
    record["metrics"].clone()
}

fn num(m: &Value, path: &[&str]) -> f64 {
    let mut v = m;
    for p in path {
        v = &v[*p];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("metric {path:?} is a number, got {v}"))
}

#[test]
fn lab01_reads_real_nifti_and_rois() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let m = run_lab(
        "lab01_nifti_and_rois",
        &[&format!("data={}", data.display())],
        &["zmap_on_t1.png", "rois_on_t1.png", "z_in_rois.png"],
    );
    // The BOLD5000 group masks and their overlap, counted independently of the script.
    assert_eq!(num(&m, &["voxels", "EarlyVis"]), 3145.0);
    assert_eq!(num(&m, &["voxels", "LOC"]), 3155.0);
    assert_eq!(num(&m, &["voxels", "overlap"]), 365.0);
    assert_eq!(num(&m, &["voxels", "union"]), 3145.0 + 3155.0 - 365.0);
    assert!((num(&m, &["z_peak"]) - 7.9414).abs() < 1e-3);
    // The map on each ROI's grid and its mean |z| over the ROI voxels inside
    // the map's mask, as nilearn's resample_to_img gives them
    // (tests/fixtures/resample/make_resample_fixtures.py). A motor contrast:
    // weak in visual ROIs, strong somewhere else.
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resample/expected.json"),
        )
        .expect("expected.json"),
    )
    .expect("json");
    for roi in ["EarlyVis", "LOC"] {
        let want = &expected["lab01"][roi];
        assert_eq!(
            num(&m, &["voxels_in_map_mask", roi]),
            want["in_map"].as_f64().expect("count"),
            "{roi}"
        );
        let z = num(&m, &["mean_abs_z", roi]);
        let want_z = want["mean_abs_z"].as_f64().expect("mean");
        assert!(
            (z - want_z).abs() < 1e-5,
            "mean |z| in {roi}: {z} vs nilearn {want_z}"
        );
    }
    assert!(num(&m, &["active_voxels"]) > 1000.0);
}

#[test]
fn lab02_rsa_finds_each_rois_model() {
    let m = run_lab(
        "lab02_rsa",
        &[],
        &["rdms.png", "rsa_bars.png", "mantel_null.png"],
    );
    let best = &m["best_model"];
    assert_eq!(best["V1"], "contrast");
    assert_eq!(best["V4"], "colour");
    assert_eq!(best["LOC"], "shape");
    assert_eq!(best["AMY"], "valence");
    assert!(num(&m, &["significant_pairs"]) >= 4.0);
    assert!(num(&m, &["v4_colour_tau"]) > 0.15);
    assert!(num(&m, &["v4_colour_p"]) < 0.05);
}

#[test]
fn lab03_encoding_models_pick_each_rois_feature_space() {
    let m = run_lab(
        "lab03_encoding_models",
        &[],
        &["r_per_roi.png", "r_map.png", "scatter_best_voxel.png"],
    );
    let best = &m["best_space"];
    assert_eq!(best["V1"], "contrast");
    assert_eq!(best["V4"], "colour");
    assert_eq!(best["LOC"], "shape");
    assert_eq!(best["AMY"], "valence");
    // mean_r rows are in feature-space order: colour, contrast, shape, valence.
    let r = |roi: &str, k: usize| m["mean_r"][roi][k].as_f64().expect("r");
    assert!(r("V4", 0) > 0.6, "V4 from colour: {}", r("V4", 0));
    assert!(r("LOC", 2) > 0.6, "LOC from shape: {}", r("LOC", 2));
    assert!(r("V1", 1) > 0.3, "V1 from contrast: {}", r("V1", 1));
    assert!(r("LOC", 0) < 0.2, "LOC from colour: {}", r("LOC", 0));
    assert!(num(&m, &["significant_voxels"]) > 200.0);
}

#[test]
fn lab04_decodes_and_identifies_above_chance() {
    let m = run_lab(
        "lab04_decoding_and_identification",
        &[],
        &["confusion.png", "identification_by_ways.png", "decoded.png"],
    );
    let chance = num(&m, &["colour_chance"]);
    assert!((chance - 1.0 / 9.0).abs() < 1e-12);
    assert!(num(&m, &["colour_accuracy_v4"]) > 0.8);
    assert!(num(&m, &["colour_accuracy_v4"]) > num(&m, &["colour_accuracy_amy"]) + 0.3);
    assert!(num(&m, &["top1_2way"]) > 0.8);
    assert!(
        num(&m, &["top1_50way"]) > 10.0 * 0.02,
        "{}",
        m["top1_50way"]
    );
    assert!(num(&m, &["top1_50way_p"]) < 2e-4);
}
