//! Script face of [`crate::plot`]: figure constructors and `Figure.save`.

use rhai::{Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::session::Session;
use super::tensor::to_tensor;
use crate::error::{Error, Result};
use crate::plot::{
    BarSeries, Bars, BoxGroup, BoxPair, BoxPlot, Brain, Colormap, Figure, FigureKind, Heatmap,
    Hist, ImageGrid, Lines, Raster, Scatter, Series, Slab,
};

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
    summary: "Line plot: a map name → y values (array or 1-D tensor) or name → #{x, y}; a bare array/tensor is one unnamed series. Values without x stand at 1, 2, 3, … (epochs and trials as logs count them); whole-number x get whole-number ticks; the legend goes to the corner where it hides the fewest points; ci draws shaded confidence bands.",
    options: &[TITLE, WIDTH, HEIGHT,
        OptDoc { name: "x_label", ty: "string", default: "\"\"", meaning: "x axis label" },
        OptDoc { name: "y_label", ty: "string", default: "\"\"", meaning: "y axis label" },
        OptDoc { name: "x_start", ty: "int", default: "1", meaning: "x of the first value of a series given without x (0 for 0-based indices)" },
        OptDoc { name: "ci", ty: "map", default: "none", meaning: "confidence bands: series name → [[low, high], ...] (one pair per point) or #{low: [...], high: [...]}" }],
    example: "let fig = plot_lines(#{train: [0.9, 0.5, 0.3], val: [1.0, 0.7, 0.6]}, #{x_label: \"epoch\", y_label: \"loss\",\n    ci: #{val: #{low: [0.9, 0.6, 0.5], high: [1.1, 0.8, 0.7]}}});\nfig.save(\"loss.png\");",
};
pub static PLOT_HISTORY: FnDoc = FnDoc {
    name: "plot_history", domain: "plot",
    signature: "plot_history(history: map, opts?: map) -> Figure",
    summary: "Learning curves of a training history (model.history): one panel per metric family — train_loss with val_loss, train_acc with val_acc, ..., the learning rate last — epochs on x, the kept epoch (best_epoch) marked.",
    options: &[TITLE,
        OptDoc { name: "width", ty: "int", default: "none", meaning: "width in pixels (default 400 per panel, up to 3 panels a row)" },
        OptDoc { name: "height", ty: "int", default: "none", meaning: "height in pixels (default 320 per row of panels)" }],
    example: "let h = #{train_loss: [0.9, 0.5, 0.3], val_loss: [1.0, 0.7, 0.6], lr: [0.01, 0.005, 0.001], best_epoch: 3};\nplot_history(h).save(\"history.png\");",
};
pub static PLOT_HEATMAP: FnDoc = FnDoc {
    name: "plot_heatmap",
    domain: "plot",
    signature: "plot_heatmap(matrix: Tensor | array, opts?: map) -> Figure",
    summary: "Heatmap of a matrix (RDM, tau matrix, confusion matrix) with a viridis colour bar; square matrices get square cells, values: true prints each cell's value.",
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
        OptDoc {
            name: "colormap",
            ty: "string",
            default: "viridis",
            meaning: "viridis, gray, hot, coolwarm (signed: symmetric around 0) or cold_hot",
        },
        OptDoc {
            name: "colorbar_label",
            ty: "string",
            default: "\"\"",
            meaning: "text beside the colour bar",
        },
        OptDoc {
            name: "values",
            ty: "bool",
            default: "false",
            meaning: "print each cell's value in it (confusion matrices); left out where cells are too small",
        },
    ],
    example: "let fig = plot_heatmap(randn([5, 5]), #{title: \"RDM\"});\nfig.save(\"rdm.svg\");\nplot_heatmap(tensor([[8, 2], [1, 9]]), #{values: true, row_labels: [\"cat\", \"dog\"], col_labels: [\"cat\", \"dog\"]}).save(\"confusion.png\");",
};
pub static SAVE: FnDoc = FnDoc {
    name: "save", domain: "plot",
    signature: "fig.save(path: string) -> string\nds.save(dir: string) -> string",
    summary: "Writes a Figure as .png or .svg (by extension), or a Dataset in the dataset layout (docs/dataset-layout.md: betas as a 4-D NIfTI on the mask's grid, mask, rois/, trials.csv, stimuli/ as PNG, captions.json, labels.csv, ratings.csv, dataset.json) so that load_dataset gives it back; a relative path goes into out_dir(). Returns the path.",
    options: &[],
    example: "plot_lines([1, 4, 9]).save(\"squares.png\");",
};

/// A 1-D series; errors name the argument (or entry) `arg`.
fn values_1d(op: &'static str, arg: &str, v: &Dynamic) -> Result<Vec<f64>> {
    let t = to_tensor(op, arg, v)?;
    if t.ndim() != 1 {
        return Err(Error::invalid(
            op,
            format!(
                "{arg}: a series must be 1-D, got shape {}",
                crate::tensor::shape_text(&t.shape())
            ),
        ));
    }
    t.to_f64_vec(op)
}

