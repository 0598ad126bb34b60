//! The command line: `voxlab [repl] | run FILE | -e EXPR | info | doc [NAME]`.

pub mod collect;
pub mod diagnostic;
pub mod quotes;
pub mod record;
pub mod repl;
pub mod run;
pub mod sweep;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use rhai::{Array, Dynamic, Map};

use crate::engine::{self, Limits, Session};
use crate::plot::Figure;
use crate::tensor::Tensor;

pub const USAGE: &str = "\
voxlab — neural-decoding science in Rhai scripts

usage:
  voxlab                         interactive REPL (reads a script from stdin when piped)
  voxlab run FILE.rhai [options] run a script; writes run.json to the output folder
  voxlab -e 'EXPR' [options]     evaluate an expression or short script and print its value
  voxlab sweep FILE.rhai --grid KEY=V1,V2,... [options]
                                 run a script over a parameter grid, locally or on SLURM
  voxlab collect DIR... [--out table.csv]
                                 every run.json under the folders as one table
  voxlab info                    versions, device, CUDA, threads
  voxlab doc [NAME]              function reference (all, or one function)
  voxlab doc --markdown          the reference as Markdown (docs/reference.md)
  voxlab doc --quotes FILE.md... rewrites the numbers the docs quote from recorded
                                 runs (<!-- run NAME PATH --> markers; docs/papers/runs/)
  voxlab --help | --version

options for run and -e:
  --set KEY=VALUE      a parameter read by param(\"KEY\", default); repeatable
  --out DIR            output folder (run default: runs/<script>-<timestamp>/)
  --seed N             initial random seed (default 0)
  --threads N          CPU threads for libtorch
  --max-seconds S      stop the script after S seconds of running
  --max-memory MB      stop the script when the process uses more than MB of memory
  --max-operations N   stop the script after N Rhai operations

exit codes: 0 ok, 1 script error, 2 usage error";

/// A short, readable form of any script value (tensors as summaries).
pub fn show(v: &Dynamic) -> String {
    if let Some(t) = v.read_lock::<Tensor>() {
        return t.to_string();
    }
    if let Some(f) = v.read_lock::<Figure>() {
        return f.to_string();
    }
    if let Some(vol) = v.read_lock::<crate::data::Volume>() {
        return vol.to_string();
    }
    if let Some(m) = v.read_lock::<crate::engine::models::ResNetModel>() {
        return m.to_string();
    }
    if let Some(m) = v.read_lock::<crate::data::Mask>() {
        return m.to_string();
    }
    if let Some(s) = v.read_lock::<crate::data::ImageSet>() {
        return s.to_string();
    }
    if let Some(d) = v.read_lock::<crate::data::Dataset>() {
        return d.to_string();
    }
    if let Some(arr) = v.read_lock::<Array>() {
        const MAX: usize = 20;
        let mut items: Vec<String> = arr.iter().take(MAX).map(show).collect();
        if arr.len() > MAX {
            items.push(format!("… {} more", arr.len() - MAX));
        }
        return format!("[{}]", items.join(", "));
    }
    if let Some(map) = v.read_lock::<Map>() {
        let items: Vec<String> = map
            .iter()
            .map(|(k, x)| format!("{k}: {}", show(x)))
            .collect();
        return format!("#{{{}}}", items.join(", "));
    }
    if v.is_string() {
        return format!("{:?}", v.to_string());
    }
    if v.is_unit() {
        return "()".into();
    }
    v.to_string()
}

#[derive(Debug)]
struct UsageError(String);

struct Common {
    sets: Vec<(String, String)>,
    out: Option<PathBuf>,
    seed: i64,
    threads: Option<usize>,
    limits: Limits,
}

fn parse_common(args: &[String]) -> Result<(Common, Vec<String>), UsageError> {
    let mut c = Common {
        sets: vec![],
        out: None,
        seed: 0,
        threads: None,
        limits: Limits::default(),
    };
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") && f != "--set" => {
                (f.to_string(), Some(v.to_string()))
            }
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, UsageError> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| UsageError(format!("{name} needs a value")))
        };
        let number = |name: &str, v: String| -> Result<f64, UsageError> {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| UsageError(format!("{name} expects a positive number, got '{v}'")))
        };
        match flag.as_str() {
            "--set" => {
                let kv = value("--set")?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| UsageError(format!("--set expects KEY=VALUE, got '{kv}'")))?;
                if k.trim().is_empty() {
                    return Err(UsageError(format!("--set expects KEY=VALUE, got '{kv}'")));
                }
                c.sets.push((k.trim().to_string(), v.to_string()));
            }
            "--out" => c.out = Some(PathBuf::from(value("--out")?)),
            "--seed" => {
                let v = value("--seed")?;
                c.seed = v
                    .parse()
                    .map_err(|_| UsageError(format!("--seed expects an integer, got '{v}'")))?;
            }
            "--threads" => c.threads = Some(number("--threads", value("--threads")?)? as usize),
            "--max-seconds" => {
                c.limits.max_seconds = Some(number("--max-seconds", value("--max-seconds")?)?)
            }
            "--max-memory" => {
                c.limits.max_memory_mb =
                    Some(number("--max-memory", value("--max-memory")?)? as u64)
            }
            "--max-operations" => {
                c.limits.max_operations =
                    Some(number("--max-operations", value("--max-operations")?)? as u64)
            }
            f if f.starts_with("--") => return Err(UsageError(format!("unknown option {f}"))),
            _ => rest.push(a.clone()),
        }
    }
    Ok((c, rest))
}

