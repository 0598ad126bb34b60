//! voxlab::stats against scipy / statsmodels reference values.
//!
//! The fixtures in tests/fixtures/stats/*.json come from
//! tests/fixtures/stats/make_stats_fixtures.py (scipy, statsmodels); large
//! inputs (n = 28,680) are rebuilt here from the same 64-bit LCG. Agreement is
//! required to 1e-10: statistics relative to max(1, |expected|), p-values
//! relative to the expected value (so tiny p-values are checked in full).

use serde_json::Value;
use std::path::PathBuf;
use voxlab::error::Error;
use voxlab::stats::*;

// ------------------------------------------------------------------ helpers

fn fixture(name: &str) -> Value {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "stats",
        name,
    ]
    .iter()
    .collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// JSON number, or null = NaN, "inf" / "-inf".
fn num(v: &Value) -> f64 {
    match v {
        Value::Null => f64::NAN,
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => panic!("not a number: {other}"),
    }
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(num).collect()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key}"))
}

/// The fixture script's LCG: u = (state >> 11) · 2⁻⁵³.
fn lcg_uniform(seed: u64, n: usize) -> Vec<f64> {
    let mut st = seed;
    (0..n)
        .map(|_| {
            st = st
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (st >> 11) as f64 * (1.0 / 9007199254740992.0)
        })
        .collect()
}

/// A generated pair (see `gen` in make_stats_fixtures.py).
fn generate(spec: &Value) -> (Vec<f64>, Vec<f64>) {
    let n = spec["n"].as_u64().unwrap() as usize;
    let u1 = lcg_uniform(spec["seed1"].as_u64().unwrap(), n);
    let u2 = lcg_uniform(spec["seed2"].as_u64().unwrap(), n);
    let xl = num(&spec["xlevels"]);
    let yl = num(&spec["ylevels"]);
    let slope = num(&spec["slope"]);
    let x = u1
        .iter()
        .map(|u| if xl > 0.0 { (u * xl).floor() } else { *u })
        .collect();
    let y = u1
        .iter()
        .zip(&u2)
        .map(|(a, b)| {
            let v = slope * a + b;
            if yl > 0.0 {
                (v * yl).floor()
            } else {
                v
            }
        })
        .collect();
    (x, y)
}

/// Inputs of a case: stored data or a generated pair.
fn inputs(root: &Value, name: &str, kx: &str, ky: &str) -> (Vec<f64>, Vec<f64>) {
    if let Some(spec) = root["big"].get(name) {
        return generate(spec);
    }
    let d = &root["data"][name];
    (nums(&d[kx]), nums(&d[ky]))
}

/// Largest errors seen, for the report printed by each test.
#[derive(Default)]
struct Errs {
    stat: f64,
    p: f64,
    checked: usize,
}

impl Errs {
    fn stat(&mut self, what: &str, got: f64, want: f64) {
        self.checked += 1;
        if got.is_nan() && want.is_nan() || got == want {
            return;
        }
        let err = (got - want).abs() / want.abs().max(1.0);
        assert!(
            err <= 1e-10,
            "{what}: statistic {got} vs scipy {want} (err {err:e})"
        );
        self.stat = self.stat.max(err);
    }

    fn p(&mut self, what: &str, got: f64, want: f64) {
        self.checked += 1;
        if got.is_nan() && want.is_nan() || got == want {
            return;
        }
        let diff = (got - want).abs();
        assert!(
            diff <= 1e-10 * want.abs() + 1e-300,
            "{what}: p {got:e} vs reference {want:e} (rel err {:e})",
            diff / want.abs()
        );
        self.p = self.p.max(diff / want.abs());
    }

    fn report(&self, name: &str) {
        println!(
            "{name}: {} values checked; max rel err statistic {:.2e}, p-value {:.2e}",
            self.checked, self.stat, self.p
        );
    }
}

fn expect_invalid<T: std::fmt::Debug>(what: &str, r: voxlab::error::Result<T>) {
    match r {
        Err(Error::InvalidArgument { .. }) => {}
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    }
}

// ------------------------------------------------------------------ kendall

