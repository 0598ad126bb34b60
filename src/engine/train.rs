//! Script face of the trainer ([`crate::models::train`]): the options every
//! training function shares (documented once here, in [`COMMON`], and
//! included in each training function's entry by [`training_options!`]), the
//! one parser [`train_config_from`], and histories as Rhai maps.

use std::path::PathBuf;

use rhai::{Dynamic, Engine, Map, INT};

use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::session::Session;
use crate::error::{Error, Result};
use crate::models::train::{History, Mode, Monitor, OptimConfig, Optimizer, Schedule, TrainConfig};

/// The options every training function takes, after its own ones and the
/// five whose defaults differ between functions (epochs, batch, lr,
/// optimizer, weight_decay; see [`training_options!`]).
pub const MOMENTUM: OptDoc = OptDoc {
    name: "momentum",
    ty: "float",
    default: "0.9",
    meaning: "SGD momentum",
};
pub const DAMPENING: OptDoc = OptDoc {
    name: "dampening",
    ty: "float",
    default: "0.0",
    meaning: "SGD dampening of the momentum",
};
pub const NESTEROV: OptDoc = OptDoc {
    name: "nesterov",
    ty: "bool",
    default: "false",
    meaning: "SGD with Nesterov momentum",
};
pub const BETAS: OptDoc = OptDoc {
    name: "betas",
    ty: "array of float",
    default: "[0.9, 0.999]",
    meaning: "Adam/AdamW moment decay rates",
};
pub const EPS: OptDoc = OptDoc {
    name: "eps",
    ty: "float",
    default: "1e-8",
    meaning: "Adam/AdamW denominator term",
};
pub const SCHEDULE: OptDoc = OptDoc { name: "schedule", ty: "string", default: "constant", meaning: "learning rate schedule: constant, step (× gamma every step_size epochs) or cosine (linear warm-up over warmup_steps optimiser steps, then cosine down to min_lr)" };
pub const STEP_SIZE: OptDoc = OptDoc {
    name: "step_size",
    ty: "int",
    default: "10",
    meaning: "step schedule: epochs between decays",
};
pub const GAMMA: OptDoc = OptDoc {
    name: "gamma",
    ty: "float",
    default: "0.1",
    meaning: "step schedule: factor per decay",
};
pub const WARMUP_STEPS: OptDoc = OptDoc {
    name: "warmup_steps",
    ty: "int",
    default: "0",
    meaning: "cosine schedule: optimiser steps of linear warm-up",
};
pub const MIN_LR: OptDoc = OptDoc {
    name: "min_lr",
    ty: "float",
    default: "0.0",
    meaning: "cosine schedule: final learning rate",
};
pub const CLIP_GRAD_NORM: OptDoc = OptDoc {
    name: "clip_grad_norm",
    ty: "float",
    default: "none",
    meaning: "rescale gradients to at most this total 2-norm",
};
pub const ACCUMULATE: OptDoc = OptDoc {
    name: "accumulate",
    ty: "int",
    default: "1",
    meaning: "batches whose gradients are summed per optimiser step",
};
pub const AMP: OptDoc = OptDoc {
    name: "amp",
    ty: "bool",
    default: "false",
    meaning: "bf16 autocast on CUDA (ignored on the CPU, with a note)",
};
pub const SEED: OptDoc = OptDoc { name: "seed", ty: "int", default: "none", meaning: "seed for initialisation, split, batch order, dropout and augmentation (default: drawn from set_seed's generator)" };
pub const SHUFFLE: OptDoc = OptDoc {
    name: "shuffle",
    ty: "bool",
    default: "true",
    meaning: "shuffle the training examples every epoch",
};
pub const VAL_EVERY: OptDoc = OptDoc {
    name: "val_every",
    ty: "int",
    default: "1",
    meaning: "validate every N epochs (and after the last)",
};
pub const CHECKPOINT_EVERY: OptDoc = OptDoc {
    name: "checkpoint_every",
    ty: "int",
    default: "0",
    meaning: "write a checkpoint every N epochs (0: never)",
};
pub const CHECKPOINT_DIR: OptDoc = OptDoc {
    name: "checkpoint_dir",
    ty: "string",
    default: "none",
    meaning: "folder of the checkpoints epoch-N/ (default: checkpoints/ in the output folder)",
};
pub const RESUME: OptDoc = OptDoc {
    name: "resume",
    ty: "string",
    default: "none",
    meaning:
        "continue from a checkpoint folder epoch-N/ (or the latest one in a checkpoint folder)",
};
pub const MONITOR: OptDoc = OptDoc {
    name: "monitor",
    ty: "string",
    default: "none",
    meaning: "history metric choosing the kept weights (default: val_loss; train_resnet: val_acc)",
};
pub const MODE: OptDoc = OptDoc {
    name: "mode",
    ty: "string",
    default: "none",
    meaning: "min or max for monitor (default: min for losses, max otherwise)",
};
pub const VERBOSE: OptDoc = OptDoc {
    name: "verbose",
    ty: "bool",
    default: "true",
    meaning: "a line per epoch on stderr",
};
pub const PROGRESS: OptDoc = OptDoc {
    name: "progress",
    ty: "bool",
    default: "true",
    meaning: "a progress bar (epoch, step, loss, it/s, ETA) when stderr is a terminal",
};

