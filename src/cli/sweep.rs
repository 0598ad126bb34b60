//! `voxlab sweep`: a parameter grid run as ordinary `voxlab run`s, locally
//! (`--jobs N` at once) or as a SLURM job array (`--slurm`). voxlab has no
//! scheduler of its own: locally a sweep is a loop over child processes, on
//! a cluster it is one `sbatch` whose array tasks each run
//! `voxlab sweep-task DIR INDEX`, which reads its point from DIR/sweep.json.
//!
//! Every point writes its own run folder `DIR/<index>-<key=value,...>/` with
//! its run.json; a point whose run.json says ok is skipped when the sweep is
//! run again (`--force` reruns it), so an interrupted sweep resumes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

use super::record;

pub const USAGE: &str = "\
usage: voxlab sweep SCRIPT.rhai --grid KEY=V1,V2,... [--grid ...] [options]

Runs SCRIPT once per point of the grid (the cartesian product of the lists,
or with --zip the lists side by side), each point an ordinary `voxlab run`
into DIR/<index>-<key=value,...>/ with its own run.json. DIR/sweep.json lists
the points. Running the same sweep again skips points whose run.json says ok.

options:
  --grid KEY=V1,V2,...  values of one parameter (read by param(\"KEY\", ...)); repeatable;
                        a grid key `seed` also sets each run's --seed
  --zip                 pair the lists (all of one length) instead of their product
  --out DIR             the sweep's folder (default sweeps/<script>-<timestamp>/)
  --jobs N              points run at once locally (default 1); threads are divided
  --force               rerun points whose run.json says ok
  --set KEY=VALUE       a parameter fixed for every point; repeatable
  --seed N --threads N --max-seconds S --max-memory MB --max-operations N
  --sandbox --allow-read DIR
                        as for voxlab run (--threads: in total, divided between jobs)
SLURM (a job array, one task per point still to run):
  --slurm               write DIR/sweep.sbatch and submit it with sbatch
  --dry-run             only write the script
  --wait                wait for the array to finish (sbatch --wait), then report
  --partition P --time [D-]HH:MM:SS --cpus C --mem M (e.g. 8G) --gpus G (N or TYPE:N)
  --array-max K         at most K tasks at once
  --sbatch 'OPTION'     any other #SBATCH line, e.g. --sbatch '--account=lab'; repeatable
  --setup 'COMMAND'     a shell line run before voxlab, e.g. 'module load cuda'; repeatable

exit codes: 0 every point ok, 1 a point failed (the others still ran), 2 usage error";

pub const MANIFEST: &str = "sweep.json";
pub const SBATCH_SCRIPT: &str = "sweep.sbatch";
/// Format version of sweep.json.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, Clone, Default)]
struct Slurm {
    partition: Option<String>,
    time: Option<String>,
    cpus: Option<u32>,
    mem: Option<String>,
    gpus: Option<String>,
    array_max: Option<u32>,
    sbatch: Vec<String>,
    setup: Vec<String>,
}

#[derive(Debug, Default)]
struct Args {
    script: Option<PathBuf>,
    grids: Vec<(String, Vec<String>)>,
    zip: bool,
    out: Option<PathBuf>,
    jobs: usize,
    force: bool,
    sets: Vec<(String, String)>,
    seed: Option<String>,
    threads: Option<usize>,
    /// --max-* limits, --sandbox and --allow-read, passed on to every run as given.
    limits: Vec<String>,
    slurm: Option<Slurm>,
    dry_run: bool,
    wait: bool,
}

/// One point of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub index: usize,
    /// Folder name inside the sweep folder.
    pub dir: String,
    pub set: Vec<(String, String)>,
}

fn positive(cmd: &str, flag: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{cmd}: {flag} expects a positive integer, got '{v}'"))
}

/// `[D-]HH:MM:SS` as sbatch's --time takes it.
fn check_time(v: &str) -> Result<(), String> {
    let bad =
        || format!("sweep: --time expects [D-]HH:MM:SS (e.g. 02:00:00 or 1-12:00:00), got '{v}'");
    let (days, hms) = match v.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, v),
    };
    if let Some(d) = days {
        if d.is_empty() || !d.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
    }
    let parts: Vec<&str> = hms.split(':').collect();
    let [h, m, s] = parts.as_slice() else {
        return Err(bad());
    };
    let num = |x: &str| -> Option<u32> {
        (!x.is_empty() && x.len() <= 3 && x.chars().all(|c| c.is_ascii_digit()))
            .then(|| x.parse().ok())
            .flatten()
    };
    match (num(h), num(m), num(s)) {
        (Some(_), Some(m), Some(s)) if m < 60 && s < 60 && m.to_string().len() <= 2 => Ok(()),
        _ => Err(bad()),
    }
}

