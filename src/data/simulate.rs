//! The simulated subject: a subject whose ground truth is known, for tests,
//! demos and labs.
//!
//! Stimuli are rendered scenes ([`super::scenes`]). The brain is a small
//! volume with named ROIs whose voxels follow known encoding models:
//! - V1, V2, V3: retinotopic population receptive fields (Gaussian pRFs whose
//!   size grows from V1 to V3) over local contrast energy, a colour
//!   channel preference and oriented gradient energy (4 orientations, von
//!   Mises tuning around a preferred orientation per voxel);
//! - V4: tuned to the object's colour; LOC: to its shape and size;
//! - LANG: to the words of the caption (bag of words);
//! - AMY: to valence and arousal (the emotion-tuned region).
//!
//! Responses are the noiseless signal plus Gaussian noise at a chosen SNR
//! (signal sd / noise sd per voxel), independent across voxels or smooth
//! (`noise_fwhm`); the default noise is calibrated so that reliability, noise ceilings and
//! identification resemble GOD's (docs/simulated-subject.md). The default design is GOD-like: 1200
//! training stimuli shown once and 50 test stimuli shown 35 times.

use tch::{Kind, Tensor as TchTensor};

use super::dataset::{self, Cell, Dataset, Trial as DatasetTrial};
use super::images::{self, ImageSet};
use super::mask::Mask;
use super::scenes::{self, Rng, Scene};
use crate::error::{Error, Result};
use crate::tensor::{tc, Tensor};

const OP: &str = "simulate_subject";

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub seed: u64,
    pub n_train: usize,
    pub n_test: usize,
    pub test_repeats: usize,
    /// Images with no fMRI (for self-supervised methods).
    pub n_extra_images: usize,
    /// Extra fMRI trials of unseen stimuli, without labels (for DC-MAE-style pre-training).
    pub n_extra_fmri: usize,
    pub image_size: usize,
    pub snr: f64,
    /// Spatial smoothness of the noise: FWHM in mm of the Gaussian that
    /// correlates each trial's noise across neighbouring voxels (0:
    /// independent noise per voxel).
    pub noise_fwhm: f64,
    /// Brain grid (x, y, z), `VOXEL_MM` voxels.
    pub grid: [usize; 3],
    /// Multiplier on the ROI ball radii (which already scale with the grid).
    pub roi_size: f64,
}

/// The default noise, calibrated against GOD's published statistics (see
/// docs/simulated-subject.md): single-trial SNR (signal sd / noise sd in
/// every ROI voxel) and the smoothness of the noise.
pub const DEFAULT_SNR: f64 = 0.35;
/// Independent noise by default: smooth noise (`noise_fwhm` > 0) made the
/// pixel decoder's identification easier, not harder (the simulated tuning
/// is not smooth across voxels, so a decoder filters smooth noise out).
pub const DEFAULT_NOISE_FWHM: f64 = 0.0;

/// Voxel edge length of the simulated grid, millimetres.
pub const VOXEL_MM: f64 = 3.0;

/// Orientations (radians) of the oriented-energy channels of V1–V3.
const ORIENTATIONS: [f64; 4] = [
    0.0,
    std::f64::consts::FRAC_PI_4,
    std::f64::consts::FRAC_PI_2,
    3.0 * std::f64::consts::FRAC_PI_4,
];

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 0,
            n_train: 1200,
            n_test: 50,
            test_repeats: 35,
            n_extra_images: 0,
            n_extra_fmri: 0,
            image_size: 64,
            snr: DEFAULT_SNR,
            noise_fwhm: DEFAULT_NOISE_FWHM,
            grid: [40, 48, 40],
            roi_size: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
    /// Unlabeled extra fMRI.
    Extra,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
            Split::Extra => "extra",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Trial {
    pub stimulus: usize,
    pub split: Split,
    pub repeat: usize,
}

