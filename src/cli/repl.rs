//! The interactive REPL: a thin layer over the engine, as rhai-repl and evcxr
//! do it. A command table (`:help` lists it), completion of functions,
//! methods and variables, multi-line input while brackets are open, history
//! in a file, and errors with a caret that leave the session running.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use rhai::{Scope, AST};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Config, Editor, Helper, Highlighter, Hinter};

use super::run::{compile, eval, Outcome};
use super::show;
use crate::engine::{self, Limits, Session, Voxlab};

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "break", "continue",
    "return", "import", "export", "as", "true", "false", "switch", "throw", "try", "catch",
];

struct Command {
    name: &'static str,
    args: &'static str,
    help: &'static str,
}

const COMMANDS: &[Command] = &[
    Command {
        name: ":help",
        args: "",
        help: "this list of REPL commands (help() lists functions)",
    },
    Command {
        name: ":vars",
        args: "",
        help: "variables defined in this session",
    },
    Command {
        name: ":load",
        args: "FILE",
        help: "run a script file in this session",
    },
    Command {
        name: ":reset",
        args: "",
        help: "forget all variables and functions",
    },
    Command {
        name: ":quit",
        args: "",
        help: "leave (Ctrl-D works too)",
    },
];

/// True while `text` has open brackets or an unterminated string, so the REPL
/// should keep reading lines. Brackets inside strings and comments don't count.
pub fn is_incomplete(text: &str) -> bool {
    let mut depth: i64 = 0;
    let mut chars = text.chars().peekable();
    let mut in_string: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                c if c == q => in_string = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '`' => in_string = Some(c),
            '\'' => {
                // A character literal: skip it whole.
                if chars.next() == Some('\\') {
                    chars.next();
                }
                chars.next();
            }
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                let mut closed = false;
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        closed = true;
                        break;
                    }
                    prev = n;
                }
                if !closed {
                    return true;
                }
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    depth > 0 || in_string.is_some()
}

#[derive(Helper, Highlighter, Hinter)]
struct ReplHelper {
    functions: Vec<String>,
    /// The session's variables with the script type of their values.
    variables: Rc<RefCell<Vec<(String, String)>>>,
    help: Rc<engine::HelpRegistry>,
}

/// The expression just before a `.`: the text of `x`, `x.abs()` or
/// `ds.train().betas` — identifiers, dots and balanced call brackets.
fn receiver(before_dot: &str) -> &str {
    let bytes = before_dot.as_bytes();
    let mut i = bytes.len();
    let mut depth = 0usize;
    while i > 0 {
        let c = bytes[i - 1] as char;
        match c {
            ')' | ']' => depth += 1,
            '(' | '[' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            c if c.is_alphanumeric() || c == '_' || c == '.' => {}
            _ => break,
        }
        i -= 1;
    }
    &before_dot[i..]
}

/// The type of a receiver expression: a variable's type, then each
/// `.member` or `.method(...)` through what its help entry says it returns.
fn receiver_type(
    expr: &str,
    variables: &[(String, String)],
    help: &engine::HelpRegistry,
) -> Option<String> {
    // Split at top-level dots, dropping call brackets.
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in expr.chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => parts.push(std::mem::take(&mut current)),
            c if depth == 0 => current.push(c),
            _ => {}
        }
    }
    parts.push(current);
    let first = parts.first()?;
    let mut ty = variables
        .iter()
        .rev()
        .find(|(name, _)| name == first)
        .map(|(_, ty)| ty.clone())
        .or_else(|| {
            // A call such as randn([3]) at the start: its return type.
            help.forms_of(first).into_iter().find_map(|f| f.returns)
        })?;
    for member in &parts[1..] {
        ty = help.member_type(&ty, member)?;
    }
    Some(ty)
}

