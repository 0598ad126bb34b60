//! The simulated subject: deterministic, GOD-like design, captions that
//! state the content, and responses whose ground truth is recoverable.

use voxlab::data::simulate::{simulate, SimOptions, Split};

use crate::common::assert_script_error;

fn small() -> SimOptions {
    SimOptions {
        n_train: 120,
        n_test: 10,
        test_repeats: 8,
        image_size: 32,
        ..Default::default()
    }
}

/// The smallest subject the save/load tests need: a 14×16×14 grid, 16 px.
fn tiny() -> SimOptions {
    SimOptions {
        n_train: 12,
        n_test: 3,
        test_repeats: 2,
        image_size: 16,
        grid: [14, 16, 14],
        ..Default::default()
    }
}

#[test]
fn design_and_determinism() {
    let a = simulate(&small()).expect("simulate");
    let n_trials = 120 + 10 * 8;
    assert_eq!(a.betas.size()[0], n_trials);
    assert_eq!(
        a.trials.iter().filter(|t| t.split == Split::Test).count(),
        80
    );
    assert_eq!(a.images.size(), vec![130, 3, 32, 32]);
    for t in a.trials.iter().filter(|t| t.split == Split::Test) {
        assert!((120..130).contains(&t.stimulus) && t.repeat < 8);
    }
    let b = simulate(&small()).expect("again");
    assert!(
        a.betas.equal(&b.betas) && a.images.equal(&b.images),
        "same seed, same subject"
    );
    let c = simulate(&SimOptions { seed: 1, ..small() }).expect("other seed");
    assert!(!a.betas.equal(&c.betas));
    for s in &a.scenes {
        let cap = s.caption();
        assert!(
            cap.contains(voxlab::data::scenes::SHAPES[s.shape])
                && cap.contains(voxlab::data::scenes::COLOURS[s.colour].0),
            "{cap}"
        );
        assert!((1.0..=9.0).contains(&s.valence) && (1.0..=9.0).contains(&s.arousal));
        assert!(s.category() < 54);
    }
    // GOD-like: every test stimulus shows a different category.
    let mut test_categories: Vec<usize> = a.scenes[120..130].iter().map(|s| s.category()).collect();
    test_categories.sort_unstable();
    test_categories.dedup();
    assert_eq!(test_categories.len(), 10, "test categories repeat");
    let names: Vec<&str> = a.rois.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["V1", "V2", "V3", "V4", "LOC", "LANG", "AMY"]);
    assert!(
        a.rois
            .iter()
            .all(|(_, m)| m.iter().filter(|&&b| b).count() >= 10),
        "every ROI has voxels"
    );
    // ROIs are disjoint: a voxel's mask is the ROI whose tuning it has.
    let n_vox = a.rois[0].1.len();
    for v in 0..n_vox {
        let owners = a.rois.iter().filter(|(_, m)| m[v]).count();
        assert!(owners <= 1, "voxel {v} is in {owners} ROIs");
    }
}

/// Mean over rows of the Pearson r between matching rows of two matrices.
fn mean_row_correlation(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    let z = |x: &tch::Tensor| {
        let m = x.mean_dim(Some([1i64].as_slice()), true, tch::Kind::Double);
        let c = x.to_kind(tch::Kind::Double) - m;
        let n = c
            .square()
            .sum_dim_intlist(Some([1i64].as_slice()), true, tch::Kind::Double)
            .sqrt();
        c / n
    };
    f64::try_from(
        (z(a) * z(b))
            .sum_dim_intlist(Some([1i64].as_slice()), false, tch::Kind::Double)
            .mean(tch::Kind::Double),
    )
    .expect("scalar")
}

