//! The simulated subject: a subject whose ground truth is known, for tests,
//! demos and labs.
//!
//! Stimuli are rendered scenes ([`super::scenes`]). The brain is a small
//! volume with named ROIs whose voxels follow known encoding models:
//! - V1, V2, V3: retinotopic population receptive fields (Gaussian pRFs whose
//!   size grows from V1 to V3) over local contrast energy, plus a colour
//!   channel preference;
//! - V4: tuned to the object's colour; LOC: to its shape and size;
//! - LANG: to the words of the caption (bag of words);
//! - AMY: to valence and arousal (the emotion-tuned region).
//!
//! Responses are the noiseless signal plus Gaussian noise at a chosen SNR
//! (signal sd / noise sd per voxel). The default design is GOD-like: 1200
//! training stimuli shown once and 50 test stimuli shown 35 times.

use tch::{Kind, Tensor as TchTensor};

use super::scenes::{self, Rng, Scene};
use crate::error::{Error, Result};
use crate::tensor::tc;

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
    /// Brain grid (x, y, z).
    pub grid: [usize; 3],
}

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
            snr: 1.0,
            grid: [20, 24, 18],
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
    /// 2 mm voxels centred on the grid.
    pub affine: [[f64; 4]; 4],
    /// ROI name → membership per masked voxel.
    pub rois: Vec<(String, Vec<bool>)>,
    pub noise_sd: f64,
}

