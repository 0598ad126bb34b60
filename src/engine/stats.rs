//! Script face of [`crate::stats`]: correlation, Kendall tau, t-tests and
//! multiple-comparison corrections, RDMs and RSA (rdm, rsa, kendall_fdr),
//! permutation tests and noise ceilings. Inputs are tensors or arrays of numbers;
//! results are maps (`#{tau, p}`, `#{t, df, p}`, `#{q, reject}`).

use rhai::{Dynamic, Engine, FnPtr, Map, NativeCallContext};

use super::error::{guard, guard_rhai, to_rhai, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::tensor::to_tensor;
use crate::error::Result;
use crate::stats::{self, Alternative, NanPolicy, TestResult};
use crate::tensor::Tensor;

const ALTERNATIVE: OptDoc = OptDoc {
    name: "alternative",
    ty: "string",
    default: "two-sided",
    meaning: "two-sided, less or greater",
};
const NAN_POLICY: OptDoc = OptDoc {
    name: "nan_policy",
    ty: "string",
    default: "propagate",
    meaning: "propagate (NaN result, as scipy), omit (drop NaN pairs) or raise (error)",
};
const ALPHA: OptDoc = OptDoc {
    name: "alpha",
    ty: "float",
    default: "0.05",
    meaning: "family-wise error rate / false discovery rate for `reject`",
};
const KENDALL_OPTS: &[OptDoc] = &[
    OptDoc {
        name: "variant",
        ty: "string",
        default: "b",
        meaning: "b (tie-corrected, scipy), c (Stuart), or a (rsatoolbox tau-a)",
    },
    OptDoc {
        name: "method",
        ty: "string",
        default: "auto",
        meaning: "p-value: auto (exact for small n without ties), exact, asymptotic",
    },
    ALTERNATIVE,
    NAN_POLICY,
];
const CORR_OPTS: &[OptDoc] = &[ALTERNATIVE, NAN_POLICY];

pub static KENDALL_TAU: FnDoc = FnDoc { name: "kendall_tau", domain: "stats", signature: "kendall_tau(x: Tensor | array, y: Tensor | array, opts?: map) -> #{tau, p}", summary: "Kendall's tau and its p-value, as scipy.stats.kendalltau (tau-a as rsatoolbox); O(n log n).", options: KENDALL_OPTS, example: "let r = kendall_tau([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]);\nprint(r.tau);   // 0.6" };
pub static PEARSON: FnDoc = FnDoc {
    name: "pearson",
    domain: "stats",
    signature: "pearson(x: Tensor | array, y: Tensor | array, opts?: map) -> #{r, p}",
    summary: "Pearson correlation and its exact p-value, as scipy.stats.pearsonr.",
    options: CORR_OPTS,
    example: "let r = pearson([1, 2, 3, 4], [1, 3, 2, 5]);",
};
pub static SPEARMAN: FnDoc = FnDoc {
    name: "spearman",
    domain: "stats",
    signature: "spearman(x: Tensor | array, y: Tensor | array, opts?: map) -> #{r, p}",
    summary: "Spearman rank correlation and p-value, as scipy.stats.spearmanr.",
    options: CORR_OPTS,
    example: "let r = spearman([1, 2, 3, 4], [1, 3, 2, 5]);",
};
pub static PEARSON_COLUMNS: FnDoc = FnDoc { name: "pearson_columns", domain: "stats", signature: "pearson_columns(pred: Tensor, measured: Tensor, opts?: map) -> Tensor | #{r, p}", summary: "Pearson r of each column of two samples × targets matrices (predicted vs measured voxels); with pvalues: true a map #{r, p}.", options: &[ALTERNATIVE, NAN_POLICY, OptDoc { name: "pvalues", ty: "bool", default: "false", meaning: "also return p-values" }], example: "let y = randn([50, 10]);\nlet r = pearson_columns(y + randn([50, 10]), y);" };
pub static TTEST_REL: FnDoc = FnDoc {
    name: "ttest_rel",
    domain: "stats",
    signature: "ttest_rel(a: Tensor | array, b: Tensor | array, opts?: map) -> #{t, df, p}",
    summary: "Paired t-test, as scipy.stats.ttest_rel.",
    options: CORR_OPTS,
    example: "let r = ttest_rel([0.61, 0.7, 0.55, 0.8], [0.5, 0.62, 0.57, 0.66]);",
};
pub static TTEST_IND: FnDoc = FnDoc {
    name: "ttest_ind",
    domain: "stats",
    signature: "ttest_ind(a: Tensor | array, b: Tensor | array, opts?: map) -> #{t, df, p}",
    summary:
        "Two-sample t-test (Student, or Welch with equal_var: false), as scipy.stats.ttest_ind.",
    options: &[
        OptDoc {
            name: "equal_var",
            ty: "bool",
            default: "true",
            meaning: "false for Welch's test",
        },
        ALTERNATIVE,
        NAN_POLICY,
    ],
    example: "let r = ttest_ind([1.0, 2.1, 2.9], [3.2, 4.1, 5.3, 4.4], #{equal_var: false});",
};
pub static TTEST_1SAMP: FnDoc = FnDoc {
    name: "ttest_1samp",
    domain: "stats",
    signature: "ttest_1samp(x: Tensor | array, popmean: number, opts?: map) -> #{t, df, p}",
    summary: "One-sample t-test of the mean against popmean, as scipy.stats.ttest_1samp.",
    options: CORR_OPTS,
    example: "let r = ttest_1samp([0.55, 0.61, 0.58, 0.64], 0.5, #{alternative: \"greater\"});",
};
pub static BINOMIAL_TEST: FnDoc = FnDoc {
    name: "binomial_test",
    domain: "stats",
    signature: "binomial_test(k: int, n: int, p: float) -> float",
    summary: "One-sided binomial test of k successes in n trials against success probability p: P(X ≥ k) for X ~ Binomial(n, p), as scipy.stats.binomtest(k, n, p, alternative=\"greater\").pvalue (e.g. an accuracy against chance).",
    options: &[],
    example: "let p = binomial_test(11, 50, 1.0 / 54.0);   // 11 of 50 right, chance 1/54",
};
pub static FDR: FnDoc = FnDoc { name: "fdr", domain: "stats", signature: "fdr(p: Tensor | array, opts?: map) -> #{q, reject}", summary: "Benjamini–Hochberg (bh) or Benjamini–Yekutieli (by) adjusted q-values, as statsmodels multipletests fdr_bh / fdr_by.", options: &[OptDoc { name: "method", ty: "string", default: "bh", meaning: "bh or by" }, ALPHA, NAN_POLICY], example: "let r = fdr([0.01, 0.04, 0.03, 0.2]);\nprint(r.q);" };
pub static BONFERRONI: FnDoc = FnDoc {
    name: "bonferroni",
    domain: "stats",
    signature: "bonferroni(p: Tensor | array, opts?: map) -> #{q, reject}",
    summary: "Bonferroni-adjusted p-values min(1, m·p), as statsmodels multipletests 'bonferroni'.",
    options: &[ALPHA, NAN_POLICY],
    example: "let r = bonferroni([0.01, 0.04, 0.03]);",
};
pub static HOLM: FnDoc = FnDoc {
    name: "holm",
    domain: "stats",
    signature: "holm(p: Tensor | array, opts?: map) -> #{q, reject}",
    summary: "Holm step-down adjusted p-values, as statsmodels multipletests 'holm'.",
    options: &[ALPHA, NAN_POLICY],
    example: "let r = holm([0.01, 0.04, 0.03]);",
};

/// Numbers at full precision: arrays are read as f64 directly (not through
/// a float32 tensor); tensors keep whatever precision they have.
/// Errors name the argument `arg`.
fn values(op: &'static str, arg: &str, v: &Dynamic) -> Result<Vec<f64>> {
    if let Some(arr) = v.read_lock::<rhai::Array>() {
        return super::tensor::array_to_values(op, &arr)
            .map(|(values, _)| values)
            .map_err(|e| super::tensor::name_argument(e, arg));
    }
    to_tensor(op, arg, v)?.to_f64_vec(op)
}

/// The name argument `index` of `doc`'s function has in its signature.
fn param_name(doc: &'static FnDoc, index: usize) -> String {
    doc.forms()
        .first()
        .and_then(|f| f.params.get(index))
        .map(|p| p.name.to_string())
        .unwrap_or_else(|| format!("argument {}", index + 1))
}

/// Values of a 1-D input: a matrix would be flattened into one long sample
/// silently, mixing its rows and columns.
fn values_1d(op: &'static str, arg: &str, v: &Dynamic) -> Result<Vec<f64>> {
    let shape = if let Some(arr) = v.read_lock::<rhai::Array>() {
        super::tensor::array_to_values(op, &arr)
            .map_err(|e| super::tensor::name_argument(e, arg))?
            .1
    } else if let Some(t) = v.read_lock::<crate::tensor::Tensor>() {
        t.shape()
    } else {
        Vec::new()
    };
    if shape.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(crate::Error::invalid(
            op,
            format!(
                "{arg}: expects 1-D samples, got shape {}; test each column with pearson_columns, or pick rows/columns first",
                crate::tensor::shape_text(&shape)
            ),
        ));
    }
    values(op, arg, v)
}