fn check_mem(v: &str) -> Result<(), String> {
    let digits = v.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && v.len() - digits.len() <= 1;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "sweep: --mem expects a size such as 4000 (MB), 8G or 500M, got '{v}'"
        ))
    }
}

fn check_gpus(v: &str) -> Result<(), String> {
    let count = v.rsplit(':').next().unwrap_or("");
    let kind_ok = v.split(':').rev().skip(1).all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    });
    if !count.is_empty() && count.chars().all(|c| c.is_ascii_digit()) && kind_ok {
        Ok(())
    } else {
        Err(format!(
            "sweep: --gpus expects a count or TYPE:COUNT (e.g. 1 or a100:2), got '{v}'"
        ))
    }
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        jobs: 1,
        ..Default::default()
    };
    let mut slurm = Slurm::default();
    let mut slurm_flags: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("sweep: {name} needs a value"))
        };
        match flag.as_str() {
            "--grid" => {
                let g = value("--grid")?;
                let expected = |got: &str| {
                    format!(
                        "sweep: --grid expects KEY=V1,V2,... (e.g. alpha=0.1,1,10), got '{got}'"
                    )
                };
                let (k, vs) = g.split_once('=').ok_or_else(|| expected(&g))?;
                let k = k.trim();
                let values: Vec<String> = vs.split(',').map(|v| v.trim().to_string()).collect();
                if k.is_empty() || values.iter().any(String::is_empty) {
                    return Err(expected(&g));
                }
                if a.grids.iter().any(|(name, _)| name == k) {
                    return Err(format!(
                        "sweep: --grid {k} is given twice; put all its values in one list"
                    ));
                }
                a.grids.push((k.to_string(), values));
            }
            "--set" => {
                let kv = value("--set")?;
                let (k, v) = kv
                    .split_once('=')
                    .filter(|(k, _)| !k.trim().is_empty())
                    .ok_or_else(|| format!("sweep: --set expects KEY=VALUE, got '{kv}'"))?;
                a.sets.push((k.trim().to_string(), v.to_string()));
            }
            "--zip" => a.zip = true,
            "--force" => a.force = true,
            "--out" => a.out = Some(PathBuf::from(value("--out")?)),
            "--jobs" => a.jobs = positive("sweep", "--jobs", &value("--jobs")?)? as usize,
            "--seed" => {
                let v = value("--seed")?;
                v.parse::<i64>()
                    .map_err(|_| format!("sweep: --seed expects an integer, got '{v}'"))?;
                a.seed = Some(v);
            }
            "--threads" => {
                a.threads = Some(positive("sweep", "--threads", &value("--threads")?)? as usize)
            }
            "--max-seconds" | "--max-memory" | "--max-operations" => {
                let v = value(&flag)?;
                // As `voxlab run` checks them: seconds a positive number,
                // memory and operations positive integers.
                let ok = if flag == "--max-seconds" {
                    v.parse::<f64>().is_ok_and(|x| x.is_finite() && x > 0.0)
                } else {
                    v.parse::<u64>().is_ok_and(|n| n > 0)
                };
                if !ok {
                    let what = if flag == "--max-seconds" {
                        "number"
                    } else {
                        "integer"
                    };
                    return Err(format!(
                        "sweep: {flag} expects a positive {what}, got '{v}'"
                    ));
                }
                a.limits.push(flag.clone());
                a.limits.push(v);
            }
            // Passed on to every run with the limits (see `voxlab run --sandbox`).
            "--sandbox" => a.limits.push(flag.clone()),
            "--allow-read" => {
                let v = value(&flag)?;
                a.limits.push(flag.clone());
                a.limits.push(v);
            }
            "--slurm" => a.slurm = Some(Slurm::default()),
            "--dry-run" => a.dry_run = true,
            "--wait" => a.wait = true,
            "--partition" => {
                let v = value("--partition")?;
                if v.is_empty() || v.contains(char::is_whitespace) {
                    return Err(format!(
                        "sweep: --partition expects a partition name, got '{v}'"
                    ));
                }
                slurm.partition = Some(v);
                slurm_flags.push(flag.clone());
            }
            "--time" => {
                let v = value("--time")?;
                check_time(&v)?;
                slurm.time = Some(v);
                slurm_flags.push(flag.clone());
            }
            "--cpus" => {
                slurm.cpus = Some(positive("sweep", "--cpus", &value("--cpus")?)? as u32);
                slurm_flags.push(flag.clone());
            }
            "--mem" => {
                let v = value("--mem")?;
                check_mem(&v)?;
                slurm.mem = Some(v);
                slurm_flags.push(flag.clone());
            }
            "--gpus" => {
                let v = value("--gpus")?;
                check_gpus(&v)?;
                slurm.gpus = Some(v);
                slurm_flags.push(flag.clone());
            }
            "--array-max" => {
                slurm.array_max =
                    Some(positive("sweep", "--array-max", &value("--array-max")?)? as u32);
                slurm_flags.push(flag.clone());
            }
            "--sbatch" => {
                let v = value("--sbatch")?;
                if !v.starts_with('-') || v.contains('\n') {
                    return Err(format!(
                        "sweep: --sbatch expects one sbatch option such as '--account=lab', got '{v}'"
                    ));
                }
                slurm.sbatch.push(v);
                slurm_flags.push(flag.clone());
            }
            "--setup" => {
                let v = value("--setup")?;
                if v.contains('\n') {
                    return Err(
                        "sweep: --setup expects one shell line (repeat --setup for more)".into(),
                    );
                }
                slurm.setup.push(v);
                slurm_flags.push(flag.clone());
            }
            f if f.starts_with('-') => return Err(format!("sweep: unknown option {f}")),
            _ => {
                if let Some(s) = &a.script {
                    return Err(format!(
                        "sweep: takes one script, got {} and {arg}",
                        s.display()
                    ));
                }
                a.script = Some(PathBuf::from(arg));
            }
        }
    }
    if a.script.is_none() {
        return Err("sweep: needs a script: voxlab sweep SCRIPT.rhai --grid KEY=V1,V2,...".into());
    }
    if a.grids.is_empty() {
        return Err(
            "sweep: needs at least one --grid KEY=V1,V2,... (the parameters to vary)".into(),
        );
    }
    match &mut a.slurm {
        Some(s) => {
            *s = slurm;
        }
        None => {
            if let Some(f) = slurm_flags.first() {
                return Err(format!("sweep: {f} is a SLURM setting; it needs --slurm"));
            }
            if a.dry_run || a.wait {
                let f = if a.dry_run { "--dry-run" } else { "--wait" };
                return Err(format!("sweep: {f} goes with --slurm"));
            }
        }
    }
    if a.zip {
        let lens: Vec<String> = a
            .grids
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.len()))
            .collect();
        if a.grids.iter().any(|(_, v)| v.len() != a.grids[0].1.len()) {
            return Err(format!(
                "sweep: --zip pairs lists of one length, got {}",
                lens.join(", ")
            ));
        }
    }
    Ok(a)
}

