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
use std::sync::Arc;

use rhai::module_resolvers::FileModuleResolver;
use rhai::{Dynamic, Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

use crate::cancel;
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
    /// The run's stop flag; evaluation makes it current on its thread so
    /// primitives can check it between steps.
    pub token: Arc<cancel::Token>,
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
            if crate::sandbox::active() {
                // As FileModuleResolver finds it: beside the importing script.
                let base = source
                    .and_then(|s| std::path::Path::new(s).parent())
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default();
                let file = base.join(format!("{path}.rhai"));
                crate::sandbox::check_read("import", &file).map_err(error::to_rhai)?;
            }
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

/// Largest string a script may build (bytes), array (elements, counted over
/// nested arrays) and map (entries): far above any analysis's needs, and
/// below sizes whose allocation would abort the process (a string doubled 40
/// times asks for a terabyte).
pub const MAX_STRING_BYTES: usize = 256 << 20;
pub const MAX_ARRAY_ELEMENTS: usize = 64 << 20;
pub const MAX_MAP_ENTRIES: usize = 16 << 20;

/// The engine reads the run's stop flag (deadline, memory ceiling, signals;
/// see [`crate::cancel`]) on every operation: one relaxed atomic load until a stop is asked for.
fn apply_limits(engine: &mut Engine, limits: Limits) -> Arc<cancel::Token> {
    if let Some(n) = limits.max_operations {
        engine.set_max_operations(n);
    }
    engine.set_max_string_size(MAX_STRING_BYTES);
    engine.set_max_array_size(MAX_ARRAY_ELEMENTS);
    engine.set_max_map_size(MAX_MAP_ENTRIES);
    let token = cancel::Token::new(limits.max_seconds, limits.max_memory_mb);
    let t = token.clone();
    engine.on_progress(move |_| {
        t.stop()
            .map(|stop| Dynamic::from(format!("script stopped: {stop}")))
    });
    token
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
    let token = apply_limits(&mut engine, limits);
    engine.on_debug(|text, source, pos| match (source, pos.line()) {
        (Some(src), Some(line)) => eprintln!("[{src}:{line}] {text}"),
        (None, Some(line)) => eprintln!("[line {line}] {text}"),
        _ => eprintln!("{text}"),
    });
    Voxlab {
        engine,
        help,
        session,
        token,
    }
}