pub struct Simulated {
    /// All stimuli: training, test, extra-fMRI stimuli, then extra images.
    pub scenes: Vec<Scene>,
    /// Stimulus ids ("stim0001", ...), one per scene.
    pub ids: Vec<String>,
    /// N×3×S×S in [0, 1].
    pub images: TchTensor,
    pub trials: Vec<Trial>,
    /// trials × voxels (voxels in C order over the brain mask).
    pub betas: TchTensor,
    /// Noiseless responses, stimuli × voxels (for noise ceilings); extra images have none.
    pub signal: TchTensor,
    /// Brain mask over the grid, C order (x slowest, z fastest).
    pub brain: Vec<bool>,
    pub grid: [usize; 3],
    /// `VOXEL_MM` voxels centred on the grid.
    pub affine: [[f64; 4]; 4],
    /// ROI name → membership per masked voxel.
    pub rois: Vec<(String, Vec<bool>)>,
    pub noise_sd: f64,
}

/// ROIs: name, centre as a fraction of the grid, radius in voxels of a
/// reference grid whose geometric-mean side is `REF_SIDE` voxels (scaled to
/// the actual grid, times `roi_size`).
const ROIS: [(&str, [f64; 3], f64); 7] = [
    ("V1", [0.5, 0.08, 0.45], 3.0),
    ("V2", [0.5, 0.2, 0.45], 3.0),
    ("V3", [0.5, 0.32, 0.45], 3.0),
    ("V4", [0.3, 0.4, 0.35], 2.5),
    ("LOC", [0.7, 0.45, 0.35], 2.5),
    ("LANG", [0.25, 0.7, 0.6], 2.5),
    ("AMY", [0.65, 0.65, 0.25], 2.0),
];

const REF_SIDE: f64 = 20.5;

/// Weights of the early-visual feature blocks (each block has unit sd over
/// stimuli) relative to contrast energy's 1. Colour is linear in the pixels
/// and oriented energy is not; with these weights V1–V3 stay decodable to
/// pixels (50-way identification well above chance) while orientation still
/// shapes each voxel's tuning.
const W_COLOUR: f64 = 1.0;
const W_ORIENTATION: f64 = 0.4;

fn check(opts: &SimOptions) -> Result<()> {
    if opts.n_train == 0 || opts.n_test == 0 || opts.test_repeats == 0 {
        return Err(Error::invalid(
            OP,
            "n_train, n_test and test_repeats must be ≥ 1",
        ));
    }
    if opts.image_size < 16 || opts.image_size > 512 {
        return Err(Error::invalid(
            OP,
            format!("image_size must be 16–512, got {}", opts.image_size),
        ));
    }
    // The subject lives in memory at once: rendered images (float32, with a
    // copy while quantising) and trials × voxels responses (betas, signal
    // and noise). Refuse sizes the machine or --max-memory cannot hold.
    let stimuli = opts.n_train as f64
        + opts.n_test as f64
        + opts.n_extra_fmri as f64
        + opts.n_extra_images as f64;
    let trials = opts.n_train as f64
        + opts.n_test as f64 * opts.test_repeats as f64
        + opts.n_extra_fmri as f64;
    let voxels: f64 = opts.grid.iter().map(|&g| g as f64).product();
    let side = opts.image_size as f64;
    crate::cancel::reserve(
        OP,
        &format!("a subject of {stimuli} stimuli and {trials} trials"),
        stimuli * 3.0 * side * side * 4.0 * 2.0 + trials * voxels * 4.0 * 3.0,
    )?;
    if !(opts.snr > 0.0 && opts.snr.is_finite()) {
        return Err(Error::invalid(
            OP,
            format!("snr must be a positive number, got {}", opts.snr),
        ));
    }
    if !(opts.noise_fwhm >= 0.0 && opts.noise_fwhm <= 30.0) {
        return Err(Error::invalid(
            OP,
            format!("noise_fwhm must be 0–30 mm, got {}", opts.noise_fwhm),
        ));
    }
    if opts.grid.iter().any(|&g| !(12..=96).contains(&g)) {
        return Err(Error::invalid(
            OP,
            format!("grid sizes must be 12–96 voxels, got {:?}", opts.grid),
        ));
    }
    if !(opts.roi_size > 0.0 && opts.roi_size <= 4.0) {
        return Err(Error::invalid(
            OP,
            format!("roi_size must be in (0, 4], got {}", opts.roi_size),
        ));
    }
    Ok(())
}

