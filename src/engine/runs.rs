//! Script face of collected runs: `load_runs` (the table `voxlab collect`
//! makes, as a map of columns) and `plot_sweep` (a metric against a swept
//! parameter, mean ± confidence interval over the runs at each value).

use std::collections::BTreeMap;
use std::path::PathBuf;

use rhai::{Array, Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use crate::cli::collect;
use crate::error::{Error, Result};
use crate::io::table::Column;
use crate::plot::{Figure, FigureKind, Lines, Series};

pub static LOAD_RUNS: FnDoc = FnDoc {
    name: "load_runs", domain: "session",
    signature: "load_runs(dir: string | array) -> map",
    summary: "Every run.json under the folder(s) (a sweep's, or any runs) as a map column → array, one entry per run: run, status, the parameters, every scalar metric (a map of scalars as name.key), duration_s, seed, script, script_sha256, voxlab; the table `voxlab collect` writes.",
    options: &[],
    example: "for a in [0.1, 1.0] {\n  save_json(#{status: \"ok\", parameters: #{alpha: a}, metrics: #{r: a / 2}, seed: 0}, `sweep/alpha=${a}/run.json`);\n}\nlet runs = load_runs(out_dir() + \"/sweep\");\nprint(runs.alpha);   // [0.1, 1.0]\nprint(runs.r);",
};

pub static PLOT_SWEEP: FnDoc = FnDoc {
    name: "plot_sweep", domain: "plot",
    signature: "plot_sweep(runs: map, opts: map) -> Figure",
    summary: "A metric (y) against a swept parameter (x) from load_runs: at each x the mean over runs (seeds, repeats) with a Student-t confidence interval, one line per value of `group`; runs whose status is not ok are left out.",
    options: &[
        OptDoc { name: "x", ty: "string", default: "none", meaning: "column on the x axis (required; numbers)" },
        OptDoc { name: "y", ty: "string", default: "none", meaning: "column of the metric (required; numbers)" },
        OptDoc { name: "group", ty: "string", default: "none", meaning: "column whose values get a line each (e.g. \"subject\")" },
        OptDoc { name: "ci", ty: "float", default: "0.95", meaning: "confidence level of the error bars (0 < ci < 1)" },
        OptDoc { name: "log_x", ty: "bool", default: "false", meaning: "x on a log10 scale (alphas)" },
        OptDoc { name: "title", ty: "string", default: "\"\"", meaning: "title above the plot" },
        OptDoc { name: "x_label", ty: "string", default: "none", meaning: "x axis label (default: the x column)" },
        OptDoc { name: "y_label", ty: "string", default: "none", meaning: "y axis label (default: the y column and the interval)" },
        OptDoc { name: "width", ty: "int", default: "800", meaning: "width in pixels" },
        OptDoc { name: "height", ty: "int", default: "500", meaning: "height in pixels" },
    ],
    example: "let runs = #{alpha: [1, 1, 10, 10, 1, 1, 10, 10], subject: [1, 1, 1, 1, 2, 2, 2, 2],\n            r: [0.30, 0.34, 0.41, 0.45, 0.20, 0.22, 0.31, 0.35]};\nplot_sweep(runs, #{x: \"alpha\", y: \"r\", group: \"subject\", log_x: true}).save(\"sweep.png\");",
};

fn dirs_from(v: &Dynamic) -> Result<Vec<PathBuf>> {
    const OP: &str = "load_runs";
    if v.is_string() {
        return Ok(vec![PathBuf::from(v.to_string())]);
    }
    if let Some(arr) = v.read_lock::<Array>() {
        return arr
            .iter()
            .map(|x| {
                x.is_string()
                    .then(|| PathBuf::from(x.to_string()))
                    .ok_or_else(|| {
                        Error::invalid(
                            OP,
                            format!("folders must be strings, got {}", x.type_name()),
                        )
                    })
            })
            .collect();
    }
    Err(Error::invalid(
        OP,
        format!(
            "expected a folder (string) or an array of folders, got {}",
            v.type_name()
        ),
    ))
}

/// `load_runs` as a Rust function: the collected table as Rhai columns.
pub fn load_runs(v: &Dynamic) -> Result<Map> {
    let dirs = dirs_from(v)?;
    let c = collect::collect("load_runs", &dirs)?;
    for w in &c.warnings {
        eprintln!("warning: load_runs: {w}");
    }
    let mut map = Map::new();
    for (name, col) in c.table.columns {
        let arr: Array = match col {
            Column::Number(v) => v.into_iter().map(Dynamic::from_float).collect(),
            Column::Text(v) => v.into_iter().map(Dynamic::from).collect(),
        };
        map.insert(name.into(), Dynamic::from_array(arr));
    }
    Ok(map)
}

fn column(op: &'static str, runs: &Map, name: &str) -> Result<Array> {
    let v = runs.get(name).ok_or_else(|| {
        let mut names: Vec<&str> = runs.keys().map(|k| k.as_str()).collect();
        names.sort();
        Error::invalid(
            op,
            format!("no column '{name}'; the runs have: {}", names.join(", ")),
        )
    })?;
    if let Some(t) = v.read_lock::<crate::tensor::Tensor>() {
        return Ok(t
            .to_f64_vec(op)?
            .into_iter()
            .map(Dynamic::from_float)
            .collect());
    }
    v.read_lock::<Array>().map(|a| a.clone()).ok_or_else(|| {
        Error::invalid(
            op,
            format!("column '{name}' must be an array, got {}", v.type_name()),
        )
    })
}

fn numbers(op: &'static str, name: &str, col: &Array) -> Result<Vec<f64>> {
    col.iter()
        .map(|x| {
            x.as_float()
                .ok()
                .or_else(|| x.as_int().ok().map(|i| i as f64))
                .or_else(|| {
                    x.is_string()
                        .then(|| x.to_string().trim().parse().ok())
                        .flatten()
                })
                .or_else(|| {
                    x.is_string()
                        .then_some(f64::NAN)
                        .filter(|_| x.to_string().is_empty())
                })
                .ok_or_else(|| {
                    Error::invalid(op, format!("column '{name}' must hold numbers, got {x:?}"))
                })
        })
        .collect()
}

fn label(x: &Dynamic) -> String {
    if let Ok(f) = x.as_float() {
        return crate::plot::num_text(f);
    }
    x.to_string()
}

/// Two-sided Student-t critical value for confidence `ci` with `df` degrees.
fn t_critical(ci: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |t| t.inverse_cdf(0.5 + ci / 2.0))
}