fn kendall_opts(o: &Value) -> KendallOptions {
    const OP: &str = "kendall_tau";
    KendallOptions {
        variant: KendallVariant::parse(OP, s(o, "variant")).unwrap(),
        method: KendallMethod::parse(OP, s(o, "method")).unwrap(),
        alternative: Alternative::parse(OP, s(o, "alternative")).unwrap(),
        nan_policy: NanPolicy::parse(OP, s(o, "nan_policy")).unwrap(),
    }
}

#[test]
fn kendall_tau_matches_scipy() {
    let root = fixture("kendall.json");
    let mut errs = Errs::default();
    for c in root["cases"].as_array().unwrap() {
        let name = s(c, "data");
        let (x, y) = inputs(&root, name, "x", "y");
        let opts = kendall_opts(&c["opts"]);
        let what = format!("{name} {:?}", opts);
        let got = kendall_tau(&x, &y, &opts);
        match c.get("error").and_then(Value::as_str) {
            Some(e) if e.starts_with("InvalidArgument") => expect_invalid(&what, got),
            Some(_) => {
                // scipy crashes here (n = 2, asymptotic); we must simply answer.
                let r = got.unwrap();
                assert!(
                    r.pvalue.is_nan() || (0.0..=1.0).contains(&r.pvalue),
                    "{what}"
                );
            }
            None => {
                let r = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                errs.stat(&what, r.statistic, num(&c["statistic"]));
                errs.p(&what, r.pvalue, num(&c["pvalue"]));
                assert_eq!(r.df, None);
            }
        }
    }
    errs.report("kendall_tau");
}

/// tau-b by the O(n²) definition, to check the O(n log n) counting on many
/// tie patterns and on sizes either side of powers of two.
fn kendall_b_by_pairs(x: &[f64], y: &[f64]) -> f64 {
    let (mut s, mut tx, mut ty, mut n0) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let a = (x[i] - x[j]).signum() as i64 * (x[i] != x[j]) as i64;
            let b = (y[i] - y[j]).signum() as i64 * (y[i] != y[j]) as i64;
            s += a * b;
            tx += (a == 0) as i64;
            ty += (b == 0) as i64;
            n0 += 1;
        }
    }
    s as f64 / (((n0 - tx) as f64) * ((n0 - ty) as f64)).sqrt()
}

#[test]
fn kendall_counting_equals_the_pairwise_definition() {
    let mut g = voxlab::random::SplitMix64::new(7);
    for &n in &[2usize, 3, 4, 5, 8, 9, 16, 17, 31, 64, 65, 200, 257] {
        for &levels in &[2u64, 3, 7, 1000] {
            let x: Vec<f64> = (0..n).map(|_| g.below(levels) as f64).collect();
            let y: Vec<f64> = (0..n).map(|_| g.below(levels) as f64 * 0.5).collect();
            let want = kendall_b_by_pairs(&x, &y);
            let got = kendall_tau(&x, &y, &KendallOptions::default()).unwrap();
            let (m_tau, _) =
                voxlab::stats::kendall_matrix(&[&x], &[&y], &KendallOptions::default()).unwrap();
            for v in [got.statistic, m_tau[0]] {
                assert!(
                    (v - want).abs() < 1e-12 || (v.is_nan() && want.is_nan()),
                    "n {n} levels {levels}: {v} vs {want}"
                );
            }
        }
    }
}

#[test]
fn kendall_matrix_matches_scipy() {
    let root = fixture("kendall.json");
    let m = &root["matrix"];
    let rows: Vec<Vec<f64>> = m["rows"].as_array().unwrap().iter().map(nums).collect();
    let cols: Vec<Vec<f64>> = m["cols"].as_array().unwrap().iter().map(nums).collect();
    let rr: Vec<&[f64]> = rows.iter().map(|v| v.as_slice()).collect();
    let cr: Vec<&[f64]> = cols.iter().map(|v| v.as_slice()).collect();
    let (tau, p) = kendall_matrix(&rr, &cr, &KendallOptions::default()).unwrap();
    let (wt, wp) = (nums(&m["tau"]), nums(&m["pvalue"]));
    assert_eq!(tau.len(), rows.len() * cols.len());
    let mut errs = Errs::default();
    for k in 0..tau.len() {
        errs.stat("matrix tau", tau[k], wt[k]);
        errs.p("matrix p", p[k], wp[k]);
    }
    errs.report("kendall_matrix");
}