/// A confidence band: [[low, high], ...] or #{low: [...], high: [...]}.
fn band_from(op: &'static str, name: &str, v: &Dynamic) -> Result<Vec<(f64, f64)>> {
    if let Some(m) = v.read_lock::<Map>() {
        let side = |k: &str| {
            m.get(k)
                .ok_or_else(|| Error::invalid(op, format!("ci of '{name}' needs 'low' and 'high'")))
                .and_then(|x| values_1d(op, &format!("ci of '{name}'.{k}"), x))
        };
        let (lo, hi) = (side("low")?, side("high")?);
        if lo.len() != hi.len() {
            return Err(Error::invalid(
                op,
                format!(
                    "ci of '{name}': {} low and {} high values",
                    lo.len(),
                    hi.len()
                ),
            ));
        }
        return Ok(lo.into_iter().zip(hi).collect());
    }
    if let Some(arr) = v.read_lock::<rhai::Array>() {
        let (values, shape) = super::tensor::array_to_values(op, &arr)?;
        if shape.len() == 2 && shape[1] == 2 {
            return Ok(values.chunks(2).map(|p| (p[0], p[1])).collect());
        }
    }
    Err(Error::invalid(
        op,
        format!(
            "ci of '{name}': expected [[low, high], ...] or #{{low, high}}, got {}",
            v.type_name()
        ),
    ))
}

