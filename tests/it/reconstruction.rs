//! The standard reconstruction scores against an independent numpy
//! computation (tests/fixtures/eval/make_reconstruction_fixtures.py), their
//! behaviour on known inputs (identical → 100 %, shuffled → ~50 %), the
//! reconstruction figure, the `reconstruct` verb's forms, and the image
//! losses (perceptual L1 on fixed ResNet stages, total variation).

use tch::{Kind, Tensor};
use voxlab::eval::image_metrics;
use voxlab::eval::reconstruction::{reconstruction_scores, ScoreOptions};
use voxlab::eval::{identification, IdentificationOptions, Metric, PTest};
use voxlab::models::perceptual::{total_variation, PerceptualLoss};
use voxlab::models::resnet::{Arch, ResNet};

use crate::common::{assert_script_error, eval_script, fixture};

fn named(r: &voxlab::eval::reconstruction::ReconstructionScores, key: &str) -> f64 {
    r.named()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no score named {key}"))
}

#[test]
fn scores_equal_numpy_on_the_fixture() {
    let both = voxlab::io::npy::load_npy(&fixture("eval/reconstruction.npy")).expect("npy");
    let (truth, recon) = (both.0.get(0), both.0.get(1));
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("eval/reconstruction.json")).expect("json"),
    )
    .expect("json");
    // p: the permutation test over all 10! pairings (the fixture counts
    // them in numpy), and the older binomial over images on request.
    let o = ScoreOptions {
        resnet_layers: vec![],
        test: PTest::Permutation(4_000_000),
        ..Default::default()
    };
    let r = reconstruction_scores(&recon, &truth, &o).expect("scores");
    for (key, fixture_key) in [
        ("pixcorr", "pixcorr"),
        ("two_way_pixels", "two_way_pixels"),
        ("two_way_pixels_p", "two_way_pixels_p_exact_permutation"),
    ] {
        let w = want[fixture_key].as_f64().expect(fixture_key);
        let g = named(&r, key);
        assert!((g - w).abs() < 1e-10, "{key}: {g} vs numpy {w}");
    }
    let binomial = ScoreOptions {
        test: PTest::Binomial,
        ..o
    };
    let b = reconstruction_scores(&recon, &truth, &binomial).expect("binomial");
    let w = want["two_way_pixels_p"].as_f64().expect("binomial p");
    assert!((named(&b, "two_way_pixels_p") - w).abs() < 1e-10);
    // The default: 10,000 random pairings, close to the exact value.
    let mc = reconstruction_scores(
        &recon,
        &truth,
        &ScoreOptions {
            resnet_layers: vec![],
            ..Default::default()
        },
    )
    .expect("default");
    let exact = want["two_way_pixels_p_exact_permutation"]
        .as_f64()
        .expect("p");
    assert!(
        (named(&mc, "two_way_pixels_p") - exact).abs() < 0.01,
        "{} vs {exact}",
        named(&mc, "two_way_pixels_p")
    );
    assert_eq!(named(&r, "two_way_pixels_chance"), 0.5);
    let per: Vec<f64> = want["two_way_per_image"]
        .as_array()
        .expect("per image")
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    assert_eq!(r.spaces[0].two_way.scores.len(), per.len());
    for (g, w) in r.spaces[0].two_way.scores.iter().zip(&per) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
    // SSIM is the existing ssim (checked against scikit-image in eval.rs), averaged.
    let s = image_metrics::ssim(&truth, &recon).expect("ssim");
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    assert!((named(&r, "ssim") - mean).abs() < 1e-12);
    // The names scripts record, in order.
    let names: Vec<String> = r.named().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "pixcorr",
            "ssim",
            "two_way_pixels",
            "two_way_pixels_p",
            "two_way_pixels_chance"
        ]
    );
}

