//! Script face of [`crate::models`]: ridge regression (`fit_ridge`,
//! `RidgeModel`, `load_ridge`), ResNet classifiers and their features.

use std::path::Path;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, Map, INT};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::session::Session;
use super::tensor::to_tensor;
use crate::error::{Error, Result};
use crate::models::classifier::{self, TrainOptions};
use crate::models::resnet::{self, Arch, ResNet};
use crate::models::ridge::{fit_ridge, RidgeModel, RidgeOptions, Scoring};
use crate::models::train::History;
use crate::tensor::{is_floating, parse_kind};
use crate::tensor::{tc, Tensor};

/// A ResNet as scripts hold it (shared: Rhai clones values freely).
#[derive(Clone)]
pub struct ResNetModel {
    pub net: Rc<ResNet>,
    pub history: Option<History>,
}

impl std::fmt::Display for ResNetModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ResNet[{}; {} classes; {:.1}M parameters; {}; {}",
            self.net.arch.name(),
            self.net.classes,
            self.net
                .vs
                .variables()
                .values()
                .map(|t| t.numel())
                .sum::<usize>() as f64
                / 1e6,
            crate::device::name(self.net.vs.device()),
            crate::tensor::kind_name(self.net.vs.kind())
        )?;
        if let Some(h) = &self.history {
            write!(
                f,
                "; trained {} epochs, best epoch {} val_acc={:.3}",
                h.epochs,
                h.best_epoch,
                h.at("val_acc", h.best_epoch)
            )?;
            if h.status == crate::models::train::Status::Interrupted {
                write!(f, " (interrupted)")?;
            }
        }
        write!(f, "]")
    }
}

const ARCH: OptDoc = OptDoc {
    name: "arch",
    ty: "string",
    default: "resnet18",
    meaning: "resnet18 or resnet50",
};
const BATCH: OptDoc = OptDoc {
    name: "batch",
    ty: "int",
    default: "32",
    meaning: "images per batch",
};

