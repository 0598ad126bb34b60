//! The simulated stimulus world: rendered scenes of one object (a shape of a
//! given colour, position and size) on a textured background, each with a
//! caption from a small grammar that states what is there, a category
//! (shape × colour: 6 × 9 = 54 categories, enough for GOD-like 50-way tests)
//! and valence/arousal ratings on a 1–9 scale that follow the content with
//! noise. Deterministic by seed.

use rayon::prelude::*;

pub use crate::random::SplitMix64 as Rng;

pub const SHAPES: [&str; 6] = ["circle", "square", "triangle", "cross", "ring", "star"];
/// Colour names and RGB in [0, 1].
pub const COLOURS: [(&str, [f32; 3]); 9] = [
    ("red", [0.85, 0.12, 0.10]),
    ("orange", [0.95, 0.55, 0.10]),
    ("yellow", [0.95, 0.88, 0.15]),
    ("green", [0.15, 0.65, 0.20]),
    ("teal", [0.10, 0.60, 0.60]),
    ("blue", [0.15, 0.30, 0.85]),
    ("purple", [0.55, 0.20, 0.70]),
    ("white", [0.95, 0.95, 0.95]),
    ("black", [0.05, 0.05, 0.05]),
];
/// Categories: every shape in every colour.
pub const N_CATEGORIES: usize = SHAPES.len() * COLOURS.len();
pub const BACKGROUNDS: [&str; 4] = ["plain", "striped", "checkered", "speckled"];

#[derive(Debug, Clone)]
pub struct Scene {
    pub shape: usize,
    pub colour: usize,
    pub background: usize,
    /// Centre in [0, 1]² (x right, y down) and radius as a fraction of the image.
    pub x: f64,
    pub y: f64,
    pub size: f64,
    /// Background tint (grey level) and texture phase.
    pub tint: f64,
    pub phase: f64,
    pub valence: f64,
    pub arousal: f64,
}

impl Scene {
    pub fn random(rng: &mut Rng) -> Scene {
        Scene::random_in(rng, None)
    }

    /// A random scene of the given category (shape × colour), or of a random
    /// one. The stream of `rng` is used the same way either way, so fixing
    /// the categories of some scenes leaves every other draw unchanged.
    pub fn random_in(rng: &mut Rng, category: Option<usize>) -> Scene {
        let mut shape = rng.below(SHAPES.len() as u64) as usize;
        let mut colour = rng.below(COLOURS.len() as u64) as usize;
        if let Some(c) = category {
            shape = (c / COLOURS.len()) % SHAPES.len();
            colour = c % COLOURS.len();
        }
        let background = rng.below(BACKGROUNDS.len() as u64) as usize;
        let size = 0.12 + 0.18 * rng.uniform();
        let x = size + (1.0 - 2.0 * size) * rng.uniform();
        let y = size + (1.0 - 2.0 * size) * rng.uniform();
        let tint = 0.3 + 0.4 * rng.uniform();
        let phase = rng.uniform();
        // Valence follows content: warm and bright colours and round shapes
        // please, dark colours and spiky shapes do not; arousal grows with
        // size and with spikiness. Both on a 1–9 scale, with noise.
        let colour_valence = [0.8, 1.0, 1.5, 1.2, 0.6, 0.3, 0.0, 0.5, -2.0][colour];
        let shape_valence = [1.2, 0.2, -0.8, -0.5, 0.6, -1.5][shape];
        let valence =
            (5.0 + 1.3 * (colour_valence + shape_valence) + 0.8 * rng.normal()).clamp(1.0, 9.0);
        let spiky = [0.0, 0.2, 0.7, 0.5, 0.1, 1.0][shape];
        let arousal =
            (2.5 + 12.0 * (size - 0.12) + 2.5 * spiky + 0.8 * rng.normal()).clamp(1.0, 9.0);
        Scene {
            shape,
            colour,
            background,
            x,
            y,
            size,
            tint,
            phase,
            valence,
            arousal,
        }
    }

    /// Category index: shape × colour.
    pub fn category(&self) -> usize {
        self.shape * COLOURS.len() + self.colour
    }

    pub fn category_name(&self) -> String {
        format!("{} {}", COLOURS[self.colour].0, SHAPES[self.shape])
    }

