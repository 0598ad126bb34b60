//! Renders script errors for people: the message, where (file:line:column),
//! the source line, and a caret under the column.

use rhai::{EvalAltResult, ParseError, Position};

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

pub fn from_eval(err: &EvalAltResult) -> Diagnostic {
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
    if let EvalAltResult::ErrorFunctionNotFound(sig, _) = current {
        message = function_not_found(sig);
    }
    Diagnostic {
        message,
        location: location(current.position(), source.as_deref()),
        trace,
    }
}

/// "no function fit_ridge(Tensor)": explain in terms a scientist can act on.
fn function_not_found(sig: &str) -> String {
    let name = sig.split('(').next().unwrap_or(sig).trim();
    let args = sig.strip_prefix(name).unwrap_or("").trim();
    let args = args.trim_start_matches('(').trim_end_matches(')');
    let types: Vec<&str> = args
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.rsplit("::").next().unwrap_or(t) {
            s if s.contains("ImmutableString") || s == "String" || s == "&str" => "string",
            "i64" => "int",
            "f64" => "float",
            "Array" => "array",
            "Map" => "map",
            other => other,
        })
        .collect();
    format!(
        "no function '{name}' takes ({}); help(\"{name}\") shows the forms it has",
        types.join(", ")
    )
}

pub fn from_parse(err: &ParseError) -> Diagnostic {
    Diagnostic {
        message: format!("syntax error: {}", err.0),
        location: location(err.1, None),
        trace: Vec::new(),
    }
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
