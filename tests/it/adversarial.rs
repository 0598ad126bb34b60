//! Reproducers of an adversarial tester's attack on voxlab (issue 15): each
//! must end as an ordinary script error (a message naming the function) or
//! the documented result, never an abort, a hang, a lost record or a
//! silently wrong number. Sizes and limits are small so the module is quick.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{bin, engine_in, eval_in, voxlab_in, Output};

/// `voxlab -e SCRIPT` in `dir` with extra flags.
fn expr_in(dir: &Path, script: &str, flags: &[&str]) -> Output {
    let mut args = vec!["-e", script];
    args.extend_from_slice(flags);
    voxlab_in(dir, &args, None)
}

/// Asserts a script error (exit 1) whose message starts with `op:` and is
/// not an internal error.
fn assert_script_error(o: &Output, op: &str, needle: &str) {
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains(&format!("error: {op}: ")),
        "expected an error from {op}:\n{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(needle),
        "expected '{needle}':\n{}",
        o.stderr
    );
    assert!(!o.stderr.contains("internal error"), "{}", o.stderr);
    assert!(!o.stderr.contains("C++"), "{}", o.stderr);
}

fn record_of(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("run.json")).expect("run.json exists");
    serde_json::from_str(&text).expect("run.json is JSON")
}

fn write_script(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write the script");
}

// ---------------------------------------------------------------------------
// Limits

#[test]
fn invalid_limit_values_are_usage_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    for flags in [
        ["--max-operations", "0.5"],
        ["--max-operations", "0"],
        ["--max-operations", "-3"],
        ["--max-memory", "0.5"],
        ["--max-memory", "0"],
        ["--max-seconds", "0"],
        ["--max-seconds", "-1"],
        ["--max-seconds", "NaN"],
        ["--threads", "100000"],
        ["--threads", "0"],
        ["--out", ""],
    ] {
        let o = expr_in(dir.path(), "1", &flags);
        assert_eq!(o.code, 2, "{flags:?}: {}", o.stderr);
        assert!(o.stderr.contains(flags[0]), "{flags:?}: {}", o.stderr);
    }
}

#[test]
fn a_deadline_stops_a_long_primitive_and_the_record_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_script(
        dir.path(),
        "perm.rhai",
        "record(\"before\", 1);\nlet x = randn([200]);\nlet t = permutation_test(x, randn([200]), #{n_permutations: 50000000});\nrecord(\"after\", 2);\n",
    );
    let clock = Instant::now();
    let o = voxlab_in(
        dir.path(),
        &["run", "perm.rhai", "--out", "o", "--max-seconds", "1"],
        None,
    );
    let took = clock.elapsed();
    assert_script_error(&o, "permutation_test", "ran longer than --max-seconds 1");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let rec = record_of(&dir.path().join("o"));
    assert_eq!(rec["status"], "stopped");
    assert_eq!(rec["stopped_by"], "max_seconds");
    assert_eq!(rec["metrics"]["before"], 1);
    assert!(rec["metrics"].get("after").is_none());
}

#[test]
fn a_deadline_stops_inside_a_large_matmul() {
    // Each product is ~2.7e10 multiply-adds (a second or more on 2 cores):
    // the stop applies between blocks of rows, inside the product.
    let dir = tempfile::tempdir().expect("temp dir");
    write_script(
        dir.path(),
        "mm.rhai",
        "let a = randn([3000, 3000]);\nfor i in 0..1000 { let c = a.matmul(a); }\nrecord(\"after\", 1);\n",
    );
    let clock = Instant::now();
    let o = voxlab_in(
        dir.path(),
        &["run", "mm.rhai", "--out", "o", "--max-seconds", "2"],
        None,
    );
    let took = clock.elapsed();
    assert_script_error(&o, "matmul", "ran longer than --max-seconds 2");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let rec = record_of(&dir.path().join("o"));
    assert_eq!(rec["stopped_by"], "max_seconds");
    assert!(rec["metrics"].get("after").is_none());
}