/// The RSA use: 19 ROI RDMs × 22 layer RDMs over 240 stimuli (28,680 pairs);
/// the matrix equals the pairwise function exactly, and is fast.
#[test]
fn kendall_matrix_rsa_size_equals_pairwise() {
    let n = 28_680;
    let rows: Vec<Vec<f64>> = (0..19).map(|i| lcg_uniform(1000 + i, n)).collect();
    let cols: Vec<Vec<f64>> = (0..22)
        .map(|j| {
            let u = lcg_uniform(2000 + j, n);
            // some ties in the model RDMs, some signal shared with row j % 19
            u.iter()
                .zip(&rows[(j % 19) as usize])
                .map(|(a, b)| ((0.05 * b + a) * 500.0).floor())
                .collect()
        })
        .collect();
    let rr: Vec<&[f64]> = rows.iter().map(|v| v.as_slice()).collect();
    let cr: Vec<&[f64]> = cols.iter().map(|v| v.as_slice()).collect();
    let opts = KendallOptions::default().variant(KendallVariant::A);
    let t0 = std::time::Instant::now();
    let (tau, p) = kendall_matrix(&rr, &cr, &opts).unwrap();
    let dt = t0.elapsed();
    println!("kendall_matrix 19 x 22 x {n}: {dt:?}");
    for (i, j) in [(0usize, 0usize), (3, 3), (5, 17), (18, 21)] {
        let r = kendall_tau(rr[i], cr[j], &opts).unwrap();
        assert_eq!(r.statistic, tau[i * 22 + j]);
        assert_eq!(r.pvalue, p[i * 22 + j]);
    }
    // generous bound so a debug build on 2 shared cores passes
    assert!(dt.as_secs_f64() < 60.0, "too slow: {dt:?}");
}

#[test]
fn kendall_single_big_vector_is_fast() {
    let (x, y) = generate(&serde_json::json!({
        "n": 28680, "seed1": 5, "seed2": 6, "xlevels": 0, "ylevels": 0, "slope": 0.1
    }));
    let t0 = std::time::Instant::now();
    let r = kendall_tau(&x, &y, &KendallOptions::default()).unwrap();
    println!(
        "kendall_tau n = 28680: {:?} (tau {})",
        t0.elapsed(),
        r.statistic
    );
    assert!(t0.elapsed().as_secs_f64() < 5.0);
}

// ------------------------------------------------------------------ correlation

#[test]
fn pearson_spearman_match_scipy() {
    let root = fixture("correlation.json");
    let mut errs_p = Errs::default();
    let mut errs_s = Errs::default();
    for c in root["cases"].as_array().unwrap() {
        let name = s(c, "data");
        let func = s(c, "func");
        let (x, y) = inputs(&root, name, "x", "y");
        let o = &c["opts"];
        let opts = CorrelationOptions {
            alternative: Alternative::parse("correlation", s(o, "alternative")).unwrap(),
            nan_policy: NanPolicy::parse("correlation", s(o, "nan_policy")).unwrap(),
        };
        let what = format!("{func} {name} {opts:?}");
        let got = if func == "pearson" {
            pearson(&x, &y, &opts)
        } else {
            spearman(&x, &y, &opts)
        };
        let errs = if func == "pearson" {
            &mut errs_p
        } else {
            &mut errs_s
        };
        match c.get("error").and_then(Value::as_str) {
            Some(_) => expect_invalid(&what, got),
            None => {
                let r = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                errs.stat(&what, r.statistic, num(&c["statistic"]));
                errs.p(&what, r.pvalue, num(&c["pvalue"]));
            }
        }
    }
    errs_p.report("pearson");
    errs_s.report("spearman");
}