pub static RESNET: FnDoc = FnDoc {
    name: "resnet", domain: "models",
    signature: "resnet(opts?: map) -> ResNet",
    summary: "A ResNet18/50 as torchvision builds it: fresh (seeded) or from a safetensors file with torchvision's parameter names (export: `from safetensors.torch import save_file; save_file(torchvision.models.resnet18(weights=\"DEFAULT\").state_dict(), \"r18.safetensors\")`).",
    options: &[ARCH, OptDoc { name: "classes", ty: "int", default: "1000", meaning: "output classes (a different count than the weights' starts a fresh fc)" }, OptDoc { name: "weights", ty: "string", default: "none", meaning: "safetensors file with torchvision names" }],
    example: "let m = resnet(#{classes: 3});\nprint(m.stages.len());   // 22",
};
pub static LOAD_RESNET: FnDoc = FnDoc { name: "load_resnet", domain: "models", signature: "load_resnet(path: string) -> ResNet", summary: "Loads a ResNet saved by model.save or exported from torchvision (architecture and classes read from the file).", options: &[], example: "let p = resnet(#{classes: 3}).save(\"r.safetensors\");\nlet m = load_resnet(p);" };
pub static TRAIN_RESNET: FnDoc = FnDoc {
    name: "train_resnet", domain: "models",
    signature: "train_resnet(images: Tensor, labels: Tensor | array, opts?: map) -> ResNet",
    summary: "Trains a ResNet classifier on N×3×H×W images in [0, 1] (normalised with ImageNet statistics) with cross-entropy through the one trainer (options shared by every training function: help(\"Training\")); keeps the weights of the epoch with the best validation accuracy (ties: lowest validation loss); .history has the curves (train_loss, train_acc, val_loss, val_acc, lr per epoch; best_epoch, epochs, status).",
    options: crate::training_options!([
        ARCH,
        OptDoc { name: "classes", ty: "int", default: "none", meaning: "number of classes (default: largest label + 1)" },
        OptDoc { name: "augment", ty: "bool", default: "true", meaning: "random horizontal flips" },
        OptDoc { name: "val_split", ty: "float", default: "0.2", meaning: "fraction held out (after a seeded shuffle) for validation" },
        OptDoc { name: "pretrained", ty: "string", default: "none", meaning: "torchvision-named weights to start from" },
        OptDoc { name: "freeze", ty: "bool", default: "false", meaning: "train only the fc layer" },
    ], epochs: "10", batch: "32", lr: "0.01", optimizer: "sgd", weight_decay: "0.0001"),
    example: "set_seed(0);\nlet x = rand([12, 3, 32, 32]);\nlet y = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2];\nlet m = train_resnet(x, y, #{epochs: 1, batch: 6, verbose: false});\nprint(m.history.train_loss);",
};
pub static RESNET_FEATURES: FnDoc = FnDoc {
    name: "resnet_features", domain: "models",
    signature: "resnet_features(model: ResNet, images: Tensor, opts?: map) -> map",
    summary: "Stage activations (images × units) for RSA: every convolution after its batch norm (downsampling ones included), the flattened average pool and the fc output — 22 stages for ResNet18 (the BNU paper's layers), 55 for ResNet50.",
    options: &[OptDoc { name: "layers", ty: "array of string", default: "none", meaning: "stage names (default: all, see model.stages)" }, BATCH, OptDoc { name: "pool", ty: "bool", default: "false", meaning: "average each convolution channel over space (units = channels)" }],
    example: "let m = resnet(#{classes: 3});\nlet f = resnet_features(m, rand([2, 3, 32, 32]), #{layers: [\"conv1\", \"fc\"]});\nprint(f.fc.shape);   // [2, 3]",
};
pub static LABELS_FROM_RATINGS: FnDoc = FnDoc {
    name: "labels_from_ratings", domain: "models",
    signature: "labels_from_ratings(ratings: Tensor | array, opts?: map) -> Tensor",
    summary: "Classes from ratings: with the BNU bins [4, 6] on a 1–9 valence scale, rating < 4 → 0 (negative), 4 ≤ rating ≤ 6 → 1 (neutral), rating > 6 → 2 (positive). In general the class is the number of edges strictly below the rating; a rating equal to the first edge is class 1.",
    options: &[OptDoc { name: "bins", ty: "array of float", default: "[4, 6]", meaning: "increasing class edges" }],
    example: "let y = labels_from_ratings([1.5, 4.0, 5.2, 6.0, 8.1]);   // 0 1 1 1 2",
};
pub static RESNET_TYPE: FnDoc = FnDoc {
    name: "ResNet", domain: "models",
    signature: "m.accuracy(images, labels) -> float\nm.confusion(images, labels) -> Tensor (true × predicted)\nm.save(path) -> string\nm.history -> map\nm.stages -> array\nm.arch -> string\nm.classes -> int",
    summary: "A ResNet classifier: probabilities, accuracy, confusion matrix, saving, training curves and stage names.",
    options: &[],
    example: "let m = resnet(#{classes: 3});\nlet p = m.predict(rand([2, 3, 32, 32]));\nprint(p.sum(1));   // ones",
};

fn images_arg(op: &'static str, v: &Dynamic) -> Result<tch::Tensor> {
    Ok(to_tensor(op, "images", v)?.0)
}

