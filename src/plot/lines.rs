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
    /// Confidence bands: per series, (low, high) at each x.
    pub bands: Vec<Option<Vec<(f64, f64)>>>,
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
            bands: Vec::new(),
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

    /// Adds a confidence band (low, high per point) to series `name`.
    pub fn with_band(mut self, name: &str, band: Vec<(f64, f64)>) -> Result<Self> {
        let Some(k) = self.series.iter().position(|s| s.name == name) else {
            let names: Vec<&str> = self.series.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::invalid(
                "plot_lines",
                format!(
                    "ci names series '{name}', which is not one of {}",
                    names.join(", ")
                ),
            ));
        };
        if band.len() != self.series[k].y.len() {
            return Err(Error::shape(
                "plot_lines",
                format!("ci of series '{name}'"),
                format!("{} [low, high] pairs", self.series[k].y.len()),
                band.len().to_string(),
            ));
        }
        self.bands.resize(self.series.len(), None);
        self.bands[k] = Some(band);
        Ok(self)
    }

    /// Where the legend goes: the corner of the plot whose box (`legend_px`
    /// wide and high) covers the fewest data points (ties: upper right).
    fn legend_corner(
        &self,
        to_px: impl Fn(f64, f64) -> (i32, i32),
        plot: ((i32, i32), (i32, i32)),
        legend_px: (i32, i32),
    ) -> SeriesLabelPosition {
        let ((l, t), (r, b)) = plot;
        let (lw, lh) = (legend_px.0 + 20, legend_px.1 + 20);
        let corners = [
            (SeriesLabelPosition::UpperRight, (r - lw, t), (r, t + lh)),
            (SeriesLabelPosition::UpperLeft, (l, t), (l + lw, t + lh)),
            (SeriesLabelPosition::LowerRight, (r - lw, b - lh), (r, b)),
            (SeriesLabelPosition::LowerLeft, (l, b - lh), (l + lw, b)),
        ];
        let points: Vec<(i32, i32)> = self
            .series
            .iter()
            .flat_map(|s| s.x.iter().zip(&s.y))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(&x, &y)| to_px(x, y))
            .collect();
        // Line segments pass between points: sample them too.
        let mut samples = points.clone();
        for s in &self.series {
            for k in 1..s.x.len() {
                let (a, b) = ((s.x[k - 1], s.y[k - 1]), (s.x[k], s.y[k]));
                if [a.0, a.1, b.0, b.1].iter().all(|v| v.is_finite()) {
                    for f in 1..8 {
                        let f = f as f64 / 8.0;
                        samples.push(to_px(a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f));
                    }
                }
            }
        }
        let mut best = None;
        for (pos, lo, hi) in corners {
            let hidden = samples
                .iter()
                .filter(|p| p.0 >= lo.0 && p.0 <= hi.0 && p.1 >= lo.1 && p.1 <= hi.1)
                .count();
            if best.as_ref().is_none_or(|(n, _)| hidden < *n) {
                best = Some((hidden, pos));
            }
        }
        best.map_or(SeriesLabelPosition::UpperRight, |(_, p)| p)
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
        let band_values = self
            .bands
            .iter()
            .flatten()
            .flat_map(|b| b.iter().flat_map(|(lo, hi)| [*lo, *hi]));
        let (y0, y1) = super::padded_range(
            self.series
                .iter()
                .enumerate()
                .flat_map(|(k, s)| {
                    s.y.iter()
                        .enumerate()
                        .flat_map(move |(i, y)| [y - self.error(k, i), y + self.error(k, i)])
                })
                .chain(band_values),
            false,
        );
        // Whole-number x (epochs, trials, layers): ticks only at whole numbers.
        let integer_x = self
            .series
            .iter()
            .flat_map(|s| s.x.iter())
            .filter(|x| x.is_finite())
            .all(|x| x.fract() == 0.0);
        let x_ticks = if integer_x {
            ((x1 - x0).round() as usize + 1).clamp(2, 10)
        } else {
            10
        };
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
            .x_labels(x_ticks)
            .x_label_formatter(&|v| {
                if integer_x && (v - v.round()).abs() > 1e-9 {
                    String::new()
                } else {
                    super::num_text(*v)
                }
            })
            .y_label_formatter(&|v| super::num_text(*v))
            .label_style(font(13.0))
            .axis_desc_style(font(15.0))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(draw_err)?;
        for (i, band) in self.bands.iter().enumerate() {
            let (Some(band), Some(s)) = (band, self.series.get(i)) else {
                continue;
            };
            let colour = PALETTE[i % PALETTE.len()];
            let upper = s.x.iter().zip(band).map(|(x, b)| (*x, b.1));
            let lower = s.x.iter().zip(band).rev().map(|(x, b)| (*x, b.0));
            let outline: Vec<(f64, f64)> = upper
                .chain(lower)
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    colour.mix(0.2).filled(),
                )))
                .map_err(draw_err)?;
        }
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
            let legend_font = font(13.0);
            let legend_w = self
                .series
                .iter()
                .map(|s| super::text_size(root, &s.name, &legend_font).0)
                .max()
                .unwrap_or(0) as i32
                + 40;
            let legend_h = self.series.len() as i32 * 20 + 10;
            let area = chart.plotting_area();
            let (base, (pw, ph)) = (area.get_base_pixel(), area.dim_in_pixel());
            let plot = (base, (base.0 + pw as i32, base.1 + ph as i32));
            let corner = self.legend_corner(
                |x, y| chart.backend_coord(&(x, y)),
                plot,
                (legend_w, legend_h),
            );
            chart
                .configure_series_labels()
                .label_font(legend_font)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .position(corner)
                .draw()
                .map_err(draw_err)?;
        }
        Ok(())
    }
}
