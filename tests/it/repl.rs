//! The REPL in a pseudo-terminal (as a user types), its non-terminal path
//! and its multi-line validator.

use voxlab::cli::repl::is_incomplete;

use crate::common::{bin, voxlab_in};

#[test]
fn piped_input_runs_as_one_script_including_unfinished_looking_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A multi-line function, a line rustyline would call invalid, and a last
    // statement without a newline: all must run.
    let input = "fn sq(x) {\n  x * x\n}\nlet t = tensor([\n  [1, 2],\n  [3, 4]\n]);\nprint(sq(3));\nprint(t.shape)\n";
    let o = voxlab_in(dir.path(), &[], Some(input));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "9\n[2, 2]");
    let o = voxlab_in(
        dir.path(),
        &[],
        Some("print(1);\nlet x = ones([2]) + ones([3]);\nprint(2);"),
    );
    assert_eq!(o.code, 1);
    assert_eq!(o.stdout.trim(), "1");
    assert!(o.stderr.contains("<stdin>:2:"), "{}", o.stderr);
}

#[test]
fn brackets_decide_when_input_is_complete() {
    assert!(is_incomplete("fn f(x) {"));
    assert!(is_incomplete("let t = tensor([[1, 2],"));
    assert!(is_incomplete("let s = \"open"));
    assert!(is_incomplete("/* comment"));
    assert!(!is_incomplete("let s = \"{ not a bracket\";"));
    assert!(!is_incomplete("let c = '{';"));
    assert!(!is_incomplete("// {\nlet x = 1;"));
    assert!(!is_incomplete("fn f(x) { x }"));
    assert!(
        !is_incomplete("let x = 1 +;"),
        "syntax errors are reported, not waited on"
    );
}

#[test]
fn interactive_session_in_a_terminal_survives_errors_and_keeps_state() {
    // rustyline only edits lines on a terminal, so this runs voxlab in a
    // pseudo-terminal and types at it.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = std::process::Command::new(bin());
    cmd.current_dir(dir.path())
        .env("VOXLAB_THREADS", "1")
        .env("VOXLAB_HISTORY", dir.path().join(".history"))
        .env("TERM", "xterm");
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).expect("spawn in a pty");
    let prompt = "voxlab> ";
    p.exp_string(prompt).expect("first prompt");
    p.send_line("let x = tensor([1.0, 2.0, 3.0]);")
        .expect("type");
    p.exp_string(prompt).expect("prompt after a statement");
    p.send_line("x.sum().item() * 7").expect("type");
    p.exp_string("42").expect("the value is printed");
    p.exp_string(prompt).expect("prompt");
    // A bad call is an error naming the function, and the session goes on.
    p.send_line("x + ones([4])").expect("type");
    let err = p.exp_string(prompt).expect("prompt after an error");
    assert!(err.contains("error"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A definition over several lines, then a call.
    p.send_line("fn sq(v) {").expect("type");
    p.send_line("  v * v").expect("type");
    p.send_line("}").expect("type");
    p.exp_string(prompt).expect("prompt after the definition");
    p.send_line("sq(9)").expect("type");
    p.exp_string("81").expect("the function was kept");
    p.exp_string(prompt).expect("prompt");
    // Variables survive the error above.
    p.send_line(":vars").expect("type");
    let vars = p.exp_string(prompt).expect("prompt after :vars");
    assert!(vars.contains('x'), "{vars}");
    p.send_line(":quit").expect("type");
    p.exp_eof().expect("voxlab exits");
    assert!(dir.path().join(".history").exists(), "history is saved");
}

#[test]
fn completion_after_a_dot_offers_the_members_of_the_values_type() {
    use voxlab::cli::repl::complete_line;
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = crate::common::engine_in(dir.path());
    let functions: Vec<String> = vox.help.names().map(str::to_string).collect();
    let vars = vec![
        ("x".to_string(), "Tensor".to_string()),
        ("v".to_string(), "Volume".to_string()),
    ];
    let (start, got) = complete_line("x.me", 4, &functions, &vars, &vox.help);
    assert_eq!(start, 2);
    assert!(got.contains(&"mean".to_string()), "{got:?}");
    let (_, all) = complete_line("x.", 2, &functions, &vars, &vox.help);
    for m in [
        "mean", "abs", "exp", "log", "pow", "shape", "round", "inverse",
    ] {
        assert!(all.contains(&m.to_string()), "{m} missing from {all:?}");
    }
    assert!(!all.contains(&"load_nifti".to_string()), "{all:?}");
    assert!(!all.contains(&"fit_ridge".to_string()), "{all:?}");
    // Through a chain: v.data is a Tensor, x.abs() too.
    let (_, got) = complete_line("v.data.me", 9, &functions, &vars, &vox.help);
    assert!(got.contains(&"mean".to_string()), "{got:?}");
    let (_, got) = complete_line("let y = x.abs().ex", 18, &functions, &vars, &vox.help);
    assert_eq!(got, vec!["exp".to_string()]);
    let (_, got) = complete_line("v.aff", 5, &functions, &vars, &vox.help);
    assert_eq!(got, vec!["affine".to_string()]);
}

#[test]
fn long_help_goes_through_a_pager_on_a_terminal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let paged = dir.path().join("paged.txt");
    let mut cmd = std::process::Command::new(bin());
    cmd.current_dir(dir.path())
        .env("VOXLAB_THREADS", "1")
        .env("VOXLAB_HISTORY", dir.path().join(".history"))
        .env("VOXLAB_PAGER", format!("cat > '{}'", paged.display()))
        .env("LINES", "24")
        .env("TERM", "xterm");
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).expect("spawn in a pty");
    p.exp_string("voxlab> ").expect("first prompt");
    p.send_line("help()").expect("type");
    p.exp_string("voxlab> ").expect("prompt after help");
    p.send_line(":quit").expect("type");
    p.exp_eof().expect("voxlab exits");
    let text = std::fs::read_to_string(&paged).expect("the pager got the text");
    assert!(text.contains("Tensors: creation"), "{text}");
}
