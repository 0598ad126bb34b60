//! Heatmaps with a colour bar: RDMs, tau matrices.

use plotters::prelude::*;

use super::{draw_err, font};
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
}

/// Viridis, sampled at 9 stops and interpolated linearly.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = t * (STOPS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(STOPS.len() - 2);
    let f = pos - i as f64;
    let lerp = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
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
        })
    }

    fn limits(&self) -> (f64, f64) {
        if let Some(l) = self.limits {
            return l;
        }
        let (lo, hi) = self
            .values
            .iter()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            (0.0, 1.0)
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
        let (w, _) = root.dim_in_pixel();
        let (main, bar) = if self.colorbar {
            root.split_horizontally(w.saturating_sub(90))
        } else {
            root.split_horizontally(w)
        };
        let label_at = |labels: &Vec<String>, i: f64| -> String {
            let k = i.floor() as usize;
            if (i - i.floor()).abs() < 1e-9 || k >= labels.len() {
                return String::new();
            }
            labels.get(k).cloned().unwrap_or_default()
        };
        let longest = self
            .row_labels
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(2) as u32;
        let mut chart = ChartBuilder::on(&main)
            .caption(title, font(20.0))
            .margin(12)
            .x_label_area_size(if self.col_labels.is_empty() { 30 } else { 60 })
            .y_label_area_size((longest * 8 + 16).clamp(30, 160))
            .build_cartesian_2d(0f64..self.cols as f64, self.rows as f64..0f64)
            .map_err(draw_err)?;
        let (rl, cl) = (self.row_labels.clone(), self.col_labels.clone());
        let x_fmt = |x: &f64| label_at(&cl, *x);
        let y_fmt = |y: &f64| label_at(&rl, *y);
        let mut mesh = chart.configure_mesh();
        mesh.disable_mesh().label_style(font(12.0));
        if !cl.is_empty() {
            mesh.x_labels(cl.len() * 2 + 1).x_label_formatter(&x_fmt);
        }
        if !rl.is_empty() {
            mesh.y_labels(rl.len() * 2 + 1).y_label_formatter(&y_fmt);
        }
        mesh.draw().map_err(draw_err)?;
        let cells = (0..self.rows)
            .flat_map(|r| (0..self.cols).map(move |c| (r, c)))
            .map(|(r, c)| {
                let v = self.values[r * self.cols + c];
                let colour = if v.is_finite() {
                    viridis((v - lo) / (hi - lo))
                } else {
                    RGBColor(200, 200, 200)
                };
                Rectangle::new(
                    [(c as f64, r as f64), (c as f64 + 1.0, r as f64 + 1.0)],
                    colour.filled(),
                )
            });
        chart.draw_series(cells).map_err(draw_err)?;
        if self.colorbar {
            let mut cb = ChartBuilder::on(&bar)
                .margin_top(40)
                .margin_bottom(50)
                .margin_right(10)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..1f64, lo..hi)
                .map_err(draw_err)?;
            cb.configure_mesh()
                .disable_mesh()
                .disable_x_axis()
                .label_style(font(12.0))
                .y_labels(6)
                .draw()
                .map_err(draw_err)?;
            let steps = 100;
            cb.draw_series((0..steps).map(|i| {
                let a = lo + (hi - lo) * i as f64 / steps as f64;
                let b = lo + (hi - lo) * (i + 1) as f64 / steps as f64;
                Rectangle::new(
                    [(0.0, a), (1.0, b)],
                    viridis((i as f64 + 0.5) / steps as f64).filled(),
                )
            }))
            .map_err(draw_err)?;
        }
        Ok(())
    }
}
