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
    summary: "Stores a result (number, string, map, array or small tensor) in run.json's metrics.",
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
                    Some(text) => convert_param(name, &text, &default)?,
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
                s.record(name, dynamic_to_json("record", &value)?);
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

/// `help()` and `help(name)`; registered last, once the registry is full.
pub fn register_help(engine: &mut Engine, help: Rc<HelpRegistry>) {
    let h = help.clone();
    engine.register_fn("help", move || println!("{}", h.overview()));
    engine.register_fn("help", move |name: &str| -> RhaiResult<()> {
        match help.describe(name) {
            Some(text) => {
                println!("{text}");
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