/// A file-name-safe form of a parameter value.
fn safe(v: &str) -> String {
    let s: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.chars().take(40).collect()
}

/// The points of a grid: the cartesian product (last key fastest), or the
/// lists zipped.
pub fn points(grids: &[(String, Vec<String>)], zip: bool) -> Vec<Point> {
    let sets: Vec<Vec<(String, String)>> = if zip {
        let n = grids.first().map_or(0, |g| g.1.len());
        (0..n)
            .map(|i| {
                grids
                    .iter()
                    .map(|(k, v)| (k.clone(), v[i].clone()))
                    .collect()
            })
            .collect()
    } else {
        let mut acc: Vec<Vec<(String, String)>> = vec![vec![]];
        for (k, values) in grids {
            acc = acc
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut q = p.clone();
                        q.push((k.clone(), v.clone()));
                        q
                    })
                })
                .collect();
        }
        acc
    };
    let width = sets.len().saturating_sub(1).to_string().len();
    sets.into_iter()
        .enumerate()
        .map(|(index, set)| {
            let label: Vec<String> = set
                .iter()
                .map(|(k, v)| format!("{}={}", safe(k), safe(v)))
                .collect();
            Point {
                index,
                dir: format!("{index:0width$}-{}", label.join(",")),
                set,
            }
        })
        .collect()
}

