//! Brain slices: three orthogonal cuts (sagittal, coronal, axial) through a
//! background volume, with a thresholded statistical overlay and a colour
//! bar, in world (mm) coordinates so that volumes on different grids (a 1 mm
//! template under a 3 mm statistical map) line up through their affines.
//!
//! Neurological convention, as nilearn: left hemisphere on the left of the
//! coronal and axial views, anterior to the right in the sagittal view.
//! Both volumes are sampled by trilinear interpolation at the pixels' world
//! positions.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::heatmap::nice_ticks;
use super::{blit, draw_err, font, num_text, text_size, Colormap};
use crate::error::{Error, Result};

/// A 3-D scalar volume: values x·y·z in C order and its voxel → world affine.
#[derive(Debug, Clone)]
pub struct Slab {
    pub dims: [usize; 3],
    pub values: Vec<f32>,
    pub affine: [[f64; 4]; 4],
}

/// Voxel ↔ world: the one 4×4 inverse (src/data/volume.rs), refusing
/// nearly singular affines as the slicer needs.
fn invert(a: &[[f64; 4]; 4]) -> Option<[[f64; 4]; 4]> {
    let det3 = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
        - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    if det3.abs() < 1e-12 || !det3.is_finite() {
        return None;
    }
    crate::data::volume::invert_affine(a)
}

fn apply(a: &[[f64; 4]; 4], p: [f64; 3]) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (r, o) in out.iter_mut().enumerate() {
        *o = a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3];
    }
    out
}

impl Slab {
    pub fn new(
        op: &'static str,
        dims: [usize; 3],
        values: Vec<f32>,
        affine: [[f64; 4]; 4],
    ) -> Result<Self> {
        if values.len() != dims.iter().product::<usize>() || dims.contains(&0) {
            return Err(Error::invalid(
                op,
                "volume data does not match its dimensions",
            ));
        }
        if invert(&affine).is_none() {
            return Err(Error::invalid(op, "the volume's affine is not invertible"));
        }
        Ok(Slab {
            dims,
            values,
            affine,
        })
    }

    fn at(&self, i: usize, j: usize, k: usize) -> f32 {
        self.values[(i * self.dims[1] + j) * self.dims[2] + k]
    }

    /// Value of the voxel nearest to fractional voxel coordinates; NaN outside.
    fn sample_nearest(&self, v: [f64; 3]) -> f64 {
        let mut idx = [0usize; 3];
        for a in 0..3 {
            if !(v[a] > -0.5 && v[a] < self.dims[a] as f64 - 0.5) {
                return f64::NAN;
            }
            idx[a] = (v[a].round().max(0.0) as usize).min(self.dims[a] - 1);
        }
        self.at(idx[0], idx[1], idx[2]) as f64
    }

    /// Trilinear value at fractional voxel coordinates; NaN outside.
    fn sample(&self, v: [f64; 3]) -> f64 {
        let mut base = [0usize; 3];
        let mut frac = [0.0f64; 3];
        for a in 0..3 {
            let n = self.dims[a];
            if !(v[a] > -0.5 && v[a] < n as f64 - 0.5) {
                return f64::NAN;
            }
            let c = v[a].clamp(0.0, (n - 1) as f64);
            let b = (c.floor() as usize).min(n.saturating_sub(2));
            base[a] = b;
            frac[a] = if n == 1 { 0.0 } else { c - b as f64 };
        }
        let mut acc = 0.0;
        for corner in 0..8 {
            let mut w = 1.0;
            let mut idx = [0usize; 3];
            for a in 0..3 {
                let hi = (corner >> a) & 1 == 1;
                let n = self.dims[a];
                idx[a] = if hi {
                    (base[a] + 1).min(n - 1)
                } else {
                    base[a]
                };
                w *= if hi { frac[a] } else { 1.0 - frac[a] };
            }
            if w > 0.0 {
                acc += w * self.at(idx[0], idx[1], idx[2]) as f64;
            }
        }
        acc
    }

