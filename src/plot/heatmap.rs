//! Heatmaps with a colour bar: RDMs, tau matrices.

use plotters::prelude::*;

use super::{draw_err, font, num_text, text_size, Colormap};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Heatmap {
    pub rows: usize,
    pub cols: usize,
    /// Row-major values.
    pub values: Vec<f64>,
    pub row_labels: Vec<String>,
    pub col_labels: Vec<String>,
    pub colorbar: bool,
    /// Colour scale limits; None = data range.
    pub limits: Option<(f64, f64)>,
    pub colormap: Colormap,
    /// Label of the colour bar ("Kendall tau", "1 − r").
    pub colorbar_label: String,
    /// Print each cell's value in it (confusion matrices).
    pub show_values: bool,
}

impl Heatmap {
    pub fn new(rows: usize, cols: usize, values: Vec<f64>) -> Result<Self> {
        if rows == 0 || cols == 0 || values.len() != rows * cols {
            return Err(Error::invalid(
                "plot_heatmap",
                format!(
                    "expected a non-empty matrix, got {rows}×{cols} with {} values",
                    values.len()
                ),
            ));
        }
        Ok(Heatmap {
            rows,
            cols,
            values,
            row_labels: vec![],
            col_labels: vec![],
            colorbar: true,
            limits: None,
            colormap: Colormap::Viridis,
            colorbar_label: String::new(),
            show_values: false,
        })
    }

    /// The colour-scale limits the data alone would give.
    pub fn data_limits(&self) -> (f64, f64) {
        self.auto_limits()
    }

    fn limits(&self) -> (f64, f64) {
        if let Some(l) = self.limits {
            return l;
        }
        self.auto_limits()
    }

    fn auto_limits(&self) -> (f64, f64) {
        let Some((lo, hi)) = super::finite_range(self.values.iter().copied()) else {
            return (0.0, 1.0);
        };
        if self.colormap.diverging() {
            let m = lo.abs().max(hi.abs());
            if m > 0.0 {
                (-m, m)
            } else {
                (-1.0, 1.0)
            }
        } else if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, hi + 0.5)
        }
    }

    pub(super) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
    ) -> Result<()> {
        let (lo, hi) = self.limits();
        let cmap = self.colormap;
        let tick_font = font(12.0);
        // Labels: given ones, else indices (thinned to at most ~20).
        let labels = |given: &Vec<String>, n: usize| -> Vec<(usize, String)> {
            if !given.is_empty() {
                return given.iter().cloned().enumerate().collect();
            }
            let step = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
                .into_iter()
                .find(|s| n / s <= 20)
                .unwrap_or(n.max(1));
            (0..n).step_by(step).map(|i| (i, i.to_string())).collect()
        };
        let (w, h) = root.dim_in_pixel();
        // Labels longer than a third of the figure are shortened, not clipped.
        let shorten = |l: Vec<(usize, String)>, max: u32| -> Vec<(usize, String)> {
            l.into_iter()
                .map(|(i, t)| (i, super::bars::fit_text(root, &t, &tick_font, max)))
                .collect()
        };
        let rl = shorten(labels(&self.row_labels, self.rows), w / 3);
        let cl = shorten(labels(&self.col_labels, self.cols), h / 3);
        let width_of = |l: &[(usize, String)]| {
            l.iter()
                .map(|(_, t)| text_size(root, t, &tick_font).0)
                .max()
                .unwrap_or(0)
        };
        // Colour bar: ticks on its right, sized to the widest tick label.
        let bar_ticks: Vec<f64> = nice_ticks(lo, hi, 6);
        let bar_label_w = bar_ticks
            .iter()
            .map(|t| text_size(root, &num_text(*t), &tick_font).0)
            .max()
            .unwrap_or(20);
        let bar_w = if self.colorbar {
            18 + 6
                + bar_label_w
                + 14
                + if self.colorbar_label.is_empty() {
                    0
                } else {
                    22
                }
        } else {
            0
        };
        let (main, bar) = root.split_horizontally(w.saturating_sub(bar_w));
        let top = if title.is_empty() { 14 } else { 40 };
        if !title.is_empty() {
            main.draw(&Text::new(
                title.to_string(),
                ((w.saturating_sub(bar_w) / 2) as i32, 10),
                font(20.0)
                    .color(&BLACK)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Top,
                    )),
            ))
            .map_err(draw_err)?;
        }
        let left = width_of(&rl) + 14;
        // Column labels run vertically when they would not fit side by side.
        let col_w = width_of(&cl);
        let avail_w = w.saturating_sub(bar_w + left + 12) as f64;
        let vertical = (col_w + 4) as f64 > avail_w / self.cols.max(1) as f64 * 0.95
            && !self.col_labels.is_empty();
        let bottom = if vertical { col_w + 12 } else { 26 };
        let mut plot_w = avail_w.max(10.0);
        let mut plot_h = (h.saturating_sub(top + bottom + 8) as f64).max(10.0);
        // A square matrix (an RDM, a confusion matrix) gets square cells.
        if self.rows == self.cols {
            let cell = (plot_w / self.cols as f64).min(plot_h / self.rows as f64);
            plot_w = cell * self.cols as f64;
            plot_h = cell * self.rows as f64;
        }
        // Centred in the room left of the colour bar, the bar beside it.
        let x0 = left as f64 + ((avail_w.max(10.0) - plot_w) / 2.0).max(0.0);
        let y0 = top as f64;
        let cw = plot_w / self.cols as f64;
        let ch = plot_h / self.rows as f64;
        for r in 0..self.rows {
            for c in 0..self.cols {
                let v = self.values[r * self.cols + c];
                let colour = if v.is_finite() {
                    cmap.at((v - lo) / (hi - lo))
                } else {
                    RGBColor(200, 200, 200)
                };
                let a = (
                    (x0 + c as f64 * cw).round() as i32,
                    (y0 + r as f64 * ch).round() as i32,
                );
                let b = (
                    (x0 + (c + 1) as f64 * cw).round() as i32,
                    (y0 + (r + 1) as f64 * ch).round() as i32,
                );
                main.draw(&Rectangle::new([a, b], colour.filled()))
                    .map_err(draw_err)?;
            }
        }
        if self.show_values {
            self.draw_values(&main, (x0, y0), (cw, ch), (lo, hi))?;
        }
        let frame = [
            (x0 as i32, y0 as i32),
            ((x0 + plot_w) as i32, (y0 + plot_h) as i32),
        ];
        main.draw(&Rectangle::new(frame, BLACK.stroke_width(1)))
            .map_err(draw_err)?;
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        for (i, t) in &rl {
            let y = (y0 + (*i as f64 + 0.5) * ch) as i32;
            main.draw(&Text::new(
                t.clone(),
                (x0 as i32 - 6, y),
                tick_font
                    .clone()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(draw_err)?;
        }
        let base = (y0 + plot_h) as i32 + 5;
        for (i, t) in &cl {
            let x = (x0 + (*i as f64 + 0.5) * cw) as i32;
            let style = if vertical {
                tick_font
                    .clone()
                    .transform(FontTransform::Rotate270)
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Right, VPos::Center))
            } else {
                tick_font
                    .clone()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Top))
            };
            main.draw(&Text::new(t.clone(), (x, base), style))
                .map_err(draw_err)?;
        }
        if self.colorbar {
            let span = (y0 as i32, (y0 + plot_h) as i32);
            // Beside the matrix (which may be narrower than its area).
            let beside = main.get_base_pixel().0 + (x0 + plot_w) as i32 + 12;
            let bx = beside.min(bar.get_base_pixel().0 + 6) - root.get_base_pixel().0;
            super::draw_colorbar(
                root,
                (bx, span.0, span.1),
                (lo, hi),
                &bar_ticks,
                |v| cmap.at((v - lo) / (hi - lo)),
                &self.colorbar_label,
                bar_label_w,
            )?;
        }
        Ok(())
    }
}

