//! Script face of [`crate::data`]: NIfTI volumes.

use std::path::Path;

use rhai::{Array, Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::session::Session;
use super::tensor::{array_to_values, to_tensor};
use crate::data::Volume;
use crate::error::{Error, Result};
use crate::io::nifti::HeaderValue;
use crate::tensor::{shape_text, Tensor};

pub static LOAD_NIFTI: FnDoc = FnDoc {
    name: "load_nifti", domain: "data",
    signature: "load_nifti(path: string, opts?: map) -> Volume",
    summary: "Reads a NIfTI-1/2 image (.nii, .nii.gz, .hdr/.img; any endianness and numeric type, scaling applied as nibabel does); .data is x·y·z[·t] as nibabel's get_fdata(), .affine nibabel's get_best_affine().",
    options: &[OptDoc { name: "dtype", ty: "string", default: "f32", meaning: "f32 or f64 for .data" }],
    example: "let v = load_nifti(save_nifti(randn([4, 5, 6]), \"r.nii.gz\"));\nprint(v.shape);   // [4, 5, 6]",
};
pub static SAVE_NIFTI: FnDoc = FnDoc {
    name: "save_nifti", domain: "data",
    signature: "save_nifti(v: Volume | Tensor, path: string, opts?: map) -> string",
    summary: "Writes .nii or .nii.gz (float32 unless the data is f64) with the affine in sform and qform; returns the path.",
    options: &[
        OptDoc { name: "affine", ty: "Tensor 4×4", default: "none", meaning: "voxel → world matrix for a tensor (default: the volume's, or 1 mm identity)" },
        OptDoc { name: "tr", ty: "float", default: "none", meaning: "repetition time in seconds for 4-D data" },
    ],
    example: "save_nifti(zeros([10, 10, 10]), \"blank.nii\", #{affine: eye(4) * 2});",
};
pub static VOLUME: FnDoc = FnDoc {
    name: "Volume", domain: "data",
    signature: "v.data -> Tensor\nv.affine -> Tensor (4×4, f64)\nv.shape -> array\nv.voxel_size -> array\nv.tr -> float or ()\nv.header -> map",
    summary: "A brain image: voxel data with its affine, voxel sizes, TR and raw header fields.",
    options: &[],
    example: "let v = load_nifti(save_nifti(ones([2, 3, 4, 5]), \"bold.nii\", #{tr: 2.0}));\nprint(v.tr);          // 2.0\nprint(v.data.shape);  // [2, 3, 4, 5]",
};

fn affine_from(op: &'static str, v: &Dynamic) -> Result<[[f64; 4]; 4]> {
    let values = if let Some(arr) = v.read_lock::<Array>() {
        let (vals, shape) = array_to_values(op, &arr)?;
        if shape != [4, 4] {
            return Err(Error::shape(op, "affine", "4×4", shape_text(&shape)));
        }
        vals
    } else {
        let t = to_tensor(op, v)?;
        if t.shape() != [4, 4] {
            return Err(Error::shape(op, "affine", "4×4", shape_text(&t.shape())));
        }
        t.to_f64_vec(op)?
    };
    let mut a = [[0.0; 4]; 4];
    for (i, x) in values.into_iter().enumerate() {
        a[i / 4][i % 4] = x;
    }
    Ok(a)
}

fn header_value(v: &HeaderValue) -> Dynamic {
    match v {
        HeaderValue::Int(i) => Dynamic::from_int(*i),
        HeaderValue::Float(x) => Dynamic::from_float(*x),
        HeaderValue::Text(s) => Dynamic::from(s.clone()),
        HeaderValue::Ints(v) => {
            Dynamic::from_array(v.iter().map(|&i| Dynamic::from_int(i)).collect())
        }
        HeaderValue::Floats(v) => {
            Dynamic::from_array(v.iter().map(|&x| Dynamic::from_float(x)).collect())
        }
    }
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    for doc in [&LOAD_NIFTI, &SAVE_NIFTI, &VOLUME] {
        help.add(doc);
    }
    engine.register_type_with_name::<Volume>("Volume");
    engine.register_fn("to_string", |v: &mut Volume| v.to_string());
    engine.register_fn("to_debug", |v: &mut Volume| v.to_string());
    engine.register_get("data", |v: &mut Volume| v.data.clone());
    engine.register_get("shape", |v: &mut Volume| -> Array {
        v.shape().into_iter().map(Dynamic::from_int).collect()
    });
    engine.register_get("voxel_size", |v: &mut Volume| -> Array {
        v.voxel_size
            .iter()
            .map(|&x| Dynamic::from_float(x))
            .collect()
    });
    engine.register_get("tr", |v: &mut Volume| {
        v.tr.map_or(Dynamic::UNIT, Dynamic::from_float)
    });
    engine.register_get("header", |v: &mut Volume| -> Map {
        v.header
            .iter()
            .map(|(k, x)| (k.as_str().into(), header_value(x)))
            .collect()
    });
    engine.register_get("affine", |v: &mut Volume| -> RhaiResult<Tensor> {
        guard("affine", || {
            let flat: Vec<f64> = v.affine.iter().flatten().copied().collect();
            Tensor::from_f64("affine", &flat, &[4, 4], tch::Kind::Double)
        })
    });

    let load = |path: &str, opts: Map| -> RhaiResult<Volume> {
        guard("load_nifti", || {
            let opts = Opts::parse(&LOAD_NIFTI, opts)?;
            let f64 = opts.choice("dtype", &["f32", "f64"])? == "f64";
            let mut v = Volume::load(Path::new(path), f64)?;
            v.data = Tensor(crate::tensor::tc(
                "load_nifti",
                v.data.0.f_to_device(crate::device::current()),
            )?);
            Ok(v)
        })
    };
    engine.register_fn("load_nifti", move |p: &str| load(p, Map::new()));
    engine.register_fn("load_nifti", load);

    let s = session.clone();
    let save = move |v: Dynamic, path: &str, opts: Map| -> RhaiResult<String> {
        guard("save_nifti", || {
            let opts = Opts::parse(&SAVE_NIFTI, opts)?;
            let mut vol = match v.read_lock::<Volume>() {
                Some(vol) => vol.clone(),
                None => {
                    let identity = [
                        [1.0, 0.0, 0.0, 0.0],
                        [0.0, 1.0, 0.0, 0.0],
                        [0.0, 0.0, 1.0, 0.0],
                        [0.0, 0.0, 0.0, 1.0],
                    ];
                    Volume::from_tensor("save_nifti", to_tensor("save_nifti", &v)?, identity)?
                }
            };
            if let Some(a) = opts.raw("affine") {
                let fresh = Volume::from_tensor(
                    "save_nifti",
                    vol.data.clone(),
                    affine_from("save_nifti", &a)?,
                )?;
                vol.affine = fresh.affine;
                vol.voxel_size = fresh.voxel_size;
            }
            if let Some(tr) = opts.opt_f64("tr")? {
                if !(tr > 0.0 && tr.is_finite()) {
                    return Err(Error::invalid(
                        "save_nifti",
                        format!("tr must be a positive number of seconds, got {tr}"),
                    ));
                }
                vol.tr = Some(tr);
            }
            let out = s.output_path(path);
            vol.save(&out)?;
            s.wrote(&out);
            Ok(out.display().to_string())
        })
    };
    let save2 = save.clone();
    engine.register_fn("save_nifti", move |v: Dynamic, p: &str| {
        save2(v, p, Map::new())
    });
    engine.register_fn("save_nifti", save);
}

// ---------------------------------------------------------------------------
// The simulated subject.

pub static SIMULATE_SUBJECT: FnDoc = FnDoc {
    name: "simulate_subject", domain: "data",
    signature: "simulate_subject(opts?: map) -> map",
    summary: "A subject with known ground truth: rendered scenes (shape × colour = 54 categories, captions, valence/arousal ratings) and voxel responses from known encoding models in ROIs V1–V3 (retinotopic pRFs), V4 (colour), LOC (shape), LANG (caption words), AMY (valence); GOD-like trials. Returns #{images, ids, captions, labels, categories, valence, arousal, betas, signal, trials: #{stimulus, split, repeat}, train, test, rois, mask, noise_sd}.",
    options: &[
        OptDoc { name: "seed", ty: "int", default: "0", meaning: "everything is deterministic given the seed" },
        OptDoc { name: "n_train", ty: "int", default: "1200", meaning: "training stimuli, each shown once" },
        OptDoc { name: "n_test", ty: "int", default: "50", meaning: "test stimuli" },
        OptDoc { name: "test_repeats", ty: "int", default: "35", meaning: "presentations of each test stimulus" },
        OptDoc { name: "n_extra_fmri", ty: "int", default: "0", meaning: "unlabeled extra fMRI trials (unseen stimuli)" },
        OptDoc { name: "n_extra_images", ty: "int", default: "0", meaning: "extra images without fMRI" },
        OptDoc { name: "image_size", ty: "int", default: "64", meaning: "rendered image height and width" },
        OptDoc { name: "snr", ty: "float", default: "1.0", meaning: "signal sd / noise sd of single-trial responses" },
        OptDoc { name: "grid", ty: "array of int", default: "[20, 24, 18]", meaning: "brain grid size (2 mm voxels)" },
    ],
    example: "let s = simulate_subject(#{n_train: 40, n_test: 5, test_repeats: 2, image_size: 32});\nprint(s.betas.shape);     // [50, voxels]\nprint(s.captions[0]);",
};

fn int_tensor(op: &'static str, v: &[i64]) -> Result<Tensor> {
    Ok(Tensor(crate::tensor::tc(op, tch::Tensor::f_from_slice(v))?))
}

fn f64_tensor(op: &'static str, v: &[f64]) -> Result<Tensor> {
    Tensor::from_f64(op, v, &[v.len() as i64], tch::Kind::Float)
}

fn simulated_map(sim: crate::data::simulate::Simulated) -> Result<Map> {
    use crate::data::simulate::Split;
    const OP: &str = "simulate_subject";
    let mut m = Map::new();
    let strings = |v: Vec<String>| Dynamic::from_array(v.into_iter().map(Dynamic::from).collect());
    m.insert("images".into(), Dynamic::from(Tensor(sim.images)));
    m.insert("ids".into(), strings(sim.ids.clone()));
    m.insert(
        "captions".into(),
        strings(sim.scenes.iter().map(|s| s.caption()).collect()),
    );
    m.insert(
        "categories".into(),
        strings(sim.scenes.iter().map(|s| s.category_name()).collect()),
    );
    m.insert(
        "labels".into(),
        Dynamic::from(int_tensor(
            OP,
            &sim.scenes
                .iter()
                .map(|s| s.category() as i64)
                .collect::<Vec<_>>(),
        )?),
    );
    m.insert(
        "valence".into(),
        Dynamic::from(f64_tensor(
            OP,
            &sim.scenes.iter().map(|s| s.valence).collect::<Vec<_>>(),
        )?),
    );
    m.insert(
        "arousal".into(),
        Dynamic::from(f64_tensor(
            OP,
            &sim.scenes.iter().map(|s| s.arousal).collect::<Vec<_>>(),
        )?),
    );
    m.insert("betas".into(), Dynamic::from(Tensor(sim.betas)));
    m.insert("signal".into(), Dynamic::from(Tensor(sim.signal)));
    let mut trials = Map::new();
    trials.insert(
        "stimulus".into(),
        Dynamic::from(int_tensor(
            OP,
            &sim.trials
                .iter()
                .map(|t| t.stimulus as i64)
                .collect::<Vec<_>>(),
        )?),
    );
    trials.insert(
        "split".into(),
        strings(
            sim.trials
                .iter()
                .map(|t| t.split.name().to_string())
                .collect(),
        ),
    );
    trials.insert(
        "repeat".into(),
        Dynamic::from(int_tensor(
            OP,
            &sim.trials
                .iter()
                .map(|t| t.repeat as i64)
                .collect::<Vec<_>>(),
        )?),
    );
    m.insert("trials".into(), Dynamic::from_map(trials));
    let rows = |split: Split| -> Result<Tensor> {
        int_tensor(
            OP,
            &sim.trials
                .iter()
                .enumerate()
                .filter(|(_, t)| t.split == split)
                .map(|(i, _)| i as i64)
                .collect::<Vec<_>>(),
        )
    };
    m.insert("train".into(), Dynamic::from(rows(Split::Train)?));
    m.insert("test".into(), Dynamic::from(rows(Split::Test)?));
    let mut rois = Map::new();
    for (name, member) in &sim.rois {
        let v: Vec<f64> = member.iter().map(|&b| f64::from(u8::from(b))).collect();
        rois.insert(
            name.as_str().into(),
            Dynamic::from(Tensor::from_f64(
                OP,
                &v,
                &[v.len() as i64],
                tch::Kind::Bool,
            )?),
        );
    }
    m.insert("rois".into(), Dynamic::from_map(rois));
    let [gx, gy, gz] = sim.grid;
    let mask: Vec<f64> = sim.brain.iter().map(|&b| f64::from(u8::from(b))).collect();
    let mask = Tensor::from_f64(
        OP,
        &mask,
        &[gx as i64, gy as i64, gz as i64],
        tch::Kind::Float,
    )?;
    m.insert(
        "mask".into(),
        Dynamic::from(Volume::from_tensor(OP, mask, sim.affine)?),
    );
    m.insert("noise_sd".into(), Dynamic::from_float(sim.noise_sd));
    Ok(m)
}

pub fn register_simulation(engine: &mut Engine, help: &mut HelpRegistry) {
    help.add(&SIMULATE_SUBJECT);
    let simulate = |opts: Map| -> RhaiResult<Map> {
        guard("simulate_subject", || {
            const OP: &str = "simulate_subject";
            let o = Opts::parse(&SIMULATE_SUBJECT, opts)?;
            let count = |key: &str| -> Result<usize> {
                let v = o.i64(key)?;
                usize::try_from(v).map_err(|_| Error::BadOption {
                    op: OP,
                    key: key.into(),
                    expected: "an integer ≥ 0".into(),
                    got: v.to_string(),
                })
            };
            let grid = o.opt_f64_list("grid")?.unwrap_or_default();
            let [gx, gy, gz] = grid.as_slice() else {
                return Err(Error::BadOption {
                    op: OP,
                    key: "grid".into(),
                    expected: "three integers".into(),
                    got: format!("{} values", grid.len()),
                });
            };
            let opts = crate::data::simulate::SimOptions {
                seed: o.i64("seed")? as u64,
                n_train: count("n_train")?,
                n_test: count("n_test")?,
                test_repeats: count("test_repeats")?,
                n_extra_images: count("n_extra_images")?,
                n_extra_fmri: count("n_extra_fmri")?,
                image_size: count("image_size")?,
                snr: o.f64("snr")?,
                grid: [*gx as usize, *gy as usize, *gz as usize],
            };
            simulated_map(crate::data::simulate::simulate(&opts)?)
        })
    };
    engine.register_fn("simulate_subject", move || simulate(Map::new()));
    engine.register_fn("simulate_subject", simulate);
}
