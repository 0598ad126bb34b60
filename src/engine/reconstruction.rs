//! Script face of image reconstruction: the one verb `reconstruct` (every
//! reconstruction model adds its call form here, to the one help entry),
//! the standard scores `reconstruction_scores` and the figure
//! `plot_reconstructions`.

use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
use super::eval::images;
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::tensor::to_tensor;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::eval::reconstruction::{reconstruction_scores, ReconstructionScores, ScoreOptions};
use crate::eval::{Metric, PTest};
use crate::models::beliy::{self, Beliy, BeliyConfig, BeliyOptions, BeliyReconstruct, FirstConv};
use crate::models::reconstruct::{PixelDecoding, Reconstructor};
use crate::models::ridge::RidgeModel;
use crate::plot::{Figure, FigureKind};
use crate::tensor::Tensor;

/// Every call form of `reconstruct`, one line each; a model that
/// reconstructs adds its line, its options to [`RECONSTRUCT`]'s list and the
/// keys it takes to its [`form_options`] call.
pub static RECONSTRUCT: FnDoc = FnDoc {
    name: "reconstruct",
    domain: "reconstruction",
    signature: "reconstruct(model: RidgeModel, betas: Tensor, opts?: map) -> ImageSet\nreconstruct(model: Beliy, betas: Tensor | Dataset, opts?: map) -> ImageSet\nreconstruct(gan: VoxelGan, betas: Tensor | Dataset, opts?: map) -> ImageSet\nreconstruct(pipe: DiffusionPipeline, #{z: Tensor, c: Tensor | captions: array}, opts?: map) -> ImageSet",
    summary: "The one verb of every reconstruction model: brain responses in, stimulus images (N×3×H×W in [0, 1]) out, one per input row. \
Forms: a RidgeModel fitted from voxels to flattened RGB pixels (3·H·W targets in C order) is the linear baseline: its predictions reshaped to images and clipped to [0, 1]. \
Beliy (train_beliy): the decoder D applied to the responses standardised as in training (trials × the model's voxels, or a Dataset / trials × the training dataset's voxels, from which the model's ROI voxels are taken); images at the model's image_size. \
A VoxelGan (train_voxel_gan, Yu et al. 2020) draws `samples` images per trial from betas (trials × its voxels, standardised as its training betas were) or from a Dataset (its betas, or the GAN's ROIs' voxels; ids are the trials' stimuli, with _1, _2, … for several samples, a trial's samples together): c = μ + σ·ε and z drawn from seed, the generator with batch norm's running statistics. \
A DiffusionPipeline (load_diffusion, diffusion_pipeline) reconstructs as Takagi & Nishimoto: the predicted latents z (scaled, N×latent_channels×h×w, as encode_images gives) are decoded, the decoded images re-encoded (a posterior sample), noised to `strength` of the schedule and denoised in the last ⌊steps·strength⌋ DDIM steps with classifier-free guidance, conditioned on c (predicted conditioning, N×tokens×cond_dim) or on captions through the pipeline's text encoder (e.g. brain-generated captions); `samples` images per row, grouped by row. \
Each form takes only its own options (others are an error naming the form). Score the result with reconstruction_scores and draw it with plot_reconstructions.",
    options: &[
        OptDoc { name: "image_size", ty: "int | [h, w]", default: "none", meaning: "RidgeModel: the images' size (default: square, from the number of targets)" },
        OptDoc { name: "batch", ty: "int", default: "64", meaning: "Beliy: responses per forward pass" },
        OptDoc { name: "strength", ty: "float", default: "0.8", meaning: "DiffusionPipeline: how far the decoded z is noised, in (0, 1] (1: from pure noise)" },
        OptDoc { name: "steps", ty: "int", default: "50", meaning: "DiffusionPipeline: DDIM steps of the full schedule (≥ 1); strength·steps of them run" },
        OptDoc { name: "guidance", ty: "float", default: "5.0", meaning: "DiffusionPipeline: classifier-free guidance scale (≤ 1: none)" },
        OptDoc { name: "eta", ty: "float", default: "0.0", meaning: "DiffusionPipeline: DDIM's eta (0: deterministic given the seed)" },
        OptDoc { name: "seed", ty: "int", default: "none", meaning: "VoxelGan: seed of z and ε (SplitMix64: the same images on every machine; default 0); DiffusionPipeline: seed of the draws (default: set_seed's generator as it is)" },
        OptDoc { name: "condition_noise", ty: "bool", default: "true", meaning: "VoxelGan: c = μ + σ·ε as in training and StackGAN's sampling (false: c = μ, the condition's mean)" },
        OptDoc { name: "samples", ty: "int", default: "1", meaning: "VoxelGan, DiffusionPipeline: images per trial / conditioning row, grouped by row" },
    ],
    example: "set_seed(0);\nlet images = rand([40, 3, 12, 12]);\nlet betas = images.reshape([40, 432]).matmul(randn([432, 60])) + 0.5 * randn([40, 60]);\nlet decoder = fit_ridge(betas, images.reshape([40, 432]), #{alphas: [1.0, 10.0, 100.0]});\nlet recon = reconstruct(decoder, betas);\nprint(recon);   // ImageSet[40 images; 3×12×12; …]\n\nlet pipe = diffusion_pipeline(#{image_size: 32, seed: 0});\nlet z = encode_images(pipe, rand([2, 3, 32, 32]));\nlet r = reconstruct(pipe, #{z: z, c: randn([2, 4, 32])}, #{strength: 0.8, steps: 5, guidance: 5.0, seed: 0, samples: 2});\nprint(r);   // ImageSet[4 images; 3×32×32; recon0000_0, …]\nlet ds = simulate_subject(#{n_train: 20, n_test: 2, test_repeats: 1, image_size: 16, grid: [12, 12, 12], save: false});\nlet gan = train_voxel_gan(ds, #{epochs: 1, batch: 10, seed: 0, verbose: false});\nprint(reconstruct(gan, ds.test(), #{samples: 2, seed: 1}));",
};