/// Candidates for completing the word that ends at `pos` in `line`: REPL
/// commands at the start, after a dot the members of the value's type
/// (every member any type has when the type is unknown), else functions,
/// variables and keywords. Returns where the word starts and the candidates.
pub fn complete_line(
    line: &str,
    pos: usize,
    functions: &[String],
    variables: &[(String, String)],
    help: &engine::HelpRegistry,
) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[start..];
    let after_dot = before[..start].ends_with('.');
    let mut candidates: Vec<String> = if word.starts_with(':') && start == 0 {
        COMMANDS.iter().map(|c| c.name.to_string()).collect()
    } else if after_dot {
        let expr = receiver(&before[..start - 1]);
        match receiver_type(expr, variables, help) {
            Some(ty) => help
                .members_of(&ty)
                .into_iter()
                .map(str::to_string)
                .collect(),
            None => help.known_names().into_iter().map(str::to_string).collect(),
        }
    } else {
        functions
            .iter()
            .cloned()
            .chain(variables.iter().map(|(name, _)| name.clone()))
            .chain(KEYWORDS.iter().map(|k| k.to_string()))
            .collect()
    };
    candidates.retain(|c| c.starts_with(word));
    candidates.sort();
    candidates.dedup();
    (start, candidates)
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, candidates) = complete_line(
            line,
            pos,
            &self.functions,
            &self.variables.borrow(),
            &self.help,
        );
        Ok((
            start,
            candidates
                .into_iter()
                .map(|c| Pair {
                    display: c.clone(),
                    replacement: c,
                })
                .collect(),
        ))
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if is_incomplete(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VOXLAB_HISTORY") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("voxlab").join("history"))
}

/// One REPL session's state: the engine, the variables, the functions defined so far.
struct ReplState {
    vox: Voxlab,
    scope: Scope<'static>,
    /// Functions defined in earlier inputs, kept so later inputs can call them.
    functions: AST,
    sets: Vec<(String, String)>,
    out: Option<PathBuf>,
    limits: Limits,
}

impl ReplState {
    fn new(sets: Vec<(String, String)>, out: Option<PathBuf>, limits: Limits) -> Self {
        let session = Session::new(
            out.clone().unwrap_or_else(|| PathBuf::from(".")),
            sets.iter().cloned().collect(),
        );
        ReplState {
            vox: engine::build(session, limits),
            scope: Scope::new(),
            functions: AST::empty(),
            sets,
            out,
            limits,
        }
    }

    /// Evaluates one input; prints its value or the error with a caret.
    fn eval_input(&mut self, name: &str, input: &str) {
        let ast = match compile(&self.vox, name, input, &self.scope) {
            Ok(ast) => ast,
            Err(d) => {
                eprintln!("{}", d.render(name, input));
                return;
            }
        };
        self.functions += ast.clone_functions_only();
        let runnable = self.functions.merge(&ast);
        match eval(&self.vox, &runnable, &mut self.scope) {
            Outcome::Ok(v) => {
                self.keep_imports(input);
                if !v.is_unit() {
                    println!("{}", show(&v));
                }
            }
            Outcome::Failed(d) => eprintln!("{}", d.render(name, input)),
        }
    }

    /// An `import "m" as x;` lasts for one evaluation in Rhai; in the REPL it
    /// should last for the session, so register the module under its alias.
    fn keep_imports(&mut self, input: &str) {
        for stmt in input.split(';') {
            let s = stmt.trim();
            let Some(rest) = s.strip_prefix("import") else {
                continue;
            };
            let rest = rest.trim();
            let Some((path, alias)) = rest.split_once(" as ") else {
                continue;
            };
            let path = path.trim().trim_matches('"');
            let alias = alias.trim();
            if let Ok(module) = self.vox.engine.module_resolver().resolve(
                &self.vox.engine,
                None,
                path,
                rhai::Position::NONE,
            ) {
                self.vox.engine.register_static_module(alias, module);
            }
        }
    }

