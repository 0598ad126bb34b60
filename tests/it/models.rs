//! Ridge against scikit-learn and himalaya fixtures (tests/fixtures/models,
//! made by make_ridge_fixtures.py beside them), its errors and files, and the
//! identification protocols on data whose answer is known.

use serde_json::Value;
use tch::{Device, Kind};
use voxlab::eval::identification::DEFAULT_PERMUTATIONS;
use voxlab::eval::{identification, IdentificationOptions, Metric, PTest};
use voxlab::io::npy::load_npy;
use voxlab::models::{fit_ridge, RidgeModel, RidgeOptions, Scoring};
use voxlab::tensor::Tensor;

use crate::common::{assert_script_error, eval_f64, eval_script, fixture};

fn cases() -> Value {
    let text = std::fs::read_to_string(fixture("models/ridge.json")).expect("ridge.json");
    serde_json::from_str::<Value>(&text).expect("json")["cases"].clone()
}

fn npy(case: &str, part: &str) -> Tensor {
    load_npy(&fixture(&format!("models/{case}_{part}.npy"))).expect("fixture npy")
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not numbers: {other}"),
    }
}

fn values(t: &tch::Tensor) -> Vec<f64> {
    Tensor(t.shallow_clone()).to_f64_vec("test").unwrap()
}

/// Every element within `rel` of the expected one, relative to
/// max(|expected|, 1e-2 · max |expected|).
fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = rel * w.abs().max(1e-2 * scale);
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, expected {w} (diff {:.3e}, tol {tol:.3e})",
            (g - w).abs()
        );
    }
}

fn f64_opts(alphas: Vec<f64>) -> RidgeOptions {
    RidgeOptions {
        alphas,
        kind: Kind::Double,
        device: Device::Cpu,
        ..RidgeOptions::default()
    }
}

#[test]
fn one_alpha_equals_sklearn_ridge_primal_and_dual() {
    let cases = cases();
    for case in ["sk_primal", "sk_dual"] {
        let c = &cases[case];
        let o = f64_opts(vec![c["alpha"].as_f64().unwrap()]);
        let m = fit_ridge(&npy(case, "x"), &npy(case, "y"), &o).unwrap();
        assert_close(case, &values(&m.coef), &flat(&c["coef"]), 1e-8);
        assert_close(case, &values(&m.intercept), &flat(&c["intercept"]), 1e-8);
        let pred = m.predict("test", &npy(case, "xtest")).unwrap();
        assert_close(case, &values(&pred.0), &flat(&c["pred"]), 1e-8);
        assert!(m.cv_scores.is_none());
    }
}

fn himalaya_case(case: &str, chunk: i64) -> RidgeModel {
    let c = &cases()[case];
    let o = RidgeOptions {
        cv: c["cv"].as_i64().unwrap(),
        alpha_per_target: c["alpha_per_target"].as_bool().unwrap(),
        scoring: Scoring::parse("test", c["scoring"].as_str().unwrap()).unwrap(),
        chunk,
        ..f64_opts(flat(&c["alphas"]))
    };
    fit_ridge(&npy(case, "x"), &npy(case, "y"), &o).unwrap()
}

