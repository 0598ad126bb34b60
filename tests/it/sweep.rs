//! Sweeps (local and on SLURM), collected tables, load_runs/plot_sweep and
//! chunked encoding, through the real binary.

use std::path::Path;
use std::time::Instant;

use crate::common::{engine_in, eval_in, voxlab_in};

const SCRIPT: &str = "let alpha = param(\"alpha\", 1.0);\nlet subject = param(\"subject\", 1);\nset_seed(param(\"seed\", 0));\nif alpha > 50.0 { throw \"alpha too large\"; }\nrecord(\"score\", alpha * 2.0 + subject);\nrecord(\"per_roi\", #{V1: 0.1, V2: alpha});\n";

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("exp.rhai"), SCRIPT).expect("write script");
    dir
}

#[test]
fn a_local_sweep_runs_every_point_records_failures_and_resumes() {
    let dir = setup();
    let d = dir.path();
    let args = [
        "sweep",
        "exp.rhai",
        "--grid",
        "alpha=1,10,100",
        "--set",
        "subject=2",
        "--jobs",
        "2",
        "--out",
        "sw",
    ];
    let o = voxlab_in(d, &args, None);
    assert_eq!(o.code, 1, "one point fails: {}", o.stderr);
    assert!(
        o.stderr.contains("2-alpha=100: failed") && o.stderr.contains("alpha too large"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("2 ok, 1 failed"), "{}", o.stderr);
    let m = json(&d.join("sw/sweep.json"));
    let points = m["points"].as_array().expect("points");
    assert_eq!(points.len(), 3);
    assert_eq!(points[0]["dir"], "0-alpha=1");
    assert_eq!(points[1]["set"]["alpha"], "10");
    assert_eq!(points[0]["status"], "ok");
    assert_eq!(points[2]["status"], "failed");
    assert_eq!(points[2]["error"], "alpha too large");
    assert_eq!(m["set"]["subject"], "2");
    let r = json(&d.join("sw/1-alpha=10/run.json"));
    assert_eq!(r["status"], "ok");
    assert_eq!(r["parameters"]["alpha"], 10.0);
    assert_eq!(r["parameters"]["subject"], 2);
    assert_eq!(r["metrics"]["score"], 22.0);
    assert_eq!(r["threads"], 1, "threads are divided between the jobs");
    assert!(d.join("sw/1-alpha=10/voxlab.log").exists());

    // Resume: only the deleted point and the failed one run again.
    std::fs::remove_dir_all(d.join("sw/0-alpha=1")).expect("rm");
    let before = json(&d.join("sw/1-alpha=10/run.json"))["started"].clone();
    let o = voxlab_in(d, &args, None);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("1 of 3 points already ok"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("0-alpha=1: ok"), "{}", o.stderr);
    assert!(!o.stderr.contains("1-alpha=10:"), "{}", o.stderr);
    assert_eq!(json(&d.join("sw/0-alpha=1/run.json"))["status"], "ok");
    assert_eq!(json(&d.join("sw/1-alpha=10/run.json"))["started"], before);

    // --force reruns everything; another grid in the same folder is refused.
    let mut forced = args.to_vec();
    forced.push("--force");
    let o = voxlab_in(d, &forced, None);
    assert!(o.stderr.contains("3 points to run"), "{}", o.stderr);
    let o = voxlab_in(
        d,
        &["sweep", "exp.rhai", "--grid", "alpha=1,2", "--out", "sw"],
        None,
    );
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("describes another sweep"), "{}", o.stderr);
}

