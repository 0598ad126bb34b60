//! rdm, rsa, kendall_fdr, permutation_test and noise_ceiling against scipy,
//! statsmodels and rsatoolbox (tests/fixtures/rsa/make_rsa_fixtures.py).

use serde_json::Value;
use voxlab::stats::*;
use voxlab::tensor::Tensor;

use crate::common::{assert_script_error, eval_f64, eval_script};

fn fixture() -> Value {
    let path = crate::common::fixture("rsa/rsa.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Flattens nested JSON arrays (row-major); null = NaN, bool = 0/1.
fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Bool(b) => vec![f64::from(u8::from(*b))],
        other => vec![num(other)],
    }
}

fn rows_cols(v: &Value) -> (usize, usize) {
    let a = v.as_array().unwrap();
    (a.len(), a[0].as_array().map_or(1, |r| r.len()))
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    if got.is_nan() && want.is_nan() {
        return;
    }
    let err = (got - want).abs() / want.abs().max(1.0);
    assert!(
        err <= tol,
        "{what}: {got} vs reference {want} (err {err:e})"
    );
}

fn close_p(what: &str, got: f64, want: f64) {
    if got.is_nan() && want.is_nan() || got == want {
        return;
    }
    let err = (got - want).abs() / want.abs();
    assert!(
        err <= 1e-10,
        "{what}: p {got:e} vs reference {want:e} (rel err {err:e})"
    );
}

#[test]
fn rdm_equals_scipy_pdist() {
    let fx = fixture();
    let mut worst: f64 = 0.0;
    for case in fx["rdm"].as_array().unwrap() {
        let (r, c) = rows_cols(&case["x"]);
        let x = Tensor::from_f64(
            "t",
            &flat(&case["x"]),
            &[r as i64, c as i64],
            tch::Kind::Double,
        )
        .unwrap();
        let metric = RdmMetric::parse("t", case["metric"].as_str().unwrap()).unwrap();
        let d = rdm(&x, metric, tch::Kind::Double).unwrap();
        assert_eq!(d.shape(), vec![r as i64, r as i64]);
        let got = d.to_f64_vec("t").unwrap();
        let want = flat(&case["rdm"]);
        // Scale of the data: Gram-matrix distances lose digits relative to ‖x‖².
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            let what = format!("{} {} [{k}]", case["name"], case["metric"]);
            assert_eq!(g.is_nan(), w.is_nan(), "{what}: {g} vs {w}");
            if !w.is_nan() {
                let err = (g - w).abs() / w.abs().max(1.0);
                assert!(err <= 1e-10, "{what}: {g} vs scipy {w} (err {err:e})");
                worst = worst.max(err);
            }
        }
        // f32 is close too.
        let d32 = rdm(&x, metric, tch::Kind::Float)
            .unwrap()
            .to_f64_vec("t")
            .unwrap();
        for (g, w) in d32.iter().zip(&want).filter(|(_, w)| !w.is_nan()) {
            assert!((g - w).abs() <= 1e-3 * w.abs().max(1.0), "f32 {g} vs {w}");
        }
    }
    println!("rdm: max rel err {worst:.2e}");
}

/// Above PAIRWISE_MAX_WORK `rdm` uses one matrix product; it must agree with
/// the pair-by-pair path (checked against scipy above) to rounding.
#[test]
fn rdm_matrix_product_path_equals_pairwise_path() {
    let mut g = voxlab::random::SplitMix64::new(3);
    let (n, p) = (120usize, 8000usize);
    assert!((n * (n - 1) / 2 * p) as f64 > PAIRWISE_MAX_WORK);
    // a shared offset per feature and per stimulus, as in raw responses
    let offsets: Vec<f64> = (0..p).map(|_| 5.0 + g.normal()).collect();
    let x: Vec<f64> = (0..n * p)
        .map(|k| offsets[k % p] + 0.3 * (k / p) as f64 / n as f64 + g.normal())
        .collect();
    let big = Tensor::from_f64("t", &x, &[n as i64, p as i64], tch::Kind::Double).unwrap();
    for metric in ["correlation", "euclidean", "sqeuclidean", "cosine"] {
        let m = RdmMetric::parse("t", metric).unwrap();
        let fast = rdm(&big, m, tch::Kind::Double)
            .unwrap()
            .to_f64_vec("t")
            .unwrap();
        // the same rows in pieces small enough for the pairwise path
        for (a, b) in [(0usize, 1usize), (17, 99), (118, 119)] {
            let rows: Vec<f64> = [a, b]
                .iter()
                .flat_map(|&i| x[i * p..(i + 1) * p].to_vec())
                .collect();
            let two = Tensor::from_f64("t", &rows, &[2, p as i64], tch::Kind::Double).unwrap();
            let d = rdm(&two, m, tch::Kind::Double)
                .unwrap()
                .to_f64_vec("t")
                .unwrap()[1];
            let got = fast[a * n + b];
            assert!(
                (got - d).abs() <= 1e-9 * d.abs().max(1.0),
                "{metric} ({a}, {b}): matrix product {got} vs pairwise {d}"
            );
        }
    }
}

