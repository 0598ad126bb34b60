//! Script face of [`crate::models`]: `fit_ridge`, `RidgeModel` and
//! `load_ridge`.

use std::path::Path;

use rhai::{Dynamic, Engine, Map, INT};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::session::Session;
use super::tensor::to_tensor;
use crate::error::{Error, Result};
use crate::models::ridge::{fit_ridge, RidgeModel, RidgeOptions, Scoring};
use crate::tensor::{is_floating, parse_kind, Tensor};

pub static FIT_RIDGE: FnDoc = FnDoc {
    name: "fit_ridge",
    domain: "models",
    signature: "fit_ridge(x: Tensor, y: Tensor, opts?: map) -> RidgeModel",
    summary: "Ridge regression of y (samples × targets) on x (samples × features); with several alphas, \
alpha is chosen per target (or shared) by K-fold cross-validation on contiguous folds, as himalaya's \
RidgeCV (one eigendecomposition per fold serves all alphas; the kernel form when samples < features). \
With one alpha it is scikit-learn's Ridge. The model has .predict(x), .score(x, y), .save(path), and \
properties .coef (features × targets), .intercept, .alphas (chosen per target), .cv_scores \
(alphas × targets, mean over folds).",
    options: &[
        OptDoc { name: "alphas", ty: "array of float", default: "[0.1, 1, 10, 100, 1000, 10000]", meaning: "candidate penalties (> 0); one value fits without cross-validation" },
        OptDoc { name: "cv", ty: "int", default: "5", meaning: "folds: contiguous blocks, no shuffling (scikit-learn KFold); the first n mod k folds are one sample longer" },
        OptDoc { name: "alpha_per_target", ty: "bool", default: "true", meaning: "choose alpha for each target; false: one alpha for all (best mean score over targets)" },
        OptDoc { name: "fit_intercept", ty: "bool", default: "true", meaning: "centre x and y with the training means (per fold) and fit an intercept" },
        OptDoc { name: "standardize", ty: "bool", default: "false", meaning: "scale x columns to unit SD (training statistics, per fold); coef stays in x's units" },
        OptDoc { name: "scoring", ty: "string", default: "r2", meaning: "fold score for choosing alpha: r2 (himalaya r2_score) or l2 (−MSE, himalaya's default l2_neg_loss)" },
        OptDoc { name: "dtype", ty: "string", default: "none", meaning: "f32 or f64; default x's dtype (f32 for integer x). f64 agrees with scikit-learn to 1e-8" },
        OptDoc { name: "device", ty: "string", default: "none", meaning: "cpu or cuda; default the current device()" },
        OptDoc { name: "chunk", ty: "int", default: "10000", meaning: "targets processed at once (bounds memory for many voxels)" },
        OptDoc { name: "progress", ty: "bool", default: "true", meaning: "progress bar on stderr for fits longer than a second (only on a terminal)" },
    ],
    example: "set_seed(0);\nlet x = randn([100, 20]);\nlet y = matmul(x, randn([20, 3])) + randn([100, 3]);\nlet m = fit_ridge(x, y, #{alphas: [0.1, 1, 10, 100], cv: 5});\nprint(m);\nprint(m.alphas);\nlet s = m.score(x, y);\nprint(s.mean_r2);",
};
pub static PREDICT: FnDoc = FnDoc {
    name: "predict",
    domain: "models",
    signature: "predict(model: RidgeModel, x: Tensor) -> Tensor",
    summary: "Predictions x · coef + intercept (samples × targets) of a fitted model; also model.predict(x).",
    options: &[],
    example: "let x = randn([50, 4]);\nlet m = fit_ridge(x, x.cols([0, 1]), #{alphas: [1.0]});\nlet y_hat = m.predict(x);",
};
pub static SCORE: FnDoc = FnDoc {
    name: "score",
    domain: "models",
    signature: "score(model: RidgeModel, x: Tensor, y: Tensor) -> #{r2, r, mean_r2, mean_r}",
    summary: "R² (scikit-learn r2_score per target) and Pearson r per target of the model's predictions of x against y, as tensors, with their means (NaN targets skipped in the means).",
    options: &[],
    example: "let x = randn([60, 5]);\nlet y = matmul(x, randn([5, 2])) + 0.5 * randn([60, 2]);\nlet m = fit_ridge(x.slice(0, 0, 40), y.slice(0, 0, 40), #{alphas: [1.0]});\nlet s = m.score(x.slice(0, 40, 60), y.slice(0, 40, 60));\nprint(s.r);",
};
pub static LOAD_RIDGE: FnDoc = FnDoc {
    name: "load_ridge",
    domain: "models",
    signature: "load_ridge(path: string) -> RidgeModel",
    summary: "Reads a RidgeModel written by model.save(path): one safetensors file (coef, intercept, alphas, candidates, cv_scores) with the settings as JSON under the header metadata key \"voxlab\"; onto the current device.",
    options: &[],
    example: "let x = randn([30, 3]);\nlet m = fit_ridge(x, x, #{alphas: [1.0]});\nlet p = m.save(\"ridge.safetensors\");\nlet back = load_ridge(p);",
};