/// Oriented gradient energy per coarse cell: the squared directional
/// derivative of luminance along each of `ORIENTATIONS`, averaged per cell
/// (n × orientations × cells²).
fn orientation_energy(images: &TchTensor, cells: i64) -> Result<TchTensor> {
    let lum = tc(
        OP,
        images.f_mean_dim(Some([1i64].as_slice()), true, Kind::Float),
    )?;
    let s = lum.size()[3];
    let dx = tc(
        OP,
        tc(OP, lum.f_narrow(3, 1, s - 1))?.f_sub(&tc(OP, lum.f_narrow(3, 0, s - 1))?),
    )?;
    let dx = tc(OP, dx.f_narrow(2, 0, s - 1))?;
    let dy = tc(
        OP,
        tc(OP, lum.f_narrow(2, 1, s - 1))?.f_sub(&tc(OP, lum.f_narrow(2, 0, s - 1))?),
    )?;
    let dy = tc(OP, dy.f_narrow(3, 0, s - 1))?;
    let mut chans = Vec::new();
    for th in ORIENTATIONS {
        let d = tc(
            OP,
            tc(OP, dx.f_mul_scalar(th.cos()))?.f_add(&tc(OP, dy.f_mul_scalar(th.sin()))?),
        )?;
        chans.push(tc(OP, d.f_square())?);
    }
    let e = tc(OP, TchTensor::f_cat(&chans, 1))?;
    let e = tc(OP, e.f_adaptive_avg_pool2d([cells, cells]))?;
    let n = images.size()[0];
    tc(
        OP,
        e.f_reshape([n, ORIENTATIONS.len() as i64, cells * cells]),
    )
}

/// Local contrast energy on a coarse grid: |luminance − its mean| averaged
/// over cells, plus the mean of each colour channel per cell.
fn coarse_features(images: &TchTensor, cells: i64) -> Result<(TchTensor, TchTensor)> {
    let lum = tc(
        OP,
        images.f_mean_dim(Some([1i64].as_slice()), true, Kind::Float),
    )?;
    let mean = tc(
        OP,
        lum.f_mean_dim(Some([2i64, 3].as_slice()), true, Kind::Float),
    )?;
    let energy = tc(OP, tc(OP, lum.f_sub(&mean))?.f_abs())?;
    let energy = tc(OP, energy.f_adaptive_avg_pool2d([cells, cells]))?;
    let colour = tc(OP, images.f_adaptive_avg_pool2d([cells, cells]))?;
    let n = images.size()[0];
    Ok((
        tc(OP, energy.f_reshape([n, cells * cells]))?,
        tc(OP, colour.f_reshape([n, 3, cells * cells]))?,
    ))
}

