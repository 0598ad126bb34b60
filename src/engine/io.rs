//! Script face of [`crate::io`]: npy, JSON and CSV files.
//!
//! Loads read paths as given (relative to the working directory); saves put
//! relative paths inside `out_dir()` and return the full path written, which
//! the run record lists.

use std::path::Path;

use rhai::{Array, Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::json::{dynamic_to_json, json_to_dynamic};
use super::options::Opts;
use super::session::Session;
use super::tensor::to_tensor;
use crate::error::{Error, Result};
use crate::io::{npy, table};
use crate::tensor::{tc, Tensor};

pub static LOAD_NPY: FnDoc = FnDoc { name: "load_npy", domain: "io", signature: "load_npy(path: string) -> Tensor", summary: "Reads a NumPy .npy file (bool, ints, floats; C or Fortran order; either endianness) onto the current device.", options: &[], example: "let p = save_npy(eye(3), \"eye.npy\");\nlet back = load_npy(p);" };
pub static SAVE_NPY: FnDoc = FnDoc {
    name: "save_npy",
    domain: "io",
    signature: "save_npy(t: Tensor | array, path: string) -> string",
    summary: "Writes a tensor as .npy (C order, its dtype); returns the path written.",
    options: &[],
    example: "save_npy(randn([4, 3]), \"x.npy\");",
};
pub static LOAD_JSON: FnDoc = FnDoc {
    name: "load_json",
    domain: "io",
    signature: "load_json(path: string) -> value",
    summary: "Reads a JSON file into maps, arrays, numbers and strings.",
    options: &[],
    example: "let p = save_json(#{a: 1, b: [1, 2]}, \"cfg.json\");\nlet cfg = load_json(p);",
};
pub static SAVE_JSON: FnDoc = FnDoc { name: "save_json", domain: "io", signature: "save_json(value, path: string) -> string", summary: "Writes maps/arrays/numbers as indented JSON; tensors become nested arrays, NaN becomes null.", options: &[], example: "save_json(#{r: 0.42, n: 50}, \"result.json\");" };
pub static LOAD_CSV: FnDoc = FnDoc { name: "load_csv", domain: "io", signature: "load_csv(path: string, opts?: map) -> map", summary: "Reads a CSV with a header row into a map column name → array; a column whose non-empty cells are all numbers becomes numbers (empty cells NaN).", options: &[OptDoc { name: "delimiter", ty: "string", default: "\",\"", meaning: "field separator (one character; \"\\t\" for TSV)" }], example: "let p = save_csv(#{id: [\"a\", \"b\"], rating: [3.5, 7]}, \"ratings.csv\");\nlet t = load_csv(p);\nprint(t.rating);" };
pub static SAVE_CSV: FnDoc = FnDoc { name: "save_csv", domain: "io", signature: "save_csv(columns: map, path: string) -> string", summary: "Writes a map column name → array or 1-D tensor (equal lengths) as CSV; columns in name order.", options: &[], example: "save_csv(#{layer: [1, 2], tau: [0.1, 0.3]}, \"tau.csv\");" };

fn column_from(op: &'static str, name: &str, v: &Dynamic) -> Result<table::Column> {
    if let Some(t) = v.read_lock::<Tensor>() {
        if t.ndim() != 1 {
            return Err(Error::invalid(
                op,
                format!(
                    "column '{name}' must be 1-D, got a tensor of {} axes",
                    t.ndim()
                ),
            ));
        }
        return Ok(table::Column::Number(t.to_f64_vec(op)?));
    }
    let arr = v.read_lock::<Array>().ok_or_else(|| {
        Error::invalid(
            op,
            format!(
                "column '{name}' must be an array or a 1-D tensor, got {}",
                v.type_name()
            ),
        )
    })?;
    let numbers: Option<Vec<f64>> = arr
        .iter()
        .map(|x| {
            x.as_float()
                .ok()
                .or_else(|| x.as_int().ok().map(|i| i as f64))
        })
        .collect();
    Ok(match numbers {
        Some(n) => table::Column::Number(n),
        None => table::Column::Text(arr.iter().map(|x| x.to_string()).collect()),
    })
}

pub static READ_LINES: FnDoc = FnDoc { name: "read_lines", domain: "io", signature: "read_lines(path: string) -> array", summary: "Reads a UTF-8 text file into an array of its lines (captions, sentence lists), without line endings; a final empty line is dropped.", options: &[], example: "let p = save_json(\"a red square\", \"one.txt\");\nprint(read_lines(p));   // [\"\\\"a red square\\\"\"]" };
pub fn register(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    for doc in [
        &LOAD_NPY,
        &SAVE_NPY,
        &LOAD_JSON,
        &SAVE_JSON,
        &LOAD_CSV,
        &SAVE_CSV,
        &READ_LINES,
    ] {
        help.add(doc);
    }
    engine.register_fn("read_lines", |path: &str| -> RhaiResult<rhai::Array> {
        guard("read_lines", || {
            let text = crate::io::read_text("read_lines", path.as_ref())?;
            Ok(text
                .lines()
                .map(|l| rhai::Dynamic::from(l.to_string()))
                .collect())
        })
    });
    engine.register_fn("load_npy", |path: &str| -> RhaiResult<Tensor> {
        guard("load_npy", || {
            let t = npy::load_npy(Path::new(path))?;
            Ok(Tensor(tc(
                "load_npy",
                t.0.f_to_device(crate::device::current()),
            )?))
        })
    });
    let s = session.clone();
    engine.register_fn(
        "save_npy",
        move |t: Dynamic, path: &str| -> RhaiResult<String> {
            guard("save_npy", || {
                let t = to_tensor("save_npy", "t", &t)?;
                s.save(path, |out| npy::save_npy(&t, out))
            })
        },
    );
    engine.register_fn("load_json", |path: &str| -> RhaiResult<Dynamic> {
        guard("load_json", || {
            let text = crate::io::read_text("load_json", path.as_ref())?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                Error::format(
                    "load_json",
                    path,
                    format!(
                        "invalid JSON at line {}, column {}: {e}",
                        e.line(),
                        e.column()
                    ),
                )
            })?;
            Ok(json_to_dynamic(&v))
        })
    });
    let s = session.clone();
    engine.register_fn(
        "save_json",
        move |v: Dynamic, path: &str| -> RhaiResult<String> {
            guard("save_json", || {
                let json = dynamic_to_json("save_json", &v)?;
                let text = serde_json::to_string_pretty(&json)
                    .map_err(|e| Error::invalid("save_json", e.to_string()))?;
                s.save(path, |out| {
                    crate::io::write_atomic("save_json", out, text.as_bytes())
                })
            })
        },
    );
    let load_csv = |path: &str, opts: Map| -> RhaiResult<Map> {
        guard("load_csv", || {
            let opts = Opts::parse(&LOAD_CSV, opts)?;
            let delim = opts.string("delimiter")?;
            let delim = match delim.as_str() {
                "\\t" | "\t" | "tab" => b'\t',
                d if d.len() == 1 => d.as_bytes()[0],
                d => {
                    return Err(Error::BadOption {
                        op: "load_csv",
                        key: "delimiter".into(),
                        expected: "one character".into(),
                        got: format!("\"{d}\""),
                    })
                }
            };
            let t = table::load_csv(Path::new(path), delim)?;
            let mut map = Map::new();
            for (name, col) in t.columns {
                let arr: Array = match col {
                    table::Column::Number(v) => v.into_iter().map(Dynamic::from_float).collect(),
                    table::Column::Text(v) => v.into_iter().map(Dynamic::from).collect(),
                };
                map.insert(name.into(), Dynamic::from_array(arr));
            }
            Ok(map)
        })
    };
    engine.register_fn("load_csv", move |path: &str| load_csv(path, Map::new()));
    engine.register_fn("load_csv", load_csv);
    let s = session.clone();
    engine.register_fn(
        "save_csv",
        move |columns: Map, path: &str| -> RhaiResult<String> {
            guard("save_csv", || {
                let mut t = table::Table::default();
                for (name, v) in columns.iter() {
                    t.columns
                        .push((name.to_string(), column_from("save_csv", name, v)?));
                }
                s.save(path, |out| table::save_csv(&t, out))
            })
        },
    );
}
