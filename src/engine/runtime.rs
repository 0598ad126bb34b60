//! Script face of the run: parameters, output folder, metrics, seeds,
//! devices, threads, and `help`.

use std::rc::Rc;

use rhai::{Dynamic, Engine, INT};

use super::error::{guard, guard_rhai, script_error, RhaiResult};
use super::help::{FnDoc, HelpRegistry};
use super::json::dynamic_to_json;
use super::session::Session;
use crate::device;
use crate::error::Error;

pub static PARAM: FnDoc = FnDoc {
    name: "param", domain: "session",
    signature: "param(name: string, default) -> value",
    summary: "A run parameter: the value of `--set name=...` converted to the default's type, or the default.",
    options: &[],
    example: "let subject = param(\"subject\", 1);\nlet alphas = param(\"alphas\", [0.1, 1.0, 10.0]);",
};
pub static OUT_DIR: FnDoc = FnDoc {
    name: "out_dir",
    domain: "session",
    signature: "out_dir() -> string",
    summary: "The run's output folder; save functions put relative paths there.",
    options: &[],
    example: "print(out_dir());",
};
pub static RECORD: FnDoc = FnDoc {
    name: "record",
    domain: "session",
    signature: "record(name: string, value)",
    summary: "Stores a result (number, string, map, array or tensor) in run.json's metrics; a tensor of more than 1000 elements is stored as #{shape, mean, sd, npy} with its values saved to <name>.npy beside run.json.",
    options: &[],
    example: "record(\"top1_50way\", 0.62);",
};
pub static SET_SEED: FnDoc = FnDoc {
    name: "set_seed",
    domain: "session",
    signature: "set_seed(seed: int)",
    summary:
        "Seeds every random generator; the same seed gives the same numbers on the same device.",
    options: &[],
    example: "set_seed(42);",
};
pub static DEVICE: FnDoc = FnDoc {
    name: "device",
    domain: "session",
    signature: "device() -> string",
    summary: "Where heavy work runs: \"cuda\" when a GPU is available, else \"cpu\".",
    options: &[],
    example: "print(device());",
};
pub static SET_DEVICE: FnDoc = FnDoc {
    name: "set_device",
    domain: "session",
    signature: "set_device(name: string)",
    summary: "Chooses \"cpu\", \"cuda\" or \"cuda:N\" for new tensors and models.",
    options: &[],
    example: "set_device(\"cpu\");",
};
pub static SET_THREADS: FnDoc = FnDoc {
    name: "set_threads",
    domain: "session",
    signature: "set_threads(n: int)",
    summary: "Number of CPU threads libtorch uses: 1 to 4 × the machine's cores.",
    options: &[],
    example: "set_threads(2);",
};
pub static THREADS: FnDoc = FnDoc {
    name: "threads",
    domain: "session",
    signature: "threads() -> int",
    summary: "Number of CPU threads libtorch uses.",
    options: &[],
    example: "print(threads());",
};
pub static HELP: FnDoc = FnDoc {
    name: "help",
    domain: "session",
    signature: "help()\nhelp(name: string)",
    summary: "Lists functions by domain, or shows one with its options and an example.",
    options: &[],
    example: "help(\"zscore\");",
};

/// Converts a `--set` string to the type of the script's default.
fn convert_param(name: &str, given: &str, default: &Dynamic) -> RhaiResult<Dynamic> {
    let bad = |what: &str| {
        script_error(format!(
            "param: --set {name}={given}: expected {what} (the script's default is {default})"
        ))
    };
    if default.is_int() {
        return given
            .trim()
            .parse::<INT>()
            .map(Dynamic::from_int)
            .map_err(|_| bad("an integer"));
    }
    if default.is_float() {
        return given
            .trim()
            .parse::<f64>()
            .map(Dynamic::from_float)
            .map_err(|_| bad("a number"));
    }
    if default.is_bool() {
        return match given.trim() {
            "true" | "1" | "yes" => Ok(Dynamic::TRUE),
            "false" | "0" | "no" => Ok(Dynamic::FALSE),
            _ => Err(bad("true or false")),
        };
    }
    if default.is_array() || default.is_map() {
        let json: serde_json::Value =
            serde_json::from_str(given).map_err(|_| bad("JSON (e.g. [1, 2] or {\"a\": 1})"))?;
        return Ok(super::json::json_to_dynamic(&json));
    }
    Ok(Dynamic::from(given.to_string()))
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    for doc in [
        &PARAM,
        &OUT_DIR,
        &RECORD,
        &SET_SEED,
        &DEVICE,
        &SET_DEVICE,
        &SET_THREADS,
        &THREADS,
        &HELP,
    ] {
        help.add(doc);
    }
    let s = session.clone();
    engine.register_fn(
        "param",
        move |name: &str, default: Dynamic| -> RhaiResult<Dynamic> {
            guard_rhai("param", || {
                let given = s.state().given.get(name).cloned();
                let value = match given {
                    Some(text) => match convert_param(name, &text, &default) {
                        Ok(v) => v,
                        Err(e) => {
                            // The script did ask for it: the error says what
                            // is wrong, so no "not used by the script" warning.
                            s.state_mut()
                                .params
                                .insert(name.to_string(), serde_json::Value::String(text));
                            return Err(e);
                        }
                    },
                    None => default,
                };
                let json = dynamic_to_json("param", &value).map_err(super::error::to_rhai)?;
                s.state_mut().params.insert(name.to_string(), json);
                Ok(value)
            })
        },
    );
    let s = session.clone();
    engine.register_fn("out_dir", move || s.out_dir().display().to_string());
    let s = session.clone();
    engine.register_fn(
        "record",
        move |name: &str, value: Dynamic| -> RhaiResult<()> {
            guard("record", || {
                if name.is_empty() {
                    return Err(Error::invalid("record", "the metric name is empty"));
                }
                let json = recorded_value(&s, name, &value, 0)?;
                s.record(name, json);
                Ok(())
            })
        },
    );
    let s = session.clone();
    engine.register_fn("set_seed", move |seed: INT| {
        device::seed(seed);
        s.state_mut().seed = Some(seed);
    });
    engine.register_fn("device", || device::name(device::current()));
    engine.register_fn("set_device", |name: &str| -> RhaiResult<()> {
        guard("set_device", || {
            device::set_current(device::parse("set_device", name)?);
            Ok(())
        })
    });
    engine.register_fn("set_threads", |n: INT| -> RhaiResult<()> {
        guard("set_threads", || {
            let most = device::max_threads() as INT;
            if !(1..=most).contains(&n) {
                return Err(Error::invalid(
                    "set_threads",
                    format!("n must be 1 to {most} (4 × this machine's cores), got {n}"),
                ));
            }
            device::set_threads(n as usize);
            Ok(())
        })
    });
    engine.register_fn("threads", || device::threads() as INT);
}

