//! Script values ⇄ JSON: used by load_json/save_json, record() and run.json.
//! Tensors become nested arrays; NaN and ±inf, which JSON lacks, become null.

use rhai::{Array, Dynamic, Map};
use serde_json::{Number, Value};

use super::tensor::to_nested_array;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Deepest nesting written as JSON: serde_json (and so voxlab) refuses to
/// read deeper documents back, and the recursion stays far from the stack's end.
pub const MAX_JSON_DEPTH: usize = 128;

/// The error for a value nested deeper than [`MAX_JSON_DEPTH`].
pub fn too_deep(op: &'static str) -> Error {
    Error::invalid(
        op,
        format!("the value is nested more than {MAX_JSON_DEPTH} deep (arrays or maps inside each other); JSON readers refuse deeper documents"),
    )
}

pub fn dynamic_to_json(op: &'static str, v: &Dynamic) -> Result<Value> {
    to_json_at(op, v, 0)
}

fn to_json_at(op: &'static str, v: &Dynamic, depth: usize) -> Result<Value> {
    if depth > MAX_JSON_DEPTH {
        return Err(too_deep(op));
    }
    if v.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = v.as_int() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(x) = v.as_float() {
        return Ok(Number::from_f64(x).map_or(Value::Null, Value::Number));
    }
    if v.is_string() || v.is_char() {
        return Ok(Value::String(v.to_string()));
    }
    if let Some(arr) = v.read_lock::<Array>() {
        return arr
            .iter()
            .map(|x| to_json_at(op, x, depth + 1))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array);
    }
    if let Some(map) = v.read_lock::<Map>() {
        let mut out = serde_json::Map::new();
        for (k, x) in map.iter() {
            out.insert(k.to_string(), to_json_at(op, x, depth + 1)?);
        }
        return Ok(Value::Object(out));
    }
    if let Some(t) = v.read_lock::<Tensor>() {
        let nested = to_nested_array(op, &t)?;
        return to_json_at(op, &nested, depth);
    }
    Err(Error::invalid(
        op,
        format!("a {} cannot be written as JSON", v.type_name()),
    ))
}

pub fn json_to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(a) => Dynamic::from_array(a.iter().map(json_to_dynamic).collect()),
        Value::Object(o) => {
            let mut m = Map::new();
            for (k, x) in o {
                m.insert(k.as_str().into(), json_to_dynamic(x));
            }
            Dynamic::from_map(m)
        }
    }
}
