//! Builds the Rhai engine: one registration module per domain, the help
//! registry, the module resolver for `import`, and sandbox limits.

pub mod captions;
pub mod data;
pub mod diffusion;
pub mod error;
pub mod eval;
pub mod gans;
pub mod help;
pub mod io;
pub mod json;
pub mod models;
pub mod nets;
pub mod options;
pub mod plot;
pub mod reconstruction;
pub mod runs;
pub mod runtime;
pub mod session;
pub mod stats;
pub mod tensor;
pub mod train;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rhai::module_resolvers::FileModuleResolver;
use rhai::{Dynamic, Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

pub use help::HelpRegistry;
pub use session::Session;

mod stdlib {
    include!(concat!(env!("OUT_DIR"), "/stdlib.rs"));
}

/// Names of the modules shipped inside the binary (`import "NAME" as x;`).
pub fn stdlib_modules() -> impl Iterator<Item = &'static str> {
    stdlib::STDLIB.iter().map(|(name, _)| *name)
}

/// Limits that stop a runaway script (teaching labs, untrusted scripts).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub max_seconds: Option<f64>,
    pub max_memory_mb: Option<u64>,
    pub max_operations: Option<u64>,
}

/// A ready engine with its help registry and session.
pub struct Voxlab {
    pub engine: Engine,
    pub help: Rc<HelpRegistry>,
    pub session: Session,
}

/// `import "name"`: the embedded stdlib first, then files relative to the
/// importing script.
struct Resolver {
    files: FileModuleResolver,
    cache: RefCell<HashMap<String, Shared<Module>>>,
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let Some((name, code)) = stdlib::STDLIB.iter().find(|(name, _)| *name == path) else {
            return self.files.resolve(engine, source, path, pos);
        };
        if let Some(m) = self.cache.borrow().get(*name) {
            return Ok(m.clone());
        }
        let mut ast = engine.compile(*code).map_err(|e| {
            Box::new(EvalAltResult::ErrorInModule(
                path.into(),
                Box::new(e.into()),
                pos,
            ))
        })?;
        ast.set_source(format!("stdlib/{name}.rhai"));
        let module: Shared<Module> = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.into(), e, pos)))?
            .into();
        self.cache
            .borrow_mut()
            .insert(name.to_string(), module.clone());
        Ok(module)
    }
}

/// Resident memory of this process in MiB (Linux), for `--max-memory`.
fn resident_mb() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64 / (1024 * 1024))
}

fn apply_limits(engine: &mut Engine, limits: Limits) {
    if let Some(n) = limits.max_operations {
        engine.set_max_operations(n);
    }
    if limits.max_seconds.is_none() && limits.max_memory_mb.is_none() {
        return;
    }
    let start = Instant::now();
    let deadline = limits.max_seconds.map(Duration::from_secs_f64);
    engine.on_progress(move |ops| {
        // Checking the clock and /proc on every operation would dominate.
        if ops % 4096 != 0 {
            return None;
        }
        if let Some(d) = deadline {
            if start.elapsed() > d {
                return Some(Dynamic::from(format!(
                    "script stopped: it ran longer than --max-seconds {}",
                    d.as_secs_f64()
                )));
            }
        }
        if let Some(limit) = limits.max_memory_mb {
            if resident_mb().is_some_and(|mb| mb > limit) {
                return Some(Dynamic::from(format!(
                    "script stopped: memory use passed --max-memory {limit} MB"
                )));
            }
        }
        None
    });
}

/// Builds the engine for one session (a run, a REPL, a `-e` expression).
pub fn build(session: Session, limits: Limits) -> Voxlab {
    crate::device::init_cuda();
    let mut engine = Engine::new();
    let mut help = HelpRegistry::default();
    runtime::register(&mut engine, &mut help, &session);
    tensor::register(&mut engine, &mut help);
    io::register(&mut engine, &mut help, &session);
    data::register(&mut engine, &mut help, &session);
    data::register_simulation(&mut engine, &mut help, &session);
    stats::register(&mut engine, &mut help);
    models::register(&mut engine, &mut help, &session);
    nets::register(&mut engine, &mut help, &session);
    captions::register(&mut engine, &mut help, &session);
    gans::register(&mut engine, &mut help, &session);
    train::register(&mut engine, &mut help, &session);
    eval::register(&mut engine, &mut help);
    reconstruction::register(&mut engine, &mut help);
    diffusion::register(&mut engine, &mut help, &session);
    plot::register(&mut engine, &mut help, &session);
    runs::register(&mut engine, &mut help);
    let help = Rc::new(help);
    runtime::register_help(&mut engine, help.clone());
    runtime::register_number_printing(&mut engine);
    engine.set_module_resolver(Resolver {
        files: FileModuleResolver::new(),
        cache: RefCell::new(HashMap::new()),
    });
    // Rhai's defaults (tighter in debug builds) reject ordinary method chains
    // such as x.reshape(...).mean(5).mean(3).reshape(...) inside a function.
    engine.set_max_expr_depths(256, 128);
    apply_limits(&mut engine, limits);
    engine.on_debug(|text, source, pos| match (source, pos.line()) {
        (Some(src), Some(line)) => eprintln!("[{src}:{line}] {text}"),
        (None, Some(line)) => eprintln!("[line {line}] {text}"),
        _ => eprintln!("{text}"),
    });
    Voxlab {
        engine,
        help,
        session,
    }
}