    fn variables(&self) -> Vec<(String, String)> {
        self.scope
            .iter()
            .map(|(name, _, value)| {
                let ty = self.vox.engine.map_type_name(value.type_name());
                (
                    name.to_string(),
                    ty.rsplit("::").next().unwrap_or(ty).to_string(),
                )
            })
            .collect()
    }

    fn command(&mut self, line: &str) -> bool {
        let mut parts = line.splitn(2, char::is_whitespace);
        let cmd = parts.next().unwrap_or("");
        let arg = parts.next().unwrap_or("").trim();
        match cmd {
            ":help" => {
                for c in COMMANDS {
                    println!("  {:<8} {:<6} {}", c.name, c.args, c.help);
                }
                println!("  help() lists functions by domain; help(\"name\") shows one.");
            }
            ":vars" => {
                for (name, constant, value) in self.scope.iter() {
                    let kind = if constant { "const" } else { "let" };
                    println!("  {kind} {name} = {}", show(&value));
                }
            }
            ":load" => match std::fs::read_to_string(arg) {
                Ok(text) => self.eval_input(arg, &text),
                Err(e) => eprintln!("error: :load: cannot read '{arg}': {e}"),
            },
            ":reset" => {
                *self = ReplState::new(self.sets.clone(), self.out.clone(), self.limits);
                println!("session reset");
            }
            ":quit" | ":q" | ":exit" => return false,
            other => {
                let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
                eprintln!(
                    "error: unknown command {other}; commands are {}",
                    names.join(", ")
                );
            }
        }
        true
    }
}

/// Runs the interactive REPL; returns the exit code.
pub fn run(sets: Vec<(String, String)>, out: Option<PathBuf>, seed: i64, limits: Limits) -> i32 {
    // Ctrl-C during an evaluation stops it at the next check (a Rhai
    // operation, a step of a long primitive) and returns to the prompt with
    // the session's variables; while typing, the line editor reads Ctrl-C
    // itself.
    crate::cancel::install_signal_handlers();
    crate::device::seed(seed);
    let mut session = ReplState::new(sets, out, limits);
    session.vox.session.state_mut().seed = Some(seed);
    let variables = Rc::new(RefCell::new(Vec::new()));
    let mut functions: Vec<String> = session.vox.help.names().map(str::to_string).collect();
    functions.extend(crate::engine::stdlib_modules().map(|m| format!("\"{m}\"")));
    let helper = ReplHelper {
        functions,
        variables: variables.clone(),
        help: session.vox.help.clone(),
    };
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor: Editor<ReplHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("voxlab: cannot start the line editor: {e}");
            return 2;
        }
    };
    editor.set_helper(Some(helper));
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!(
        "voxlab {} (rhai {}, libtorch {}, device {}) — help() lists functions, :help lists commands, Ctrl-D leaves",
        crate::VERSION,
        crate::RHAI_VERSION,
        crate::LIBTORCH_VERSION,
        crate::device::name(crate::device::current())
    );
    let mut count = 0;
    loop {
        crate::cancel::set_idle(true);
        let read = editor.readline("voxlab> ");
        crate::cancel::set_idle(false);
        match read {
            Ok(line) => {
                let input = line.trim();
                if input.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(input);
                if input.starts_with(':') {
                    if !session.command(input) {
                        break;
                    }
                } else {
                    count += 1;
                    // A Ctrl-C that stopped an earlier input's training must
                    // not stop this one's (in a script run it ends the run).
                    crate::models::train::clear_interrupt();
                    session.eval_input(&format!("<input {count}>"), &line);
                    if crate::cancel::interrupt_signal().is_some() {
                        crate::models::train::clear_interrupt();
                        println!("(interrupted; the session's variables are kept)");
                    }
                }
                *variables.borrow_mut() = session.variables();
            }
            Err(ReadlineError::Interrupted) => {
                println!("(input abandoned; Ctrl-D leaves)");
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("voxlab: {e}");
                break;
            }
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(h);
    }
    0
}