/// A categorical model RDM must keep its ties exactly (two values off the
/// diagonal), or Kendall tau counts rounding noise as order.
#[test]
fn rdm_of_one_hot_categories_keeps_exact_ties() {
    let v = eval_script(
        "let cats = [0, 1, 2, 0, 3, 1, 2, 3, 4, 0, 4, 2];\n\
         let rows = cats.map(|c| { let r = [0.0, 0.0, 0.0, 0.0, 0.0]; r[c] = 1.0; r });\n\
         let out = [];\n\
         for metric in [\"euclidean\", \"sqeuclidean\", \"correlation\", \"cosine\"] {\n\
           for dtype in [\"f32\", \"f64\"] {\n\
             let d = rdm(tensor(rows), #{metric: metric, dtype: dtype});\n\
             let seen = [];\n\
             for row in to_array(d) { for v in row { if !seen.contains(v) { seen.push(v); } } }\n\
             out.push(seen.len());\n\
           }\n\
         }\n\
         out",
    )
    .unwrap();
    // distinct values: 0 (same category, and the diagonal) and one other
    assert_eq!(v.to_string(), "[2, 2, 2, 2, 2, 2, 2, 2]");
}

#[test]
fn rsa_equals_scipy_and_rsatoolbox() {
    let fx = fixture();
    for case in fx["rsa"].as_array().unwrap() {
        let (n, _) = rows_cols(&case["a"]);
        let t = |k: &str| {
            Tensor::from_f64(
                "t",
                &flat(&case[k]),
                &[n as i64, n as i64],
                tch::Kind::Double,
            )
            .unwrap()
        };
        let (a, b) = (t("a"), t("b"));
        let name = case["name"].as_str().unwrap();
        for (m, key) in [
            (RsaMethod::KendallB, "kendall_b"),
            (RsaMethod::Spearman, "spearman"),
            (RsaMethod::Pearson, "pearson"),
        ] {
            let r = rsa(&a, &b, m).unwrap();
            let want = flat(&case[key]);
            close(&format!("{name} {key}"), r.statistic, want[0], 1e-10);
            close_p(&format!("{name} {key}"), r.pvalue, want[1]);
        }
        let r = rsa(&a, &b, RsaMethod::KendallA).unwrap();
        close(
            &format!("{name} tau-a"),
            r.statistic,
            num(&case["kendall_a"]),
            1e-10,
        );
    }
}

