//! The shipped scripts run end to end at reduced size (`--set quick=true`):
//! exit 0, run.json with status ok, valid figures, metrics above chance.

use crate::common::{read_json, voxlab_in};

/// Runs a shipped script at reduced size; returns its run record and output
/// folder after checking the run succeeded and each figure is a valid image.
fn run_quick(script: &str, figures: &[&str]) -> (serde_json::Value, tempfile::TempDir) {
    run_quick_with(script, &[], figures)
}

/// [`run_quick`] with further `--set name=value` parameters.
fn run_quick_with(
    script: &str,
    sets: &[&str],
    figures: &[&str],
) -> (serde_json::Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = run_script_in(dir.path(), script, sets);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let out = dir.path().join("out");
    let record = read_json(&out.join("run.json"));
    assert_eq!(record["status"], "ok");
    assert_writes_no_dataset(dir.path());
    for fig in figures {
        let bytes = std::fs::read(out.join(fig)).expect("figure written");
        assert!(
            image::load_from_memory(&bytes).is_ok(),
            "{fig} is not a valid image"
        );
    }
    (record, dir)
}

/// `voxlab run SCRIPT --set quick=true [--set SETS...] --out out` in `cwd`.
fn run_script_in(cwd: &std::path::Path, script: &str, sets: &[&str]) -> crate::common::Output {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let mut args = vec![
        "run".to_string(),
        path.display().to_string(),
        "--set".into(),
        "quick=true".into(),
    ];
    for s in sets {
        args.extend(["--set".to_string(), s.to_string()]);
    }
    args.extend(["--out".to_string(), "out".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    voxlab_in(cwd, &args, None)
}

/// Scripts write figures, tables, maps and run.json: no dataset folder (the
/// simulated subject stays in memory unless a script asks to save it) and
/// nothing outside the output folder.
fn assert_writes_no_dataset(cwd: &std::path::Path) {
    let outside: Vec<_> = std::fs::read_dir(cwd)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n != "out")
        .collect();
    assert!(
        outside.is_empty(),
        "wrote {outside:?} beside the output folder"
    );
    for path in entries_under(&cwd.join("out")) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            ![
                "dataset.json",
                "betas.nii.gz",
                "signal.nii.gz",
                "trials.csv"
            ]
            .contains(&name),
            "{} is part of a dataset",
            path.display()
        );
    }
}

/// Every file and folder below `dir`, at any depth.
fn entries_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let path = e.expect("entry").path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}

#[test]
fn quickstart_decodes_well_above_chance() {
    let (record, _dir) = run_quick(
        "scripts/quickstart.rhai",
        &["identification.png", "decoded.png"],
    );
    let top1 = record["metrics"]["top1_50way"].as_f64().expect("top1");
    let chance = record["metrics"]["chance"].as_f64().expect("chance");
    assert!((chance - 0.02).abs() < 1e-12);
    assert!(
        top1 > 10.0 * chance,
        "50-way top-1 {top1} vs chance {chance}"
    );
    assert!(record["metrics"]["top1_50way_p"].as_f64().expect("p") < 2e-4);
}

