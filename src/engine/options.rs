//! Checked option maps: `f(x, #{key: value})`.
//!
//! As linfa checks its parameter sets before fitting, [`Opts::parse`] rejects
//! unknown keys (listing the valid ones) before any work starts; typed getters
//! report a wrong type naming the key. Absent keys take the default written in
//! the function's [`FnDoc`], so the help text is the single source of defaults.

use rhai::{Dynamic, Map};

use super::help::{FnDoc, OptDoc};
use crate::error::{Error, Result};

pub struct Opts {
    doc: &'static FnDoc,
    map: Map,
}

fn type_name(v: &Dynamic) -> String {
    match v.type_name() {
        "i64" => "an integer".into(),
        "f64" => "a number".into(),
        "bool" => "a boolean".into(),
        "string" | "alloc::string::String" | "ImmutableString" => "a string".into(),
        "array" => "an array".into(),
        "map" => "a map".into(),
        "()" => "()".into(),
        other => other.rsplit("::").next().unwrap_or(other).to_string(),
    }
}

impl Opts {
    pub fn parse(doc: &'static FnDoc, map: Map) -> Result<Self> {
        for key in map.keys() {
            if doc.option(key).is_none() {
                return Err(Error::UnknownOption {
                    op: doc.name,
                    key: key.to_string(),
                    valid: if doc.options.is_empty() {
                        "(none)".into()
                    } else {
                        doc.option_names()
                    },
                });
            }
        }
        Ok(Opts { doc, map })
    }

    /// The function these options belong to (for error messages).
    pub fn op(&self) -> &'static str {
        self.doc.name
    }

    /// No options given.
    pub fn defaults(doc: &'static FnDoc) -> Self {
        Opts {
            doc,
            map: Map::new(),
        }
    }

    fn spec(&self, key: &str) -> &'static OptDoc {
        match self.doc.option(key) {
            Some(o) => o,
            // A programming error in voxlab, caught by the registry test.
            None => panic!(
                "{}: option '{key}' is read but not documented",
                self.doc.name
            ),
        }
    }

    fn bad(&self, key: &str, expected: &str, got: &Dynamic) -> Error {
        Error::BadOption {
            op: self.doc.name,
            key: key.to_string(),
            expected: expected.to_string(),
            got: type_name(got),
        }
    }

    /// The given value, or the documented default parsed as a script literal.
    fn value(&self, key: &str) -> Option<Dynamic> {
        // `()` stands for "not given", so scripts can choose an option
        // conditionally: #{weights: if w == "" { () } else { w }}.
        if let Some(v) = self.map.get(key).filter(|v| !v.is_unit()) {
            return Some(v.clone());
        }
        let default = self.spec(key).default;
        if default == "none" {
            return None;
        }
        Some(parse_literal(default))
    }

    pub fn is_set(&self, key: &str) -> bool {
        self.spec(key);
        self.map.get(key).is_some_and(|v| !v.is_unit())
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => match v
                .as_float()
                .ok()
                .or_else(|| v.as_int().ok().map(|i| i as f64))
            {
                Some(x) => Ok(Some(x)),
                None => Err(self.bad(key, "a number", &v)),
            },
        }
    }

    pub fn f64(&self, key: &str) -> Result<f64> {
        self.opt_f64(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => match v.as_int() {
                Ok(i) => Ok(Some(i)),
                Err(_) => Err(self.bad(key, "an integer", &v)),
            },
        }
    }

    pub fn i64(&self, key: &str) -> Result<i64> {
        self.opt_i64(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn bool(&self, key: &str) -> Result<bool> {
        match self.value(key) {
            None => Err(self.missing(key)),
            Some(v) => v.as_bool().map_err(|_| self.bad(key, "true or false", &v)),
        }
    }

    pub fn opt_string(&self, key: &str) -> Result<Option<String>> {
        match self.value(key) {
            None => Ok(None),
            Some(v) if v.is_string() => Ok(Some(v.to_string())),
            Some(v) => Err(self.bad(key, "a string", &v)),
        }
    }

    pub fn string(&self, key: &str) -> Result<String> {
        self.opt_string(key)?.ok_or_else(|| self.missing(key))
    }

    /// A string that must be one of `choices`.
    pub fn choice(&self, key: &str, choices: &[&str]) -> Result<String> {
        let s = self.string(key)?;
        if choices.contains(&s.as_str()) {
            Ok(s)
        } else {
            Err(Error::BadOption {
                op: self.doc.name,
                key: key.to_string(),
                expected: format!("one of {}", choices.join(", ")),
                got: format!("\"{s}\""),
            })
        }
    }

    pub fn opt_f64_list(&self, key: &str) -> Result<Option<Vec<f64>>> {
        let Some(v) = self.value(key) else {
            return Ok(None);
        };
        let items = match v.clone().into_array() {
            Ok(a) => a,
            Err(_) => {
                // A single number is a list of one.
                return match v
                    .as_float()
                    .ok()
                    .or_else(|| v.as_int().ok().map(|i| i as f64))
                {
                    Some(x) => Ok(Some(vec![x])),
                    None => Err(self.bad(key, "an array of numbers", &v)),
                };
            }
        };
        items
            .iter()
            .map(|x| {
                x.as_float()
                    .ok()
                    .or_else(|| x.as_int().ok().map(|i| i as f64))
                    .ok_or_else(|| self.bad(key, "an array of numbers", x))
            })
            .collect::<Result<Vec<f64>>>()
            .map(Some)
    }

    pub fn opt_string_list(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(v) = self.value(key) else {
            return Ok(None);
        };
        let items = v
            .clone()
            .into_array()
            .map_err(|_| self.bad(key, "an array of strings", &v))?;
        items
            .iter()
            .map(|x| {
                if x.is_string() {
                    Ok(x.to_string())
                } else {
                    Err(self.bad(key, "an array of strings", x))
                }
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The raw value, for options whose type varies (e.g. a Tensor or array).
    pub fn raw(&self, key: &str) -> Option<Dynamic> {
        self.value(key)
    }

    fn missing(&self, key: &str) -> Error {
        Error::BadOption {
            op: self.doc.name,
            key: key.to_string(),
            expected: "a value (it has no default)".into(),
            got: "nothing".into(),
        }
    }
}

/// Parses a documented default: numbers, booleans, quoted strings, arrays of
/// those; anything else is taken as a bare string.
fn parse_literal(text: &str) -> Dynamic {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Dynamic::from_int(i);
    }
    if let Ok(x) = t.parse::<f64>() {
        return Dynamic::from_float(x);
    }
    match t {
        "true" => return Dynamic::TRUE,
        "false" => return Dynamic::FALSE,
        _ => {}
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let items: rhai::Array = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(parse_literal)
            .collect();
        return Dynamic::from_array(items);
    }
    Dynamic::from(t.trim_matches('"').to_string())
}