fn series_from_start(op: &'static str, name: &str, v: &Dynamic, x_start: f64) -> Result<Series> {
    if let Some(m) = v.read_lock::<Map>() {
        let y = m.get("y").ok_or_else(|| {
            Error::invalid(op, format!("series '{name}' is a map without a 'y' entry"))
        })?;
        let y = values_1d(op, &format!("series '{name}'.y"), y)?;
        let x = match m.get("x") {
            Some(x) => values_1d(op, &format!("series '{name}'.x"), x)?,
            None => (0..y.len()).map(|i| x_start + i as f64).collect(),
        };
        return Ok(Series {
            name: name.into(),
            x,
            y,
        });
    }
    let y = if name.is_empty() {
        values_1d(op, "series", v)?
    } else {
        values_1d(op, &format!("series '{name}'"), v)?
    };
    Ok(Series {
        name: name.into(),
        x: (0..y.len()).map(|i| x_start + i as f64).collect(),
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
    for doc in [
        &PLOT_LINES,
        &PLOT_HISTORY,
        &PLOT_HEATMAP,
        &PLOT_BARS,
        &PLOT_BOX,
        &PLOT_SCATTER,
        &PLOT_HIST,
        &PLOT_IMAGES,
        &PLOT_BRAIN,
        &SAVE,
    ] {
        help.add(doc);
    }
    register_more(engine);
    engine.register_type_with_name::<Figure>("Figure");
    engine.register_fn("to_string", |f: &mut Figure| f.to_string());
    engine.register_fn("to_debug", |f: &mut Figure| f.to_string());

    let lines = |data: Dynamic, opts: Map| -> RhaiResult<Figure> {
        guard("plot_lines", || {
            let opts = Opts::parse(&PLOT_LINES, opts)?;
            let start = opts.i64("x_start")? as f64;
            let series = match data.read_lock::<Map>() {
                Some(m) => m
                    .iter()
                    .map(|(k, v)| series_from_start("plot_lines", k, v, start))
                    .collect::<Result<Vec<_>>>()?,
                None => vec![series_from_start("plot_lines", "", &data, start)?],
            };
            let (width, height) = size(&opts)?;
            let mut lines = Lines::new(series, &opts.string("x_label")?, &opts.string("y_label")?)?;
            if let Some(ci) = opts.raw("ci") {
                let ci = ci.read_lock::<Map>().map(|m| m.clone()).ok_or_else(|| {
                    Error::invalid("plot_lines", "ci is a map: series name → band")
                })?;
                for (name, band) in &ci {
                    lines = lines.with_band(name, band_from("plot_lines", name, band)?)?;
                }
            }
            Ok(Figure {
                title: opts.string("title")?,
                width,
                height,
                kind: FigureKind::Lines(lines),
            })
        })
    };
    engine.register_fn("plot_lines", move |d: Dynamic| lines(d, Map::new()));
    engine.register_fn("plot_lines", lines);

    let history = |h: Map, opts: Map| -> RhaiResult<Figure> {
        guard("plot_history", || {
            const OP: &str = "plot_history";
            let opts = Opts::parse(&PLOT_HISTORY, opts)?;
            let mut metrics = Vec::new();
            let mut best = None;
            for (k, v) in &h {
                match k.as_str() {
                    "best_epoch" => {
                        best = v.as_int().ok().filter(|&b| b >= 1).map(|b| b as usize);
                    }
                    "epochs" | "status" => {}
                    _ if v.is_array() || v.is::<crate::tensor::Tensor>() => {
                        let values = values_1d(OP, k, v).map_err(|e| {
                            Error::invalid(OP, format!("{k}: expected per-epoch numbers ({e})"))
                        })?;
                        metrics.push((k.to_string(), values));
                    }
                    _ => {}
                }
            }
            let plot = crate::plot::HistoryPlot::new(&metrics, best)?;
            let title = opts.string("title")?;
            let (dw, dh) = plot.default_size(!title.is_empty());
            let w = opts.opt_i64("width")?.unwrap_or(dw as i64);
            let hgt = opts.opt_i64("height")?.unwrap_or(dh as i64);
            if !(100..=8000).contains(&w) || !(100..=8000).contains(&hgt) {
                return Err(Error::invalid(
                    OP,
                    format!("width and height must be 100–8000 pixels, got {w}×{hgt}"),
                ));
            }
            Ok(Figure {
                title,
                width: w as u32,
                height: hgt as u32,
                kind: FigureKind::History(plot),
            })
        })
    };
    engine.register_fn("plot_history", move |h: Map| history(h, Map::new()));
    engine.register_fn("plot_history", history);

    let heatmap = |data: Dynamic, opts: Map| -> RhaiResult<Figure> {
        guard("plot_heatmap", || {
            let opts = Opts::parse(&PLOT_HEATMAP, opts)?;
            let t = to_tensor("plot_heatmap", "matrix", &data)?;
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
            h.colormap = Colormap::parse("plot_heatmap", &opts.string("colormap")?)?;
            h.colorbar_label = opts.string("colorbar_label")?;
            h.show_values = opts.bool("values")?;
            let (vmin, vmax) = (opts.opt_f64("vmin")?, opts.opt_f64("vmax")?);
            if vmin.is_some() || vmax.is_some() {
                let (dlo, dhi) = h.data_limits();
                let (lo, hi) = (vmin.unwrap_or(dlo), vmax.unwrap_or(dhi));
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
            guard("save", || s.save(path, |out| f.save(out)))
        },
    );
}

// ------------------------------------------------------------ more figures

const X_LABEL: OptDoc = OptDoc {
    name: "x_label",
    ty: "string",
    default: "\"\"",
    meaning: "x axis label",
};
const Y_LABEL: OptDoc = OptDoc {
    name: "y_label",
    ty: "string",
    default: "\"\"",
    meaning: "y axis label",
};

pub static PLOT_BARS: FnDoc = FnDoc {
    name: "plot_bars",
    domain: "plot",
    signature: "plot_bars(table: map | Tensor, opts?: map) -> Figure",
    summary: "Grouped bars: one coloured series per entry (e.g. ROI), one group per x position (e.g. network layer), with error bars and stars where q < alpha (* q < alpha, ** q < alpha/5, *** q < alpha/50). table is a map series → values (one per group), a series × groups matrix, or a kendall_fdr result (series = its rows, groups = its cols, values = tau, stars from q), or a caption_scores result (each metric's score, starred by its permutation p, beside its chance level with ± sd).",
    options: &[
        TITLE,
        OptDoc { name: "width", ty: "int", default: "1000", meaning: "width in pixels" },
        HEIGHT,
        OptDoc { name: "groups", ty: "array of string", default: "none", meaning: "names of the groups on the x axis (default: the kendall_fdr cols, else 0, 1, ...)" },
        OptDoc { name: "series", ty: "array of string", default: "none", meaning: "series names for a matrix table (default: 0, 1, ...)" },
        OptDoc { name: "error_bars", ty: "map | Tensor", default: "none", meaning: "half-lengths of error bars, shaped like the table" },
        OptDoc { name: "significance", ty: "map | Tensor", default: "none", meaning: "q-values (stars by alpha) or booleans (one star), shaped like the table" },
        OptDoc { name: "alpha", ty: "float", default: "0.05", meaning: "threshold for stars" },
        X_LABEL,
        Y_LABEL,
    ],
    example: "let r = kendall_fdr(#{V1: rdm(randn([12, 8])), IT: rdm(randn([12, 8]))}, [#{name: \"conv1\", rdm: rdm(randn([12, 8]))}, #{name: \"fc\", rdm: rdm(randn([12, 8]))}]);\nplot_bars(r, #{y_label: \"Kendall tau\"}).save(\"tau.png\");\nplot_bars(#{a: [0.2, 0.5], b: [0.3, 0.1]}, #{groups: [\"x\", \"y\"], significance: #{a: [0.01, 0.2], b: [0.5, 0.04]}}).save(\"bars.svg\");",
};
pub static PLOT_BOX: FnDoc = FnDoc {
    name: "plot_box",
    domain: "plot",
    signature: "plot_box(groups: map | array, opts?: map) -> Figure",
    summary: "Box plots (quartiles, median, Tukey whiskers at 1.5·IQR, outliers as circles, observations as faint dots) of a map name → values or an array of #{name, values}, with the chosen test's p-value drawn over each pair.",
    options: &[
        TITLE,
        OptDoc { name: "width", ty: "int", default: "700", meaning: "width in pixels" },
        HEIGHT,
        OptDoc { name: "pairs", ty: "array of [a, b]", default: "[]", meaning: "pairs of group names (or indices) to test and annotate" },
        OptDoc { name: "test", ty: "string", default: "ttest_rel", meaning: "ttest_rel (paired), ttest_ind, welch or none" },
        OptDoc { name: "points", ty: "bool", default: "true", meaning: "draw the observations" },
        Y_LABEL,
    ],
    example: "let a = rand([30]);\nlet groups = [#{name: \"military\", values: a + 0.2}, #{name: \"civilian\", values: a + 0.1 * randn([30])}];\nplot_box(groups, #{pairs: [[\"military\", \"civilian\"]], y_label: \"P(high threat)\"}).save(\"box.png\");",
};
pub static PLOT_SCATTER: FnDoc = FnDoc {
    name: "plot_scatter",
    domain: "plot",
    signature: "plot_scatter(x: Tensor | array, y: Tensor | array, opts?: map) -> Figure",
    summary: "Scatter plot of y against x, optionally with the identity line or a least-squares fit.",
    options: &[
        TITLE,
        OptDoc { name: "width", ty: "int", default: "600", meaning: "width in pixels" },
        HEIGHT,
        X_LABEL,
        Y_LABEL,
        OptDoc { name: "line", ty: "string", default: "none", meaning: "none, identity (y = x, equal axes) or fit" },
    ],
    example: "let x = randn([100]);\nplot_scatter(x, x + 0.3 * randn([100]), #{line: \"fit\", x_label: \"measured\", y_label: \"predicted\"}).save(\"scatter.png\");",
};
pub static PLOT_HIST: FnDoc = FnDoc {
    name: "plot_hist",
    domain: "plot",
    signature: "plot_hist(values: Tensor | array | map, opts?: map) -> Figure",
    summary: "Histogram of one sample, or overlaid histograms of a map name → values on shared bins; marks draws vertical lines (e.g. an observed statistic over its permutation null).",
    options: &[
        TITLE,
        OptDoc { name: "width", ty: "int", default: "700", meaning: "width in pixels" },
        HEIGHT,
        OptDoc { name: "bins", ty: "int", default: "30", meaning: "number of equal-width bins" },
        OptDoc { name: "density", ty: "bool", default: "false", meaning: "normalise each histogram to unit area" },
        OptDoc { name: "marks", ty: "array of float", default: "[]", meaning: "x positions of vertical red lines, each labelled inside the plot" },
        OptDoc { name: "mark_labels", ty: "array of string", default: "[]", meaning: "text beside each mark (default: its value), e.g. \"observed r = 0.52\"" },
        X_LABEL,
    ],
    example: "let t = permutation_test(randn([20]), randn([20]), #{n_permutations: 999});\nplot_hist(t.null_distribution, #{marks: [t.statistic], mark_labels: [\"observed\"], x_label: \"r under H0\"}).save(\"null.png\");",
};
pub static PLOT_IMAGES: FnDoc = FnDoc {
    name: "plot_images",
    domain: "plot",
    signature: "plot_images(images: Tensor | array, opts?: map) -> Figure",
    summary: "Image grid: each row is an N×3×H×W (or N×1×H×W) tensor of values in [0, 1] (or a map with an `images` tensor), e.g. stimuli above reconstructions; a title left of each row and a caption under each image.",
    options: &[
        TITLE,
        OptDoc { name: "width", ty: "int", default: "900", meaning: "width in pixels" },
        OptDoc { name: "height", ty: "int", default: "none", meaning: "height in pixels (default: what the grid needs at this width, so no empty margins)" },
        OptDoc { name: "row_titles", ty: "array of string", default: "none", meaning: "one title per row" },
        OptDoc { name: "captions", ty: "array", default: "none", meaning: "strings under the last row's images, or one array of strings per row" },
    ],
    example: "let stim = rand([4, 3, 32, 32]);\nlet recon = stim * 0.8 + 0.2 * rand([4, 3, 32, 32]);\nplot_images([stim, recon], #{row_titles: [\"seen\", \"reconstructed\"], captions: [\"a red circle\", \"two squares\", \"a dog\", \"a tree\"]}).save(\"recon.png\");",
};
pub static PLOT_BRAIN: FnDoc = FnDoc {
    name: "plot_brain",
    domain: "plot",
    signature: "plot_brain(background: Volume, opts?: map) -> Figure",
    summary: "Three orthogonal slices (sagittal, coronal, axial; neurological: left on the left) of a background Volume, with an overlay Volume (any grid, aligned through the affines) drawn where |value| ≥ threshold, and its colour bar. Cuts default to the centre of the overlay's largest cluster above threshold, as nilearn's find_xyz_cut_coords (so a lone extreme voxel does not decide the view).",
    options: &[
        TITLE,
        OptDoc { name: "width", ty: "int", default: "1000", meaning: "width in pixels" },
        OptDoc { name: "height", ty: "int", default: "380", meaning: "height in pixels" },
        OptDoc { name: "overlay", ty: "Volume", default: "none", meaning: "statistical map drawn over the background" },
        OptDoc { name: "threshold", ty: "float", default: "0", meaning: "hide overlay values with |v| below this" },
        OptDoc { name: "cut_coords", ty: "array of 3 float", default: "none", meaning: "x, y, z of the cuts in world mm (default: centre of mass of the overlay's largest cluster above threshold, or of the 80th percentile of |v| when threshold is 0; else the volume's centre)" },
        OptDoc { name: "interpolation", ty: "string", default: "linear", meaning: "overlay sampling: linear (trilinear, for continuous maps) or nearest (for labels and other categorical maps)" },
        OptDoc { name: "colormap", ty: "string", default: "cold_hot", meaning: "overlay colours: cold_hot or coolwarm (signed), hot or viridis (positive only)" },
        OptDoc { name: "vmax", ty: "float", default: "none", meaning: "top of the overlay colour scale (default: max |value|)" },
        OptDoc { name: "colorbar_label", ty: "string", default: "\"\"", meaning: "text beside the colour bar" },
        OptDoc { name: "labels", ty: "array of string", default: "[]", meaning: "a categorical overlay (ROI labels, best layer): value k is labels[k − 1], each in its own colour, with a legend instead of the colour bar (nearest sampling)" },
    ],
    example: "let bg = load_nifti(save_nifti(rand([20, 24, 18]), \"bg.nii\"));\nlet stat = load_nifti(save_nifti(randn([10, 12, 9]) * 3.0, \"t.nii\", #{affine: eye(4) * 2}));\nplot_brain(bg, #{overlay: stat, threshold: 2.0, colorbar_label: \"t\"}).save(\"brain.png\");",
};

fn names(v: Vec<String>) -> Vec<String> {
    v
}

fn index_names(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// A series × groups table: map name → values, or a matrix.
fn table(
    op: &'static str,
    v: &Dynamic,
    series_names: Option<Vec<String>>,
) -> Result<(Vec<String>, Vec<Vec<f64>>)> {
    if let Some(m) = v.read_lock::<Map>() {
        let mut n = Vec::new();
        let mut rows = Vec::new();
        for (k, x) in m.iter() {
            n.push(k.to_string());
            rows.push(values_1d(op, &format!("table.{k}"), x)?);
        }
        return Ok((n, rows));
    }
    let t = to_tensor(op, "table", v)?;
    let s = t.shape();
    let (r, c) = match s.len() {
        1 => (1, s[0] as usize),
        2 => (s[0] as usize, s[1] as usize),
        _ => {
            return Err(Error::shape(
                op,
                "table",
                "a map or a series × groups matrix",
                crate::tensor::shape_text(&s),
            ))
        }
    };
    let vals = t.to_f64_vec(op)?;
    let rows: Vec<Vec<f64>> = vals.chunks(c.max(1)).map(|x| x.to_vec()).collect();
    let n = match series_names {
        Some(n) if n.len() == r => n,
        Some(n) => {
            return Err(Error::shape(
                op,
                "series",
                format!("{r} names"),
                n.len().to_string(),
            ))
        }
        None if r == 1 => vec![String::new()],
        None => index_names(r),
    };
    Ok((n, rows))
}

/// Values shaped like a table with the given series names (map by name or matrix).
fn like_table(
    op: &'static str,
    what: &str,
    v: &Dynamic,
    series: &[String],
    g: usize,
) -> Result<Vec<Vec<f64>>> {
    let rows = if let Some(m) = v.read_lock::<Map>() {
        series
            .iter()
            .map(|s| match m.get(s.as_str()) {
                Some(x) => bool_or_values(op, &format!("{what}.{s}"), x),
                None => Err(Error::invalid(
                    op,
                    format!("{what} has no entry for series '{s}'"),
                )),
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        let t = to_tensor(op, what, v)?;
        let vals = t.to_f64_vec(op)?;
        if vals.len() != series.len() * g {
            return Err(Error::shape(
                op,
                what,
                format!("{}×{g} values", series.len()),
                crate::tensor::shape_text(&t.shape()),
            ));
        }
        let vals = if t.kind() == tch::Kind::Bool {
            vals.iter()
                .map(|b| if *b != 0.0 { 0.0 } else { 1.0 })
                .collect()
        } else {
            vals
        };
        vals.chunks(g).map(|x| x.to_vec()).collect()
    };
    for r in &rows {
        if r.len() != g {
            return Err(Error::shape(
                op,
                what,
                format!("{g} values per series"),
                r.len().to_string(),
            ));
        }
    }
    Ok(rows)
}

/// Numbers, where booleans become q-like values: true → 0 (significant), false → 1.
fn bool_or_values(op: &'static str, arg: &str, v: &Dynamic) -> Result<Vec<f64>> {
    if let Some(a) = v.read_lock::<rhai::Array>() {
        if a.iter().all(|x| x.is_bool()) {
            return Ok(a
                .iter()
                .map(|x| {
                    if x.as_bool().unwrap_or(false) {
                        0.0
                    } else {
                        1.0
                    }
                })
                .collect());
        }
    }
    let t = to_tensor(op, arg, v)?;
    let vals = t.to_f64_vec(op)?;
    Ok(if t.kind() == tch::Kind::Bool {
        vals.iter()
            .map(|b| if *b != 0.0 { 0.0 } else { 1.0 })
            .collect()
    } else {
        vals
    })
}

fn string_list(op: &'static str, v: &Dynamic) -> Result<Vec<String>> {
    v.clone()
        .into_array()
        .map_err(|_| Error::invalid(op, "expected an array of strings"))
        .map(|a| a.iter().map(|x| x.to_string()).collect())
}

fn figure(opts: &Opts, kind: FigureKind) -> Result<Figure> {
    let (width, height) = size(opts)?;
    Ok(Figure {
        title: opts.string("title")?,
        width,
        height,
        kind,
    })
}

fn bars(data: Dynamic, opts: Map) -> Result<Figure> {
    const OP: &str = "plot_bars";
    let o = Opts::parse(&PLOT_BARS, opts)?;
    let alpha = o.f64("alpha")?;
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(Error::BadOption {
            op: OP,
            key: "alpha".into(),
            expected: "a number in (0, 1)".into(),
            got: alpha.to_string(),
        });
    }
    if let Some(m) = data
        .read_lock::<Map>()
        .filter(|m| m.contains_key("metrics") && m.contains_key("permutations"))
        .map(|m| m.clone())
    {
        return caption_bars(&o, &m, alpha);
    }
    let fdr_result = data
        .read_lock::<Map>()
        .filter(|m| m.contains_key("tau") && m.contains_key("rows") && m.contains_key("cols"))
        .map(|m| m.clone());
    let (series_names, rows, mut groups, mut sig) = if let Some(m) = fdr_result {
        let rn = string_list(OP, &m["rows"])?;
        let cn = string_list(OP, &m["cols"])?;
        let tau = like_table(OP, "tau", &m["tau"], &rn, cn.len())?;
        let q = match m.get("q") {
            Some(q) => Some(like_table(OP, "q", q, &rn, cn.len())?),
            None => None,
        };
        (rn, tau, Some(cn), q)
    } else {
        let (n, r) = table(OP, &data, o.opt_string_list("series")?)?;
        (n, r, None, None)
    };
    let g = rows.first().map_or(0, |r| r.len());
    if let Some(gn) = o.opt_string_list("groups")? {
        if gn.len() != g {
            return Err(Error::shape(
                OP,
                "groups",
                format!("{g} names (one per value of a series)"),
                gn.len().to_string(),
            ));
        }
        groups = Some(gn);
    }
    let groups = names(groups.unwrap_or_else(|| index_names(g)));
    if let Some(s) = o.raw("significance") {
        sig = Some(like_table(OP, "significance", &s, &series_names, g)?);
    }
    let errors = match o.raw("error_bars") {
        Some(e) => Some(like_table(OP, "error_bars", &e, &series_names, g)?),
        None => None,
    };
    let series = series_names
        .iter()
        .enumerate()
        .map(|(i, name)| BarSeries {
            name: name.clone(),
            values: rows[i].clone(),
            errors: errors.as_ref().map(|e| e[i].clone()),
            marks: match &sig {
                Some(s) => s[i]
                    .iter()
                    .map(|&q| crate::plot::bars_stars(q, alpha))
                    .collect(),
                None => vec![String::new(); rows[i].len()],
            },
        })
        .collect();
    let mut b = Bars::new(groups, series)?;
    b.x_label = o.string("x_label")?;
    b.y_label = o.string("y_label")?;
    if sig.is_some() {
        let t = |x: f64| crate::plot::num_text(x);
        // First line: the one-star convention of narrow bars.
        b.note = format!(
            "* q < {}\n** q < {}\n*** q < {}",
            t(alpha),
            t(alpha / 5.0),
            t(alpha / 50.0)
        );
    }
    figure(&o, FigureKind::Bars(b))
}

/// A caption_scores result as bars: each metric's score (starred by its
/// permutation p) beside its chance level with ± sd error bars.
fn caption_bars(o: &Opts, m: &Map, alpha: f64) -> Result<Figure> {
    const OP: &str = "plot_bars";
    let names = string_list(OP, &m["metrics"])?;
    let get = |key: String| -> Result<f64> {
        m.get(key.as_str())
            .and_then(|v| v.as_float().ok())
            .ok_or_else(|| {
                Error::invalid(
                    OP,
                    format!("caption_scores result without a number under {key}"),
                )
            })
    };
    let mut score = Vec::new();
    let mut chance = Vec::new();
    let mut sd = Vec::new();
    let mut marks = Vec::new();
    for n in &names {
        score.push(get(n.clone())?);
        chance.push(get(format!("{n}_chance"))?);
        sd.push(get(format!("{n}_chance_sd"))?);
        marks.push(crate::plot::bars_stars(get(format!("{n}_p"))?, alpha));
    }
    let k = names.len();
    let series = vec![
        BarSeries {
            name: "score".into(),
            values: score,
            errors: None,
            marks,
        },
        BarSeries {
            name: "chance (mean ± sd)".into(),
            values: chance,
            errors: Some(sd),
            marks: vec![String::new(); k],
        },
    ];
    let mut b = Bars::new(names, series)?;
    b.x_label = o.string("x_label")?;
    b.y_label = o.string("y_label")?;
    let t = |x: f64| crate::plot::num_text(x);
    b.note = format!(
        "* p < {} (permutation)\n** p < {}\n*** p < {}",
        t(alpha),
        t(alpha / 5.0),
        t(alpha / 50.0)
    );
    figure(o, FigureKind::Bars(b))
}

fn group_list(op: &'static str, v: &Dynamic) -> Result<Vec<BoxGroup>> {
    if let Some(m) = v.read_lock::<Map>() {
        return m
            .iter()
            .map(|(k, x)| {
                Ok(BoxGroup {
                    name: k.to_string(),
                    values: values_1d(op, &format!("groups.{k}"), x)?,
                })
            })
            .collect();
    }
    let a = v.read_lock::<rhai::Array>().ok_or_else(|| {
        Error::invalid(
            op,
            "groups must be a map name → values or an array of #{name, values}",
        )
    })?;
    a.iter()
        .enumerate()
        .map(|(i, item)| {
            let m = item.read_lock::<Map>().ok_or_else(|| {
                Error::invalid(op, format!("group {i} should be #{{name, values}}"))
            })?;
            let name = m
                .get("name")
                .map(|n| n.to_string())
                .unwrap_or_else(|| i.to_string());
            let vals = m.get("values").ok_or_else(|| {
                Error::invalid(op, format!("group {i} ('{name}') has no 'values'"))
            })?;
            Ok(BoxGroup {
                name,
                values: values_1d(op, &format!("groups[{i}].values"), vals)?,
            })
        })
        .collect()
}

fn box_plot(data: Dynamic, opts: Map) -> Result<Figure> {
    const OP: &str = "plot_box";
    let o = Opts::parse(&PLOT_BOX, opts)?;
    let groups = group_list(OP, &data)?;
    let test = o.choice("test", &["ttest_rel", "ttest_ind", "welch", "none"])?;
    let find = |d: &Dynamic| -> Result<usize> {
        if let Ok(i) = d.as_int() {
            if i >= 0 && (i as usize) < groups.len() {
                return Ok(i as usize);
            }
        }
        let s = d.to_string();
        groups.iter().position(|g| g.name == s).ok_or_else(|| {
            Error::invalid(
                OP,
                format!(
                    "pairs: no group '{s}'; groups are {}",
                    groups
                        .iter()
                        .map(|g| g.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    };
    let mut pairs = Vec::new();
    if let Some(list) = o.raw("pairs") {
        let list = list
            .into_array()
            .map_err(|_| Error::invalid(OP, "pairs must be an array of [a, b]"))?;
        for p in list {
            let p = p
                .into_array()
                .map_err(|_| Error::invalid(OP, "each pair must be [a, b]"))?;
            if p.len() != 2 {
                return Err(Error::invalid(OP, "each pair must be [a, b]"));
            }
            let (a, b) = (find(&p[0])?, find(&p[1])?);
            let (va, vb) = (&groups[a].values, &groups[b].values);
            let text = match test.as_str() {
                "none" => String::new(),
                "ttest_rel" => {
                    if va.len() != vb.len() {
                        return Err(Error::shape(
                            OP,
                            format!(
                                "paired groups '{}' and '{}'",
                                groups[a].name, groups[b].name
                            ),
                            format!("{} values each", va.len()),
                            vb.len().to_string(),
                        ));
                    }
                    crate::plot::p_text(
                        crate::stats::ttest_rel(va, vb, &Default::default())?.pvalue,
                    )
                }
                other => {
                    let opts =
                        crate::stats::TTestIndOptions::default().equal_var(other == "ttest_ind");
                    crate::plot::p_text(crate::stats::ttest_ind(va, vb, &opts)?.pvalue)
                }
            };
            pairs.push(BoxPair { a, b, text });
        }
    }
    let mut b = BoxPlot::new(groups, pairs)?;
    b.y_label = o.string("y_label")?;
    b.points = o.bool("points")?;
    figure(&o, FigureKind::Box(b))
}

fn image_rows(op: &'static str, v: &Dynamic) -> Result<Vec<Vec<Raster>>> {
    let one = |d: &Dynamic| -> Result<Vec<Raster>> {
        let d = match d.read_lock::<Map>() {
            Some(m) => m
                .get("images")
                .cloned()
                .ok_or_else(|| Error::invalid(op, "a map row needs an 'images' tensor"))?,
            None => d.clone(),
        };
        crate::plot::rasters(op, &to_tensor(op, "images", &d)?)
    };
    if let Some(a) = v.read_lock::<rhai::Array>() {
        return a.iter().map(one).collect();
    }
    Ok(vec![one(v)?])
}

fn images(data: Dynamic, opts: Map) -> Result<Figure> {
    const OP: &str = "plot_images";
    let o = Opts::parse(&PLOT_IMAGES, opts)?;
    let rows = image_rows(OP, &data)?;
    let titles = o.opt_string_list("row_titles")?.unwrap_or_default();
    if !titles.is_empty() && titles.len() != rows.len() {
        return Err(Error::shape(
            OP,
            "row_titles",
            format!("{} titles", rows.len()),
            titles.len().to_string(),
        ));
    }
    let mut caps: Vec<Vec<String>> = vec![vec![]; rows.len()];
    if let Some(c) = o.raw("captions") {
        let c = c
            .into_array()
            .map_err(|_| Error::invalid(OP, "captions must be an array"))?;
        if c.iter().all(|x| x.is_array()) {
            if c.len() != rows.len() {
                return Err(Error::shape(
                    OP,
                    "captions",
                    format!("{} arrays (one per row)", rows.len()),
                    c.len().to_string(),
                ));
            }
            for (i, x) in c.iter().enumerate() {
                caps[i] = string_list(OP, x)?;
            }
        } else {
            let last = rows.len() - 1;
            caps[last] = c.iter().map(|x| x.to_string()).collect();
        }
    }
    let grid = ImageGrid::new(
        rows.into_iter()
            .enumerate()
            .map(|(i, images)| crate::plot::ImageRow {
                title: titles.get(i).cloned().unwrap_or_default(),
                images,
                captions: caps[i].clone(),
            })
            .collect(),
    )?;
    let width = o.i64("width")?;
    let title = o.string("title")?;
    let height = match o.opt_i64("height")? {
        Some(h) => h,
        None => grid.natural_height(width.clamp(100, 8000) as u32, !title.is_empty()) as i64,
    };
    if !(100..=8000).contains(&width) || !(100..=8000).contains(&height) {
        return Err(Error::invalid(
            "plot",
            format!("width and height must be 100–8000 pixels, got {width}×{height}"),
        ));
    }
    Ok(Figure {
        title,
        width: width as u32,
        height: height as u32,
        kind: FigureKind::Images(grid),
    })
}

fn slab(op: &'static str, v: &crate::data::Volume) -> Result<Slab> {
    let s = v.shape();
    if s.len() == 4 && s[3] > 1 {
        return Err(Error::invalid(
            op,
            format!(
                "expected a 3-D volume, got {}; take one volume first",
                crate::tensor::shape_text(&s)
            ),
        ));
    }
    if s.len() < 3 || s.iter().take(3).any(|&d| d == 0) {
        return Err(Error::invalid(
            op,
            format!(
                "expected a 3-D volume with every axis at least 1 long, got {}",
                crate::tensor::shape_text(&s)
            ),
        ));
    }
    let dims = [s[0] as usize, s[1] as usize, s[2] as usize];
    let vals: Vec<f32> = v
        .data
        .to_f64_vec(op)?
        .into_iter()
        .map(|x| x as f32)
        .collect();
    Slab::new(op, dims, vals, v.affine)
}

fn brain(bg: crate::data::Volume, opts: Map) -> Result<Figure> {
    const OP: &str = "plot_brain";
    let o = Opts::parse(&PLOT_BRAIN, opts)?;
    let overlay = match o.raw("overlay") {
        Some(d) => {
            let v = d
                .try_cast::<crate::data::Volume>()
                .ok_or_else(|| Error::BadOption {
                    op: OP,
                    key: "overlay".into(),
                    expected: "a Volume".into(),
                    got: "something else".into(),
                })?;
            Some(slab(OP, &v)?)
        }
        None => None,
    };
    let cut = match o.opt_f64_list("cut_coords")? {
        Some(c) if c.len() == 3 => Some([c[0], c[1], c[2]]),
        Some(c) => {
            return Err(Error::BadOption {
                op: OP,
                key: "cut_coords".into(),
                expected: "[x, y, z] in mm".into(),
                got: format!("{} numbers", c.len()),
            })
        }
        None => None,
    };
    let b = Brain {
        background: slab(OP, &bg)?,
        overlay,
        threshold: o.f64("threshold")?.abs(),
        nearest: o.choice("interpolation", &["linear", "nearest"])? == "nearest",
        cut,
        colormap: Colormap::parse(OP, &o.string("colormap")?)?,
        vmax: o.opt_f64("vmax")?,
        colorbar_label: o.string("colorbar_label")?,
        categories: o.opt_string_list("labels")?.unwrap_or_default(),
    };
    figure(&o, FigureKind::Brain(b))
}

fn register_more(engine: &mut Engine) {
    engine.register_fn("plot_bars", |d: Dynamic| {
        guard("plot_bars", || bars(d, Map::new()))
    });
    engine.register_fn("plot_bars", |d: Dynamic, o: Map| {
        guard("plot_bars", || bars(d, o))
    });
    engine.register_fn("plot_box", |d: Dynamic| {
        guard("plot_box", || box_plot(d, Map::new()))
    });
    engine.register_fn("plot_box", |d: Dynamic, o: Map| {
        guard("plot_box", || box_plot(d, o))
    });
    let scatter = |x: Dynamic, y: Dynamic, opts: Map| -> RhaiResult<Figure> {
        guard("plot_scatter", || {
            let o = Opts::parse(&PLOT_SCATTER, opts)?;
            let mut s = Scatter::new(
                values_1d("plot_scatter", "x", &x)?,
                values_1d("plot_scatter", "y", &y)?,
            )?;
            s.x_label = o.string("x_label")?;
            s.y_label = o.string("y_label")?;
            s.line = o.choice("line", &["none", "identity", "fit"])?;
            figure(&o, FigureKind::Scatter(s))
        })
    };
    engine.register_fn("plot_scatter", move |x: Dynamic, y: Dynamic| {
        scatter(x, y, Map::new())
    });
    engine.register_fn("plot_scatter", scatter);
    let hist = |d: Dynamic, opts: Map| -> RhaiResult<Figure> {
        guard("plot_hist", || {
            const OP: &str = "plot_hist";
            let o = Opts::parse(&PLOT_HIST, opts)?;
            let series = match d.read_lock::<Map>() {
                Some(m) => m
                    .iter()
                    .map(|(k, v)| Ok((k.to_string(), values_1d(OP, &format!("values.{k}"), v)?)))
                    .collect::<Result<Vec<_>>>()?,
                None => vec![(String::new(), values_1d(OP, "values", &d)?)],
            };
            let bins = o.i64("bins")?;
            if bins < 1 {
                return Err(Error::BadOption {
                    op: "plot_hist",
                    key: "bins".into(),
                    expected: "a number of bins ≥ 1".into(),
                    got: bins.to_string(),
                });
            }
            let mut h = Hist::new(series, bins as usize)?;
            h.density = o.bool("density")?;
            h.x_label = o.string("x_label")?;
            h.marks = o.opt_f64_list("marks")?.unwrap_or_default();
            h.mark_labels = o.opt_string_list("mark_labels")?.unwrap_or_default();
            if h.mark_labels.len() > h.marks.len() {
                return Err(Error::invalid(
                    "plot_hist",
                    format!(
                        "{} mark_labels for {} marks",
                        h.mark_labels.len(),
                        h.marks.len()
                    ),
                ));
            }
            figure(&o, FigureKind::Hist(h))
        })
    };
    engine.register_fn("plot_hist", move |d: Dynamic| hist(d, Map::new()));
    engine.register_fn("plot_hist", hist);
    engine.register_fn("plot_images", |d: Dynamic| {
        guard("plot_images", || images(d, Map::new()))
    });
    engine.register_fn("plot_images", |d: Dynamic, o: Map| {
        guard("plot_images", || images(d, o))
    });
    engine.register_fn("plot_brain", |v: crate::data::Volume| {
        guard("plot_brain", || brain(v, Map::new()))
    });
    engine.register_fn("plot_brain", |v: crate::data::Volume, o: Map| {
        guard("plot_brain", || brain(v, o))
    });
}
