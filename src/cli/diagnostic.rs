//! Renders script errors for people: the message, where (file:line:column),
//! the source line, and a caret under the column.

use rhai::{EvalAltResult, ParseError, ParseErrorType, Position};

use crate::engine::help::{closest, HelpRegistry};

/// Where an error happened, when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// Script path or "<input>"; None when the error is in the main source.
    pub source: Option<String>,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    pub location: Option<Location>,
    /// Outer frames: "in call to 'f' at line 12".
    pub trace: Vec<String>,
}

fn location(pos: Position, source: Option<&str>) -> Option<Location> {
    Some(Location {
        source: source.filter(|s| !s.is_empty()).map(str::to_string),
        line: pos.line()?,
        column: pos.position().unwrap_or(1),
    })
}

/// The message of an error without Rhai's "(line x, position y)" suffix.
fn bare_message(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
        EvalAltResult::ErrorTerminated(token, _) => {
            if token.is_string() {
                token.to_string()
            } else {
                "script stopped".to_string()
            }
        }
        EvalAltResult::ErrorTooManyOperations(_) => {
            "script stopped: it ran more operations than --max-operations allows".to_string()
        }
        EvalAltResult::ErrorFunctionNotFound(sig, _) => format!("no function {sig}"),
        EvalAltResult::ErrorDataTooLarge(what, _) => format!(
            "{what}: scripts may build strings of up to {} MB, arrays of up to {}M elements (counting nested ones) and maps of up to {}M entries",
            crate::engine::MAX_STRING_BYTES >> 20,
            crate::engine::MAX_ARRAY_ELEMENTS >> 20,
            crate::engine::MAX_MAP_ENTRIES >> 20
        ),
        EvalAltResult::ErrorParsing(p, _) => p.to_string(),
        other => {
            // Rhai appends " (line N, position M)"; the caret shows that.
            let text = other.to_string();
            match text.rfind(" (line ") {
                Some(i) if text.ends_with(')') => text[..i].to_string(),
                _ => text,
            }
        }
    }
}

/// A runtime error for people. `help` names the functions a script can
/// call and their parameters, `script_fns` the functions the script defines:
/// an unknown name gets "did you mean", a known one called with a wrong
/// argument names that argument.
pub fn from_eval(err: &EvalAltResult, help: &HelpRegistry, script_fns: &[String]) -> Diagnostic {
    let mut trace = Vec::new();
    let mut current = err;
    let mut source: Option<String> = None;
    loop {
        match current {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                if let Some(line) = pos.line() {
                    trace.push(format!("in call to '{name}' at line {line}"));
                }
                if !src.is_empty() {
                    source = Some(src.clone());
                }
                current = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                if let Some(line) = pos.line() {
                    trace.push(format!("in module '{name}' imported at line {line}"));
                }
                current = inner;
            }
            _ => break,
        }
    }
    let mut message = bare_message(current);
    match current {
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            message = function_not_found(sig, help, script_fns);
        }
        EvalAltResult::ErrorDotExpr(text, _) => {
            if let Some(hint) = unknown_property_hint(text, help) {
                message.push_str(&hint);
            }
        }
        _ => {}
    }
    Diagnostic {
        message,
        location: location(current.position(), source.as_deref()),
        trace,
    }
}

/// Script type names of the arguments in Rhai's signature text
/// "fit_ridge (string, Tensor)".
fn argument_types(sig: &str) -> (String, Vec<String>) {
    let name = sig.split('(').next().unwrap_or(sig).trim().to_string();
    let args = sig[name.len().min(sig.len())..].trim();
    let args = args.trim_start_matches('(').trim_end_matches(')');
    let types = args
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            match t.rsplit("::").next().unwrap_or(t) {
                s if s.contains("ImmutableString") || s == "String" || s == "&str" => "string",
                "i64" => "int",
                "f64" => "float",
                "Array" => "array",
                "Map" => "map",
                other => other,
            }
            .to_string()
        })
        .collect();
    (name, types)
}

/// "no function fit_ridge(Tensor)": explain in terms a scientist can act on.
fn function_not_found(sig: &str, help: &HelpRegistry, script_fns: &[String]) -> String {
    let (name, types) = argument_types(sig);
    let defined_here = script_fns.iter().any(|f| *f == name);
    if !help.knows(&name) && !defined_here {
        let mut candidates = help.known_names();
        candidates.extend(script_fns.iter().map(String::as_str));
        let similar = closest(&name, candidates);
        let hint = if similar.is_empty() {
            "help() lists the functions".to_string()
        } else {
            format!("did you mean {}?", similar.join(", "))
        };
        return format!("no function or method named '{name}'; {hint}");
    }
    if let Some(text) = wrong_argument(&name, &types, help) {
        return text;
    }
    format!(
        "no function '{name}' takes ({}); help(\"{name}\") shows the forms it has",
        types.join(", ")
    )
}