/// Tensors with more elements than this are recorded as a summary, their
/// values going to a .npy file beside run.json (a 40 000-voxel map would
/// otherwise make run.json tens of MB).
pub const RECORD_INLINE_MAX: i64 = 1000;

/// A recorded value as JSON: numbers, strings, maps and arrays as they are;
/// a large tensor as #{shape, mean, sd, npy} with its values saved to
/// `<name>.npy` (`<name>.<key>.npy` inside maps) in the output folder.
fn recorded_value(
    s: &Session,
    path: &str,
    v: &Dynamic,
    depth: usize,
) -> crate::error::Result<serde_json::Value> {
    use serde_json::{json, Value};
    // The same depth limit as every other JSON write (this walk recurses too).
    if depth > super::json::MAX_JSON_DEPTH {
        return Err(super::json::too_deep("record"));
    }
    if let Some(t) = v.read_lock::<crate::tensor::Tensor>() {
        if t.numel() as i64 > RECORD_INLINE_MAX {
            let file: String = path
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || "_-.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
                + ".npy";
            let out = s.output_path(&file);
            if let Some(dir) = out.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io("record", dir, e))?;
            }
            crate::io::npy::save_npy(&t, &out)?;
            s.wrote(&out);
            let (mean, sd) = t.summary().unwrap_or((f64::NAN, f64::NAN));
            let num = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
            return Ok(json!({"shape": t.shape(), "mean": num(mean), "sd": num(sd), "npy": file}));
        }
    }
    if let Some(map) = v.read_lock::<rhai::Map>() {
        let mut out = serde_json::Map::new();
        for (k, x) in map.iter() {
            out.insert(
                k.to_string(),
                recorded_value(s, &format!("{path}.{k}"), x, depth + 1)?,
            );
        }
        return Ok(Value::Object(out));
    }
    if let Some(arr) = v.read_lock::<rhai::Array>() {
        return arr
            .iter()
            .enumerate()
            .map(|(i, x)| recorded_value(s, &format!("{path}.{i}"), x, depth + 1))
            .collect::<crate::error::Result<Vec<_>>>()
            .map(Value::Array);
    }
    dynamic_to_json("record", v)
}

/// Floats in printed text and string interpolation read as people write
/// them (see [`crate::numfmt`]); `to_debug` keeps every digit.
pub fn register_number_printing(engine: &mut Engine) {
    engine.register_fn("to_string", |x: rhai::FLOAT| crate::numfmt::number(x));
    engine.register_fn("print", |x: rhai::FLOAT| crate::numfmt::number(x));
}

/// Shows `text` through a pager ($VOXLAB_PAGER, $PAGER, else `less -FRX`)
/// when standard output is a terminal and the text is longer than it
/// ($LINES rows, 24 if unknown); otherwise prints it.
pub fn print_long(text: &str) {
    use std::io::{IsTerminal, Write};
    let rows = std::env::var("LINES")
        .ok()
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(24);
    if std::io::stdout().is_terminal() && text.lines().count() + 1 > rows {
        let pager = std::env::var("VOXLAB_PAGER")
            .or_else(|_| std::env::var("PAGER"))
            .unwrap_or_else(|_| "less -FRX".to_string());
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&pager)
            .stdin(std::process::Stdio::piped())
            .spawn();
        if let Ok(mut child) = child {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = writeln!(stdin, "{text}");
            }
            if child.wait().is_ok_and(|status| status.success()) {
                return;
            }
        }
    }
    println!("{text}");
}

/// `help()` and `help(name)`; registered last, once the registry is full.
pub fn register_help(engine: &mut Engine, help: Rc<HelpRegistry>) {
    let h = help.clone();
    engine.register_fn("help", move || print_long(&h.overview()));
    engine.register_fn("help", move |name: &str| -> RhaiResult<()> {
        match help.describe(name) {
            Some(text) => {
                print_long(&text);
                Ok(())
            }
            None => {
                let similar = help.similar(name);
                let hint = if similar.is_empty() {
                    String::new()
                } else {
                    format!("; did you mean {}?", similar.join(", "))
                };
                Err(script_error(format!(
                    "help: no function named \"{name}\"{hint}"
                )))
            }
        }
    });
}