/// Why a two-sample statistic came out NaN, for the warning.
fn nan_reason(x: &[f64], y: &[f64]) -> String {
    let constant = |v: &[f64]| v.windows(2).all(|w| w[0] == w[1]);
    if x.is_empty() || y.is_empty() {
        "an input is empty".into()
    } else if x.iter().chain(y).any(|v| v.is_nan()) {
        "the inputs hold NaN (nan_policy: \"omit\" leaves those pairs out)".into()
    } else if x.len() < 2 || y.len() < 2 {
        format!("too few observations ({} and {})", x.len(), y.len())
    } else if constant(x) || constant(y) {
        "an input is constant (its variance is 0)".into()
    } else {
        "the differences have variance 0 or the inputs are degenerate".into()
    }
}

fn alternative(opts: &Opts, op: &'static str) -> Result<Alternative> {
    Alternative::parse(op, &opts.string("alternative")?)
}

fn nan_policy(opts: &Opts, op: &'static str) -> Result<NanPolicy> {
    NanPolicy::parse(op, &opts.string("nan_policy")?)
}

fn result_map(stat_name: &str, r: &TestResult) -> Map {
    let mut m = Map::new();
    m.insert(stat_name.into(), Dynamic::from_float(r.statistic));
    if let Some(df) = r.df {
        m.insert("df".into(), Dynamic::from_float(df));
    }
    m.insert("p".into(), Dynamic::from_float(r.pvalue));
    m
}