#[test]
fn pearson_columns_matches_scipy_axis0() {
    let root = fixture("correlation.json");
    let c = &root["columns"];
    let (nr, nc) = (
        c["n_rows"].as_u64().unwrap() as usize,
        c["n_cols"].as_u64().unwrap() as usize,
    );
    let (a, b) = (nums(&c["a"]), nums(&c["b"]));
    let mut errs = Errs::default();
    for alt in Alternative::NAMES {
        let opts = PearsonColumnsOptions {
            alternative: Alternative::parse("pearson_columns", alt).unwrap(),
            pvalues: true,
            ..Default::default()
        };
        let got = pearson_columns(&a, &b, nr, nc, &opts).unwrap();
        let want = &c["by_alternative"][*alt];
        let (wr, wp) = (nums(&want["r"]), nums(&want["pvalue"]));
        let gp = got.pvalue.unwrap();
        for j in 0..nc {
            errs.stat("columns r", got.r[j], wr[j]);
            errs.p("columns p", gp[j], wp[j]);
        }
    }
    let opts = PearsonColumnsOptions {
        nan_policy: NanPolicy::Omit,
        pvalues: true,
        ..Default::default()
    };
    let got = pearson_columns(&a, &b, nr, nc, &opts).unwrap();
    let (wr, wp) = (nums(&c["omit"]["r"]), nums(&c["omit"]["pvalue"]));
    for j in 0..nc {
        errs.stat("columns omit r", got.r[j], wr[j]);
        errs.p("columns omit p", got.pvalue.as_ref().unwrap()[j], wp[j]);
    }
    let no_p = pearson_columns(&a, &b, nr, nc, &PearsonColumnsOptions::default()).unwrap();
    assert!(no_p.pvalue.is_none());
    expect_invalid(
        "raise",
        pearson_columns(
            &a,
            &b,
            nr,
            nc,
            &PearsonColumnsOptions {
                nan_policy: NanPolicy::Raise,
                ..Default::default()
            },
        ),
    );
    errs.report("pearson_columns");
}

// ------------------------------------------------------------------ t-tests

#[test]
fn ttests_match_scipy() {
    let root = fixture("ttest.json");
    let mut errs = Errs::default();
    for c in root["cases"].as_array().unwrap() {
        let name = s(c, "data");
        let func = s(c, "func");
        let (a, b) = inputs(&root, name, "a", "b");
        let o = &c["opts"];
        let alternative = Alternative::parse("ttest", s(o, "alternative")).unwrap();
        let nan_policy = NanPolicy::parse("ttest", s(o, "nan_policy")).unwrap();
        let topts = TTestOptions {
            alternative,
            nan_policy,
        };
        let what = format!("{func} {name} {o}");
        let got = match func {
            "ttest_1samp" => ttest_1samp(&a, num(&o["popmean"]), &topts),
            "ttest_rel" => ttest_rel(&a, &b, &topts),
            _ => ttest_ind(
                &a,
                &b,
                &TTestIndOptions {
                    equal_var: o["equal_var"].as_bool().unwrap(),
                    alternative,
                    nan_policy,
                },
            ),
        };
        match c.get("error").and_then(Value::as_str) {
            Some(_) => expect_invalid(&what, got),
            None => {
                let r = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                errs.stat(&what, r.statistic, num(&c["statistic"]));
                errs.p(&what, r.pvalue, num(&c["pvalue"]));
                errs.stat(&format!("{what} df"), r.df.unwrap(), num(&c["df"]));
            }
        }
    }
    errs.report("ttest_1samp/rel/ind");
}

// ------------------------------------------------------------------ multitest

