//! Script face of the voxel-conditioned GAN ([`crate::models::voxel_gan`],
//! Yu et al. 2020): `train_voxel_gan`, the VoxelGan type, and its form of the
//! shared verb `reconstruct`.

use std::rc::Rc;

use rhai::{Dynamic, Engine, Map, INT};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::reconstruction::form_options;
use super::session::Session;
use crate::data::dataset::Dataset;
use crate::data::images::ImageSet;
use crate::error::{Error, Result};
use crate::models::reconstruct::Reconstructor;
use crate::models::train::History;
use crate::models::voxel_gan::{self, Sampling, VoxelGan, VoxelGanConfig, VoxelGanOptions};
use crate::tensor::{tc, Tensor};

const OP: &str = "train_voxel_gan";

/// A trained GAN as scripts hold it, with its training history.
#[derive(Clone)]
pub struct VoxelGanValue(pub Rc<VoxelGan>, pub Rc<History>);

impl std::fmt::Display for VoxelGanValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.0;
        write!(
            f,
            "VoxelGan[{} voxels{} → {}×{} RGB; z {}, c {}; ngf {}, ndf {}; {:.2}M parameters; {} epochs]",
            m.voxels,
            m.rois
                .as_ref()
                .map_or(String::new(), |r| format!(" ({})", r.join(", "))),
            m.image_size,
            m.image_size,
            m.config.z_dim,
            m.config.cond_dim,
            m.config.ngf,
            m.config.ndf,
            m.parameter_count() as f64 / 1e6,
            self.1.epochs
        )
    }
}

pub static TRAIN_VOXEL_GAN: FnDoc = FnDoc {
    name: "train_voxel_gan", domain: "reconstruction",
    signature: "train_voxel_gan(ds: Dataset, opts?: map) -> VoxelGan",
    summary: "Yu et al. 2020's image reconstruction: a text-to-image GAN whose sentence embedding is the voxel response, trained on the dataset's training trials (split \"train\": betas and the image of each trial). Conditioning augmentation (StackGAN): a linear map of the standardised voxels to μ and log σ², c = μ + σ·ε, KL weight kl_weight. Generator: z (100-d) ⊕ c → 4×4 → up-blocks (nearest ×2, 3×3 conv, batch norm, ReLU) → tanh RGB at the images' size. Discriminator: 4×4 stride-2 down-blocks to 4×4, then its own projection of the voxels (linear to the condition's width, LeakyReLU 0.2) tiled 4×4 and concatenated, as GAN-CLS does with the sentence embedding (StackGAN's arrangement, μ handed to the discriminator, let the KL term shrink the condition away on the simulated subject). Matching-aware loss: real image with its own voxels → real, with another trial's → fake (× 0.5), generated → fake (× 0.5); non-saturating generator loss; optional R1 penalty. Both networks train through the one trainer (help(\"Training\")) as two parameter groups, each with its own Adam; the last epoch is kept (there is no validation metric). With samples_dir, a fixed grid (the same voxels, z and ε: the first 8 test trials averaged over repeats, or training trials when the dataset has no test split) is written every sample_every epochs as epoch-NNNN.png, true images above samples. Images must be square with 4·2^k pixels (8, 16, 32, 64, 128 …). size: \"small\" (c 64-d, ngf = ndf = 16; minutes on 2 CPU cores at 32 px) or \"paper\" (c 128-d, ngf = ndf = 64, GAN-CLS's widths; for a GPU). History: train_d_loss, train_g_loss, train_kl, train_d_real, train_d_wrong, train_d_fake (mean D outputs) and train_r1.",
    options: crate::training_options!([
        OptDoc { name: "size", ty: "string", default: "small", meaning: "small or paper (the widths below override it)" },
        OptDoc { name: "z_dim", ty: "int", default: "none", meaning: "noise dimensions (100)" },
        OptDoc { name: "cond_dim", ty: "int", default: "none", meaning: "dimensions of the condition c (small: 64, paper: 128)" },
        OptDoc { name: "ngf", ty: "int", default: "none", meaning: "generator width: 8·ngf channels at 4×4, halved per up-block (small: 16, paper: 64)" },
        OptDoc { name: "ndf", ty: "int", default: "none", meaning: "discriminator width: ndf after the first down-block, doubled per block up to 8·ndf (small: 16, paper: 64)" },
        OptDoc { name: "kl_weight", ty: "float", default: "2.0", meaning: "weight of the conditioning augmentation's KL term" },
        OptDoc { name: "r1_gamma", ty: "float", default: "0.0", meaning: "γ of the R1 penalty γ/2·E‖∇D(x, c)‖² on real pairs (0: none)" },
        OptDoc { name: "rois", ty: "array of string", default: "none", meaning: "the ROIs whose voxels condition the GAN, in order (default: every voxel of the dataset)" },
        OptDoc { name: "samples_dir", ty: "string", default: "none", meaning: "folder (in the output folder) for the sample grids; none: no grids" },
        OptDoc { name: "sample_every", ty: "int", default: "5", meaning: "epochs between sample grids (and after the last)" },
    ], epochs: "100", batch: "64", lr: "0.0002", optimizer: "adam", weight_decay: "0.0"),
    example: "let ds = simulate_subject(#{n_train: 40, n_test: 4, test_repeats: 2, image_size: 16, grid: [16, 16, 16], save: false});\nlet gan = train_voxel_gan(ds, #{epochs: 2, batch: 20, betas: [0.5, 0.999], seed: 0, verbose: false});\nprint(gan);\nprint(gan.history.train_d_loss);\nlet recon = reconstruct(gan, ds.test().average_repeats(), #{samples: 1, seed: 0});\nprint(recon);",
};