#[test]
fn a_memory_ceiling_refuses_known_allocations_and_stops_the_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_script(
        dir.path(),
        "mem.rhai",
        "let xs = [];\nfor i in 0..8 { xs.push(ones([125, 1000, 1000])); }\n",
    );
    let o = voxlab_in(
        dir.path(),
        &["run", "mem.rhai", "--out", "o", "--max-memory", "700"],
        None,
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("--max-memory 700 MB"), "{}", o.stderr);
    let rec = record_of(&dir.path().join("o"));
    assert_eq!(rec["status"], "stopped");
    assert_eq!(rec["stopped_by"], "max_memory");
}

#[test]
fn allocations_larger_than_the_machine_are_refused_before_they_abort() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (script, op) in [
        ("ones([125, 1000, 1000, 1000])", "ones"),
        ("linspace(0, 1, 100000000000)", "linspace"),
        (
            "permutation_test(|p| 1.0, 1000000000000)",
            "permutation_test",
        ),
        (
            "permutation_test(randn([20]), randn([20]), #{n_permutations: 100000000000000})",
            "permutation_test",
        ),
        (
            "simulate_subject(#{n_train: 1000000000000, save: false})",
            "simulate_subject",
        ),
        ("resnet(#{classes: 100000000000})", "resnet"),
        (
            "image_grid(rand([2, 3, 8, 8]), #{padding: 1000000})",
            "image_grid",
        ),
        (
            "plot_hist(randn([10])).save(\"a.png\"); load_images([\"a.png\"], #{size: 100000})",
            "load_images",
        ),
    ] {
        let o = expr_in(dir.path(), script, &[]);
        assert_script_error(&o, op, "needs");
    }
}

#[test]
fn smoothing_with_a_huge_kernel_is_quick_and_averages_the_axis() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    // reflect mode is periodic, so a kernel much wider than the volume
    // averages each axis: every voxel becomes the volume's mean.
    let v = eval_in(
        &vox,
        "let v = load_nifti(save_nifti(rand([5, 6, 4]), \"v.nii\"));
         let m = v.data.mean().item();
         let a = smooth(v, 1e6).data;
         let b = smooth(v, 1e12).data;
         [(a - m).abs().max().item(), (b - m).abs().max().item()]",
    )
    .expect("smooth runs");
    let errs = v.into_array().expect("array");
    for e in errs {
        let e = e.as_float().expect("float");
        assert!(e < 1e-5, "max deviation from the mean {e}");
    }
}

/// A 2-D float32 NIfTI-1 file (nibabel writes such files; save_nifti does not).
fn write_2d_nifti(path: &Path, nx: i16, ny: i16) {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (i, d) in [2i16, nx, ny, 1, 1, 1, 1, 1].iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&16i16.to_le_bytes());
    h[72..74].copy_from_slice(&32i16.to_le_bytes());
    for i in 0..8 {
        h[76 + 4 * i..80 + 4 * i].copy_from_slice(&1f32.to_le_bytes());
    }
    h[108..112].copy_from_slice(&352f32.to_le_bytes());
    h[112..116].copy_from_slice(&1f32.to_le_bytes());
    h[344..348].copy_from_slice(b"n+1\0");
    for k in 0..(nx as usize * ny as usize) {
        h.extend_from_slice(&(k as f32).to_le_bytes());
    }
    std::fs::write(path, h).expect("write the NIfTI");
}

#[test]
fn smoothing_and_brain_plots_check_dimensions_instead_of_panicking() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_2d_nifti(&dir.path().join("flat.nii"), 5, 6);
    let vox = engine_in(dir.path());
    for (script, needle) in [
        (
            "smooth(load_nifti(P), 4.0)",
            "smooth: smoothing needs a 3-D or 4-D volume",
        ),
        (
            "plot_brain(load_nifti(P))",
            "plot_brain: expected a 3-D volume",
        ),
    ] {
        let path = format!("{:?}", dir.path().join("flat.nii").display().to_string());
        let err = eval_in(&vox, &script.replace('P', &path)).expect_err("an error");
        assert!(err.contains(needle), "{err}");
        assert!(!err.contains("internal error"), "{err}");
    }
}

