//! Figures on plotters, drawn with a font embedded in the binary (no system
//! fonts needed) and saved as PNG or SVG by file extension. Output is
//! deterministic: the same figure gives the same bytes.
//!
//! A [`Figure`] holds data, not pixels; each kind renders itself onto any
//! plotters backend.

mod bars;
mod boxplot;
mod brain;
pub use brain::find_cut;
pub mod colormap;
mod glyphs;
mod heatmap;
mod hist;
pub mod history;
mod images;
mod lines;
mod scatter;

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

pub use bars::{mark_lines as bars_mark_lines, stars as bars_stars, BarSeries, Bars};
pub use boxplot::{BoxGroup, BoxPair, BoxPlot};
pub use brain::{Brain, Slab};
pub use colormap::Colormap;
pub use heatmap::Heatmap;
pub use hist::Hist;
pub use history::HistoryPlot;
pub use images::{rasters, reconstruction_grid, ImageGrid, ImageRow, Raster};
pub use lines::{Lines, Series};
pub use scatter::Scatter;

use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static FONT_INIT: Once = Once::new();

/// The family name every figure uses.
pub const FAMILY: &str = "sans-serif";

fn ensure_font() {
    FONT_INIT.call_once(|| {
        // The font is compiled in and known to be valid; a failure here
        // would only mean plotters falls back to drawing no text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Ten distinguishable colours (matplotlib's tab10), in order.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

#[derive(Debug, Clone)]
pub enum FigureKind {
    Lines(Lines),
    Heatmap(Heatmap),
    Bars(Bars),
    Box(BoxPlot),
    Scatter(Scatter),
    Hist(Hist),
    Images(ImageGrid),
    Brain(Brain),
    History(HistoryPlot),
}

#[derive(Debug, Clone)]
pub struct Figure {
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub kind: FigureKind,
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.kind {
            FigureKind::Lines(l) => format!("lines, {} series", l.series.len()),
            FigureKind::Heatmap(h) => format!("heatmap {}×{}", h.rows, h.cols),
            FigureKind::Bars(b) => format!(
                "bars, {} groups × {} series",
                b.groups.len(),
                b.series.len()
            ),
            FigureKind::Box(b) => format!("box plot, {} groups", b.groups.len()),
            FigureKind::Scatter(s) => format!("scatter, {} points", s.x.len()),
            FigureKind::Hist(h) => format!("histogram, {} series", h.series.len()),
            FigureKind::Images(g) => format!("images, {} rows", g.rows.len()),
            FigureKind::Brain(_) => "brain slices".to_string(),
            FigureKind::History(h) => format!(
                "history, {} panels ({})",
                h.panels.len(),
                h.families().join(", ")
            ),
        };
        write!(f, "Figure[{what}; {}×{}]", self.width, self.height)?;
        if !self.title.is_empty() {
            write!(f, " \"{}\"", self.title)?;
        }
        Ok(())
    }
}

/// One label as a figure drew it: its text, the pixel box of its ink
/// (min and max corners) and whether part of it fell outside the canvas.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawnText {
    pub text: String,
    pub min: (i32, i32),
    pub max: (i32, i32),
    pub clipped: bool,
}

fn draw_err(e: impl std::fmt::Display) -> Error {
    Error::invalid("save", format!("drawing the figure failed: {e}"))
}

impl Figure {
    fn render<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        root.fill(&WHITE).map_err(draw_err)?;
        match &self.kind {
            FigureKind::Lines(l) => l.draw(&root, &self.title),
            FigureKind::Heatmap(h) => h.draw(&root, &self.title),
            FigureKind::Bars(b) => b.draw(&root, &self.title),
            FigureKind::Box(b) => b.draw(&root, &self.title),
            FigureKind::Scatter(s) => s.draw(&root, &self.title),
            FigureKind::Hist(h) => h.draw(&root, &self.title),
            FigureKind::Images(g) => g.draw(&root, &self.title),
            FigureKind::Brain(b) => b.draw(&root, &self.title),
            FigureKind::History(h) => h.draw(&root, &self.title),
        }?;
        root.present().map_err(draw_err)
    }

    /// Renders the figure in memory and returns every label drawn, with
    /// where it landed and whether it is cut off by the canvas edge.
    pub fn drawn_text(&self) -> Result<Vec<DrawnText>> {
        ensure_font();
        let mut buffer = vec![0u8; self.width as usize * self.height as usize * 3];
        let drawn = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        {
            let backend = glyphs::GlyphFix {
                inner: BitMapBackend::with_buffer(&mut buffer, (self.width, self.height)),
                drawn: Some(drawn.clone()),
            };
            self.render(backend.into_drawing_area())?;
        }
        let list = drawn.borrow().clone();
        Ok(list)
    }

    /// Saves as PNG or SVG, chosen by the extension of `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        ensure_font();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::sandbox::check_write("save", parent.as_ref())?;
            std::fs::create_dir_all(parent).map_err(|e| Error::io("save", parent, e))?;
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => {
                let root =
                    glyphs::GlyphFix::new(BitMapBackend::new(path, (self.width, self.height)))
                        .into_drawing_area();
                self.render(root)
            }
            Some("svg") => {
                let root = SVGBackend::new(path, (self.width, self.height)).into_drawing_area();
                self.render(root)
            }
            other => Err(Error::invalid(
                "save",
                format!(
                    "a figure is saved as .png or .svg, got {}",
                    other.map_or("no extension".to_string(), |e| format!(".{e}"))
                ),
            )),
        }?;
        if !path.exists() {
            return Err(Error::invalid(
                "save",
                format!("{} was not written", path.display()),
            ));
        }
        Ok(())
    }
}