pub static VOXEL_GAN_TYPE: FnDoc = FnDoc {
    name: "VoxelGan", domain: "reconstruction",
    signature: "gan.voxels -> int\ngan.image_size -> int\ngan.rois -> array or ()\ngan.history -> map",
    summary: "A voxel-conditioned GAN from train_voxel_gan: the voxels a condition has, the image size it draws, the ROIs it reads (() for all of a dataset's voxels) and its training history (help(\"Training\")). reconstruct(gan, betas_or_dataset, #{samples, seed}) draws images from it.",
    options: &[],
    example: "let ds = simulate_subject(#{n_train: 20, n_test: 2, test_repeats: 1, image_size: 16, grid: [12, 12, 12], save: false});\nlet gan = train_voxel_gan(ds, #{epochs: 1, batch: 10, seed: 0, verbose: false});\nprint([gan.voxels, gan.image_size]);",
};

/// The betas a GAN reads from a dataset: its ROIs' voxels, or all.
fn voxels_of(
    op: &'static str,
    ds: &Dataset,
    rois: Option<&[String]>,
) -> Result<crate::tensor::Tensor> {
    match rois {
        None => Ok(ds.betas.clone()),
        Some(names) => {
            let parts = names
                .iter()
                .map(|r| Ok(ds.roi(op, r)?.0))
                .collect::<Result<Vec<_>>>()?;
            Ok(Tensor(tc(op, tch::Tensor::f_cat(&parts, 1))?))
        }
    }
}

fn positive(o: &Opts, key: &str, v: &mut i64) -> Result<()> {
    if let Some(x) = o.opt_i64(key)? {
        *v = x;
    }
    Ok(())
}

fn gan_options(o: &Opts, session: &Session) -> Result<VoxelGanOptions> {
    let device = crate::device::current();
    let defaults = VoxelGanOptions::new(device);
    let mut config = VoxelGanConfig::parse(OP, &o.string("size")?)?;
    positive(o, "z_dim", &mut config.z_dim)?;
    positive(o, "cond_dim", &mut config.cond_dim)?;
    positive(o, "ngf", &mut config.ngf)?;
    positive(o, "ndf", &mut config.ndf)?;
    config.kl_weight = o.f64("kl_weight")?;
    config.validate(OP)?;
    let sample_every = o.i64("sample_every")?;
    if sample_every < 1 {
        return Err(Error::BadOption {
            op: OP,
            key: "sample_every".into(),
            expected: "an integer ≥ 1 (epochs)".into(),
            got: sample_every.to_string(),
        });
    }
    Ok(VoxelGanOptions {
        config,
        r1_gamma: o.f64("r1_gamma")?,
        sample_every: sample_every as usize,
        samples_dir: o
            .opt_string("samples_dir")?
            .map(|d| session.output_path(&d)),
        device,
        train: super::train::train_config_from(o, OP, defaults.train, session)?,
    })
}

fn train(ds: &Dataset, opts: Map, session: &Session) -> Result<VoxelGanValue> {
    let o = Opts::parse(&TRAIN_VOXEL_GAN, opts)?;
    let options = gan_options(&o, session)?;
    let rois = o.opt_string_list("rois")?;
    if rois.as_ref().is_some_and(|r| r.is_empty()) {
        return Err(Error::BadOption {
            op: OP,
            key: "rois".into(),
            expected: "at least one ROI name".into(),
            got: "[]".into(),
        });
    }
    let train = ds.split(OP, "train")?;
    if train.is_empty() {
        return Err(Error::invalid(
            OP,
            format!(
                "the dataset has no training trials (split \"train\"; it has {} trials)",
                ds.len()
            ),
        ));
    }
    let Some(images) = train.trial_images(OP)? else {
        return Err(Error::invalid(
            OP,
            "the dataset has no stimulus images (train_voxel_gan needs the image of each training trial)",
        ));
    };
    let voxels = voxels_of(OP, &train, rois.as_deref())?;
    let test = ds.split(OP, "test")?;
    let grid_set = if test.is_empty() {
        train.clone()
    } else {
        test.average_repeats(OP)?
    };
    let grid = match grid_set.trial_images(OP)? {
        Some(img) => Some((voxels_of(OP, &grid_set, rois.as_deref())?, img.data)),
        None => None,
    };
    let (mut gan, history) = voxel_gan::train_voxel_gan(
        &voxels.0,
        &images.data.0,
        grid.as_ref().map(|(v, x)| (&v.0, &x.0)),
        &options,
    )?;
    gan.rois = rois;
    if let Some(dir) = options.samples_dir.as_ref().filter(|d| d.exists()) {
        // The sample grids join the run record's files.
        session.wrote(dir);
    }
    Ok(VoxelGanValue(Rc::new(gan), Rc::new(history)))
}

