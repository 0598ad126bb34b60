//! Beliy et al.'s encoder–decoder (train_beliy, reconstruct): both stages
//! train through the one trainer and keep their histories, the reconstructions
//! have the configured size, and bad input is an error naming what was
//! expected. Above-chance reconstruction on the simulated subject is checked
//! by the bnu_emotion script test (tests/it/scripts.rs).

use voxlab::models::beliy::{BeliyConfig, Encoder, EncoderNorm};

use crate::common::{assert_script_error, eval_script, voxlab_in};

const TINY: &str = "let ds = simulate_subject(#{n_train: 64, n_test: 6, test_repeats: 3, n_extra_images: 16, image_size: 32, grid: [16, 20, 16], save: false});";

#[test]
fn both_stages_train_and_reconstruct_at_the_configured_size() {
    let v = eval_script(&format!(
        "set_seed(0); {TINY}
         let m = train_beliy(ds, #{{encoder_epochs: 3, decoder_epochs: 2, batch: 32, unpaired_batch: 8,
                                   rois: [\"V1\", \"V2\"], unlabeled_images: rand([16, 3, 32, 32]),
                                   unlabeled_fmri: ds.test().betas, verbose: false}});
         let seen = ds.test().average_repeats();
         let a = reconstruct(m, seen);
         let sub = cat([seen.roi(\"V1\"), seen.roi(\"V2\")], 1);
         let b = reconstruct(m, sub, #{{batch: 2}});
         [a.data.shape, m.history.encoder.train_loss.len(), m.history.decoder.train_loss.len(),
          m.history.decoder.train_unlabeled_image.len(), m.history.decoder.train_unlabeled_fmri.len(),
          a.data.min().item(), a.data.max().item(), m.first_conv, m.snr.shape[0] == m.voxels,
          (a.data - b.data).abs().max().item(), m.voxels == sub.shape[1], m.history.encoder.lr]"
    ))
    .expect("train");
    let a = v.into_array().expect("array");
    assert_eq!(a[0].to_string(), "[6, 3, 32, 32]");
    assert_eq!(a[1].as_int().expect("enc epochs"), 3);
    assert_eq!(a[2].as_int().expect("dec epochs"), 2);
    assert_eq!(a[3].as_int().expect("unlabeled images metric"), 2);
    assert_eq!(a[4].as_int().expect("unlabeled fMRI metric"), 2);
    let (lo, hi) = (a[5].as_float().expect("min"), a[6].as_float().expect("max"));
    assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && hi > lo);
    assert_eq!(a[7].to_string(), "learned");
    assert!(a[8].as_bool().expect("snr"));
    // The ROI voxels taken from a Dataset equal the same columns given directly.
    assert!(a[9].as_float().expect("diff") < 1e-6);
    assert!(a[10].as_bool().expect("voxels"));
}

#[test]
fn the_same_seed_gives_the_same_model_twice_in_one_run() {
    // A draw between the trainings moves the script's generator: the seed
    // option alone decides the initial weights, shifts and dropout. In a
    // process of its own: libtorch's generator is shared by the tests that
    // run in parallel threads of this one.
    let dir = tempfile::tempdir().expect("temp dir");
    let script = format!(
        "set_seed(0); {TINY}
         let o = #{{encoder_epochs: 2, decoder_epochs: 1, batch: 32, unpaired_batch: 8, seed: 5, verbose: false}};
         let a = train_beliy(ds, o);
         let noise = randn([100]);
         let b = train_beliy(ds, o);
         let c = train_beliy(ds, o + #{{seed: 6}});
         let test = ds.test().betas;
         print(`encoder ${{a.history.encoder.train_loss == b.history.encoder.train_loss}}`);
         print(`decoder ${{a.history.decoder.train_loss == b.history.decoder.train_loss}}`);
         print(`images ${{(reconstruct(a, test).data - reconstruct(b, test).data).abs().max().item()}}`);
         print(`other ${{a.history.encoder.train_loss == c.history.encoder.train_loss}}`);"
    );
    std::fs::write(dir.path().join("twice.rhai"), script).expect("script");
    let out = voxlab_in(dir.path(), &["run", "twice.rhai"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = |key: &str| -> String {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} line in {}", out.stdout))
            .to_string()
    };
    assert_eq!(line("encoder"), "true", "stage 1 histories differ");
    assert_eq!(line("decoder"), "true", "stage 2 histories differ");
    assert_eq!(line("images").parse::<f64>().expect("number"), 0.0);
    assert_eq!(
        line("other"),
        "false",
        "another seed gave the same training"
    );
}

#[test]
fn the_ablation_trains_on_pairs_alone() {
    let v = eval_script(&format!(
        "set_seed(0); {TINY}
         let m = train_beliy(ds, #{{encoder_epochs: 1, decoder_epochs: 1, batch: 32, unlabeled: false,
                                   unlabeled_images: rand([4, 3, 32, 32]), verbose: false}});
         [m.unlabeled, \"train_unlabeled_image\" in m.history.decoder, \"train_unlabeled_fmri\" in m.history.decoder]"
    ))
    .expect("ablation");
    let a = v.into_array().expect("array");
    assert!(!a[0].as_bool().expect("flag"));
    assert!(!a[1].as_bool().expect("no unlabeled images"));
    assert!(!a[2].as_bool().expect("no unlabeled fMRI"));
}

#[test]
fn configs_and_bad_input() {
    let paper = BeliyConfig::paper();
    assert_eq!(
        (paper.image_size, paper.encoder_epochs, paper.decoder_epochs),
        (112, 80, 150)
    );
    assert_eq!((paper.batch, paper.unpaired_batch), (48, 16));
    paper.validate("test").expect("the paper's config is valid");
    BeliyConfig::small()
        .validate("test")
        .expect("the small config is valid");
    let quick = "encoder_epochs: 1, decoder_epochs: 1, verbose: false";
    assert_script_error(
        &format!("{TINY} train_beliy(ds.train(), #{{{quick}}})"),
        &["train_beliy", "no test trials"],
    );
    assert_script_error(
        &format!("{TINY} train_beliy(ds, #{{image_size: 20, {quick}}})"),
        &["train_beliy", "image_size", "multiple of 8"],
    );
    assert_script_error(
        &format!("{TINY} train_beliy(ds, #{{rois: [\"V9\"], {quick}}})"),
        &["train_beliy", "no ROI 'V9'", "V1"],
    );
    assert_script_error(
        &format!(
            "{TINY} train_beliy(ds, #{{unlabeled_fmri: randn([5, 3]), rois: [\"V1\"], {quick}}})"
        ),
        &["train_beliy", "unlabeled_fmri", "the dataset's", "5×3"],
    );
    assert_script_error(
        &format!("{TINY} train_beliy(ds, #{{encoder_optimizer: \"rmsprop\", {quick}}})"),
        &["train_beliy", "encoder_optimizer", "sgd", "adam", "rmsprop"],
    );
    assert_script_error(
        &format!("{TINY} train_beliy(ds, #{{epochs: 3}})"),
        &["train_beliy", "epochs", "encoder_epochs"],
    );
    assert_script_error(
        &format!(
            "{TINY} let m = train_beliy(ds, #{{rois: [\"V1\"], {quick}}}); reconstruct(m, randn([2, 7]))"
        ),
        &["reconstruct", "betas", "voxels of V1", "2×7"],
    );
    assert_script_error(
        &format!(
            "{TINY} let m = train_beliy(ds, #{{{quick}}}); reconstruct(m, ds.betas, #{{image_size: 3}})"
        ),
        &["reconstruct", "image_size", "reconstruct(Beliy, …)", "batch"],
    );
    // A dataset without images.
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().join("sub");
    assert_script_error(
        &format!(
            "{TINY} ds.save(\"{p}\"); let bare = load_dataset(\"{p}\", #{{images: false}}); train_beliy(bare, #{{{quick}}})",
            p = d.display()
        ),
        &["train_beliy", "no stimulus images"],
    );
}

/// Stage 2's frozen encoder (as the authors' Keras 2 ran it): normalised
/// with the batch's statistics, exactly as in training, and its running
/// statistics left as stage 1 left them.
#[test]
fn the_frozen_encoder_uses_batch_statistics_and_keeps_its_running_ones() {
    use tch::{nn, Device, Kind, Tensor};
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let encoder = Encoder::new(&vs.root(), &BeliyConfig::small(), 10, None);
    let x = Tensor::rand([8, 3, 32, 32], (Kind::Float, Device::Cpu));
    let before = encoder.running_statistics();
    let frozen = tch::no_grad(|| encoder.forward(&x, EncoderNorm::Frozen, 0.0));
    for (a, b) in before.iter().zip(encoder.running_statistics()) {
        assert!(a.equal(&b), "the frozen pass changed running statistics");
    }
    let inference = tch::no_grad(|| encoder.forward(&x, EncoderNorm::Running, 0.0));
    let trained = tch::no_grad(|| encoder.forward(&x, EncoderNorm::Train, 0.0));
    let diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
    assert!(
        diff(&frozen, &trained) < 1e-5,
        "batch statistics differ from training's"
    );
    assert!(
        diff(&frozen, &inference) > 1e-3,
        "the running statistics were used"
    );
    assert!(
        !before[0].equal(&encoder.running_statistics()[0]),
        "a training pass updates the running statistics"
    );
}
