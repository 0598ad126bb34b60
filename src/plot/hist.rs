//! Histograms: one or several overlaid distributions (e.g. a permutation
//! null with the observed statistic marked).

use plotters::prelude::*;

use super::{draw_err, finite_range, font, num_text, series_colour};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Hist {
    /// (name, values)
    pub series: Vec<(String, Vec<f64>)>,
    pub bins: usize,
    pub density: bool,
    pub x_label: String,
    /// Vertical marker lines (e.g. the observed statistic).
    pub marks: Vec<f64>,
    /// Text beside each mark ("observed r = 0.52"); empty: the mark's value.
    pub mark_labels: Vec<String>,
}

impl Hist {
    pub fn new(series: Vec<(String, Vec<f64>)>, bins: usize) -> Result<Self> {
        if series.is_empty() || series.iter().all(|s| !s.1.iter().any(|v| v.is_finite())) {
            return Err(Error::invalid("plot_hist", "no finite values to draw"));
        }
        if !(1..=10_000).contains(&bins) {
            return Err(Error::BadOption {
                op: "plot_hist",
                key: "bins".into(),
                expected: "an integer in 1–10000".into(),
                got: bins.to_string(),
            });
        }
        Ok(Hist {
            series,
            bins,
            density: false,
            x_label: String::new(),
            marks: vec![],
            mark_labels: vec![],
        })
    }

    pub(super) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
    ) -> Result<()> {
        let (mut lo, mut hi) = finite_range(
            self.series
                .iter()
                .flat_map(|s| s.1.iter().copied())
                .chain(self.marks.iter().copied()),
        )
        .unwrap_or((0.0, 1.0));
        if hi <= lo {
            lo -= 0.5;
            hi += 0.5;
        }
        // Bins cover the data; the axis adds a margin so that a mark at the
        // extreme (an observed value beyond its whole null) stays inside.
        let (bin_lo, bin_hi) = (lo, hi);
        let pad = (hi - lo) * 0.04;
        if !self.marks.is_empty() {
            lo -= pad;
            hi += pad;
        }
        let width = (bin_hi - bin_lo) / self.bins as f64;
        let counts: Vec<Vec<f64>> = self
            .series
            .iter()
            .map(|(_, v)| {
                let mut c = vec![0.0; self.bins];
                let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
                for x in &finite {
                    let k = (((x - bin_lo) / width).floor().max(0.0) as usize).min(self.bins - 1);
                    c[k] += 1.0;
                }
                if self.density && !finite.is_empty() {
                    let total = finite.len() as f64 * width;
                    c.iter_mut().for_each(|v| *v /= total);
                }
                c
            })
            .collect();
        let top = counts.iter().flatten().copied().fold(0.0, f64::max) * 1.08;
        let top = if top > 0.0 { top } else { 1.0 };
        let mut chart = ChartBuilder::on(root)
            .caption(title, font(20.0))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(lo..hi, 0.0..top)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(if self.density { "density" } else { "count" })
            .y_label_formatter(&|v| num_text(*v))
            .x_label_formatter(&|v| num_text(*v))
            .label_style(font(13.0))
            .axis_desc_style(font(15.0))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.08))
            .draw()
            .map_err(draw_err)?;
        let ns = self.series.len();
        let alpha = if ns > 1 { 0.45 } else { 0.85 };
        for (si, c) in counts.iter().enumerate() {
            let colour = series_colour(si, ns);
            let ann = chart
                .draw_series(
                    c.iter()
                        .enumerate()
                        .filter(|(_, v)| **v > 0.0)
                        .map(|(k, &v)| {
                            let a = bin_lo + k as f64 * width;
                            Rectangle::new([(a, 0.0), (a + width, v)], colour.mix(alpha).filled())
                        }),
                )
                .map_err(draw_err)?;
            let name = &self.series[si].0;
            if !name.is_empty() {
                ann.label(name.as_str()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.mix(alpha).filled())
                });
            }
        }
        let mark_colour = RGBColor(200, 30, 30);
        let (aw, _) = chart.plotting_area().dim_in_pixel();
        let plot_right = chart.plotting_area().get_base_pixel().0 + aw as i32;
        let (rx, ry) = root.get_base_pixel();
        let label_font = font(13.0);
        for (k, &m) in self.marks.iter().enumerate() {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(m, 0.0), (m, top)],
                    mark_colour.stroke_width(2),
                )))
                .map_err(draw_err)?;
            let text = match self.mark_labels.get(k).filter(|l| !l.is_empty()) {
                Some(l) => l.clone(),
                None => num_text(m),
            };
            // Beside the line near the top, on the side with room for it.
            use plotters::style::text_anchor::{HPos, Pos, VPos};
            let (px, py) = chart.backend_coord(&(m, top));
            let tw = super::text_size(root, &text, &label_font).0 as i32;
            let right = px + 6 + tw <= plot_right - 4;
            let (px, py) = (px - rx, py - ry);
            let (x, anchor) = if right {
                (px + 6, HPos::Left)
            } else {
                (px - 6, HPos::Right)
            };
            root.draw(&Text::new(
                text,
                (x, py + 6 + 16 * k as i32),
                label_font
                    .clone()
                    .color(&mark_colour)
                    .pos(Pos::new(anchor, VPos::Top)),
            ))
            .map_err(draw_err)?;
        }
        if self.series.iter().any(|s| !s.0.is_empty()) {
            chart
                .configure_series_labels()
                .label_font(font(13.0))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .position(if self.marks.iter().any(|m| *m > lo + (hi - lo) * 0.6) {
                    SeriesLabelPosition::UpperLeft
                } else {
                    SeriesLabelPosition::UpperRight
                })
                .draw()
                .map_err(draw_err)?;
        }
        Ok(())
    }
}