#[test]
fn bnu_emotion_runs_its_three_analyses() {
    let figures = [
        "learning_curves.png",
        "group_box.png",
        "rsa_bars.png",
        "rsa_tau.png",
        "reconstructions.png",
    ];
    let (record, _dir) = run_quick("scripts/bnu_emotion.rhai", &figures);
    let m = &record["metrics"];
    // Three classes: chance is at most the majority share; the simulated
    // valence follows colour and shape, so held-out accuracy must beat 1/3 clearly.
    assert!(
        m["valence_val_accuracy"].as_f64().expect("accuracy") > 0.4,
        "{}",
        m["valence_val_accuracy"]
    );
    assert!(
        m["paired_t"]["p"].as_f64().expect("p") < 0.05,
        "spiky vs round shapes differ in valence by construction"
    );
    assert_eq!(m["rsa_tau"].as_array().expect("tau").len(), 7, "7 ROIs");
    assert_eq!(
        m["rsa_tau"][0].as_array().expect("row").len(),
        22,
        "22 ResNet18 stages"
    );
    assert!(m["rsa_significant_pairs"].as_f64().expect("count") > 0.0);
    // Part 4 (section 3): Beliy's reconstructions scored and recorded under
    // reconstruction_scores' names, with and without the unlabeled data.
    for run in ["beliy", "beliy_pairs_only"] {
        let r = &m[run];
        assert_eq!(r["images"], 50, "{run}: the 50 test stimuli");
        assert_eq!(r["n_way"], 50, "{run}: 50-way identification");
        for space in [
            "pixels",
            "resnet_layer1",
            "resnet_layer2",
            "resnet_layer3",
            "resnet_layer4",
        ] {
            let two = r[format!("two_way_{space}")].as_f64().expect("two-way");
            let p = r[format!("two_way_{space}_p")].as_f64().expect("p");
            assert!(
                (0.0..=1.0).contains(&two) && (0.0..=1.0).contains(&p),
                "{run} {space}"
            );
            assert_eq!(r[format!("two_way_{space}_chance")], 0.5);
        }
        for key in ["pixcorr", "ssim"] {
            assert!(r[key].as_f64().is_some(), "{run}: {key} recorded");
        }
    }
    // Above chance in the ResNet spaces with p < 0.001 (GOD-like noise; the
    // permutation test's smallest p, 1e-4, in every ResNet space of the
    // recorded quick runs on seeds 0, 1 and 2, docs/papers/bnu.md), and the
    // unlabeled data no worse than the pairs alone: higher on average over
    // the five scored spaces (recorded on this seed: 0.672 against 0.666;
    // at full size the ResNet spaces gain 0.03-0.06, docs/papers/bnu.md),
    // and in no two-way space lower at p < 0.05 in the per-stimulus paired
    // comparison the script records.
    let mean_over = |run: &str, spaces: &[&str]| {
        spaces
            .iter()
            .map(|s| m[run][format!("two_way_{s}")].as_f64().expect("two-way"))
            .sum::<f64>()
            / spaces.len() as f64
    };
    let resnet = [
        "resnet_layer1",
        "resnet_layer2",
        "resnet_layer3",
        "resnet_layer4",
    ];
    let all = [
        "pixels",
        "resnet_layer1",
        "resnet_layer2",
        "resnet_layer3",
        "resnet_layer4",
    ];
    let p = m["beliy"]["two_way_resnet_layer1_p"].as_f64().expect("p");
    assert!(p < 0.001, "Beliy two-way ResNet layer1 p {p}");
    let beliy_resnet = mean_over("beliy", &resnet);
    assert!(beliy_resnet > 0.65, "Beliy two-way {beliy_resnet}");
    let (with, without) = (
        mean_over("beliy", &all),
        mean_over("beliy_pairs_only", &all),
    );
    assert!(
        with > without,
        "unlabeled data {with} vs pairs only {without} (mean two-way over the scored spaces)"
    );
    // The paired comparison: each score's mean per-stimulus difference is
    // the difference of the two models' recorded scores (a two-way score is
    // the mean of the per-stimulus shares), with a p-value.
    let cmp = &m["beliy_unlabeled_minus_pairs_only"];
    for key in ["pixcorr", "ssim"]
        .into_iter()
        .map(String::from)
        .chain(all.iter().map(|s| format!("two_way_{s}")))
    {
        let d = cmp[&key]["difference"].as_f64().expect("difference");
        let p = cmp[&key]["p"].as_f64().expect("p");
        let expected = m["beliy"][&key].as_f64().expect("with")
            - m["beliy_pairs_only"][&key].as_f64().expect("without");
        assert!((d - expected).abs() < 1e-9, "{key}: {d} vs {expected}");
        assert!((0.0..=1.0).contains(&p), "{key}: p {p}");
        if key.starts_with("two_way_") {
            assert!(
                !(d < 0.0 && p < 0.05),
                "{key}: unlabeled data worse by {d} at p {p}"
            );
        }
    }
}