fn info() -> String {
    let cuda = match crate::device::init_cuda() {
        crate::device::CudaLoad::NoDriver => "no NVIDIA driver found".to_string(),
        crate::device::CudaLoad::Loaded => format!(
            "available: {}, devices: {}",
            crate::device::cuda_available(),
            tch::Cuda::device_count()
        ),
        crate::device::CudaLoad::Failed(e) => {
            format!("driver present but libtorch_cuda could not be loaded: {e}")
        }
    };
    format!(
        "voxlab    {}\nrhai      {}\nlibtorch  {} (tch {}) from {}\ndevice    {}\nCUDA      {cuda}\nthreads   {} (libtorch), {} (rayon)",
        crate::VERSION,
        crate::RHAI_VERSION,
        crate::LIBTORCH_VERSION,
        env!("VOXLAB_TCH_VERSION"),
        env!("VOXLAB_LIBTORCH_LIB"),
        crate::device::name(crate::device::current()),
        crate::device::threads(),
        rayon::current_num_threads(),
    )
}

/// `voxlab doc --quotes FILE...`: each doc's quoted numbers rewritten from
/// the run records in docs/papers/runs/ (beside the docs: found from the
/// current folder, the repository root).
fn update_quotes(files: &[String]) -> Result<i32, UsageError> {
    if files.is_empty() {
        return Err(UsageError(
            "doc --quotes needs the Markdown files to update".into(),
        ));
    }
    let runs = std::path::Path::new("docs/papers/runs");
    for file in files {
        let result = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {file}: {e}"))
            .and_then(|text| quotes::update(&text, runs))
            .and_then(|(text, changed)| {
                std::fs::write(file, text).map_err(|e| format!("cannot write {file}: {e}"))?;
                Ok(changed)
            });
        match result {
            Ok(changed) => println!("{file}: {changed} quoted values changed"),
            Err(e) => {
                eprintln!("voxlab doc --quotes: {file}: {e}");
                return Ok(1);
            }
        }
    }
    Ok(0)
}

