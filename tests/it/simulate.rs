//! The simulated subject: deterministic, GOD-like design, captions that
//! state the content, and responses whose ground truth is recoverable.

use voxlab::data::simulate::{simulate, SimOptions, Split};

use crate::common::{assert_script_error, eval_script};

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

#[test]
fn averaging_repeats_recovers_the_known_signal() {
    // Test-set betas averaged over repeats correlate with the noiseless
    // signal far better than single trials: sqrt(repeats) more SNR.
    let v = eval_script(r#"
        import "decoding" as dec;
        let s = simulate_subject(#{n_train: 100, n_test: 20, test_repeats: 16, image_size: 32, snr: 0.5});
        let roi = s.rois.V4 | s.rois.LOC;
        let none = !(roi & !roi);
        let test = s.betas.rows(s.test).cols(roi);
        let stim = s.trials.stimulus.rows(s.test);
        let truth = s.signal.rows(stim).cols(roi);
        let single = dec::pattern_correlation(test, truth).mean().item();
        let sum = zeros([20, truth.shape[1]]);
        let avg = [];
        for k in 0..20 {
            avg.push(test.rows(stim == (100 + k)).mean(0));
        }
        let averaged = dec::pattern_correlation(stack(avg), s.signal.rows(arange(100, 120)).cols(roi)).mean().item();
        [single, averaged]
    "#).expect("script");
    let parts = v.into_array().expect("array");
    let (single, averaged) = (
        parts[0].as_float().expect("f"),
        parts[1].as_float().expect("f"),
    );
    assert!(single > 0.2 && single < 0.6, "single-trial r {single}");
    assert!(averaged > 0.85, "averaged r {averaged} should approach 1");
    assert_script_error(
        "simulate_subject(#{snr: 0.0})",
        &["simulate_subject: snr must be a positive number"],
    );
    assert_script_error(
        "simulate_subject(#{grid: [10, 10]})",
        &["option 'grid' expects three integers"],
    );
}