fn point_json(p: &Point) -> Value {
    let set: serde_json::Map<String, Value> = p
        .set
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({"index": p.index, "dir": p.dir, "set": set})
}

fn write_manifest(dir: &Path, m: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(m).map_err(|e| e.to_string())?;
    crate::io::write_atomic("sweep", &dir.join(MANIFEST), format!("{text}\n").as_bytes())
        .map_err(|e| e.to_string())
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The status a point's run.json records ("ok", "failed", ...), if any.
pub fn run_status(run_dir: &Path) -> Option<String> {
    read_json(&run_dir.join("run.json"))?
        .get("status")?
        .as_str()
        .map(str::to_string)
}

/// The arguments of `voxlab run` for one point (without the program name).
fn run_args(m: &Value, dir: &Path, p: &Value, threads: Option<usize>) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        m["script"].as_str().unwrap_or_default().to_string(),
    ];
    let mut seed = m["seed"].as_str().map(str::to_string);
    for set in [&m["set"], &p["set"]] {
        if let Some(map) = set.as_object() {
            for (k, v) in map {
                let v = v.as_str().unwrap_or_default();
                args.push("--set".into());
                args.push(format!("{k}={v}"));
                if k == "seed" {
                    seed = Some(v.to_string());
                }
            }
        }
    }
    if let Some(s) = seed {
        args.push("--seed".into());
        args.push(s);
    }
    if let Some(limits) = m["limits"].as_array() {
        args.extend(limits.iter().filter_map(|v| v.as_str().map(str::to_string)));
    }
    if let Some(t) = threads {
        args.push("--threads".into());
        args.push(t.to_string());
    }
    args.push("--out".into());
    args.push(
        dir.join(p["dir"].as_str().unwrap_or_default())
            .display()
            .to_string(),
    );
    args
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Compresses sorted indices into sbatch's array form: 0-3,5,7-8.
fn array_spec(ids: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            ids[i].to_string()
        } else {
            format!("{}-{}", ids[i], ids[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// The sbatch job-array script for the points `todo` of the sweep in `dir`.
fn sbatch_script(dir: &Path, m: &Value, s: &Slurm, todo: &[usize], exe: &Path) -> String {
    let abs = absolute(dir);
    let stem = Path::new(m["script"].as_str().unwrap_or("script"))
        .file_stem()
        .map_or("script".into(), |s| s.to_string_lossy().to_string());
    let mut out = String::from("#!/bin/bash\n");
    out.push_str(&format!(
        "# Written by voxlab sweep: one array task per point of {}/{MANIFEST};\n\
         # each task runs `voxlab sweep-task` with its SLURM_ARRAY_TASK_ID.\n",
        abs.display()
    ));
    out.push_str(&format!("#SBATCH --job-name=voxlab-{}\n", safe(&stem)));
    let throttle = s.array_max.map_or(String::new(), |k| format!("%{k}"));
    out.push_str(&format!("#SBATCH --array={}{throttle}\n", array_spec(todo)));
    out.push_str(&format!("#SBATCH --output={}/logs/%a.log\n", abs.display()));
    if let Some(p) = &s.partition {
        out.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if let Some(t) = &s.time {
        out.push_str(&format!("#SBATCH --time={t}\n"));
    }
    if let Some(c) = s.cpus {
        out.push_str(&format!("#SBATCH --cpus-per-task={c}\n"));
    }
    if let Some(mem) = &s.mem {
        out.push_str(&format!("#SBATCH --mem={mem}\n"));
    }
    if let Some(g) = &s.gpus {
        out.push_str(&format!("#SBATCH --gpus={g}\n"));
    }
    for extra in &s.sbatch {
        out.push_str(&format!("#SBATCH {extra}\n"));
    }
    out.push_str("set -euo pipefail\n");
    for line in &s.setup {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!(
        "cd {}\nVOXLAB=\"${{VOXLAB:-{}}}\"\n",
        sh_quote(m["cwd"].as_str().unwrap_or(".")),
        exe.display()
    ));
    out.push_str(&format!(
        "exec \"$VOXLAB\" sweep-task {} \"$SLURM_ARRAY_TASK_ID\" --threads \"${{SLURM_CPUS_PER_TASK:-1}}\"\n",
        sh_quote(&abs.display().to_string())
    ));
    out
}

struct Done {
    status: String,
    exit_code: Option<i32>,
    seconds: f64,
    error: Option<String>,
}

fn run_point(exe: &Path, dir: &Path, m: &Value, p: &Value, threads: Option<usize>) -> Done {
    let run_dir = dir.join(p["dir"].as_str().unwrap_or_default());
    let clock = Instant::now();
    let fail = |msg: String| Done {
        status: "failed".into(),
        exit_code: None,
        seconds: clock.elapsed().as_secs_f64(),
        error: Some(msg),
    };
    if let Err(e) = std::fs::create_dir_all(&run_dir) {
        return fail(format!("cannot create {}: {e}", run_dir.display()));
    }
    // A stale record must not pass for this attempt's.
    let _ = std::fs::remove_file(run_dir.join("run.json"));
    let log_path = run_dir.join("voxlab.log");
    let log = match std::fs::File::create(&log_path) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot write {}: {e}", log_path.display())),
    };
    let err_log = match log.try_clone() {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot write {}: {e}", log_path.display())),
    };
    let status = Command::new(exe)
        .args(run_args(m, dir, p, threads))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .status();
    let seconds = clock.elapsed().as_secs_f64();
    let code = match status {
        Ok(s) => s.code(),
        Err(e) => return fail(format!("cannot start {}: {e}", exe.display())),
    };
    let rec = read_json(&run_dir.join("run.json"));
    let status = rec
        .as_ref()
        .and_then(|r| r["status"].as_str().map(str::to_string))
        .unwrap_or_else(|| "failed".into());
    let error = match &rec {
        Some(r) => r["error"]["message"].as_str().map(str::to_string),
        None => Some(format!(
            "voxlab run ended with {} and wrote no run.json; see {}",
            code.map_or("a signal".into(), |c| format!("exit code {c}")),
            log_path.display()
        )),
    };
    Done {
        status,
        exit_code: code,
        seconds,
        error,
    }
}

/// Where the sweep runs; a manifest from an earlier invocation must describe
/// the same points.
fn prepare(a: &Args) -> Result<(PathBuf, Value, Vec<Point>), String> {
    let script = a.script.clone().unwrap_or_default();
    let text = std::fs::read_to_string(&script)
        .map_err(|e| format!("sweep: cannot read the script {}: {e}", script.display()))?;
    let points = points(&a.grids, a.zip);
    let stem = script
        .file_stem()
        .map_or("script".into(), |s| s.to_string_lossy().to_string());
    let now = SystemTime::now();
    let dir = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("sweeps").join(format!("{stem}-{}", record::compact_timestamp(now)))
    });
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "sweep: cannot create the output folder {}: {e}",
            dir.display()
        )
    })?;
    let grid: serde_json::Map<String, Value> =
        a.grids.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let set: serde_json::Map<String, Value> = a
        .sets
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let cwd = std::env::current_dir()
        .map_err(|e| format!("sweep: cannot read the working directory: {e}"))?;
    let mut m = json!({
        "format": MANIFEST_FORMAT,
        "script": script.display().to_string(),
        "script_sha256": record::sha256_hex(text.as_bytes()),
        "cwd": cwd.display().to_string(),
        "mode": if a.zip { "zip" } else { "product" },
        "grid": grid,
        "set": set,
        "seed": a.seed,
        "limits": a.limits,
        "voxlab": crate::VERSION,
        "created": record::rfc3339(now),
        "points": points.iter().map(point_json).collect::<Vec<_>>(),
    });
    if let Some(old) = read_json(&dir.join(MANIFEST)) {
        let shape = |v: &Value| -> Vec<Value> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|p| json!([p["index"], p["dir"], p["set"]]))
                .collect()
        };
        let same = shape(&old["points"]) == shape(&m["points"])
            && old["set"] == m["set"]
            && old["script"] == m["script"];
        if !same {
            return Err(format!(
                "sweep: {} describes another sweep (other script, --set or points); \
                 resume it with the same arguments or choose another --out",
                dir.join(MANIFEST).display()
            ));
        }
        m["created"] = old["created"].clone();
        m["points"] = old["points"].clone();
        if let Some(j) = old.get("slurm") {
            m["slurm"] = j.clone();
        }
    }
    Ok((dir, m, points))
}

