//! Colour maps: a value in [0, 1] → colour, by linear interpolation between
//! stops sampled from the matplotlib/nilearn maps of the same name.

use plotters::style::RGBColor;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    /// Perceptually uniform, for magnitudes (the default).
    #[default]
    Viridis,
    Gray,
    /// Black → red → yellow → white: positive statistics.
    Hot,
    /// Blue → white → red: signed values centred on zero (tau, r).
    Coolwarm,
    /// nilearn's cold_hot: cyan → blue → black → red → yellow, for signed
    /// statistical maps over an anatomy.
    ColdHot,
}

const VIRIDIS: &[(u8, u8, u8)] = &[
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];
const GRAY: &[(u8, u8, u8)] = &[(0, 0, 0), (255, 255, 255)];
const HOT: &[(u8, u8, u8)] = &[(10, 0, 0), (230, 0, 0), (255, 210, 0), (255, 255, 255)];
const COOLWARM: &[(u8, u8, u8)] = &[
    (59, 76, 192),
    (124, 159, 249),
    (192, 212, 245),
    (221, 221, 221),
    (242, 203, 183),
    (238, 132, 104),
    (180, 4, 38),
];
const COLD_HOT: &[(u8, u8, u8)] = &[
    (0, 255, 255),
    (0, 0, 255),
    (0, 0, 0),
    (255, 0, 0),
    (255, 255, 0),
];

impl Colormap {
    pub const NAMES: &'static [&'static str] = &["viridis", "gray", "hot", "coolwarm", "cold_hot"];

    pub fn parse(op: &'static str, name: &str) -> Result<Self> {
        Ok(match name {
            "viridis" => Colormap::Viridis,
            "gray" | "grey" => Colormap::Gray,
            "hot" => Colormap::Hot,
            "coolwarm" => Colormap::Coolwarm,
            "cold_hot" => Colormap::ColdHot,
            other => {
                return Err(Error::BadOption {
                    op,
                    key: "colormap".into(),
                    expected: format!("one of {}", Self::NAMES.join(", ")),
                    got: format!("\"{other}\""),
                })
            }
        })
    }

    /// Whether the map is meant for values centred on zero.
    pub fn diverging(self) -> bool {
        matches!(self, Colormap::Coolwarm | Colormap::ColdHot)
    }

    /// Colour at t ∈ [0, 1] (clamped; NaN → the lowest colour).
    pub fn at(self, t: f64) -> RGBColor {
        let stops = match self {
            Colormap::Viridis => VIRIDIS,
            Colormap::Gray => GRAY,
            Colormap::Hot => HOT,
            Colormap::Coolwarm => COOLWARM,
            Colormap::ColdHot => COLD_HOT,
        };
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let pos = t * (stops.len() - 1) as f64;
        let i = (pos.floor() as usize).min(stops.len() - 2);
        let f = pos - i as f64;
        let lerp = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
        let (a, b) = (stops[i], stops[i + 1]);
        RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
    }
}
