//! The REPL's non-terminal path and its multi-line validator.

use voxlab::cli::repl::is_incomplete;

use crate::common::voxlab_in;

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