fn labels_arg(op: &'static str, v: &Dynamic) -> Result<tch::Tensor> {
    if let Some(arr) = v.read_lock::<Array>() {
        let (values, _) = super::tensor::array_to_values(op, &arr)?;
        if values.iter().any(|x| x.fract() != 0.0) {
            return Err(Error::invalid(
                op,
                "labels: must be whole numbers (class indices)",
            ));
        }
        return tc(
            op,
            tch::Tensor::f_from_slice(&values.iter().map(|&x| x as i64).collect::<Vec<_>>()),
        );
    }
    let t = to_tensor(op, "labels", v)?;
    tc(op, t.0.f_to_device(tch::Device::Cpu))
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    register_ridge(engine, help, session);
    for doc in [
        &RESNET,
        &LOAD_RESNET,
        &TRAIN_RESNET,
        &RESNET_FEATURES,
        &LABELS_FROM_RATINGS,
        &RESNET_TYPE,
    ] {
        help.add(doc);
    }
    engine.register_type_with_name::<ResNetModel>("ResNet");
    engine.register_fn("to_string", |m: &mut ResNetModel| m.to_string());
    engine.register_fn("to_debug", |m: &mut ResNetModel| m.to_string());
    engine.register_get("arch", |m: &mut ResNetModel| m.net.arch.name().to_string());
    engine.register_get("classes", |m: &mut ResNetModel| m.net.classes as INT);
    engine.register_get("stages", |m: &mut ResNetModel| -> Array {
        m.net.stage_names().into_iter().map(Dynamic::from).collect()
    });
    engine.register_get("history", |m: &mut ResNetModel| {
        m.history.as_ref().map_or(Dynamic::UNIT, |h| {
            Dynamic::from_map(super::train::history_map(h))
        })
    });

    let make = |opts: Map| -> RhaiResult<ResNetModel> {
        guard("resnet", || {
            let o = Opts::parse(&RESNET, opts)?;
            let device = crate::device::current();
            let net = match o.opt_string("weights")? {
                Some(p) => {
                    let classes = if o.is_set("classes") {
                        Some(o.i64("classes")?)
                    } else {
                        None
                    };
                    let (net, fresh) = ResNet::load(Path::new(&p), classes, device)?;
                    if fresh {
                        eprintln!("resnet: the weights have a different number of classes; the fc layer starts fresh ({} classes)", net.classes);
                    }
                    net
                }
                None => ResNet::new(
                    Arch::parse("resnet", &o.string("arch")?)?,
                    o.i64("classes")?,
                    device,
                )?,
            };
            Ok(ResNetModel {
                net: Rc::new(net),
                history: None,
            })
        })
    };
    engine.register_fn("resnet", move || make(Map::new()));
    engine.register_fn("resnet", make);
    engine.register_fn("load_resnet", |path: &str| -> RhaiResult<ResNetModel> {
        guard("load_resnet", || {
            Ok(ResNetModel {
                net: Rc::new(ResNet::load(Path::new(path), None, crate::device::current())?.0),
                history: None,
            })
        })
    });
    let s = session.clone();
    let train = move |images: Dynamic, labels: Dynamic, opts: Map| -> RhaiResult<ResNetModel> {
        guard("train_resnet", || {
            const OP: &str = "train_resnet";
            let o = Opts::parse(&TRAIN_RESNET, opts)?;
            let device = crate::device::current();
            let defaults = TrainOptions::new(device);
            let opts = TrainOptions {
                arch: Arch::parse(OP, &o.string("arch")?)?,
                classes: o.opt_i64("classes")?,
                augment: o.bool("augment")?,
                val_split: o.f64("val_split")?,
                pretrained: o.opt_string("pretrained")?.map(Into::into),
                freeze: o.bool("freeze")?,
                device,
                train: super::train::train_config_from(&o, OP, defaults.train, &s)?,
            };
            let (net, history) =
                classifier::train(&images_arg(OP, &images)?, &labels_arg(OP, &labels)?, &opts)?;
            Ok(ResNetModel {
                net: Rc::new(net),
                history: Some(history),
            })
        })
    };
    let train2 = train.clone();
    engine.register_fn("train_resnet", move |x: Dynamic, y: Dynamic| {
        train2(x, y, Map::new())
    });
    engine.register_fn("train_resnet", train);
    engine.register_fn(
        "predict",
        |m: &mut ResNetModel, images: Dynamic| -> RhaiResult<Tensor> {
            guard("predict", || {
                Ok(Tensor(m.net.predict(
                    "predict",
                    &images_arg("predict", &images)?,
                    64,
                )?))
            })
        },
    );
    engine.register_fn(
        "accuracy",
        |m: &mut ResNetModel, images: Dynamic, labels: Dynamic| -> RhaiResult<f64> {
            guard("accuracy", || {
                m.net.accuracy(
                    &images_arg("accuracy", &images)?,
                    &labels_arg("accuracy", &labels)?,
                )
            })
        },
    );
    engine.register_fn(
        "confusion",
        |m: &mut ResNetModel, images: Dynamic, labels: Dynamic| -> RhaiResult<Tensor> {
            guard("confusion", || {
                Ok(Tensor(m.net.confusion(
                    &images_arg("confusion", &images)?,
                    &labels_arg("confusion", &labels)?,
                )?))
            })
        },
    );
    let s = session.clone();
    engine.register_fn(
        "save",
        move |m: &mut ResNetModel, path: &str| -> RhaiResult<String> {
            guard("save", || s.save(path, |out| m.net.save(out)))
        },
    );
    let features = |m: ResNetModel, images: Dynamic, opts: Map| -> RhaiResult<Map> {
        guard("resnet_features", || {
            const OP: &str = "resnet_features";
            let o = Opts::parse(&RESNET_FEATURES, opts)?;
            let batch = o.i64("batch")?;
            if batch < 1 {
                return Err(Error::BadOption {
                    op: OP,
                    key: "batch".into(),
                    expected: "an integer ≥ 1".into(),
                    got: batch.to_string(),
                });
            }
            let layers = o.opt_string_list("layers")?.unwrap_or_default();
            let feats =
                m.net
                    .features(&images_arg(OP, &images)?, &layers, batch, o.bool("pool")?)?;
            Ok(feats
                .into_iter()
                .map(|(k, t)| (k.into(), Dynamic::from(Tensor(t))))
                .collect())
        })
    };
    engine.register_fn("resnet_features", move |m: ResNetModel, x: Dynamic| {
        features(m, x, Map::new())
    });
    engine.register_fn("resnet_features", features);
    let labels = |ratings: Dynamic, opts: Map| -> RhaiResult<Tensor> {
        guard("labels_from_ratings", || {
            const OP: &str = "labels_from_ratings";
            let o = Opts::parse(&LABELS_FROM_RATINGS, opts)?;
            let bins = o.opt_f64_list("bins")?.unwrap_or_default();
            let values = match ratings.read_lock::<Array>() {
                Some(arr) => super::tensor::array_to_values(OP, &arr)?.0,
                None => to_tensor(OP, "ratings", &ratings)?.to_f64_vec(OP)?,
            };
            let l = resnet::labels_from_ratings(&values, &bins)?;
            Ok(Tensor(tc(OP, tch::Tensor::f_from_slice(&l))?))
        })
    };
    engine.register_fn("labels_from_ratings", move |r: Dynamic| {
        labels(r, Map::new())
    });
    engine.register_fn("labels_from_ratings", labels);
}