#[test]
fn multitest_matches_statsmodels() {
    let root = fixture("multitest.json");
    let mut errs = Errs::default();
    for c in root["cases"].as_array().unwrap() {
        let p = nums(&c["p"]);
        let method = s(c, "method");
        let alpha = num(&c["alpha"]);
        let nan_policy = NanPolicy::parse("multitest", s(c, "nan_policy")).unwrap();
        let what = format!("{method} alpha={alpha} {nan_policy:?} p={p:?}");
        let got = match method {
            "bh" | "by" => fdr(
                &p,
                &FdrOptions {
                    method: FdrMethod::parse("fdr", method).unwrap(),
                    alpha,
                    nan_policy,
                },
            ),
            "bonferroni" => bonferroni(&p, &MultitestOptions { alpha, nan_policy }),
            _ => holm(&p, &MultitestOptions { alpha, nan_policy }),
        };
        if c.get("error").is_some() {
            expect_invalid(&what, got);
            continue;
        }
        let r = got.unwrap_or_else(|e| panic!("{what}: {e}"));
        let wq = nums(&c["q"]);
        let wr: Vec<bool> = c["reject"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        assert_eq!(r.q.len(), p.len());
        assert_eq!(r.reject, wr, "{what}: reject");
        for (g, w) in r.q.iter().zip(&wq) {
            errs.p(&what, *g, *w);
        }
    }
    errs.report("fdr/bonferroni/holm");
}

// ------------------------------------------------------------------ ranks

#[test]
fn rankdata_matches_scipy() {
    let x = [
        3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0, -0.0, 0.0,
    ];
    let want = [
        6.5, 3.5, 8.0, 3.5, 10.0, 13.0, 5.0, 12.0, 10.0, 6.5, 10.0, 1.5, 1.5,
    ];
    assert_eq!(rankdata_average(&x), want);
    assert!(rankdata_average(&[2.0, f64::NAN, 1.0])
        .iter()
        .all(|v| v.is_nan()));
    assert!(rankdata_average(&[]).is_empty());
}

// ------------------------------------------------------------------ errors

#[test]
fn length_mismatch_is_shape_error() {
    let (a, b) = ([1.0, 2.0, 3.0], [1.0, 2.0]);
    let msg = kendall_tau(&a, &b, &KendallOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "kendall_tau: length of y: expected 3 (the length of x), got 2"
    );
    for r in [
        pearson(&a, &b, &CorrelationOptions::default()),
        spearman(&a, &b, &CorrelationOptions::default()),
        ttest_rel(&a, &b, &TTestOptions::default()),
    ] {
        assert!(matches!(r, Err(Error::ShapeMismatch { .. })), "{r:?}");
    }
    let e = pearson(&a, &b, &CorrelationOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("pearson: "), "{e}");
    let e = pearson_columns(&[1.0; 6], &[1.0; 5], 3, 2, &Default::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pearson_columns: length of measured: expected 6 (3 rows × 2 columns), got 5"
    );
    let rows: Vec<&[f64]> = vec![&a];
    let cols: Vec<&[f64]> = vec![&a, &b];
    let e = kendall_matrix(&rows, &cols, &KendallOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "kendall_matrix: length of column 1: expected 3, got 2"
    );
}

#[test]
fn bad_option_values_list_valid_ones() {
    let e = Alternative::parse("kendall_tau", "two_sided").unwrap_err();
    assert!(matches!(e, Error::BadOption { .. }));
    assert_eq!(
        e.to_string(),
        "kendall_tau: option 'alternative' expects one of 'two-sided', 'less', 'greater', got 'two_sided'"
    );
    assert_eq!(
        KendallVariant::parse("kendall_tau", "d")
            .unwrap_err()
            .to_string(),
        "kendall_tau: option 'variant' expects one of 'a', 'b', 'c', got 'd'"
    );
    assert!(KendallMethod::parse("kendall_tau", "Exact").is_err());
    assert_eq!(
        NanPolicy::parse("ttest_rel", "drop")
            .unwrap_err()
            .to_string(),
        "ttest_rel: option 'nan_policy' expects one of 'propagate', 'omit', 'raise', got 'drop'"
    );
    assert!(FdrMethod::parse("fdr", "holm").is_err());
    for alpha in [0.0, 1.0, -0.1, f64::NAN] {
        let e = fdr(
            &[0.1],
            &FdrOptions {
                alpha,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, Error::BadOption { .. }), "{e}");
        assert!(holm(
            &[0.1],
            &MultitestOptions {
                alpha,
                ..Default::default()
            }
        )
        .is_err());
        assert!(MultitestOptions {
            alpha,
            ..Default::default()
        }
        .validate("holm")
        .is_err());
    }
    assert!(FdrOptions::default().validate("fdr").is_ok());
    // names round-trip
    for n in Alternative::NAMES {
        assert_eq!(Alternative::parse("x", n).unwrap().name(), *n);
    }
    for n in NanPolicy::NAMES {
        assert_eq!(NanPolicy::parse("x", n).unwrap().name(), *n);
    }
    for n in KendallVariant::NAMES {
        assert_eq!(KendallVariant::parse("x", n).unwrap().name(), *n);
    }
    for n in KendallMethod::NAMES {
        assert_eq!(KendallMethod::parse("x", n).unwrap().name(), *n);
    }
    for n in FdrMethod::NAMES {
        assert_eq!(FdrMethod::parse("x", n).unwrap().name(), *n);
    }
}

#[test]
fn invalid_arguments() {
    let e = bonferroni(&[0.1, 1.5], &MultitestOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bonferroni: p-values must lie in [0, 1], got 1.5 at index 1"
    );
    let e = ttest_1samp(
        &[1.0, f64::NAN],
        0.0,
        &TTestOptions::default().nan_policy(NanPolicy::Raise),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "ttest_1samp: input contains NaN (nan_policy is 'raise')"
    );
    let e = pearson(&[1.0], &[1.0], &CorrelationOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pearson: needs at least 2 observations, got 1"
    );
    let ties = [1.0, 1.0, 2.0, 3.0];
    let e = kendall_tau(
        &ties,
        &[1.0, 2.0, 3.0, 4.0],
        &KendallOptions::default().method(KendallMethod::Exact),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("kendall_tau: ties found"), "{e}");
    // exact p for a huge tie-free sample is refused, not attempted for hours
    let (x, y) = generate(&serde_json::json!({
        "n": 28680, "seed1": 1, "seed2": 2, "xlevels": 0, "ylevels": 0, "slope": 0.0
    }));
    let e = kendall_tau(
        &x,
        &y,
        &KendallOptions::default().method(KendallMethod::Exact),
    )
    .unwrap_err();
    assert!(e.to_string().contains("too costly"), "{e}");
}

/// Every function on every awkward input answers (Ok or Err) without panicking.
#[test]
fn awkward_inputs_never_panic() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let inputs: Vec<Vec<f64>> = vec![
        vec![],
        vec![1.0],
        vec![nan],
        vec![1.0, 1.0],
        vec![1.0, 2.0],
        vec![2.0; 7],
        vec![nan; 5],
        vec![inf, -inf, 0.0, 1.0, 2.0],
        vec![inf; 4],
        vec![1.0, nan, 3.0, nan, 5.0, 6.0],
        vec![0.0, -0.0, 0.0, 1e308, -1e308, 5e-324],
        vec![1e300, -1e300, 1e-300, 3.0],
    ];
    for x in &inputs {
        for y in &inputs {
            for alt in [
                Alternative::TwoSided,
                Alternative::Less,
                Alternative::Greater,
            ] {
                for pol in [NanPolicy::Propagate, NanPolicy::Omit, NanPolicy::Raise] {
                    for variant in [KendallVariant::A, KendallVariant::B, KendallVariant::C] {
                        for method in [
                            KendallMethod::Auto,
                            KendallMethod::Exact,
                            KendallMethod::Asymptotic,
                        ] {
                            let o = KendallOptions {
                                variant,
                                method,
                                alternative: alt,
                                nan_policy: pol,
                            };
                            let _ = kendall_tau(x, y, &o);
                        }
                    }
                    let co = CorrelationOptions {
                        alternative: alt,
                        nan_policy: pol,
                    };
                    let _ = pearson(x, y, &co);
                    let _ = spearman(x, y, &co);
                    let to = TTestOptions {
                        alternative: alt,
                        nan_policy: pol,
                    };
                    let _ = ttest_rel(x, y, &to);
                    let _ = ttest_1samp(x, 0.0, &to);
                    for ev in [true, false] {
                        let _ = ttest_ind(
                            x,
                            y,
                            &TTestIndOptions {
                                equal_var: ev,
                                alternative: alt,
                                nan_policy: pol,
                            },
                        );
                    }
                    if x.len() == y.len() {
                        let _ = pearson_columns(
                            x,
                            y,
                            x.len(),
                            1,
                            &PearsonColumnsOptions {
                                alternative: alt,
                                nan_policy: pol,
                                pvalues: true,
                            },
                        );
                    }
                }
            }
            let _ = kendall_matrix(
                &[x.as_slice()],
                &[y.as_slice(), x.as_slice()],
                &KendallOptions::default(),
            );
        }
        let p: Vec<f64> = x.iter().map(|v| v.abs().min(1.0)).collect();
        for pol in [NanPolicy::Propagate, NanPolicy::Omit, NanPolicy::Raise] {
            let _ = fdr(
                &p,
                &FdrOptions {
                    nan_policy: pol,
                    ..Default::default()
                },
            );
            let _ = fdr(
                &p,
                &FdrOptions {
                    method: FdrMethod::By,
                    nan_policy: pol,
                    ..Default::default()
                },
            );
            let _ = bonferroni(
                &p,
                &MultitestOptions {
                    nan_policy: pol,
                    ..Default::default()
                },
            );
            let _ = holm(
                &p,
                &MultitestOptions {
                    nan_policy: pol,
                    ..Default::default()
                },
            );
        }
        let _ = rankdata_average(x);
    }
    let _ = kendall_matrix(&[], &[], &KendallOptions::default());
    let _ = pearson_columns(&[], &[], 0, 0, &Default::default());
    let _ = pearson_columns(&[], &[], usize::MAX, 2, &Default::default());
}