fn doc(args: &[String]) -> Result<i32, UsageError> {
    if args.first().is_some_and(|a| a == "--quotes") {
        return update_quotes(&args[1..]);
    }
    let vox = engine::build(Session::default(), Limits::default());
    match args {
        [] => {
            println!("{}", vox.help.overview());
            Ok(0)
        }
        [flag] if flag == "--markdown" => {
            print!("{}", vox.help.markdown());
            Ok(0)
        }
        [name] => match vox.help.describe(name) {
            Some(text) => {
                println!("{text}");
                Ok(0)
            }
            None => {
                let similar = vox.help.similar(name);
                let hint = if similar.is_empty() {
                    String::new()
                } else {
                    format!(" (did you mean {}?)", similar.join(", "))
                };
                eprintln!("voxlab doc: no function named '{name}'{hint}");
                Ok(2)
            }
        },
        _ => Err(UsageError("doc takes at most one name".into())),
    }
}

fn dispatch(args: &[String]) -> Result<i32, UsageError> {
    let first = args.first().map(String::as_str);
    match first {
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(0)
        }
        Some("-V" | "--version") => {
            println!("voxlab {}", crate::VERSION);
            Ok(0)
        }
        Some("info") => {
            crate::device::init_threads(None);
            println!("{}", info());
            Ok(0)
        }
        Some("doc") => doc(&args[1..]),
        // Sweeps and their tables (src/cli/sweep.rs, src/cli/collect.rs).
        Some("sweep") => Ok(sweep::main(&args[1..])),
        Some("sweep-task") => Ok(sweep::task(&args[1..])),
        Some("collect") => Ok(collect::main(&args[1..])),
        Some("run") => {
            let (c, rest) = parse_common(&args[1..])?;
            let [script] = rest.as_slice() else {
                return Err(UsageError(if rest.is_empty() {
                    "run needs a script file".into()
                } else {
                    format!("run takes one script, got {}", rest.join(" "))
                }));
            };
            crate::device::init_threads(c.threads);
            Ok(run::run_script(run::RunArgs {
                script: PathBuf::from(script),
                sets: c.sets,
                out: c.out,
                seed: c.seed,
                limits: c.limits,
                argv: std::env::args().collect(),
            }))
        }
        Some("-e") => {
            let (c, rest) = parse_common(&args[1..])?;
            let [expr] = rest.as_slice() else {
                return Err(UsageError("-e needs one expression (quote it)".into()));
            };
            crate::device::init_threads(c.threads);
            Ok(run::run_inline(
                "<expr>", expr, c.sets, c.out, c.seed, c.limits,
            ))
        }
        None
        | Some("repl")
        | Some(
            "--set" | "--out" | "--seed" | "--threads" | "--max-seconds" | "--max-memory"
            | "--max-operations",
        ) => {
            let skip = usize::from(first == Some("repl"));
            let (c, rest) = parse_common(&args[skip..])?;
            if !rest.is_empty() {
                return Err(UsageError(format!(
                    "unexpected argument {}",
                    rest.join(" ")
                )));
            }
            crate::device::init_threads(c.threads);
            if std::io::stdin().is_terminal() {
                Ok(repl::run(c.sets, c.out, c.seed, c.limits))
            } else {
                // Piped input is a script: rustyline's non-terminal path would
                // drop an unfinished last statement and swallow lines after an
                // invalid one, so read everything and run it at once.
                let mut text = String::new();
                if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                    eprintln!("voxlab: cannot read standard input: {e}");
                    return Ok(2);
                }
                Ok(run::run_inline(
                    "<stdin>", &text, c.sets, c.out, c.seed, c.limits,
                ))
            }
        }
        Some(other) if other.ends_with(".rhai") => {
            Err(UsageError(format!("to run a script: voxlab run {other}")))
        }
        Some(other) => Err(UsageError(format!("unknown command '{other}'"))),
    }
}

/// Entry point of the binary; returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    crate::engine::error::install_panic_hook();
    match dispatch(&args) {
        Ok(code) => code,
        Err(UsageError(msg)) => {
            eprintln!("voxlab: {msg}\n(voxlab --help shows the usage)");
            2
        }
    }
}