fn vec_tensor(op: &'static str, v: &[f64]) -> Result<Tensor> {
    Tensor::from_f64(op, v, &[v.len() as i64], tch::Kind::Double)
}

fn correction_map(op: &'static str, r: stats::MultitestResult) -> Result<Map> {
    let mut m = Map::new();
    m.insert("q".into(), Dynamic::from(vec_tensor(op, &r.q)?));
    let reject: Vec<f64> = r.reject.iter().map(|&b| f64::from(u8::from(b))).collect();
    m.insert(
        "reject".into(),
        Dynamic::from(Tensor::from_f64(
            op,
            &reject,
            &[reject.len() as i64],
            tch::Kind::Bool,
        )?),
    );
    Ok(m)
}

/// Registers `name(a, b)` and `name(a, b, opts)` for a two-sample test.
fn pair_test(
    engine: &mut Engine,
    doc: &'static FnDoc,
    stat: &'static str,
    run: fn(&[f64], &[f64], &Opts) -> Result<TestResult>,
) {
    let op = doc.name;
    let f = move |a: Dynamic, b: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard(op, || {
            let opts = Opts::parse(doc, opts)?;
            let (x, y) = (
                values_1d(op, &param_name(doc, 0), &a)?,
                values_1d(op, &param_name(doc, 1), &b)?,
            );
            let r = run(&x, &y, &opts)?;
            if r.statistic.is_nan() {
                eprintln!("warning: {op}: the {stat} is NaN: {}", nan_reason(&x, &y));
            }
            Ok(result_map(stat, &r))
        })
    };
    engine.register_fn(op, move |a: Dynamic, b: Dynamic| f(a, b, Map::new()));
    engine.register_fn(op, f);
}

