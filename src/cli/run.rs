//! Running scripts: `voxlab run FILE`, `voxlab -e EXPR`, and piped stdin.

use std::path::PathBuf;
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
    pub seed: i64,
    pub limits: Limits,
    pub argv: Vec<String>,
}

/// `voxlab run`: runs a script file and writes run.json. Returns the exit code.
pub fn run_script(args: RunArgs) -> i32 {
    let text = match std::fs::read_to_string(&args.script) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("voxlab run: cannot read {}: {e}", args.script.display());
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
    let out_dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("{stem}-{}", record::compact_timestamp(started)))
    });
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!(
            "voxlab run: cannot create the output folder {}: {e}",
            out_dir.display()
        );
        return 2;
    }
    let session = Session::new(out_dir.clone(), args.sets.iter().cloned().collect());
    crate::device::seed(args.seed);
    session.state_mut().seed = Some(args.seed);
    let vox = engine::build(session.clone(), args.limits);
    let name = args.script.display().to_string();
    let (code, diag) = run_text(&vox, &name, &text, false);

    let unused = session.unused_params();
    if !unused.is_empty() {
        eprintln!(
            "warning: --set {} not used by the script (no param(...) asked for it)",
            unused.join(", ")
        );
    }
    let info = record::RunInfo {
        script: &args.script,
        script_text: &text,
        started,
        duration: clock.elapsed(),
        error: diag.as_ref(),
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
    interrupted_code(code)
}

/// A run that Ctrl-C interrupted (during training) but that otherwise ended
/// well exits with 130.
fn interrupted_code(code: i32) -> i32 {
    if code == 0 && crate::models::train::interrupted() {
        record::EXIT_INTERRUPTED
    } else {
        code
    }
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
    let vox = engine::build(session, limits);
    interrupted_code(run_text(&vox, name, text, true).0)
}