/// The shared options, in the order the help lists them.
pub const COMMON: &[OptDoc] = &[
    MOMENTUM,
    DAMPENING,
    NESTEROV,
    BETAS,
    EPS,
    SCHEDULE,
    STEP_SIZE,
    GAMMA,
    WARMUP_STEPS,
    MIN_LR,
    CLIP_GRAD_NORM,
    ACCUMULATE,
    AMP,
    SEED,
    SHUFFLE,
    VAL_EVERY,
    CHECKPOINT_EVERY,
    CHECKPOINT_DIR,
    RESUME,
    MONITOR,
    MODE,
    VERBOSE,
    PROGRESS,
];

/// A training function's options: its own, the five whose defaults it
/// chooses, then [`COMMON`].
#[macro_export]
macro_rules! training_options {
    ([$($own:expr),* $(,)?], epochs: $epochs:literal, batch: $batch:literal, lr: $lr:literal, optimizer: $opt:literal, weight_decay: $wd:literal) => {
        &[
            $($own,)*
            $crate::engine::help::OptDoc { name: "epochs", ty: "int", default: $epochs, meaning: "passes over the training data" },
            $crate::engine::help::OptDoc { name: "batch", ty: "int", default: $batch, meaning: "training examples per step" },
            $crate::engine::help::OptDoc { name: "lr", ty: "float", default: $lr, meaning: "learning rate (the schedule's peak)" },
            $crate::engine::help::OptDoc { name: "optimizer", ty: "string", default: $opt, meaning: "sgd, adam (L2 weight decay) or adamw (decoupled weight decay), as torch.optim" },
            $crate::engine::help::OptDoc { name: "weight_decay", ty: "float", default: $wd, meaning: "weight decay" },
            $crate::engine::train::MOMENTUM,
            $crate::engine::train::DAMPENING,
            $crate::engine::train::NESTEROV,
            $crate::engine::train::BETAS,
            $crate::engine::train::EPS,
            $crate::engine::train::SCHEDULE,
            $crate::engine::train::STEP_SIZE,
            $crate::engine::train::GAMMA,
            $crate::engine::train::WARMUP_STEPS,
            $crate::engine::train::MIN_LR,
            $crate::engine::train::CLIP_GRAD_NORM,
            $crate::engine::train::ACCUMULATE,
            $crate::engine::train::AMP,
            $crate::engine::train::SEED,
            $crate::engine::train::SHUFFLE,
            $crate::engine::train::VAL_EVERY,
            $crate::engine::train::CHECKPOINT_EVERY,
            $crate::engine::train::CHECKPOINT_DIR,
            $crate::engine::train::RESUME,
            $crate::engine::train::MONITOR,
            $crate::engine::train::MODE,
            $crate::engine::train::VERBOSE,
            $crate::engine::train::PROGRESS,
        ]
    };
}

/// The help entry that documents the shared options once.
pub static TRAINING: FnDoc = FnDoc {
    name: "Training",
    domain: "models",
    signature: "train_resnet(images, labels, #{epochs, batch, lr, optimizer, schedule, clip_grad_norm, accumulate, checkpoint_every, resume, ...})",
    summary: "Options every training function takes (one trainer: torch.optim's SGD/Adam/AdamW, step and cosine-with-warm-up schedules, clipping, accumulation, bf16 autocast on CUDA, seeded shuffling, validation each epoch keeping the best epoch's weights, checkpoints and exact resume, Ctrl-C stops after the current step and keeps the best weights). Each function documents its defaults for epochs, batch, lr, optimizer and weight_decay. The model's .history is a map: metric name → one value per epoch (train_loss, val_loss, lr, ...), best_epoch, epochs and status (completed or interrupted); plot_history draws it.",
    options: crate::training_options!([], epochs: "10", batch: "32", lr: "0.001", optimizer: "adamw", weight_decay: "0.0"),
    example: "set_seed(0);\nlet x = rand([8, 3, 16, 16]);\nlet y = [0, 1, 0, 1, 0, 1, 0, 1];\nlet m = train_resnet(x, y, #{epochs: 2, batch: 4, optimizer: \"adamw\", lr: 0.001, schedule: \"cosine\", warmup_steps: 1, clip_grad_norm: 1.0, verbose: false});\nprint(m.history.lr);",
};