fn correction(
    engine: &mut Engine,
    doc: &'static FnDoc,
    run: fn(&[f64], &Opts) -> Result<stats::MultitestResult>,
) {
    let op = doc.name;
    let f = move |p: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard(op, || {
            let opts = Opts::parse(doc, opts)?;
            correction_map(op, run(&values(op, &param_name(doc, 0), &p)?, &opts)?)
        })
    };
    engine.register_fn(op, move |p: Dynamic| f(p, Map::new()));
    engine.register_fn(op, f);
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry) {
    for doc in [
        &KENDALL_TAU,
        &PEARSON,
        &SPEARMAN,
        &PEARSON_COLUMNS,
        &TTEST_REL,
        &TTEST_IND,
        &TTEST_1SAMP,
        &BINOMIAL_TEST,
        &FDR,
        &BONFERRONI,
        &HOLM,
        &RDM,
        &RSA,
        &KENDALL_FDR,
        &PERMUTATION_TEST,
        &NOISE_CEILING,
    ] {
        help.add(doc);
    }
    register_rsa(engine);
    pair_test(engine, &KENDALL_TAU, "tau", |x, y, o| {
        const OP: &str = "kendall_tau";
        let opts = stats::KendallOptions {
            variant: stats::KendallVariant::parse(OP, &o.string("variant")?)?,
            method: stats::KendallMethod::parse(OP, &o.string("method")?)?,
            alternative: alternative(o, OP)?,
            nan_policy: nan_policy(o, OP)?,
        };
        stats::kendall_tau(x, y, &opts)
    });
    pair_test(engine, &PEARSON, "r", |x, y, o| {
        stats::pearson(
            x,
            y,
            &stats::CorrelationOptions {
                alternative: alternative(o, "pearson")?,
                nan_policy: nan_policy(o, "pearson")?,
            },
        )
    });
    pair_test(engine, &SPEARMAN, "r", |x, y, o| {
        stats::spearman(
            x,
            y,
            &stats::CorrelationOptions {
                alternative: alternative(o, "spearman")?,
                nan_policy: nan_policy(o, "spearman")?,
            },
        )
    });
    pair_test(engine, &TTEST_REL, "t", |a, b, o| {
        stats::ttest_rel(
            a,
            b,
            &stats::TTestOptions {
                alternative: alternative(o, "ttest_rel")?,
                nan_policy: nan_policy(o, "ttest_rel")?,
            },
        )
    });
    pair_test(engine, &TTEST_IND, "t", |a, b, o| {
        let opts = stats::TTestIndOptions {
            equal_var: o.bool("equal_var")?,
            alternative: alternative(o, "ttest_ind")?,
            nan_policy: nan_policy(o, "ttest_ind")?,
        };
        stats::ttest_ind(a, b, &opts)
    });
    let one_sample = |x: Dynamic, popmean: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard("ttest_1samp", || {
            let o = Opts::parse(&TTEST_1SAMP, opts)?;
            let mu = values("ttest_1samp", "popmean", &popmean)?;
            let [mu] = mu.as_slice() else {
                return Err(crate::Error::invalid(
                    "ttest_1samp",
                    format!("popmean must be one number, got {} values", mu.len()),
                ));
            };
            let opts = stats::TTestOptions {
                alternative: alternative(&o, "ttest_1samp")?,
                nan_policy: nan_policy(&o, "ttest_1samp")?,
            };
            Ok(result_map(
                "t",
                &stats::ttest_1samp(&values("ttest_1samp", "x", &x)?, *mu, &opts)?,
            ))
        })
    };
    engine.register_fn("ttest_1samp", move |x: Dynamic, m: Dynamic| {
        one_sample(x, m, Map::new())
    });
    engine.register_fn("ttest_1samp", one_sample);
    engine.register_fn(
        "binomial_test",
        |k: i64, n: i64, p: f64| -> RhaiResult<f64> {
            guard("binomial_test", || {
                if n < 0 || !(0..=n).contains(&k) || !(0.0..=1.0).contains(&p) {
                    return Err(crate::Error::invalid(
                        "binomial_test",
                        format!(
                            "expected 0 ≤ k ≤ n and p in [0, 1], got k = {k}, n = {n}, p = {p}"
                        ),
                    ));
                }
                Ok(crate::eval::identification::binomial_sf(
                    k as u64, n as u64, p,
                ))
            })
        },
    );
    let columns = |a: Dynamic, b: Dynamic, opts: Map| -> RhaiResult<Dynamic> {
        guard("pearson_columns", || {
            const OP: &str = "pearson_columns";
            let o = Opts::parse(&PEARSON_COLUMNS, opts)?;
            let (ta, tb) = (to_tensor(OP, "pred", &a)?, to_tensor(OP, "measured", &b)?);
            if ta.ndim() != 2 || ta.shape() != tb.shape() {
                return Err(crate::Error::shape(
                    OP,
                    "pred and measured",
                    "two matrices of the same shape (samples × targets)",
                    format!(
                        "{} and {}",
                        crate::tensor::shape_text(&ta.shape()),
                        crate::tensor::shape_text(&tb.shape())
                    ),
                ));
            }
            let s = ta.shape();
            let opts = stats::PearsonColumnsOptions {
                alternative: alternative(&o, OP)?,
                nan_policy: nan_policy(&o, OP)?,
                pvalues: o.bool("pvalues")?,
            };
            let r = stats::pearson_columns(
                &ta.to_f64_vec(OP)?,
                &tb.to_f64_vec(OP)?,
                s[0] as usize,
                s[1] as usize,
                &opts,
            )?;
            let rt = vec_tensor(OP, &r.r)?;
            Ok(match r.pvalue {
                Some(p) => {
                    let mut m = Map::new();
                    m.insert("r".into(), Dynamic::from(rt));
                    m.insert("p".into(), Dynamic::from(vec_tensor(OP, &p)?));
                    Dynamic::from_map(m)
                }
                None => Dynamic::from(rt),
            })
        })
    };
    engine.register_fn("pearson_columns", move |a: Dynamic, b: Dynamic| {
        columns(a, b, Map::new())
    });
    engine.register_fn("pearson_columns", columns);
    correction(engine, &FDR, |p, o| {
        let opts = stats::FdrOptions {
            method: stats::FdrMethod::parse("fdr", &o.string("method")?)?,
            alpha: o.f64("alpha")?,
            nan_policy: nan_policy(o, "fdr")?,
        };
        stats::fdr(p, &opts)
    });
    correction(engine, &BONFERRONI, |p, o| {
        stats::bonferroni(
            p,
            &stats::MultitestOptions {
                alpha: o.f64("alpha")?,
                nan_policy: nan_policy(o, "bonferroni")?,
            },
        )
    });
    correction(engine, &HOLM, |p, o| {
        stats::holm(
            p,
            &stats::MultitestOptions {
                alpha: o.f64("alpha")?,
                nan_policy: nan_policy(o, "holm")?,
            },
        )
    });
}

// ------------------------------------------------------- RDMs, RSA and more

const RSA_METHOD: OptDoc = OptDoc {
    name: "method",
    ty: "string",
    default: "kendall_b",
    meaning:
        "kendall_b (scipy.stats.kendalltau), kendall_a (rsatoolbox tau-a), spearman or pearson",
};