#[test]
fn averaging_repeats_recovers_the_known_signal() {
    // Test-set responses averaged over repeats correlate with the noiseless
    // signal far better than single trials: sqrt(repeats) more SNR.
    let opts = SimOptions {
        n_train: 100,
        n_test: 20,
        test_repeats: 16,
        image_size: 32,
        snr: 0.5,
        ..Default::default()
    };
    let sim = simulate(&opts).expect("simulate");
    let roi: Vec<i64> = sim
        .rois
        .iter()
        .filter(|(n, _)| n == "V4" || n == "LOC")
        .flat_map(|(_, m)| {
            m.iter()
                .enumerate()
                .filter(|(_, &b)| b)
                .map(|(i, _)| i as i64)
        })
        .collect();
    let cols = tch::Tensor::from_slice(&roi);
    let test: Vec<usize> = sim
        .trials
        .iter()
        .enumerate()
        .filter(|(_, t)| t.split == Split::Test)
        .map(|(i, _)| i)
        .collect();
    let rows = tch::Tensor::from_slice(&test.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let stim = tch::Tensor::from_slice(
        &test
            .iter()
            .map(|&i| sim.trials[i].stimulus as i64)
            .collect::<Vec<_>>(),
    );
    let single = mean_row_correlation(
        &sim.betas.index_select(0, &rows).index_select(1, &cols),
        &sim.signal.index_select(0, &stim).index_select(1, &cols),
    );
    let averaged: Vec<tch::Tensor> = (100..120)
        .map(|k| {
            let idx: Vec<i64> = test
                .iter()
                .filter(|&&i| sim.trials[i].stimulus == k)
                .map(|&i| i as i64)
                .collect();
            sim.betas
                .index_select(0, &tch::Tensor::from_slice(&idx))
                .index_select(1, &cols)
                .mean_dim(Some([0i64].as_slice()), false, tch::Kind::Float)
        })
        .collect();
    let truth = sim.signal.narrow(0, 100, 20).index_select(1, &cols);
    let averaged = mean_row_correlation(&tch::Tensor::stack(&averaged, 0), &truth);
    assert!(single > 0.2 && single < 0.6, "single-trial r {single}");
    assert!(averaged > 0.85, "averaged r {averaged} should approach 1");
}

#[test]
fn the_script_face_writes_and_loads_a_dataset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = crate::common::engine_in(dir.path());
    let v = crate::common::eval_in(&vox, r#"
        let ds = simulate_subject(#{n_train: 30, n_test: 4, test_repeats: 3, image_size: 32, seed: 2, save: true});
        let avg = ds.test().average_repeats();
        [ds.betas.shape[0], ds.train().betas.shape[0], avg.betas.shape[0], ds.rois.keys().len(), ds.images.data.shape, ds.captions[0].contains(ds.labels[0].split(" ")[1]), ds.roi("V1").shape[0]]
    "#).expect("simulate_subject");
    assert_eq!(
        voxlab::cli::show(&v),
        "[42, 30, 4, 7, [42, 3, 32, 32], true, 42]"
    );
    let out = dir.path().join("simulated-sub-2");
    for f in [
        "dataset.json",
        "betas.nii.gz",
        "mask.nii.gz",
        "rois/V1.nii.gz",
        "trials.csv",
        "stimuli/stim0001.png",
        "captions.json",
        "labels.csv",
        "ratings.csv",
        "ground_truth/signal.nii.gz",
    ] {
        assert!(out.join(f).exists(), "{f} not written");
    }
    assert_script_error(
        "simulate_subject(#{out: \"ds\", save: false})",
        &["simulate_subject: out names a folder to write, but save is false"],
    );
    assert_script_error(
        "simulate_subject(#{snr: 0.0})",
        &["simulate_subject: snr must be a positive number"],
    );
    assert_script_error(
        "simulate_subject(#{grid: [10, 10]})",
        &["option 'grid' expects three integers"],
    );
}

#[test]
fn the_script_face_writes_nothing_unless_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = crate::common::engine_in(dir.path());
    let trials = crate::common::eval_in(
        &vox,
        "let ds = simulate_subject(#{n_train: 12, n_test: 3, test_repeats: 2, image_size: 16, grid: [14, 16, 14]}); ds.len",
    )
    .expect("simulate_subject");
    assert_eq!(trials.as_int().ok(), Some(12 + 3 * 2));
    let written: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(written.is_empty(), "wrote {written:?} unasked");
}

#[test]
fn saved_4d_betas_load_back_identical() {
    // The betas go out as a 4-D NIfTI (zeros outside the mask) and come back
    // through load_dataset bit-for-bit, in the labeled trials' order.
    let sim = simulate(&SimOptions {
        n_train: 30,
        n_test: 4,
        test_repeats: 3,
        n_extra_fmri: 5,
        ..tiny()
    })
    .expect("simulate");
    let dir = tempfile::tempdir().expect("temp dir");
    // What simulate_subject returns: the Dataset save wrote, from memory.
    let mem = voxlab::data::simulate::save(&sim, dir.path(), "simulated").expect("save");
    assert!(dir.path().join("betas.nii.gz").exists());
    let ds = voxlab::data::dataset::load(
        dir.path(),
        &voxlab::data::dataset::DatasetOptions {
            images: true,
            image_size: None,
            filter: voxlab::io::images::Filter::Bicubic,
            drop_nan_voxels: false,
        },
    )
    .expect("load");
    let labeled = sim.betas.narrow(0, 0, 42);
    assert_eq!(ds.betas.0.size(), labeled.size());
    assert!(
        ds.betas.0.equal(&labeled),
        "betas identical after the round trip"
    );
    let extra =
        voxlab::io::npy::load_npy(&dir.path().join("extra_fmri/betas.npy")).expect("extra betas");
    assert!(
        extra.0.equal(&sim.betas.narrow(0, 42, 5)),
        "extra fMRI written"
    );
    assert!(dir.path().join("extra_fmri/stimuli/stim0035.png").exists());
    for (t, s) in ds.trials.iter().zip(&sim.trials) {
        assert_eq!(t.stimulus, sim.ids[s.stimulus]);
        assert_eq!(t.split, s.split.name());
        assert_eq!(t.repeat, s.repeat as i64);
    }
    assert_eq!(ds.rois.len(), sim.rois.len());
    // simulate_subject returns the subject in memory without re-reading it:
    // it must equal what load_dataset reads, part by part.
    assert_eq!(mem.trials, ds.trials);
    assert_eq!(mem.captions, ds.captions);
    assert_eq!(mem.labels, ds.labels);
    assert_eq!(mem.ratings, ds.ratings);
    assert!(mem.betas.0.equal(&ds.betas.0));
    assert!(mem.mask.data.0.equal(&ds.mask.data.0));
    for ((a, ma), (b, mb)) in mem.rois.iter().zip(&ds.rois) {
        assert_eq!(a, b);
        assert!(ma.data.0.equal(&mb.data.0), "ROI {a}");
    }
    let per_trial = |d: &voxlab::data::dataset::Dataset| {
        d.trial_images("test")
            .expect("images")
            .expect("some")
            .data
            .0
    };
    assert!(
        per_trial(&mem).equal(&per_trial(&ds)),
        "images identical (8-bit, as the PNGs)"
    );
    // The noiseless signal comes back from its 4-D NIfTI through the mask.
    let gt =
        voxlab::data::volume::Volume::load(&dir.path().join("ground_truth/signal.nii.gz"), false)
            .expect("signal");
    let signal = ds.mask.apply("test", &gt).expect("masked signal");
    assert!(signal.0.equal(&sim.signal), "ground truth identical");
}

#[test]
fn dataset_save_then_load_gives_identical_data() {
    // A Dataset written with ds.save(dir) reads back identical: the simulated
    // subject, and a selection averaged over repeats.
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = crate::common::engine_in(dir.path());
    let v = crate::common::eval_in(
        &vox,
        r#"
        fn same(a, b) {
            let rois_same = a.rois.keys() == b.rois.keys();
            for k in a.rois.keys() {
                if (a.roi(k) - b.roi(k)).abs().max().item() != 0.0 { rois_same = false; }
            }
            let parts = [
                (a.betas - b.betas).abs().max().item() == 0.0 && a.betas.shape == b.betas.shape,
                a.trials.stimulus == b.trials.stimulus && a.trials.split == b.trials.split
                    && a.trials.repeat == b.trials.repeat,
                a.captions == b.captions,
                a.labels == b.labels,
                a.ratings.keys() == b.ratings.keys()
                    && (a.ratings.valence - b.ratings.valence).abs().max().item() == 0.0,
                rois_same,
                (a.images.data - b.images.data).abs().max().item() == 0.0,
                a.images.ids == b.images.ids,
            ];
            parts
        }
        let ds = simulate_subject(#{n_train: 20, n_test: 3, test_repeats: 2, image_size: 16, grid: [14, 16, 14]});
        let back = load_dataset(ds.save("copy"));
        let avg = ds.test().average_repeats();
        let avg_back = load_dataset(avg.save("averaged"));
        same(ds, back) + same(avg, avg_back)
        "#,
    )
    .expect("save and load");
    assert_eq!(
        voxlab::cli::show(&v),
        "[true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true]"
    );
    for f in [
        "copy/dataset.json",
        "copy/betas.nii.gz",
        "copy/rois/V4.nii.gz",
        "averaged/stimuli/stim0021.png",
    ] {
        assert!(dir.path().join(f).exists(), "{f} not written");
    }
}

/// The Python of the set-up's environment (`make test` exports VIRTUAL_ENV).
fn setup_python() -> std::path::PathBuf {
    let venv = std::env::var_os("VIRTUAL_ENV")
        .expect("VIRTUAL_ENV is not set: run the tests with `make test`");
    std::path::Path::new(&venv).join("bin/python")
}

#[test]
fn nibabel_reads_every_nifti_the_simulated_subject_wrote() {
    // nibabel (installed by `make test`) opens each file, checks grid,
    // affine and masks, and writes the betas it sees inside the mask; they
    // must equal voxlab's bit for bit.
    let sim = simulate(&tiny()).expect("simulate");
    let dir = tempfile::tempdir().expect("temp dir");
    voxlab::data::simulate::save(&sim, dir.path(), "simulated").expect("save");
    let script = crate::common::fixture("data/check_sim_nibabel.py");
    let out = std::process::Command::new(setup_python())
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "nibabel check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("betas.nii.gz: shape (14, 16, 14, 18)"),
        "{stdout}"
    );
    let seen = voxlab::io::npy::load_npy(&dir.path().join("nibabel_betas.npy")).expect("npy");
    let ours = sim.betas.narrow(0, 0, 18);
    assert!(
        seen.0.to_kind(tch::Kind::Float).equal(&ours),
        "betas through nibabel differ from voxlab's"
    );
}