fn summary(dir: &Path, m: &Value) -> (usize, usize, usize) {
    let (mut ok, mut failed, mut missing) = (0, 0, 0);
    for p in m["points"].as_array().into_iter().flatten() {
        match run_status(&dir.join(p["dir"].as_str().unwrap_or_default())).as_deref() {
            Some("ok") => ok += 1,
            Some(_) => failed += 1,
            None => missing += 1,
        }
    }
    (ok, failed, missing)
}

fn exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("sweep: cannot find the voxlab binary: {e}"))
}

/// `voxlab sweep ...`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return 0;
    }
    let usage = |msg: String| {
        eprintln!("voxlab {msg}\n(voxlab sweep --help shows the usage)");
        2
    };
    let a = match parse(args) {
        Ok(a) => a,
        Err(msg) => return usage(msg),
    };
    let (dir, mut m, points) = match prepare(&a) {
        Ok(x) => x,
        Err(msg) => return usage(msg),
    };
    let exe = match exe() {
        Ok(e) => e,
        Err(msg) => {
            eprintln!("voxlab {msg}");
            return 1;
        }
    };
    let todo: Vec<usize> = points
        .iter()
        .filter(|p| a.force || run_status(&dir.join(&p.dir)).as_deref() != Some("ok"))
        .map(|p| p.index)
        .collect();
    let skipped = points.len() - todo.len();
    if skipped > 0 {
        eprintln!(
            "sweep: {skipped} of {} points already ok, skipped (--force reruns them)",
            points.len()
        );
    }
    if let Some(s) = &a.slurm {
        return slurm(&a, s, &dir, &mut m, &todo, &exe);
    }
    if let Err(e) = write_manifest(&dir, &m) {
        eprintln!("voxlab sweep: {e}");
        return 1;
    }
    let total_threads = a
        .threads
        .or_else(|| std::env::var("VOXLAB_THREADS").ok()?.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let jobs = a.jobs.min(todo.len()).max(1);
    let per_run = (total_threads / jobs).max(1);
    eprintln!(
        "sweep: {} points to run in {}, {jobs} at a time, {per_run} thread{} each",
        todo.len(),
        dir.display(),
        if per_run == 1 { "" } else { "s" }
    );
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let manifest = Mutex::new(m);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&index) = todo.get(k) else { break };
                let (mjson, p) = {
                    let m = manifest.lock().unwrap_or_else(|e| e.into_inner());
                    (m.clone(), m["points"][index].clone())
                };
                let done = run_point(&exe, &dir, &mjson, &p, Some(per_run));
                let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                let name = p["dir"].as_str().unwrap_or_default();
                match &done.error {
                    Some(e) if done.status != "ok" => eprintln!(
                        "[{n}/{}] {name}: {} after {:.1} s: {e}",
                        todo.len(),
                        done.status,
                        done.seconds
                    ),
                    _ => eprintln!(
                        "[{n}/{}] {name}: {} in {:.1} s",
                        todo.len(),
                        done.status,
                        done.seconds
                    ),
                }
                let mut m = manifest.lock().unwrap_or_else(|e| e.into_inner());
                m["points"][index]["status"] = json!(done.status);
                m["points"][index]["exit_code"] = json!(done.exit_code);
                m["points"][index]["duration_s"] = json!((done.seconds * 1000.0).round() / 1000.0);
                m["points"][index]["error"] = json!(done.error);
                m["updated"] = json!(record::rfc3339(SystemTime::now()));
                if let Err(e) = write_manifest(&dir, &m) {
                    eprintln!("voxlab sweep: {e}");
                }
            });
        }
    });
    let m = manifest.into_inner().unwrap_or_else(|e| e.into_inner());
    let (ok, failed, missing) = summary(&dir, &m);
    eprintln!(
        "sweep: {ok} ok, {failed} failed{} in {} (voxlab collect {} makes the table)",
        if missing > 0 {
            format!(", {missing} not run")
        } else {
            String::new()
        },
        dir.display(),
        dir.display()
    );
    i32::from(failed + missing > 0)
}

