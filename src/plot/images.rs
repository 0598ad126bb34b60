//! Image grids: rows of images (e.g. stimuli above their reconstructions),
//! a title at the left of each row and a caption under each image.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{blit, draw_err, font, scale_nearest, text_size};
use crate::error::{Error, Result};

/// An RGB image, row-major, 3 bytes a pixel.
#[derive(Debug, Clone)]
pub struct Raster {
    pub w: usize,
    pub h: usize,
    pub rgb: Vec<u8>,
}

impl Raster {
    /// From C×H×W values in [0, 1] (C = 1 grey or 3 RGB); values outside are clipped.
    pub fn from_chw(values: &[f64], c: usize, h: usize, w: usize) -> Result<Raster> {
        if !(c == 1 || c == 3) || values.len() != c * h * w || h == 0 || w == 0 {
            return Err(Error::shape(
                "plot_images",
                "image",
                "1×H×W or 3×H×W values",
                format!("{c}×{h}×{w} with {} values", values.len()),
            ));
        }
        let mut rgb = vec![0u8; h * w * 3];
        for y in 0..h {
            for x in 0..w {
                for k in 0..3 {
                    let ch = if c == 1 { 0 } else { k };
                    let v = values[(ch * h + y) * w + x];
                    let v = if v.is_finite() {
                        v.clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    rgb[(y * w + x) * 3 + k] = (v * 255.0).round() as u8;
                }
            }
        }
        Ok(Raster { w, h, rgb })
    }
}

/// One raster per image of an N×C×H×W (or C×H×W) tensor, C = 1 or 3.
pub fn rasters(op: &'static str, t: &crate::tensor::Tensor) -> Result<Vec<Raster>> {
    let s = t.shape();
    let s4: Vec<usize> = match s.len() {
        3 => vec![1, s[0] as usize, s[1] as usize, s[2] as usize],
        4 => s.iter().map(|&x| x as usize).collect(),
        _ => {
            return Err(Error::shape(
                op,
                "images",
                "N×3×H×W (or 3×H×W)",
                crate::tensor::shape_text(&s),
            ))
        }
    };
    let vals = t.to_f64_vec(op)?;
    let per = s4[1] * s4[2] * s4[3];
    (0..s4[0])
        .map(|i| Raster::from_chw(&vals[i * per..(i + 1) * per], s4[1], s4[2], s4[3]))
        .collect()
}

/// Stimuli above their reconstructions: the true images in the first row,
/// each set of samples (N images, one per true image) in a row beneath, the
/// chosen `items` only (indices into the N), captions under the last row.
pub fn reconstruction_grid(
    op: &'static str,
    truth: &crate::tensor::Tensor,
    samples: &[crate::tensor::Tensor],
    items: &[usize],
    row_titles: &[String],
    captions: &[String],
) -> Result<ImageGrid> {
    let n = truth.shape().first().copied().unwrap_or(0) as usize;
    if samples.is_empty() {
        return Err(Error::invalid(op, "no reconstructions to draw"));
    }
    for (k, s) in samples.iter().enumerate() {
        let m = s.shape().first().copied().unwrap_or(0) as usize;
        if m != n || s.ndim() != 4 {
            return Err(Error::shape(
                op,
                format!("reconstructions (sample set {k})"),
                format!("{n} images, N×3×H×W (one per true image)"),
                crate::tensor::shape_text(&s.shape()),
            ));
        }
    }
    if let Some(&bad) = items.iter().find(|&&i| i >= n) {
        return Err(Error::invalid(
            op,
            format!("items: index {bad} is out of range for {n} images"),
        ));
    }
    if !captions.is_empty() && captions.len() != n {
        return Err(Error::shape(
            op,
            "captions",
            format!("{n} (one per true image)"),
            captions.len().to_string(),
        ));
    }
    let rows_n = samples.len() + 1;
    if !row_titles.is_empty() && row_titles.len() != rows_n {
        return Err(Error::shape(
            op,
            "row_titles",
            format!("{rows_n} titles (truth and each sample row)"),
            row_titles.len().to_string(),
        ));
    }
    let pick = |t: &crate::tensor::Tensor| -> Result<Vec<Raster>> {
        let all = rasters(op, t)?;
        Ok(items.iter().map(|&i| all[i].clone()).collect())
    };
    let mut rows = Vec::with_capacity(rows_n);
    let title = |i: usize| -> String {
        if let Some(t) = row_titles.get(i) {
            t.clone()
        } else if i == 0 {
            "seen".into()
        } else if samples.len() == 1 {
            "reconstructed".into()
        } else {
            format!("sample {i}")
        }
    };
    rows.push(ImageRow {
        title: title(0),
        images: pick(truth)?,
        captions: Vec::new(),
    });
    for (k, s) in samples.iter().enumerate() {
        rows.push(ImageRow {
            title: title(k + 1),
            images: pick(s)?,
            captions: Vec::new(),
        });
    }
    if !captions.is_empty() {
        if let Some(last) = rows.last_mut() {
            last.captions = items.iter().map(|&i| captions[i].clone()).collect();
        }
    }
    ImageGrid::new(rows)
}

#[derive(Debug, Clone)]
pub struct ImageRow {
    pub title: String,
    pub images: Vec<Raster>,
    /// One caption per image, or empty.
    pub captions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ImageGrid {
    pub rows: Vec<ImageRow>,
}

/// Greedy word wrap to `max_w` pixels, at most `max_lines` lines (the last
/// one ends with "…" when text is left over).
fn wrap<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
    f: &FontDesc,
    max_w: u32,
    max_lines: usize,
) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let trial = if cur.is_empty() {
            word.to_string()
        } else {
            format!("{cur} {word}")
        };
        if text_size(area, &trial, f).0 <= max_w || cur.is_empty() {
            cur = trial;
        } else {
            lines.push(std::mem::take(&mut cur));
            cur = word.to_string();
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            while !last.is_empty() && text_size(area, &format!("{last}…"), f).0 > max_w {
                last.pop();
            }
            last.push('…');
        }
    }
    lines
}