/// "fit_ridge: x: expected a Tensor, got string" when a documented form of
/// `name` takes this many arguments and exactly the named ones do not fit.
fn wrong_argument(name: &str, given: &[String], help: &HelpRegistry) -> Option<String> {
    let forms: Vec<_> = help
        .forms_of(name)
        .into_iter()
        .filter(|f| f.takes(given.len()))
        .collect();
    // The form with the fewest mismatches says which argument is wrong.
    let best = forms
        .iter()
        .map(|f| {
            let bad: Vec<usize> = (0..given.len())
                .filter(|&i| !f.params[i].accepts(&given[i]))
                .collect();
            (bad, f)
        })
        .filter(|(bad, _)| !bad.is_empty())
        .min_by_key(|(bad, _)| bad.len())?;
    let (bad, form) = best;
    let parts: Vec<String> = bad
        .iter()
        .map(|&i| {
            let p = &form.params[i];
            format!("{}: expected {}, got {}", p.name, p.expected(), given[i])
        })
        .collect();
    Some(format!(
        "{name}: {}; help(\"{name}\") shows the forms it has",
        parts.join("; ")
    ))
}

/// "Unknown property 'shap' - a getter is not registered for type 'Tensor'"
/// → "; did you mean shape?".
fn unknown_property_hint(text: &str, help: &HelpRegistry) -> Option<String> {
    let rest = text.split("property '").nth(1)?;
    let property = rest.split('\'').next()?;
    let ty = text.split("type '").nth(1)?.split('\'').next()?;
    let ty = ty.rsplit("::").next().unwrap_or(ty);
    let members = help.members_of(ty);
    let similar = closest(property, members.iter().copied());
    (!similar.is_empty()).then(|| format!("; did you mean {}?", similar.join(", ")))
}

/// A syntax error of `text`. A missing `;` is reported where it belongs,
/// at the end of the line that lacks it: Rhai notices only at the start of
/// the next statement, often lines below.
pub fn from_parse(err: &ParseError, text: &str) -> Diagnostic {
    let mut at = location(err.1, None);
    if let (ParseErrorType::MissingToken(token, _), Some(loc)) = (err.0.as_ref(), at.as_mut()) {
        if token == ";" {
            if let Some((line, column)) = end_of_previous_statement(text, loc.line, loc.column) {
                loc.line = line;
                loc.column = column;
            }
        }
    }
    Diagnostic {
        message: format!("syntax error: {}", err.0),
        location: at,
        trace: Vec::new(),
    }
}

/// The (line, column) just after the last code character before
/// (line, column), skipping blank lines and `//` comments; 1-based.
fn end_of_previous_statement(text: &str, line: usize, column: usize) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut l = line.min(lines.len());
    let mut limit = Some(column.saturating_sub(1));
    while l >= 1 {
        let full = lines[l - 1];
        let upto: String = match limit {
            Some(c) => full.chars().take(c).collect(),
            None => full.to_string(),
        };
        let code = match upto.find("//") {
            Some(i) => &upto[..i],
            None => upto.as_str(),
        };
        let code = code.trim_end();
        if !code.is_empty() {
            return Some((l, code.chars().count() + 1));
        }
        limit = None;
        l -= 1;
    }
    None
}

impl Diagnostic {
    /// Multi-line text: message, location, source line and caret.
    pub fn render(&self, main_name: &str, main_source: &str) -> String {
        let mut out = format!("error: {}", self.message);
        if let Some(loc) = &self.location {
            let (name, text) = match &loc.source {
                Some(src) if src != main_name => (
                    src.clone(),
                    std::fs::read_to_string(src).unwrap_or_default(),
                ),
                _ => (main_name.to_string(), main_source.to_string()),
            };
            out.push_str(&format!("\n  --> {name}:{}:{}", loc.line, loc.column));
            if let Some(src_line) = text.lines().nth(loc.line.saturating_sub(1)) {
                let num = loc.line.to_string();
                let pad = " ".repeat(num.len());
                let caret_pad: String = src_line
                    .chars()
                    .take(loc.column.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                out.push_str(&format!(
                    "\n {pad} |\n {num} | {src_line}\n {pad} | {caret_pad}^"
                ));
            }
        }
        for frame in &self.trace {
            out.push_str(&format!("\n  note: {frame}"));
        }
        out
    }
}
