//! Box plots with the p-value of a test drawn over chosen pairs of boxes
//! (the BNU figure: softmax outputs of two image groups, paired t-test).
//!
//! Box: quartiles (numpy's linear percentiles) with the median; whiskers to
//! the furthest observation within 1.5·IQR of the box (Tukey); observations
//! beyond are drawn as open circles. The observations themselves are drawn
//! faintly with a deterministic horizontal jitter.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{draw_err, font, padded_range, series_colour, text_size};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct BoxGroup {
    pub name: String,
    pub values: Vec<f64>,
}

/// A bracket between boxes `a` and `b` labelled with `text` (e.g. "p = 0.003").
#[derive(Debug, Clone)]
pub struct BoxPair {
    pub a: usize,
    pub b: usize,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct BoxPlot {
    pub groups: Vec<BoxGroup>,
    pub pairs: Vec<BoxPair>,
    pub y_label: String,
    pub points: bool,
}

/// numpy.percentile with linear interpolation, on sorted data.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let pos = q / 100.0 * (n - 1) as f64;
    let i = pos.floor() as usize;
    let f = pos - i as f64;
    if i + 1 < n {
        sorted[i] + (sorted[i + 1] - sorted[i]) * f
    } else {
        sorted[n - 1]
    }
}

/// Box statistics: (whisker low, q1, median, q3, whisker high, outliers).
pub fn box_stats(values: &[f64]) -> Option<(f64, f64, f64, f64, f64, Vec<f64>)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let (q1, med, q3) = (
        percentile(&v, 25.0),
        percentile(&v, 50.0),
        percentile(&v, 75.0),
    );
    let iqr = q3 - q1;
    let (lo_fence, hi_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let lo = v.iter().copied().find(|&x| x >= lo_fence).unwrap_or(q1);
    let hi = v
        .iter()
        .rev()
        .copied()
        .find(|&x| x <= hi_fence)
        .unwrap_or(q3);
    let out = v.iter().copied().filter(|&x| x < lo || x > hi).collect();
    Some((lo.min(q1), q1, med, q3, hi.max(q3), out))
}

/// Deterministic jitter in [-1, 1] for observation i of group g.
fn jitter(g: usize, i: usize) -> f64 {
    let mut z = (g as u64) << 32 ^ i as u64;
    z = (z ^ (z >> 30))
        .wrapping_mul(0xBF58476D1CE4E5B9)
        .wrapping_add(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

impl BoxPlot {
    pub fn new(groups: Vec<BoxGroup>, pairs: Vec<BoxPair>) -> Result<Self> {
        const OP: &str = "plot_box";
        if groups.is_empty() {
            return Err(Error::invalid(OP, "no groups to draw"));
        }
        for g in &groups {
            if !g.values.iter().any(|v| v.is_finite()) {
                return Err(Error::invalid(
                    OP,
                    format!("group '{}' has no finite values", g.name),
                ));
            }
        }
        for p in &pairs {
            if p.a >= groups.len() || p.b >= groups.len() || p.a == p.b {
                return Err(Error::invalid(OP, "a pair must name two different groups"));
            }
        }
        Ok(BoxPlot {
            groups,
            pairs,
            y_label: String::new(),
            points: true,
        })
    }

    pub(super) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
    ) -> Result<()> {
        let ng = self.groups.len();
        let (mut y0, mut y1) = padded_range(
            self.groups.iter().flat_map(|g| g.values.iter().copied()),
            false,
        );
        let span = y1 - y0;
        // One bracket level per pair, stacked above the data.
        let level_h = span * 0.11;
        let data_top = y1;
        y1 += level_h * self.pairs.len() as f64
            + if self.pairs.is_empty() {
                0.0
            } else {
                span * 0.02
            };
        y0 -= 0.0;
        let mut chart = ChartBuilder::on(root)
            .caption(title, font(20.0))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..ng as f64, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(self.y_label.as_str())
            .label_style(font(13.0))
            .axis_desc_style(font(15.0))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.08))
            .draw()
            .map_err(draw_err)?;
        let half = 0.3;
        for (gi, g) in self.groups.iter().enumerate() {
            let colour = series_colour(gi, ng);
            let Some((lo, q1, med, q3, hi, out)) = box_stats(&g.values) else {
                continue;
            };
            let xc = gi as f64 + 0.5;
            let line = BLACK.stroke_width(1);
            let area = chart.plotting_area();
            area.draw(&Rectangle::new(
                [(xc - half, q1), (xc + half, q3)],
                colour.mix(0.35).filled(),
            ))
            .map_err(draw_err)?;
            area.draw(&Rectangle::new(
                [(xc - half, q1), (xc + half, q3)],
                colour.stroke_width(2),
            ))
            .map_err(draw_err)?;
            area.draw(&PathElement::new(
                vec![(xc - half, med), (xc + half, med)],
                BLACK.stroke_width(2),
            ))
            .map_err(draw_err)?;
            for (a, b) in [(lo, q1), (q3, hi)] {
                area.draw(&PathElement::new(vec![(xc, a), (xc, b)], line))
                    .map_err(draw_err)?;
            }
            for y in [lo, hi] {
                area.draw(&PathElement::new(
                    vec![(xc - half * 0.4, y), (xc + half * 0.4, y)],
                    line,
                ))
                .map_err(draw_err)?;
            }
            if self.points {
                let pts = g.values.iter().enumerate().filter(|(_, v)| v.is_finite());
                for (i, &v) in pts {
                    let x = xc + jitter(gi, i) * half * 0.6;
                    area.draw(&Circle::new((x, v), 2, colour.mix(0.45).filled()))
                        .map_err(draw_err)?;
                }
            }
            for v in out {
                area.draw(&Circle::new((xc, v), 4, BLACK.stroke_width(1)))
                    .map_err(draw_err)?;
            }
            // Group name under the box.
            let (px, py) = chart.backend_coord(&(xc, y0));
            let (bx, by) = root.get_base_pixel();
            root.draw(&Text::new(
                g.name.clone(),
                (px - bx, py - by + 8),
                font(14.0)
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(draw_err)?;
        }
        // Brackets: shorter spans lower.
        let mut order: Vec<usize> = (0..self.pairs.len()).collect();
        order.sort_by_key(|&k| {
            let p = &self.pairs[k];
            (p.a.abs_diff(p.b), p.a.min(p.b))
        });
        let text_font = font(13.0);
        for (level, &k) in order.iter().enumerate() {
            let p = &self.pairs[k];
            let (xa, xb) = (p.a.min(p.b) as f64 + 0.5, p.a.max(p.b) as f64 + 0.5);
            let y = data_top + level_h * (level as f64 + 0.25);
            let tick = level_h * 0.18;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(xa, y - tick), (xa, y), (xb, y), (xb, y - tick)],
                    BLACK.stroke_width(1),
                )))
                .map_err(draw_err)?;
            let (px, py) = chart.backend_coord(&((xa + xb) / 2.0, y));
            let (bx, by) = root.get_base_pixel();
            let _ = text_size(root, &p.text, &text_font);
            root.draw(&Text::new(
                p.text.clone(),
                (px - bx, py - by - 3),
                text_font
                    .clone()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            ))
            .map_err(draw_err)?;
        }
        Ok(())
    }
}