#[test]
fn grids_multiply_or_zip_and_a_seed_key_sets_the_seed() {
    let dir = setup();
    let d = dir.path();
    let o = voxlab_in(
        d,
        &[
            "sweep",
            "exp.rhai",
            "--grid",
            "alpha=1,2",
            "--grid",
            "seed=0,1",
            "--out",
            "p",
        ],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let m = json(&d.join("p/sweep.json"));
    let dirs: Vec<&str> = m["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["dir"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        dirs,
        [
            "0-alpha=1,seed=0",
            "1-alpha=1,seed=1",
            "2-alpha=2,seed=0",
            "3-alpha=2,seed=1"
        ]
    );
    assert_eq!(json(&d.join("p/3-alpha=2,seed=1/run.json"))["seed"], 1);
    let o = voxlab_in(
        d,
        &[
            "sweep",
            "exp.rhai",
            "--grid",
            "alpha=1,2",
            "--grid",
            "subject=3,4",
            "--zip",
            "--out",
            "z",
        ],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let m = json(&d.join("z/sweep.json"));
    assert_eq!(m["mode"], "zip");
    assert_eq!(m["points"][1]["dir"], "1-alpha=2,subject=4");
}

#[test]
fn collect_makes_one_table_and_flags_other_script_versions() {
    let dir = setup();
    let d = dir.path();
    let o = voxlab_in(
        d,
        &[
            "sweep",
            "exp.rhai",
            "--grid",
            "alpha=1,10,100",
            "--out",
            "sw",
        ],
        None,
    );
    assert_eq!(o.code, 1);
    let o = voxlab_in(d, &["collect", "sw", "--out", "table.csv"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let header = o.stdout.lines().next().unwrap_or("");
    for col in [
        "run",
        "status",
        "alpha",
        "subject",
        "score",
        "per_roi.V1",
        "duration_s",
        "seed",
        "script_sha256",
        "voxlab",
        "error",
    ] {
        assert!(
            header.split_whitespace().any(|c| c == col),
            "{col} missing from {header}"
        );
    }
    assert_eq!(o.stdout.lines().count(), 4, "{}", o.stdout);
    assert!(
        o.stdout
            .lines()
            .nth(3)
            .is_some_and(|l| l.contains("failed") && l.contains("alpha too large")),
        "{}",
        o.stdout
    );
    let csv = std::fs::read_to_string(d.join("table.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 4);
    assert!(
        csv.lines()
            .nth(2)
            .is_some_and(|l| l.contains("sw/1-alpha=10") && l.contains(",21,")),
        "{csv}"
    );

    // A run of an edited script is flagged.
    std::fs::write(d.join("exp.rhai"), format!("{SCRIPT}// edited\n")).expect("edit");
    let o = voxlab_in(d, &["run", "exp.rhai", "--out", "sw/extra"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = voxlab_in(d, &["collect", "sw"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("come from 2 versions of the script"),
        "{}",
        o.stderr
    );
    assert!(
        o.stdout
            .lines()
            .next()
            .is_some_and(|h| h.ends_with("script_differs")),
        "{}",
        o.stdout
    );
    assert!(
        d.join("sw/runs.csv").exists(),
        "the default table goes into the first folder"
    );
}

#[test]
fn bad_sweep_and_collect_input_is_a_usage_error() {
    let dir = setup();
    let d = dir.path();
    std::fs::create_dir(d.join("empty")).expect("mkdir");
    let cases: &[(&[&str], &str)] = &[
        (
            &["sweep", "exp.rhai", "--grid", "alpha=1", "--bogus"],
            "sweep: unknown option --bogus",
        ),
        (
            &["sweep", "exp.rhai", "--grid", "alpha"],
            "--grid expects KEY=V1,V2,... (e.g. alpha=0.1,1,10), got 'alpha'",
        ),
        (
            &["sweep", "exp.rhai", "--grid", "alpha=1,,2"],
            "--grid expects KEY=V1,V2",
        ),
        (&["sweep", "exp.rhai"], "needs at least one --grid"),
        (&["sweep", "--grid", "alpha=1"], "needs a script"),
        (
            &["sweep", "missing.rhai", "--grid", "alpha=1"],
            "cannot read the script missing.rhai",
        ),
        (
            &[
                "sweep", "exp.rhai", "--grid", "a=1,2", "--grid", "b=1", "--zip",
            ],
            "--zip pairs lists of one length, got a: 2, b: 1",
        ),
        (
            &[
                "sweep", "exp.rhai", "--grid", "a=1", "--slurm", "--time", "2h",
            ],
            "--time expects [D-]HH:MM:SS",
        ),
        (
            &[
                "sweep", "exp.rhai", "--grid", "a=1", "--slurm", "--mem", "lots",
            ],
            "--mem expects a size",
        ),
        (
            &["sweep", "exp.rhai", "--grid", "a=1", "--partition", "gpu"],
            "--partition is a SLURM setting; it needs --slurm",
        ),
        (
            &["sweep", "exp.rhai", "--grid", "a=1", "--jobs", "0"],
            "--jobs expects a positive integer, got '0'",
        ),
        (&["collect", "empty"], "collect: no run.json under empty"),
        (&["collect", "nowhere"], "collect: nowhere is not a folder"),
        (&["collect"], "collect: needs at least one folder"),
        (
            &["collect", "empty", "--format", "x"],
            "collect: unknown option --format",
        ),
        (
            &["sweep-task", "empty", "0"],
            "empty/sweep.json is missing or not JSON",
        ),
    ];
    for (args, expected) in cases {
        let o = voxlab_in(d, args, None);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(
            o.stderr.contains(expected),
            "{args:?}: {:?} lacks {expected:?}",
            o.stderr
        );
    }
}

#[test]
fn slurm_dry_run_writes_the_array_script_for_the_points_left() {
    let dir = setup();
    let d = dir.path();
    let args = [
        "sweep",
        "exp.rhai",
        "--grid",
        "alpha=1,2,3,4",
        "--out",
        "sl",
        "--slurm",
        "--dry-run",
        "--partition",
        "gpu",
        "--time",
        "1-02:00:00",
        "--cpus",
        "4",
        "--mem",
        "16G",
        "--gpus",
        "a100:1",
        "--array-max",
        "2",
        "--sbatch",
        "--account=lab",
        "--setup",
        "module load cuda",
    ];
    let o = voxlab_in(d, &args, None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let s = std::fs::read_to_string(d.join("sl/sweep.sbatch")).expect("sbatch script");
    for line in [
        "#SBATCH --array=0-3%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=1-02:00:00",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=16G",
        "#SBATCH --gpus=a100:1",
        "#SBATCH --account=lab",
        "module load cuda",
        "/logs/%a.log",
        "sweep-task",
        "$SLURM_ARRAY_TASK_ID",
    ] {
        assert!(s.contains(line), "{line} missing:\n{s}");
    }
    assert!(json(&d.join("sl/sweep.json"))["points"]
        .as_array()
        .is_some_and(|p| p.len() == 4));
    // Points already ok are left out of the array; sweep-task runs one point.
    let o = voxlab_in(d, &["sweep-task", "sl", "1", "--threads", "1"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(json(&d.join("sl/1-alpha=2/run.json"))["status"], "ok");
    let o = voxlab_in(d, &args, None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let s = std::fs::read_to_string(d.join("sl/sweep.sbatch")).expect("sbatch script");
    assert!(s.contains("#SBATCH --array=0,2-3%2"), "{s}");
}

#[test]
fn load_runs_and_plot_sweep_read_a_sweep() {
    let dir = setup();
    let d = dir.path();
    let o = voxlab_in(
        d,
        &[
            "sweep",
            "exp.rhai",
            "--grid",
            "alpha=1,10,100",
            "--grid",
            "seed=0,1",
            "--grid",
            "subject=1,2",
            "--out",
            "sw",
            "--jobs",
            "2",
        ],
        None,
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    let vox = engine_in(d);
    let sw = d.join("sw").display().to_string();
    let n = eval_in(
        &vox,
        &format!("let r = load_runs({sw:?}); [r.run.len(), r.alpha[2], r.status[4], r.score[3]]"),
    )
    .expect("load_runs");
    assert_eq!(n.to_string(), "[12, 1.0, \"ok\", 4.0]");
    let fig = eval_in(
        &vox,
        &format!("let r = load_runs({sw:?}); let f = plot_sweep(r, #{{x: \"alpha\", y: \"score\", group: \"subject\", log_x: true}}); f.save(\"s.png\"); f.to_string()"),
    )
    .expect("plot_sweep");
    assert!(fig.to_string().contains("lines, 2 series"), "{fig}");
    assert!(d.join("s.png").exists());
    let err = eval_in(
        &vox,
        &format!("plot_sweep(load_runs({sw:?}), #{{x: \"alpah\", y: \"score\"}})"),
    )
    .expect_err("typo");
    assert!(
        err.contains("plot_sweep: no column 'alpah'; the runs have:") && err.contains("alpha"),
        "{err}"
    );
    let err = eval_in(&vox, "plot_sweep(#{a: [1]}, #{y: \"a\"})").expect_err("no x");
    assert!(
        err.contains("plot_sweep: option 'x' expects a column name"),
        "{err}"
    );
    let (m, h) = voxlab::engine::runs::mean_ci(&[1.0, 2.0, 3.0], 0.95);
    assert!(
        (m - 2.0).abs() < 1e-12 && (h - 2.484_137_7).abs() < 1e-6,
        "{m} ± {h}"
    );
}

#[test]
fn chunked_encoding_gathers_to_the_unchunked_fit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/encoding_chunked.rhai");
    let s = script.display().to_string();
    let o = voxlab_in(
        d,
        &[
            "sweep",
            &s,
            "--grid",
            "chunk=0,1,2",
            "--set",
            "chunks=3",
            "--set",
            "n_train=120",
            "--out",
            "sw",
            "--jobs",
            "2",
        ],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = voxlab_in(
        d,
        &[
            "run",
            &s,
            "--set",
            "gather=sw",
            "--set",
            "n_train=120",
            "--out",
            "gathered",
        ],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = voxlab_in(
        d,
        &["run", &s, "--set", "n_train=120", "--out", "full"],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(d.join("gathered/r.nii.gz").exists() && d.join("full/r.nii.gz").exists());
    let a = voxlab::io::npy::load_npy(&d.join("gathered/r.npy")).expect("gathered r");
    let b = voxlab::io::npy::load_npy(&d.join("full/r.npy")).expect("full r");
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.to_f64_vec("t").expect("a"), b.to_f64_vec("t").expect("b"));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "gathered and unchunked r differ by {worst}");
    assert_eq!(
        json(&d.join("gathered/run.json"))["metrics"]["chunks_gathered"],
        3
    );
    // A missing chunk is named.
    std::fs::remove_dir_all(d.join("sw/1-chunk=1")).expect("rm");
    let o = voxlab_in(
        d,
        &["run", &s, "--set", "gather=sw", "--out", "again"],
        None,
    );
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("gather_chunks: chunks [1] of 3 have no run under sw"),
        "{}",
        o.stderr
    );
}

/// A real single-node cluster (.ci/slurm-up.sh starts one in CI): runs only
/// when `sinfo` answers.
#[test]
fn a_sweep_runs_as_a_slurm_job_array() {
    let up = std::process::Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up {
        eprintln!("skipped a_sweep_runs_as_a_slurm_job_array: no SLURM cluster answers `sinfo` (.ci/run starts one with .ci/slurm-up.sh)");
        return;
    }
    let dir = setup();
    let d = dir.path();
    let clock = Instant::now();
    let o = voxlab_in(
        d,
        &[
            "sweep",
            "exp.rhai",
            "--grid",
            "alpha=1,2,3",
            "--out",
            "sl",
            "--slurm",
            "--wait",
            "--time",
            "00:05:00",
            "--cpus",
            "1",
        ],
        None,
    );
    eprintln!(
        "SLURM sweep of 3 points took {:.1} s",
        clock.elapsed().as_secs_f64()
    );
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("3 ok, 0 failed"), "{}", o.stderr);
    for (i, p) in ["0-alpha=1", "1-alpha=2", "2-alpha=3"].iter().enumerate() {
        let r = json(&d.join("sl").join(p).join("run.json"));
        assert_eq!(r["status"], "ok", "{p}");
        assert_eq!(r["metrics"]["score"], (i as f64 + 1.0) * 2.0 + 1.0);
        assert!(d.join(format!("sl/logs/{i}.log")).exists());
    }
    assert!(json(&d.join("sl/sweep.json"))["slurm"]["job_id"].is_string());
    let o = voxlab_in(d, &["collect", "sl"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.lines().count(), 4, "{}", o.stdout);
}