fn count(o: &Opts, op: &'static str, key: &str, min: i64) -> Result<usize> {
    let v = o.i64(key)?;
    if v < min {
        return Err(Error::BadOption {
            op,
            key: key.into(),
            expected: format!("an integer ≥ {min}"),
            got: v.to_string(),
        });
    }
    Ok(v as usize)
}

/// Reads the shared training options of a function documented with
/// [`training_options!`] into `defaults` (which supplies what scripts do not
/// set: the op name, the monitor, ...), then validates the result.
pub fn train_config_from(
    o: &Opts,
    op: &'static str,
    defaults: TrainConfig,
    session: &Session,
) -> Result<TrainConfig> {
    let mut c = defaults;
    c.op = op;
    c.epochs = count(o, op, "epochs", 1)?;
    c.batch = count(o, op, "batch", 1)?;
    let optimizer = match o.string("optimizer")?.as_str() {
        "sgd" => Optimizer::Sgd {
            momentum: o.f64("momentum")?,
            dampening: o.f64("dampening")?,
            nesterov: o.bool("nesterov")?,
        },
        kind @ ("adam" | "adamw") => {
            let betas = o.opt_f64_list("betas")?.unwrap_or_default();
            let [beta1, beta2] = betas[..] else {
                return Err(Error::BadOption {
                    op,
                    key: "betas".into(),
                    expected: "two numbers, e.g. [0.9, 0.999]".into(),
                    got: format!("{betas:?}"),
                });
            };
            let eps = o.f64("eps")?;
            if kind == "adam" {
                Optimizer::Adam { beta1, beta2, eps }
            } else {
                Optimizer::AdamW { beta1, beta2, eps }
            }
        }
        other => {
            return Err(Error::BadOption {
                op,
                key: "optimizer".into(),
                expected: "one of sgd, adam, adamw".into(),
                got: format!("\"{other}\""),
            })
        }
    };
    let schedule = match o.string("schedule")?.as_str() {
        "constant" => Schedule::Constant,
        "step" => Schedule::Step {
            step_size: count(o, op, "step_size", 1)?,
            gamma: o.f64("gamma")?,
        },
        "cosine" => Schedule::Cosine {
            warmup_steps: count(o, op, "warmup_steps", 0)?,
            min_lr: o.f64("min_lr")?,
        },
        other => {
            return Err(Error::BadOption {
                op,
                key: "schedule".into(),
                expected: "one of constant, step, cosine".into(),
                got: format!("\"{other}\""),
            })
        }
    };
    c.optim = OptimConfig {
        optimizer,
        lr: o.f64("lr")?,
        weight_decay: o.f64("weight_decay")?,
        schedule,
        clip_grad_norm: o.opt_f64("clip_grad_norm")?,
    };
    c.accumulate = count(o, op, "accumulate", 1)?;
    c.amp = o.bool("amp")?;
    c.seed = o.opt_i64("seed")?;
    c.shuffle = o.bool("shuffle")?;
    c.val_every = count(o, op, "val_every", 1)?;
    c.checkpoint_every = count(o, op, "checkpoint_every", 0)?;
    c.checkpoint_dir = Some(match o.opt_string("checkpoint_dir")? {
        Some(d) => session.output_path(&d),
        None => session.out_dir().join("checkpoints"),
    });
    c.resume = o
        .opt_string("resume")?
        .map(|p| -> PathBuf { session.output_path(&p) });
    if let Some(metric) = o.opt_string("monitor")? {
        let mode = match o.opt_string("mode")? {
            Some(m) => Mode::parse(op, &m)?,
            None => Mode::for_metric(&metric),
        };
        c.monitor = Some(Monitor::new(&metric, mode));
    } else if let Some(m) = o.opt_string("mode")? {
        let mode = Mode::parse(op, &m)?;
        if let Some(mon) = &mut c.monitor {
            mon.mode = mode;
            mon.then = None;
        }
    }
    c.verbose = o.bool("verbose")?;
    c.progress = o.bool("progress")?;
    c.validate()?;
    Ok(c)
}

/// A history as scripts see it: metric name → array of per-epoch values
/// (NaN where an epoch has none), plus best_epoch, epochs and status.
pub fn history_map(h: &History) -> Map {
    let mut m = Map::new();
    for (name, values) in &h.metrics {
        m.insert(
            name.as_str().into(),
            Dynamic::from_array(values.iter().map(|&x| Dynamic::from_float(x)).collect()),
        );
    }
    m.insert("best_epoch".into(), Dynamic::from_int(h.best_epoch as INT));
    m.insert("epochs".into(), Dynamic::from_int(h.epochs as INT));
    m.insert("status".into(), Dynamic::from(h.status.name().to_string()));
    m
}

pub fn register(_engine: &mut Engine, help: &mut HelpRegistry, _session: &Session) {
    help.add(&TRAINING);
}