    /// "a large red circle on the upper left, on a striped background".
    pub fn caption(&self) -> String {
        let size = if self.size < 0.17 {
            "small"
        } else if self.size < 0.24 {
            "medium"
        } else {
            "large"
        };
        let vertical = if self.y < 0.4 {
            "upper "
        } else if self.y > 0.6 {
            "lower "
        } else {
            ""
        };
        let horizontal = if self.x < 0.4 {
            "left"
        } else if self.x > 0.6 {
            "right"
        } else {
            "centre"
        };
        let place = match (vertical, horizontal) {
            ("", "centre") => "in the centre".to_string(),
            (v, "centre") => format!("at the {}", v.trim()),
            (v, h) => format!("on the {v}{h}"),
        };
        let bg = match self.background {
            0 => "a plain background",
            1 => "a striped background",
            2 => "a checkered background",
            _ => "a speckled background",
        };
        format!(
            "a {size} {} {} {place}, on {bg}",
            COLOURS[self.colour].0, SHAPES[self.shape]
        )
    }

    fn inside(&self, u: f64, v: f64) -> bool {
        let (dx, dy) = ((u - self.x) / self.size, (v - self.y) / self.size);
        let r = (dx * dx + dy * dy).sqrt();
        match self.shape {
            0 => r <= 1.0,
            1 => dx.abs() <= 0.85 && dy.abs() <= 0.85,
            2 => dy <= 0.8 && dy >= -1.0 + 2.0 * dx.abs() * 0.95 - 0.1,
            3 => (dx.abs() <= 0.3 && dy.abs() <= 1.0) || (dy.abs() <= 0.3 && dx.abs() <= 1.0),
            4 => (0.6..=1.0).contains(&r),
            _ => {
                let angle = dy.atan2(dx);
                r <= 0.45 + 0.55 * (0.5 + 0.5 * (5.0 * angle).cos()).powf(3.0)
            }
        }
    }

    fn background_level(&self, u: f64, v: f64) -> f64 {
        let t = self.tint;
        match self.background {
            0 => t,
            1 => t + 0.15 * (2.0 * std::f64::consts::PI * (8.0 * (u + v) + self.phase)).sin(),
            2 => {
                let c = ((u * 6.0 + self.phase).floor() + (v * 6.0).floor()) as i64 % 2;
                t + if c == 0 { 0.12 } else { -0.12 }
            }
            _ => {
                // Hash noise, fixed per pixel position and phase.
                let h =
                    ((u * 997.0).floor() * 131.0 + (v * 991.0).floor() * 17.0 + self.phase * 1e4)
                        .sin()
                        * 43758.545;
                t + 0.25 * (h - h.floor() - 0.5)
            }
        }
    }

    /// Renders into a 3×size×size buffer in [0, 1], channel-major (C, H, W).
    pub fn render(&self, size: usize, out: &mut [f32]) {
        let plane = size * size;
        let colour = COLOURS[self.colour].1;
        for row in 0..size {
            for col in 0..size {
                let (u, v) = (
                    (col as f64 + 0.5) / size as f64,
                    (row as f64 + 0.5) / size as f64,
                );
                let i = row * size + col;
                if self.inside(u, v) {
                    for c in 0..3 {
                        out[c * plane + i] = colour[c];
                    }
                } else {
                    let g = self.background_level(u, v).clamp(0.0, 1.0) as f32;
                    for c in 0..3 {
                        out[c * plane + i] = g;
                    }
                }
            }
        }
    }
}

/// Renders scenes in parallel into an N×3×size×size buffer.
pub fn render_all(scenes: &[Scene], size: usize) -> Vec<f32> {
    let per = 3 * size * size;
    let mut buf = vec![0f32; scenes.len() * per];
    buf.par_chunks_mut(per)
        .zip(scenes.par_iter())
        .for_each(|(out, s)| s.render(size, out));
    buf
}

/// The caption vocabulary, for bag-of-words features.
pub fn vocabulary() -> Vec<String> {
    let mut words: Vec<String> = [
        "a",
        "on",
        "the",
        "at",
        "in",
        "small",
        "medium",
        "large",
        "upper",
        "lower",
        "left",
        "right",
        "centre",
        "background",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    words.extend(COLOURS.iter().map(|c| c.0.to_string()));
    words.extend(SHAPES.iter().map(|s| s.to_string()));
    words.extend(
        ["plain", "striped", "checkered", "speckled"]
            .iter()
            .map(|s| s.to_string()),
    );
    words
}
