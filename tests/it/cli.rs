//! The command line: exit codes, printed values, error positions.

use crate::common::{voxlab, voxlab_in};

#[test]
fn expression_prints_its_value() {
    let o = voxlab(&["-e", "let t = tensor([[1, 2], [3, 4]]); t.sum(0)"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "Tensor[f32; 2; cpu] mean=5 sd=1");
}

#[test]
fn tensors_print_as_summaries_not_numbers() {
    let o = voxlab(&["-e", "zeros([1200, 4466])"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "Tensor[f32; 1200×4466; cpu] mean=0 sd=0");
}

#[test]
fn syntax_error_shows_line_column_and_caret() {
    let o = voxlab(&["-e", "let a = 1;\nlet b = (a + ;"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("syntax error"), "{}", o.stderr);
    assert!(o.stderr.contains("<expr>:2:"), "{}", o.stderr);
    assert!(o.stderr.contains(" 2 | let b = (a + ;"), "{}", o.stderr);
    assert!(o.stderr.contains('^'), "{}", o.stderr);
}

#[test]
fn runtime_error_names_function_expected_and_given_with_position() {
    let o = voxlab(&[
        "-e",
        "let x = ones([3, 4]);\nlet y = ones([5, 2]);\nlet z = matmul(x, y);",
    ]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("error: matmul:"), "{}", o.stderr);
    assert!(o.stderr.contains("3×4"), "{}", o.stderr);
    assert!(o.stderr.contains("5×2"), "{}", o.stderr);
    assert!(o.stderr.contains("<expr>:3:9"), "{}", o.stderr);
    let caret_line = o.stderr.lines().last().unwrap_or("");
    assert_eq!(
        caret_line.find('^'),
        Some(" 3 | let z = ".len()),
        "{}",
        o.stderr
    );
}

#[test]
fn error_inside_a_script_function_points_at_the_failing_line() {
    let o = voxlab(&["-e", "fn f(x) {\n  x.rows([9])\n}\nf(ones([2, 2]))"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("rows: index 9 is out of range for axis 0 of length 2"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("<expr>:2:"), "{}", o.stderr);
    assert!(
        o.stderr.contains("in call to 'f' at line 4"),
        "{}",
        o.stderr
    );
}

#[test]
fn unknown_function_suggests_help() {
    let o = voxlab(&["-e", "zscore(\"text\")"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("no function 'zscore' takes (string)"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("help(\"zscore\")"), "{}", o.stderr);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["run"][..],
        &["--bogus"],
        &["frobnicate"],
        &["run", "a.rhai", "--set", "novalue"],
        &["run", "a.rhai", "--seed", "x"],
        &["-e"],
    ] {
        let o = voxlab(args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains("voxlab"), "{}", o.stderr);
    }
    let o = voxlab(&["run", "does-not-exist.rhai"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("does-not-exist.rhai"), "{}", o.stderr);
}

#[test]
fn help_version_info() {
    let o = voxlab(&["--help"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("voxlab run FILE.rhai"));
    let o = voxlab(&["--version"]);
    assert_eq!(o.stdout.trim(), format!("voxlab {}", voxlab::VERSION));
    let o = voxlab(&["info"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for key in [
        "voxlab",
        "rhai",
        "libtorch  2.11.0",
        "device    cpu",
        "CUDA",
        "threads",
    ] {
        assert!(o.stdout.contains(key), "info lacks {key}:\n{}", o.stdout);
    }
}

#[test]
fn doc_shows_one_function_or_suggests() {
    let o = voxlab(&["doc", "zscore"]);
    assert_eq!(o.code, 0);
    assert!(
        o.stdout
            .starts_with("zscore(t: Tensor, opts?: map) -> Tensor"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("ddof"), "{}", o.stdout);
    let o = voxlab(&["doc", "zscor"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("did you mean zscore"), "{}", o.stderr);
}

#[test]
fn sandbox_limits_stop_runaway_scripts() {
    let o = voxlab(&[
        "-e",
        "let i = 0; loop { i += 1; }",
        "--max-operations",
        "10000",
    ]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("--max-operations"), "{}", o.stderr);
    let o = voxlab(&["-e", "let i = 0; loop { i += 1; }", "--max-seconds", "0.3"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("ran longer than --max-seconds 0.3"),
        "{}",
        o.stderr
    );
    let o = voxlab(&[
        "-e",
        "let xs = []; loop { xs.push(ones([1000, 1000])); }",
        "--max-memory",
        "600",
    ]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("--max-memory 600 MB"), "{}", o.stderr);
}

#[test]
fn imports_from_stdlib_and_relative_to_the_script() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("lib")).expect("mkdir");
    std::fs::write(dir.path().join("lib/util.rhai"), "fn double(x) { x * 2 }").expect("write");
    std::fs::write(
        dir.path().join("lib/main.rhai"),
        "import \"util\" as u;\nimport \"decoding\" as dec;\nlet x = randn([6, 10]);\nprint(u::double(21));\nprint(dec::top1_identification(x, x));",
    )
    .expect("write");
    let o = voxlab_in(dir.path(), &["run", "lib/main.rhai", "--out", "o"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "42\n1.0");
}