    /// World bounding box (min, max) of the voxel centres.
    fn world_box(&self) -> ([f64; 3], [f64; 3]) {
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for corner in 0..8 {
            let p = [0, 1, 2].map(|a| {
                if (corner >> a) & 1 == 1 {
                    (self.dims[a] - 1) as f64
                } else {
                    0.0
                }
            });
            let w = apply(&self.affine, p);
            for a in 0..3 {
                lo[a] = lo[a].min(w[a]);
                hi[a] = hi[a].max(w[a]);
            }
        }
        (lo, hi)
    }

    /// Default cut through this map: [`find_cut`] on its grid.
    fn cluster_cut(&self, threshold: f64) -> Option<[f64; 3]> {
        let t = (threshold > 0.0).then_some(threshold);
        find_cut(self.dims, &self.values, &self.affine, t)
    }
}

/// World coordinates (mm) to cut a statistical map at, as nilearn's
/// `find_xyz_cut_coords` (what its `plot_stat_map` uses): keep |v| above
/// `threshold` (default: the 80th percentile of the non-zero |v|), take the
/// largest 6-connected cluster, within it the largest cluster above its mean
/// when that has more than 50 voxels, and return the |v|-weighted centre of
/// mass. A cluster, not the single most extreme voxel, decides where to look.
/// `values` are in C order over `dims` (x slowest). None when every value is
/// zero or not finite.
pub fn find_cut(
    dims: [usize; 3],
    values: &[f32],
    affine: &[[f64; 4]; 4],
    threshold: Option<f64>,
) -> Option<[f64; 3]> {
    let map: Vec<f32> = values
        .iter()
        .map(|v| if v.is_finite() { *v } else { 0.0 })
        .collect();
    if map.iter().all(|&v| v == 0.0) {
        return None;
    }
    let threshold = threshold.unwrap_or_else(|| {
        let mut nz: Vec<f32> = map.iter().filter(|&&v| v != 0.0).map(|v| v.abs()).collect();
        let k = ((nz.len() as f64 * 0.01 * 80.0) as usize).min(nz.len() - 1);
        *nz.select_nth_unstable_by(k, f32::total_cmp).1 as f64
    });
    // nilearn compares float32 data with threshold − 2 eps cast to float32.
    let t = (threshold - 2.0 * f64::EPSILON) as f32;
    let above: Vec<bool> = map.iter().map(|v| v.abs() > t).collect();
    let weights: Vec<f64> = if above.iter().any(|&b| b) {
        let cluster = largest_cluster(dims, &above);
        let mut kept: Vec<f64> = map
            .iter()
            .zip(&cluster)
            .map(|(&v, &c)| if c { v as f64 } else { 0.0 })
            .collect();
        let n = cluster.iter().filter(|&&c| c).count() as f64;
        let mean = (kept.iter().sum::<f64>() / n).abs();
        let second: Vec<bool> = kept.iter().map(|v| v.abs() > mean).collect();
        if second.iter().filter(|&&b| b).count() > 50 {
            let core = largest_cluster(dims, &second);
            for (v, c) in kept.iter_mut().zip(core) {
                if !c {
                    *v = 0.0;
                }
            }
        }
        kept.iter().map(|v| v.abs()).collect()
    } else {
        // nothing above the threshold: the centre of mass of the whole map
        map.iter().map(|v| v.abs() as f64).collect()
    };
    let (mut total, mut centre) = (0.0, [0.0f64; 3]);
    for (n, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            let ijk = [
                n / (dims[1] * dims[2]),
                (n / dims[2]) % dims[1],
                n % dims[2],
            ];
            for a in 0..3 {
                centre[a] += w * ijk[a] as f64;
            }
            total += w;
        }
    }
    (total > 0.0).then(|| apply(affine, centre.map(|c| c / total)))
}

