//! Noise ceilings from repeated presentations: how much of each voxel's
//! response is stimulus-driven, i.e. the best any model could do.
//!
//! Input: betas as repeats × stimuli × voxels (R ≥ 2).
//!
//! - `split_half`: the mean of the odd-numbered repeats (1st, 3rd, ...) and
//!   the mean of the even-numbered ones are correlated across stimuli (Pearson
//!   r per voxel), and the Spearman–Brown formula scales that split-half
//!   reliability to the full set: ceiling = 2r/(1 + r) (negative r → as is).
//!   The ceiling is a correlation: a model's Pearson r can reach about √ceiling
//!   against single-repeat data, or the ceiling itself against the average
//!   (Spearman 1910; Brown 1910; see Lage-Castellanos et al. 2019, PLoS
//!   Comput Biol 15:e1006397).
//! - `nsd`: the Natural Scenes Dataset's noise ceiling (Allen et al. 2022,
//!   Nat Neurosci 25:116, Methods "Noise ceiling"): betas are z-scored per
//!   voxel over all trials (population sd); σ²_noise = mean over stimuli of
//!   the variance across repeats (ddof 1); σ_signal = √max(0, 1 − σ²_noise);
//!   ncsnr = σ_signal/σ_noise; ceiling = 100·ncsnr²/(ncsnr² + 1/n) in percent
//!   of variance explainable when responses are averaged over n trials
//!   (n = R by default).

use super::common::bad_choice;
use super::correlation::{pearson, CorrelationOptions};
use crate::error::{Error, Result};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseCeilingMethod {
    #[default]
    SplitHalf,
    Nsd,
}

impl NoiseCeilingMethod {
    pub const NAMES: &'static [&'static str] = &["split_half", "nsd"];

    pub fn parse(op: &'static str, value: &str) -> Result<Self> {
        match value {
            "split_half" => Ok(NoiseCeilingMethod::SplitHalf),
            "nsd" => Ok(NoiseCeilingMethod::Nsd),
            other => Err(bad_choice(op, "method", Self::NAMES, other)),
        }
    }
}

/// Per voxel: the ceiling and, for split_half, the raw split-half r, for nsd
/// the ncsnr.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseCeiling {
    pub ceiling: Vec<f64>,
    /// split_half: the uncorrected split-half r; nsd: ncsnr.
    pub detail: Vec<f64>,
}

/// `betas` is R×S×V in C order. `n_average` (nsd only) is the number of
/// trials averaged in the analysis the ceiling is for (default R).
pub fn noise_ceiling(
    betas: &[f64],
    shape: [usize; 3],
    method: NoiseCeilingMethod,
    n_average: Option<usize>,
) -> Result<NoiseCeiling> {
    const OP: &str = "noise_ceiling";
    let [r, s, v] = shape;
    if r < 2 || s < 2 || v < 1 || betas.len() != r * s * v {
        return Err(Error::shape(
            OP,
            "betas",
            "repeats × stimuli × voxels with at least 2 repeats and 2 stimuli",
            format!("{r}×{s}×{v}"),
        ));
    }
    let at = |ri: usize, si: usize, vi: usize| betas[(ri * s + si) * v + vi];
    let per_voxel: Vec<(f64, f64)> = match method {
        NoiseCeilingMethod::SplitHalf => (0..v)
            .into_par_iter()
            .map(|vi| {
                let half = |parity: usize| -> Vec<f64> {
                    (0..s)
                        .map(|si| {
                            let vals: Vec<f64> =
                                (parity..r).step_by(2).map(|ri| at(ri, si, vi)).collect();
                            vals.iter().sum::<f64>() / vals.len() as f64
                        })
                        .collect()
                };
                let rr = pearson(&half(0), &half(1), &CorrelationOptions::default())
                    .map(|t| t.statistic)
                    .unwrap_or(f64::NAN);
                let sb = if rr > 0.0 { 2.0 * rr / (1.0 + rr) } else { rr };
                (sb, rr)
            })
            .collect(),
        NoiseCeilingMethod::Nsd => {
            let n = n_average.unwrap_or(r);
            if n == 0 {
                return Err(Error::BadOption {
                    op: OP,
                    key: "n_average".into(),
                    expected: "a positive integer".into(),
                    got: "0".into(),
                });
            }
            (0..v)
                .into_par_iter()
                .map(|vi| {
                    let all: Vec<f64> = (0..r)
                        .flat_map(|ri| (0..s).map(move |si| (ri, si)))
                        .map(|(ri, si)| at(ri, si, vi))
                        .collect();
                    let m = all.iter().sum::<f64>() / all.len() as f64;
                    let sd = (all.iter().map(|x| (x - m).powi(2)).sum::<f64>() / all.len() as f64)
                        .sqrt();
                    let noise_var = (0..s)
                        .map(|si| {
                            let z: Vec<f64> = (0..r).map(|ri| (at(ri, si, vi) - m) / sd).collect();
                            let zm = z.iter().sum::<f64>() / r as f64;
                            z.iter().map(|x| (x - zm).powi(2)).sum::<f64>() / (r - 1) as f64
                        })
                        .sum::<f64>()
                        / s as f64;
                    let ncsnr = (1.0 - noise_var).max(0.0).sqrt() / noise_var.sqrt();
                    let nc2 = ncsnr * ncsnr;
                    (100.0 * nc2 / (nc2 + 1.0 / n as f64), ncsnr)
                })
                .collect()
        }
    };
    Ok(NoiseCeiling {
        ceiling: per_voxel.iter().map(|p| p.0).collect(),
        detail: per_voxel.iter().map(|p| p.1).collect(),
    })
}
