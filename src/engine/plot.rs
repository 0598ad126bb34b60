//! Script face of [`crate::plot`]: figure constructors and `Figure.save`.

use rhai::{Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::session::Session;
use super::tensor::to_tensor;
use crate::error::{Error, Result};
use crate::plot::{Figure, FigureKind, Heatmap, Lines, Series};

const TITLE: OptDoc = OptDoc {
    name: "title",
    ty: "string",
    default: "\"\"",
    meaning: "title above the plot",
};
const WIDTH: OptDoc = OptDoc {
    name: "width",
    ty: "int",
    default: "800",
    meaning: "width in pixels",
};
const HEIGHT: OptDoc = OptDoc {
    name: "height",
    ty: "int",
    default: "500",
    meaning: "height in pixels",
};

pub static PLOT_LINES: FnDoc = FnDoc {
    name: "plot_lines", domain: "plot",
    signature: "plot_lines(series: map | Tensor | array, opts?: map) -> Figure",
    summary: "Line plot: a map name → y values (array or 1-D tensor) or name → #{x, y}; a bare array/tensor is one unnamed series.",
    options: &[TITLE, WIDTH, HEIGHT,
        OptDoc { name: "x_label", ty: "string", default: "\"\"", meaning: "x axis label" },
        OptDoc { name: "y_label", ty: "string", default: "\"\"", meaning: "y axis label" }],
    example: "let fig = plot_lines(#{train: [0.9, 0.5, 0.3], val: [1.0, 0.7, 0.6]}, #{x_label: \"epoch\", y_label: \"loss\"});\nfig.save(\"loss.png\");",
};
pub static PLOT_HEATMAP: FnDoc = FnDoc {
    name: "plot_heatmap",
    domain: "plot",
    signature: "plot_heatmap(matrix: Tensor | array, opts?: map) -> Figure",
    summary: "Heatmap of a matrix (RDM, tau matrix) with a viridis colour bar.",
    options: &[
        TITLE,
        WIDTH,
        HEIGHT,
        OptDoc {
            name: "row_labels",
            ty: "array of string",
            default: "none",
            meaning: "one label per row",
        },
        OptDoc {
            name: "col_labels",
            ty: "array of string",
            default: "none",
            meaning: "one label per column",
        },
        OptDoc {
            name: "colorbar",
            ty: "bool",
            default: "true",
            meaning: "draw the colour bar",
        },
        OptDoc {
            name: "vmin",
            ty: "float",
            default: "none",
            meaning: "value at the bottom of the colour scale (default: data minimum)",
        },
        OptDoc {
            name: "vmax",
            ty: "float",
            default: "none",
            meaning: "value at the top of the colour scale (default: data maximum)",
        },
    ],
    example: "let fig = plot_heatmap(randn([5, 5]), #{title: \"RDM\"});\nfig.save(\"rdm.svg\");",
};
pub static SAVE: FnDoc = FnDoc {
    name: "save", domain: "plot",
    signature: "fig.save(path: string) -> string",
    summary: "Writes a figure as .png or .svg (by extension) into out_dir() when the path is relative; returns the path.",
    options: &[],
    example: "plot_lines([1, 4, 9]).save(\"squares.png\");",
};

fn values_1d(op: &'static str, v: &Dynamic) -> Result<Vec<f64>> {
    let t = to_tensor(op, v)?;
    if t.ndim() != 1 {
        return Err(Error::invalid(
            op,
            format!(
                "a series must be 1-D, got shape {}",
                crate::tensor::shape_text(&t.shape())
            ),
        ));
    }
    t.to_f64_vec(op)
}

fn series_from(op: &'static str, name: &str, v: &Dynamic) -> Result<Series> {
    if let Some(m) = v.read_lock::<Map>() {
        let y = m.get("y").ok_or_else(|| {
            Error::invalid(op, format!("series '{name}' is a map without a 'y' entry"))
        })?;
        let y = values_1d(op, y)?;
        let x = match m.get("x") {
            Some(x) => values_1d(op, x)?,
            None => (0..y.len()).map(|i| i as f64).collect(),
        };
        return Ok(Series {
            name: name.into(),
            x,
            y,
        });
    }
    let y = values_1d(op, v)?;
    Ok(Series {
        name: name.into(),
        x: (0..y.len()).map(|i| i as f64).collect(),
        y,
    })
}

fn size(opts: &Opts) -> Result<(u32, u32)> {
    let (w, h) = (opts.i64("width")?, opts.i64("height")?);
    if !(100..=8000).contains(&w) || !(100..=8000).contains(&h) {
        return Err(Error::invalid(
            "plot",
            format!("width and height must be 100–8000 pixels, got {w}×{h}"),
        ));
    }
    Ok((w as u32, h as u32))
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    for doc in [&PLOT_LINES, &PLOT_HEATMAP, &SAVE] {
        help.add(doc);
    }
    engine.register_type_with_name::<Figure>("Figure");
    engine.register_fn("to_string", |f: &mut Figure| f.to_string());
    engine.register_fn("to_debug", |f: &mut Figure| f.to_string());

    let lines = |data: Dynamic, opts: Map| -> RhaiResult<Figure> {
        guard("plot_lines", || {
            let opts = Opts::parse(&PLOT_LINES, opts)?;
            let series = match data.read_lock::<Map>() {
                Some(m) => m
                    .iter()
                    .map(|(k, v)| series_from("plot_lines", k, v))
                    .collect::<Result<Vec<_>>>()?,
                None => vec![series_from("plot_lines", "", &data)?],
            };
            let (width, height) = size(&opts)?;
            Ok(Figure {
                title: opts.string("title")?,
                width,
                height,
                kind: FigureKind::Lines(Lines::new(
                    series,
                    &opts.string("x_label")?,
                    &opts.string("y_label")?,
                )?),
            })
        })
    };
    engine.register_fn("plot_lines", move |d: Dynamic| lines(d, Map::new()));
    engine.register_fn("plot_lines", lines);

    let heatmap = |data: Dynamic, opts: Map| -> RhaiResult<Figure> {
        guard("plot_heatmap", || {
            let opts = Opts::parse(&PLOT_HEATMAP, opts)?;
            let t = to_tensor("plot_heatmap", &data)?;
            if t.ndim() != 2 {
                return Err(Error::invalid(
                    "plot_heatmap",
                    format!(
                        "expected a matrix, got shape {}",
                        crate::tensor::shape_text(&t.shape())
                    ),
                ));
            }
            let s = t.shape();
            let (rows, cols) = (s[0] as usize, s[1] as usize);
            let mut h = Heatmap::new(rows, cols, t.to_f64_vec("plot_heatmap")?)?;
            if let Some(l) = opts.opt_string_list("row_labels")? {
                if l.len() != rows {
                    return Err(Error::shape(
                        "plot_heatmap",
                        "row_labels",
                        format!("{rows} labels"),
                        l.len().to_string(),
                    ));
                }
                h.row_labels = l;
            }
            if let Some(l) = opts.opt_string_list("col_labels")? {
                if l.len() != cols {
                    return Err(Error::shape(
                        "plot_heatmap",
                        "col_labels",
                        format!("{cols} labels"),
                        l.len().to_string(),
                    ));
                }
                h.col_labels = l;
            }
            h.colorbar = opts.bool("colorbar")?;
            if let (Some(lo), Some(hi)) = (opts.opt_f64("vmin")?, opts.opt_f64("vmax")?) {
                if hi <= lo {
                    return Err(Error::invalid(
                        "plot_heatmap",
                        format!("vmax ({hi}) must exceed vmin ({lo})"),
                    ));
                }
                h.limits = Some((lo, hi));
            }
            let (width, height) = size(&opts)?;
            Ok(Figure {
                title: opts.string("title")?,
                width,
                height,
                kind: FigureKind::Heatmap(h),
            })
        })
    };
    engine.register_fn("plot_heatmap", move |d: Dynamic| heatmap(d, Map::new()));
    engine.register_fn("plot_heatmap", heatmap);

    let s = session.clone();
    engine.register_fn(
        "save",
        move |f: &mut Figure, path: &str| -> RhaiResult<String> {
            guard("save", || {
                let out = s.output_path(path);
                f.save(&out)?;
                s.wrote(&out);
                Ok(out.display().to_string())
            })
        },
    );
}