#[test]
fn kendall_fdr_equals_scipy_loop_and_statsmodels() {
    let fx = fixture();
    let kf = &fx["kendall_fdr"];
    let names = |k: &str| -> Vec<String> {
        kf[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let rows: Vec<Vec<f64>> = names("row_names")
        .iter()
        .map(|n| flat(&kf["rows"][n]))
        .collect();
    let cols: Vec<Vec<f64>> = names("col_names")
        .iter()
        .map(|n| flat(&kf["cols"][n]))
        .collect();
    let rr: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
    let cc: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
    for (method, mname) in [(FdrMethod::Bh, "bh"), (FdrMethod::By, "by")] {
        for (over, oname) in [(CorrectOver::All, "all"), (CorrectOver::Row, "row")] {
            let fo = FdrOptions {
                method,
                ..Default::default()
            };
            let r = kendall_fdr(&rr, &cc, &KendallOptions::default(), &fo, over).unwrap();
            for (k, (g, w)) in r.tau.iter().zip(flat(&kf["tau"])).enumerate() {
                close(&format!("tau[{k}]"), *g, w, 1e-10);
            }
            for (k, (g, w)) in r.p.iter().zip(flat(&kf["p"])).enumerate() {
                close_p(&format!("p[{k}]"), *g, w);
            }
            let q = flat(&kf[format!("q_{oname}_{mname}")]);
            for (k, (g, w)) in r.q.iter().zip(q).enumerate() {
                close_p(&format!("q {oname} {mname} [{k}]"), *g, w);
            }
            let s = flat(&kf[format!("sig_{oname}_{mname}")]);
            let got: Vec<f64> = r
                .significant
                .iter()
                .map(|&b| f64::from(u8::from(b)))
                .collect();
            assert_eq!(got, s, "significant {oname} {mname}");
        }
    }
}

#[test]
fn kendall_fdr_in_a_script_keeps_order_and_shapes() {
    let v = eval_script(
        "let s = randn([10, 20]);\n\
         let a = [#{name: \"V1\", rdm: rdm(s)}, #{name: \"ACC\", rdm: rdm(randn([10, 20]))}, #{name: \"IT\", rdm: rdm(s + randn([10, 20]))}];\n\
         let b = #{l2: rdm(s * 2.0), l1: rdm(s)};\n\
         let r = kendall_fdr(a, b, #{correct_over: \"row\"});\n\
         [r.rows, r.cols, r.tau.shape, r.q.shape, r.significant.shape, r.tau[0][0]]",
    )
    .unwrap();
    let a = v.into_array().unwrap();
    let strs = |d: &rhai::Dynamic| -> Vec<String> {
        d.clone()
            .into_array()
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    assert_eq!(strs(&a[0]), ["V1", "ACC", "IT"]);
    assert_eq!(strs(&a[1]), ["l1", "l2"]); // Rhai maps iterate in key order
    assert_eq!(strs(&a[2]), ["3", "2"]);
    assert_eq!(strs(&a[4]), ["3", "2"]);
    // V1 vs l1 is the same RDM: tau = 1.
    assert!((a[5].as_float().unwrap() - 1.0).abs() < 1e-12);
    assert_script_error(
        "kendall_fdr([#{name: \"a\", rdm: rdm(randn([5, 3]))}], #{b: rdm(randn([6, 3]))})",
        &["kendall_fdr", "RDM sizes"],
    );
    assert_script_error(
        "kendall_fdr(#{a: rdm(randn([5, 3]))}, #{b: rdm(randn([5, 3]))}, #{correct_over: \"col\"})",
        &["kendall_fdr", "correct_over", "'all', 'row'"],
    );
    assert_script_error(
        "kendall_fdr([1, 2], #{b: rdm(randn([5, 3]))})",
        &["kendall_fdr", "#{name, rdm}"],
    );
}

#[test]
fn rdm_and_rsa_in_scripts() {
    // Symmetric, zero diagonal, shape from stimuli.
    assert_eq!(
        eval_f64("let d = rdm(randn([7, 30])); (d - d.transpose()).abs().max().item()"),
        0.0
    );
    assert_eq!(
        eval_f64("let d = rdm(randn([7, 30]), #{metric: \"cosine\"}); d[3][3]"),
        0.0
    );
    close(
        "rsa identical",
        eval_f64("let d = rdm(randn([9, 4])); rsa(d, d, #{method: \"spearman\"}).r"),
        1.0,
        1e-12,
    );
    assert_script_error(
        "rdm(randn([4, 3]), #{metric: \"manhattan\"})",
        &["rdm", "metric", "'correlation'"],
    );
    assert_script_error("rdm(randn([4]))", &["rdm", "stimuli × features"]);
    assert_script_error(
        "rsa(rdm(randn([4, 3])), rdm(randn([5, 3])))",
        &["rsa", "same size"],
    );
    assert_script_error("rsa(randn([4, 3]), randn([4, 3]))", &["rsa", "square"]);
}

#[test]
fn permutation_test_exact_equals_scipy() {
    let fx = fixture();
    for case in fx["permutation"].as_array().unwrap() {
        let opts = PermutationOptions {
            statistic: PermStatistic::parse("t", case["statistic"].as_str().unwrap()).unwrap(),
            alternative: Alternative::parse("t", case["alternative"].as_str().unwrap()).unwrap(),
            rdm: case["rdm"].as_bool().unwrap(),
            n_permutations: 9999,
            seed: 0,
        };
        let r = permutation_test(&flat(&case["x"]), &flat(&case["y"]), &opts).unwrap();
        let what = format!(
            "{} {} rdm={}",
            case["statistic"], case["alternative"], opts.rdm
        );
        assert!(r.exact, "{what}: should be exact");
        close(&what, r.statistic, num(&case["stat"]), 1e-10);
        close_p(&what, r.pvalue, num(&case["p"]));
    }
}

#[test]
fn permutation_test_random_is_seeded_and_close_to_exact() {
    let x: Vec<f64> = (0..9).map(|i| (i as f64 * 1.7).sin()).collect();
    let y: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v + (i as f64 * 3.1).cos())
        .collect();
    let base = PermutationOptions {
        n_permutations: 400_000,
        ..Default::default()
    };
    let exact = permutation_test(&x, &y, &base).unwrap();
    assert!(exact.exact && exact.null.len() == 362_880);
    let rand_opts = PermutationOptions {
        n_permutations: 20_000,
        seed: 7,
        ..Default::default()
    };
    let a = permutation_test(&x, &y, &rand_opts).unwrap();
    let b = permutation_test(&x, &y, &rand_opts).unwrap();
    assert!(!a.exact);
    assert_eq!(a.pvalue, b.pvalue, "same seed, same p");
    // Binomial standard error of p at 20,000 draws is < 0.0036.
    assert!(
        (a.pvalue - exact.pvalue).abs() < 0.015,
        "{} vs exact {}",
        a.pvalue,
        exact.pvalue
    );
    // Never 0 when random.
    let far: Vec<f64> = (0..40).map(|i| i as f64).collect();
    let r = permutation_test(
        &far,
        &far,
        &PermutationOptions {
            n_permutations: 99,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.pvalue, 2.0 / 100.0);
}

#[test]
fn permutation_test_in_scripts() {
    // Closure form, exact: 36 of 720 relabellings give the top score.
    let p = eval_f64(
        "let labels = [0, 0, 0, 1, 1, 1]; let score = [0.9, 0.8, 0.7, 0.2, 0.3, 0.1];\n\
         permutation_test(|perm| { let s = 0.0; for i in 0..6 { if labels[perm[i]] == 0 { s += score[i]; } } s }, 6, #{alternative: \"greater\"}).p",
    );
    close("closure exact p", p, 0.05, 1e-12);
    // Seeded: same seed, same p.
    let s = "set_seed(3); let x = randn([25]); permutation_test(x, x + randn([25]) * 3.0, #{n_permutations: 199}).p";
    assert_eq!(eval_f64(s), eval_f64(s));
    assert_script_error(
        "permutation_test(|p| \"no\", 4)",
        &["permutation_test", "must return a number"],
    );
    assert_script_error("permutation_test(|p| p[10], 4)", &["out of bounds"]);
    assert_script_error(
        "permutation_test([1, 2, 3], [1, 2, 3], #{statistic: \"median\"})",
        &["permutation_test", "statistic"],
    );
    assert_script_error(
        "permutation_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], #{statistic: \"mean_diff\", rdm: true})",
        &["permutation_test", "correlation"],
    );
}

#[test]
fn noise_ceiling_matches_formulas() {
    let fx = fixture();
    let nc = &fx["noise_ceiling"];
    let s: Vec<usize> = nc["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let betas = flat(&nc["betas"]);
    let shape = [s[0], s[1], s[2]];
    let sh = noise_ceiling(&betas, shape, NoiseCeilingMethod::SplitHalf, None).unwrap();
    for (k, (g, w)) in sh.ceiling.iter().zip(flat(&nc["split_half"])).enumerate() {
        close(&format!("split_half[{k}]"), *g, w, 1e-10);
    }
    for (g, w) in sh.detail.iter().zip(flat(&nc["r_split"])) {
        close("r_split", *g, w, 1e-10);
    }
    let n4 = noise_ceiling(&betas, shape, NoiseCeilingMethod::Nsd, None).unwrap();
    for (g, w) in n4.ceiling.iter().zip(flat(&nc["nsd"])) {
        close("nsd", *g, w, 1e-10);
    }
    for (g, w) in n4.detail.iter().zip(flat(&nc["ncsnr"])) {
        close("ncsnr", *g, w, 1e-10);
    }
    let n1 = noise_ceiling(&betas, shape, NoiseCeilingMethod::Nsd, Some(1)).unwrap();
    for (g, w) in n1.ceiling.iter().zip(flat(&nc["nsd_n1"])) {
        close("nsd n=1", *g, w, 1e-10);
    }
    assert_script_error(
        "noise_ceiling(randn([5, 4]))",
        &["noise_ceiling", "repeats × stimuli × voxels"],
    );
    assert_script_error(
        "noise_ceiling(randn([1, 4, 3]))",
        &["noise_ceiling", "at least 2 repeats"],
    );
    // Pure signal → ceiling near 1 / 100 %; pure noise → near 0.
    let hi = eval_f64("let s = randn([1, 200, 1]); let b = s + 0.05 * randn([6, 200, 1]); noise_ceiling(b).ceiling[0]");
    assert!(hi > 0.99, "{hi}");
    let lo = eval_f64("noise_ceiling(randn([6, 200, 1]), #{method: \"nsd\"}).ceiling[0]");
    assert!(lo < 10.0, "{lo}");
}