#[test]
fn encoding_layers_maps_the_best_stage_per_voxel() {
    let (record, dir) = run_quick(
        "scripts/encoding_layers.rhai",
        &["r_per_stage.png", "best_stage.png"],
    );
    assert!(
        record["metrics"]["significant_voxels"]
            .as_f64()
            .expect("count")
            > 100.0
    );
    let best = record["metrics"]["best_stage_per_roi"]
        .as_object()
        .expect("map");
    assert_eq!(best.len(), 7);
    // Quick mode models the ROIs' voxels only, a small part of the brain.
    let modelled = record["metrics"]["voxels_modelled"]
        .as_f64()
        .expect("voxels_modelled");
    assert!(
        (1000.0..10_000.0).contains(&modelled),
        "{modelled} voxels modelled"
    );
    let map = voxlab::data::Volume::load(&dir.path().join("out/best_stage.nii.gz"), false)
        .expect("NIfTI map");
    assert_eq!(map.shape().len(), 3);
    let max = f64::try_from(map.data.0.max()).expect("max");
    assert!(
        (1.0..=22.0).contains(&max),
        "stage numbers 1..22, got max {max}"
    );
}

#[test]
fn takagi_captions_decodes_captions_above_chance_and_maps_language_layers() {
    let (record, dir) = run_quick(
        "scripts/takagi_captions.rhai",
        &[
            "caption_scores.png",
            "captions.png",
            "r_per_layer.png",
            "best_layer.png",
        ],
    );
    let m = &record["metrics"];
    let f = |k: &str| {
        m[k].as_f64()
            .unwrap_or_else(|| panic!("metric {k} missing: {m}"))
    };
    // Captions from the brain beat random pairings on every metric.
    for metric in ["bleu1", "bleu4", "rouge_l", "similarity"] {
        assert!(
            f(metric) > f(&format!("{metric}_chance")),
            "{metric} {} vs chance {}",
            f(metric),
            f(&format!("{metric}_chance"))
        );
        assert!(
            f(&format!("{metric}_p")) < 0.01,
            "{metric} p {}",
            f(&format!("{metric}_p"))
        );
    }
    // Well above chance, not only beyond it: at the default (GOD-calibrated)
    // subject the quick run (300 single training trials, 4 test repeats)
    // reaches 2.2× the chance BLEU-4 of random pairings, and the captioner
    // on the true image features 0.24 (the full run's bars are 2× and 0.3).
    assert!(
        f("bleu4") >= 1.5 * f("bleu4_chance"),
        "BLEU-4 {} is not 1.5× its chance level {}",
        f("bleu4"),
        f("bleu4_chance")
    );
    assert!(
        f("bleu4_image_captions") >= 0.2,
        "the captioner on the true image features: BLEU-4 {}",
        f("bleu4_image_captions")
    );
    // The language-model layers explain the caption-tuned LANG ROI better than V1.
    assert!(
        f("r_LANG") > f("r_V1") + 0.1,
        "LANG r {} vs V1 r {}",
        f("r_LANG"),
        f("r_V1")
    );
    assert!(
        f("unique_LANG") > f("unique_V1"),
        "unique variance LANG {} vs V1 {}",
        f("unique_LANG"),
        f("unique_V1")
    );
    let map = voxlab::data::Volume::load(&dir.path().join("out/best_layer.nii.gz"), false)
        .expect("NIfTI map");
    let max = f64::try_from(map.data.0.max()).expect("max");
    assert!(
        (1.0..=7.0).contains(&max),
        "layer numbers 1..7, got max {max}"
    );
}

