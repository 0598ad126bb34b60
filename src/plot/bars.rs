//! Grouped bar charts with error bars and significance stars: e.g. Kendall
//! tau per network layer (groups on the x axis) for each ROI (a coloured
//! series), starred where the FDR q-value is below alpha (the BNU figure).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{draw_err, font, padded_range, series_colour, text_size};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct BarSeries {
    pub name: String,
    /// One value per group.
    pub values: Vec<f64>,
    /// Half-length of the error bar per group.
    pub errors: Option<Vec<f64>>,
    /// Text drawn over each bar ("*", "**", "" for none).
    pub marks: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Bars {
    /// Names of the groups along the x axis.
    pub groups: Vec<String>,
    pub series: Vec<BarSeries>,
    pub x_label: String,
    pub y_label: String,
    /// A line under the legend explaining the marks.
    pub note: String,
}

/// Stars for a q-value: * q < alpha, ** q < alpha/5, *** q < alpha/50
/// (0.05, 0.01, 0.001 at the default alpha).
pub fn stars(q: f64, alpha: f64) -> String {
    if !(q < alpha) {
        String::new()
    } else if q < alpha / 50.0 {
        "***".into()
    } else if q < alpha / 5.0 {
        "**".into()
    } else {
        "*".into()
    }
}

/// A significance mark as the lines it is drawn in: on one line when it is
/// narrower than its bar, else one symbol a line, stacked above the bar, so
/// marks of neighbouring bars can never run into each other.
pub fn mark_lines(mark: &str, bar_px: u32, width_of: impl Fn(&str) -> u32) -> Vec<String> {
    if mark.is_empty() {
        return Vec::new();
    }
    if width_of(mark) + 2 <= bar_px {
        vec![mark.to_string()]
    } else {
        mark.chars().map(|c| c.to_string()).collect()
    }
}

/// `text` shortened with an ellipsis to at most `max_px` wide.
pub(crate) fn fit_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
    f: &FontDesc,
    max_px: u32,
) -> String {
    if text_size(area, text, f).0 <= max_px {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let t: String = chars.iter().collect::<String>() + "…";
        if text_size(area, &t, f).0 <= max_px {
            return t;
        }
    }
    "…".to_string()
}

impl Bars {
    pub fn new(groups: Vec<String>, series: Vec<BarSeries>) -> Result<Self> {
        const OP: &str = "plot_bars";
        if series.is_empty() || groups.is_empty() {
            return Err(Error::invalid(OP, "no bars to draw"));
        }
        for s in &series {
            let g = groups.len();
            let bad = s.values.len() != g
                || s.errors.as_ref().is_some_and(|e| e.len() != g)
                || s.marks.len() != g;
            if bad {
                return Err(Error::shape(
                    OP,
                    format!("series '{}'", s.name),
                    format!("{g} values (one per group), and as many errors/marks"),
                    format!(
                        "{} values, {} errors, {} marks",
                        s.values.len(),
                        s.errors.as_ref().map_or(0, |e| e.len()),
                        s.marks.len()
                    ),
                ));
            }
        }
        Ok(Bars {
            groups,
            series,
            x_label: String::new(),
            y_label: String::new(),
            note: String::new(),
        })
    }

    /// Head room for marks: stacked marks of narrow bars need more.
    fn mark_lines_max(&self) -> usize {
        self.series
            .iter()
            .flat_map(|s| s.marks.iter())
            .map(|m| m.chars().count())
            .max()
            .unwrap_or(0)
    }

    /// Bars too narrow for "**"/"***" side by side: marks are stacked.
    fn narrow(&self, plot_w: f64) -> bool {
        0.8 / self.series.len() as f64 * plot_w / (self.groups.len() as f64) < 16.0
    }