// ---------------------------------------------------------------------------
// Ridge regression.

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
    signature: "predict(model: RidgeModel, x: Tensor) -> Tensor\npredict(model: ResNet, images: Tensor) -> Tensor (softmax probabilities)",
    summary: "A ridge model's predictions x · coef + intercept (samples × targets), or a ResNet's softmax probabilities (images × classes); also model.predict(x).",
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
    let s = m.score(op, &to_tensor(op, "x", x)?, &to_tensor(op, "y", y)?)?;
    let mut out = Map::new();
    out.insert("r2".into(), Dynamic::from(Tensor(s.r2)));
    out.insert("r".into(), Dynamic::from(Tensor(s.r)));
    out.insert("mean_r2".into(), Dynamic::from_float(s.mean_r2));
    out.insert("mean_r".into(), Dynamic::from_float(s.mean_r));
    Ok(out)
}

fn register_ridge(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
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
            let x = to_tensor("fit_ridge", "x", &x)?;
            let y = to_tensor("fit_ridge", "y", &y)?;
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
                m.predict("predict", &to_tensor("predict", "x", &x)?)
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
            guard("save", || s.save(path, |out| m.save("save", out)))
        },
    );
    engine.register_fn("load_ridge", |path: &str| -> RhaiResult<RidgeModel> {
        guard("load_ridge", || {
            let m = RidgeModel::load("load_ridge", Path::new(path), crate::device::current())?;
            Ok(m)
        })
    });
}