pub static RDM: FnDoc = FnDoc {
    name: "rdm",
    domain: "stats",
    signature: "rdm(x: Tensor, opts?: map) -> Tensor",
    summary: "Representational dissimilarity matrix of a stimuli × features matrix (stimuli × stimuli), equal to scipy squareform(pdist(x, metric)). Small inputs (n(n−1)/2 · features ≤ 5e7, e.g. model RDMs from categories or ratings) are computed pair by pair in float64 like scipy, so equal patterns give exactly equal distances (a categorical model keeps its ties for Kendall and Spearman); larger ones by libtorch matrix products on the current device.",
    options: &[
        OptDoc { name: "metric", ty: "string", default: "correlation", meaning: "correlation (1 − Pearson r), euclidean, sqeuclidean or cosine" },
        OptDoc { name: "dtype", ty: "string", default: "f32", meaning: "f32, or f64 for full precision" },
    ],
    example: "let x = randn([20, 100]);\nlet d = rdm(x, #{metric: \"euclidean\", dtype: \"f64\"});\nprint(d.shape);   // [20, 20]",
};
pub static RSA: FnDoc = FnDoc {
    name: "rsa",
    domain: "stats",
    signature: "rsa(rdm_a: Tensor, rdm_b: Tensor, opts?: map) -> #{r, p}",
    summary: "Compares two RDMs over their upper triangles (diagonal excluded): Kendall tau-b/tau-a, Spearman or Pearson, with its p-value.",
    options: &[RSA_METHOD],
    example: "let x = randn([12, 30]);\nlet r = rsa(rdm(x), rdm(x + 0.5 * randn([12, 30])), #{method: \"kendall_a\"});\nprint(r.r);",
};
pub static KENDALL_FDR: FnDoc = FnDoc {
    name: "kendall_fdr",
    domain: "stats",
    signature: "kendall_fdr(rdms_a: map | array | Tensor, rdms_b: map | array | Tensor, opts?: map) -> #{rows, cols, tau, p, q, significant}",
    summary: "Kendall tau between every RDM of one set (rows, e.g. 19 ROIs) and every RDM of another (cols, e.g. 22 layers), in parallel, with Benjamini–Hochberg q-values. A set is a map name → RDM (taken in key order, which Rhai sorts), an array of #{name, rdm} (kept in its order), or a K×n×n tensor; an RDM is a square matrix (upper triangle used) or a condensed vector. tau, p, q are rows×cols f64 tensors, significant a bool tensor (q < alpha); NaN p-values (constant RDMs) are left out of the correction.",
    options: &[
        OptDoc { name: "variant", ty: "string", default: "b", meaning: "b (scipy tau-b), c, or a (rsatoolbox tau-a)" },
        ALPHA,
        OptDoc { name: "method", ty: "string", default: "bh", meaning: "FDR procedure: bh (Benjamini–Hochberg) or by (Benjamini–Yekutieli)" },
        OptDoc { name: "correct_over", ty: "string", default: "all", meaning: "all (one correction over every pair) or row (one per row)" },
    ],
    example: "let stim = randn([15, 40]);\nlet rois = [#{name: \"V1\", rdm: rdm(stim + randn([15, 40]))}, #{name: \"IT\", rdm: rdm(randn([15, 40]))}];\nlet layers = #{conv1: rdm(stim), fc: rdm(stim * 2.0 + randn([15, 40]))};\nlet r = kendall_fdr(rois, layers);\nprint(r.rows);   // [\"V1\", \"IT\"]\nprint(r.q);",
};
pub static PERMUTATION_TEST: FnDoc = FnDoc {
    name: "permutation_test",
    domain: "stats",
    signature: "permutation_test(x: Tensor | array, y: Tensor | array, opts?: map) -> #{statistic, p, null_distribution, exact}\npermutation_test(statistic: fn(perm) -> number, n: int, opts?: map) -> #{statistic, p, null_distribution, exact}",
    summary: "Permutation test, as scipy.stats.permutation_test: correlations shuffle y against x (or, with rdm: true, the stimuli of the second RDM: a Mantel test), mean_diff re-splits the pooled groups, mean_paired_diff flips the sign of each pair's difference; or any statistic(perm) of shuffled labels (perm: array of item indices; the observed value is statistic of the identity). Exact (every relabelling, p = #{null ≥ obs}/N) when they number at most n_permutations; otherwise random, p = (#{null ≥ obs} + 1)/(n_permutations + 1) (Phipson & Smyth 2010). two-sided = 2·min(p_less, p_greater). Random relabellings follow set_seed.",
    options: &[
        OptDoc { name: "statistic", ty: "string", default: "pearson", meaning: "pearson, spearman, kendall_b, kendall_a, mean_diff or mean_paired_diff (x, y form)" },
        OptDoc { name: "n_permutations", ty: "int", default: "9999", meaning: "random relabellings (fewer exact ones are all enumerated)" },
        ALTERNATIVE,
        OptDoc { name: "rdm", ty: "bool", default: "false", meaning: "x and y are RDMs: permute the stimuli of y (rows and columns together)" },
    ],
    example: "set_seed(1);\nlet x = randn([30]);\nlet t = permutation_test(x, x + randn([30]), #{n_permutations: 999});\nprint(t.p);\nlet labels = [0, 0, 0, 1, 1, 1];\nlet score = [0.9, 0.8, 0.7, 0.2, 0.3, 0.1];\nlet acc = permutation_test(|perm| {\n    let s = 0.0;\n    for i in 0..6 { if labels[perm[i]] == 0 { s += score[i]; } }\n    s\n}, 6, #{alternative: \"greater\"});\nprint(acc.p);   // 0.05 (1 of 20 splits, exact)",
};
pub static NOISE_CEILING: FnDoc = FnDoc {
    name: "noise_ceiling",
    domain: "stats",
    signature: "noise_ceiling(betas: Tensor, opts?: map) -> #{ceiling, r_split | ncsnr}",
    summary: "Noise ceiling per voxel from betas shaped repeats × stimuli × voxels. split_half: Pearson r (over stimuli) between the mean of odd and of even repeats, Spearman–Brown corrected, ceiling = 2r/(1+r) (a correlation). nsd: Allen et al. 2022 (NSD): z-score each voxel over trials, σ²_noise = mean over stimuli of the across-repeat variance (ddof 1), ncsnr = √max(0, 1 − σ²_noise)/σ_noise, ceiling = 100·ncsnr²/(ncsnr² + 1/n_average) (% variance explainable).",
    options: &[
        OptDoc { name: "method", ty: "string", default: "split_half", meaning: "split_half or nsd" },
        OptDoc { name: "n_average", ty: "int", default: "none", meaning: "nsd: trials averaged per stimulus in the analysis (default: all repeats)" },
    ],
    example: "let signal = randn([1, 20, 5]);\nlet betas = signal + 0.5 * randn([4, 20, 5]);\nlet nc = noise_ceiling(betas, #{method: \"nsd\"});\nprint(nc.ceiling);",
};