/// Constant input gives NaN, as scipy, for every correlation.
#[test]
fn constant_input_gives_nan() {
    let c = [3.0; 6];
    let v = [1.0, 2.0, 3.0, 4.0, 5.0, 7.0];
    for r in [
        kendall_tau(&c, &v, &KendallOptions::default()).unwrap(),
        pearson(&v, &c, &CorrelationOptions::default()).unwrap(),
        spearman(&c, &v, &CorrelationOptions::default()).unwrap(),
    ] {
        assert!(r.statistic.is_nan() && r.pvalue.is_nan(), "{r:?}");
    }
}

/// The distribution functions behind every p-value.
mod dist {
    //! Against scipy.special (tests/fixtures/stats/dist.json): stdtr,
    //! betainc/betaincc and ndtr on grids reaching far tails and the large
    //! parameters of n = 28,680.
    use voxlab::stats::dist::*;

    fn num(v: &serde_json::Value) -> f64 {
        v.as_f64().unwrap_or(f64::NAN)
    }

    fn check(what: &str, got: f64, want: f64, worst: &mut f64) {
        if got == want || (got.is_nan() && want.is_nan()) {
            return;
        }
        let rel = (got - want).abs() / want.abs();
        assert!(
            (got - want).abs() <= 1e-10 * want.abs() + 1e-300,
            "{what}: {got:e} vs scipy {want:e} (rel {rel:e})"
        );
        *worst = worst.max(rel);
    }

