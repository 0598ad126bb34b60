//! Helpers: run the real binary, evaluate scripts in-process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rhai::Dynamic;
use voxlab::cli::run::{compile, eval, Outcome};
use voxlab::engine::{self, Limits, Session, Voxlab};

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_voxlab"))
}

/// Runs voxlab with `args` in `dir`, feeding `stdin`; asserts that no Rust
/// panic text reached the user.
pub fn voxlab_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("VOXLAB_THREADS", "1")
        .env("VOXLAB_HISTORY", dir.join(".history"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the voxlab binary starts");
    {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes())
                .expect("stdin accepts the input");
        }
    }
    let out = child.wait_with_output().expect("voxlab finishes");
    let o = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for text in [&o.stdout, &o.stderr] {
        assert!(
            !text.contains("panicked"),
            "panic text reached the user:\n{text}"
        );
        assert!(
            !text.contains("RUST_BACKTRACE"),
            "panic text reached the user:\n{text}"
        );
    }
    o
}

pub fn voxlab(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    voxlab_in(dir.path(), args, None)
}

/// An in-process engine whose output folder is `dir`.
pub fn engine_in(dir: &Path) -> Voxlab {
    engine::build(
        Session::new(dir.to_path_buf(), Default::default()),
        Limits::default(),
    )
}

/// Evaluates a script in-process; Ok(value) or Err(error message).
pub fn eval_in(vox: &Voxlab, script: &str) -> Result<Dynamic, String> {
    let mut scope = rhai::Scope::new();
    let ast = compile(vox, "<test>", script, &scope).map_err(|d| d.message)?;
    match eval(vox, &ast, &mut scope) {
        Outcome::Ok(v) => Ok(v),
        Outcome::Failed(d) => Err(d.message),
    }
}

pub fn eval_script(script: &str) -> Result<Dynamic, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    eval_in(&engine_in(dir.path()), script)
}

pub fn eval_f64(script: &str) -> f64 {
    let v = eval_script(script).unwrap_or_else(|e| panic!("script failed: {e}\n{script}"));
    v.as_float()
        .or_else(|_| v.as_int().map(|i| i as f64))
        .unwrap_or_else(|_| panic!("not a number: {v:?}"))
}

/// As rhai-ml's assert_script_error: the script must fail politely with a
/// message containing every one of `expected`.
pub fn assert_script_error(script: &str, expected: &[&str]) {
    match eval_script(script) {
        Ok(v) => panic!("script should have failed but returned {v:?}:\n{script}"),
        Err(msg) => {
            for e in expected {
                assert!(
                    msg.contains(e),
                    "error message {msg:?} lacks {e:?}\nscript: {script}"
                );
            }
            assert!(!msg.contains("panicked"), "panic text in {msg:?}");
        }
    }
}

/// A JSON file (a fixture, a reference, a run.json) parsed, or a panic naming it.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Runs a fixture checker (tests/fixtures/REL, a Python script) with the
/// fixtures environment's Python (`make fixtures`; $VOXLAB_CACHE or
/// ~/.cache/voxlab) on `arg`, prints its output and asserts it succeeded.
/// For the ignored tests that load what voxlab saved back into Python.
pub fn run_fixture_checker(rel: &str, arg: &Path) {
    let cache = std::env::var("VOXLAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/voxlab")
        });
    let run = Command::new(cache.join("venv-fixtures/bin/python"))
        .arg(fixture(rel))
        .arg(arg)
        .output()
        .expect("the fixtures environment's python (make fixtures)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{text}");
    assert!(run.status.success(), "{text}");
}