fn slurm(a: &Args, s: &Slurm, dir: &Path, m: &mut Value, todo: &[usize], exe: &Path) -> i32 {
    let script_path = dir.join(SBATCH_SCRIPT);
    if todo.is_empty() {
        eprintln!("sweep: every point is ok already; nothing to submit (--force reruns them)");
        let _ = write_manifest(dir, m);
        return 0;
    }
    if let Err(e) = std::fs::create_dir_all(dir.join("logs")) {
        eprintln!(
            "voxlab sweep: cannot create {}: {e}",
            dir.join("logs").display()
        );
        return 1;
    }
    let text = sbatch_script(dir, m, s, todo, exe);
    if let Err(e) = crate::io::write_atomic("sweep", &script_path, text.as_bytes()) {
        eprintln!("voxlab sweep: {e}");
        return 1;
    }
    if let Err(e) = write_manifest(dir, m) {
        eprintln!("voxlab sweep: {e}");
        return 1;
    }
    if a.dry_run {
        eprintln!(
            "sweep: wrote {} ({} array tasks); submit it with: sbatch {}",
            script_path.display(),
            todo.len(),
            script_path.display()
        );
        return 0;
    }
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable");
    if a.wait {
        cmd.arg("--wait");
    }
    cmd.arg(&script_path).stdin(Stdio::null());
    let clock = Instant::now();
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "voxlab sweep: cannot run sbatch ({e}); is this a SLURM login node? \
                 {} is written; --dry-run only writes it",
                script_path.display()
            );
            return 1;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let job = stdout.trim().split(';').next().unwrap_or("").to_string();
    if job.is_empty() {
        eprintln!(
            "voxlab sweep: sbatch failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return 1;
    }
    m["slurm"] = json!({
        "job_id": job,
        "script": SBATCH_SCRIPT,
        "tasks": todo,
        "submitted": record::rfc3339(SystemTime::now()),
    });
    let _ = write_manifest(dir, m);
    if !a.wait {
        eprintln!(
            "sweep: submitted job array {job} ({} tasks, logs in {}/logs/); \
             when it ends: voxlab collect {}",
            todo.len(),
            dir.display(),
            dir.display()
        );
        println!("{job}");
        return 0;
    }
    let (ok, failed, missing) = summary(dir, m);
    eprintln!(
        "sweep: job array {job} ended after {:.1} s: {ok} ok, {failed} failed{}",
        clock.elapsed().as_secs_f64(),
        if missing > 0 {
            format!(", {missing} without run.json (see {}/logs/)", dir.display())
        } else {
            String::new()
        }
    );
    println!("{job}");
    i32::from(failed + missing > 0)
}