pub static RECONSTRUCTION_SCORES: FnDoc = FnDoc {
    name: "reconstruction_scores",
    domain: "eval",
    signature: "reconstruction_scores(recon: ImageSet | Tensor, truth: ImageSet | Tensor, opts?: map) -> #{pixcorr, ssim, two_way_<space>, two_way_<space>_p, two_way_<space>_chance, [n_way_<space>, n_way_<space>_p, n_way_<space>_chance, n_way], spaces, images, per_image}",
    summary: "The table the reconstruction papers report (Brain-Diffuser, MindEye), one reconstruction per true image (recon resized to truth's size, bilinear, when they differ): \
pixcorr = mean pixel correlation (as pixcorr), ssim = mean SSIM (as ssim); then two-way identification (as identification with ways 2: every other image once, Pearson r by default) in each feature space: \
`pixels` (the flattened RGB values), `resnet_layer1` … `resnet_layer4` (the end of each residual layer of `resnet`, ImageNet-normalised input; without a given network a ResNet18 with fixed random weights, torchvision's initialisation from a fixed seed: such features carry image structure, but only ImageNet weights give numbers comparable with the papers'), `clip` (CLIP image embeddings, when a clip is given) and each entry of `features`. \
For each space: two_way_<space> (fraction of pairs won), two_way_<space>_chance (0.5) and two_way_<space>_p (one-sided permutation test of the pairing of reconstructions with true images, as identification; `test: \"binomial\"` for the conservative binomial over images); with n_way: m the same in m-way top-1 form (GOD-style, `repeats` random draws per image): n_way_<space>, n_way_<space>_p, n_way_<space>_chance (1/m). \
spaces lists the space names in order; per_image holds the per-image pixcorr, ssim and two-way scores (Tensors).",
    options: &[
        OptDoc { name: "pixels", ty: "bool", default: "true", meaning: "score the pixel space" },
        OptDoc { name: "resnet", ty: "ResNet", default: "none", meaning: "network of the ResNet spaces (default: ResNet18 with fixed random weights; give resnet(#{weights: ...}) for ImageNet features)" },
        OptDoc { name: "resnet_layers", ty: "array of string", default: "[\"layer1\", \"layer2\", \"layer3\", \"layer4\"]", meaning: "ResNet spaces: layerK (end of that residual layer) or any stage name (model.stages); [] for none" },
        OptDoc { name: "clip", ty: "Clip", default: "none", meaning: "add the `clip` space (image embeddings of load_clip's model)" },
        OptDoc { name: "features", ty: "map", default: "none", meaning: "more spaces: name → [recon_features, truth_features], each images × features" },
        OptDoc { name: "metric", ty: "string", default: "correlation", meaning: "identification similarity: correlation, cosine or euclidean" },
        OptDoc { name: "n_way", ty: "int", default: "none", meaning: "also m-way top-1 identification with this m (3 … images), as GOD papers report 50-way" },
        OptDoc { name: "repeats", ty: "int", default: "100", meaning: "random draws per image for n_way" },
        OptDoc { name: "seed", ty: "int", default: "0", meaning: "seed of the n-way draws, bootstraps and permutations" },
        OptDoc { name: "test", ty: "string", default: "permutation", meaning: "p-values: permutation (of the pairing) or binomial (over images, conservative)" },
        OptDoc { name: "permutations", ty: "int", default: "10000", meaning: "random pairings of each permutation test; the smallest p is 1/(permutations + 1)" },
        OptDoc { name: "batch", ty: "int", default: "32", meaning: "images per forward pass of a feature network" },
    ],
    example: "set_seed(0);\nlet truth = rand([12, 3, 32, 32]);\nlet recon = (truth * 0.6 + 0.4 * rand([12, 3, 32, 32])).clamp(0.0, 1.0);\nlet s = reconstruction_scores(recon, truth, #{n_way: 5});\nprint(`PixCorr ${s.pixcorr}, SSIM ${s.ssim}, two-way (layer2) ${s.two_way_resnet_layer2} (chance ${s.two_way_resnet_layer2_chance}, p = ${s.two_way_resnet_layer2_p})`);\nprint(s.spaces);",
};

