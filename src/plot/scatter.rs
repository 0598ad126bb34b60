//! Scatter plots: predicted vs measured, tau vs layer depth, and so on.

use plotters::prelude::*;

use super::{draw_err, font, padded_range, PALETTE};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Scatter {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub x_label: String,
    pub y_label: String,
    /// "none", "identity" (y = x) or "fit" (least-squares line).
    pub line: String,
    pub point_size: u32,
}

impl Scatter {
    pub fn new(x: Vec<f64>, y: Vec<f64>) -> Result<Self> {
        if x.len() != y.len() {
            return Err(Error::shape(
                "plot_scatter",
                "x and y",
                format!("{} y values", x.len()),
                y.len().to_string(),
            ));
        }
        if x.is_empty() {
            return Err(Error::invalid("plot_scatter", "no points to draw"));
        }
        Ok(Scatter {
            x,
            y,
            x_label: String::new(),
            y_label: String::new(),
            line: "none".into(),
            point_size: 3,
        })
    }

    pub(super) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
    ) -> Result<()> {
        let pts: Vec<(f64, f64)> = self
            .x
            .iter()
            .copied()
            .zip(self.y.iter().copied())
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .collect();
        let (mut x0, mut x1) = padded_range(pts.iter().map(|p| p.0), false);
        let (mut y0, mut y1) = padded_range(pts.iter().map(|p| p.1), false);
        if self.line == "identity" {
            // Same range on both axes so y = x is the diagonal.
            let (lo, hi) = (x0.min(y0), x1.max(y1));
            (x0, x1, y0, y1) = (lo, hi, lo, hi);
        }
        let mut chart = ChartBuilder::on(root)
            .caption(title, font(20.0))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style(font(13.0))
            .axis_desc_style(font(15.0))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.08))
            .draw()
            .map_err(draw_err)?;
        let colour = PALETTE[0];
        chart
            .draw_series(
                pts.iter()
                    .map(|&p| Circle::new(p, self.point_size, colour.mix(0.7).filled())),
            )
            .map_err(draw_err)?;
        let line = match self.line.as_str() {
            "identity" => Some(vec![(x0, x0), (x1, x1)]),
            "fit" if pts.len() >= 2 => {
                let n = pts.len() as f64;
                let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
                let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
                let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
                let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
                (sxx > 0.0).then(|| {
                    let b = sxy / sxx;
                    let a = my - b * mx;
                    vec![(x0, a + b * x0), (x1, a + b * x1)]
                })
            }
            _ => None,
        };
        if let Some(l) = line {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    l,
                    PALETTE[3].stroke_width(2),
                )))
                .map_err(draw_err)?;
        }
        Ok(())
    }
}