/// The largest 6-connected cluster of `inside` (C order over `dims`); of
/// equal sizes, the one reached first in C order (scipy.ndimage.label's
/// numbering, as nilearn picks it).
fn largest_cluster(dims: [usize; 3], inside: &[bool]) -> Vec<bool> {
    let [nx, ny, nz] = dims;
    let mut label = vec![0u32; inside.len()];
    let (mut best, mut best_size, mut next) = (0u32, 0usize, 0u32);
    let mut stack = Vec::new();
    for start in 0..inside.len() {
        if !inside[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        label[start] = next;
        stack.push(start);
        let mut size = 0;
        while let Some(n) = stack.pop() {
            size += 1;
            let (x, y, z) = (n / (ny * nz), (n / nz) % ny, n % nz);
            let mut visit = |m: usize| {
                if inside[m] && label[m] == 0 {
                    label[m] = next;
                    stack.push(m);
                }
            };
            if x > 0 {
                visit(n - ny * nz);
            }
            if x + 1 < nx {
                visit(n + ny * nz);
            }
            if y > 0 {
                visit(n - nz);
            }
            if y + 1 < ny {
                visit(n + nz);
            }
            if z > 0 {
                visit(n - 1);
            }
            if z + 1 < nz {
                visit(n + 1);
            }
        }
        if size > best_size {
            (best, best_size) = (next, size);
        }
    }
    label.iter().map(|&l| l == best && l != 0).collect()
}

#[derive(Debug, Clone)]
pub struct Brain {
    pub background: Slab,
    pub overlay: Option<Slab>,
    /// Overlay values with |v| < threshold are not drawn.
    pub threshold: f64,
    /// Sample the overlay at the nearest voxel (labels) instead of trilinearly.
    pub nearest: bool,
    /// Cut position in world mm (x, y, z); None: [`find_cut`] on the overlay, else the centre.
    pub cut: Option<[f64; 3]>,
    pub colormap: Colormap,
    /// Top of the overlay colour scale; None: the overlay's max |value|.
    pub vmax: Option<f64>,
    pub colorbar_label: String,
    /// A categorical overlay (ROI labels, best layer): value k is
    /// `categories[k - 1]`, drawn in its own colour with a legend instead of
    /// a colour bar. Empty: a continuous map.
    pub categories: Vec<String>,
}

/// Background intensities → [0, 1] between its 2nd and 99.5th percentiles
/// (of the non-zero voxels), so the anatomy is neither washed out nor dark.
fn bg_window(values: &[f32]) -> (f64, f64) {
    let mut v: Vec<f32> = values
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x != 0.0)
        .collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    let n = v.len();
    let k_lo = (n as f64 * 0.02) as usize;
    let k_hi = ((n as f64 * 0.995) as usize).min(n - 1);
    let lo = *v.select_nth_unstable_by(k_lo, |a, b| a.total_cmp(b)).1 as f64;
    let hi = *v.select_nth_unstable_by(k_hi, |a, b| a.total_cmp(b)).1 as f64;
    if hi > lo {
        (lo, hi)
    } else {
        // A constant background (a mask, say): mid grey on black, not black.
        (lo - lo.abs().max(1.0), lo + lo.abs().max(1.0))
    }
}

/// The colour of category value `v` (1-based), or None for 0 and values
/// that are not a category.
fn category_colour(v: f64, n: usize) -> Option<RGBColor> {
    let k = v.round();
    ((k - v).abs() < 1e-6 && k >= 1.0 && k <= n as f64)
        .then(|| super::series_colour(k as usize - 1, n))
}

impl Brain {
    fn overlay_limits(&self) -> (f64, f64) {
        let vmax = self.vmax.unwrap_or_else(|| {
            self.overlay
                .as_ref()
                .map(|o| {
                    o.values
                        .iter()
                        .filter(|v| v.is_finite())
                        .fold(0.0f64, |m, v| m.max(v.abs() as f64))
                })
                .unwrap_or(1.0)
        });
        let vmax = if vmax > 0.0 { vmax } else { 1.0 };
        if self.colormap.diverging() {
            (-vmax, vmax)
        } else {
            (self.threshold.max(0.0).min(vmax * 0.999), vmax)
        }
    }