/// Every value a doc quotes from a recorded run (a `<!-- run NAME PATH -->`
/// marker after it; the records are docs/papers/runs/NAME.json, written by
/// `make papers`) or benchmark (`<!-- bench NAME PATH -->`,
/// bench/results/NAME.json) equals its record at the precision shown, and
/// the docs quote their records rather than hand-copied numbers.
#[test]
fn docs_quote_their_recorded_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![root.join("README.md")];
    docs.extend(
        entries_under(&root.join("docs"))
            .into_iter()
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "md")),
    );
    let mut problems = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).expect("doc");
        let name = doc
            .strip_prefix(root)
            .expect("inside")
            .display()
            .to_string();
        let n = voxlab::cli::quotes::find(&text)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .len();
        counts.insert(name.clone(), n);
        match voxlab::cli::quotes::check(&text, root) {
            Ok(p) => problems.extend(p.into_iter().map(|p| format!("{name} {p}"))),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    assert!(
        problems.is_empty(),
        "docs differ from their recorded runs (re-record with `make papers`, or fix the doc):\n{}",
        problems.join("\n")
    );
    for (doc, at_least) in [
        ("docs/papers/takagi.md", 15),
        ("docs/papers/bnu.md", 7),
        ("docs/simulated-subject.md", 10),
        ("docs/papers/yu.md", 55),
        ("docs/performance.md", 40),
    ] {
        let n = counts.get(doc).copied().unwrap_or(0);
        assert!(
            n >= at_least,
            "{doc} quotes {n} recorded values, expected at least {at_least}"
        );
    }
}