/// One RDM as a condensed vector: a square matrix's upper triangle, or a 1-D
/// condensed vector as given.
fn condensed(op: &'static str, what: &str, name: &str, v: &Dynamic) -> Result<Vec<f64>> {
    let t = to_tensor(op, &format!("{what}: RDM '{name}'"), v)?;
    match t.ndim() {
        1 => t.to_f64_vec(op),
        2 => stats::rdm::upper_triangle(op, &t),
        _ => Err(crate::Error::shape(
            op,
            format!("RDM '{name}'"),
            "a square matrix or a condensed vector",
            crate::tensor::shape_text(&t.shape()),
        )),
    }
}

/// A named RDM set: map name → RDM, array of #{name, rdm}, or K×n×n tensor.
fn rdm_set(op: &'static str, what: &str, v: &Dynamic) -> Result<(Vec<String>, Vec<Vec<f64>>)> {
    let mut names = Vec::new();
    let mut vecs = Vec::new();
    if let Some(m) = v.read_lock::<Map>() {
        for (k, r) in m.iter() {
            vecs.push(condensed(op, what, k, r)?);
            names.push(k.to_string());
        }
    } else if let Some(a) = v.read_lock::<rhai::Array>() {
        for (i, item) in a.iter().enumerate() {
            let Some(m) = item.read_lock::<Map>() else {
                return Err(crate::Error::invalid(
                    op,
                    format!(
                        "{what}: item {i} should be #{{name, rdm}}, got {}",
                        item.type_name()
                    ),
                ));
            };
            let name = m
                .get("name")
                .map(|n| n.to_string())
                .unwrap_or_else(|| i.to_string());
            let r = m.get("rdm").ok_or_else(|| {
                crate::Error::invalid(op, format!("{what}: item {i} ('{name}') has no 'rdm'"))
            })?;
            vecs.push(condensed(op, what, &name, r)?);
            names.push(name);
        }
    } else {
        let t = to_tensor(op, what, v)?;
        if t.ndim() != 3 {
            return Err(crate::Error::shape(
                op,
                what,
                "a map name → RDM, an array of #{name, rdm} or a K×n×n tensor",
                crate::tensor::shape_text(&t.shape()),
            ));
        }
        let s = t.shape();
        let n = s[1] as usize;
        let all = t.to_f64_vec(op)?;
        for k in 0..s[0] as usize {
            vecs.push(stats::rdm::upper_of(&all[k * n * n..(k + 1) * n * n], n));
            names.push(k.to_string());
        }
    }
    if vecs.is_empty() {
        return Err(crate::Error::invalid(op, format!("{what} holds no RDMs")));
    }
    Ok((names, vecs))
}