// ---------------------------------------------------------------------------
// Nothing aborts the process

#[test]
fn libtorch_arguments_are_validated_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    for (script, needle) in [
        ("arange(0, 10, -1)", "arange: step must be positive"),
        ("arange(10, 0, 1)", "arange: step must be negative"),
        (
            "arange(0.0, 0.0 / 0.0)",
            "arange: start and end must be finite",
        ),
        ("arange(0, 10, 0)", "arange: step must be a non-zero number"),
        (
            "full([3], 1000, #{dtype: \"u8\"})",
            "full: 1000 does not fit in u8",
        ),
        (
            "full([3], 0.5, #{dtype: \"i32\"})",
            "full: 0.5 is not an integer",
        ),
        (
            "tensor([300], #{dtype: \"u8\"})",
            "tensor: 300 does not fit in u8",
        ),
        (
            "rand([2], #{dtype: \"i64\"})",
            "rand: random numbers need a float dtype",
        ),
        (
            "randn([2], #{dtype: \"u8\"})",
            "randn: random numbers need a float dtype",
        ),
        ("set_threads(100000)", "set_threads: n must be 1 to"),
        ("set_threads(0)", "set_threads: n must be 1 to"),
        (
            "plot_hist(randn([10]), #{bins: -5})",
            "plot_hist: option 'bins' expects a number of bins ≥ 1, got -5",
        ),
    ] {
        let err = eval_in(&vox, script).expect_err(script);
        assert!(err.contains(needle), "{script}: {err}");
        assert!(!err.contains("internal error"), "{script}: {err}");
    }
}

#[test]
fn deeply_nested_values_are_errors_not_stack_overflows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let deep = "let a = []; for i in 0..300 { a = [a]; }";
    for (tail, op) in [
        ("record(\"x\", a);", "record"),
        ("save_json(a, \"deep.json\");", "save_json"),
        ("tensor(a);", "tensor"),
    ] {
        let err = eval_in(&vox, &format!("{deep} {tail}")).expect_err(tail);
        assert!(err.starts_with(&format!("{op}: ")), "{err}");
        assert!(err.contains("nested more than"), "{err}");
    }
    // Rhai itself recurses when printing and dropping such a value: 6,000
    // levels overflowed the 8 MiB main-thread stack; the script thread's
    // stack holds far more (a deeper array is quadratic to build in Rhai).
    let deep = "let a = []; for i in 0..8000 { a = [a]; }";
    let o = expr_in(dir.path(), &format!("{deep} print(a); a = (); 7"), &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.trim_end().ends_with('7'), "{}", o.stdout);
}

#[test]
fn a_string_doubled_forty_times_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = expr_in(
        dir.path(),
        "let s = \"ab\"; for i in 0..40 { s += s; } s.len()",
        &[],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("strings of up to 256 MB"), "{}", o.stderr);
}

// ---------------------------------------------------------------------------
// Signals keep the record

/// Starts `voxlab run script --out o` in `dir` and waits for its first
/// stdout line (the script prints when it reaches its long part).
fn start_run(dir: &Path, script: &str) -> (Child, String) {
    write_script(dir, "s.rhai", script);
    let mut child = Command::new(bin())
        .args(["run", "s.rhai", "--out", "o"])
        .current_dir(dir)
        .env("VOXLAB_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("voxlab starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    (child, line)
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: signalling the child this test spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

#[test]
fn each_signal_writes_an_interrupted_record_and_exits_with_its_code() {
    let rhai_loop = "save_json(#{a: 1}, \"early.json\");\nrecord(\"m\", 3);\nprint(\"started\");\nlet i = 0;\nloop { i += 1; }\n";
    let primitive = "record(\"m\", 3);\nprint(\"started\");\npermutation_test(randn([200]), randn([200]), #{n_permutations: 50000000});\n";
    for (sig, code, name, script) in [
        (libc::SIGINT, 130, "SIGINT", rhai_loop),
        (libc::SIGTERM, 143, "SIGTERM", rhai_loop),
        (libc::SIGHUP, 129, "SIGHUP", rhai_loop),
        (libc::SIGINT, 130, "SIGINT", primitive),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (child, line) = start_run(dir.path(), script);
        assert_eq!(line.trim(), "started");
        std::thread::sleep(Duration::from_millis(200));
        signal(&child, sig);
        let out = child.wait_with_output().expect("voxlab ends");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("interrupted by {name}")),
            "{stderr}"
        );
        let rec = record_of(&dir.path().join("o"));
        assert_eq!(rec["status"], "interrupted", "{name}");
        assert_eq!(rec["stopped_by"], name);
        assert_eq!(rec["metrics"]["m"], 3);
        if script == rhai_loop {
            assert_eq!(rec["files"], serde_json::json!(["early.json"]));
        }
    }
}

