//! `voxlab collect DIR...`: every run.json under the folders as one table —
//! one row per run: run folder, status, parameters, every scalar metric,
//! duration, seed, script and its hash, voxlab version. Written as CSV and
//! printed aligned; `load_runs(dir)` gives scripts the same columns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::io::table::{Column, Table};

pub const USAGE: &str = "\
usage: voxlab collect DIR... [--out table.csv] [--quiet]

Finds every run.json under the folders (runs of voxlab run or voxlab sweep)
and makes one table: one row per run with its folder, status, parameters,
every scalar metric (a map of scalars becomes name.key columns), duration,
seed, script, the script's SHA-256 (first 12 hex digits) and voxlab version.
Runs whose script hashes differ are flagged (column script_differs).
Writes the table as CSV (default DIR/runs.csv of the first DIR) and prints it.

exit codes: 0 ok, 2 usage error (unknown option, a folder without runs)";

/// How deep below each folder run.json files are looked for.
const MAX_DEPTH: usize = 6;

/// One found run: where, and its record.
pub struct Run {
    pub dir: PathBuf,
    pub record: Value,
}

/// The collected table and what the reader should know about it.
pub struct Collected {
    pub table: Table,
    pub runs: usize,
    pub warnings: Vec<String>,
}

fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    if dir.join("run.json").is_file() {
        found.push(dir.to_path_buf());
        return;
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    for d in subdirs {
        walk(&d, depth - 1, found);
    }
}

/// Every run below `dirs` (a folder that is itself a run counts), sorted by
/// path; unreadable records become warnings.
pub fn find_runs(op: &'static str, dirs: &[PathBuf]) -> Result<(Vec<Run>, Vec<String>)> {
    if dirs.is_empty() {
        return Err(Error::invalid(op, "needs at least one folder of runs"));
    }
    let mut runs = Vec::new();
    let mut warnings = Vec::new();
    for d in dirs {
        if !d.is_dir() {
            return Err(Error::invalid(
                op,
                format!(
                    "{} is not a folder (expected the output folder of voxlab run or voxlab sweep)",
                    d.display()
                ),
            ));
        }
        let mut found = Vec::new();
        walk(d, MAX_DEPTH, &mut found);
        if found.is_empty() {
            return Err(Error::invalid(
                op,
                format!("no run.json under {} (expected the output folder of voxlab run or voxlab sweep)", d.display()),
            ));
        }
        for dir in found {
            let path = dir.join("run.json");
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(record) if record.is_object() => runs.push(Run { dir, record }),
                Ok(_) => warnings.push(format!("{}: not a run record, skipped", path.display())),
                Err(e) => warnings.push(format!("{}: unreadable ({e}), skipped", path.display())),
            }
        }
    }
    Ok((runs, warnings))
}

/// A cell before its column's type is known.
#[derive(Clone)]
enum Cell {
    Num(f64),
    Text(String),
    Missing,
}

