//! The command line: exit codes, printed values, error positions.

use crate::common::{voxlab, voxlab_in};

#[test]
fn expression_prints_its_value() {
    let o = voxlab(&["-e", "let t = tensor([[1, 2], [3, 4]]); t.sum(0)"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "Tensor[f32; 2; cpu] [4, 6]");
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
        o.stderr
            .contains("zscore: t: expected a Tensor, got string"),
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
    assert_eq!(o.stdout.trim(), "42\n1");
}

#[test]
fn unknown_functions_and_methods_get_did_you_mean() {
    let o = voxlab(&["-e", "let x = randn([3, 2]); x.mena()"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("no function or method named 'mena'"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("did you mean mean"), "{}", o.stderr);
    let o = voxlab(&["-e", "zscore_columns(randn([3, 2]))"]);
    assert!(o.stderr.contains("did you mean zscore"), "{}", o.stderr);
    // A function the script defines counts as well.
    let o = voxlab(&["-e", "fn centre(x) { x - x.mean(0) } centr(randn([3, 2]))"]);
    assert!(o.stderr.contains("did you mean centre"), "{}", o.stderr);
    // An unknown property of a known type.
    let o = voxlab(&["-e", "randn([3]).shap"]);
    assert!(o.stderr.contains("did you mean shape"), "{}", o.stderr);
    // help() of a method's misspelling too (methods live in type entries).
    let o = voxlab(&["-e", "help(\"mena\")"]);
    assert!(o.stderr.contains("did you mean mean"), "{}", o.stderr);
}

#[test]
fn a_wrong_argument_type_names_the_argument() {
    let o = voxlab(&["-e", "fit_ridge(\"x.npy\", randn([4, 2]))"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("fit_ridge: x: expected a Tensor or an array of numbers, got string"),
        "{}",
        o.stderr
    );
    let o = voxlab(&["-e", "pearson(randn([4]), \"b\")"]);
    assert!(
        o.stderr
            .contains("pearson: y: expected a Tensor or an array of numbers, got string"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_missing_semicolon_is_reported_at_the_end_of_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("s.rhai"),
        "let a = 1\n\n// a comment\nlet b = 2;\n",
    )
    .expect("write");
    let o = voxlab_in(dir.path(), &["run", "s.rhai", "--out", "o"], None);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("s.rhai:1:10"), "{}", o.stderr);
    assert!(o.stderr.contains("1 | let a = 1\n"), "{}", o.stderr);
}

#[test]
fn numbers_print_with_readable_precision() {
    let o = voxlab(&["-e", "let df = 166.0; let p = 0.0000016345; let r = 0.93412345; print(`t(${df}) p = ${p} r = ${r}`); print(r); r"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "t(166) p = 1.63e-6 r = 0.9341\n0.9341\n0.9341\n");
    // Whole-number floats of counts read as counts in messages.
    let o = voxlab(&[
        "-e",
        "let n = ones([3755]).sum().item(); print(`${n} of 40176 voxels`)",
    ]);
    assert_eq!(o.stdout, "3755 of 40176 voxels\n", "{}", o.stderr);
}

#[test]
fn small_matrices_print_their_values_and_masks_their_count() {
    let o = voxlab(&[
        "-e",
        "tensor([[-3, 0, 0, 78], [0, 3, 0, -112], [0, 0, 3, -50], [0, 0, 0, 1]])",
    ]);
    assert_eq!(
        o.stdout.trim_end(),
        "Tensor[f32; 4×4; cpu]\n[[-3, 0, 0,   78],\n [ 0, 3, 0, -112],\n [ 0, 0, 3,  -50],\n [ 0, 0, 0,    1]]"
    );
    let o = voxlab(&["-e", "arange(0, 40000) < 3755"]);
    assert_eq!(
        o.stdout.trim_end(),
        "Tensor[bool; 40000; cpu] 3755 true of 40000"
    );
    let o = voxlab(&["-e", "tensor([1.5, 2.25])"]);
    assert_eq!(o.stdout.trim_end(), "Tensor[f32; 2; cpu] [1.5, 2.25]");
}

#[test]
fn a_bad_set_value_is_an_error_without_the_unused_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("s.rhai"),
        "let q = param(\"quick\", false);\n",
    )
    .expect("write");
    let o = voxlab_in(
        dir.path(),
        &["run", "s.rhai", "--set", "quick=maybe", "--out", "o"],
        None,
    );
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("--set quick=maybe: expected true or false"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("not used by the script"), "{}", o.stderr);
}

#[test]
fn readme_set_examples_name_parameters_of_their_scripts() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut checked = 0;
    for line in readme.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(script) = words.iter().find(|w| w.ends_with(".rhai")) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(root.join(script)) else {
            continue;
        };
        for pair in words
            .windows(2)
            .filter(|p| p[0] == "--set" || p[0] == "--grid")
        {
            let key = pair[1].split('=').next().unwrap_or("");
            assert!(
                text.contains(&format!("param(\"{key}\"")),
                "README: `{line}` sets {key}, which {script} never reads with param"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "the README's --set examples were found");
}

/// Code blocks of docs/getting-started.md, in order (the text between a
/// ```rhai line and the closing fence).
fn getting_started_blocks() -> (String, Vec<String>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/getting-started.md")).expect("doc");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```rhai") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    (doc, blocks)
}

/// The getting-started REPL session shows what the REPL prints: its `>>`
/// lines replayed (bare expressions printed) give the doc's output lines.
#[test]
fn getting_started_repl_session_prints_what_the_doc_shows() {
    let (_, blocks) = getting_started_blocks();
    let session = blocks
        .iter()
        .find(|b| b.starts_with(">> "))
        .expect("a REPL block");
    let mut script = String::new();
    let mut expected = Vec::new();
    for line in session.lines() {
        match line.strip_prefix(">> ") {
            Some(input)
                if input.starts_with("let ") || input.ends_with(".save(\"v4_rdm.png\")") =>
            {
                script.push_str(input);
                script.push_str(if input.trim_end().ends_with(';') || input.contains("//") {
                    "\n"
                } else {
                    ";\n"
                });
            }
            Some(expr) => script.push_str(&format!("print({expr});\n")),
            None => expected.push(line.to_string()),
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let o = voxlab_in(dir.path(), &["-e", &script], None);
    assert_eq!(o.code, 0, "{script}\n{}", o.stderr);
    let printed: Vec<&str> = o.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    for line in &expected {
        assert!(
            printed.contains(&line.as_str()),
            "getting-started.md shows `{line}`, the REPL prints:\n{}",
            o.stdout
        );
    }
    assert!(expected.len() >= 3 && dir.path().join("v4_rdm.png").exists());
}

/// The getting-started first script prints the value the doc says it prints.
#[test]
fn getting_started_first_script_prints_what_the_doc_quotes() {
    let (doc, blocks) = getting_started_blocks();
    let script = blocks
        .iter()
        .find(|b| b.contains("param(\"n_train\""))
        .expect("first.rhai");
    let quoted = doc
        .split("It prints `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("the doc quotes what first.rhai prints");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("first.rhai"), script).expect("write");
    let o = voxlab_in(
        dir.path(),
        &[
            "run",
            "first.rhai",
            "--set",
            "n_train=400",
            "--out",
            "runs/first",
        ],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let shown = quoted.trim_end_matches('…');
    assert!(
        o.stdout.contains(shown),
        "getting-started.md says first.rhai prints `{quoted}`, it printed:\n{}",
        o.stdout
    );
    assert!(dir.path().join("runs/first/valence.png").exists());
}