/// The docs quote records of the committed scripts: a record whose script
/// has changed since (its sha256 differs) describes a script nobody can run
/// any more, so it must be re-recorded (`make papers ONLY=NAME`) with the
/// change.
#[test]
fn recorded_runs_are_of_the_committed_scripts() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stale = Vec::new();
    let mut checked = 0;
    for path in entries_under(&root.join("docs/papers/runs")) {
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let record = read_json(&path);
        let Some(script) = record["script"]["path"].as_str() else {
            continue;
        };
        let text = std::fs::read(root.join(script))
            .unwrap_or_else(|e| panic!("{}: its script {script}: {e}", path.display()));
        let now = voxlab::cli::record::sha256_hex(&text);
        checked += 1;
        if record["script"]["sha256"].as_str() != Some(now.as_str()) {
            stale.push(format!(
                "{} was recorded from another version of {script}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    assert!(checked >= 15, "only {checked} records name their script");
    assert!(
        stale.is_empty(),
        "re-record with `make papers ONLY=NAME`:\n{}",
        stale.join("\n")
    );
}

/// takagi_reconstruct's record scores every route (z + c unprefixed, then
/// z only, the caption route and the decoded z) under reconstruction_scores'
/// names, each a finite number.
fn assert_routes_scored(m: &serde_json::Value) {
    for prefix in ["", "z_only_", "caption_", "decoded_z_"] {
        for key in [
            "pixcorr",
            "ssim",
            "two_way_pixels",
            "two_way_resnet_layer2",
            "two_way_resnet_layer2_p",
        ] {
            let name = format!("{prefix}{key}");
            let v = m[&name]
                .as_f64()
                .unwrap_or_else(|| panic!("metric {name} missing: {m}"));
            assert!(v.is_finite(), "{name} {v}");
        }
    }
}

#[test]
fn takagi_reconstruct_runs_its_three_routes_and_scores_them() {
    let (record, _dir) = run_quick(
        "scripts/takagi_reconstruct.rhai",
        &["reconstructions.png", "generated.png"],
    );
    let m = &record["metrics"];
    let f = |k: &str| {
        m[k].as_f64()
            .unwrap_or_else(|| panic!("metric {k} missing: {m}"))
    };
    // Every route is scored under reconstruction_scores' names.
    assert_routes_scored(m);
    // Ridge predicts the latents from early visual cortex and the caption
    // embedding from higher areas, at the default (GOD-like) snr; the
    // decoded predicted latents are identified above chance (the recorded
    // quick run, docs/papers/runs/takagi_reconstruct_quick.json: z_r 0.70,
    // c_r 0.82, two-way layer1 0.76, layer2 permutation p 1e-4).
    assert!(f("z_r") > 0.4, "z_r {}", f("z_r"));
    assert!(f("c_r") > 0.5, "c_r {}", f("c_r"));
    let decoded = f("decoded_z_two_way_resnet_layer1");
    assert!(decoded > 0.6, "decoded z two-way (layer1) {decoded}");
    let p = f("decoded_z_two_way_resnet_layer2_p");
    assert!(p < 0.01, "decoded z two-way (layer2) p {p}");
    let share = f("caption_route_better_share");
    assert!((0.0..=1.0).contains(&share) && (0.0..=1.0).contains(&f("caption_route_better_p")));
    // The judge: 54 categories of 9 colours and 6 shapes. Quick mode's
    // classifier (2 epochs on 600 scenes) reads the colour of the real test
    // images well above chance; its shape, and the generated samples, need
    // the full run (docs/papers/runs/takagi_reconstruct.json).
    for (key, chance) in [("category", 54.0), ("colour", 9.0), ("shape", 6.0)] {
        assert!(
            (f(&format!("{key}_chance")) - 1.0 / chance).abs() < 1e-12,
            "{key}_chance"
        );
        for set in ["generated_", "real_", "autoencoded_"] {
            let a = f(&format!("{set}{key}_accuracy"));
            assert!((0.0..=1.0).contains(&a), "{set}{key}_accuracy {a}");
            // its p: the one-sided binomial tail P(X ≥ hits), X ~ Binomial(16 test images, chance)
            use statrs::distribution::{Binomial, DiscreteCDF};
            let hits = (a * 16.0).round() as u64;
            let want = if hits == 0 {
                1.0
            } else {
                Binomial::new(1.0 / chance, 16)
                    .expect("binomial")
                    .sf(hits - 1)
            };
            let p = f(&format!("{set}{key}_p"));
            assert!(
                (p - want).abs() < 1e-9 * want.max(1e-300) + 1e-15,
                "{set}{key}_p {p} vs binomial {want}"
            );
        }
    }
    let colour = f("real_colour_accuracy");
    assert!(
        colour > 0.25,
        "classifier's colour accuracy on real test images {colour} (chance 1/9)"
    );
}

/// `--set diffusion=DIR` runs the route for real Stable Diffusion weights
/// on the tiny random diffusers pipeline of tests/fixtures/hf/tiny-sd (no
/// SD weights here, so no quality bar): nothing is trained, z is the
/// pipeline VAE's latents of the stimuli resized to its image size (16 px
/// stimuli here, so resizing happens both ways), c its CLIP text states
/// (tokens × width), and every route is scored under reconstruction_scores'
/// names. Keys only the trained models have are not recorded.
#[test]
fn takagi_reconstruct_runs_a_pretrained_pipeline_on_its_text_states() {
    let sd = crate::common::fixture("hf/tiny-sd");
    let (record, _dir) = run_quick_with(
        "scripts/takagi_reconstruct.rhai",
        &[&format!("diffusion={}", sd.display()), "size=16"],
        &["reconstructions.png", "generated.png"],
    );
    let m = &record["metrics"];
    let f = |k: &str| {
        m[k].as_f64()
            .unwrap_or_else(|| panic!("metric {k} missing: {m}"))
    };
    let config = |part: &str| read_json(&sd.join(part));
    let int = |v: &serde_json::Value| v.as_i64().expect("an integer");
    let tokens = int(&config("tokenizer/tokenizer_config.json")["model_max_length"]);
    let width = int(&config("text_encoder/config.json")["hidden_size"]);
    let unet = config("unet/config.json");
    let latent = int(&unet["sample_size"]);
    let vae_levels = config("vae/config.json")["block_out_channels"]
        .as_array()
        .expect("block_out_channels")
        .len() as u32;
    let image = latent * 2i64.pow(vae_levels - 1);
    assert_eq!(
        m["c_shape"],
        serde_json::json!([tokens, width]),
        "c: the pipeline's text states"
    );
    assert_eq!(
        m["z_shape"],
        serde_json::json!([int(&unet["in_channels"]), latent, latent]),
        "z: the pipeline's latents"
    );
    assert_eq!(
        m["reconstruction_size"],
        serde_json::json!([image, image]),
        "reconstructions at the pipeline's image size, not the stimuli's 16 px"
    );
    assert_routes_scored(m);
    assert!(
        f("z_r").is_finite() && f("c_r").is_finite(),
        "z_r {}, c_r {}",
        f("z_r"),
        f("c_r")
    );
    // The routes condition differently, so their images differ.
    assert_ne!(f("pixcorr"), f("z_only_pixcorr"), "z + c equals z only");
    assert_ne!(
        f("caption_pixcorr"),
        f("z_only_pixcorr"),
        "z + caption equals z only"
    );
    for set in ["generated_", "real_", "autoencoded_"] {
        let a = f(&format!("{set}category_accuracy"));
        assert!((0.0..=1.0).contains(&a), "{set}category_accuracy {a}");
    }
    for key in [
        "autoencoder_val_l1",
        "diffusion_val_loss",
        "generative_training_images",
    ] {
        assert!(
            m.get(key).is_none(),
            "{key} recorded without a model trained here"
        );
    }
}

/// `--set data=DIR` with `--set diffusion=DIR`, the paper's combination (a
/// dataset and Stable Diffusion; here a saved simulated subject and the tiny
/// random pipeline): the stimuli are read at the pipeline's image size,
/// every route is scored, and the judge, which knows only the simulated
/// world's categories, is skipped without recording its keys.
#[test]
fn takagi_reconstruct_reads_a_dataset_folder_with_a_pretrained_pipeline() {
    let tmp = tempfile::tempdir().expect("tmp");
    let vox = crate::common::engine_in(tmp.path());
    let saved = crate::common::eval_in(
        &vox,
        "simulate_subject(#{n_train: 240, n_test: 16, test_repeats: 8, image_size: 16, grid: [16, 16, 16], seed: 5}).save(\"sub\")",
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .to_string();
    let sd = crate::common::fixture("hf/tiny-sd");
    let (record, _dir) = run_quick_with(
        "scripts/takagi_reconstruct.rhai",
        &[
            &format!("data={saved}"),
            &format!("diffusion={}", sd.display()),
        ],
        &["reconstructions.png", "generated.png"],
    );
    let m = &record["metrics"];
    assert_routes_scored(m);
    assert_eq!(m["reconstruction_size"], serde_json::json!([32, 32]));
    assert_eq!(m["c_shape"], serde_json::json!([16, 32]));
    for key in [
        "generated_category_accuracy",
        "real_colour_accuracy",
        "category_chance",
        "category_accuracy",
        "diffusion_val_loss",
    ] {
        assert!(m.get(key).is_none(), "{key} recorded for a dataset");
    }
}

/// A pipeline folder the route cannot use stops the script before any work,
/// naming what is missing: a listed text_encoder/ that is not there
/// (load_diffusion), or a pipeline without a text encoder (the script).
#[test]
fn takagi_reconstruct_refuses_a_pipeline_without_its_text_encoder() {
    let sd = crate::common::fixture("hf/tiny-sd");
    let copy = |dst: &std::path::Path| {
        for part in ["unet", "vae", "scheduler", "tokenizer"] {
            std::fs::create_dir_all(dst.join(part)).expect("mkdir");
            for e in std::fs::read_dir(sd.join(part)).expect("read dir") {
                let e = e.expect("entry");
                std::fs::copy(e.path(), dst.join(part).join(e.file_name())).expect("copy");
            }
        }
        std::fs::copy(sd.join("model_index.json"), dst.join("model_index.json")).expect("copy");
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("missing");
    copy(&missing);
    let o = run_script_in(
        tmp.path(),
        "scripts/takagi_reconstruct.rhai",
        &[&format!("diffusion={}", missing.display())],
    );
    assert_ne!(o.code, 0, "ran without text_encoder/");
    assert!(
        o.stderr.contains("load_diffusion") && o.stderr.contains("text_encoder/ is missing"),
        "{}",
        o.stderr
    );
    let without = tmp.path().join("without");
    copy(&without);
    std::fs::remove_dir_all(without.join("tokenizer")).expect("rm");
    let mut index = read_json(&without.join("model_index.json"));
    for part in ["text_encoder", "tokenizer"] {
        index[part] = serde_json::json!([null, null]);
    }
    std::fs::write(without.join("model_index.json"), index.to_string()).expect("write");
    let cwd = tempfile::tempdir().expect("tmp");
    let o = run_script_in(
        cwd.path(),
        "scripts/takagi_reconstruct.rhai",
        &[&format!("diffusion={}", without.display())],
    );
    assert_ne!(o.code, 0, "ran without a text encoder");
    assert!(
        o.stderr.contains("has no text encoder")
            && o.stderr.contains("text_encoder/ and tokenizer/"),
        "{}",
        o.stderr
    );
}

/// The records the docs quote must be what the code gives now, not only
/// what the docs say: the cheap ones are replayed at their recorded settings
/// (docs/papers/runs/record.sh, one thread, as they were recorded) and every
/// number in their metrics compared. A change that moves them fails here
/// until `make papers ONLY=NAME` re-records them (and the docs test then
/// names the quoted values that moved).
#[test]
fn cheap_recorded_runs_reproduce_their_records() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let plan = std::fs::read_to_string(root.join("docs/papers/runs/record.sh")).expect("record.sh");
    for name in ["quickstart", "simulated_subject"] {
        let line = plan
            .lines()
            .map(|l| l.trim().trim_matches('"'))
            .find(|l| l.starts_with(&format!("{name}|")))
            .unwrap_or_else(|| panic!("{name} is not in record.sh"));
        let parts: Vec<&str> = line.split('|').collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let script = root.join(parts[1]).display().to_string();
        let mut args = vec!["run", script.as_str(), "--threads", "1", "--out", "out"];
        for s in parts[2].split_whitespace() {
            args.extend(["--set", s]);
        }
        let o = voxlab_in(dir.path(), &args, None);
        assert_eq!(o.code, 0, "{name}: {}", o.stderr);
        let now = read_json(&dir.path().join("out/run.json"));
        let recorded = read_json(&root.join(format!("docs/papers/runs/{name}.json")));
        let mut diffs = Vec::new();
        compare_numbers(name, &recorded["metrics"], &now["metrics"], &mut diffs);
        assert!(
            diffs.is_empty(),
            "docs/papers/runs/{name}.json is stale (re-record with `make papers ONLY={name}`):\n{}",
            diffs.join("\n")
        );
    }
}

fn compare_numbers(
    at: &str,
    want: &serde_json::Value,
    got: &serde_json::Value,
    diffs: &mut Vec<String>,
) {
    use serde_json::Value;
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            if (a - b).abs() > 1e-9 * a.abs().max(b.abs()).max(1e-3) {
                diffs.push(format!("{at}: recorded {a}, now {b}"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => compare_numbers(&format!("{at}.{k}"), v, w, diffs),
                    None => diffs.push(format!("{at}.{k}: recorded, now missing")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                compare_numbers(&format!("{at}[{i}]"), v, w, diffs);
            }
        }
        (a, b) if a == b => {}
        (a, b) => diffs.push(format!("{at}: recorded {a}, now {b}")),
    }
}
