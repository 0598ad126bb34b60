//! Figures on plotters, drawn with a font embedded in the binary (no system
//! fonts needed) and saved as PNG or SVG by file extension. Output is
//! deterministic: the same figure gives the same bytes.
//!
//! A [`Figure`] holds data, not pixels; each kind renders itself onto any
//! plotters backend.

mod heatmap;
mod lines;

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

pub use heatmap::Heatmap;
pub use lines::{Lines, Series};

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
        };
        write!(f, "Figure[{what}; {}×{}]", self.width, self.height)?;
        if !self.title.is_empty() {
            write!(f, " \"{}\"", self.title)?;
        }
        Ok(())
    }
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
        }?;
        root.present().map_err(draw_err)
    }

    /// Saves as PNG or SVG, chosen by the extension of `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        ensure_font();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("save", parent, e))?;
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => {
                let root = BitMapBackend::new(path, (self.width, self.height)).into_drawing_area();
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

/// Font of a given size in the embedded family.
pub fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), size, FontStyle::Normal)
}
