//! Running scripts: `voxlab run FILE`, `voxlab -e EXPR`, and piped stdin.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use rhai::{Dynamic, Scope, AST};

use super::diagnostic::{self, Diagnostic};
use super::record;
use crate::engine::{self, error::describe_panic, Limits, Session, Voxlab};

/// How a script ended.
pub enum Outcome {
    Ok(Dynamic),
    Failed(Diagnostic),
}

/// Compiles `text` (named `name` in messages, `source` for relative imports).
pub fn compile(vox: &Voxlab, name: &str, text: &str, scope: &Scope) -> Result<AST, Diagnostic> {
    let mut ast = vox
        .engine
        .compile_with_scope(scope, text)
        .map_err(|e| diagnostic::from_parse(&e, text))?;
    ast.set_source(name);
    Ok(ast)
}

/// Evaluates an AST; a panic that escaped every guard still becomes an error.
pub fn eval(vox: &Voxlab, ast: &AST, scope: &mut Scope) -> Outcome {
    // Primitives find the run's stop flag through this thread.
    let _current = crate::cancel::enter(vox.token.clone());
    let result =
        crate::engine::error::guarded(|| vox.engine.eval_ast_with_scope::<Dynamic>(scope, ast));
    match result {
        Ok(Ok(v)) => Outcome::Ok(v),
        Ok(Err(e)) => {
            let script_fns: Vec<String> =
                ast.iter_functions().map(|f| f.name.to_string()).collect();
            Outcome::Failed(diagnostic::from_eval(&e, &vox.help, &script_fns))
        }
        Err(payload) => Outcome::Failed(Diagnostic {
            message: format!(
                "internal error: {} — this is a bug in voxlab, please report it",
                describe_panic(payload.as_ref())
            ),
            location: None,
            trace: Vec::new(),
        }),
    }
}

/// Compiles and runs a whole text; prints errors to stderr. Returns the exit code.
pub fn run_text(
    vox: &Voxlab,
    name: &str,
    text: &str,
    print_result: bool,
) -> (i32, Option<Diagnostic>) {
    let mut scope = Scope::new();
    let outcome = match compile(vox, name, text, &scope) {
        Ok(ast) => eval(vox, &ast, &mut scope),
        Err(d) => Outcome::Failed(d),
    };
    match outcome {
        Outcome::Ok(v) => {
            if print_result && !v.is_unit() {
                println!("{}", super::show(&v));
            }
            (0, None)
        }
        Outcome::Failed(d) => {
            eprintln!("{}", d.render(name, text));
            (1, Some(d))
        }
    }
}

pub struct RunArgs {
    pub script: PathBuf,
    pub sets: Vec<(String, String)>,
    pub out: Option<PathBuf>,
    /// Replace an earlier run's record (and its files) in `out`.
    pub overwrite: bool,
    /// Sandbox mode with these extra readable folders (see [`crate::sandbox`]).
    pub sandbox: Option<Vec<PathBuf>>,
    pub seed: i64,
    pub limits: Limits,
    pub argv: Vec<String>,
}

