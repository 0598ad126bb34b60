//! Line plots: learning curves, per-layer scores.

use plotters::prelude::*;

use super::{draw_err, font, PALETTE};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct Lines {
    pub series: Vec<Series>,
    pub x_label: String,
    pub y_label: String,
    /// Half-length of an error bar at each point, per series (none: no bars).
    pub errors: Vec<Option<Vec<f64>>>,
}

impl Lines {
    pub fn new(series: Vec<Series>, x_label: &str, y_label: &str) -> Result<Self> {
        const OP: &str = "plot_lines";
        if series.is_empty() {
            return Err(Error::invalid(OP, "no series to draw"));
        }
        for s in &series {
            if s.x.len() != s.y.len() {
                return Err(Error::shape(
                    OP,
                    format!("series '{}'", s.name),
                    format!("{} x values", s.y.len()),
                    s.x.len().to_string(),
                ));
            }
            if s.y.is_empty() {
                return Err(Error::invalid(OP, format!("series '{}' is empty", s.name)));
            }
        }
        Ok(Lines {
            series,
            x_label: x_label.into(),
            y_label: y_label.into(),
            errors: Vec::new(),
        })
    }

    /// Error bars (± half-length per point) for each series, e.g. a
    /// confidence interval of a mean over seeds.
    pub fn with_errors(mut self, errors: Vec<Option<Vec<f64>>>) -> Result<Self> {
        for (s, e) in self.series.iter().zip(&errors) {
            if let Some(e) = e {
                if e.len() != s.y.len() {
                    return Err(Error::shape(
                        "plot",
                        format!("error bars of series '{}'", s.name),
                        format!("{} values", s.y.len()),
                        e.len().to_string(),
                    ));
                }
            }
        }
        self.errors = errors;
        Ok(self)
    }

    fn error(&self, series: usize, i: usize) -> f64 {
        self.errors
            .get(series)
            .and_then(|e| e.as_ref())
            .and_then(|e| e.get(i).copied())
            .filter(|e| e.is_finite())
            .map_or(0.0, f64::abs)
    }

    pub(super) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
    ) -> Result<()> {
        let (x0, x1) =
            super::padded_range(self.series.iter().flat_map(|s| s.x.iter().copied()), false);
        let (y0, y1) = super::padded_range(
            self.series.iter().enumerate().flat_map(|(k, s)| {
                s.y.iter()
                    .enumerate()
                    .flat_map(move |(i, y)| [y - self.error(k, i), y + self.error(k, i)])
            }),
            false,
        );
        let mut chart = ChartBuilder::on(root)
            .caption(title, font(20.0))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style(font(13.0))
            .axis_desc_style(font(15.0))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(draw_err)?;
        for (i, s) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let points: Vec<(f64, f64)> =
                s.x.iter()
                    .copied()
                    .zip(s.y.iter().copied())
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(draw_err)?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(draw_err)?;
            if self.errors.get(i).is_some_and(Option::is_some) {
                let bars: Vec<(f64, f64, f64)> =
                    s.x.iter()
                        .zip(&s.y)
                        .enumerate()
                        .map(|(j, (x, y))| (*x, *y, self.error(i, j)))
                        .filter(|(x, y, e)| x.is_finite() && y.is_finite() && *e > 0.0)
                        .collect();
                // Caps 1 % of the x range to each side.
                let cap = (x1 - x0) * 0.01;
                chart
                    .draw_series(bars.into_iter().flat_map(|(x, y, e)| {
                        [
                            PathElement::new(vec![(x, y - e), (x, y + e)], colour.stroke_width(1)),
                            PathElement::new(
                                vec![(x - cap, y - e), (x + cap, y - e)],
                                colour.stroke_width(1),
                            ),
                            PathElement::new(
                                vec![(x - cap, y + e), (x + cap, y + e)],
                                colour.stroke_width(1),
                            ),
                        ]
                    }))
                    .map_err(draw_err)?;
            }
        }
        if self.series.len() > 1 || !self.series[0].name.is_empty() {
            chart
                .configure_series_labels()
                .label_font(font(13.0))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(draw_err)?;
        }
        Ok(())
    }
}