    pub(super) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
    ) -> Result<()> {
        let ns = self.series.len();
        let ng = self.groups.len();
        let legend_font = font(12.0);
        let tick_font = font(12.0);
        let named = ns > 1 || !self.series[0].name.is_empty();
        let (w, _) = root.dim_in_pixel();
        // The legend is as wide as its names and the note lines it shows
        // (narrow bars show the note's first line only).
        let legend_w = if named {
            let names_w = self
                .series
                .iter()
                .map(|s| text_size(root, &s.name, &legend_font).0)
                .max()
                .unwrap_or(0)
                + 40;
            let narrow = self.narrow(w.saturating_sub(names_w + 90) as f64);
            let note_w = self
                .note
                .lines()
                .take(if narrow { 1 } else { usize::MAX })
                .map(|l| text_size(root, l, &font(11.0)).0 + 16)
                .max()
                .unwrap_or(0);
            names_w.max(note_w)
        } else {
            0
        };
        let (main, legend) = root.split_horizontally(w.saturating_sub(legend_w));
        // Extent of bars, error bars and room for the marks.
        let tops = self.series.iter().flat_map(|s| {
            s.values.iter().enumerate().flat_map(move |(g, v)| {
                let e = s.errors.as_ref().map_or(0.0, |e| e[g].abs());
                let e = if e.is_finite() { e } else { 0.0 };
                [v + e, v - e]
            })
        });
        let (mut y0, mut y1) = padded_range(tops, true);
        let has_marks = self
            .series
            .iter()
            .any(|s| s.marks.iter().any(|m| !m.is_empty()));
        if has_marks {
            let span = y1 - y0;
            // Room for a mark stacked one symbol a line when the bars are narrow.
            let (_, fig_h) = root.dim_in_pixel();
            let stacked = self.narrow((w.saturating_sub(legend_w + 90)) as f64);
            let rows = if stacked {
                self.mark_lines_max().max(1)
            } else {
                1
            };
            let share = ((rows as f64 * 10.0 + 6.0) / fig_h.max(100) as f64).max(0.06);
            if y1 > 0.0 {
                y1 += span * share;
            }
            if y0 < 0.0 {
                y0 -= span * share;
            }
        }
        let longest = self
            .groups
            .iter()
            .map(|g| text_size(root, g, &tick_font).0)
            .max()
            .unwrap_or(0);
        let plot_w = (w.saturating_sub(legend_w + 90)) as f64;
        let vertical = (longest + 6) as f64 > plot_w / ng as f64;
        // Rotated labels may take at most 40 % of the height; longer ones are
        // shortened with an ellipsis rather than cut off at the edge.
        let (_, h) = root.dim_in_pixel();
        let max_label = if vertical {
            (h as f64 * 0.4) as u32
        } else {
            (plot_w / ng as f64) as u32
        };
        let group_labels: Vec<String> = self
            .groups
            .iter()
            .map(|g| fit_text(root, g, &tick_font, max_label))
            .collect();
        let longest = group_labels
            .iter()
            .map(|g| text_size(root, g, &tick_font).0)
            .max()
            .unwrap_or(0);
        let x_area =
            if vertical { longest + 16 } else { 24 } + if self.x_label.is_empty() { 0 } else { 22 };
        let mut chart = ChartBuilder::on(&main)
            .caption(title, font(20.0))
            .margin(12)
            .x_label_area_size(x_area)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..ng as f64, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_desc(self.y_label.as_str())
            .y_label_formatter(&|v| super::num_text(*v))
            .y_labels(((h as f64 - x_area as f64 - 60.0) / 32.0).clamp(3.0, 10.0) as usize)
            .label_style(tick_font.clone())
            .axis_desc_style(font(15.0))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.08))
            .draw()
            .map_err(draw_err)?;
        let group_w = 0.8;
        let bw = group_w / ns as f64;
        for (si, s) in self.series.iter().enumerate() {
            let colour = series_colour(si, ns);
            let rects = s
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(g, &v)| {
                    let x = g as f64 + (1.0 - group_w) / 2.0 + si as f64 * bw;
                    Rectangle::new([(x, 0.0), (x + bw, v)], colour.filled())
                });
            chart.draw_series(rects).map_err(draw_err)?;
        }
        // Error bars and marks over the bars.
        let area = chart.plotting_area();
        let narrow = self.narrow(plot_w);
        let mark_font = font(if narrow { 11.0 } else { 12.0 });
        for (si, s) in self.series.iter().enumerate() {
            for (g, &v) in s.values.iter().enumerate() {
                if !v.is_finite() {
                    continue;
                }
                let xc = g as f64 + (1.0 - group_w) / 2.0 + (si as f64 + 0.5) * bw;
                let e = s.errors.as_ref().map_or(0.0, |e| e[g].abs());
                let e = if e.is_finite() { e } else { 0.0 };
                if e > 0.0 {
                    let cap = bw * 0.3;
                    let style = BLACK.stroke_width(1);
                    area.draw(&PathElement::new(vec![(xc, v - e), (xc, v + e)], style))
                        .map_err(draw_err)?;
                    for y in [v - e, v + e] {
                        area.draw(&PathElement::new(vec![(xc - cap, y), (xc + cap, y)], style))
                            .map_err(draw_err)?;
                    }
                }
                let m = &s.marks[g];
                if !m.is_empty() {
                    let up = v >= 0.0;
                    let y = if up { v + e } else { v - e };
                    let (px, py) = chart.backend_coord(&(xc, y));
                    let (mx, my) = main.get_base_pixel();
                    let (px, py) = (px - mx, py - my);
                    let pos = if up {
                        Pos::new(HPos::Center, VPos::Bottom)
                    } else {
                        Pos::new(HPos::Center, VPos::Top)
                    };
                    // Narrow bars get one star (significant at alpha); the
                    // legend note says which convention is in use.
                    let (bar_px, _) = chart.backend_coord(&(xc + bw / 2.0, y));
                    let bar_px = ((bar_px - (px + mx)) * 2).max(1) as u32;
                    let lines = mark_lines(m, bar_px, |t| text_size(root, t, &mark_font).0);
                    let lines: Vec<String> = if up {
                        lines.into_iter().rev().collect()
                    } else {
                        lines
                    };
                    for (k, line) in lines.iter().enumerate() {
                        let dy = 9 * k as i32;
                        let yy = if up { py - 1 - dy } else { py + 1 + dy };
                        main.draw(&Text::new(
                            line.to_string(),
                            (px, yy),
                            mark_font.clone().color(&BLACK).pos(pos),
                        ))
                        .map_err(draw_err)?;
                    }
                }
            }
        }
        // Zero line.
        if y0 < 0.0 && y1 > 0.0 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, 0.0), (ng as f64, 0.0)],
                    BLACK.stroke_width(1),
                )))
                .map_err(draw_err)?;
        }
        // Group labels centred under each group.
        let base = chart.plotting_area().get_base_pixel();
        let (_, ph) = chart.plotting_area().dim_in_pixel();
        for (g, name) in group_labels.iter().enumerate() {
            let (px, _) = chart.backend_coord(&(g as f64 + 0.5, y0));
            let y = base.1 + ph as i32 + 6;
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
            let (mx, my) = main.get_base_pixel();
            main.draw(&Text::new(name.clone(), (px - mx, y - my), style))
                .map_err(draw_err)?;
        }
        if !self.x_label.is_empty() {
            let (_, mh) = main.dim_in_pixel();
            let (px, _) = chart.backend_coord(&(ng as f64 / 2.0, y0));
            main.draw(&Text::new(
                self.x_label.clone(),
                (px - main.get_base_pixel().0, mh as i32 - 8),
                font(15.0)
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            ))
            .map_err(draw_err)?;
        }
        if named {
            let top = if title.is_empty() { 16 } else { 46 };
            for (si, s) in self.series.iter().enumerate() {
                let y = top + si as i32 * 17;
                legend
                    .draw(&Rectangle::new(
                        [(4, y), (18, y + 11)],
                        series_colour(si, ns).filled(),
                    ))
                    .map_err(draw_err)?;
                legend
                    .draw(&Text::new(
                        s.name.clone(),
                        (24, y + 6),
                        legend_font
                            .clone()
                            .color(&BLACK)
                            .pos(Pos::new(HPos::Left, VPos::Center)),
                    ))
                    .map_err(draw_err)?;
            }
            if !self.note.is_empty() {
                let y = top + ns as i32 * 17 + 8;
                let note = if self.narrow(plot_w) {
                    self.note.lines().next().unwrap_or_default().to_string()
                } else {
                    self.note.clone()
                };
                for (k, line) in note.lines().enumerate() {
                    legend
                        .draw(&Text::new(
                            line.to_string(),
                            (4, y + 14 * k as i32),
                            font(11.0)
                                .color(&BLACK)
                                .pos(Pos::new(HPos::Left, VPos::Top)),
                        ))
                        .map_err(draw_err)?;
                }
            }
        }
        Ok(())
    }
}
