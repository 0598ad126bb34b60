//! Learning curves of a training history: one panel per metric family
//! (train_loss and val_loss together, then accuracy, ..., the learning rate
//! last), epochs on x. Each panel is a [`Lines`] plot.

use plotters::prelude::*;

use super::{draw_err, font, Lines, Series};
use crate::error::{Error, Result};

const OP: &str = "plot_history";
/// Pixels per panel (width, height) and for the title, by default.
pub const PANEL: (u32, u32) = (400, 320);
const TITLE_HEIGHT: u32 = 40;

#[derive(Debug, Clone)]
pub struct Panel {
    /// "loss", "acc", "lr", ...
    pub family: String,
    pub lines: Lines,
}

#[derive(Debug, Clone)]
pub struct HistoryPlot {
    pub panels: Vec<Panel>,
    /// The epoch whose weights were kept, marked in every panel.
    pub best_epoch: Option<usize>,
}

/// The family of a metric and its series name within the family:
/// train_loss → (loss, train); val_acc → (acc, val); lr_d → (lr, d).
fn family(name: &str) -> (String, String) {
    for prefix in ["train_", "val_"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return (rest.to_string(), prefix.trim_end_matches('_').to_string());
        }
    }
    if let Some(group) = name.strip_prefix("lr_") {
        return ("lr".into(), group.to_string());
    }
    (name.to_string(), name.to_string())
}

fn family_rank(f: &str) -> (u8, String) {
    match f {
        "loss" => (0, String::new()),
        "lr" => (2, String::new()),
        other => (1, other.to_string()),
    }
}

impl HistoryPlot {
    /// From per-epoch series (epoch 1 first; NaN where an epoch has no
    /// value). Series without any finite value are left out.
    pub fn new(metrics: &[(String, Vec<f64>)], best_epoch: Option<usize>) -> Result<HistoryPlot> {
        let mut families: Vec<(String, Vec<Series>)> = Vec::new();
        for (name, values) in metrics {
            if !values.iter().any(|v| v.is_finite()) {
                continue;
            }
            let (fam, label) = family(name);
            let series = Series {
                name: label,
                x: (1..=values.len()).map(|e| e as f64).collect(),
                y: values.clone(),
            };
            match families.iter_mut().find(|(f, _)| *f == fam) {
                Some((_, s)) => s.push(series),
                None => families.push((fam, vec![series])),
            }
        }
        if families.is_empty() {
            return Err(Error::invalid(
                OP,
                "the history has no per-epoch metrics (arrays of numbers such as train_loss)",
            ));
        }
        families.sort_by_key(|(f, _)| family_rank(f));
        let panels = families
            .into_iter()
            .map(|(fam, mut series)| {
                // train before val, whatever order the map had.
                series.sort_by_key(|s| match s.name.as_str() {
                    "train" => 0,
                    "val" => 1,
                    _ => 2,
                });
                if series.len() == 1 && series[0].name == fam {
                    series[0].name.clear();
                }
                Ok(Panel {
                    lines: Lines::new(series, "epoch", "")?,
                    family: fam,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(HistoryPlot { panels, best_epoch })
    }

    /// Panels in a row up to three, then rows of three.
    pub fn grid(&self) -> (usize, usize) {
        let n = self.panels.len().max(1);
        let cols = n.min(3);
        (n.div_ceil(cols), cols)
    }

    /// The default figure size: [`PANEL`] per panel, plus room for a title.
    pub fn default_size(&self, titled: bool) -> (u32, u32) {
        let (rows, cols) = self.grid();
        (
            PANEL.0 * cols as u32,
            PANEL.1 * rows as u32 + if titled { TITLE_HEIGHT } else { 0 },
        )
    }

    pub fn families(&self) -> Vec<&str> {
        self.panels.iter().map(|p| p.family.as_str()).collect()
    }

    pub(super) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
    ) -> Result<()> {
        let area = if title.is_empty() {
            root.clone()
        } else {
            root.titled(title, font(22.0)).map_err(draw_err)?
        };
        let (rows, cols) = self.grid();
        let cells = area.split_evenly((rows, cols));
        for (panel, cell) in self.panels.iter().zip(cells.iter()) {
            let mut lines = panel.lines.clone();
            if let Some(best) = self.best_epoch.filter(|&b| b >= 1 && panel.family != "lr") {
                // The kept epoch: a vertical line across the panel's values.
                let range =
                    super::finite_range(lines.series.iter().flat_map(|s| s.y.iter().copied()));
                if let Some((lo, hi)) = range {
                    lines.series.push(Series {
                        name: format!("best (epoch {best})"),
                        x: vec![best as f64, best as f64],
                        y: vec![lo, hi],
                    });
                }
            }
            lines.draw(cell, &panel.family)?;
        }
        Ok(())
    }
}
