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
    let names: Vec<&str> = a.rois.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["V1", "V2", "V3", "V4", "LOC", "LANG", "AMY"]);
    assert!(
        a.rois
            .iter()
            .all(|(_, m)| m.iter().filter(|&&b| b).count() >= 10),
        "every ROI has voxels"
    );
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
        let ds = simulate_subject(#{n_train: 30, n_test: 4, test_repeats: 3, image_size: 32, seed: 2});
        let avg = ds.test().average_repeats();
        [ds.betas.shape[0], ds.train().betas.shape[0], avg.betas.shape[0], ds.rois.keys().len(), ds.images.data.shape, ds.captions[0].contains(" on "), ds.roi("V1").shape[0]]
    "#).expect("simulate_subject");
    assert_eq!(
        voxlab::cli::show(&v),
        "[42, 30, 4, 7, [42, 3, 32, 32], true, 42]"
    );
    let out = dir.path().join("simulated-sub-2");
    for f in [
        "dataset.json",
        "betas.npy",
        "mask.nii.gz",
        "rois/V1.nii.gz",
        "trials.csv",
        "stimuli/stim0001.png",
        "captions.json",
        "labels.csv",
        "ratings.csv",
        "ground_truth/signal.npy",
    ] {
        assert!(out.join(f).exists(), "{f} not written");
    }
    assert_script_error(
        "simulate_subject(#{snr: 0.0})",
        &["simulate_subject: snr must be a positive number"],
    );
    assert_script_error(
        "simulate_subject(#{grid: [10, 10]})",
        &["option 'grid' expects three integers"],
    );
}