pub static PLOT_RECONSTRUCTIONS: FnDoc = FnDoc {
    name: "plot_reconstructions",
    domain: "plot",
    signature: "plot_reconstructions(truth: ImageSet | Tensor, recon: ImageSet | Tensor | array, opts?: map) -> Figure",
    summary: "The reconstruction figure: the true images in the top row, each reconstruction set (one image per true image; an array of sets for several samples or methods) in a row beneath, captions under the last row. Rows are titled seen / reconstructed (sample 1, 2, … with several sets) unless row_titles says otherwise.",
    options: &[
        OptDoc { name: "title", ty: "string", default: "\"\"", meaning: "title above the figure" },
        OptDoc { name: "width", ty: "int", default: "900", meaning: "width in pixels" },
        OptDoc { name: "height", ty: "int", default: "none", meaning: "height in pixels (default: from the rows and the width)" },
        OptDoc { name: "items", ty: "array of int", default: "none", meaning: "which images to show, by position (default: the first 8)" },
        OptDoc { name: "row_titles", ty: "array of string", default: "none", meaning: "one title per row (truth first)" },
        OptDoc { name: "captions", ty: "array of string", default: "none", meaning: "one caption per true image, drawn under the last row" },
    ],
    example: "let truth = rand([6, 3, 32, 32]);\nlet a = (truth * 0.7 + 0.3 * rand([6, 3, 32, 32])).clamp(0.0, 1.0);\nlet b = (truth * 0.4 + 0.6 * rand([6, 3, 32, 32])).clamp(0.0, 1.0);\nplot_reconstructions(truth, [a, b], #{row_titles: [\"seen\", \"method A\", \"method B\"], captions: [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\"], title: \"Reconstructions\"}).save(\"recon.png\");",
};