/// reconstruct(gan, …): the GAN's form of the shared verb; `ids` name the
/// rows of betas.
fn reconstruct(gan: &VoxelGan, betas: &Tensor, ids: Vec<String>, opts: Map) -> Result<ImageSet> {
    const OP: &str = "reconstruct";
    let o = form_options("VoxelGan", &["samples", "seed", "condition_noise"], opts)?;
    let samples = o.i64("samples")?;
    // The shared entry documents "none" (the diffusion form's default); the GAN draws from 0.
    let seed = o.opt_i64("seed")?.unwrap_or(0);
    if samples < 1 || seed < 0 {
        let (key, v) = if samples < 1 {
            ("samples", samples)
        } else {
            ("seed", seed)
        };
        return Err(Error::BadOption {
            op: OP,
            key: key.into(),
            expected: if samples < 1 {
                "an integer ≥ 1"
            } else {
                "an integer ≥ 0"
            }
            .into(),
            got: v.to_string(),
        });
    }
    let sampling = Sampling {
        samples: samples as usize,
        seed: seed as u64,
        condition_noise: o.bool("condition_noise")?,
    };
    let mut out = gan.reconstruct(betas, &sampling)?;
    if ids.len() * sampling.samples == out.ids.len() {
        out.ids = if samples == 1 {
            ids
        } else {
            ids.iter()
                .flat_map(|id| (1..=samples).map(move |k| format!("{id}_{k}")))
                .collect()
        };
    }
    Ok(out)
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    help.add(&TRAIN_VOXEL_GAN);
    help.add(&VOXEL_GAN_TYPE);
    engine.register_type_with_name::<VoxelGanValue>("VoxelGan");
    engine.register_fn("to_string", |m: &mut VoxelGanValue| m.to_string());
    engine.register_fn("to_debug", |m: &mut VoxelGanValue| m.to_string());
    engine.register_get("voxels", |m: &mut VoxelGanValue| m.0.voxels as INT);
    engine.register_get("image_size", |m: &mut VoxelGanValue| m.0.image_size as INT);
    engine.register_get("rois", |m: &mut VoxelGanValue| {
        m.0.rois.as_ref().map_or(Dynamic::UNIT, |r| {
            Dynamic::from_array(r.iter().cloned().map(Dynamic::from).collect())
        })
    });
    engine.register_get("history", |m: &mut VoxelGanValue| {
        Dynamic::from_map(super::train::history_map(&m.1))
    });
    let s = session.clone();
    engine.register_fn(
        "train_voxel_gan",
        move |ds: &mut Dataset, opts: Map| -> RhaiResult<VoxelGanValue> {
            guard(OP, || train(ds, opts, &s))
        },
    );
    let s = session.clone();
    engine.register_fn(
        "train_voxel_gan",
        move |ds: &mut Dataset| -> RhaiResult<VoxelGanValue> {
            guard(OP, || train(ds, Map::new(), &s))
        },
    );
    let from_tensor = |m: &mut VoxelGanValue, betas: Tensor, opts: Map| -> RhaiResult<ImageSet> {
        guard("reconstruct", || {
            let n = betas.0.size().first().copied().unwrap_or(0).max(0);
            let ids = (1..=n).map(|i| format!("recon{i:04}")).collect();
            reconstruct(&m.0, &betas, ids, opts)
        })
    };
    let from_dataset = |m: &mut VoxelGanValue, ds: Dataset, opts: Map| -> RhaiResult<ImageSet> {
        guard("reconstruct", || {
            if ds.is_empty() {
                return Err(Error::invalid(
                    "reconstruct",
                    "the dataset has no trials (expected the test trials to reconstruct, e.g. ds.test())",
                ));
            }
            let betas = voxels_of("reconstruct", &ds, m.0.rois.as_deref())?;
            let ids = ds.trials.iter().map(|t| t.stimulus.clone()).collect();
            reconstruct(&m.0, &betas, ids, opts)
        })
    };
    engine.register_fn("reconstruct", from_tensor);
    engine.register_fn("reconstruct", move |m: &mut VoxelGanValue, b: Tensor| {
        from_tensor(m, b, Map::new())
    });
    engine.register_fn("reconstruct", from_dataset);
    engine.register_fn("reconstruct", move |m: &mut VoxelGanValue, d: Dataset| {
        from_dataset(m, d, Map::new())
    });
}
