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

    /// The size class the caption states: 0 small, 1 medium, 2 large.
    pub fn size_class(&self) -> usize {
        if self.size < 0.17 {
            0
        } else if self.size < 0.24 {
            1
        } else {
            2
        }
    }

    /// The place the caption states: (row, column), each 0, 1, 2 for
    /// upper/middle/lower and left/centre/right.
    pub fn place(&self) -> (usize, usize) {
        let third = |t: f64| {
            if t < 0.4 {
                0
            } else if t > 0.6 {
                2
            } else {
                1
            }
        };
        (third(self.y), third(self.x))
    }

    /// The caption: what is there (shape, colour, size, place, background),
    /// always all of it, in one of six sentence frames. The frame, the
    /// wording of place and background, and the size words all follow the
    /// colour (the frame and phrasings its group of similar colours, the size
    /// words its family), so a scene has exactly one caption and a captioner
    /// that sees the content can say it word for word, while captions of
    /// different scenes share little beyond their content words. The colour
    /// keys the wording because it is what both the visual cortex (V4, and
    /// V1–V3's colour tuning) and a small captioner read most reliably: a
    /// decoder that gets the shape wrong still says the right sentence; see
    /// docs/simulated-subject.md. For example "a large red circle on the
    /// upper left, on a striped background" or "in the bottom right corner
    /// sits a small yellow square, against checks".
    pub fn caption(&self) -> String {
        let colour = COLOURS[self.colour].0;
        let shape = SHAPES[self.shape];
        // Size words by colour family: warm, cool, neutral.
        let family = match self.colour {
            0..=2 => 0,
            3..=6 => 1,
            _ => 2,
        };
        let size = SIZE_WORDS[family][self.size_class()];
        let (row, col) = self.place();
        let place = |style: usize| PLACES[style][row * 3 + col];
        let bg = self.background;
        match FRAME_OF_COLOUR[self.colour] {
            0 => format!(
                "{} {size} {colour} {shape} {}, on a {} background",
                an(size),
                place(0),
                BACKGROUND_ADJ[bg]
            ),
            // The plain background goes unsaid in this frame (an optional
            // clause: its absence states it).
            1 => {
                let tail = match bg {
                    0 => String::new(),
                    b => format!(", against {}", BACKGROUND_NOUN[b]),
                };
                format!(
                    "{} sits {} {size} {colour} {shape}{tail}",
                    place(1),
                    an(size)
                )
            }
            2 => format!(
                "the {size} {colour} {shape} {} has a {} backdrop",
                place(2),
                BACKGROUND_ADJ[bg]
            ),
            3 => format!(
                "{} {colour} {shape} of {size} size {} with {} behind it",
                an(colour),
                place(0),
                BEHIND[bg]
            ),
            4 => format!(
                "{} backdrop, {} {size} {colour} {shape} {}",
                BACKGROUND_ADJ[bg],
                an(size),
                place(1)
            ),
            _ => format!(
                "{} is one {size} {shape} in {colour}, against {}",
                PLACES_CAP[row * 3 + col],
                BACKGROUND_NOUN[bg]
            ),
        }
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

/// The sentence frame of each colour (COLOURS order): similar colours share
/// one, so that confusing red with orange or blue with purple keeps the
/// sentence: red and orange 0, yellow 1, green and teal 2, blue and purple 3,
/// white 4, black 5.
const FRAME_OF_COLOUR: [usize; 9] = [0, 0, 1, 2, 2, 3, 3, 4, 5];

/// The indefinite article before a word.
fn an(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Size words per colour family (warm, cool, neutral) and size class.
const SIZE_WORDS: [[&str; 3]; 3] = [
    ["small", "medium", "large"],
    ["little", "average", "big"],
    ["tiny", "regular", "huge"],
];

/// Place phrases in three styles, indexed row × 3 + column (upper/middle/lower
/// × left/centre/right).
const PLACES: [[&str; 9]; 3] = [
    [
        "on the upper left",
        "at the top",
        "on the upper right",
        "on the left",
        "in the centre",
        "on the right",
        "on the lower left",
        "at the bottom",
        "on the lower right",
    ],
    [
        "in the top left corner",
        "near the top edge",
        "in the top right corner",
        "by the left edge",
        "in the middle",
        "by the right edge",
        "in the bottom left corner",
        "near the bottom edge",
        "in the bottom right corner",
    ],
    [
        "towards the top left",
        "high up",
        "towards the top right",
        "towards the left",
        "right in the middle",
        "towards the right",
        "towards the bottom left",
        "low down",
        "towards the bottom right",
    ],
];

/// The frame of black objects opens with its place.
const PLACES_CAP: [&str; 9] = [
    "up left",
    "up top",
    "up right",
    "left of centre",
    "at centre",
    "right of centre",
    "down left",
    "down below",
    "down right",
];

const BACKGROUND_ADJ: [&str; 4] = ["plain", "striped", "checkered", "speckled"];
const BACKGROUND_NOUN: [&str; 4] = ["plain grey", "stripes", "checks", "specks"];
const BEHIND: [&str; 4] = ["nothing", "stripes", "checks", "specks"];

/// The words of a caption as the simulated LANG ROI reads them: split on
/// spaces, punctuation dropped.
pub fn caption_words(caption: &str) -> impl Iterator<Item = &str> {
    caption
        .split(' ')
        .map(|w| w.trim_matches(|c: char| c == ',' || c == ';'))
        .filter(|w| !w.is_empty())
}

/// The caption vocabulary, for bag-of-words features: every word the grammar
/// can say, in the order first said over all contents.
pub fn vocabulary() -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for shape in 0..SHAPES.len() {
        for colour in 0..COLOURS.len() {
            for background in 0..BACKGROUNDS.len() {
                for size in [0.15, 0.2, 0.28] {
                    for y in [0.3, 0.5, 0.7] {
                        for x in [0.3, 0.5, 0.7] {
                            let scene = Scene {
                                shape,
                                colour,
                                background,
                                x,
                                y,
                                size,
                                tint: 0.5,
                                phase: 0.0,
                                valence: 5.0,
                                arousal: 5.0,
                            };
                            for w in caption_words(&scene.caption()) {
                                if !words.iter().any(|v| v == w) {
                                    words.push(w.to_string());
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    words
}