fn matrix_tensor(op: &'static str, v: &[f64], rows: usize, cols: usize) -> Result<Tensor> {
    Tensor::from_f64(op, v, &[rows as i64, cols as i64], tch::Kind::Double)
}

/// A seed for Rust-side random draws taken from libtorch's generator, so
/// `set_seed` governs them too.
pub(super) fn torch_seed(op: &'static str) -> Result<u64> {
    let t = crate::tensor::tc(
        op,
        tch::Tensor::f_randint(i64::MAX, [1], (tch::Kind::Int64, tch::Device::Cpu)),
    )?;
    Ok(crate::tensor::tc(op, t.f_int64_value(&[0]))? as u64)
}

fn perm_options(o: &Opts, op: &'static str) -> Result<stats::PermutationOptions> {
    let n = o.i64("n_permutations")?;
    if n < 1 {
        return Err(crate::Error::BadOption {
            op,
            key: "n_permutations".into(),
            expected: "a positive integer".into(),
            got: n.to_string(),
        });
    }
    Ok(stats::PermutationOptions {
        statistic: stats::PermStatistic::parse(op, &o.string("statistic")?)?,
        n_permutations: n as usize,
        alternative: alternative(o, op)?,
        rdm: o.bool("rdm")?,
        seed: torch_seed(op)?,
    })
}

fn perm_map(op: &'static str, r: stats::PermutationResult) -> Result<Map> {
    let mut m = Map::new();
    m.insert("statistic".into(), Dynamic::from_float(r.statistic));
    m.insert("p".into(), Dynamic::from_float(r.pvalue));
    m.insert(
        "null_distribution".into(),
        Dynamic::from(vec_tensor(op, &r.null)?),
    );
    m.insert("exact".into(), Dynamic::from_bool(r.exact));
    Ok(m)
}