#[test]
fn identical_images_score_100_percent_and_shuffled_ones_about_chance() {
    tch::manual_seed(3);
    let n = 30;
    let truth = Tensor::rand([n, 3, 32, 32], (Kind::Float, tch::Device::Cpu));
    let o = ScoreOptions {
        n_way: Some(10),
        ..Default::default()
    };
    let same = reconstruction_scores(&truth, &truth, &o).expect("identical");
    assert_eq!(
        same.spaces
            .iter()
            .map(|s| s.space.as_str())
            .collect::<Vec<_>>(),
        [
            "pixels",
            "resnet_layer1",
            "resnet_layer2",
            "resnet_layer3",
            "resnet_layer4"
        ]
    );
    for s in &same.spaces {
        assert_eq!(s.two_way.mean, 1.0, "{}", s.space);
        // No random pairing of the 30 does as well: the smallest p.
        assert_eq!(s.two_way.p, 1.0 / 10_001.0, "{}", s.space);
        let nw = s.n_way.as_ref().expect("n-way");
        assert_eq!(nw.mean, 1.0);
        assert!((nw.chance - 0.1).abs() < 1e-15);
    }
    assert!((named(&same, "pixcorr") - 1.0).abs() < 1e-9);
    assert!((named(&same, "ssim") - 1.0).abs() < 1e-9);
    // Reconstructions of other images: every space near 50 %, not significant.
    let other = Tensor::rand([n, 3, 32, 32], (Kind::Float, tch::Device::Cpu));
    let chance = reconstruction_scores(&other, &truth, &o).expect("unrelated");
    for s in &chance.spaces {
        assert!(
            (s.two_way.mean - 0.5).abs() < 0.12 && s.two_way.p > 0.01,
            "{}: {} (p = {})",
            s.space,
            s.two_way.mean,
            s.two_way.p
        );
    }
    // A shuffled truth as reconstruction: still about chance.
    let order: Vec<i64> = (0..n).map(|i| (i + 7) % n).collect();
    let shuffled = truth.index_select(0, &Tensor::from_slice(&order));
    let sh = reconstruction_scores(&shuffled, &truth, &o).expect("shuffled");
    for s in &sh.spaces {
        assert!(
            (s.two_way.mean - 0.5).abs() < 0.12,
            "{}: {}",
            s.space,
            s.two_way.mean
        );
    }
}

#[test]
fn resnet_spaces_are_identification_of_the_stage_features() {
    tch::manual_seed(4);
    let truth = Tensor::rand([12, 3, 40, 40], (Kind::Float, tch::Device::Cpu));
    let recon = (&truth * 0.3
        + Tensor::rand([12, 3, 40, 40], (Kind::Float, tch::Device::Cpu)) * 0.7)
        .clamp(0.0, 1.0);
    let net = ResNet::new(Arch::ResNet18, 5, tch::Device::Cpu).expect("net");
    let o = ScoreOptions {
        pixels: false,
        resnet: Some(&net),
        resnet_layers: vec!["layer2".into(), "avgpool".into()],
        ..Default::default()
    };
    let r = reconstruction_scores(&recon, &truth, &o).expect("scores");
    for (space, stage) in [
        ("resnet_layer2", "layer2.1.conv2"),
        ("resnet_avgpool", "avgpool"),
    ] {
        let f = |x: &Tensor| {
            net.features(x, &[stage.to_string()], 8, false)
                .expect("features")[0]
                .1
                .shallow_clone()
        };
        let want = identification(
            &voxlab::tensor::Tensor(f(&recon)),
            &voxlab::tensor::Tensor(f(&truth)),
            &IdentificationOptions {
                ways: 2,
                repeats: 1,
                metric: Metric::Correlation,
                seed: 0,
                test: o.test,
            },
        )
        .expect("identification");
        let got = r.spaces.iter().find(|s| s.space == space).expect(space);
        assert_eq!(got.two_way.mean, want.mean, "{space}");
        assert_eq!(got.two_way.p, want.p, "{space}");
    }
    // A different size of reconstruction is resized to the truth's.
    let small = recon.upsample_bilinear2d([20, 20], false, None, None);
    let rs = reconstruction_scores(&small, &truth, &o).expect("resized");
    assert_eq!(rs.images, 12);
}

#[test]
fn the_fixed_random_resnet_is_reproducible_and_leaves_the_seed_alone() {
    tch::manual_seed(9);
    let a = ResNet::seeded(Arch::ResNet18, 1, tch::Device::Cpu, 17).expect("a");
    let after = Tensor::rand([3], (Kind::Float, tch::Device::Cpu));
    tch::manual_seed(9);
    let _ = Tensor::rand([3], (Kind::Float, tch::Device::Cpu));
    let b = ResNet::seeded(Arch::ResNet18, 1, tch::Device::Cpu, 17).expect("b");
    tch::manual_seed(9);
    let plain = Tensor::rand([3], (Kind::Float, tch::Device::Cpu));
    // ResNet::new draws from libtorch, then every weight is overwritten from
    // SplitMix64, so the weights do not depend on the libtorch seed …
    for ((na, ta), (_, tb)) in a.state_dict().iter().zip(b.state_dict().iter()) {
        assert!(ta.equal(tb), "{na} differs between two seeded builds");
    }
    let w = &a
        .state_dict()
        .into_iter()
        .find(|(n, _)| n == "layer1.0.conv1.weight")
        .expect("w")
        .1;
    // … and follow Kaiming normal (fan-out = 64·3·3): sd √(2/576).
    let sd = w.std(true).double_value(&[]);
    assert!((sd - (2.0f64 / 576.0).sqrt()).abs() < 0.003, "{sd}");
    let _ = (after, plain);
}