#[test]
fn cross_validated_alphas_equal_himalaya_ridgecv() {
    let cases = cases();
    for case in ["hi_primal_r2", "hi_dual_r2", "hi_shared_r2", "hi_primal_l2"] {
        let c = &cases[case];
        for chunk in [10_000, 4] {
            let m = himalaya_case(case, chunk);
            let what = format!("{case} (chunk {chunk})");
            assert_close(
                &format!("{what} alphas"),
                &values(&m.alphas),
                &flat(&c["best_alphas"]),
                1e-12,
            );
            assert_close(
                &format!("{what} coef"),
                &values(&m.coef),
                &flat(&c["coef"]),
                1e-8,
            );
            assert_close(
                &format!("{what} intercept"),
                &values(&m.intercept),
                &flat(&c["intercept"]),
                1e-8,
            );
            let pred = m.predict("test", &npy(case, "xtest")).unwrap();
            assert_close(
                &format!("{what} pred"),
                &values(&pred.0),
                &flat(&c["pred"]),
                1e-8,
            );
            // himalaya reports the mean fold score of the chosen alpha (plus
            // its 1e-10·log α tie-break slope).
            let scores = m.cv_scores.as_ref().expect("cv scores");
            let cand = flat(&c["alphas"]);
            let idx: Vec<i64> = values(&m.alphas)
                .iter()
                .map(|a| cand.iter().position(|c| c == a).unwrap() as i64)
                .collect();
            let idx = tch::Tensor::from_slice(&idx).reshape([1, -1]);
            let got = values(&scores.gather(0, &idx, false));
            let want = flat(&c["cv_scores"]);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-8 * w.abs().max(1.0),
                    "{what} cv score {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn float32_fit_is_close_to_float64() {
    let case = "hi_primal_r2";
    let c = &cases()[case];
    let o = RidgeOptions {
        alphas: flat(&c["alphas"]),
        kind: Kind::Float,
        device: Device::Cpu,
        ..RidgeOptions::default()
    };
    let m = fit_ridge(&npy(case, "x"), &npy(case, "y"), &o).unwrap();
    assert_eq!(m.coef.kind(), Kind::Float);
    let pred = m.predict("test", &npy(case, "xtest")).unwrap();
    assert_close("f32 pred", &values(&pred.0), &flat(&c["pred"]), 1e-3);
}

#[test]
fn standardize_equals_fitting_zscored_x() {
    let (x, y) = (npy("sk_primal", "x"), npy("sk_primal", "y"));
    let o = RidgeOptions {
        standardize: true,
        ..f64_opts(vec![2.0])
    };
    let m = fit_ridge(&x, &y, &o).unwrap();
    let mean = x.0.mean_dim([0i64].as_slice(), true, Kind::Double);
    let sd = x.0.std_dim([0i64].as_slice(), false, true);
    let z = Tensor((&x.0 - &mean) / &sd);
    let mz = fit_ridge(&z, &y, &f64_opts(vec![2.0])).unwrap();
    let a = m.predict("test", &x).unwrap();
    let b = mz.predict("test", &z).unwrap();
    assert_close("standardized", &values(&a.0), &values(&b.0), 1e-10);
}

#[test]
fn without_intercept_is_the_closed_form() {
    for case in ["sk_primal", "sk_dual"] {
        let (x, y) = (npy(case, "x"), npy(case, "y"));
        let o = RidgeOptions {
            fit_intercept: false,
            ..f64_opts(vec![0.7])
        };
        let m = fit_ridge(&x, &y, &o).unwrap();
        let p = x.shape()[1];
        let g = x.0.transpose(0, 1).matmul(&x.0)
            + tch::Tensor::eye(p, (Kind::Double, Device::Cpu)) * 0.7;
        let want = tch::Tensor::linalg_solve(&g, &x.0.transpose(0, 1).matmul(&y.0), true);
        assert_close(case, &values(&m.coef), &values(&want), 1e-9);
        assert!(values(&m.intercept).iter().all(|&v| v == 0.0));
    }
}

#[test]
fn many_targets_in_chunks_match_one_pass() {
    tch::manual_seed(3);
    let x = Tensor(tch::Tensor::randn([80, 30], (Kind::Double, Device::Cpu)));
    let w = tch::Tensor::randn([30, 2500], (Kind::Double, Device::Cpu));
    let y =
        Tensor(x.0.matmul(&w) + tch::Tensor::randn([80, 2500], (Kind::Double, Device::Cpu)) * 4.0);
    let alphas = vec![0.1, 1.0, 10.0, 100.0];
    let whole = fit_ridge(&x, &y, &f64_opts(alphas.clone())).unwrap();
    let parts = fit_ridge(
        &x,
        &y,
        &RidgeOptions {
            chunk: 333,
            ..f64_opts(alphas)
        },
    )
    .unwrap();
    assert_eq!(values(&whole.alphas), values(&parts.alphas));
    assert_close(
        "chunked coef",
        &values(&parts.coef),
        &values(&whole.coef),
        1e-10,
    );
    assert_eq!(whole.cv_scores.as_ref().unwrap().size(), vec![4, 2500]);
}

#[test]
fn ridge_in_scripts_fits_predicts_scores_and_round_trips() {
    let v = eval_f64(
        r#"
        set_seed(1);
        let x = randn([120, 10]);
        let y = matmul(x, randn([10, 4])) + 0.5 * randn([120, 4]);
        let m = fit_ridge(x.slice(0, 0, 100), y.slice(0, 0, 100), #{alphas: [0.01, 1, 100], cv: 4});
        let s = m.score(x.slice(0, 100, 120), y.slice(0, 100, 120));
        if s.r2.shape != [4] || s.r.shape != [4] { throw "score shapes"; }
        if m.coef.shape != [10, 4] || m.intercept.shape != [4] || m.alphas.shape != [4] { throw "shapes"; }
        if m.cv_scores.shape != [3, 4] { throw "cv shape"; }
        let back = load_ridge(m.save("m.safetensors"));
        let d = (back.predict(x) - m.predict(x)).abs().max().item();
        if d != 0.0 { throw `round trip differs by ${d}`; }
        if (back.cv_scores - m.cv_scores).abs().max().item() != 0.0 { throw "cv_scores"; }
        if back.to_string() != m.to_string() { throw back.to_string(); }
        s.mean_r2
        "#,
    );
    assert!(v > 0.9, "held-out R² {v}");
    let text = eval_script(
        "let m = fit_ridge(randn([20, 3]), randn([20, 2]), #{alphas: [1.0, 10.0]}); m.to_string()",
    )
    .unwrap()
    .to_string();
    assert!(
        text.starts_with(
            "RidgeModel[3 features → 2 targets; 2 alphas, 5-fold cv, per target; f32; cpu]"
        ),
        "{text}"
    );
}

#[test]
fn ridge_errors_are_clear() {
    assert_script_error(
        "fit_ridge(randn([10, 3]), randn([9, 2]))",
        &["fit_ridge: x has 10 rows but y has 9"],
    );
    assert_script_error(
        "let x = randn([10, 3]); x = x / zeros([10, 3]); fit_ridge(x, randn([10, 2]))",
        &["fit_ridge", "x contains", "NaN or infinite"],
    );
    assert_script_error(
        "let y = randn([10, 2]); y = y / 0.0; fit_ridge(randn([10, 3]), y, #{alphas: [1.0]})",
        &["fit_ridge", "y contains 20 NaN or infinite"],
    );
    assert_script_error(
        "fit_ridge(randn([10, 3]), randn([10, 2]), #{alphas: [1.0, 0.0]})",
        &["fit_ridge: alphas must be finite and > 0, got 0"],
    );
    assert_script_error(
        "fit_ridge(randn([10, 3]), randn([10, 2]), #{alphas: [-1.0]})",
        &["fit_ridge: alphas must be finite and > 0, got -1"],
    );
    assert_script_error(
        "fit_ridge(randn([4, 3]), randn([4, 2]), #{alphas: [1.0, 2.0], cv: 5})",
        &["fit_ridge: cv = 5 folds but there are only 4 samples"],
    );
    assert_script_error(
        "fit_ridge(randn([10, 3]), randn([10, 2]), #{alpha: 1.0})",
        &["fit_ridge: unknown option 'alpha'", "alphas"],
    );
    assert_script_error(
        "fit_ridge(randn([10, 3]), randn([10, 2]), #{dtype: \"i64\"})",
        &["fit_ridge: option 'dtype'"],
    );
    assert_script_error(
        "let m = fit_ridge(randn([10, 3]), randn([10, 2]), #{alphas: [1.0]}); m.predict(randn([5, 4]))",
        &["predict: x: expected samples × 3 features"],
    );
    assert_script_error(
        "let p = save_npy(randn([3]), \"a.safetensors\"); load_ridge(p)",
        &["load_ridge", "not a safetensors file"],
    );
}

// ------------------------------------------------------------ identification

fn ident(
    pred: &tch::Tensor,
    truth: &tch::Tensor,
    ways: i64,
    metric: Metric,
    seed: u64,
) -> voxlab::eval::Identification {
    identification(
        &Tensor(pred.shallow_clone()),
        &Tensor(truth.shallow_clone()),
        &IdentificationOptions {
            ways,
            repeats: 100,
            metric,
            seed,
            test: PTest::Permutation(DEFAULT_PERMUTATIONS),
        },
    )
    .unwrap()
}

#[test]
fn perfect_predictions_are_always_identified() {
    tch::manual_seed(5);
    let truth = tch::Tensor::randn([40, 64], (Kind::Float, Device::Cpu));
    for metric in [Metric::Correlation, Metric::Cosine, Metric::Euclidean] {
        for ways in [2, 10, 40] {
            let r = ident(&truth, &truth, ways, metric, 0);
            assert_eq!(r.mean, 1.0, "{metric:?} {ways}-way");
            assert!(r.scores.iter().all(|&s| s == 1.0));
            assert_eq!(r.ci, (1.0, 1.0));
            assert_eq!(r.chance, 1.0 / ways as f64);
            // Not one of the random pairings does as well: the smallest p.
            let floor = 1.0 / (DEFAULT_PERMUTATIONS + 1) as f64;
            assert_eq!(r.p, floor, "{metric:?} {ways}-way p {}", r.p);
        }
    }
    let r = ident(&truth, &truth, 2, Metric::Correlation, 0);
    assert_eq!(r.trials, 40 * 39);
    assert_eq!(r.protocol, "2-way all pairs, correlation");
}

#[test]
fn random_predictions_are_at_chance() {
    let truth = local_randn(6, 50, 100);
    let pred = local_randn(60, 50, 100);
    for (ways, tol) in [(2, 0.06), (10, 0.04), (50, 0.05)] {
        let r = ident(&pred, &truth, ways, Metric::Correlation, 1);
        assert!(
            (r.mean - r.chance).abs() < tol,
            "{ways}-way mean {} vs chance {}",
            r.mean,
            r.chance
        );
        // With all 49 others (50-way) each item is a single 0/1 trial and
        // often none wins, so a bootstrap interval of (0, 0) is right there.
        if ways < 50 {
            assert!(
                r.ci.0 <= r.chance && r.chance <= r.ci.1,
                "{ways}-way ci {:?}",
                r.ci
            );
        }
        assert!(r.p > 0.05, "{ways}-way p {}", r.p);
    }
}

#[test]
fn identification_is_deterministic_under_seed_and_noisy_predictions_score_between() {
    let truth = local_randn(7, 30, 50);
    let pred = &truth + local_randn(70, 30, 50) * 1.5;
    let a = ident(&pred, &truth, 5, Metric::Correlation, 11);
    let b = ident(&pred, &truth, 5, Metric::Correlation, 11);
    let c = ident(&pred, &truth, 5, Metric::Correlation, 12);
    assert_eq!(a.scores, b.scores);
    assert_eq!(a.ci, b.ci);
    assert_ne!(a.scores, c.scores);
    assert!(a.mean > 0.5 && a.mean < 1.0, "{}", a.mean);
    assert!(a.ci.0 < a.mean && a.mean < a.ci.1);
    assert_eq!(a.p, 1.0 / (DEFAULT_PERMUTATIONS + 1) as f64);
    assert_eq!(a.trials, 30 * 100);
}

#[test]
fn two_way_counts_pairs_and_ties_by_hand() {
    // Euclidean on 1-D features: prediction i is nearest to truth i except
    // prediction 2, which sits between truths 1 and 2 (a tie) .
    let truth = tch::Tensor::from_slice(&[0.0f64, 1.0, 2.0, 10.0]).reshape([4, 1]);
    let pred = tch::Tensor::from_slice(&[0.1f64, 1.0, 1.5, 10.0]).reshape([4, 1]);
    let r = ident(&pred, &truth, 2, Metric::Euclidean, 0);
    // item 2 (pred 1.5): vs truth 0 (d 1.5 vs own 0.5) win, vs 1 (0.5) tie = ½, vs 10 win.
    assert_eq!(r.scores, vec![1.0, 1.0, 2.5 / 3.0, 1.0]);
    assert!((r.mean - (3.0 + 2.5 / 3.0) / 4.0).abs() < 1e-15);
}

#[test]
fn a_constant_prediction_is_never_identified_by_correlation() {
    tch::manual_seed(8);
    let truth = tch::Tensor::randn([6, 10], (Kind::Double, Device::Cpu));
    let pred = truth.copy();
    let _ = pred.get(2).fill_(1.0);
    let r = ident(&pred, &truth, 2, Metric::Correlation, 0);
    assert_eq!(r.scores[2], 0.0);
    assert_eq!(r.scores.iter().filter(|&&s| s == 1.0).count(), 5);
}

#[test]
fn identification_p_equals_scipys_exact_permutation_test() {
    // tests/fixtures/eval/make_identification_fixtures.py: scipy's
    // permutation_test over every pairing, the statistic by brute force
    // over every candidate draw (2-, 3-, 4-, 5-way and all-others).
    let want = crate::common::read_json(&fixture("eval/identification.json"));
    let matrix = |v: &serde_json::Value| {
        let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).expect("rows");
        let (n, d) = (rows.len() as i64, rows[0].len() as i64);
        let flat: Vec<f64> = rows.into_iter().flatten().collect();
        tch::Tensor::from_slice(&flat).reshape([n, d])
    };
    for case in want["cases"].as_array().expect("cases") {
        let ways = case["ways"].as_i64().expect("ways");
        let (pred, truth) = (matrix(&case["pred"]), matrix(&case["truth"]));
        let r = ident(&pred, &truth, ways, Metric::Correlation, 0);
        let p = case["p"].as_f64().expect("p");
        assert!(
            (r.p - p).abs() < 1e-12,
            "{ways}-way: p {} vs scipy {p}",
            r.p
        );
        assert!(r.test.contains("exact over all"), "{}", r.test);
        if ways == 2 || ways == pred.size()[0] {
            let t = case["statistic"].as_f64().expect("statistic");
            assert!(
                (r.mean - t).abs() < 1e-12,
                "{ways}-way mean {} vs {t}",
                r.mean
            );
        }
    }
}

#[test]
fn the_permutation_p_is_calibrated_under_the_null_and_the_binomial_is_conservative() {
    // 400 data sets of random predictions (20 items): an exact test gives
    // p ≤ 0.05 in about 5 % of them; the binomial over items far less often.
    let mut small_perm = 0;
    let mut small_binom = 0;
    let sets = 400;
    for k in 0..sets {
        let truth = local_randn(1000 + k, 20, 12);
        let pred = local_randn(5000 + k, 20, 12);
        let run = |test| {
            identification(
                &Tensor(pred.shallow_clone()),
                &Tensor(truth.shallow_clone()),
                &IdentificationOptions {
                    ways: 2,
                    repeats: 1,
                    metric: Metric::Correlation,
                    seed: k as u64,
                    test,
                },
            )
            .unwrap()
            .p
        };
        small_perm += usize::from(run(PTest::Permutation(999)) <= 0.05);
        small_binom += usize::from(run(PTest::Binomial) <= 0.05);
    }
    let share = small_perm as f64 / sets as f64;
    // Binomial(400, 0.05): mean 20, sd 4.4.
    assert!(
        (0.025..=0.08).contains(&share),
        "permutation p ≤ 0.05 in {share} of null data sets"
    );
    assert!(
        small_binom < small_perm,
        "binomial {small_binom} vs permutation {small_perm}"
    );
}

#[test]
fn binomial_tail_is_exact_on_small_cases() {
    use voxlab::eval::identification::binomial_sf;
    assert!((binomial_sf(7, 10, 0.5) - 176.0 / 1024.0).abs() < 1e-14);
    assert!((binomial_sf(1, 3, 0.25) - (1.0 - 0.75f64.powi(3))).abs() < 1e-14);
    assert_eq!(binomial_sf(0, 10, 0.3), 1.0);
    assert_eq!(binomial_sf(11, 10, 0.3), 0.0);
}

#[test]
fn identification_in_scripts() {
    let v = eval_script(
        r#"
        set_seed(2);
        let truth = randn([20, 30]);
        let r = identification(truth, truth, #{ways: 5, repeats: 10, metric: "cosine", seed: 3});
        if r.scores.shape != [20] { throw "scores"; }
        if r.ci.len() != 2 { throw "ci"; }
        `${r.protocol}|${r.mean}|${r.chance}|${r.trials}`
        "#,
    )
    .unwrap()
    .to_string();
    assert_eq!(v, "5-way top-1 ×10 random draws, cosine|1|0.2|200");
    assert_script_error(
        "identification(randn([5, 3]), randn([5, 4]))",
        &["identification: pred and truth"],
    );
    assert_script_error(
        "identification(randn([5, 3]), randn([5, 3]), #{ways: 6})",
        &["identification: ways must be between 2 and the number of items (5), got 6"],
    );
    assert_script_error(
        "identification(randn([5, 3]), randn([5, 3]), #{metric: \"manhattan\"})",
        &["identification: unknown metric \"manhattan\""],
    );
    assert_script_error(
        "identification(randn([5, 3]), randn([5, 3]), #{test: \"t\"})",
        &["identification: unknown test \"t\"; expected \"permutation\" or \"binomial\""],
    );
    assert_script_error(
        "identification(randn([5, 3]), randn([5, 3]), #{permutations: 0})",
        &["identification: permutations must be ≥ 1, got 0"],
    );
    assert_script_error(
        "reconstruction_scores(rand([4, 3, 8, 8]), rand([4, 3, 8, 8]), #{test: \"exact\"})",
        &["reconstruction_scores: unknown test \"exact\""],
    );
    // Which test gave p is part of the result.
    let t = eval_script(
        "let x = randn([5, 3]); identification(x, x).test + \"|\" + identification(x, x, #{test: \"binomial\"}).test",
    )
    .unwrap()
    .to_string();
    assert_eq!(
        t,
        "permutation of the pairing, exact over all 120 pairings|binomial over items"
    );
}

#[test]
fn ridge_on_cuda_matches_cpu_when_a_gpu_is_present() {
    voxlab::device::init_cuda();
    if !voxlab::device::cuda_available() {
        return; // no GPU on this machine: nothing to compare
    }
    let case = "hi_dual_r2";
    let c = &cases()[case];
    let o = RidgeOptions {
        device: Device::Cuda(0),
        ..f64_opts(flat(&c["alphas"]))
    };
    let m = fit_ridge(&npy(case, "x"), &npy(case, "y"), &o).unwrap();
    assert_eq!(m.coef.device(), Device::Cuda(0));
    assert_close(
        "cuda alphas",
        &values(&m.alphas),
        &flat(&c["best_alphas"]),
        1e-12,
    );
    let pred = m.predict("test", &npy(case, "xtest")).unwrap();
    assert_close("cuda pred", &values(&pred.0), &flat(&c["pred"]), 1e-8);
}

/// Standard normal data from a local generator: libtorch's global one is
/// shared with tests running in parallel, and these tests' tolerances hold
/// for their particular draws.
fn local_randn(seed: u64, rows: i64, cols: i64) -> tch::Tensor {
    let mut g = voxlab::random::SplitMix64::new(seed);
    let v: Vec<f32> = (0..rows * cols).map(|_| g.normal() as f32).collect();
    tch::Tensor::from_slice(&v).reshape([rows, cols])
}

/// The fold scores equal a refit of every (fold, alpha) by a direct solve,
/// on shapes where cross-validation takes each of its routes: few features
/// (projection through the eigenbasis), features close to the training size
/// (the fold's smoother, primal) and more features than samples (dual).
#[test]
fn cv_scores_equal_refitting_every_fold_and_alpha() {
    let alphas = vec![0.3, 3.0, 30.0, 300.0, 3000.0, 3e4, 3e5];
    for (seed, n, p) in [(11, 50, 6), (12, 50, 38), (13, 44, 90)] {
        let x = local_randn(seed, n, p).to_kind(Kind::Double);
        let w = local_randn(seed + 100, p, 5).to_kind(Kind::Double);
        let y = x.matmul(&w) + local_randn(seed + 200, n, 5).to_kind(Kind::Double) * 3.0;
        let m = fit_ridge(
            &Tensor(x.shallow_clone()),
            &Tensor(y.shallow_clone()),
            &f64_opts(alphas.clone()),
        )
        .unwrap();
        let got = m.cv_scores.as_ref().expect("cv scores");
        let want = tch::Tensor::zeros([alphas.len() as i64, 5], (Kind::Double, Device::Cpu));
        for (start, len) in voxlab::models::ridge::kfold(n, 5) {
            let held = tch::Tensor::arange_start(start, start + len, (Kind::Int64, Device::Cpu));
            let kept: Vec<i64> = (0..n).filter(|i| *i < start || *i >= start + len).collect();
            let kept = tch::Tensor::from_slice(&kept);
            let (x_tr, y_tr) = (x.index_select(0, &kept), y.index_select(0, &kept));
            let (x_te, y_te) = (x.index_select(0, &held), y.index_select(0, &held));
            let (xm, ym) = (
                x_tr.mean_dim([0i64].as_slice(), true, Kind::Double),
                y_tr.mean_dim([0i64].as_slice(), true, Kind::Double),
            );
            let (xc, yc) = (&x_tr - &xm, &y_tr - &ym);
            for (i, a) in alphas.iter().enumerate() {
                let g = xc.transpose(0, 1).matmul(&xc)
                    + tch::Tensor::eye(p, (Kind::Double, Device::Cpu)) * *a;
                let coef = tch::Tensor::linalg_solve(&g, &xc.transpose(0, 1).matmul(&yc), true);
                let pred = (&x_te - &xm).matmul(&coef) + &ym;
                let sse = (&y_te - &pred).square().sum_dim_intlist(
                    [0i64].as_slice(),
                    false,
                    Kind::Double,
                );
                let dev = &y_te - y_te.mean_dim([0i64].as_slice(), true, Kind::Double);
                let sst = dev
                    .square()
                    .sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
                let r2 = (sse / sst).neg() + 1.0;
                let _ = want.get(i as i64).f_add_(&(r2 / 5.0)).unwrap();
            }
        }
        assert_close(
            &format!("cv scores n={n} p={p}"),
            &values(got),
            &values(&want),
            1e-8,
        );
    }
}