#[test]
fn a_second_signal_ends_the_process_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Two signals in a row: the second ends the process (128 + SIGTERM)
    // whether or not the first was seen by a check yet.
    let (child, _) = start_run(
        dir.path(),
        "print(\"started\");\nlet i = 0;\nloop { i += 1; }\n",
    );
    signal(&child, libc::SIGTERM);
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().expect("voxlab ends");
    assert_eq!(out.status.code(), Some(143));
}

#[test]
fn ctrl_c_in_the_repl_returns_to_the_prompt_with_the_variables() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir.path())
        .env("VOXLAB_THREADS", "1")
        .env("VOXLAB_HISTORY", dir.path().join(".history"))
        .env("TERM", "dumb");
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).expect("spawn in a pty");
    p.exp_string("voxlab> ").expect("prompt");
    p.send_line("let keep = 42;").expect("type");
    p.exp_string("voxlab> ").expect("prompt");
    for long in [
        "let i = 0; loop { i += 1; }",
        "permutation_test(randn([200]), randn([200]), #{n_permutations: 50000000})",
    ] {
        p.send_line(long).expect("type");
        std::thread::sleep(Duration::from_millis(700));
        p.send_control('c').expect("Ctrl-C");
        p.exp_string("interrupted by SIGINT")
            .expect("the input stops");
        p.exp_string("voxlab> ").expect("back at the prompt");
    }
    p.send_line("keep + 1").expect("type");
    p.exp_string("43").expect("the variable survived");
    p.send_line(":quit").expect("type");
    p.exp_eof().expect("the REPL ends");
}

// ---------------------------------------------------------------------------
// No silent loss of a user's data