fn cell(v: &Value) -> Cell {
    match v {
        Value::Null => Cell::Missing,
        Value::Number(n) => n.as_f64().map_or(Cell::Missing, Cell::Num),
        Value::String(s) => Cell::Text(s.clone()),
        Value::Bool(b) => Cell::Text(b.to_string()),
        other => Cell::Text(other.to_string()),
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(
        v,
        Value::Number(_) | Value::String(_) | Value::Bool(_) | Value::Null
    )
}

/// Builds the table of runs (see the module docs for its columns).
pub fn collect(op: &'static str, dirs: &[PathBuf]) -> Result<Collected> {
    let (runs, mut warnings) = find_runs(op, dirs)?;
    if runs.is_empty() {
        return Err(Error::invalid(
            op,
            "no readable run.json in the folders given",
        ));
    }
    let mut param_keys = BTreeSet::new();
    let mut metric_keys: Vec<String> = Vec::new();
    let mut rows: Vec<BTreeMap<String, Cell>> = Vec::new();
    let mut skipped_metrics = BTreeSet::new();
    for run in &runs {
        let r = &run.record;
        let mut row = BTreeMap::new();
        row.insert("run".to_string(), Cell::Text(run.dir.display().to_string()));
        row.insert("status".into(), cell(&r["status"]));
        // Parameters the script read (typed), and --set values it did not read.
        let mut params: BTreeMap<String, Cell> = BTreeMap::new();
        if let Some(set) = r["set"].as_object() {
            for (k, v) in set {
                params.insert(k.clone(), cell(v));
            }
        }
        if let Some(p) = r["parameters"].as_object() {
            for (k, v) in p {
                params.insert(k.clone(), cell(v));
            }
        }
        for (k, v) in params {
            param_keys.insert(k.clone());
            row.insert(format!("param:{k}"), v);
        }
        if let Some(metrics) = r["metrics"].as_object() {
            for (k, v) in metrics {
                let mut put = |name: String, v: &Value| {
                    if !metric_keys.contains(&name) {
                        metric_keys.push(name.clone());
                    }
                    row.insert(format!("metric:{name}"), cell(v));
                };
                match v {
                    v if is_scalar(v) => put(k.clone(), v),
                    Value::Object(m) if m.values().all(is_scalar) => {
                        for (sub, x) in m {
                            put(format!("{k}.{sub}"), x);
                        }
                    }
                    _ => {
                        skipped_metrics.insert(k.clone());
                    }
                }
            }
        }
        row.insert("duration_s".into(), cell(&r["duration_s"]));
        row.insert("seed".into(), cell(&r["seed"]));
        row.insert("script".into(), cell(&r["script"]["path"]));
        let hash = r["script"]["sha256"].as_str().unwrap_or("");
        row.insert(
            "script_sha256".into(),
            Cell::Text(hash.chars().take(12).collect()),
        );
        row.insert("voxlab".into(), cell(&r["versions"]["voxlab"]));
        row.insert("error".into(), cell(&r["error"]["message"]));
        rows.push(row);
    }
    if !skipped_metrics.is_empty() {
        warnings.push(format!(
            "metrics that are arrays or nested maps are not table columns: {}",
            skipped_metrics.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    // Flag runs of other versions of a script than its most common one.
    let mut by_script: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for row in &rows {
        let text = |k: &str| match row.get(k) {
            Some(Cell::Text(s)) => s.clone(),
            _ => String::new(),
        };
        *by_script
            .entry(text("script"))
            .or_default()
            .entry(text("script_sha256"))
            .or_default() += 1;
    }
    let mut differs = false;
    let mut usual: BTreeMap<String, String> = BTreeMap::new();
    for (script, hashes) in &by_script {
        if hashes.len() > 1 {
            differs = true;
            let list: Vec<String> = hashes
                .iter()
                .map(|(h, n)| format!("{h} ({n} run{})", if *n == 1 { "" } else { "s" }))
                .collect();
            warnings.push(format!(
                "runs of {script} come from {} versions of the script: {}",
                hashes.len(),
                list.join(", ")
            ));
        }
        // Most runs; ties go to the first hash in order.
        if let Some((h, _)) = hashes.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) {
            usual.insert(script.clone(), h.clone());
        }
    }
    let mut order: Vec<(String, String)> = vec![
        ("run".into(), "run".into()),
        ("status".into(), "status".into()),
    ];
    const FIXED: [&str; 8] = [
        "run",
        "status",
        "duration_s",
        "seed",
        "script",
        "script_sha256",
        "voxlab",
        "error",
    ];
    for k in &param_keys {
        let name = if FIXED.contains(&k.as_str()) {
            format!("param.{k}")
        } else {
            k.clone()
        };
        order.push((format!("param:{k}"), name));
    }
    for k in &metric_keys {
        let name = if param_keys.contains(k) || FIXED.contains(&k.as_str()) {
            format!("metric.{k}")
        } else {
            k.clone()
        };
        order.push((format!("metric:{k}"), name));
    }
    for k in ["duration_s", "seed", "script", "script_sha256", "voxlab"] {
        order.push((k.into(), k.into()));
    }
    if rows
        .iter()
        .any(|r| matches!(r.get("error"), Some(Cell::Text(_))))
    {
        order.push(("error".into(), "error".into()));
    }
    let mut table = Table::default();
    for (key, name) in &order {
        let cells: Vec<Cell> = rows
            .iter()
            .map(|r| r.get(key).cloned().unwrap_or(Cell::Missing))
            .collect();
        let numeric = cells.iter().all(|c| !matches!(c, Cell::Text(_)));
        let column = if numeric && key != "run" && key != "status" {
            Column::Number(
                cells
                    .iter()
                    .map(|c| match c {
                        Cell::Num(x) => *x,
                        _ => f64::NAN,
                    })
                    .collect(),
            )
        } else {
            Column::Text(
                cells
                    .iter()
                    .map(|c| match c {
                        Cell::Num(x) => crate::plot::num_text(*x),
                        Cell::Text(s) => s.clone(),
                        Cell::Missing => String::new(),
                    })
                    .collect(),
            )
        };
        table.columns.push((name.clone(), column));
    }
    if differs {
        let flags: Vec<String> = rows
            .iter()
            .map(|row| {
                let get = |k: &str| match row.get(k) {
                    Some(Cell::Text(s)) => s.clone(),
                    _ => String::new(),
                };
                let usual = usual.get(&get("script")).cloned().unwrap_or_default();
                (get("script_sha256") != usual).to_string()
            })
            .collect();
        table
            .columns
            .push(("script_differs".into(), Column::Text(flags)));
    }
    Ok(Collected {
        table,
        runs: runs.len(),
        warnings,
    })
}

fn show_number(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        crate::plot::num_text(x)
    }
}

/// The table as aligned text: numbers right-aligned, long text shortened.
pub fn aligned(table: &Table) -> String {
    const MAX: usize = 40;
    let rows = table.rows();
    let mut cols: Vec<(String, Vec<String>, bool)> = Vec::new();
    for (name, c) in &table.columns {
        let (cells, right): (Vec<String>, bool) = match c {
            Column::Number(v) => (v.iter().map(|x| show_number(*x)).collect(), true),
            Column::Text(v) => (
                v.iter()
                    .map(|s| {
                        if s.chars().count() > MAX {
                            format!(
                                "…{}",
                                s.chars()
                                    .rev()
                                    .take(MAX - 1)
                                    .collect::<Vec<_>>()
                                    .into_iter()
                                    .rev()
                                    .collect::<String>()
                            )
                        } else {
                            s.clone()
                        }
                    })
                    .collect(),
                false,
            ),
        };
        cols.push((name.clone(), cells, right));
    }
    let widths: Vec<usize> = cols
        .iter()
        .map(|(n, cells, _)| {
            cells
                .iter()
                .map(|c| c.chars().count())
                .chain([n.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        cells
            .iter()
            .zip(&cols)
            .zip(&widths)
            .map(|((c, col), w)| {
                if col.2 {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(cols.iter().map(|c| c.0.as_str()).collect());
    out.push('\n');
    for r in 0..rows {
        out.push_str(&line(cols.iter().map(|c| c.1[r].as_str()).collect()));
        out.push('\n');
    }
    out
}

/// `voxlab collect ...`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return 0;
    }
    let usage = |msg: String| {
        eprintln!("voxlab collect: {msg}\n(voxlab collect --help shows the usage)");
        2
    };
    let mut dirs = Vec::new();
    let mut out: Option<PathBuf> = None;
    let mut quiet = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => match it.next() {
                Some(v) => out = Some(PathBuf::from(v)),
                None => return usage("--out needs a file name (table.csv)".into()),
            },
            s if s.starts_with("--out=") => out = Some(PathBuf::from(&s[6..])),
            "--quiet" => quiet = true,
            f if f.starts_with('-') => return usage(format!("unknown option {f}")),
            _ => dirs.push(PathBuf::from(a)),
        }
    }
    if dirs.is_empty() {
        return usage("needs at least one folder: voxlab collect DIR... [--out table.csv]".into());
    }
    if let Some(o) = &out {
        if o.extension().and_then(|e| e.to_str()) != Some("csv") {
            return usage(format!(
                "--out expects a .csv file name, got '{}'",
                o.display()
            ));
        }
    }
    let c = match collect("collect", &dirs) {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            return usage(msg.strip_prefix("collect: ").unwrap_or(&msg).to_string());
        }
    };
    for w in &c.warnings {
        eprintln!("warning: {w}");
    }
    let path = out.unwrap_or_else(|| dirs[0].join("runs.csv"));
    if let Err(e) = crate::io::table::save_csv(&c.table, &path) {
        eprintln!("voxlab collect: {e}");
        return 1;
    }
    if !quiet {
        print!("{}", aligned(&c.table));
    }
    eprintln!("collect: {} runs → {}", c.runs, path.display());
    0
}