fn options(opts: Map, x: &Tensor) -> Result<RidgeOptions> {
    let o = Opts::parse(&FIT_RIDGE, opts)?;
    let kind = match o.opt_string("dtype")? {
        Some(s) => {
            let k = parse_kind("fit_ridge", &s)?;
            if !matches!(k, tch::Kind::Float | tch::Kind::Double) {
                return Err(Error::BadOption {
                    op: "fit_ridge",
                    key: "dtype".into(),
                    expected: "\"f32\" or \"f64\"".into(),
                    got: format!("\"{s}\""),
                });
            }
            k
        }
        None if x.kind() == tch::Kind::Double => tch::Kind::Double,
        None if is_floating(x.kind()) => tch::Kind::Float,
        None => tch::Kind::Float,
    };
    let device = match o.opt_string("device")? {
        Some(s) => crate::device::parse("fit_ridge", &s)?,
        None => crate::device::current(),
    };
    Ok(RidgeOptions {
        alphas: o.opt_f64_list("alphas")?.unwrap_or_default(),
        cv: o.i64("cv")?,
        alpha_per_target: o.bool("alpha_per_target")?,
        fit_intercept: o.bool("fit_intercept")?,
        standardize: o.bool("standardize")?,
        kind,
        device,
        chunk: o.i64("chunk")?,
        scoring: Scoring::parse("fit_ridge", &o.string("scoring")?)?,
        progress: o.bool("progress")?,
    })
}

fn score_map(op: &'static str, m: &RidgeModel, x: &Dynamic, y: &Dynamic) -> Result<Map> {
    let s = m.score(op, &to_tensor(op, x)?, &to_tensor(op, y)?)?;
    let mut out = Map::new();
    out.insert("r2".into(), Dynamic::from(Tensor(s.r2)));
    out.insert("r".into(), Dynamic::from(Tensor(s.r)));
    out.insert("mean_r2".into(), Dynamic::from_float(s.mean_r2));
    out.insert("mean_r".into(), Dynamic::from_float(s.mean_r));
    Ok(out)
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    for doc in [&FIT_RIDGE, &PREDICT, &SCORE, &LOAD_RIDGE] {
        help.add(doc);
    }
    engine.register_type_with_name::<RidgeModel>("RidgeModel");
    engine.register_fn("to_string", |m: &mut RidgeModel| m.to_string());
    engine.register_fn("to_debug", |m: &mut RidgeModel| m.to_string());
    engine.register_get("coef", |m: &mut RidgeModel| Tensor(m.coef.shallow_clone()));
    engine.register_get("intercept", |m: &mut RidgeModel| {
        Tensor(m.intercept.shallow_clone())
    });
    engine.register_get("alphas", |m: &mut RidgeModel| {
        Tensor(m.alphas.shallow_clone())
    });
    engine.register_get("cv_scores", |m: &mut RidgeModel| -> Dynamic {
        match &m.cv_scores {
            Some(t) => Dynamic::from(Tensor(t.shallow_clone())),
            None => Dynamic::UNIT,
        }
    });
    engine.register_get("candidates", |m: &mut RidgeModel| -> rhai::Array {
        m.candidates
            .iter()
            .map(|&a| Dynamic::from_float(a))
            .collect()
    });
    engine.register_get("n_features", |m: &mut RidgeModel| m.n_features() as INT);
    engine.register_get("n_targets", |m: &mut RidgeModel| m.n_targets() as INT);

    let fit = |x: Dynamic, y: Dynamic, opts: Map| -> RhaiResult<RidgeModel> {
        guard("fit_ridge", || {
            let x = to_tensor("fit_ridge", &x)?;
            let y = to_tensor("fit_ridge", &y)?;
            let o = options(opts, &x)?;
            fit_ridge(&x, &y, &o)
        })
    };
    engine.register_fn("fit_ridge", move |x: Dynamic, y: Dynamic| {
        fit(x, y, Map::new())
    });
    engine.register_fn("fit_ridge", fit);
    engine.register_fn(
        "predict",
        |m: &mut RidgeModel, x: Dynamic| -> RhaiResult<Tensor> {
            guard("predict", || {
                m.predict("predict", &to_tensor("predict", &x)?)
            })
        },
    );
    engine.register_fn(
        "score",
        |m: &mut RidgeModel, x: Dynamic, y: Dynamic| -> RhaiResult<Map> {
            guard("score", || score_map("score", m, &x, &y))
        },
    );
    let s = session.clone();
    engine.register_fn(
        "save",
        move |m: &mut RidgeModel, path: &str| -> RhaiResult<String> {
            guard("save", || {
                let out = s.output_path(path);
                m.save("save", &out)?;
                s.wrote(&out);
                Ok(out.display().to_string())
            })
        },
    );
    engine.register_fn("load_ridge", |path: &str| -> RhaiResult<RidgeModel> {
        guard("load_ridge", || {
            let m = RidgeModel::load("load_ridge", Path::new(path), crate::device::current())?;
            Ok(m)
        })
    });
}