#[test]
fn default_run_folders_are_unique() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_script(dir.path(), "quick.rhai", "record(\"x\", 1);\n");
    for _ in 0..4 {
        let o = voxlab_in(dir.path(), &["run", "quick.rhai"], None);
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
        .expect("runs/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("run.json").exists())
        .collect();
    assert_eq!(runs.len(), 4);
}

#[test]
fn out_with_an_earlier_run_needs_overwrite_which_clears_its_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_script(dir.path(), "a.rhai", "save_json(#{v: 1}, \"old.json\");\n");
    write_script(dir.path(), "b.rhai", "save_json(#{v: 2}, \"new.json\");\n");
    let o = voxlab_in(dir.path(), &["run", "a.rhai", "--out", "o"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = voxlab_in(dir.path(), &["run", "b.rhai", "--out", "o"], None);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("--overwrite"), "{}", o.stderr);
    assert!(dir.path().join("o/old.json").exists());
    let o = voxlab_in(
        dir.path(),
        &["run", "b.rhai", "--out", "o", "--overwrite"],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!dir.path().join("o/old.json").exists());
    let rec = record_of(&dir.path().join("o"));
    assert_eq!(rec["files"], serde_json::json!(["new.json"]));
    // An output folder that cannot be made is found before the script runs.
    std::fs::write(dir.path().join("plain-file"), "x").expect("write");
    let o = voxlab_in(
        dir.path(),
        &["run", "b.rhai", "--out", "plain-file/sub"],
        None,
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("cannot create the output folder"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("os error"), "{}", o.stderr);
}

#[test]
fn saves_never_replace_the_script_the_record_or_an_earlier_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (script, needle) in [
        (
            "save_json(#{a: 1}, \"run.json\");",
            "run.json is the run's record",
        ),
        (
            "save_json(#{a: 1}, \"x.json\"); save_json(#{a: 2}, \"x.json\");",
            "this run already wrote that file",
        ),
    ] {
        write_script(dir.path(), "s.rhai", script);
        let o = voxlab_in(
            dir.path(),
            &["run", "s.rhai", "--out", "o", "--overwrite"],
            None,
        );
        assert_eq!(o.code, 1, "{}", o.stderr);
        assert!(o.stderr.contains(needle), "{}", o.stderr);
    }
    let script_path = dir.path().join("self.rhai");
    write_script(
        dir.path(),
        "self.rhai",
        &format!("save_json(#{{a: 1}}, \"{}\");", script_path.display()),
    );
    let before = std::fs::read_to_string(&script_path).expect("read");
    let o = voxlab_in(dir.path(), &["run", "self.rhai", "--out", "o2"], None);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("the script being run"), "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(&script_path).expect("read"), before);
}

#[test]
fn image_ids_stay_in_their_folder_and_are_unique() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    for (ids, needle) in [
        ("[\"../escape\", \"b\"]", "cannot be a file name"),
        ("[\"a\", \"a\"]", "two images have the id \"a\""),
        ("[\"\", \"b\"]", "cannot be a file name"),
    ] {
        let err = eval_in(
            &vox,
            &format!("save_images(image_set(rand([2, 3, 4, 4]), {ids}), \"imgs\")"),
        )
        .expect_err(ids);
        assert!(err.starts_with("save_images: "), "{err}");
        assert!(err.contains(needle), "{err}");
    }
    assert!(!dir.path().join("escape.png").exists());
    assert!(!dir.path().join("imgs").exists());
}

// ---------------------------------------------------------------------------
// No silently wrong numbers

#[test]
fn sums_and_dtypes_are_exact_as_in_numpy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let get = |s: &str| eval_in(&vox, s).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert_eq!(
        get("(arange(5) > 2).sum().item()").as_float().ok(),
        Some(2.0)
    );
    assert_eq!(get("(arange(5) > 2).sum().dtype").to_string(), "i64");
    assert_eq!(
        get("ones([300], #{dtype: \"u8\"}).sum().item()")
            .as_float()
            .ok(),
        Some(300.0)
    );
    assert_eq!(
        get("tensor([0.1], #{dtype: \"f64\"}).item()")
            .as_float()
            .ok(),
        Some(0.1)
    );
    assert_eq!(
        get("tensor([123456789], #{dtype: \"i64\"}).item()")
            .as_float()
            .ok(),
        Some(123456789.0)
    );
    assert_eq!(
        get("tensor([9007199254740993], #{dtype: \"i64\"}).to_array()[0]")
            .as_int()
            .ok(),
        Some(9007199254740993)
    );
    assert_eq!(
        get("(tensor([3], #{dtype: \"i64\"}) + 1).dtype").to_string(),
        "i64"
    );
    assert_eq!(get("(arange(4) * 2).to_array()[3]").as_int().ok(), Some(6));
}

#[test]
fn boolean_masks_must_cover_the_axis() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    for script in [
        "arange(12).reshape([4, 3]).rows(tensor([true, false]) > 0)",
        "arange(12).reshape([4, 3]).take(arange(2) > 0, 0)",
        "arange(12).reshape([4, 3]).cols(arange(2) > 0)",
    ] {
        let err = eval_in(&vox, script).expect_err(script);
        assert!(err.contains("boolean mask: expected"), "{script}: {err}");
    }
    let ok = eval_in(&vox, "arange(12).reshape([4, 3]).rows(arange(4) > 1).shape")
        .expect("a full-length mask");
    assert_eq!(ok.to_string(), "[2, 3]");
}