/// Options of one call form of `reconstruct`: checked against the one entry
/// (unknown keys list all of them), then keys this form does not take are
/// an error naming the form.
pub fn form_options(form: &str, allowed: &[&str], opts: Map) -> Result<Opts> {
    for key in opts.keys() {
        if !allowed.contains(&key.as_str()) && RECONSTRUCT.option(key).is_some() {
            return Err(Error::invalid(
                "reconstruct",
                format!(
                    "option '{key}' is not used by reconstruct({form}, …); it takes {}",
                    if allowed.is_empty() {
                        "no options".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ));
        }
    }
    Opts::parse(&RECONSTRUCT, opts)
}

fn beliy_text(m: &Beliy) -> String {
    let h = &m.decoder_history;
    format!(
        "Beliy[{} px; {} {}; first conv {}; {}; stage 1 {} epochs, stage 2 {} epochs, final loss {:.4}]",
        m.config.image_size,
        m.voxels(),
        m.voxel_source,
        m.first_conv,
        if m.unlabeled { "self-supervised" } else { "pairs only" },
        m.encoder_history.epochs,
        h.epochs,
        h.at("train_loss", h.epochs)
    )
}

/// (height, width) from an int or a two-element array.
fn size_option(op: &'static str, key: &str, v: &Dynamic) -> Result<(usize, usize)> {
    let bad = || Error::BadOption {
        op,
        key: key.into(),
        expected: "a positive integer or [height, width]".into(),
        got: v.to_string(),
    };
    if let Ok(i) = v.as_int() {
        return if i > 0 {
            Ok((i as usize, i as usize))
        } else {
            Err(bad())
        };
    }
    let a = v.read_lock::<Array>().ok_or_else(bad)?;
    match a.as_slice() {
        [h, w] => match (h.as_int(), w.as_int()) {
            (Ok(h), Ok(w)) if h > 0 && w > 0 => Ok((h as usize, w as usize)),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn scores_map(r: &ReconstructionScores) -> Result<Map> {
    const OP: &str = "reconstruction_scores";
    let mut m = Map::new();
    for (k, v) in r.named() {
        m.insert(k.into(), Dynamic::from_float(v));
    }
    if let Some(w) = r.spaces.iter().find_map(|s| s.n_way.as_ref()) {
        m.insert("n_way".into(), Dynamic::from_int(w.ways));
    }
    m.insert(
        "spaces".into(),
        Dynamic::from_array(
            r.spaces
                .iter()
                .map(|s| Dynamic::from(s.space.clone()))
                .collect(),
        ),
    );
    m.insert("images".into(), Dynamic::from_int(r.images as i64));
    let vec_t = |v: &[f64]| -> Result<Dynamic> {
        Ok(Dynamic::from(Tensor::from_f64(
            OP,
            v,
            &[v.len() as i64],
            tch::Kind::Double,
        )?))
    };
    let mut per = Map::new();
    per.insert("pixcorr".into(), vec_t(&r.pixcorr)?);
    per.insert("ssim".into(), vec_t(&r.ssim)?);
    for s in &r.spaces {
        per.insert(
            format!("two_way_{}", s.space).into(),
            vec_t(&s.two_way.scores)?,
        );
    }
    m.insert("per_image".into(), Dynamic::from_map(per));
    Ok(m)
}

fn scores(recon: Dynamic, truth: Dynamic, opts: Map) -> Result<Map> {
    const OP: &str = "reconstruction_scores";
    let o = Opts::parse(&RECONSTRUCTION_SCORES, opts)?;
    let resnet = match o.raw("resnet") {
        Some(v) => Some(
            v.read_lock::<super::models::ResNetModel>()
                .map(|m| m.net.clone())
                .ok_or_else(|| Error::BadOption {
                    op: OP,
                    key: "resnet".into(),
                    expected: "a ResNet (resnet(), load_resnet, train_resnet)".into(),
                    got: v.type_name().into(),
                })?,
        ),
        None => None,
    };
    let clip = match o.raw("clip") {
        Some(v) => Some(
            v.read_lock::<super::nets::ClipValue>()
                .map(|c| c.0.clone())
                .ok_or_else(|| Error::BadOption {
                    op: OP,
                    key: "clip".into(),
                    expected: "a Clip (load_clip)".into(),
                    got: v.type_name().into(),
                })?,
        ),
        None => None,
    };
    let mut features = Vec::new();
    if let Some(v) = o.raw("features") {
        let m = v.read_lock::<Map>().ok_or_else(|| Error::BadOption {
            op: OP,
            key: "features".into(),
            expected: "a map name → [recon_features, truth_features]".into(),
            got: v.type_name().into(),
        })?;
        for (name, pair) in m.iter() {
            let bad = || {
                Error::invalid(
                    OP,
                    format!("features.{name}: expected [recon_features, truth_features] (two tensors), got {}", pair.type_name()),
                )
            };
            let a = pair.read_lock::<Array>().ok_or_else(bad)?;
            let [r, t] = a.as_slice() else {
                return Err(bad());
            };
            features.push((
                name.to_string(),
                to_tensor(OP, &format!("features.{name}[0]"), r)?.0,
                to_tensor(OP, &format!("features.{name}[1]"), t)?.0,
            ));
        }
    }
    let seed = o.i64("seed")?;
    if seed < 0 {
        return Err(Error::invalid(OP, format!("seed must be ≥ 0, got {seed}")));
    }
    let repeats = o.i64("repeats")?;
    let batch = o.i64("batch")?;
    for (k, v) in [("repeats", repeats), ("batch", batch)] {
        if v < 1 {
            return Err(Error::BadOption {
                op: OP,
                key: k.into(),
                expected: "an integer ≥ 1".into(),
                got: v.to_string(),
            });
        }
    }
    let so = ScoreOptions {
        pixels: o.bool("pixels")?,
        resnet: resnet.as_deref(),
        resnet_layers: o.opt_string_list("resnet_layers")?.unwrap_or_default(),
        clip: clip.as_deref(),
        features,
        metric: Metric::parse(OP, &o.string("metric")?)?,
        n_way: o.opt_i64("n_way")?,
        repeats,
        seed: seed as u64,
        test: PTest::parse(OP, &o.string("test")?, o.i64("permutations")?)?,
        batch,
    };
    let r = reconstruction_scores(
        &images(OP, "recon", &recon)?,
        &images(OP, "truth", &truth)?,
        &so,
    )?;
    scores_map(&r)
}

fn plot(truth: Dynamic, recon: Dynamic, opts: Map) -> Result<Figure> {
    const OP: &str = "plot_reconstructions";
    let o = Opts::parse(&PLOT_RECONSTRUCTIONS, opts)?;
    let truth = Tensor(images(OP, "truth", &truth)?);
    let sets: Vec<Tensor> = match recon.read_lock::<Array>() {
        Some(a) => a
            .iter()
            .map(|x| images(OP, "recon", x).map(Tensor))
            .collect::<Result<_>>()?,
        None => vec![Tensor(images(OP, "recon", &recon)?)],
    };
    let n = truth.shape().first().copied().unwrap_or(0) as usize;
    let items: Vec<usize> = match o.raw("items") {
        Some(v) => {
            let a = v.into_array().map_err(|_| Error::BadOption {
                op: OP,
                key: "items".into(),
                expected: "an array of image positions".into(),
                got: "another type".into(),
            })?;
            a.iter()
                .map(|x| match x.as_int() {
                    Ok(i) if i >= 0 => Ok(i as usize),
                    _ => Err(Error::BadOption {
                        op: OP,
                        key: "items".into(),
                        expected: "integers ≥ 0".into(),
                        got: x.to_string(),
                    }),
                })
                .collect::<Result<_>>()?
        }
        None => (0..n.min(8)).collect(),
    };
    if items.is_empty() {
        return Err(Error::invalid(OP, "items: no images to show"));
    }
    let captions = o.opt_string_list("captions")?.unwrap_or_default();
    let grid = crate::plot::reconstruction_grid(
        OP,
        &truth,
        &sets,
        &items,
        &o.opt_string_list("row_titles")?.unwrap_or_default(),
        &captions,
    )?;
    let width = o.i64("width")?;
    let rows = (sets.len() + 1) as i64;
    let cell = (width - 140).max(20) / items.len() as i64;
    let height = match o.opt_i64("height")? {
        Some(h) => h,
        None => 70 + rows * (cell + 12) + if captions.is_empty() { 0 } else { 50 },
    };
    if !(100..=8000).contains(&width) || !(100..=8000).contains(&height) {
        return Err(Error::invalid(
            OP,
            format!("width and height must be 100–8000 pixels, got {width}×{height}"),
        ));
    }
    Ok(Figure {
        title: o.string("title")?,
        width: width as u32,
        height: height as u32,
        kind: FigureKind::Images(grid),
    })
}

pub static TRAIN_BELIY: FnDoc = FnDoc {
    name: "train_beliy",
    domain: "reconstruction",
    signature: "train_beliy(ds: Dataset, opts?: map) -> Beliy",
    summary: "Beliy et al. 2019's self-supervised encoder–decoder (the BNU paper's section 3), as the authors' code builds it. \
Encoder E (image → voxels): a stride-2 first convolution (fixed, from first_conv's pretrained weights, or learned), ReLU, batch norm; two [3×3 stride-2 conv, ReLU, batch norm]; dropout; a dense layer to the voxels with a spatial group-lasso penalty. \
Decoder D (voxels → image): dense to an S/8 × S/8 map (group lasso), three [3×3 conv, ReLU, ×2 upsampling, batch norm], a 3×3 conv to RGB, sigmoid. \
Stage 1 trains E on the training pairs (randomly shifted images; MSE + 0.1 × negative cosine; the authors' SGD with Nesterov 0.9, or Adam for the small size, lr ÷10 at the paper's milestones scaled to the epochs). \
Stage 2 trains D with E frozen; each batch mixes `batch` training pairs (D(y) vs x) with `unpaired_batch` unlabeled images (D(E(x)) vs x) and as many unlabeled fMRI samples (E(D(y)) vs y: the test trials' fMRI, each sample the mean over a random third of one stimulus' repeats, and unlabeled_fmri's rows); \
image loss = 0.7 × conv1 + 0.15 × layer1 perceptual L1 of a fixed ResNet18 + 0.15 × pixel L1 (each normalised per channel by the training images) + total variation ((dx² + dy²)^1.25); voxel loss = SNR-weighted MAE + 0.1 × negative cosine (SNR from the test repeats, mean 1); Adam 1e-3, × 0.2 every fifth of the epochs. \
Voxels are z-scored with the training trials' mean and sd. Images are resized to image_size (block means or bilinear). Both stages run through the one trainer; m.history has both stages' per-epoch losses. \
size \"paper\" is the authors' configuration (112 px, 80 + 150 epochs, 48 + 16 per batch; for a GPU and real data); \"small\" the same design at 32 px with half the channels and 20 + 20 epochs (2 CPU cores), stage 1 with Adam 1e-2 and the penalties at a tenth of the paper's pull (at the paper's SGD and penalty the encoder learns nothing in a CPU run's few hundred steps at GOD-like SNR; see BeliyConfig::small). unlabeled: false is the ablation (stage 2 on the pairs alone). In stage 2 the frozen encoder normalises each batch with that batch's statistics, as Keras 2 ran the authors' frozen encoder; batch norms use Keras' eps 1e-3 and its momentum 0.99 (PyTorch's 0.01) at the paper size, PyTorch's 0.1 at the small one (its few hundred steps). Differences from the authors': ResNet rather than VGG19 perceptual features, Adam without AMSGrad, batch-norm weights starting from U(0, 1) rather than 1 (a better encoder at the small size, measured).",
    options: &[
        OptDoc { name: "size", ty: "string", default: "small", meaning: "paper (112 px, the authors' epochs and widths) or small (32 px, for CPUs)" },
        OptDoc { name: "image_size", ty: "int", default: "none", meaning: "image side, a multiple of 8 ≥ 16 (default: the size's)" },
        OptDoc { name: "encoder_epochs", ty: "int", default: "none", meaning: "stage 1 epochs (default: the size's: paper 80, small 20)" },
        OptDoc { name: "decoder_epochs", ty: "int", default: "none", meaning: "stage 2 epochs (default: paper 150, small 20)" },
        OptDoc { name: "batch", ty: "int", default: "none", meaning: "training pairs per step (default 48)" },
        OptDoc { name: "unpaired_batch", ty: "int", default: "none", meaning: "unlabeled images and unlabeled fMRI samples per stage-2 step (default 16)" },
        OptDoc { name: "encoder_optimizer", ty: "string", default: "none", meaning: "stage 1 optimiser: sgd (the authors': Nesterov momentum 0.9) or adam (default: paper sgd, small adam)" },
        OptDoc { name: "encoder_lr", ty: "float", default: "none", meaning: "stage 1 learning rate (default: paper 0.1, small 0.01)" },
        OptDoc { name: "decoder_lr", ty: "float", default: "none", meaning: "stage 2 Adam learning rate (default 0.001)" },
        OptDoc { name: "penalty", ty: "float", default: "none", meaning: "factor on all weight penalties (group lasso, kernel l1/l2); 1 = the paper's per-weight strength (default: paper 1, small 0.1)" },
        OptDoc { name: "rois", ty: "array of string", default: "none", meaning: "ROIs whose voxels the model uses (default: all voxels)" },
        OptDoc { name: "unlabeled", ty: "bool", default: "true", meaning: "self-supervision in stage 2 (false: the ablation without unlabeled data)" },
        OptDoc { name: "unlabeled_images", ty: "ImageSet | Tensor", default: "none", meaning: "natural images without fMRI (e.g. the simulated subject's extra_images)" },
        OptDoc { name: "unlabeled_fmri", ty: "Tensor", default: "none", meaning: "fMRI without images, trials × the dataset's (or the selected) voxels" },
        OptDoc { name: "test_fmri", ty: "bool", default: "true", meaning: "use the test trials' fMRI (never their images) as unlabeled fMRI, as the authors" },
        OptDoc { name: "first_conv", ty: "string", default: "none", meaning: "torchvision weights (safetensors) whose first convolution becomes E's fixed first layer: ResNet conv1.weight or AlexNet/VGG features.0 (default: learned)" },
        OptDoc { name: "perceptual", ty: "ResNet", default: "none", meaning: "the perceptual loss network (default: ResNet18 with fixed random weights; give ImageNet weights for the paper's kind of loss)" },
        OptDoc { name: "seed", ty: "int", default: "none", meaning: "seed of initialisation, batches, shifts, dropout and unlabeled draws (default: from set_seed's generator)" },
        OptDoc { name: "verbose", ty: "bool", default: "true", meaning: "a line per epoch on stderr" },
        OptDoc { name: "progress", ty: "bool", default: "true", meaning: "a progress bar when stderr is a terminal" },
    ],
    example: "set_seed(0);\nlet ds = simulate_subject(#{n_train: 96, n_test: 8, test_repeats: 3, n_extra_images: 32, image_size: 32, grid: [16, 20, 16], save: false});\nlet m = train_beliy(ds, #{encoder_epochs: 2, decoder_epochs: 2, batch: 32, unpaired_batch: 8, rois: [\"V1\", \"V2\"], verbose: false});\nlet test = ds.test().average_repeats();\nlet recon = reconstruct(m, test);\nprint(recon);\nprint(m.history.decoder.train_loss);",
};

pub static BELIY_TYPE: FnDoc = FnDoc {
    name: "Beliy",
    domain: "reconstruction",
    signature: "m.history -> #{encoder, decoder} (each a training history map)\nm.voxels -> int\nm.image_size -> int\nm.first_conv -> string\nm.unlabeled -> bool\nm.snr -> Tensor (per-voxel SNR weights)\nm.encode(images) -> Tensor (predicted standardised voxels)",
    summary: "A trained Beliy et al. encoder–decoder: reconstruct(m, betas) decodes images; encode predicts voxel responses of images (the encoder E).",
    options: &[],
    example: "set_seed(1);\nlet ds = simulate_subject(#{n_train: 64, n_test: 6, test_repeats: 3, image_size: 16, grid: [16, 20, 16], save: false});\nlet m = train_beliy(ds, #{image_size: 16, encoder_epochs: 1, decoder_epochs: 1, batch: 32, verbose: false});\nprint(m.encode(ds.test().images).shape);",
};

/// A Beliy model as scripts hold it (shared: Rhai clones values freely).
#[derive(Clone)]
pub struct BeliyModel(pub Rc<Beliy>);

fn beliy_options(ds: &crate::data::Dataset, opts: Map) -> Result<BeliyOptions> {
    const OP: &str = "train_beliy";
    let o = Opts::parse(&TRAIN_BELIY, opts)?;
    let mut c = match o.choice("size", &["small", "paper"])?.as_str() {
        "paper" => BeliyConfig::paper(),
        _ => BeliyConfig::small(),
    };
    let positive = |key: &str| -> Result<Option<usize>> {
        match o.opt_i64(key)? {
            Some(v) if v < 1 => Err(Error::BadOption {
                op: OP,
                key: key.into(),
                expected: "an integer ≥ 1".into(),
                got: v.to_string(),
            }),
            Some(v) => Ok(Some(v as usize)),
            None => Ok(None),
        }
    };
    if let Some(s) = o.opt_i64("image_size")? {
        if s != c.image_size {
            // Shifts scale with the image (the authors' ±5 px at 112).
            c.max_shift = ((5.0 * s as f64 / 112.0).round() as i64).max(0);
        }
        c.image_size = s;
    }
    if let Some(e) = positive("encoder_epochs")? {
        c.encoder_epochs = e;
    }
    if let Some(e) = positive("decoder_epochs")? {
        c.decoder_epochs = e;
    }
    if let Some(b) = positive("batch")? {
        c.batch = b;
    }
    if let Some(b) = o.opt_i64("unpaired_batch")? {
        if b < 0 {
            return Err(Error::BadOption {
                op: OP,
                key: "unpaired_batch".into(),
                expected: "an integer ≥ 0".into(),
                got: b.to_string(),
            });
        }
        c.unpaired_batch = b as usize;
    }
    for (key, slot) in [
        ("encoder_lr", &mut c.encoder_lr),
        ("decoder_lr", &mut c.decoder_lr),
    ] {
        if let Some(lr) = o.opt_f64(key)? {
            if !(lr > 0.0 && lr.is_finite()) {
                return Err(Error::BadOption {
                    op: OP,
                    key: key.into(),
                    expected: "a positive number".into(),
                    got: lr.to_string(),
                });
            }
            *slot = lr;
        }
    }
    if let Some(name) = o.opt_string("encoder_optimizer")? {
        c.encoder_optimizer = match name.as_str() {
            "sgd" => BeliyConfig::paper().encoder_optimizer,
            "adam" => crate::models::train::Optimizer::adam(),
            other => {
                return Err(Error::BadOption {
                    op: OP,
                    key: "encoder_optimizer".into(),
                    expected: "\"sgd\" (Nesterov momentum 0.9, the authors') or \"adam\"".into(),
                    got: format!("\"{other}\""),
                })
            }
        };
    }
    if let Some(p) = o.opt_f64("penalty")? {
        c.penalty = p;
    }
    c.validate(OP)?;
    let (columns, voxel_source) = match o.opt_string_list("rois")? {
        Some(names) if !names.is_empty() => {
            let mut cols: Vec<i64> = Vec::new();
            for name in &names {
                let Some((_, roi)) = ds.rois.iter().find(|(n, _)| n == name) else {
                    return Err(Error::invalid(
                        OP,
                        format!(
                            "rois: no ROI '{name}'; the dataset has: {}",
                            ds.rois
                                .iter()
                                .map(|(n, _)| n.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                };
                for col in crate::data::dataset::roi_columns(&ds.mask, roi)? {
                    if col >= 0 && !cols.contains(&col) {
                        cols.push(col);
                    }
                }
            }
            (Some(cols), format!("voxels of {}", names.join(", ")))
        }
        _ => (None, "voxels".to_string()),
    };
    let unlabeled_images = match o.raw("unlabeled_images") {
        Some(v) => Some(images(OP, "unlabeled_images", &v)?),
        None => None,
    };
    let unlabeled_fmri = match o.raw("unlabeled_fmri") {
        Some(v) => Some(to_tensor(OP, "unlabeled_fmri", &v)?.0),
        None => None,
    };
    let first_conv = match o.opt_string("first_conv")? {
        Some(p) => Some(FirstConv::from_safetensors(OP, std::path::Path::new(&p))?),
        None => None,
    };
    let perceptual = match o.raw("perceptual") {
        Some(v) => {
            let m = v
                .read_lock::<super::models::ResNetModel>()
                .map(|m| m.net.clone())
                .ok_or_else(|| Error::BadOption {
                    op: OP,
                    key: "perceptual".into(),
                    expected: "a ResNet (resnet(#{weights: ...}))".into(),
                    got: v.type_name().into(),
                })?;
            Some(m)
        }
        None => None,
    };
    let seed = match o.opt_i64("seed")? {
        Some(s) => s,
        None => super::stats::torch_seed(OP)? as i64,
    };
    Ok(BeliyOptions {
        config: c,
        columns,
        voxel_source,
        unlabeled: o.bool("unlabeled")?,
        unlabeled_images,
        unlabeled_fmri,
        test_fmri: o.bool("test_fmri")?,
        first_conv,
        perceptual,
        seed,
        device: crate::device::current(),
        verbose: o.bool("verbose")?,
        progress: o.bool("progress")?,
    })
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry) {
    for doc in [&TRAIN_BELIY, &BELIY_TYPE] {
        help.add(doc);
    }
    engine.register_type_with_name::<BeliyModel>("Beliy");
    engine.register_fn("to_string", |m: &mut BeliyModel| beliy_text(&m.0));
    engine.register_fn("to_debug", |m: &mut BeliyModel| beliy_text(&m.0));
    engine.register_get("history", |m: &mut BeliyModel| {
        let mut h = Map::new();
        h.insert(
            "encoder".into(),
            Dynamic::from_map(super::train::history_map(&m.0.encoder_history)),
        );
        h.insert(
            "decoder".into(),
            Dynamic::from_map(super::train::history_map(&m.0.decoder_history)),
        );
        h
    });
    engine.register_get("voxels", |m: &mut BeliyModel| m.0.voxels());
    engine.register_get("image_size", |m: &mut BeliyModel| m.0.config.image_size);
    engine.register_get("first_conv", |m: &mut BeliyModel| m.0.first_conv.clone());
    engine.register_get("unlabeled", |m: &mut BeliyModel| m.0.unlabeled);
    engine.register_get("snr", |m: &mut BeliyModel| {
        Tensor(m.0.snr.to_device(tch::Device::Cpu).flatten(0, -1))
    });
    engine.register_fn(
        "encode",
        |m: &mut BeliyModel, x: Dynamic| -> RhaiResult<Tensor> {
            guard("encode", || {
                Ok(Tensor(m.0.encode(
                    "encode",
                    &images("encode", "images", &x)?,
                    64,
                )?))
            })
        },
    );
    let train = |ds: crate::data::Dataset, opts: Map| -> RhaiResult<BeliyModel> {
        guard("train_beliy", || {
            let o = beliy_options(&ds, opts)?;
            Ok(BeliyModel(Rc::new(beliy::train_beliy(&ds, o)?)))
        })
    };
    engine.register_fn("train_beliy", move |ds: crate::data::Dataset| {
        train(ds, Map::new())
    });
    engine.register_fn("train_beliy", train);
    // reconstruct(Beliy, betas | Dataset)
    let rec = |m: BeliyModel, x: Dynamic, opts: Map| -> RhaiResult<ImageSet> {
        guard("reconstruct", || {
            let o = form_options("Beliy", &["batch"], opts)?;
            let betas = match x.read_lock::<crate::data::Dataset>() {
                Some(ds) => ds.betas.0.shallow_clone(),
                None => to_tensor("reconstruct", "betas", &x)?.0,
            };
            m.0.reconstruct(
                &betas,
                &BeliyReconstruct {
                    batch: o.i64("batch")?,
                },
            )
        })
    };
    engine.register_fn("reconstruct", move |m: BeliyModel, x: Dynamic| {
        rec(m, x, Map::new())
    });
    engine.register_fn("reconstruct", rec);

    for doc in [&RECONSTRUCT, &RECONSTRUCTION_SCORES, &PLOT_RECONSTRUCTIONS] {
        help.add(doc);
    }
    engine.register_fn(
        "reconstruction_scores",
        |r: Dynamic, t: Dynamic| -> RhaiResult<Map> {
            guard("reconstruction_scores", || scores(r, t, Map::new()))
        },
    );
    engine.register_fn(
        "reconstruction_scores",
        |r: Dynamic, t: Dynamic, o: Map| -> RhaiResult<Map> {
            guard("reconstruction_scores", || scores(r, t, o))
        },
    );
    engine.register_fn(
        "plot_reconstructions",
        |t: Dynamic, r: Dynamic| -> RhaiResult<Figure> {
            guard("plot_reconstructions", || plot(t, r, Map::new()))
        },
    );
    engine.register_fn(
        "plot_reconstructions",
        |t: Dynamic, r: Dynamic, o: Map| -> RhaiResult<Figure> {
            guard("plot_reconstructions", || plot(t, r, o))
        },
    );

    // reconstruct(RidgeModel, betas): the linear pixel baseline.
    let ridge = |m: RidgeModel, x: Dynamic, opts: Map| -> RhaiResult<ImageSet> {
        guard("reconstruct", || {
            let o = form_options("RidgeModel", &["image_size"], opts)?;
            let size = match o.raw("image_size") {
                Some(v) => Some(size_option("reconstruct", "image_size", &v)?),
                None => None,
            };
            m.reconstruct(
                &to_tensor("reconstruct", "betas", &x)?,
                &PixelDecoding { size },
            )
        })
    };
    engine.register_fn("reconstruct", move |m: RidgeModel, x: Dynamic| {
        ridge(m, x, Map::new())
    });
    engine.register_fn("reconstruct", ridge);
}
