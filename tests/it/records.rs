//! run.json: written for ok and failed runs, with what the run did.

use crate::common::voxlab_in;

fn record(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("run.json")).expect("run.json exists");
    serde_json::from_str(&text).expect("run.json is JSON")
}

#[test]
fn a_successful_run_records_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = "let n = param(\"n\", 4);\nset_seed(11);\nlet x = randn([n, 3]);\nrecord(\"mean\", x.mean().item());\nrecord(\"n\", n);\nsave_npy(x, \"x.npy\");\nplot_lines(x.mean(1)).save(\"m.png\");\n";
    std::fs::write(dir.path().join("exp.rhai"), script).expect("write");
    let o = voxlab_in(
        dir.path(),
        &[
            "run", "exp.rhai", "--set", "n=6", "--set", "unused=1", "--out", "res/r1",
        ],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("--set unused not used"), "{}", o.stderr);
    let out = dir.path().join("res/r1");
    let r = record(&out);
    assert_eq!(r["status"], "ok");
    assert_eq!(r["error"], serde_json::Value::Null);
    assert_eq!(r["script"]["path"], "exp.rhai");
    assert_eq!(
        r["script"]["sha256"],
        voxlab::cli::record::sha256_hex(script.as_bytes())
    );
    assert_eq!(r["parameters"]["n"], 6);
    assert_eq!(r["set"]["n"], "6");
    assert_eq!(r["unused_set"][0], "unused");
    assert_eq!(r["seed"], 11);
    assert_eq!(r["device"], "cpu");
    assert_eq!(r["metrics"]["n"], 6);
    assert!(r["metrics"]["mean"].is_f64());
    assert_eq!(r["files"], serde_json::json!(["x.npy", "m.png"]));
    assert_eq!(
        r["versions"]["libtorch"]
            .as_str()
            .map(|s| s.starts_with("2.11.0")),
        Some(true)
    );
    assert_eq!(r["versions"]["rhai"], voxlab::RHAI_VERSION);
    assert!(r["started"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z') && s.len() == 20));
    assert!(r["duration_s"].as_f64().is_some_and(|d| d >= 0.0));
    assert!(out.join("x.npy").exists() && out.join("m.png").exists());
    let png = std::fs::read(out.join("m.png")).expect("png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn a_failed_run_still_writes_its_record_with_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("bad.rhai"),
        "record(\"before\", 1);\nlet x = ones([2, 2]);\nx.rows([5])\n",
    )
    .expect("write");
    let o = voxlab_in(dir.path(), &["run", "bad.rhai", "--out", "o"], None);
    assert_eq!(o.code, 1);
    let r = record(&dir.path().join("o"));
    assert_eq!(r["status"], "failed");
    assert_eq!(r["metrics"]["before"], 1);
    assert_eq!(r["error"]["line"], 3);
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("rows: index 5 is out of range")),
        "{}",
        r["error"]
    );
}

#[test]
fn a_syntax_error_is_a_failed_run_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("syn.rhai"), "let x = ;\n").expect("write");
    let o = voxlab_in(dir.path(), &["run", "syn.rhai", "--out", "o"], None);
    assert_eq!(o.code, 1);
    let r = record(&dir.path().join("o"));
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["line"], 1);
}

#[test]
fn the_default_output_folder_is_named_after_the_script() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("quick.rhai"), "print(out_dir());").expect("write");
    let o = voxlab_in(dir.path(), &["run", "quick.rhai"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let printed = o.stdout.trim();
    assert!(printed.starts_with("runs/quick-"), "{printed}");
    assert!(dir.path().join(printed).join("run.json").exists());
}

#[test]
fn a_large_recorded_tensor_is_a_summary_with_its_values_in_npy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = "set_seed(3);\nlet m = randn([60, 50]);\nrecord(\"r_map\", m);\nrecord(\"small\", tensor([1, 2]));\nrecord(\"maps\", #{a: m * 2.0});\n";
    std::fs::write(dir.path().join("s.rhai"), script).expect("write");
    let o = voxlab_in(dir.path(), &["run", "s.rhai", "--out", "o"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let out = dir.path().join("o");
    let r = record(&out);
    let m = &r["metrics"]["r_map"];
    assert_eq!(m["shape"], serde_json::json!([60, 50]));
    assert_eq!(m["npy"], "r_map.npy");
    assert!(m["mean"].as_f64().expect("mean").abs() < 0.2, "{m}");
    assert!((m["sd"].as_f64().expect("sd") - 1.0).abs() < 0.1, "{m}");
    assert_eq!(r["metrics"]["small"], serde_json::json!([1.0, 2.0]));
    assert_eq!(r["metrics"]["maps"]["a"]["npy"], "maps.a.npy");
    let back = voxlab::io::npy::load_npy(&out.join("r_map.npy")).expect("npy");
    assert_eq!(back.shape(), vec![60, 50]);
    assert!(
        std::fs::metadata(out.join("run.json"))
            .expect("run.json")
            .len()
            < 10_000
    );
}