    pub(super) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
    ) -> Result<()> {
        let (w, h) = root.dim_in_pixel();
        let (blo, bhi) = self.background.world_box();
        let centre = [0, 1, 2].map(|a| (blo[a] + bhi[a]) / 2.0);
        let cut = self
            .cut
            .or_else(|| {
                self.overlay
                    .as_ref()
                    .and_then(|o| o.cluster_cut(self.threshold))
            })
            .unwrap_or(centre);
        let (vlo, vhi) = self.overlay_limits();
        let tick_font = font(12.0);
        let categorical = !self.categories.is_empty();
        let has_bar = self.overlay.is_some() && !categorical;
        let legend_font = font(13.0);
        let legend_w = if categorical && self.overlay.is_some() {
            self.categories
                .iter()
                .map(|c| text_size(root, c, &legend_font).0)
                .max()
                .unwrap_or(0)
                + 44
        } else {
            0
        };
        let ticks = nice_ticks(vlo, vhi, 5);
        let tick_w = ticks
            .iter()
            .map(|t| text_size(root, &num_text(*t), &tick_font).0)
            .max()
            .unwrap_or(20);
        let bar_w = if has_bar {
            18 + 30
                + tick_w
                + if self.colorbar_label.is_empty() {
                    0
                } else {
                    22
                }
        } else {
            legend_w
        };
        let top = if title.is_empty() { 10 } else { 40 };
        let bottom = 28;
        if !title.is_empty() {
            root.draw(&Text::new(
                title.to_string(),
                ((w / 2) as i32, 10),
                font(20.0)
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(draw_err)?;
        }
        // Views: (fixed axis, horizontal axis, vertical axis, flip horizontal?)
        // sagittal: x fixed, y → right (anterior), z up
        // coronal: y fixed, x → right (left hemisphere on the left), z up
        // axial: z fixed, x → right, y up (anterior at the top)
        let views: [(usize, usize, usize, &str); 3] =
            [(0, 1, 2, "x"), (1, 0, 2, "y"), (2, 0, 1, "z")];
        let ext = |a: usize| (bhi[a] - blo[a]).max(1.0);
        let total_w: f64 = views.iter().map(|v| ext(v.1)).sum();
        let max_h: f64 = views.iter().map(|v| ext(v.2)).fold(0.0, f64::max);
        let gap = 10.0;
        let avail_w = w as f64 - bar_w as f64 - 2.0 * gap - 20.0;
        let avail_h = (h as f64 - top as f64 - bottom as f64).max(10.0);
        let scale = (avail_w / total_w).min(avail_h / max_h).max(0.05); // px per mm
        let (bwin_lo, bwin_hi) = bg_window(&self.background.values);
        let singular = || Error::invalid("plot_brain", "the volume's affine is not invertible");
        let binv = invert(&self.background.affine).ok_or_else(singular)?;
        let oinv = self
            .overlay
            .as_ref()
            .map(|o| invert(&o.affine).ok_or_else(singular))
            .transpose()?;
        let used_w: f64 = total_w * scale + 2.0 * gap;
        let mut x = ((w as f64 - bar_w as f64 - used_w) / 2.0).max(4.0);
        for &(fixed, ha, va, name) in &views {
            let pw = (ext(ha) * scale).round().max(1.0) as usize;
            // Every panel is as tall as the tallest, the volume centred in
            // it, so the three cuts and their labels line up.
            let ph = (max_h * scale).round().max(1.0) as usize;
            let y = top as f64;
            let v_top = (blo[va] + bhi[va]) / 2.0 + max_h / 2.0;
            let mut rgb = vec![0u8; pw * ph * 3];
            for py in 0..ph {
                for px in 0..pw {
                    let mut world = cut;
                    world[fixed] = cut[fixed];
                    world[ha] = blo[ha] + (px as f64 + 0.5) / scale;
                    world[va] = v_top - (py as f64 + 0.5) / scale;
                    let bv = self.background.sample(apply(&binv, world));
                    let g = if bv.is_finite() {
                        ((bv - bwin_lo) / (bwin_hi - bwin_lo)).clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    let mut c = Colormap::Gray.at(g);
                    if let (Some(o), Some(oi)) = (&self.overlay, &oinv) {
                        let ov = if self.nearest || categorical {
                            o.sample_nearest(apply(oi, world))
                        } else {
                            o.sample(apply(oi, world))
                        };
                        if categorical {
                            if let Some(cc) = category_colour(ov, self.categories.len()) {
                                c = cc;
                            }
                        } else if ov.is_finite() && ov.abs() >= self.threshold && ov != 0.0 {
                            let show = self.colormap.diverging() || ov > 0.0;
                            if show {
                                c = self.colormap.at((ov - vlo) / (vhi - vlo));
                            }
                        }
                    }
                    let d = (py * pw + px) * 3;
                    rgb[d] = c.0;
                    rgb[d + 1] = c.1;
                    rgb[d + 2] = c.2;
                }
            }
            blit(
                root,
                (x.round() as i32, y.round() as i32),
                (pw as u32, ph as u32),
                rgb,
            )?;
            let label = format!("{name} = {}", cut[fixed].round() as i64);
            root.draw(&Text::new(
                label,
                ((x + pw as f64 / 2.0) as i32, (y + ph as f64 + 6.0) as i32),
                font(13.0)
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(draw_err)?;
            // Orientation letters: left/right on the coronal and axial cuts,
            // posterior/anterior on the sagittal one.
            let sides = match ha {
                0 => Some(("L", "R")),
                1 => Some(("P", "A")),
                _ => None,
            };
            if let Some((first, second)) = sides {
                for (t, px) in [(first, x + 4.0), (second, x + pw as f64 - 4.0)] {
                    let hp = if t == first { HPos::Left } else { HPos::Right };
                    root.draw(&Text::new(
                        t.to_string(),
                        (px as i32, (y + 4.0) as i32),
                        font(13.0).color(&WHITE).pos(Pos::new(hp, VPos::Top)),
                    ))
                    .map_err(draw_err)?;
                }
            }
            x += pw as f64 + gap;
        }
        if categorical && self.overlay.is_some() {
            let lx = (w - legend_w) as i32 + 10;
            for (k, name) in self.categories.iter().enumerate() {
                let y = top as i32 + 10 + 20 * k as i32;
                root.draw(&Rectangle::new(
                    [(lx, y), (lx + 16, y + 12)],
                    super::series_colour(k, self.categories.len()).filled(),
                ))
                .map_err(draw_err)?;
                root.draw(&Text::new(
                    name.clone(),
                    (lx + 22, y + 6),
                    legend_font
                        .clone()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(draw_err)?;
            }
        }
        if has_bar {
            let bx = (w - bar_w) as i32 + 10;
            let (by0, by1) = (top as i32 + 10, (top as f64 + max_h * scale - 10.0) as i32);
            // Values hidden by the threshold are grey on the bar as on the slices.
            let colour_of = |v: f64| {
                let hidden = v.abs() < self.threshold || (!self.colormap.diverging() && v <= 0.0);
                if hidden {
                    RGBColor(190, 190, 190)
                } else {
                    self.colormap.at((v - vlo) / (vhi - vlo))
                }
            };
            super::draw_colorbar(
                &root,
                (bx, by0, by1),
                (vlo, vhi),
                &ticks,
                colour_of,
                &self.colorbar_label,
                tick_w,
            )?;
        }
        Ok(())
    }
}
