//! The command line: `voxlab [repl] | run FILE | -e EXPR | info | doc [NAME]`.

pub mod collect;
pub mod diagnostic;
pub mod quotes;
pub mod record;
pub mod repl;
pub mod run;
pub mod sweep;

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

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
  --out DIR            output folder (run default: runs/<script>-<timestamp>/, a new
                       folder each run); a folder holding an earlier run's run.json
                       is refused unless --overwrite is given
  --overwrite          replace the earlier run in --out (its run.json and listed files)
  --sandbox            the script reads only its own folder, the output folder and
                       --allow-read folders, and writes only the output folder
                       (any --max-* limit turns this on too)
  --allow-read DIR     a data folder a sandboxed script may read; repeatable
  --seed N             initial random seed (default 0)
  --threads N          CPU threads for libtorch (at most 4 × the cores)
  --max-seconds S      stop the script after S seconds of running
  --max-memory MB      stop the script when the process's resident memory passes MB
                       (an allocation of known size that would pass it is refused)
  --max-operations N   stop the script after N Rhai operations
  (a limit stops the script at the next check, inside long functions too; run.json
   then has status \"stopped\" and stopped_by naming the limit)

signals: the first SIGINT/SIGTERM/SIGHUP stops the script at the next check and
writes run.json with status \"interrupted\"; a second one ends voxlab at once.
Scripts run on a thread with a 1 GiB stack (deeply nested values).

exit codes: 0 ok, 1 script error or limit, 2 usage error,
            130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP";

/// Stack of the thread scripts run on: Rhai and voxlab recurse over nested
/// values (printing, dropping, converting), and a 20,000-deep array needs
/// far more than the default 8 MiB. Only the pages used are committed.
pub const SCRIPT_STACK_BYTES: usize = 1 << 30;

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
    if let Ok(x) = v.as_float() {
        return crate::numfmt::value(x);
    }
    v.to_string()
}

#[derive(Debug)]
struct UsageError(String);

struct Common {
    sets: Vec<(String, String)>,
    out: Option<PathBuf>,
    overwrite: bool,
    /// `--sandbox`, or any `--max-*` limit.
    sandbox: bool,
    allow_read: Vec<PathBuf>,
    seed: i64,
    threads: Option<usize>,
    limits: Limits,
}

fn parse_common(args: &[String]) -> Result<(Common, Vec<String>), UsageError> {
    let mut c = Common {
        sets: vec![],
        out: None,
        overwrite: false,
        sandbox: false,
        allow_read: Vec::new(),
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
        let count = |name: &str, v: String| -> Result<u64, UsageError> {
            v.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| UsageError(format!("{name} expects a positive integer, got '{v}'")))
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
            "--out" => {
                let dir = value("--out")?;
                if dir.trim().is_empty() {
                    return Err(UsageError("--out needs a folder name, got ''".into()));
                }
                c.out = Some(PathBuf::from(dir))
            }
            "--overwrite" => c.overwrite = true,
            "--sandbox" => c.sandbox = true,
            "--allow-read" => {
                let dir = PathBuf::from(value("--allow-read")?);
                if !dir.is_dir() {
                    return Err(UsageError(format!(
                        "--allow-read expects an existing folder, got '{}'",
                        dir.display()
                    )));
                }
                c.allow_read.push(dir)
            }
            "--seed" => {
                let v = value("--seed")?;
                c.seed = v
                    .parse()
                    .map_err(|_| UsageError(format!("--seed expects an integer, got '{v}'")))?;
            }
            "--threads" => {
                let n = count("--threads", value("--threads")?)?;
                let most = crate::device::max_threads();
                if n > most as u64 {
                    return Err(UsageError(format!(
                        "--threads {n} is more than {most} (4 × this machine's cores)"
                    )));
                }
                c.threads = Some(n as usize)
            }
            "--max-seconds" => {
                c.limits.max_seconds = Some(number("--max-seconds", value("--max-seconds")?)?)
            }
            "--max-memory" => {
                c.limits.max_memory_mb = Some(count("--max-memory", value("--max-memory")?)?)
            }
            "--max-operations" => {
                c.limits.max_operations =
                    Some(count("--max-operations", value("--max-operations")?)?)
            }
            f if f.starts_with("--") => return Err(UsageError(format!("unknown option {f}"))),
            _ => rest.push(a.clone()),
        }
    }
    // A limit says the script is not trusted (a teaching lab): confine it too.
    let limits = &c.limits;
    if limits.max_seconds.is_some()
        || limits.max_memory_mb.is_some()
        || limits.max_operations.is_some()
    {
        c.sandbox = true;
    }
    if !c.allow_read.is_empty() && !c.sandbox {
        return Err(UsageError(
            "--allow-read needs --sandbox (or a --max-* limit)".into(),
        ));
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
/// the records its markers name (docs/papers/runs/, bench/results/: found
/// from the current folder, the repository root).
fn update_quotes(files: &[String]) -> Result<i32, UsageError> {
    if files.is_empty() {
        return Err(UsageError(
            "doc --quotes needs the Markdown files to update".into(),
        ));
    }
    let root = std::path::Path::new(".");
    for file in files {
        let result = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {file}: {e}"))
            .and_then(|text| quotes::update(&text, root))
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

/// Sandbox mode for `-e`, piped scripts and the REPL: reads in the current
/// folder, the output folder and `--allow-read`; writes in the output folder
/// (default: the current one). Some(exit code) when it cannot be set up.
fn sandbox_here(c: &Common) -> Option<i32> {
    if !c.sandbox {
        return None;
    }
    let out = c.out.clone().unwrap_or_else(|| PathBuf::from("."));
    let made = std::fs::create_dir_all(&out)
        .map_err(|e| crate::Error::io("--sandbox", &out, e))
        .and_then(|_| crate::sandbox::enable(Path::new("."), &out, &c.allow_read));
    match made {
        Ok(()) => None,
        Err(e) => {
            eprintln!("voxlab: {e}");
            Some(2)
        }
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
                overwrite: c.overwrite,
                sandbox: c.sandbox.then_some(c.allow_read),
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
            if let Some(code) = sandbox_here(&c) {
                return Ok(code);
            }
            Ok(run::run_inline(
                "<expr>", expr, c.sets, c.out, c.seed, c.limits,
            ))
        }
        None
        | Some("repl")
        | Some(
            "--set" | "--out" | "--overwrite" | "--seed" | "--threads" | "--max-seconds"
            | "--max-memory" | "--max-operations" | "--sandbox" | "--allow-read",
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
            if let Some(code) = sandbox_here(&c) {
                return Ok(code);
            }
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

/// Entry point of the binary; returns the process exit code. Everything runs
/// on one thread with [`SCRIPT_STACK_BYTES`] of stack.
pub fn main(args: Vec<String>) -> i32 {
    crate::engine::error::install_panic_hook();
    let worker = std::thread::Builder::new()
        .name("voxlab".into())
        .stack_size(SCRIPT_STACK_BYTES)
        .spawn(move || match dispatch(&args) {
            Ok(code) => code,
            Err(UsageError(msg)) => {
                eprintln!("voxlab: {msg}\n(voxlab --help shows the usage)");
                2
            }
        });
    match worker.map(|w| w.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => {
            eprintln!("voxlab: internal error — this is a bug in voxlab, please report it");
            70
        }
        Err(e) => {
            eprintln!("voxlab: cannot start the script thread: {e}");
            70
        }
    }
}