impl ImageGrid {
    pub fn new(rows: Vec<ImageRow>) -> Result<Self> {
        if rows.is_empty() || rows.iter().all(|r| r.images.is_empty()) {
            return Err(Error::invalid("plot_images", "no images to draw"));
        }
        for r in &rows {
            if !r.captions.is_empty() && r.captions.len() != r.images.len() {
                return Err(Error::shape(
                    "plot_images",
                    format!("captions of row '{}'", r.title),
                    format!("{} (one per image)", r.images.len()),
                    r.captions.len().to_string(),
                ));
            }
        }
        Ok(ImageGrid { rows })
    }

    pub(super) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
    ) -> Result<()> {
        let (w, h) = root.dim_in_pixel();
        let title_font = font(20.0);
        let row_font = font(14.0);
        let cap_font = font(11.0);
        let ncols = self.rows.iter().map(|r| r.images.len()).max().unwrap_or(1);
        let nrows = self.rows.len();
        let top = if title.is_empty() { 8 } else { 38 };
        let left = self
            .rows
            .iter()
            .map(|r| text_size(root, &r.title, &row_font).0)
            .max()
            .unwrap_or(0);
        let left = if left > 0 { left + 16 } else { 8 };
        let gap = 8u32;
        let cap_lines = 3usize;
        let line_h = 13u32;
        let cap_h = |r: &ImageRow| {
            if r.captions.iter().any(|c| !c.is_empty()) {
                cap_lines as u32 * line_h + 4
            } else {
                0
            }
        };
        let caps_total: u32 = self.rows.iter().map(cap_h).sum();
        // Square cells sized to fit both directions (images keep their aspect inside).
        let cell_w = (w.saturating_sub(left + 8 + gap * (ncols as u32 - 1)) / ncols as u32).max(8);
        let cell_h = (h.saturating_sub(top + 8 + caps_total + gap * (nrows as u32 - 1))
            / nrows as u32)
            .max(8);
        let cell = cell_w.min(cell_h);
        let grid_w = cell * ncols as u32 + gap * (ncols as u32 - 1);
        let x_start = left + (w.saturating_sub(left + 8 + grid_w)) / 2;
        if !title.is_empty() {
            root.draw(&Text::new(
                title.to_string(),
                ((x_start + grid_w / 2) as i32, 10),
                title_font
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(draw_err)?;
        }
        // Centre the grid vertically.
        let grid_h = cell * nrows as u32 + caps_total + gap * (nrows as u32 - 1);
        let mut y = top + h.saturating_sub(top + 8 + grid_h) / 2;
        for r in &self.rows {
            for (ci, img) in r.images.iter().enumerate() {
                let x = x_start + ci as u32 * (cell + gap);
                // Fit the image in the cell keeping its aspect ratio.
                let s = (cell as f64 / img.w as f64).min(cell as f64 / img.h as f64);
                let (tw, th) = (
                    ((img.w as f64 * s).round() as usize).max(1),
                    ((img.h as f64 * s).round() as usize).max(1),
                );
                let ox = x + (cell - tw as u32) / 2;
                let oy = y + (cell - th as u32) / 2;
                blit(
                    root,
                    (ox as i32, oy as i32),
                    (tw as u32, th as u32),
                    scale_nearest(&img.rgb, img.w, img.h, tw, th),
                )?;
                if let Some(c) = r.captions.get(ci) {
                    for (k, line) in wrap(root, c, &cap_font, cell, cap_lines)
                        .into_iter()
                        .enumerate()
                    {
                        root.draw(&Text::new(
                            line,
                            (
                                (x + cell / 2) as i32,
                                (y + cell + 3 + k as u32 * line_h) as i32,
                            ),
                            cap_font
                                .clone()
                                .color(&BLACK)
                                .pos(Pos::new(HPos::Center, VPos::Top)),
                        ))
                        .map_err(draw_err)?;
                    }
                }
            }
            if !r.title.is_empty() {
                root.draw(&Text::new(
                    r.title.clone(),
                    ((x_start - 10) as i32, (y + cell / 2) as i32),
                    row_font
                        .clone()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Right, VPos::Center)),
                ))
                .map_err(draw_err)?;
            }
            y += cell + cap_h(r) + gap;
        }
        Ok(())
    }
}
