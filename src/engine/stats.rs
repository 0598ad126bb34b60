//! Script face of [`crate::stats`]: correlation, Kendall tau, t-tests and
//! multiple-comparison corrections. Inputs are tensors or arrays of numbers;
//! results are maps (`#{tau, p}`, `#{t, df, p}`, `#{q, reject}`).

use rhai::{Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
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
fn values(op: &'static str, v: &Dynamic) -> Result<Vec<f64>> {
    if let Some(arr) = v.read_lock::<rhai::Array>() {
        return Ok(super::tensor::array_to_values(op, &arr)?.0);
    }
    to_tensor(op, v)?.to_f64_vec(op)
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
            let r = run(&values(op, &a)?, &values(op, &b)?, &opts)?;
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
            correction_map(op, run(&values(op, &p)?, &opts)?)
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
        &FDR,
        &BONFERRONI,
        &HOLM,
    ] {
        help.add(doc);
    }
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
            let mu = values("ttest_1samp", &popmean)?;
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
                &stats::ttest_1samp(&values("ttest_1samp", &x)?, *mu, &opts)?,
            ))
        })
    };
    engine.register_fn("ttest_1samp", move |x: Dynamic, m: Dynamic| {
        one_sample(x, m, Map::new())
    });
    engine.register_fn("ttest_1samp", one_sample);
    let columns = |a: Dynamic, b: Dynamic, opts: Map| -> RhaiResult<Dynamic> {
        guard("pearson_columns", || {
            const OP: &str = "pearson_columns";
            let o = Opts::parse(&PEARSON_COLUMNS, opts)?;
            let (ta, tb) = (to_tensor(OP, &a)?, to_tensor(OP, &b)?);
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