pub fn simulate(opts: &SimOptions) -> Result<Simulated> {
    check(opts)?;
    let mut rng = Rng::new(opts.seed);
    let n_labeled = opts.n_train + opts.n_test;
    let n_fmri = n_labeled + opts.n_extra_fmri;
    let n_all = n_fmri + opts.n_extra_images;
    // Test stimuli each show a different category (GOD-like: 50 test
    // images of 50 categories), in an order drawn from a stream of its own.
    let mut categories: Vec<usize> = (0..scenes::N_CATEGORIES).collect();
    shuffle(&mut categories, &mut Rng::new(opts.seed ^ 0x7e57_ca7e));
    let scenes: Vec<Scene> = (0..n_all)
        .map(|i| {
            let fixed = (opts.n_train..n_labeled)
                .contains(&i)
                .then(|| categories[(i - opts.n_train) % categories.len()]);
            Scene::random_in(&mut rng, fixed)
        })
        .collect();
    let ids: Vec<String> = (0..n_all).map(|i| format!("stim{:04}", i + 1)).collect();
    let s = opts.image_size;
    // Quantised to 8 bits as the PNG stimuli are, so the subject in memory
    // equals the one written and read back.
    let pixels: Vec<f32> = scenes::render_all(&scenes, s)
        .into_iter()
        .map(images::through_8bit)
        .collect();
    let images = tc(
        OP,
        tc(OP, TchTensor::f_from_slice(&pixels))?.f_reshape([n_all as i64, 3, s as i64, s as i64]),
    )?;

    // Brain: an ellipsoid in the grid, ROIs as balls inside it.
    let [gx, gy, gz] = opts.grid;
    let mut brain = Vec::with_capacity(gx * gy * gz);
    let mut coords = Vec::new();
    for x in 0..gx {
        for y in 0..gy {
            for z in 0..gz {
                let (u, v, w) = (
                    (x as f64 + 0.5) / gx as f64 - 0.5,
                    (y as f64 + 0.5) / gy as f64 - 0.5,
                    (z as f64 + 0.5) / gz as f64 - 0.5,
                );
                let inside = (u * u + v * v + w * w) / 0.25 <= 1.0;
                brain.push(inside);
                if inside {
                    coords.push([x as f64, y as f64, z as f64]);
                }
            }
        }
    }
    let n_vox = coords.len();
    let scale = (gx as f64 * gy as f64 * gz as f64).cbrt() / REF_SIDE * opts.roi_size;
    // Each voxel belongs to at most one ROI: the first ball (in ROIS order)
    // that contains it, so a mask holds only voxels with that ROI's tuning.
    let roi_index: Vec<Option<usize>> = coords
        .iter()
        .map(|p| {
            ROIS.iter().position(|(_, c, r)| {
                let centre = [c[0] * gx as f64, c[1] * gy as f64, c[2] * gz as f64];
                let d2: f64 = (0..3).map(|k| (p[k] - centre[k]).powi(2)).sum();
                d2.sqrt() <= r * scale
            })
        })
        .collect();
    let rois: Vec<(String, Vec<bool>)> = ROIS
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| {
            let member = roi_index.iter().map(|&r| r == Some(i)).collect();
            (name.to_string(), member)
        })
        .collect();
    let roi_of = |v: usize| roi_index[v];

    // Stimulus features for the fMRI stimuli.
    let fmri_images = tc(OP, images.f_narrow(0, 0, n_fmri as i64))?;
    let cells = 16i64;
    let (energy, colour) = coarse_features(&fmri_images, cells)?;
    let orient = orientation_energy(&fmri_images, cells)?;
    // Each feature block scaled to unit sd so the weights below mean the same
    // whatever the image statistics; rows are stimuli.
    let unit = |t: TchTensor| -> Result<TchTensor> {
        let t = tc(OP, t.f_reshape([n_fmri as i64, -1]))?;
        let t = tc(OP, t.f_to_kind(Kind::Double))?;
        let sd = tc(OP, t.f_std(true))?;
        let sd = f64::try_from(sd).unwrap_or(1.0).max(1e-12);
        tc(OP, t.f_div_scalar(sd))
    };
    let features = tc(
        OP,
        TchTensor::f_cat(&[unit(energy)?, unit(colour)?, unit(orient)?], 1),
    )?;
    let vocab = scenes::vocabulary();
    let words: Vec<Vec<f64>> = scenes[..n_fmri]
        .iter()
        .map(|sc| {
            let cap = sc.caption();
            vocab
                .iter()
                .map(|w| scenes::caption_words(&cap).filter(|t| t == w).count() as f64)
                .collect()
        })
        .collect();

    // Per-voxel encoding weights, drawn once (the ground truth). V1–V3
    // voxels get a weight vector over the feature columns (contrast energy,
    // colour, oriented energy, each pooled by the voxel's Gaussian pRF); the
    // early-visual signal is then one matrix product.
    let mut signal = vec![0f64; n_fmri * n_vox];
    let c2 = (cells * cells) as usize;
    let n_ori = ORIENTATIONS.len();
    let n_feat = (1 + 3 + n_ori) * c2;
    let mut early: Vec<usize> = Vec::new();
    let mut early_w: Vec<f64> = Vec::new();
    for v in 0..n_vox {
        let roi = roi_of(v);
        match roi.map(|r| ROIS[r].0) {
            Some(name @ ("V1" | "V2" | "V3")) => {
                let sigma = match name {
                    "V1" => 0.06,
                    "V2" => 0.1,
                    _ => 0.16,
                } * cells as f64;
                let (cx, cy) = (rng.uniform() * cells as f64, rng.uniform() * cells as f64);
                let pref = [rng.normal(), rng.normal(), rng.normal()];
                // Preferred orientation, von Mises tuning over the channels.
                let theta = rng.uniform() * std::f64::consts::PI;
                let tune: Vec<f64> = ORIENTATIONS
                    .iter()
                    .map(|o| (2.0 * (2.0 * (o - theta)).cos()).exp())
                    .collect();
                let tsum: f64 = tune.iter().sum();
                let mut g = vec![0f64; c2];
                let mut total = 0.0;
                for r in 0..cells as usize {
                    for c in 0..cells as usize {
                        let d2 = (c as f64 + 0.5 - cx).powi(2) + (r as f64 + 0.5 - cy).powi(2);
                        g[r * cells as usize + c] = (-d2 / (2.0 * sigma * sigma)).exp();
                        total += g[r * cells as usize + c];
                    }
                }
                let mut w = vec![0f64; n_feat];
                for k in 0..c2 {
                    let gk = g[k] / total;
                    w[k] = gk;
                    for ch in 0..3 {
                        w[(1 + ch) * c2 + k] = W_COLOUR * pref[ch] * gk;
                    }
                    for (o, t) in tune.iter().enumerate() {
                        w[(4 + o) * c2 + k] = W_ORIENTATION * t / tsum * n_ori as f64 * gk;
                    }
                }
                early.push(v);
                early_w.extend(w);
            }
            Some("V4") => {
                let w: Vec<f64> = (0..scenes::COLOURS.len()).map(|_| rng.normal()).collect();
                for (i, sig) in signal.iter_mut().skip(v).step_by(n_vox).enumerate() {
                    *sig = w[scenes[i].colour];
                }
            }
            Some("LOC") => {
                let w: Vec<f64> = (0..scenes::SHAPES.len()).map(|_| rng.normal()).collect();
                let ws = rng.normal();
                for (i, sig) in signal.iter_mut().skip(v).step_by(n_vox).enumerate() {
                    *sig = w[scenes[i].shape] + ws * (scenes[i].size - 0.21) * 5.0;
                }
            }
            Some("LANG") => {
                let w: Vec<f64> = (0..vocab.len()).map(|_| rng.normal()).collect();
                for (i, sig) in signal.iter_mut().skip(v).step_by(n_vox).enumerate() {
                    *sig = words[i].iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() * 0.5;
                }
            }
            Some(_) => {
                let (wv, wa) = (0.8 + 0.4 * rng.uniform(), 0.3 * rng.normal());
                for (i, sig) in signal.iter_mut().skip(v).step_by(n_vox).enumerate() {
                    *sig =
                        wv * (scenes[i].valence - 5.0) / 2.0 + wa * (scenes[i].arousal - 5.0) / 2.0;
                }
            }
            None => {}
        }
    }
    if !early.is_empty() {
        let w = tc(OP, TchTensor::f_from_slice(&early_w))?;
        let w = tc(OP, w.f_reshape([early.len() as i64, n_feat as i64]))?;
        let resp = tc(OP, features.f_matmul(&tc(OP, w.f_transpose(0, 1))?))?;
        let resp: Vec<f64> = tc(
            OP,
            Vec::<f64>::try_from(tc(OP, resp.f_contiguous())?.reshape([-1])),
        )?;
        let ne = early.len();
        for i in 0..n_fmri {
            for (j, &v) in early.iter().enumerate() {
                signal[i * n_vox + v] = resp[i * ne + j];
            }
        }
    }
    // Standardise each responsive voxel's signal so SNR means the same everywhere.
    let mut mean = vec![0f64; n_vox];
    let mut sq = vec![0f64; n_vox];
    for row in signal.chunks(n_vox) {
        for v in 0..n_vox {
            mean[v] += row[v];
            sq[v] += row[v] * row[v];
        }
    }
    let nf = n_fmri as f64;
    let sd: Vec<f64> = (0..n_vox)
        .map(|v| {
            mean[v] /= nf;
            (sq[v] / nf - mean[v] * mean[v]).max(0.0).sqrt()
        })
        .collect();
    for row in signal.chunks_mut(n_vox) {
        for v in 0..n_vox {
            row[v] = if sd[v] > 1e-9 {
                (row[v] - mean[v]) / sd[v]
            } else {
                0.0
            };
        }
    }

    // Trials: training stimuli once, test stimuli `test_repeats` times,
    // extra-fMRI stimuli once; presentation order shuffled within each part.
    let mut trials = Vec::new();
    let mut train: Vec<usize> = (0..opts.n_train).collect();
    shuffle(&mut train, &mut rng);
    trials.extend(train.into_iter().map(|s| Trial {
        stimulus: s,
        split: Split::Train,
        repeat: 0,
    }));
    for r in 0..opts.test_repeats {
        let mut test: Vec<usize> = (opts.n_train..n_labeled).collect();
        shuffle(&mut test, &mut rng);
        trials.extend(test.into_iter().map(|s| Trial {
            stimulus: s,
            split: Split::Test,
            repeat: r,
        }));
    }
    trials.extend((n_labeled..n_fmri).map(|s| Trial {
        stimulus: s,
        split: Split::Extra,
        repeat: 0,
    }));
    let noise_sd = 1.0 / opts.snr;
    let mut betas = vec![0f32; trials.len() * n_vox];
    if opts.noise_fwhm > 0.0 {
        let brain_index: Vec<usize> = (0..brain.len()).filter(|&g| brain[g]).collect();
        let per_chunk = 128;
        for start in (0..trials.len()).step_by(per_chunk) {
            let n = per_chunk.min(trials.len() - start);
            let noise = smooth_noise(&mut rng, n, opts.grid, opts.noise_fwhm)?;
            for k in 0..n {
                let t = start + k;
                let field = &noise[k * brain.len()..(k + 1) * brain.len()];
                let stim = trials[t].stimulus;
                for (v, &g) in brain_index.iter().enumerate() {
                    betas[t * n_vox + v] =
                        (signal[stim * n_vox + v] + noise_sd * field[g] as f64) as f32;
                }
            }
        }
    } else {
        for (t, trial) in trials.iter().enumerate() {
            for v in 0..n_vox {
                betas[t * n_vox + v] =
                    (signal[trial.stimulus * n_vox + v] + noise_sd * rng.normal()) as f32;
            }
        }
    }
    let betas = tc(
        OP,
        tc(OP, TchTensor::f_from_slice(&betas))?.f_reshape([trials.len() as i64, n_vox as i64]),
    )?;
    let signal32: Vec<f32> = signal.iter().map(|&x| x as f32).collect();
    let signal = tc(
        OP,
        tc(OP, TchTensor::f_from_slice(&signal32))?.f_reshape([n_fmri as i64, n_vox as i64]),
    )?;
    let half = |g: usize| -(g as f64 - 1.0) / 2.0 * VOXEL_MM;
    let affine = [
        [VOXEL_MM, 0.0, 0.0, half(gx)],
        [0.0, VOXEL_MM, 0.0, half(gy)],
        [0.0, 0.0, VOXEL_MM, half(gz)],
        [0.0, 0.0, 0.0, 1.0],
    ];
    Ok(Simulated {
        scenes,
        ids,
        images,
        trials,
        betas,
        signal,
        brain,
        grid: opts.grid,
        affine,
        rois,
        noise_sd,
    })
}