impl Heatmap {
    /// Each cell's value as text in the cell, white on dark colours; the
    /// font shrinks with the cells, and values are left out when cells are
    /// too small to hold them legibly.
    fn draw_values<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        (x0, y0): (f64, f64),
        (cw, ch): (f64, f64),
        (lo, hi): (f64, f64),
    ) -> Result<()> {
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        let size = (ch * 0.45).min(13.0);
        if size < 7.0 {
            return Ok(());
        }
        let f = font(size);
        for r in 0..self.rows {
            for c in 0..self.cols {
                let v = self.values[r * self.cols + c];
                if !v.is_finite() {
                    continue;
                }
                let text = num_text(v);
                if text_size(area, &text, &f).0 as f64 > cw - 2.0 {
                    continue;
                }
                let RGBColor(cr, cg, cb) = self.colormap.at((v - lo) / (hi - lo));
                let luminance = 0.299 * cr as f64 + 0.587 * cg as f64 + 0.114 * cb as f64;
                let ink = if luminance < 128.0 { WHITE } else { BLACK };
                area.draw(&Text::new(
                    text,
                    (
                        (x0 + (c as f64 + 0.5) * cw) as i32,
                        (y0 + (r as f64 + 0.5) * ch) as i32,
                    ),
                    f.clone()
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))
                .map_err(draw_err)?;
            }
        }
        Ok(())
    }
}

/// About `n` round tick values covering [lo, hi] (1, 2, 2.5, 5 × 10^k steps).
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(hi > lo) || !lo.is_finite() || !hi.is_finite() {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil();
    let mut out = Vec::new();
    let mut k = first;
    while k * step <= hi + step * 1e-9 {
        let v = k * step;
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        k += 1.0;
    }
    out
}
