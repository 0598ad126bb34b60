//! The shipped scripts run end to end at reduced size (`--set quick=true`):
//! exit 0, run.json with status ok, valid figures, metrics above chance.

use crate::common::voxlab_in;

#[test]
fn quickstart_decodes_well_above_chance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/quickstart.rhai");
    let o = voxlab_in(
        dir.path(),
        &[
            "run",
            &script.display().to_string(),
            "--set",
            "quick=true",
            "--out",
            "q",
        ],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let out = dir.path().join("q");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(record["status"], "ok");
    let top1 = record["metrics"]["top1_50way"].as_f64().expect("top1");
    let chance = record["metrics"]["chance"].as_f64().expect("chance");
    assert!((chance - 0.02).abs() < 1e-12);
    assert!(
        top1 > 10.0 * chance,
        "50-way top-1 {top1} vs chance {chance}"
    );
    assert!(record["metrics"]["top1_50way_p"].as_f64().expect("p") < 1e-6);
    for fig in ["identification.png", "decoded.png"] {
        let bytes = std::fs::read(out.join(fig)).expect("figure written");
        assert!(
            image::load_from_memory(&bytes).is_ok(),
            "{fig} is not a valid image"
        );
    }
}