#[test]
fn csv_text_cells_and_duplicate_headers_are_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("dup.csv"), "a,b,a\n1,2,3\n").expect("write");
    std::fs::write(
        dir.path().join("mixed.csv"),
        "stimulus,valence\ns1,1.5\ns2,high\ns3,\n",
    )
    .expect("write");
    let vox = engine_in(dir.path());
    let at = |name: &str| format!("{:?}", dir.path().join(name).display().to_string());
    let err = eval_in(&vox, &format!("load_csv({})", at("dup.csv"))).expect_err("duplicate header");
    assert!(err.contains("names column \"a\" twice"), "{err}");
    let err = eval_in(&vox, &format!("load_csv({})", at("missing.csv"))).expect_err("missing");
    assert!(
        err.ends_with("missing.csv: No such file or directory"),
        "{err}"
    );
    let v =
        eval_in(&vox, &format!("load_csv({}).valence", at("mixed.csv"))).expect("a string column");
    assert_eq!(v.to_string(), "[\"1.5\", \"high\", \"\"]");
}

#[test]
fn a_folder_given_as_a_file_is_named_as_a_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    // Folders named like the files each loader expects.
    for (op, name) in [
        ("load_nifti", "scan.nii"),
        ("load_nifti", "scan.nii.gz"),
        ("load_mask", "mask.nii"),
        ("load_npy", "x.npy"),
        ("load_csv", "t.csv"),
        ("load_json", "v.json"),
        ("read_lines", "words.txt"),
        ("load_ridge", "ridge.safetensors"),
        ("load_resnet", "net.safetensors"),
        ("load_god", "Subject1.h5"),
    ] {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).expect("mkdir");
        let err = eval_in(&vox, &format!("{op}({:?})", folder.display().to_string()))
            .expect_err("a folder");
        assert_eq!(
            err,
            format!("{op}: {}: is a directory, not a file", folder.display()),
            "{op}"
        );
    }
}