/// A new folder under runs/ named after the script and the time to the
/// millisecond, created atomically: a name taken by a parallel run gets a
/// counter (-2, -3, ...) instead of sharing that run's folder.
fn fresh_run_dir(stem: &str, started: SystemTime) -> std::io::Result<PathBuf> {
    let base = format!("{stem}-{}", record::compact_timestamp_ms(started));
    std::fs::create_dir_all("runs")?;
    for n in 1.. {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = PathBuf::from("runs").join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

/// Readies `--out DIR`: creates it; refuses a folder that holds an earlier
/// run's record unless `overwrite` (then that run's files and record are
/// removed first, so the new record lists only what this run wrote); and
/// finds a folder it cannot write into before the script starts.
fn prepare_out_dir(dir: &Path, overwrite: bool) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "cannot create the output folder {}: {}",
            dir.display(),
            plain(&e)
        )
    })?;
    let record = dir.join("run.json");
    if record.exists() {
        if !overwrite {
            return Err(format!(
                "{} already holds a run (run.json); pass --overwrite to replace it and its files, or choose another --out",
                dir.display()
            ));
        }
        let old: serde_json::Value = std::fs::read_to_string(&record)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        for f in old["files"].as_array().into_iter().flatten() {
            let Some(name) = f.as_str() else { continue };
            let rel = Path::new(name);
            // Only files inside the folder: a record never sends a removal elsewhere.
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                continue;
            }
            let path = dir.join(rel);
            if path.is_file() {
                std::fs::remove_file(&path).map_err(|e| {
                    format!(
                        "--overwrite: cannot remove {}: {}",
                        path.display(),
                        plain(&e)
                    )
                })?;
            }
        }
        std::fs::remove_file(&record).map_err(|e| {
            format!(
                "--overwrite: cannot remove {}: {}",
                record.display(),
                plain(&e)
            )
        })?;
    }
    let probe = dir.join(format!(".voxlab-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        format!(
            "cannot write into the output folder {}: {}",
            dir.display(),
            plain(&e)
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// An operating-system error as a sentence, without Rust's debug text.
pub fn plain(e: &std::io::Error) -> String {
    crate::error::plain_io(e)
}

/// How the run ended: a signal or a limit, if one stopped it, else by the
/// script's own success or failure.
fn ending(vox: &Voxlab, diag: Option<&Diagnostic>) -> record::Ending {
    if let Some(sig) = crate::cancel::interrupt_signal() {
        return record::Ending::Interrupted(sig);
    }
    if let Some(stop) = vox.token.limit_stop() {
        return record::Ending::Stopped(stop.key());
    }
    match diag {
        None => record::Ending::Ok,
        Some(d) if d.message.contains("--max-operations") => {
            record::Ending::Stopped("max_operations".into())
        }
        Some(_) => record::Ending::Failed,
    }
}

/// `voxlab run`: runs a script file and writes run.json. Returns the exit code.
pub fn run_script(args: RunArgs) -> i32 {
    let text = match std::fs::read_to_string(&args.script) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "voxlab run: cannot read {}: {}",
                args.script.display(),
                plain(&e)
            );
            return 2;
        }
    };
    let started = SystemTime::now();
    let clock = Instant::now();
    let stem = args
        .script
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "script".into());
    let out_dir = match &args.out {
        Some(dir) => match prepare_out_dir(dir, args.overwrite) {
            Ok(()) => dir.clone(),
            Err(msg) => {
                eprintln!("voxlab run: {msg}");
                return 2;
            }
        },
        None => match fresh_run_dir(&stem, started) {
            Ok(dir) => dir,
            Err(e) => {
                eprintln!(
                    "voxlab run: cannot create a run folder under runs/: {}",
                    plain(&e)
                );
                return 2;
            }
        },
    };
    if let Some(allow_read) = &args.sandbox {
        let script_dir = match args.script.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Err(e) = crate::sandbox::enable(&script_dir, &out_dir, allow_read) {
            eprintln!("voxlab run: {e}");
            return 2;
        }
    }
    crate::cancel::install_signal_handlers();
    let session = Session::new(out_dir.clone(), args.sets.iter().cloned().collect());
    crate::device::seed(args.seed);
    session.state_mut().seed = Some(args.seed);
    session.state_mut().script = Some(args.script.clone());
    let vox = engine::build(session.clone(), args.limits);
    let name = args.script.display().to_string();
    let (_, diag) = run_text(&vox, &name, &text, false);

    let unused = session.unused_params();
    if !unused.is_empty() {
        eprintln!(
            "warning: --set {} not used by the script (no param(...) asked for it)",
            unused.join(", ")
        );
    }
    let ending = ending(&vox, diag.as_ref());
    let code = ending.exit_code();
    let info = record::RunInfo {
        script: &args.script,
        script_text: &text,
        started,
        duration: clock.elapsed(),
        error: diag.as_ref(),
        ending,
        args: &args.argv,
    };
    let rec = record::build(&info, &session);
    match record::write(&out_dir, &rec) {
        Ok(path) => eprintln!("run record: {}", path.display()),
        Err(e) => {
            eprintln!("voxlab run: {e}");
            return code.max(1);
        }
    }
    code
}

/// `voxlab -e EXPR` and piped stdin: run a text, print its value.
pub fn run_inline(
    name: &str,
    text: &str,
    sets: Vec<(String, String)>,
    out: Option<PathBuf>,
    seed: i64,
    limits: Limits,
) -> i32 {
    let out_dir = out.unwrap_or_else(|| PathBuf::from("."));
    let session = Session::new(out_dir, sets.into_iter().collect());
    crate::device::seed(seed);
    session.state_mut().seed = Some(seed);
    crate::cancel::install_signal_handlers();
    let vox = engine::build(session, limits);
    let (_, diag) = run_text(&vox, name, text, true);
    ending(&vox, diag.as_ref()).exit_code()
}