/// `n` fields of unit-variance Gaussian noise on the grid (n × grid cells, C
/// order), correlated across neighbouring voxels as fMRI noise is: white
/// noise smoothed by a Gaussian of the given FWHM (mm), then divided by the
/// smoothing's own sd at each cell (smaller at the grid's edges, where the
/// kernel is cut), so every voxel keeps unit variance.
fn smooth_noise(rng: &mut Rng, n: usize, grid: [usize; 3], fwhm: f64) -> Result<Vec<f32>> {
    let cells = grid[0] * grid[1] * grid[2];
    let white: Vec<f32> = (0..n * cells).map(|_| rng.normal() as f32).collect();
    let sigma = fwhm / ((8.0 * 2f64.ln()).sqrt() * VOXEL_MM);
    let radius = (3.0 * sigma).ceil().max(1.0) as i64;
    let taps: Vec<f32> = (-radius..=radius)
        .map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let shape = [n as i64, 1, grid[0] as i64, grid[1] as i64, grid[2] as i64];
    let kernel = tc(OP, TchTensor::f_from_slice(&taps))?;
    let squared = tc(OP, kernel.f_square())?;
    // Separable: one 1-D Gaussian along each axis.
    let smooth = |x: &TchTensor, k: &TchTensor| -> Result<TchTensor> {
        let mut y = x.shallow_clone();
        for axis in 0..3 {
            let mut size = [1i64, 1, 1, 1, 1];
            size[2 + axis] = taps.len() as i64;
            let mut pad = [0i64; 3];
            pad[axis] = radius;
            let w = tc(OP, k.f_reshape(size))?;
            y = tc(
                OP,
                y.f_conv3d(&w, None::<TchTensor>, [1, 1, 1], pad, [1, 1, 1], 1),
            )?;
        }
        Ok(y)
    };
    let x = tc(
        OP,
        tc(OP, TchTensor::f_from_slice(&white))?.f_reshape(shape),
    )?;
    let y = smooth(&x, &kernel)?;
    let ones = tc(
        OP,
        TchTensor::f_ones(
            [1, 1, shape[2], shape[3], shape[4]],
            (Kind::Float, tch::Device::Cpu),
        ),
    )?;
    let sd = tc(OP, smooth(&ones, &squared)?.f_sqrt())?;
    let y = tc(OP, y.f_div(&sd))?;
    tc(
        OP,
        Vec::<f32>::try_from(tc(OP, y.f_contiguous())?.reshape([-1])),
    )
}