/// An .npy file (version 1) whose header dict is `dict` (padded to 64-byte
/// alignment as numpy does) and whose data is `data`.
fn npy_with_header(dict: &[u8], data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_vec();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn fuzzed_npy_headers_are_format_errors() {
    // Found by the read_npy fuzz target: a byte that is not UTF-8 before the
    // shape tuple panicked the header parser (a string sliced inside a
    // character); a shape without its '(' did the same.
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    for (name, dict) in [
        (
            "latin1.npy",
            &b"{'descr': '<f8', 'fortran_order': False, 'shape':\xa0(), }"[..],
        ),
        (
            "paren.npy",
            &b"{'descr': '<f8', 'fortran_order': False, 'shape': ), }"[..],
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, npy_with_header(dict, &[0u8; 8])).expect("write");
        let err = eval_in(&vox, &format!("load_npy({:?})", path.display().to_string()))
            .expect_err("a bad header");
        assert!(
            err.starts_with(&format!(
                "load_npy: {}: not a valid .npy header (shape is not a tuple)",
                path.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn identification_of_nan_predictions_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let err = eval_in(
        &vox,
        "let t = randn([6, 4]); identification(t * (0.0 / 0.0), t)",
    )
    .expect_err("NaN predictions");
    assert!(
        err.starts_with("identification: pred holds NaN in 6 of 6 rows (0, 1, 2, 3, 4, 5)"),
        "{err}"
    );
}

#[test]
fn libtorch_warnings_come_as_voxlab_warnings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = expr_in(dir.path(), "randn([3, 2]).std(0, 3).shape", &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("[2]"), "{}", o.stdout);
    assert!(
        o.stderr
            .contains("warning: std: axis 0 has 3 values and ddof 3 leaves no degrees of freedom"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("[W"), "{}", o.stderr);
    // Warnings libtorch raises itself (here std's, through the options form
    // that leaves the degrees of freedom to libtorch) come through
    // voxlab's path too, naming the function, without C++ file and line.
    let o = expr_in(dir.path(), "randn([1]).std(#{ddof: 1})", &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("warning: std: std(): degrees of freedom is <= 0"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("[W"), "{}", o.stderr);
    assert!(!o.stderr.contains("ReduceOps.cpp"), "{}", o.stderr);
}

#[test]
fn paired_tests_refuse_matrices_and_warn_about_nan() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    for op in ["ttest_rel", "pearson"] {
        let err =
            eval_in(&vox, &format!("{op}(randn([5, 3]), randn([5, 3]))")).expect_err("a matrix");
        // The message names the function, then the argument (a or x).
        assert!(
            err.starts_with(&format!("{op}: "))
                && err.contains("expects 1-D samples, got shape 5×3"),
            "{err}"
        );
    }
    assert!(eval_in(&vox, "pearson(randn([1, 8]), randn([8]))").is_ok());
    let o = expr_in(
        dir.path(),
        "pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]).r",
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("warning: pearson: the r is NaN: an input is constant"),
        "{}",
        o.stderr
    );
}

// ---------------------------------------------------------------------------
// What a script may touch

#[test]
fn sandbox_confines_reads_and_writes_and_a_limit_implies_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = tempfile::tempdir().expect("data dir");
    std::fs::write(data.path().join("t.csv"), "a\n1\n").expect("write");
    std::fs::create_dir_all(dir.path().join("lab")).expect("mkdir");
    let data_csv = data.path().join("t.csv").display().to_string();
    let escape = dir.path().join("escape.json").display().to_string();
    let cases = [
        ("read_lines(\"/etc/passwd\")".to_string(), "read_lines"),
        ("load_csv(\"/proc/self/environ\")".to_string(), "load_csv"),
        (format!("load_csv({data_csv:?})"), "load_csv"),
        (format!("save_json(#{{a: 1}}, {escape:?})"), "save"),
        ("save_json(#{a: 1}, \"../escape.json\")".to_string(), "save"),
        ("import \"../../x\" as x; 1".to_string(), "import"),
    ];
    for (flags, allowed) in [
        (vec!["--sandbox"], None),
        (vec!["--max-seconds", "60"], None),
        (
            vec![
                "--sandbox",
                "--allow-read",
                data.path().to_str().expect("utf-8"),
            ],
            Some(2),
        ),
    ] {
        for (i, (script, op)) in cases.iter().enumerate() {
            write_script(&dir.path().join("lab"), "s.rhai", script);
            let mut args = vec!["run", "lab/s.rhai", "--out", "lab/o", "--overwrite"];
            args.extend_from_slice(&flags);
            let o = voxlab_in(dir.path(), &args, None);
            if allowed == Some(i) {
                assert_eq!(o.code, 0, "{flags:?} {script}: {}", o.stderr);
                continue;
            }
            assert_eq!(o.code, 1, "{flags:?} {script}: {}", o.stderr);
            assert!(o.stderr.contains(&format!("{op}: ")), "{}", o.stderr);
            assert!(
                o.stderr.contains("not allowed in --sandbox mode"),
                "{}",
                o.stderr
            );
        }
    }
    assert!(!dir.path().join("escape.json").exists());
    // Inside the rules all is well: the script's folder, the output folder.
    write_script(
        &dir.path().join("lab"),
        "ok.rhai",
        "let p = save_json(#{a: 1}, \"x.json\"); print(load_json(p).a); save_csv(#{a: [1]}, \"t.csv\");",
    );
    let o = voxlab_in(
        dir.path(),
        &["run", "lab/ok.rhai", "--out", "lab/o2", "--sandbox"],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    // Without --sandbox or a limit, a script reads what its user can.
    let o = expr_in(dir.path(), "read_lines(\"/etc/passwd\").len() > 0", &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("true"), "{}", o.stdout);
}

#[test]
fn no_shell_command_can_be_run_from_a_script() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    for script in [
        "system(\"touch pwned\")",
        "exec(\"touch pwned\")",
        "shell(\"touch pwned\")",
        "run(\"touch pwned\")",
        "command(\"touch\", [\"pwned\"])",
    ] {
        let err = eval_in(&vox, script).expect_err(script);
        assert!(
            err.contains("no function") || err.contains("not found") || err.contains("disabled"),
            "{script}: {err}"
        );
    }
    assert!(!dir.path().join("pwned").exists());
}