/// Twenty colours (matplotlib's tab20 reordered: the ten tab10 colours
/// first, then their light partners), for up to 20 series such as 19 ROIs.
pub const PALETTE20: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
    RGBColor(247, 182, 210),
    RGBColor(199, 199, 199),
    RGBColor(219, 219, 141),
    RGBColor(158, 218, 229),
];

/// The colour of series `i` of `n`: tab10 up to 10 series, tab20 up to 20,
/// then cycling.
pub fn series_colour(i: usize, n: usize) -> RGBColor {
    if n <= 10 {
        PALETTE[i % 10]
    } else {
        PALETTE20[i % 20]
    }
}

/// Finite min and max, or None.
pub(crate) fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    lo.is_finite().then_some((lo, hi))
}

/// A padded axis range around the finite values (5 % each side), always
/// non-empty; `include_zero` extends it to 0 (bars).
pub(crate) fn padded_range(values: impl Iterator<Item = f64>, include_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = finite_range(values).unwrap_or((0.0, 1.0));
    if include_zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.05
    };
    (
        if include_zero && lo == 0.0 {
            0.0
        } else {
            lo - pad
        },
        if include_zero && hi == 0.0 {
            0.0
        } else {
            hi + pad
        },
    )
}

/// Short number text for tick labels and annotations: up to 3 significant
/// decimals, no trailing zeros, scientific for very small or large values.
pub fn num_text(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    // Tick positions like 0.1 − 0.1 come out as ±1e-17: that is zero.
    if x.abs() < 1e-12 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{x:.1e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 4) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// p-value text as journals print it: "p = 0.032", "p = 3.1e-05", "p < 1e-10".
pub fn p_text(p: f64) -> String {
    if p.is_nan() {
        "p = n/a".into()
    } else if p < 1e-10 {
        "p < 1e-10".into()
    } else if p < 0.001 {
        format!("p = {p:.1e}")
    } else {
        format!("p = {p:.3}")
    }
}

/// Width and height in pixels of `text` in `font`.
pub(crate) fn text_size<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
    f: &FontDesc,
) -> (u32, u32) {
    area.estimate_text_size(text, &TextStyle::from(f.clone()))
        .unwrap_or((text.chars().count() as u32 * 7, 12))
}

/// Draws an RGB raster (row-major, 3 bytes a pixel) with its top-left corner
/// at `pos` in pixels, 1:1. Embedded as a PNG in SVG output.
pub(crate) fn blit<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    pos: (i32, i32),
    size: (u32, u32),
    rgb: Vec<u8>,
) -> Result<()> {
    if size.0 == 0 || size.1 == 0 {
        return Ok(());
    }
    let el: BitMapElement<(i32, i32)> = BitMapElement::with_owned_buffer(pos, size, rgb)
        .ok_or_else(|| Error::invalid("save", "raster buffer of the wrong size"))?;
    area.draw(&el).map_err(draw_err)
}

/// Nearest-neighbour scaling of an RGB raster (w×h) to (tw×th).
pub(crate) fn scale_nearest(rgb: &[u8], w: usize, h: usize, tw: usize, th: usize) -> Vec<u8> {
    let mut out = vec![0u8; tw * th * 3];
    for ty in 0..th {
        let sy = (ty * h / th.max(1)).min(h - 1);
        for tx in 0..tw {
            let sx = (tx * w / tw.max(1)).min(w - 1);
            let s = (sy * w + sx) * 3;
            let d = (ty * tw + tx) * 3;
            out[d..d + 3].copy_from_slice(&rgb[s..s + 3]);
        }
    }
    out
}

/// Font of a given size in the embedded family.
pub fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), size, FontStyle::Normal)
}

/// A vertical colour bar from `by0` (top, value `hi`) to `by1` (bottom,
/// value `lo`) at x = `bx`, with ticks and an optional rotated label, in the
/// colours `colour_of(value)` gives. Heatmaps and brain slices share it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn draw_colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    (bx, by0, by1): (i32, i32, i32),
    (lo, hi): (f64, f64),
    ticks: &[f64],
    colour_of: impl Fn(f64) -> RGBColor,
    label: &str,
    tick_label_width: u32,
) -> Result<()> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let steps = (by1 - by0).max(1);
    for i in 0..steps {
        let v = hi - (i as f64 + 0.5) / steps as f64 * (hi - lo);
        area.draw(&Rectangle::new(
            [(bx, by0 + i), (bx + 18, by0 + i + 1)],
            colour_of(v).filled(),
        ))
        .map_err(draw_err)?;
    }
    area.draw(&Rectangle::new(
        [(bx, by0), (bx + 18, by1)],
        BLACK.stroke_width(1),
    ))
    .map_err(draw_err)?;
    let tick_font = font(12.0);
    for t in ticks {
        let y = (by1 as f64 - (t - lo) / (hi - lo) * (by1 - by0) as f64).round() as i32;
        area.draw(&PathElement::new(vec![(bx + 18, y), (bx + 22, y)], BLACK))
            .map_err(draw_err)?;
        area.draw(&Text::new(
            num_text(*t),
            (bx + 25, y),
            tick_font
                .clone()
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(draw_err)?;
    }
    if !label.is_empty() {
        area.draw(&Text::new(
            label.to_string(),
            (bx + 25 + tick_label_width as i32 + 8, (by0 + by1) / 2),
            font(13.0)
                .transform(FontTransform::Rotate90)
                .color(&BLACK)
                // Rotated a quarter turn, the text's bottom faces left: it
                // starts at x and runs right, clear of the tick labels.
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        ))
        .map_err(draw_err)?;
    }
    Ok(())
}
