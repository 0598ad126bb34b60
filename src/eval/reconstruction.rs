//! The standard reconstruction scores, as Brain-Diffuser (Ozcelik &
//! VanRullen 2023) and MindEye (Scotti et al. 2023) tabulate them, and the
//! n-way identification GOD papers report.
//!
//! - `pixcorr` and `ssim`: the means over image pairs of
//!   [`image_metrics::pixcorr`] and [`image_metrics::ssim`] (reconstructions
//!   resized to the true images' size, bilinear, as those functions do).
//! - Two-way identification in named feature spaces: each image set goes
//!   through the same feature function (the flattened pixels; stages of a
//!   ResNet; CLIP image embeddings; or feature matrices the caller computed)
//!   and [`identification`] compares every reconstruction's features with
//!   all true images' features (Pearson r by default, as Brain-Diffuser's
//!   evaluation): chance 0.5, p a one-sided permutation test of the
//!   pairing of reconstructions with true images (see [`identification`]).
//! - With `n_way`, the same in m-way top-1 form (GOD-style, random draws).
//!
//! ResNet spaces are the activations at the end of each residual layer (the
//! last convolution of `layerK` after its batch norm, see
//! [`ResNet::stage_names`]). Without a given network they come from a
//! ResNet18 with fixed random weights ([`ResNet::seeded`]): random
//! convolutional features still carry image structure, but only ImageNet
//! weights give numbers comparable with the papers'.

use tch::{Kind, Tensor as TchTensor};

use super::identification::{
    identification, Identification, IdentificationOptions, Metric, PTest, DEFAULT_PERMUTATIONS,
};
use super::image_metrics;
use crate::error::{Error, Result};
use crate::models::clip::Clip;
use crate::models::resnet::{Arch, ResNet};
use crate::tensor::{shape_text, tc, Tensor};

const OP: &str = "reconstruction_scores";

/// The seed of the fixed random ResNet18 used when no network is given.
pub const RANDOM_RESNET_SEED: u64 = 0x5EED_0F_2E5E7;

/// How [`reconstruction_scores`] scores.
pub struct ScoreOptions<'a> {
    /// Two-way identification on the flattened pixels ("pixels").
    pub pixels: bool,
    /// The feature network for the ResNet spaces (None: a fixed random ResNet18).
    pub resnet: Option<&'a ResNet>,
    /// ResNet spaces: "layer1" … "layer4" (the end of that residual layer)
    /// or any stage name; empty for none.
    pub resnet_layers: Vec<String>,
    /// CLIP image embeddings ("clip").
    pub clip: Option<&'a Clip>,
    /// Features computed elsewhere: (space name, reconstructions' features,
    /// true images' features), each items × features.
    pub features: Vec<(String, TchTensor, TchTensor)>,
    pub metric: Metric,
    /// Also m-way top-1 identification with this m (2 < m ≤ images).
    pub n_way: Option<i64>,
    /// Random draws per image for the m-way test.
    pub repeats: i64,
    pub seed: u64,
    /// How each identification's p-value is computed.
    pub test: PTest,
    /// Images per forward pass of a feature network.
    pub batch: i64,
}

impl Default for ScoreOptions<'_> {
    fn default() -> Self {
        ScoreOptions {
            pixels: true,
            resnet: None,
            resnet_layers: ["layer1", "layer2", "layer3", "layer4"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            clip: None,
            features: Vec::new(),
            metric: Metric::Correlation,
            n_way: None,
            repeats: 100,
            seed: 0,
            test: PTest::Permutation(DEFAULT_PERMUTATIONS),
            batch: 32,
        }
    }
}

/// Identification in one feature space.
pub struct SpaceScore {
    pub space: String,
    pub two_way: Identification,
    pub n_way: Option<Identification>,
}