/// `voxlab sweep-task DIR INDEX [--threads N]`: runs point INDEX of
/// DIR/sweep.json in this process (what each SLURM array task does).
pub fn task(args: &[String]) -> i32 {
    let usage = |msg: String| {
        eprintln!("voxlab sweep-task: {msg}\n(usage: voxlab sweep-task DIR INDEX [--threads N])");
        2
    };
    let mut threads: Option<usize> = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => match it.next().map(|v| positive("sweep-task", "--threads", v)) {
                Some(Ok(n)) => threads = Some(n as usize),
                Some(Err(e)) => return usage(e),
                None => return usage("--threads needs a value".into()),
            },
            f if f.starts_with("--") => return usage(format!("unknown option {f}")),
            _ => rest.push(a.clone()),
        }
    }
    let [dir, index] = rest.as_slice() else {
        return usage(format!(
            "expected DIR and INDEX, got {} arguments",
            rest.len()
        ));
    };
    let dir = absolute(Path::new(dir));
    let Ok(index) = index.parse::<usize>() else {
        return usage(format!("INDEX must be a point number, got '{index}'"));
    };
    let Some(m) = read_json(&dir.join(MANIFEST)) else {
        return usage(format!(
            "{} is missing or not JSON",
            dir.join(MANIFEST).display()
        ));
    };
    let n = m["points"].as_array().map_or(0, Vec::len);
    if index >= n {
        return usage(format!(
            "the sweep has points 0..{}, got {index}",
            n.saturating_sub(1)
        ));
    }
    let p = m["points"][index].clone();
    if let Some(cwd) = m["cwd"].as_str() {
        if let Err(e) = std::env::set_current_dir(cwd) {
            eprintln!("voxlab sweep-task: cannot enter {cwd}: {e}");
            return 1;
        }
    }
    let mut run = run_args(&m, &dir, &p, threads);
    // `--out` must be absolute or relative to the sweep's working directory.
    if let Some(last) = run.last_mut() {
        *last = dir
            .join(p["dir"].as_str().unwrap_or_default())
            .display()
            .to_string();
    }
    eprintln!("sweep-task: point {index}: voxlab {}", run.join(" "));
    match super::dispatch(&run) {
        Ok(code) => code,
        Err(super::UsageError(msg)) => usage(msg),
    }
}
