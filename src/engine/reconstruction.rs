//! Script face of image reconstruction: the one verb `reconstruct` (every
//! reconstruction model adds its call form here, to the one help entry),
//! the standard scores `reconstruction_scores` and the figure
//! `plot_reconstructions`.

use rhai::{Array, Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
use super::eval::images;
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::tensor::to_tensor;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::eval::reconstruction::{reconstruction_scores, ReconstructionScores, ScoreOptions};
use crate::eval::Metric;
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
    signature: "reconstruct(model: RidgeModel, betas: Tensor, opts?: map) -> ImageSet\nreconstruct(gan: VoxelGan, betas: Tensor | Dataset, opts?: map) -> ImageSet\nreconstruct(pipe: DiffusionPipeline, #{z: Tensor, c: Tensor | captions: array}, opts?: map) -> ImageSet",
    summary: "The one verb of every reconstruction model: brain responses in, stimulus images (N×3×H×W in [0, 1]) out, one per input row. \
Forms: a RidgeModel fitted from voxels to flattened RGB pixels (3·H·W targets in C order) is the linear baseline: its predictions reshaped to images and clipped to [0, 1]. \
A VoxelGan (train_voxel_gan, Yu et al. 2020) draws `samples` images per trial from betas (trials × its voxels, standardised as its training betas were) or from a Dataset (its betas, or the GAN's ROIs' voxels; ids are the trials' stimuli, with _1, _2, … for several samples, a trial's samples together): c = μ + σ·ε and z drawn from seed, the generator with batch norm's running statistics. \
A DiffusionPipeline (load_diffusion, diffusion_pipeline) reconstructs as Takagi & Nishimoto: the predicted latents z (scaled, N×latent_channels×h×w, as encode_images gives) are decoded, the decoded images re-encoded (a posterior sample), noised to `strength` of the schedule and denoised in the last ⌊steps·strength⌋ DDIM steps with classifier-free guidance, conditioned on c (predicted conditioning, N×tokens×cond_dim) or on captions through the pipeline's text encoder (e.g. brain-generated captions); `samples` images per row, grouped by row. \
Each form takes only its own options (others are an error naming the form). Score the result with reconstruction_scores and draw it with plot_reconstructions.",
    options: &[
        OptDoc { name: "image_size", ty: "int | [h, w]", default: "none", meaning: "RidgeModel: the images' size (default: square, from the number of targets)" },
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
For each space: two_way_<space> (fraction of pairs won), two_way_<space>_chance (0.5) and two_way_<space>_p (one-sided binomial over images, as identification); with n_way: m the same in m-way top-1 form (GOD-style, `repeats` random draws per image): n_way_<space>, n_way_<space>_p, n_way_<space>_chance (1/m). \
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
        OptDoc { name: "seed", ty: "int", default: "0", meaning: "seed of the n-way draws and bootstraps" },
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
            features.push((name.to_string(), to_tensor(OP, r)?.0, to_tensor(OP, t)?.0));
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
        batch,
    };
    let r = reconstruction_scores(&images(OP, &recon)?, &images(OP, &truth)?, &so)?;
    scores_map(&r)
}

fn plot(truth: Dynamic, recon: Dynamic, opts: Map) -> Result<Figure> {
    const OP: &str = "plot_reconstructions";
    let o = Opts::parse(&PLOT_RECONSTRUCTIONS, opts)?;
    let truth = Tensor(images(OP, &truth)?);
    let sets: Vec<Tensor> = match recon.read_lock::<Array>() {
        Some(a) => a
            .iter()
            .map(|x| images(OP, x).map(Tensor))
            .collect::<Result<_>>()?,
        None => vec![Tensor(images(OP, &recon)?)],
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

pub fn register(engine: &mut Engine, help: &mut HelpRegistry) {
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
            m.reconstruct(&to_tensor("reconstruct", &x)?, &PixelDecoding { size })
        })
    };
    engine.register_fn("reconstruct", move |m: RidgeModel, x: Dynamic| {
        ridge(m, x, Map::new())
    });
    engine.register_fn("reconstruct", ridge);
}