fn shuffle(v: &mut [usize], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

impl Simulated {
    /// The labeled trials (train and test) as a [`Dataset`], exactly what
    /// `load_dataset` gives after [`save`]; `name` is the dataset's name.
    pub fn to_dataset(&self, name: &str) -> Result<Dataset> {
        let labeled: Vec<usize> = (0..self.trials.len())
            .filter(|&i| self.trials[i].split != Split::Extra)
            .collect();
        // Labeled trials come first (train, test, then extra): a view, no copy.
        if labeled.iter().enumerate().any(|(k, &i)| k != i) {
            return Err(Error::invalid(OP, "internal: labeled trials are not first"));
        }
        let betas = Tensor(tc(OP, self.betas.f_narrow(0, 0, labeled.len() as i64))?);
        let [gx, gy, gz] = self.grid;
        // A grid mask from membership of the brain's voxels.
        let grid_mask = |member: &dyn Fn(usize) -> bool| -> Result<Mask> {
            let mut values = vec![0f64; gx * gy * gz];
            let mut v = 0;
            for (g, &inside) in self.brain.iter().enumerate() {
                if inside {
                    if member(v) {
                        values[g] = 1.0;
                    }
                    v += 1;
                }
            }
            let t = Tensor::from_f64(OP, &values, &[gx as i64, gy as i64, gz as i64], Kind::Float)?;
            Mask::from_tensor(OP, &t, self.affine)
        };
        let mask = grid_mask(&|_| true)?;
        let rois = self
            .rois
            .iter()
            .map(|(name, member)| Ok((name.clone(), grid_mask(&|v| member[v])?)))
            .collect::<Result<Vec<_>>>()?;
        // Stimuli: the labeled ones are the first scenes, in id order.
        let n_labeled = labeled
            .iter()
            .map(|&i| self.trials[i].stimulus + 1)
            .max()
            .unwrap_or(0);
        let stimuli = ImageSet {
            data: Tensor(tc(OP, self.images.f_narrow(0, 0, n_labeled as i64))?),
            ids: self.ids[..n_labeled].to_vec(),
        };
        let scene = |i: usize| &self.scenes[self.trials[i].stimulus];
        Ok(Dataset {
            name: name.to_string(),
            dir: std::path::PathBuf::new(),
            betas,
            trials: labeled
                .iter()
                .map(|&i| DatasetTrial {
                    stimulus: self.ids[self.trials[i].stimulus].clone(),
                    split: self.trials[i].split.name().to_string(),
                    repeat: self.trials[i].repeat as i64,
                })
                .collect(),
            mask,
            rois,
            stimuli: Some(stimuli),
            image_index: labeled
                .iter()
                .map(|&i| self.trials[i].stimulus as i64)
                .collect(),
            captions: Some(
                labeled
                    .iter()
                    .map(|&i| Cell::Text(scene(i).caption()))
                    .collect(),
            ),
            labels: Some(
                labeled
                    .iter()
                    .map(|&i| Cell::Text(scene(i).category_name()))
                    .collect(),
            ),
            ratings: vec![
                (
                    "valence".into(),
                    labeled.iter().map(|&i| scene(i).valence).collect(),
                ),
                (
                    "arousal".into(),
                    labeled.iter().map(|&i| scene(i).arousal).collect(),
                ),
            ],
        })
    }
}

/// Writes the simulated subject in the dataset layout (docs/dataset-layout.md)
/// with [`dataset::save`] (betas as a 4-D NIfTI), so that `load_dataset` reads
/// it exactly as it reads real data, plus what the layout has no place for:
/// `ground_truth/signal.nii.gz` (noiseless responses as a 4-D NIfTI, one
/// volume per stimulus in the order of `ground_truth/stimuli.csv`, zero
/// outside the ROIs, which compresses to almost nothing; for noise ceilings),
/// `extra_images/` (images without fMRI) and the unlabeled extra fMRI in
/// `extra_fmri/` (`betas.npy`: trials × mask voxels in C order, `trials.csv`,
/// `stimuli/`). Returns the Dataset written, which equals what `load_dataset`
/// reads from `dir`.
pub fn save(sim: &Simulated, dir: &std::path::Path, name: &str) -> Result<Dataset> {
    use crate::io::table::{save_csv, Column, Table};
    let ds = sim.to_dataset(name)?;
    dataset::save(&ds, dir, OP)?;
    let io = |p: &std::path::Path, e| Error::io(OP, p, e);
    crate::sandbox::check_write(OP, dir.join("ground_truth").as_ref())?;
    std::fs::create_dir_all(dir.join("ground_truth")).map_err(|e| io(dir, e))?;
    let n_fmri = sim.signal.size()[0] as usize;
    ds.mask
        .unmask(OP, &Tensor(sim.signal.shallow_clone()))?
        .save(&dir.join("ground_truth/signal.nii.gz"))?;
    let ids_table = |ids: &[String]| Table {
        columns: vec![("stimulus".into(), Column::Text(ids.to_vec()))],
    };
    save_csv(
        &ids_table(&sim.ids[..n_fmri]),
        &dir.join("ground_truth/stimuli.csv"),
    )?;
    if sim.scenes.len() > n_fmri {
        let extra = Tensor(tc(
            OP,
            sim.images
                .f_narrow(0, n_fmri as i64, (sim.scenes.len() - n_fmri) as i64),
        )?);
        images::save(
            OP,
            &extra,
            &sim.ids[n_fmri..],
            &dir.join("extra_images"),
            "png",
        )?;
    }
    let extra: Vec<usize> = (0..sim.trials.len())
        .filter(|&i| sim.trials[i].split == Split::Extra)
        .collect();
    if let (Some(&first), Some(&last)) = (extra.first(), extra.last()) {
        let rows = tc(
            OP,
            TchTensor::f_from_slice(&extra.iter().map(|&i| i as i64).collect::<Vec<_>>()),
        )?;
        crate::io::npy::save_npy(
            &Tensor(tc(OP, sim.betas.f_index_select(0, &rows))?),
            &dir.join("extra_fmri/betas.npy"),
        )?;
        // Extra stimuli are consecutive scenes, each shown once.
        let (s0, s1) = (sim.trials[first].stimulus, sim.trials[last].stimulus + 1);
        save_csv(
            &ids_table(&sim.ids[s0..s1]),
            &dir.join("extra_fmri/trials.csv"),
        )?;
        let imgs = Tensor(tc(OP, sim.images.f_narrow(0, s0 as i64, (s1 - s0) as i64))?);
        images::save(
            OP,
            &imgs,
            &sim.ids[s0..s1],
            &dir.join("extra_fmri/stimuli"),
            "png",
        )?;
    }
    Ok(ds)
}