fn register_rsa(engine: &mut Engine) {
    let rdm_fn = |x: Dynamic, opts: Map| -> RhaiResult<Tensor> {
        guard("rdm", || {
            let o = Opts::parse(&RDM, opts)?;
            let metric = stats::RdmMetric::parse("rdm", &o.string("metric")?)?;
            let kind = match o.choice("dtype", &["f32", "f64"])?.as_str() {
                "f64" => tch::Kind::Double,
                _ => tch::Kind::Float,
            };
            stats::rdm(&to_tensor("rdm", "x", &x)?, metric, kind)
        })
    };
    engine.register_fn("rdm", move |x: Dynamic| rdm_fn(x, Map::new()));
    engine.register_fn("rdm", rdm_fn);

    let rsa_fn = |a: Dynamic, b: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard("rsa", || {
            let o = Opts::parse(&RSA, opts)?;
            let method = stats::RsaMethod::parse("rsa", &o.string("method")?)?;
            let r = stats::rsa(
                &to_tensor("rsa", "rdm_a", &a)?,
                &to_tensor("rsa", "rdm_b", &b)?,
                method,
            )?;
            Ok(result_map("r", &r))
        })
    };
    engine.register_fn("rsa", move |a: Dynamic, b: Dynamic| {
        rsa_fn(a, b, Map::new())
    });
    engine.register_fn("rsa", rsa_fn);

    let kfdr = |a: Dynamic, b: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard("kendall_fdr", || {
            const OP: &str = "kendall_fdr";
            let o = Opts::parse(&KENDALL_FDR, opts)?;
            let kopts = stats::KendallOptions::default()
                .variant(stats::KendallVariant::parse(OP, &o.string("variant")?)?);
            let fopts = stats::FdrOptions {
                method: stats::FdrMethod::parse(OP, &o.string("method")?)?,
                alpha: o.f64("alpha")?,
                nan_policy: NanPolicy::Omit,
            };
            fopts.validate(OP)?;
            let over = stats::CorrectOver::parse(OP, &o.string("correct_over")?)?;
            let (rn, rv) = rdm_set(OP, "rdms_a", &a)?;
            let (cn, cv) = rdm_set(OP, "rdms_b", &b)?;
            let rr: Vec<&[f64]> = rv.iter().map(Vec::as_slice).collect();
            let cc: Vec<&[f64]> = cv.iter().map(Vec::as_slice).collect();
            let res = stats::kendall_fdr(&rr, &cc, &kopts, &fopts, over)?;
            let (nr, nc) = (rn.len(), cn.len());
            let names = |v: Vec<String>| -> Dynamic {
                Dynamic::from_array(v.into_iter().map(Dynamic::from).collect())
            };
            let sig: Vec<f64> = res
                .significant
                .iter()
                .map(|&b| f64::from(u8::from(b)))
                .collect();
            let mut m = Map::new();
            m.insert("rows".into(), names(rn));
            m.insert("cols".into(), names(cn));
            m.insert(
                "tau".into(),
                Dynamic::from(matrix_tensor(OP, &res.tau, nr, nc)?),
            );
            m.insert(
                "p".into(),
                Dynamic::from(matrix_tensor(OP, &res.p, nr, nc)?),
            );
            m.insert(
                "q".into(),
                Dynamic::from(matrix_tensor(OP, &res.q, nr, nc)?),
            );
            m.insert(
                "significant".into(),
                Dynamic::from(Tensor::from_f64(
                    OP,
                    &sig,
                    &[nr as i64, nc as i64],
                    tch::Kind::Bool,
                )?),
            );
            Ok(m)
        })
    };
    engine.register_fn("kendall_fdr", move |a: Dynamic, b: Dynamic| {
        kfdr(a, b, Map::new())
    });
    engine.register_fn("kendall_fdr", kfdr);

    let perm_xy = |x: Dynamic, y: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard("permutation_test", || {
            const OP: &str = "permutation_test";
            let o = Opts::parse(&PERMUTATION_TEST, opts)?;
            let po = perm_options(&o, OP)?;
            perm_map(
                OP,
                stats::permutation_test(&values(OP, "x", &x)?, &values(OP, "y", &y)?, &po)?,
            )
        })
    };
    engine.register_fn("permutation_test", move |x: Dynamic, y: Dynamic| {
        perm_xy(x, y, Map::new())
    });
    engine.register_fn("permutation_test", perm_xy);

    let perm_fn = |ctx: NativeCallContext, f: FnPtr, n: rhai::INT, opts: Map| -> RhaiResult<Map> {
        guard_rhai("permutation_test", || {
            const OP: &str = "permutation_test";
            let o = Opts::parse(&PERMUTATION_TEST, opts).map_err(to_rhai)?;
            if o.is_set("statistic") || o.is_set("rdm") {
                return Err(to_rhai(crate::Error::invalid(
                    OP,
                    "options 'statistic' and 'rdm' belong to the permutation_test(x, y) form, not to a statistic function",
                )));
            }
            let po = perm_options(&o, OP).map_err(to_rhai)?;
            if n < 2 {
                return Err(to_rhai(crate::Error::invalid(
                    OP,
                    format!("need at least 2 items to permute, got {n}"),
                )));
            }
            let failed = std::cell::RefCell::new(None);
            let res = stats::permutation_test_with(n as usize, &po, |perm| {
                let arr: rhai::Array = perm.iter().map(|&i| Dynamic::from_int(i as i64)).collect();
                match f.call_within_context::<Dynamic>(&ctx, (arr,)) {
                    Ok(v) => v
                        .as_float()
                        .ok()
                        .or_else(|| v.as_int().ok().map(|i| i as f64))
                        .ok_or_else(|| {
                            crate::Error::invalid(
                                OP,
                                format!(
                                    "the statistic function must return a number, got {}",
                                    v.type_name()
                                ),
                            )
                        }),
                    Err(e) => {
                        *failed.borrow_mut() = Some(e);
                        Err(crate::Error::invalid(OP, "the statistic function failed"))
                    }
                }
            });
            if let Some(e) = failed.into_inner() {
                return Err(e);
            }
            perm_map(OP, res.map_err(to_rhai)?).map_err(to_rhai)
        })
    };
    engine.register_fn(
        "permutation_test",
        move |ctx: NativeCallContext, f: FnPtr, n: rhai::INT| perm_fn(ctx, f, n, Map::new()),
    );
    engine.register_fn("permutation_test", perm_fn);

    let nc = |b: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard("noise_ceiling", || {
            const OP: &str = "noise_ceiling";
            let o = Opts::parse(&NOISE_CEILING, opts)?;
            let method = stats::NoiseCeilingMethod::parse(OP, &o.string("method")?)?;
            let n_avg = match o.opt_i64("n_average")? {
                Some(n) if n < 1 => {
                    return Err(crate::Error::BadOption {
                        op: OP,
                        key: "n_average".into(),
                        expected: "a positive integer".into(),
                        got: n.to_string(),
                    })
                }
                other => other.map(|n| n as usize),
            };
            let t = to_tensor(OP, "betas", &b)?;
            if t.ndim() != 3 {
                return Err(crate::Error::shape(
                    OP,
                    "betas",
                    "repeats × stimuli × voxels",
                    crate::tensor::shape_text(&t.shape()),
                ));
            }
            let s = t.shape();
            let shape = [s[0] as usize, s[1] as usize, s[2] as usize];
            let r = stats::noise_ceiling(&t.to_f64_vec(OP)?, shape, method, n_avg)?;
            let mut m = Map::new();
            m.insert("ceiling".into(), Dynamic::from(vec_tensor(OP, &r.ceiling)?));
            let key = match method {
                stats::NoiseCeilingMethod::SplitHalf => "r_split",
                stats::NoiseCeilingMethod::Nsd => "ncsnr",
            };
            m.insert(key.into(), Dynamic::from(vec_tensor(OP, &r.detail)?));
            Ok(m)
        })
    };
    engine.register_fn("noise_ceiling", move |b: Dynamic| nc(b, Map::new()));
    engine.register_fn("noise_ceiling", nc);
}