/// ROIs: name, centre as a fraction of the grid, radius in voxels.
const ROIS: [(&str, [f64; 3], f64); 7] = [
    ("V1", [0.5, 0.08, 0.45], 3.0),
    ("V2", [0.5, 0.2, 0.45], 3.0),
    ("V3", [0.5, 0.32, 0.45], 3.0),
    ("V4", [0.3, 0.4, 0.35], 2.5),
    ("LOC", [0.7, 0.45, 0.35], 2.5),
    ("LANG", [0.25, 0.7, 0.6], 2.5),
    ("AMY", [0.65, 0.65, 0.25], 2.0),
];

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
    if !(opts.snr > 0.0 && opts.snr.is_finite()) {
        return Err(Error::invalid(
            OP,
            format!("snr must be a positive number, got {}", opts.snr),
        ));
    }
    if opts.grid.iter().any(|&g| !(12..=96).contains(&g)) {
        return Err(Error::invalid(
            OP,
            format!("grid sizes must be 12–96 voxels, got {:?}", opts.grid),
        ));
    }
    Ok(())
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
    let scenes: Vec<Scene> = (0..n_all).map(|_| Scene::random(&mut rng)).collect();
    let ids: Vec<String> = (0..n_all).map(|i| format!("stim{:04}", i + 1)).collect();
    let s = opts.image_size;
    let pixels = scenes::render_all(&scenes, s);
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
    let rois: Vec<(String, Vec<bool>)> = ROIS
        .iter()
        .map(|(name, c, r)| {
            let centre = [c[0] * gx as f64, c[1] * gy as f64, c[2] * gz as f64];
            let member = coords
                .iter()
                .map(|p| {
                    (0..3)
                        .map(|k| (p[k] - centre[k]).powi(2))
                        .sum::<f64>()
                        .sqrt()
                        <= *r
                })
                .collect();
            (name.to_string(), member)
        })
        .collect();
    let roi_of = |v: usize| rois.iter().position(|(_, m)| m[v]);

    // Stimulus features for the fMRI stimuli.
    let fmri_images = tc(OP, images.f_narrow(0, 0, n_fmri as i64))?;
    let cells = 16i64;
    let (energy, colour) = coarse_features(&fmri_images, cells)?;
    let energy: Vec<f32> = tc(
        OP,
        Vec::<f32>::try_from(tc(OP, energy.f_contiguous())?.reshape([-1])),
    )?;
    let colour: Vec<f32> = tc(
        OP,
        Vec::<f32>::try_from(tc(OP, colour.f_contiguous())?.reshape([-1])),
    )?;
    let vocab = scenes::vocabulary();
    let words: Vec<Vec<f64>> = scenes[..n_fmri]
        .iter()
        .map(|sc| {
            let cap = sc.caption().replace(',', "");
            vocab
                .iter()
                .map(|w| cap.split(' ').filter(|t| t == w).count() as f64)
                .collect()
        })
        .collect();

    // Per-voxel encoding weights, drawn once (the ground truth).
    let mut signal = vec![0f64; n_fmri * n_vox];
    let c2 = (cells * cells) as usize;
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
                let mut w = vec![0f64; c2];
                let mut total = 0.0;
                for r in 0..cells as usize {
                    for c in 0..cells as usize {
                        let d2 = (c as f64 + 0.5 - cx).powi(2) + (r as f64 + 0.5 - cy).powi(2);
                        w[r * cells as usize + c] = (-d2 / (2.0 * sigma * sigma)).exp();
                        total += w[r * cells as usize + c];
                    }
                }
                for (i, sig) in signal.iter_mut().skip(v).step_by(n_vox).enumerate() {
                    let e: f64 = (0..c2)
                        .map(|k| w[k] * energy[i * c2 + k] as f64)
                        .sum::<f64>()
                        / total;
                    let col: f64 = (0..3)
                        .map(|ch| {
                            pref[ch]
                                * (0..c2)
                                    .map(|k| w[k] * colour[(i * 3 + ch) * c2 + k] as f64)
                                    .sum::<f64>()
                                / total
                        })
                        .sum();
                    *sig = 4.0 * e + 0.5 * col;
                }
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
    // Standardise each responsive voxel's signal so SNR means the same everywhere.
    for v in 0..n_vox {
        let col: Vec<f64> = signal.iter().skip(v).step_by(n_vox).copied().collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let sd = (col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
        for (i, x) in col.iter().enumerate() {
            signal[i * n_vox + v] = if sd > 1e-12 { (x - mean) / sd } else { 0.0 };
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
    for (t, trial) in trials.iter().enumerate() {
        for v in 0..n_vox {
            betas[t * n_vox + v] =
                (signal[trial.stimulus * n_vox + v] + noise_sd * rng.normal()) as f32;
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
    let half = |g: usize| -(g as f64) + 1.0;
    let affine = [
        [2.0, 0.0, 0.0, half(gx)],
        [0.0, 2.0, 0.0, half(gy)],
        [0.0, 0.0, 2.0, half(gz)],
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

fn shuffle(v: &mut [usize], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// Writes the simulated subject in the dataset layout (docs/dataset-layout.md)
/// so that `load_dataset` reads it exactly as it reads real data, plus the
/// ground truth beside it: `ground_truth/signal.npy` (noiseless responses,
/// stimuli × voxels, rows in the order of `ground_truth/stimuli.csv`) and
/// `extra_images/` (images without fMRI). Extra fMRI trials are not written:
/// the layout has no unlabeled split yet.
pub fn save(sim: &Simulated, dir: &std::path::Path) -> Result<()> {
    use crate::data::Volume;
    use crate::io::table::{save_csv, Column, Table};
    use crate::tensor::Tensor;
    let io = |p: &std::path::Path, e| Error::io(OP, p, e);
    std::fs::create_dir_all(dir.join("rois")).map_err(|e| io(dir, e))?;
    std::fs::create_dir_all(dir.join("ground_truth")).map_err(|e| io(dir, e))?;
    let labeled: Vec<usize> = sim
        .trials
        .iter()
        .enumerate()
        .filter(|(_, t)| t.split != Split::Extra)
        .map(|(i, _)| i)
        .collect();
    let rows = tc(
        OP,
        TchTensor::f_from_slice(&labeled.iter().map(|&i| i as i64).collect::<Vec<_>>()),
    )?;
    crate::io::npy::save_npy(
        &Tensor(tc(OP, sim.betas.f_index_select(0, &rows))?),
        &dir.join("betas.npy"),
    )?;
    let [gx, gy, gz] = sim.grid;
    let grid_volume = |member: &dyn Fn(usize) -> bool| -> Result<Volume> {
        let mut values = vec![0f64; gx * gy * gz];
        let mut v = 0;
        for (g, &inside) in sim.brain.iter().enumerate() {
            if inside {
                if member(v) {
                    values[g] = 1.0;
                }
                v += 1;
            }
        }
        let t = Tensor::from_f64(OP, &values, &[gx as i64, gy as i64, gz as i64], Kind::Float)?;
        let t = Tensor(tc(OP, t.0.f_to_device(tch::Device::Cpu))?);
        Volume::from_tensor(OP, t, sim.affine)
    };
    grid_volume(&|_| true)?.save(&dir.join("mask.nii.gz"))?;
    let mut rois = serde_json::Map::new();
    for (name, member) in &sim.rois {
        grid_volume(&|v| member[v])?.save(&dir.join(format!("rois/{name}.nii.gz")))?;
        rois.insert(
            name.clone(),
            serde_json::Value::String(format!("rois/{name}.nii.gz")),
        );
    }
    let text = |v: Vec<String>| Column::Text(v);
    save_csv(
        &Table {
            columns: vec![
                (
                    "stimulus".into(),
                    text(
                        labeled
                            .iter()
                            .map(|&i| sim.ids[sim.trials[i].stimulus].clone())
                            .collect(),
                    ),
                ),
                (
                    "split".into(),
                    text(
                        labeled
                            .iter()
                            .map(|&i| sim.trials[i].split.name().to_string())
                            .collect(),
                    ),
                ),
                (
                    "repeat".into(),
                    Column::Number(
                        labeled
                            .iter()
                            .map(|&i| sim.trials[i].repeat as f64)
                            .collect(),
                    ),
                ),
            ],
        },
        &dir.join("trials.csv"),
    )?;
    let n_labeled = sim
        .trials
        .iter()
        .filter(|t| t.split != Split::Extra)
        .map(|t| t.stimulus + 1)
        .max()
        .unwrap_or(0);
    let ids = &sim.ids[..n_labeled];
    let scenes = &sim.scenes[..n_labeled];
    let images = Tensor(tc(OP, sim.images.f_narrow(0, 0, n_labeled as i64))?);
    crate::data::images::save(OP, &images, ids, &dir.join("stimuli"), "png")?;
    let n_fmri = sim.signal.size()[0] as usize;
    if sim.scenes.len() > n_fmri {
        let extra = Tensor(tc(
            OP,
            sim.images
                .f_narrow(0, n_fmri as i64, (sim.scenes.len() - n_fmri) as i64),
        )?);
        crate::data::images::save(
            OP,
            &extra,
            &sim.ids[n_fmri..],
            &dir.join("extra_images"),
            "png",
        )?;
    }
    let captions: serde_json::Map<String, serde_json::Value> = ids
        .iter()
        .zip(scenes)
        .map(|(id, s)| (id.clone(), serde_json::Value::String(s.caption())))
        .collect();
    let json = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    crate::io::write_atomic(
        OP,
        &dir.join("captions.json"),
        json(&serde_json::Value::Object(captions)).as_bytes(),
    )?;
    save_csv(
        &Table {
            columns: vec![
                ("stimulus".into(), text(ids.to_vec())),
                (
                    "label".into(),
                    text(scenes.iter().map(|s| s.category_name()).collect()),
                ),
            ],
        },
        &dir.join("labels.csv"),
    )?;
    save_csv(
        &Table {
            columns: vec![
                ("stimulus".into(), text(ids.to_vec())),
                (
                    "valence".into(),
                    Column::Number(scenes.iter().map(|s| s.valence).collect()),
                ),
                (
                    "arousal".into(),
                    Column::Number(scenes.iter().map(|s| s.arousal).collect()),
                ),
            ],
        },
        &dir.join("ratings.csv"),
    )?;
    crate::io::npy::save_npy(
        &Tensor(sim.signal.shallow_clone()),
        &dir.join("ground_truth/signal.npy"),
    )?;
    save_csv(
        &Table {
            columns: vec![("stimulus".into(), text(sim.ids[..n_fmri].to_vec()))],
        },
        &dir.join("ground_truth/stimuli.csv"),
    )?;
    let manifest = serde_json::json!({
        "format": 1,
        "name": "simulated",
        "betas": "betas.npy",
        "mask": "mask.nii.gz",
        "rois": rois,
        "trials": "trials.csv",
        "stimuli": "stimuli",
        "captions": "captions.json",
        "labels": "labels.csv",
        "ratings": "ratings.csv",
    });
    crate::io::write_atomic(OP, &dir.join("dataset.json"), json(&manifest).as_bytes())
}