pub struct ReconstructionScores {
    pub images: usize,
    pub pixcorr: Vec<f64>,
    pub ssim: Vec<f64>,
    pub spaces: Vec<SpaceScore>,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

impl ReconstructionScores {
    /// The scores by the names scripts record: pixcorr, ssim, and per space
    /// two_way_<space>, two_way_<space>_p, two_way_<space>_chance (and with
    /// n-way identification n_way_<space>, n_way_<space>_p, n_way_<space>_chance).
    pub fn named(&self) -> Vec<(String, f64)> {
        let mut out = vec![
            ("pixcorr".to_string(), mean(&self.pixcorr)),
            ("ssim".to_string(), mean(&self.ssim)),
        ];
        for s in &self.spaces {
            let mut put = |prefix: &str, id: &Identification| {
                let key = format!("{prefix}_{}", s.space);
                out.push((key.clone(), id.mean));
                out.push((format!("{key}_p"), id.p));
                out.push((format!("{key}_chance"), id.chance));
            };
            put("two_way", &s.two_way);
            if let Some(n) = &s.n_way {
                put("n_way", n);
            }
        }
        out
    }
}

/// Float64 N×3×H×W on the CPU (a 3×H×W image becomes a batch of one).
fn image_batch(what: &str, t: &TchTensor) -> Result<TchTensor> {
    let t = if t.dim() == 3 {
        tc(OP, t.f_unsqueeze(0))?
    } else {
        t.shallow_clone()
    };
    let s = t.size();
    if s.len() != 4 || s[1] != 3 {
        return Err(Error::shape(
            OP,
            what,
            "N×3×H×W RGB images in [0, 1]",
            shape_text(&s),
        ));
    }
    tc(
        OP,
        tc(OP, t.f_to_kind(Kind::Double))?.f_to_device(tch::Device::Cpu),
    )
}

pub fn reconstruction_scores(
    recon: &TchTensor,
    truth: &TchTensor,
    o: &ScoreOptions,
) -> Result<ReconstructionScores> {
    let truth = image_batch("truth", truth)?;
    let mut recon = image_batch("recon", recon)?;
    let (sr, st) = (recon.size(), truth.size());
    if sr[0] != st[0] {
        return Err(Error::shape(
            OP,
            "reconstructions",
            format!("{} images (one per true image)", st[0]),
            sr[0].to_string(),
        ));
    }
    let n = st[0];
    if n < 2 {
        return Err(Error::invalid(
            OP,
            format!("need at least 2 images to identify, got {n}"),
        ));
    }
    if let Some(m) = o.n_way {
        if m <= 2 || m > n {
            return Err(Error::BadOption {
                op: OP,
                key: "n_way".into(),
                expected: format!("an integer in 3…{n} (the number of images)"),
                got: m.to_string(),
            });
        }
    }
    if sr[2..] != st[2..] {
        recon = tc(
            OP,
            recon.f_upsample_bilinear2d([st[2], st[3]], false, None, None),
        )?;
    }
    let pixcorr = image_metrics::pixcorr(&truth, &recon)?;
    let ssim = image_metrics::ssim(&truth, &recon)?;

    let mut feature_pairs: Vec<(String, TchTensor, TchTensor)> = Vec::new();
    if o.pixels {
        feature_pairs.push((
            "pixels".into(),
            tc(OP, recon.f_flatten(1, -1))?,
            tc(OP, truth.f_flatten(1, -1))?,
        ));
    }
    if !o.resnet_layers.is_empty() {
        let owned;
        let net = match o.resnet {
            Some(n) => n,
            None => {
                owned = ResNet::seeded(Arch::ResNet18, 1, tch::Device::Cpu, RANDOM_RESNET_SEED)?;
                &owned
            }
        };
        let stages: Vec<String> = o
            .resnet_layers
            .iter()
            .map(|l| net.layer_stage(OP, l))
            .collect::<Result<_>>()?;
        let fr = net.features(&recon, &stages, o.batch, false)?;
        let ft = net.features(&truth, &stages, o.batch, false)?;
        for ((layer, (_, r)), (_, t)) in o.resnet_layers.iter().zip(fr).zip(ft) {
            feature_pairs.push((format!("resnet_{}", layer.replace('.', "_")), r, t));
        }
    }
    if let Some(clip) = o.clip {
        let b = o.batch.max(1) as usize;
        let r = clip.embed_images(OP, &recon, b)?;
        let t = clip.embed_images(OP, &truth, b)?;
        feature_pairs.push(("clip".into(), r, t));
    }
    for (name, r, t) in &o.features {
        let (a, b) = (r.size(), t.size());
        if a.len() != 2 || a != b || a[0] != n {
            return Err(Error::shape(
                OP,
                format!("features '{name}'"),
                format!("two {n} × features matrices of the same shape (reconstructions, truth)"),
                format!("{} and {}", shape_text(&a), shape_text(&b)),
            ));
        }
        feature_pairs.push((name.clone(), r.shallow_clone(), t.shallow_clone()));
    }

    let mut spaces = Vec::new();
    for (space, r, t) in feature_pairs {
        let (r, t) = (Tensor(r), Tensor(t));
        let two = IdentificationOptions {
            ways: 2,
            repeats: 1,
            metric: o.metric,
            seed: o.seed,
            test: o.test,
        };
        let two_way = identification(&r, &t, &two)?;
        let n_way = match o.n_way {
            Some(m) => Some(identification(
                &r,
                &t,
                &IdentificationOptions {
                    ways: m,
                    repeats: o.repeats,
                    ..two
                },
            )?),
            None => None,
        };
        spaces.push(SpaceScore {
            space,
            two_way,
            n_way,
        });
    }
    Ok(ReconstructionScores {
        images: n as usize,
        pixcorr,
        ssim,
        spaces,
    })
}