/// Mean and CI half-width of the finite values (NaN half-width below 2).
pub fn mean_ci(values: &[f64], ci: f64) -> (f64, f64) {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::NAN);
    }
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    (mean, t_critical(ci, n - 1.0) * sd / n.sqrt())
}

fn plot_sweep(runs: &Map, opts: Map) -> Result<Figure> {
    const OP: &str = "plot_sweep";
    let o = Opts::parse(&PLOT_SWEEP, opts)?;
    let need = |key: &str| -> Result<String> {
        o.opt_string(key)?.ok_or_else(|| Error::BadOption {
            op: OP,
            key: key.into(),
            expected: "a column name (it is required)".into(),
            got: "nothing".into(),
        })
    };
    let (xname, yname) = (need("x")?, need("y")?);
    let ci = o.f64("ci")?;
    if !(ci > 0.0 && ci < 1.0) {
        return Err(Error::BadOption {
            op: OP,
            key: "ci".into(),
            expected: "a level between 0 and 1".into(),
            got: ci.to_string(),
        });
    }
    let log_x = o.bool("log_x")?;
    let mut x = numbers(OP, &xname, &column(OP, runs, &xname)?)?;
    let y = numbers(OP, &yname, &column(OP, runs, &yname)?)?;
    if x.len() != y.len() {
        return Err(Error::shape(
            OP,
            format!("column '{yname}'"),
            format!("{} values like '{xname}'", x.len()),
            y.len().to_string(),
        ));
    }
    if log_x {
        if let Some(bad) = x.iter().find(|v| !(**v > 0.0)) {
            return Err(Error::invalid(
                OP,
                format!("log_x needs positive x values, '{xname}' has {bad}"),
            ));
        }
        x.iter_mut().for_each(|v| *v = v.log10());
    }
    let groups: Vec<String> = match o.opt_string("group")? {
        Some(g) => {
            let col = column(OP, runs, &g)?;
            if col.len() != x.len() {
                return Err(Error::shape(
                    OP,
                    format!("column '{g}'"),
                    format!("{} values like '{xname}'", x.len()),
                    col.len().to_string(),
                ));
            }
            col.iter().map(|v| format!("{g}={}", label(v))).collect()
        }
        None => vec![String::new(); x.len()],
    };
    let ok: Vec<bool> = match runs.get("status") {
        Some(_) => column(OP, runs, "status")?
            .iter()
            .map(|s| s.to_string() == "ok")
            .collect(),
        None => vec![true; x.len()],
    };
    // group → x → values, in the order groups first appear.
    let mut order: Vec<String> = Vec::new();
    let mut cells: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for i in 0..x.len() {
        if !ok.get(i).copied().unwrap_or(true) || !x[i].is_finite() {
            continue;
        }
        if !order.contains(&groups[i]) {
            order.push(groups[i].clone());
        }
        cells
            .entry(groups[i].clone())
            .or_default()
            .push((x[i], y[i]));
    }
    if order.is_empty() {
        return Err(Error::invalid(OP, "no ok runs with a finite x to draw"));
    }
    let mut series = Vec::new();
    let mut errors = Vec::new();
    for g in &order {
        let mut pts = cells.remove(g).unwrap_or_default();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut xs, mut ms, mut es) = (Vec::new(), Vec::new(), Vec::new());
        let mut i = 0;
        while i < pts.len() {
            let j = pts[i..]
                .iter()
                .position(|p| p.0 != pts[i].0)
                .map_or(pts.len(), |k| i + k);
            let ys: Vec<f64> = pts[i..j].iter().map(|p| p.1).collect();
            let (m, e) = mean_ci(&ys, ci);
            xs.push(pts[i].0);
            ms.push(m);
            es.push(e);
            i = j;
        }
        series.push(Series {
            name: g.clone(),
            x: xs,
            y: ms,
        });
        errors.push(Some(es));
    }
    let x_label = o.opt_string("x_label")?.unwrap_or_else(|| {
        if log_x {
            format!("log10 {xname}")
        } else {
            xname.clone()
        }
    });
    let y_label = o
        .opt_string("y_label")?
        .unwrap_or_else(|| format!("{yname} (mean ± {}% CI)", crate::plot::num_text(ci * 100.0)));
    let (w, h) = (o.i64("width")?, o.i64("height")?);
    if !(100..=8000).contains(&w) || !(100..=8000).contains(&h) {
        return Err(Error::invalid(
            OP,
            format!("width and height must be 100–8000 pixels, got {w}×{h}"),
        ));
    }
    Ok(Figure {
        title: o.string("title")?,
        width: w as u32,
        height: h as u32,
        kind: FigureKind::Lines(Lines::new(series, &x_label, &y_label)?.with_errors(errors)?),
    })
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry) {
    help.add(&LOAD_RUNS);
    help.add(&PLOT_SWEEP);
    engine.register_fn("load_runs", |dir: Dynamic| -> RhaiResult<Map> {
        guard("load_runs", || load_runs(&dir))
    });
    engine.register_fn("plot_sweep", |runs: Map, opts: Map| -> RhaiResult<Figure> {
        guard("plot_sweep", || plot_sweep(&runs, opts))
    });
}