    #[test]
    fn special_functions_match_scipy() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/stats/dist.json"
        );
        let root: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut worst = 0.0f64;
        for c in root["cases"].as_array().unwrap() {
            match c["kind"].as_str().unwrap() {
                "stdtr" => {
                    let (df, t) = (num(&c["df"]), num(&c["t"]));
                    check(
                        &format!("stdtr({df}, {t})"),
                        stdtr(df, t),
                        num(&c["value"]),
                        &mut worst,
                    );
                }
                "betainc" => {
                    let (a, b, x) = (num(&c["a"]), num(&c["b"]), num(&c["x"]));
                    let (i, ic) = ibeta_pair(a, b, x, 1.0 - x);
                    check(
                        &format!("betainc({a}, {b}, {x})"),
                        i,
                        num(&c["value"]),
                        &mut worst,
                    );
                    check(
                        &format!("betaincc({a}, {b}, {x})"),
                        ic,
                        num(&c["valuec"]),
                        &mut worst,
                    );
                }
                _ => {
                    let z = num(&c["z"]);
                    check(&format!("ndtr({z})"), ndtr(z), num(&c["value"]), &mut worst);
                }
            }
        }
        println!("special functions: max rel err vs scipy {worst:.2e}");
    }
}

/// The script face: maps with scipy's numbers (values from scipy 1.17 /
/// statsmodels 0.15, see make_stats_fixtures.py for the systematic cases).
mod script_face {
    use crate::common::{assert_script_error, eval_f64};