#[test]
fn features_and_clip_spaces_and_bad_input() {
    // Given features: the space is identification on them.
    let v = eval_script(
        "set_seed(1);
         let t = randn([20, 8]);
         let s = reconstruction_scores(rand([20, 3, 16, 16]), rand([20, 3, 16, 16]),
             #{pixels: false, resnet_layers: [], features: #{mine: [t + 0.3 * randn([20, 8]), t]}});
         [s.two_way_mine, s.two_way_mine_p, s.two_way_mine_chance, s.spaces.len()]",
    )
    .expect("features");
    let a = v.into_array().expect("array");
    assert!(a[0].as_float().expect("two way") > 0.9);
    assert!(a[1].as_float().expect("p") < 1e-4);
    assert_eq!(a[2].as_float().expect("chance"), 0.5);
    assert_eq!(a[3].as_int().expect("spaces"), 1);
    assert_script_error(
        "reconstruction_scores(rand([4, 3, 16, 16]), rand([5, 3, 16, 16]))",
        &[
            "reconstruction_scores",
            "5 images (one per true image)",
            "4",
        ],
    );
    assert_script_error(
        "reconstruction_scores(rand([4, 1, 16, 16]), rand([4, 3, 16, 16]))",
        &["reconstruction_scores", "recon", "N×3×H×W"],
    );
    assert_script_error(
        "reconstruction_scores(rand([4, 3, 16, 16]), rand([4, 3, 16, 16]), #{n_way: 9})",
        &["reconstruction_scores", "n_way", "3…4"],
    );
    assert_script_error(
        "reconstruction_scores(rand([4, 3, 16, 16]), rand([4, 3, 16, 16]), #{features: #{f: [rand([4, 2]), rand([4, 3])]}})",
        &["reconstruction_scores", "features 'f'", "4×2 and 4×3"],
    );
    assert_script_error(
        "reconstruction_scores(rand([4, 3, 16, 16]), rand([4, 3, 16, 16]), #{resnet_layers: [\"layer9\"]})",
        &["reconstruction_scores", "layer9", "layer1 … layer4"],
    );
    assert_script_error(
        "reconstruction_scores(rand([4, 3, 16, 16]), rand([4, 3, 16, 16]), #{sample: 2})",
        &[
            "reconstruction_scores",
            "sample",
            "pixels, resnet, resnet_layers",
        ],
    );
}

#[test]
fn plot_reconstructions_draws_truth_above_samples() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("recon.png");
    let script = format!(
        "let t = rand([5, 3, 24, 24]);
         plot_reconstructions(t, [t * 0.5, t * 0.2], #{{items: [0, 2, 4], captions: [\"a\", \"b\", \"c\", \"d\", \"e\"]}}).save(\"{}\");",
        path.display()
    );
    let _ = eval_script(&script).expect("figure");
    let img = image::open(&path).expect("png").to_rgb8();
    assert!(
        img.width() == 900 && img.height() > 200,
        "{}×{}",
        img.width(),
        img.height()
    );
    assert_script_error(
        "plot_reconstructions(rand([5, 3, 8, 8]), rand([4, 3, 8, 8]))",
        &["plot_reconstructions", "5 images", "4×3×8×8"],
    );
    assert_script_error(
        "plot_reconstructions(rand([5, 3, 8, 8]), rand([5, 3, 8, 8]), #{items: [7]})",
        &["plot_reconstructions", "index 7", "5 images"],
    );
    assert_script_error(
        "plot_reconstructions(rand([5, 3, 8, 8]), rand([5, 3, 8, 8]), #{captions: [\"a\"]})",
        &["plot_reconstructions", "captions", "5 (one per true image)"],
    );
}

#[test]
fn reconstruct_with_a_ridge_pixel_decoder() {
    let v = eval_script(
        "set_seed(0);
         let images = rand([60, 3, 12, 12]);
         let betas = images.reshape([60, 432]).matmul(randn([432, 80])) + 0.2 * randn([60, 80]);
         let decoder = fit_ridge(betas, images.reshape([60, 432]), #{alphas: [1.0, 10.0]});
         let recon = reconstruct(decoder, betas);
         let s = reconstruction_scores(recon, images, #{resnet_layers: []});
         [recon.data.shape, s.two_way_pixels, recon.data.min().item(), recon.data.max().item()]",
    )
    .expect("ridge");
    let a = v.into_array().expect("array");
    assert_eq!(a[0].to_string(), "[60, 3, 12, 12]");
    assert!(a[1].as_float().expect("two way") > 0.95);
    assert!(a[2].as_float().expect("min") >= 0.0 && a[3].as_float().expect("max") <= 1.0);
    assert_script_error(
        "let d = fit_ridge(randn([10, 4]), randn([10, 7]), #{alphas: [1.0]}); reconstruct(d, randn([2, 4]))",
        &["reconstruct", "7 targets"],
    );
    assert_script_error(
        "let d = fit_ridge(randn([10, 4]), randn([10, 12]), #{alphas: [1.0]}); reconstruct(d, randn([2, 5]))",
        &["reconstruct"],
    );
    assert_script_error(
        "let d = fit_ridge(randn([10, 4]), randn([10, 12]), #{alphas: [1.0]}); reconstruct(d, randn([2, 4]), #{colour: true})",
        &["reconstruct", "colour", "image_size"],
    );
}

#[test]
fn perceptual_loss_and_total_variation() {
    let op = "test";
    let loss = PerceptualLoss::beliy_random(op, tch::Device::Cpu, 1).expect("loss");
    assert_eq!(
        loss.terms(),
        [
            ("pixels".to_string(), 0.15),
            ("conv1".to_string(), 0.7),
            ("layer1.1.conv2".to_string(), 0.15)
        ]
    );
    tch::manual_seed(2);
    let target = Tensor::rand([2, 3, 32, 32], (Kind::Float, tch::Device::Cpu));
    let same = loss
        .loss(op, &target, &target)
        .expect("same")
        .double_value(&[]);
    assert!(same.abs() < 1e-6, "{same}");
    let recon =
        Tensor::rand([2, 3, 32, 32], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let l = loss.loss(op, &recon, &target).expect("loss");
    assert!(l.double_value(&[]) > 0.1);
    l.backward();
    let g = recon.grad();
    assert!(g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    assert!(loss.loss(op, &recon, &target.narrow(2, 0, 16)).is_err());
    // Pixel term alone: mean |a − b| / the reference images' mean |x| per channel.
    let mut pix = PerceptualLoss::new(
        op,
        std::rc::Rc::new(ResNet::seeded(Arch::ResNet18, 1, tch::Device::Cpu, 1).expect("net")),
        vec![],
        1.0,
    )
    .expect("pixels only");
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0])
        .reshape([1, 1, 2, 2])
        .repeat([1, 3, 1, 1]);
    let b = Tensor::from_slice(&[2.0f32, 2.0, 2.0, 2.0])
        .reshape([1, 1, 2, 2])
        .repeat([1, 3, 1, 1]);
    // |a − b| = 1, 0, 1, 2 → mean 1; before calibration the scale is 1 …
    let v = pix.loss(op, &a, &b).expect("pixel").double_value(&[]);
    assert!((v - 1.0).abs() < 1e-5, "{v}");
    // … calibrated on a and 3a (mean |x| 2.5 and 7.5, so 5 per channel): 1/5.
    pix.calibrate(op, &Tensor::cat(&[&a, &(&a * 3.0)], 0))
        .expect("calibrate");
    let v = pix.loss(op, &a, &b).expect("pixel").double_value(&[]);
    assert!((v - 0.2).abs() < 1e-5, "{v}");
    // Total variation by hand: 3×3 image, exponent 1 → mean of dx² + dy²
    // over the 2×2 pixels that have a right and a lower neighbour.
    let x =
        Tensor::from_slice(&[0.0f32, 1.0, 3.0, 1.0, 1.0, 0.0, 2.0, 0.0, 0.0]).reshape([1, 1, 3, 3]);
    // (0,0): dx 1, dy 1 → 2; (0,1): dx 2, dy 0 → 4; (1,0): dx 0, dy 1 → 1; (1,1): dx −1, dy −1 → 2.
    let tv = total_variation(op, &x, 1.0).expect("tv").double_value(&[]);
    assert!((tv - 2.25).abs() < 1e-6, "{tv}");
    // Beliy's exponent 1.25 on the sum of squares.
    let tv125 = total_variation(op, &x, 1.25).expect("tv").double_value(&[]);
    let want = (2f64.powf(1.25) + 4f64.powf(1.25) + 1.0 + 2f64.powf(1.25)) / 4.0;
    assert!((tv125 - want).abs() < 1e-5, "{tv125} vs {want}");
    assert!(total_variation(
        op,
        &Tensor::zeros([1, 1, 1, 5], (Kind::Float, tch::Device::Cpu)),
        2.0
    )
    .is_err());
}