    fn close(script: &str, want: f64) {
        let got = eval_f64(script);
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{script}: {got} vs {want}"
        );
    }

    /// binomial_test is P(X ≥ k): exact sums for small n, statrs' binomial
    /// for a tail far below 1e-12 (relative), and refusals of bad counts.
    #[test]
    fn binomial_test_is_the_upper_tail() {
        close("binomial_test(7, 10, 0.5)", 176.0 / 1024.0);
        close("binomial_test(1, 3, 0.25)", 1.0 - 0.75f64.powi(3));
        close("binomial_test(0, 10, 0.3)", 1.0);
        close("binomial_test(10, 10, 0.3)", 0.3f64.powi(10));
        use statrs::distribution::{Binomial, DiscreteCDF};
        let want = Binomial::new(1.0 / 9.0, 50).expect("binomial").sf(38);
        let got = eval_f64("binomial_test(39, 50, 1.0 / 9.0)");
        assert!((got - want).abs() <= 1e-10 * want, "{got} vs {want}");
        for bad in [
            "binomial_test(11, 10, 0.5)",
            "binomial_test(-1, 10, 0.5)",
            "binomial_test(3, 10, 1.5)",
        ] {
            assert_script_error(bad, &["binomial_test", "0 ≤ k ≤ n and p in [0, 1]"]);
        }
    }

    #[test]
    fn results_are_maps_with_scipy_values() {
        close("kendall_tau([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]).tau", 0.6);
        close(
            "kendall_tau([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]).p",
            0.23333333333333334,
        );
        close(
            "ttest_rel([0.61, 0.7, 0.55, 0.8], [0.5, 0.62, 0.57, 0.66]).t",
            2.231428827320955,
        );
        close(
            "ttest_rel([0.61, 0.7, 0.55, 0.8], [0.5, 0.62, 0.57, 0.66]).p",
            0.11184796906718952,
        );
        close(
            "ttest_rel([0.61, 0.7, 0.55, 0.8], [0.5, 0.62, 0.57, 0.66]).df",
            3.0,
        );
        close(
            "pearson(tensor([1, 2, 3, 4], #{dtype: \"f64\"}), [1, 3, 2, 5]).p",
            0.1684781593797,
        );
        close("fdr([0.01, 0.04, 0.03, 0.2]).q[1]", 0.05333333333333334);
        assert_eq!(eval_f64("let r = fdr([0.01, 0.04, 0.03, 0.2]); if r.reject[0] && !r.reject[1] { 1 } else { 0 }"), 1.0);
        assert_eq!(
            eval_f64("let y = randn([30, 4]); pearson_columns(y, y * 2 + 1).min().item()").round(),
            1.0
        );
    }

    #[test]
    fn bad_input_is_a_polite_error() {
        assert_script_error("kendall_tau([1, 2, 3], [1, 2])", &["kendall_tau"]);
        assert_script_error(
            "kendall_tau([1, 2, 3], [1, 2, 3], #{variant: \"d\"})",
            &["kendall_tau", "variant"],
        );
        assert_script_error("fdr([0.1], #{alpha: 2.0})", &["fdr", "alpha"]);
        assert_script_error(
            "pearson_columns(ones([3, 2]), ones([3, 3]))",
            &["pearson_columns", "3×2 and 3×3"],
        );
        assert_script_error(
            "ttest_1samp([1, 2, 3], [1, 2])",
            &["ttest_1samp: popmean must be one number"],
        );
    }
}
