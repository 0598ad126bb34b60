//! The one training loop every network in voxlab goes through.
//!
//! A model supplies a [`Task`]: its parameter groups (each with its own
//! optimiser: a GAN's generator and discriminator), the tensors that make up
//! its state (saved in checkpoints, snapshotted for the best epoch), and a
//! step function that computes a loss for a batch of training indices and
//! hands it to [`StepContext::backward_step`]. [`fit`] owns everything else:
//! the epoch loop, seeded shuffling, gradient accumulation and clipping, the
//! learning-rate schedule, the optimiser update, bf16 autocast on CUDA,
//! validation with best-epoch weights, per-epoch history, checkpoints and
//! resume, progress display and Ctrl-C.
//!
//! The optimisers are written here on tensors (without gradients) with
//! torch.optim's update formulas, so that their state can be saved and a
//! resumed run continues exactly; `tests/fixtures/train/make_reference.py`
//! checks them against PyTorch to 1e-5.
//!
//! ```ignore
//! struct Mlp { vs: nn::VarStore, net: nn::Sequential, x: Tensor, y: Tensor }
//! impl Task for Mlp {
//!     fn n_train(&self) -> i64 { self.x.size()[0] }
//!     fn groups(&self) -> Vec<Group> { vec![Group::trainable("model", &self.vs)] }
//!     fn state(&self) -> Vec<(String, Tensor)> { state_of(&self.vs) }
//!     fn train_step(&mut self, idx: &[i64], ctx: &mut StepContext) -> Result<Metrics> {
//!         let i = Tensor::from_slice(idx);
//!         let loss = self.x.index_select(0, &i).apply_t(&self.net, true).mse_loss(&self.y.index_select(0, &i), Reduction::Mean);
//!         ctx.backward_step("model", &loss)?;
//!         Ok(Metrics::new().with("loss", loss.double_value(&[])))
//!     }
//! }
//! let history = fit(&mut task, &TrainConfig::new("train_mlp"))?;
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::random::SplitMix64;
use crate::tensor::{shape_text, tc};

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// The optimiser of a parameter group, with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Optimizer {
    /// torch.optim.SGD: L2 weight decay added to the gradient, then momentum
    /// (with dampening) and optionally Nesterov's correction.
    Sgd {
        momentum: f64,
        dampening: f64,
        nesterov: bool,
    },
    /// torch.optim.Adam: L2 weight decay added to the gradient.
    Adam { beta1: f64, beta2: f64, eps: f64 },
    /// torch.optim.AdamW: weight decay decoupled from the gradient.
    AdamW { beta1: f64, beta2: f64, eps: f64 },
}

impl Optimizer {
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adam { .. } => "adam",
            Optimizer::AdamW { .. } => "adamw",
        }
    }

    /// SGD with momentum 0.9 (dampening 0, no Nesterov).
    pub fn sgd(momentum: f64) -> Optimizer {
        Optimizer::Sgd {
            momentum,
            dampening: 0.0,
            nesterov: false,
        }
    }

    /// Adam with PyTorch's defaults (betas 0.9, 0.999; eps 1e-8).
    pub fn adam() -> Optimizer {
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// AdamW with PyTorch's defaults (betas 0.9, 0.999; eps 1e-8).
    pub fn adamw() -> Optimizer {
        Optimizer::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// How the learning rate changes during training.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// torch.optim.lr_scheduler.StepLR stepped once an epoch: the rate is
    /// multiplied by `gamma` every `step_size` epochs.
    Step {
        step_size: usize,
        gamma: f64,
    },
    /// torch.optim.lr_scheduler.MultiStepLR stepped once an epoch: the rate
    /// is multiplied by `gamma` once for every milestone already passed
    /// (epoch e, 1-based, runs at lr·gamma^#{m in milestones: m < e}).
    MultiStep {
        milestones: Vec<usize>,
        gamma: f64,
    },
    /// transformers' get_cosine_with_min_lr_schedule_with_warmup, per
    /// optimiser step s of S: lr·s/warmup during the warm-up, then
    /// min_lr + (lr − min_lr)·½(1 + cos(π·(s − warmup)/(S − warmup))).
    Cosine {
        warmup_steps: usize,
        min_lr: f64,
    },
}

impl Schedule {
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Step { .. } => "step",
            Schedule::MultiStep { .. } => "multistep",
            Schedule::Cosine { .. } => "cosine",
        }
    }

    /// The learning rate of optimiser step `step` (0-based) of `total`, in
    /// epoch `epoch` (1-based), for a base rate `lr`.
    pub fn lr_at(&self, lr: f64, step: usize, total: usize, epoch: usize) -> f64 {
        match *self {
            Schedule::Constant => lr,
            Schedule::Step { step_size, gamma } => {
                lr * gamma.powi((epoch.saturating_sub(1) / step_size.max(1)) as i32)
            }
            Schedule::MultiStep {
                ref milestones,
                gamma,
            } => lr * gamma.powi(milestones.iter().filter(|&&m| m < epoch).count() as i32),
            Schedule::Cosine {
                warmup_steps,
                min_lr,
            } => {
                if step < warmup_steps {
                    lr * step as f64 / warmup_steps.max(1) as f64
                } else {
                    let progress = (step - warmup_steps) as f64
                        / (total.saturating_sub(warmup_steps)).max(1) as f64;
                    let f = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                    min_lr + (lr - min_lr) * f
                }
            }
        }
    }
}

/// Optimiser, learning rate, schedule, weight decay and clipping of one
/// parameter group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimConfig {
    pub optimizer: Optimizer,
    pub lr: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// Rescale the group's gradients to at most this total 2-norm
    /// (torch.nn.utils.clip_grad_norm_).
    pub clip_grad_norm: Option<f64>,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            optimizer: Optimizer::adamw(),
            lr: 1e-3,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            clip_grad_norm: None,
        }
    }
}

/// Whether a monitored metric is better when smaller or larger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Min,
    Max,
}

impl Mode {
    pub fn parse(op: &'static str, text: &str) -> Result<Mode> {
        match text {
            "min" => Ok(Mode::Min),
            "max" => Ok(Mode::Max),
            other => Err(Error::BadOption {
                op,
                key: "mode".into(),
                expected: "\"min\" or \"max\"".into(),
                got: format!("\"{other}\""),
            }),
        }
    }

    /// "min" for losses and errors, "max" for everything else (accuracy, r, r2).
    pub fn for_metric(name: &str) -> Mode {
        if name.contains("loss") || name.contains("err") || name.contains("mse") {
            Mode::Min
        } else {
            Mode::Max
        }
    }

    /// Maps a value so that larger is always better.
    fn score(self, v: f64) -> f64 {
        match self {
            Mode::Min => -v,
            Mode::Max => v,
        }
    }
}

/// Which epoch's weights to keep: the best value of `metric` (a history
/// name such as "val_loss"), ties broken by `then`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Monitor {
    pub metric: String,
    pub mode: Mode,
    pub then: Option<(String, Mode)>,
}

impl Monitor {
    pub fn new(metric: &str, mode: Mode) -> Monitor {
        Monitor {
            metric: metric.into(),
            mode,
            then: None,
        }
    }
}

/// Everything the trainer is told. Build with [`TrainConfig::new`], change
/// fields, and [`fit`] validates it before the first step.
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    /// The script-facing function name, for messages.
    #[serde(skip)]
    pub op: &'static str,
    pub epochs: usize,
    /// Training examples per step.
    pub batch: usize,
    /// The optimiser of every group that does not bring its own.
    pub optim: OptimConfig,
    /// Steps whose gradients are summed (each loss divided by this) before
    /// one optimiser step; a last incomplete group in an epoch is stepped too.
    pub accumulate: usize,
    /// bf16 autocast of the step function on CUDA; ignored on the CPU (with a
    /// note when verbose).
    pub amp: bool,
    /// Seeds the shuffling (SplitMix64 of seed and epoch) and libtorch's
    /// generator at each epoch start (seed + epoch: dropout, augmentation).
    /// None draws one from libtorch's generator (so `set_seed` decides).
    pub seed: Option<i64>,
    /// Shuffle the training examples every epoch.
    pub shuffle: bool,
    /// Validate every N epochs (and after the last).
    pub val_every: usize,
    /// Write a checkpoint every N epochs (0: never).
    pub checkpoint_every: usize,
    pub checkpoint_dir: Option<PathBuf>,
    /// A checkpoint folder (`…/epoch-N`) or a checkpoint directory (its
    /// latest epoch) to continue from.
    pub resume: Option<PathBuf>,
    /// The metric that chooses the kept weights; None or a metric that never
    /// appears keeps the last epoch.
    pub monitor: Option<Monitor>,
    /// One line per epoch on stderr (a progress bar on a terminal).
    pub verbose: bool,
    /// The progress bar on terminals (when verbose).
    pub progress: bool,
}

impl TrainConfig {
    pub fn new(op: &'static str) -> TrainConfig {
        TrainConfig {
            op,
            epochs: 10,
            batch: 32,
            optim: OptimConfig::default(),
            accumulate: 1,
            amp: false,
            seed: None,
            shuffle: true,
            val_every: 1,
            checkpoint_every: 0,
            checkpoint_dir: None,
            resume: None,
            monitor: Some(Monitor::new("val_loss", Mode::Min)),
            verbose: false,
            progress: true,
        }
    }

    fn bad(&self, key: &str, expected: &str, got: impl std::fmt::Display) -> Error {
        Error::BadOption {
            op: self.op,
            key: key.into(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    /// Checks every option; errors name the function and the option.
    pub fn validate(&self) -> Result<()> {
        if self.epochs < 1 {
            return Err(self.bad("epochs", "an integer ≥ 1", self.epochs));
        }
        if self.batch < 1 {
            return Err(self.bad("batch", "an integer ≥ 1", self.batch));
        }
        if self.accumulate < 1 {
            return Err(self.bad("accumulate", "an integer ≥ 1", self.accumulate));
        }
        if self.val_every < 1 {
            return Err(self.bad("val_every", "an integer ≥ 1", self.val_every));
        }
        if self.checkpoint_every > 0 && self.checkpoint_dir.is_none() {
            return Err(self.bad(
                "checkpoint_dir",
                "a folder when checkpoint_every > 0",
                "none",
            ));
        }
        self.validate_optim(&self.optim)
    }

    /// Checks one group's optimiser settings.
    pub fn validate_optim(&self, o: &OptimConfig) -> Result<()> {
        let positive = |key: &str, v: f64| -> Result<()> {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(self.bad(key, "a positive number", v))
            }
        };
        let non_negative = |key: &str, v: f64| -> Result<()> {
            if v >= 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(self.bad(key, "a number ≥ 0", v))
            }
        };
        positive("lr", o.lr)?;
        non_negative("weight_decay", o.weight_decay)?;
        if let Some(c) = o.clip_grad_norm {
            positive("clip_grad_norm", c)?;
        }
        match o.optimizer {
            Optimizer::Sgd {
                momentum,
                dampening,
                nesterov,
            } => {
                non_negative("momentum", momentum)?;
                non_negative("dampening", dampening)?;
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err(self.bad(
                        "nesterov",
                        "momentum > 0 and dampening 0",
                        format!("momentum {momentum}, dampening {dampening}"),
                    ));
                }
            }
            Optimizer::Adam { beta1, beta2, eps } | Optimizer::AdamW { beta1, beta2, eps } => {
                for b in [beta1, beta2] {
                    if !(0.0..1.0).contains(&b) {
                        return Err(self.bad(
                            "betas",
                            "two numbers in [0, 1)",
                            format!("[{beta1}, {beta2}]"),
                        ));
                    }
                }
                positive("eps", eps)?;
            }
        }
        match &o.schedule {
            Schedule::Constant => {}
            Schedule::MultiStep { milestones, gamma } => {
                if milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(self.bad(
                        "milestones",
                        "increasing epochs",
                        format!("{milestones:?}"),
                    ));
                }
                positive("gamma", *gamma)?;
            }
            Schedule::Step { step_size, gamma } => {
                if *step_size < 1 {
                    return Err(self.bad("step_size", "an integer ≥ 1 (epochs)", step_size));
                }
                positive("gamma", *gamma)?;
            }
            Schedule::Cosine { min_lr, .. } => {
                let min_lr = *min_lr;
                non_negative("min_lr", min_lr)?;
                if min_lr > o.lr {
                    return Err(self.bad("min_lr", &format!("at most lr ({})", o.lr), min_lr));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// What a task supplies
// ---------------------------------------------------------------------------

/// Named scalar results of a step or a validation pass ("loss", "acc").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics(pub Vec<(String, f64)>);

impl Metrics {
    pub fn new() -> Metrics {
        Metrics(Vec::new())
    }

    pub fn with(mut self, name: &str, value: f64) -> Metrics {
        self.0.push((name.to_string(), value));
        self
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Parameters trained by one optimiser.
pub struct Group {
    pub name: String,
    /// (name, tensor) pairs; the tensors require gradients.
    pub params: Vec<(String, Tensor)>,
    /// This group's optimiser; None takes [`TrainConfig::optim`].
    pub optim: Option<OptimConfig>,
}

impl Group {
    pub fn new(name: &str, params: Vec<(String, Tensor)>) -> Group {
        Group {
            name: name.into(),
            params,
            optim: None,
        }
    }

    /// The trainable variables of a VarStore (those requiring gradients),
    /// sorted by name.
    pub fn trainable(name: &str, vs: &tch::nn::VarStore) -> Group {
        let params = state_of(vs)
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        Group::new(name, params)
    }

    pub fn with_optim(mut self, optim: OptimConfig) -> Group {
        self.optim = Some(optim);
        self
    }
}

/// Every variable of a VarStore (parameters and buffers), sorted by name.
pub fn state_of(vs: &tch::nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A model being trained.
pub trait Task {
    /// Number of training examples; steps get batches of indices into 0..n.
    fn n_train(&self) -> i64;
    /// Parameter groups, each with its own optimiser.
    fn groups(&self) -> Vec<Group>;
    /// Every tensor of the model by a unique name (parameters and buffers):
    /// checkpointed, snapshotted for the best epoch, restored on resume.
    fn state(&self) -> Vec<(String, Tensor)>;
    /// One step on a batch of training indices: compute the loss(es), call
    /// `ctx.backward_step(group, &loss)` for each group, return metrics
    /// (averaged over the epoch weighted by batch size, as "train_<name>").
    fn train_step(&mut self, batch: &[i64], ctx: &mut StepContext) -> Result<Metrics>;
    /// Metrics on held-out data, recorded as "val_<name>"; None when there is
    /// nothing to validate on.
    fn validate(&mut self) -> Result<Option<Metrics>> {
        Ok(None)
    }
}

/// A task from closures: a loss for a batch, optionally validation metrics.
pub struct LossTask<'a, L, V>
where
    L: FnMut(&[i64]) -> Result<Tensor>,
    V: FnMut() -> Result<Option<Metrics>>,
{
    pub vs: &'a tch::nn::VarStore,
    pub n_train: i64,
    pub loss: L,
    pub validate: V,
}

impl<L, V> Task for LossTask<'_, L, V>
where
    L: FnMut(&[i64]) -> Result<Tensor>,
    V: FnMut() -> Result<Option<Metrics>>,
{
    fn n_train(&self) -> i64 {
        self.n_train
    }
    fn groups(&self) -> Vec<Group> {
        vec![Group::trainable("model", self.vs)]
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        state_of(self.vs)
    }
    fn train_step(&mut self, batch: &[i64], ctx: &mut StepContext) -> Result<Metrics> {
        let loss = (self.loss)(batch)?;
        ctx.backward_step("model", &loss)?;
        Ok(Metrics::new().with("loss", ctx.value(&loss)?))
    }
    fn validate(&mut self) -> Result<Option<Metrics>> {
        (self.validate)()
    }
}

// ---------------------------------------------------------------------------
// Optimiser state and the step context
// ---------------------------------------------------------------------------

/// Per-parameter optimiser state.
enum ParamState {
    Sgd { momentum_buffer: Option<Tensor> },
    Adam { exp_avg: Tensor, exp_avg_sq: Tensor },
}

struct GroupState {
    name: String,
    params: Vec<(String, Tensor)>,
    optim: OptimConfig,
    /// Summed gradients of the current accumulation window.
    grads: Vec<Option<Tensor>>,
    state: Vec<ParamState>,
    /// Optimiser steps taken.
    steps: usize,
    /// The learning rate of the last step.
    last_lr: f64,
}

impl GroupState {
    fn new(op: &'static str, g: Group, optim: OptimConfig) -> Result<GroupState> {
        let state = g
            .params
            .iter()
            .map(|(_, p)| {
                Ok(match optim.optimizer {
                    Optimizer::Sgd { .. } => ParamState::Sgd {
                        momentum_buffer: None,
                    },
                    Optimizer::Adam { .. } | Optimizer::AdamW { .. } => ParamState::Adam {
                        exp_avg: tc(op, p.f_zeros_like())?,
                        exp_avg_sq: tc(op, p.f_zeros_like())?,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GroupState {
            grads: (0..g.params.len()).map(|_| None).collect(),
            name: g.name,
            params: g.params,
            last_lr: optim.lr,
            optim,
            state,
            steps: 0,
        })
    }

    /// Clips, then applies one optimiser update with learning rate `lr`, then
    /// clears the gradients.
    fn step(&mut self, op: &'static str, lr: f64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        if let Some(max_norm) = self.optim.clip_grad_norm {
            let norms = self
                .grads
                .iter()
                .flatten()
                .map(|g| tc(op, g.f_norm()))
                .collect::<Result<Vec<_>>>()?;
            if !norms.is_empty() {
                let total = tc(op, tc(op, Tensor::f_stack(&norms, 0))?.f_norm())?;
                let coef = tc(op, tc(op, total.f_add_scalar(1e-6))?.f_reciprocal())?;
                let coef = tc(op, tc(op, coef.f_mul_scalar(max_norm))?.f_clamp_max(1.0))?;
                for g in self.grads.iter_mut().flatten() {
                    let _ = tc(op, g.f_mul_(&coef))?;
                }
            }
        }
        self.steps += 1;
        let t = self.steps as i32;
        let wd = self.optim.weight_decay;
        for ((i, (_, p)), state) in self.params.iter().enumerate().zip(self.state.iter_mut()) {
            let Some(grad) = self.grads[i].take() else {
                continue;
            };
            let mut p = p.shallow_clone();
            match (&self.optim.optimizer, state) {
                (
                    Optimizer::Sgd {
                        momentum,
                        dampening,
                        nesterov,
                    },
                    ParamState::Sgd { momentum_buffer },
                ) => {
                    let mut g = if wd != 0.0 {
                        tc(op, grad.f_add(&tc(op, p.f_mul_scalar(wd))?))?
                    } else {
                        grad
                    };
                    if *momentum != 0.0 {
                        let buf = match momentum_buffer.take() {
                            None => tc(op, g.f_detach_copy())?,
                            Some(mut b) => {
                                let _ = tc(op, b.f_mul_scalar_(*momentum))?;
                                let _ =
                                    tc(op, b.f_add_(&tc(op, g.f_mul_scalar(1.0 - dampening))?))?;
                                b
                            }
                        };
                        g = if *nesterov {
                            tc(op, g.f_add(&tc(op, buf.f_mul_scalar(*momentum))?))?
                        } else {
                            buf.shallow_clone()
                        };
                        *momentum_buffer = Some(buf);
                    }
                    let _ = tc(op, p.f_add_(&tc(op, g.f_mul_scalar(-lr))?))?;
                }
                (
                    Optimizer::Adam { beta1, beta2, eps } | Optimizer::AdamW { beta1, beta2, eps },
                    ParamState::Adam {
                        exp_avg,
                        exp_avg_sq,
                    },
                ) => {
                    let decoupled = matches!(self.optim.optimizer, Optimizer::AdamW { .. });
                    let g = if wd != 0.0 && !decoupled {
                        tc(op, grad.f_add(&tc(op, p.f_mul_scalar(wd))?))?
                    } else {
                        grad
                    };
                    if wd != 0.0 && decoupled {
                        let _ = tc(op, p.f_mul_scalar_(1.0 - lr * wd))?;
                    }
                    let _ = tc(op, exp_avg.f_lerp_(&g, 1.0 - beta1))?;
                    // torch.optim.Adam's in-place sequence (addcmul_, addcdiv_
                    // with the scalar folded into the first factor, which is
                    // how the fused kernels order the product too).
                    let _ = tc(op, exp_avg_sq.f_mul_scalar_(*beta2))?;
                    let _ = tc(
                        op,
                        exp_avg_sq.f_addcmul_(&tc(op, g.f_mul_scalar(1.0 - beta2))?, &g),
                    )?;
                    let bc1 = 1.0 - beta1.powi(t);
                    let bc2 = 1.0 - beta2.powi(t);
                    let step_size = lr / bc1;
                    let mut denom = tc(op, exp_avg_sq.f_sqrt())?;
                    let _ = tc(op, denom.f_div_scalar_(bc2.sqrt()))?;
                    let _ = tc(op, denom.f_add_scalar_(*eps))?;
                    let _ = tc(
                        op,
                        p.f_addcdiv_(&tc(op, exp_avg.f_mul_scalar(-step_size))?, &denom),
                    )?;
                }
                _ => return Err(Error::invalid(op, "optimiser state of the wrong kind")),
            }
        }
        self.last_lr = lr;
        Ok(())
    }
}

/// What a step function uses to train: backward passes that accumulate,
/// clip and step the right parameter group at the right time.
pub struct StepContext<'a> {
    op: &'static str,
    groups: &'a mut [GroupState],
    accumulate: usize,
    /// Whether this step ends an accumulation window (or the epoch).
    boundary: bool,
    epoch: usize,
    total_steps: usize,
    train: bool,
}

impl StepContext<'_> {
    /// The epoch being trained (1-based).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Always true inside a training step (for `forward_t(x, ctx.train())`).
    pub fn train(&self) -> bool {
        self.train
    }

    /// A scalar loss as a number (for metrics).
    pub fn value(&self, t: &Tensor) -> Result<f64> {
        tc(self.op, t.f_double_value(&[]))
    }

    /// The learning rate the group's next step uses.
    pub fn lr(&self, group: &str) -> Result<f64> {
        let g = self.group(group)?;
        Ok(g.optim
            .schedule
            .lr_at(g.optim.lr, g.steps, self.total_steps, self.epoch))
    }

    fn group_index(&self, group: &str) -> Result<usize> {
        self.groups
            .iter()
            .position(|g| g.name == group)
            .ok_or_else(|| {
                Error::invalid(
                    self.op,
                    format!(
                        "no parameter group \"{group}\" (groups: {})",
                        self.groups
                            .iter()
                            .map(|g| g.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }

    fn group(&self, group: &str) -> Result<&GroupState> {
        Ok(&self.groups[self.group_index(group)?])
    }

    /// Back-propagates `loss` (divided by `accumulate`) into the gradients of
    /// `group` only, and at the end of an accumulation window clips them,
    /// steps the group's optimiser with the scheduled learning rate and
    /// clears them. Other groups' gradients are untouched, so a GAN's
    /// discriminator loss does not leak into its generator.
    pub fn backward_step(&mut self, group: &str, loss: &Tensor) -> Result<()> {
        self.backward_step_with(group, loss, false)
    }

    /// As [`StepContext::backward_step`], keeping the graph for another
    /// backward pass through the same forward computation.
    pub fn backward_step_with(
        &mut self,
        group: &str,
        loss: &Tensor,
        keep_graph: bool,
    ) -> Result<()> {
        let op = self.op;
        let gi = self.group_index(group)?;
        if loss.numel() != 1 {
            return Err(Error::invalid(
                op,
                format!(
                    "the loss must be a scalar, got shape {}",
                    shape_text(&loss.size())
                ),
            ));
        }
        let scaled = if self.accumulate > 1 {
            tc(op, loss.f_div_scalar(self.accumulate as f64))?
        } else {
            loss.shallow_clone()
        };
        let scaled = tc(op, scaled.f_to_kind(Kind::Float))?;
        let g = &mut self.groups[gi];
        let inputs: Vec<&Tensor> = g.params.iter().map(|(_, p)| p).collect();
        if !inputs.is_empty() {
            let grads = tc(
                op,
                Tensor::f_run_backward(&[&scaled], &inputs, keep_graph, false),
            )?;
            tch::no_grad(|| -> Result<()> {
                for ((slot, grad), (_, param)) in g.grads.iter_mut().zip(grads).zip(&g.params) {
                    if !grad.defined() {
                        continue;
                    }
                    // As PyTorch's AccumulateGrad does for .grad: a gradient
                    // laid out unlike its parameter (a transposed view when
                    // the loss also reads the weight through a transpose, as
                    // a group lasso on a dense layer's weights does) is
                    // copied into the parameter's layout once, rather than
                    // read with strides by every optimiser operation.
                    let grad = if grad.stride() != param.stride() && param.is_contiguous() {
                        tc(op, grad.f_contiguous())?
                    } else {
                        grad
                    };
                    *slot = Some(match slot.take() {
                        None => grad,
                        Some(mut acc) => {
                            let _ = tc(op, acc.f_add_(&grad))?;
                            acc
                        }
                    });
                }
                Ok(())
            })?;
        }
        if self.boundary {
            let o = &g.optim;
            let lr = o
                .schedule
                .lr_at(o.lr, g.steps, self.total_steps, self.epoch);
            g.step(op, lr)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Completed,
    Interrupted,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Interrupted => "interrupted",
        }
    }
}

/// Per-epoch metrics of a training run: "train_<m>" (step metrics averaged
/// over the epoch), "val_<m>" (NaN in epochs without validation), "lr" (the
/// first group's rate at its last step; "lr_<group>" for the others).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub metrics: Vec<(String, Vec<f64>)>,
    /// Epochs completed.
    pub epochs: usize,
    /// The epoch (1-based) whose weights the model holds at the end.
    pub best_epoch: usize,
    /// The monitored value at the best epoch (None: the last epoch was kept).
    pub best_value: Option<f64>,
    pub status: Status,
}

impl History {
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of `name` at epoch `epoch` (1-based), NaN when absent.
    pub fn at(&self, name: &str, epoch: usize) -> f64 {
        self.get(name)
            .and_then(|v| v.get(epoch.wrapping_sub(1)).copied())
            .unwrap_or(f64::NAN)
    }

    /// Appends one epoch; metrics new this epoch get NaN for earlier ones and
    /// metrics missing this epoch get NaN.
    fn push(&mut self, values: &[(String, f64)]) {
        for (name, _) in values {
            if !self.metrics.iter().any(|(n, _)| n == name) {
                self.metrics
                    .push((name.clone(), vec![f64::NAN; self.epochs]));
            }
        }
        for (name, series) in &mut self.metrics {
            series.push(
                values
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(f64::NAN, |(_, v)| *v),
            );
        }
        self.epochs += 1;
    }

    fn to_json(&self) -> Value {
        let num = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
        let metrics: serde_json::Map<String, Value> = self
            .metrics
            .iter()
            .map(|(n, v)| (n.clone(), Value::Array(v.iter().map(|&x| num(x)).collect())))
            .collect();
        json!({
            "metrics": metrics,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
        })
    }

    fn from_json(v: &Value) -> Option<History> {
        let metrics = v
            .get("metrics")?
            .as_object()?
            .iter()
            .map(|(n, a)| {
                Some((
                    n.clone(),
                    a.as_array()?
                        .iter()
                        .map(|x| x.as_f64().unwrap_or(f64::NAN))
                        .collect(),
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(History {
            metrics,
            epochs: v.get("epochs")?.as_u64()? as usize,
            best_epoch: v.get("best_epoch")?.as_u64()? as usize,
            best_value: v.get("best_value").and_then(Value::as_f64),
            status: Status::Completed,
        })
    }
}

// ---------------------------------------------------------------------------
// Ctrl-C
// ---------------------------------------------------------------------------

// Signals arrive through crate::cancel, the one stop mechanism; a training
// loop takes an interrupt over (stops after its current step, keeps its best
// weights, and the script goes on).

/// Whether a signal interrupted this run (run.json's status becomes
/// "interrupted"; later training calls stop at once).
pub fn interrupted() -> bool {
    crate::cancel::interrupt_signal().is_some()
}

/// Forgets an interrupt (the REPL, before the next input).
pub fn clear_interrupt() {
    crate::cancel::clear_interrupt();
}

/// Marks the run interrupted, as Ctrl-C does (tests).
pub fn request_interrupt() {
    crate::cancel::request_interrupt();
}

// ---------------------------------------------------------------------------
// bf16 autocast on CUDA
// ---------------------------------------------------------------------------

mod autocast {
    // libtorch's at::autocast::set_autocast_dtype(DeviceType, ScalarType),
    // both one-byte enums passed by value; tch exposes only the on/off switch
    // (float16 by default), so the dtype is set through the C++ symbol.
    extern "C" {
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        fn set_autocast_dtype(device_type: i8, dtype: i8);
    }
    const CUDA: i8 = 1;
    const BFLOAT16: i8 = 15;

    pub fn bf16_on_cuda() {
        // SAFETY: a plain setter of libtorch's autocast state.
        unsafe { set_autocast_dtype(CUDA, BFLOAT16) }
    }
}

// ---------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------

const STATE_FORMAT: u64 = 1;

fn cpu_named(op: &'static str, tensors: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
    tensors
        .iter()
        .map(|(n, t)| {
            let t = tc(op, t.f_detach())?;
            let t = tc(op, t.f_to_device(tch::Device::Cpu))?;
            Ok((n.clone(), tc(op, t.f_contiguous())?))
        })
        .collect()
}

fn write_tensors(op: &'static str, tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    crate::io::safetensors::write(op, path, &cpu_named(op, tensors)?, None)
}

fn read_tensors(op: &'static str, path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.exists() {
        return Err(Error::format(op, path, "missing from the checkpoint"));
    }
    crate::io::safetensors::File::open(op, path)?.all(op)
}

/// glibc's allocator tuned for a training loop while one runs: every step
/// frees and reallocates the same activation buffers (megabytes each), and
/// with glibc's defaults those go back to the kernel and fault in again,
/// page by page. Measured on the UNet-block benchmark (bench/
/// train_throughput.py, one thread): 10.3–10.9 s of CPU per 10 steps with
/// the defaults, 9.6–9.8 s tuned, PyTorch 9.9 s. Afterwards the thresholds
/// return to glibc's initial values and the cached memory is released.
struct MallocForTraining;

impl MallocForTraining {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn install() -> MallocForTraining {
        // SAFETY: mallopt only changes allocator parameters.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
        MallocForTraining
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn install() -> MallocForTraining {
        MallocForTraining
    }
}

impl Drop for MallocForTraining {
    fn drop(&mut self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: as above; malloc_trim returns free memory to the kernel.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
            libc::malloc_trim(0);
        }
    }
}

/// The best epoch's weights, kept while training.
struct Best {
    epoch: usize,
    score: (f64, f64),
    value: f64,
    snapshot: Vec<(String, Tensor)>,
}

fn snapshot(op: &'static str, state: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
    tch::no_grad(|| {
        state
            .iter()
            .map(|(n, t)| Ok((n.clone(), tc(op, t.f_detach_copy())?)))
            .collect()
    })
}

/// Copies `from` into the model's tensors (names must match; checked before).
fn restore(op: &'static str, state: &[(String, Tensor)], from: &[(String, Tensor)]) -> Result<()> {
    tch::no_grad(|| {
        for (name, t) in state {
            if let Some((_, v)) = from.iter().find(|(n, _)| n == name) {
                let mut t = t.shallow_clone();
                let v = tc(op, v.f_to_kind(t.kind()))?;
                tc(op, t.f_copy_(&v))?;
            }
        }
        Ok(())
    })
}

/// Checks that a checkpoint's tensors are the model's: the same names with
/// the same shapes; the message names the first offenders.
fn check_fits(
    op: &'static str,
    path: &Path,
    model: &[(String, Tensor)],
    file: &[(String, Tensor)],
) -> Result<()> {
    // Sorted: safetensors files come back in no particular order.
    let mut model: Vec<&(String, Tensor)> = model.iter().collect();
    model.sort_by(|a, b| a.0.cmp(&b.0));
    let mut missing: Vec<&str> = model
        .iter()
        .filter(|(n, _)| !file.iter().any(|(f, _)| f == n))
        .map(|(n, _)| n.as_str())
        .collect();
    missing.sort();
    let mut unexpected: Vec<&str> = file
        .iter()
        .filter(|(f, _)| !model.iter().any(|(n, _)| n == f))
        .map(|(n, _)| n.as_str())
        .collect();
    unexpected.sort();
    let differ: Vec<String> = model
        .iter()
        .filter_map(|(n, t)| {
            let (_, f) = file.iter().find(|(f, _)| f == n)?;
            (f.size() != t.size()).then(|| {
                format!(
                    "{n} is {} in the checkpoint but {} in the model",
                    shape_text(&f.size()),
                    shape_text(&t.size())
                )
            })
        })
        .collect();
    if missing.is_empty() && unexpected.is_empty() && differ.is_empty() {
        return Ok(());
    }
    let first = |v: &[&str]| {
        let mut s = v.iter().take(3).copied().collect::<Vec<_>>().join(", ");
        if v.len() > 3 {
            s.push_str(&format!(" and {} more", v.len() - 3));
        }
        s
    };
    let mut parts = Vec::new();
    if !differ.is_empty() {
        parts.push(
            differ
                .iter()
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
    if !missing.is_empty() {
        parts.push(format!("the checkpoint lacks {}", first(&missing)));
    }
    if !unexpected.is_empty() {
        parts.push(format!("the model has no {}", first(&unexpected)));
    }
    Err(Error::format(
        op,
        path,
        format!(
            "option 'resume': the checkpoint is of a different model: {}",
            parts.join("; ")
        ),
    ))
}

/// The checkpoint folder of `path`: itself when it holds trainer_state.json,
/// else its `epoch-N` subfolder with the largest N.
pub fn find_checkpoint(op: &'static str, path: &Path) -> Result<PathBuf> {
    if path.join("trainer_state.json").exists() {
        return Ok(path.to_path_buf());
    }
    if !path.exists() {
        return Err(Error::io(
            op,
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "option 'resume': no such checkpoint",
            ),
        ));
    }
    crate::sandbox::check_read(op, path.as_ref())?;
    let entries = std::fs::read_dir(path).map_err(|e| Error::io(op, path, e))?;
    let latest = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n: usize = name.strip_prefix("epoch-")?.parse().ok()?;
            e.path()
                .join("trainer_state.json")
                .exists()
                .then_some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n);
    latest.map(|(_, p)| p).ok_or_else(|| {
        Error::format(
            op,
            path,
            "option 'resume': not a checkpoint (no trainer_state.json, no epoch-N folders)",
        )
    })
}

struct Progress {
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
}

impl Progress {
    fn new(cfg: &TrainConfig, total: u64) -> Progress {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        let bar = (cfg.verbose && cfg.progress && terminal).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix} {msg} [{bar:25}] {pos}/{len} {rate} ETA {eta}",
            ) {
                let style = style.with_key(
                    "rate",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.1} it/s", s.per_sec());
                    },
                );
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(cfg.op);
            bar
        });
        Progress {
            lines: cfg.verbose,
            bar,
        }
    }

    fn step(&self, msg: impl FnOnce() -> String) {
        if let Some(b) = &self.bar {
            b.set_message(msg());
            b.inc(1);
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None if self.lines => {
                eprintln!("{text}");
                let _ = std::io::stderr().flush();
            }
            None => {}
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn epoch_line(
    op: &str,
    epoch: usize,
    epochs: usize,
    values: &[(String, f64)],
    rate: f64,
) -> String {
    let mut s = format!("{op}: epoch {epoch}/{epochs}");
    for (name, v) in values {
        let shown = name.strip_prefix("train_").unwrap_or(name);
        if shown.starts_with("lr") {
            s.push_str(&format!(" {shown} {v:.3e}"));
        } else if shown.contains("acc") {
            s.push_str(&format!(" {shown} {v:.3}"));
        } else {
            s.push_str(&format!(" {shown} {v:.4}"));
        }
    }
    s.push_str(&format!(" {rate:.1} it/s"));
    s
}

/// The order of the training examples in `epoch`: a Fisher–Yates shuffle
/// driven by SplitMix64 seeded from the seed and the epoch.
pub fn epoch_order(n: i64, seed: i64, epoch: usize, shuffle: bool) -> Vec<i64> {
    let mut order: Vec<i64> = (0..n).collect();
    if shuffle {
        let mut rng =
            SplitMix64::new((seed as u64) ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
    }
    order
}

// ---------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------

struct Trainer<'c> {
    cfg: &'c TrainConfig,
    groups: Vec<GroupState>,
    history: History,
    best: Option<Best>,
    seed: i64,
    start_epoch: usize,
}

impl Trainer<'_> {
    fn state_json(&self, epoch: usize) -> Value {
        json!({
            "format": STATE_FORMAT,
            "op": self.cfg.op,
            "epoch": epoch,
            "seed": self.seed,
            "groups": self.groups.iter().map(|g| json!({
                "name": g.name,
                "optimizer": g.optim.optimizer.name(),
                "steps": g.steps,
                "last_lr": g.last_lr,
            })).collect::<Vec<_>>(),
            "history": self.history.to_json(),
            "best": self.best.as_ref().map(|b| json!({
                "epoch": b.epoch,
                "score": [b.score.0, b.score.1],
                "value": b.value,
            })),
            "config": serde_json::to_value(self.cfg).unwrap_or(Value::Null),
        })
    }

    fn optimizer_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for g in &self.groups {
            for ((pname, _), st) in g.params.iter().zip(&g.state) {
                match st {
                    ParamState::Sgd {
                        momentum_buffer: Some(b),
                    } => out.push((
                        format!("{}/{pname}/momentum_buffer", g.name),
                        b.shallow_clone(),
                    )),
                    ParamState::Sgd {
                        momentum_buffer: None,
                    } => {}
                    ParamState::Adam {
                        exp_avg,
                        exp_avg_sq,
                    } => {
                        out.push((
                            format!("{}/{pname}/exp_avg", g.name),
                            exp_avg.shallow_clone(),
                        ));
                        out.push((
                            format!("{}/{pname}/exp_avg_sq", g.name),
                            exp_avg_sq.shallow_clone(),
                        ));
                    }
                }
            }
        }
        out
    }

    fn save_checkpoint(&self, task: &dyn Task, epoch: usize) -> Result<PathBuf> {
        let op = self.cfg.op;
        let Some(dir) = &self.cfg.checkpoint_dir else {
            return Err(Error::invalid(op, "option 'checkpoint_dir' is not set"));
        };
        let folder = dir.join(format!("epoch-{epoch}"));
        crate::sandbox::check_write(op, folder.as_ref())?;
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(op, &folder, e))?;
        write_tensors(op, &task.state(), &folder.join("model.safetensors"))?;
        write_tensors(
            op,
            &self.optimizer_tensors(),
            &folder.join("optimizer.safetensors"),
        )?;
        if let Some(b) = &self.best {
            write_tensors(op, &b.snapshot, &folder.join("best.safetensors"))?;
        }
        let text = serde_json::to_string_pretty(&self.state_json(epoch))
            .map_err(|e| Error::invalid(op, e.to_string()))?;
        crate::io::write_atomic(op, &folder.join("trainer_state.json"), text.as_bytes())?;
        Ok(folder)
    }

    fn resume(&mut self, task: &dyn Task, path: &Path) -> Result<()> {
        let op = self.cfg.op;
        let folder = find_checkpoint(op, path)?;
        let state_path = folder.join("trainer_state.json");
        let text = crate::io::read_text(op, &state_path)?;
        let bad = |msg: &str| Error::format(op, &state_path, format!("option 'resume': {msg}"));
        let st: Value = serde_json::from_str(&text).map_err(|e| bad(&format!("not JSON: {e}")))?;
        if st.get("format").and_then(Value::as_u64) != Some(STATE_FORMAT) {
            return Err(bad("unknown trainer_state format"));
        }
        let saved_op = st.get("op").and_then(Value::as_str).unwrap_or("");
        if saved_op != op {
            return Err(bad(&format!(
                "the checkpoint was written by {saved_op}, not {op}"
            )));
        }
        let epoch = st
            .get("epoch")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no epoch"))? as usize;
        let seed = st
            .get("seed")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("no seed"))?;
        match self.cfg.seed {
            Some(s) if s != seed => {
                return Err(Error::BadOption {
                    op,
                    key: "seed".into(),
                    expected: format!("the checkpoint's seed {seed} (or none) when resuming"),
                    got: s.to_string(),
                })
            }
            _ => self.seed = seed,
        }
        if epoch >= self.cfg.epochs {
            return Err(Error::BadOption {
                op,
                key: "epochs".into(),
                expected: format!("more than the {epoch} epochs the checkpoint has done"),
                got: self.cfg.epochs.to_string(),
            });
        }
        let model_state = task.state();
        let weights_path = folder.join("model.safetensors");
        let weights = read_tensors(op, &weights_path)?;
        check_fits(op, &weights_path, &model_state, &weights)?;
        // Optimiser state.
        let groups = st
            .get("groups")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no groups"))?;
        let names: Vec<&str> = groups
            .iter()
            .filter_map(|g| g.get("name").and_then(Value::as_str))
            .collect();
        let ours: Vec<&str> = self.groups.iter().map(|g| g.name.as_str()).collect();
        if names != ours {
            return Err(bad(&format!(
                "parameter groups {names:?} in the checkpoint, {ours:?} here"
            )));
        }
        let opt_path = folder.join("optimizer.safetensors");
        let opt = read_tensors(op, &opt_path)?;
        for (g, saved) in self.groups.iter_mut().zip(groups) {
            let kind = saved.get("optimizer").and_then(Value::as_str).unwrap_or("");
            if kind != g.optim.optimizer.name() {
                return Err(Error::BadOption {
                    op,
                    key: "optimizer".into(),
                    expected: format!("\"{kind}\" as in the checkpoint"),
                    got: format!("\"{}\"", g.optim.optimizer.name()),
                });
            }
            g.steps = saved.get("steps").and_then(Value::as_u64).unwrap_or(0) as usize;
            g.last_lr = saved
                .get("last_lr")
                .and_then(Value::as_f64)
                .unwrap_or(g.optim.lr);
            let find = |key: String| opt.iter().find(|(n, _)| *n == key).map(|(_, t)| t);
            for ((pname, p), st) in g.params.iter().zip(g.state.iter_mut()) {
                let load = |t: &Tensor| -> Result<Tensor> {
                    if t.size() != p.size() {
                        return Err(Error::format(
                            op,
                            &opt_path,
                            format!(
                                "option 'resume': optimiser state of {pname} has the wrong shape"
                            ),
                        ));
                    }
                    tc(op, tc(op, t.f_to_kind(p.kind()))?.f_to_device(p.device()))
                };
                match st {
                    ParamState::Sgd { momentum_buffer } => {
                        *momentum_buffer = match find(format!("{}/{pname}/momentum_buffer", g.name))
                        {
                            Some(t) => Some(load(t)?),
                            None => None,
                        };
                    }
                    ParamState::Adam {
                        exp_avg,
                        exp_avg_sq,
                    } => {
                        let a = find(format!("{}/{pname}/exp_avg", g.name));
                        let b = find(format!("{}/{pname}/exp_avg_sq", g.name));
                        match (a, b) {
                            (Some(a), Some(b)) => {
                                *exp_avg = load(a)?;
                                *exp_avg_sq = load(b)?;
                            }
                            _ => {
                                return Err(Error::format(
                                    op,
                                    &opt_path,
                                    format!("option 'resume': no Adam state for {pname}"),
                                ))
                            }
                        }
                    }
                }
            }
        }
        let history = st
            .get("history")
            .and_then(History::from_json)
            .ok_or_else(|| bad("no readable history"))?;
        self.best = match st.get("best").filter(|b| !b.is_null()) {
            Some(b) => {
                let best_path = folder.join("best.safetensors");
                let snap = read_tensors(op, &best_path)?;
                check_fits(op, &best_path, &model_state, &snap)?;
                let score = b.get("score").and_then(Value::as_array);
                let s = |i: usize| {
                    score
                        .and_then(|a| a.get(i))
                        .and_then(Value::as_f64)
                        .unwrap_or(f64::NEG_INFINITY)
                };
                Some(Best {
                    epoch: b.get("epoch").and_then(Value::as_u64).unwrap_or(0) as usize,
                    score: (s(0), s(1)),
                    value: b.get("value").and_then(Value::as_f64).unwrap_or(f64::NAN),
                    snapshot: snapshot(op, &snap)?,
                })
            }
            None => None,
        };
        restore(op, &model_state, &weights)?;
        self.history = history;
        self.start_epoch = epoch;
        Ok(())
    }

    /// Records the epoch as best when the monitored metric improved.
    fn track_best(&mut self, task: &dyn Task, epoch: usize) -> Result<()> {
        let Some(m) = &self.cfg.monitor else {
            return Ok(());
        };
        let v = self.history.at(&m.metric, epoch);
        if !v.is_finite() {
            return Ok(());
        }
        let tie = m
            .then
            .as_ref()
            .map(|(name, mode)| mode.score(self.history.at(name, epoch)))
            .filter(|x| x.is_finite())
            .unwrap_or(0.0);
        let score = (m.mode.score(v), tie);
        let better = self
            .best
            .as_ref()
            .is_none_or(|b| score.0 > b.score.0 || (score.0 == b.score.0 && score.1 > b.score.1));
        if better {
            self.best = Some(Best {
                epoch,
                score,
                value: v,
                snapshot: snapshot(self.cfg.op, &task.state())?,
            });
        }
        Ok(())
    }
}

/// Trains `task` as `cfg` says and returns its history; the model ends with
/// the weights of the best epoch (by `cfg.monitor`; the last epoch when the
/// monitored metric never appears). Ctrl-C stops after the current step:
/// the history's status is then `Interrupted` and the best weights so far are
/// restored.
pub fn fit(task: &mut dyn Task, cfg: &TrainConfig) -> Result<History> {
    let op = cfg.op;
    cfg.validate()?;
    let n = task.n_train();
    if n < 1 {
        return Err(Error::invalid(op, "no training examples"));
    }
    let batches = (n as usize).div_ceil(cfg.batch);
    let steps_per_epoch = batches.div_ceil(cfg.accumulate);
    let total_steps = cfg.epochs * steps_per_epoch;
    let mut groups = Vec::new();
    for g in task.groups() {
        if groups.iter().any(|s: &GroupState| s.name == g.name) {
            return Err(Error::invalid(
                op,
                format!("parameter group \"{}\" twice", g.name),
            ));
        }
        let optim = g.optim.clone().unwrap_or_else(|| cfg.optim.clone());
        cfg.validate_optim(&optim)?;
        if let Schedule::Cosine { warmup_steps, .. } = optim.schedule {
            if warmup_steps >= total_steps {
                return Err(Error::BadOption {
                    op,
                    key: "warmup_steps".into(),
                    expected: format!(
                        "fewer than the {total_steps} optimiser steps of training ({} epochs × {steps_per_epoch})",
                        cfg.epochs
                    ),
                    got: warmup_steps.to_string(),
                });
            }
        }
        if let Some((name, _)) = g.params.iter().find(|(_, p)| !p.requires_grad()) {
            return Err(Error::invalid(
                op,
                format!(
                    "parameter {name} of group \"{}\" does not require gradients",
                    g.name
                ),
            ));
        }
        groups.push(GroupState::new(op, g, optim)?);
    }
    if groups.is_empty() || groups.iter().all(|g| g.params.is_empty()) {
        return Err(Error::invalid(
            op,
            "nothing to train (no parameters require gradients)",
        ));
    }
    let seed = match cfg.seed {
        Some(s) => s,
        None => tc(
            op,
            tc(
                op,
                Tensor::f_randint(1 << 31, [1], (Kind::Int64, tch::Device::Cpu)),
            )?
            .f_int64_value(&[0]),
        )?,
    };
    let mut t = Trainer {
        cfg,
        groups,
        history: History::default(),
        best: None,
        seed,
        start_epoch: 0,
    };
    if let Some(path) = &cfg.resume {
        t.resume(task, path)?;
    }
    let cuda = task
        .state()
        .first()
        .is_some_and(|(_, p)| p.device().is_cuda());
    let amp = cfg.amp && cuda;
    if cfg.amp && !cuda && cfg.verbose {
        eprintln!("{op}: amp (bf16 autocast) runs on CUDA only; training in float32 on the CPU");
    }
    if amp {
        autocast::bf16_on_cuda();
    }
    let mut status = Status::Completed;
    if interrupted() {
        status = Status::Interrupted;
    }
    let _interrupts = crate::cancel::InterruptHandledHere::new();
    let _malloc = MallocForTraining::install();
    let progress = Progress::new(cfg, ((cfg.epochs - t.start_epoch) * batches) as u64);
    let mut epoch = t.start_epoch;
    while status == Status::Completed && epoch < cfg.epochs {
        epoch += 1;
        tch::manual_seed(seed.wrapping_add(epoch as i64));
        let order = epoch_order(n, seed, epoch, cfg.shuffle);
        let started = Instant::now();
        let mut sums: Vec<(String, f64)> = Vec::new();
        let mut seen = 0usize;
        for (bi, idx) in order.chunks(cfg.batch).enumerate() {
            let mut ctx = StepContext {
                op,
                groups: &mut t.groups,
                accumulate: cfg.accumulate,
                boundary: (bi + 1) % cfg.accumulate == 0 || bi + 1 == batches,
                epoch,
                total_steps,
                train: true,
            };
            crate::cancel::check_limits(op)?;
            let m = tch::autocast(amp, || task.train_step(idx, &mut ctx))?;
            for (name, v) in m.0 {
                match sums.iter_mut().find(|(s, _)| *s == name) {
                    Some(slot) => slot.1 += v * idx.len() as f64,
                    None => sums.push((name, v * idx.len() as f64)),
                }
            }
            seen += idx.len();
            progress.step(|| {
                let loss = sums
                    .iter()
                    .find(|(s, _)| s == "loss")
                    .map_or(String::new(), |(_, v)| {
                        format!(" loss {:.4}", v / seen as f64)
                    });
                format!("epoch {epoch}/{}{loss}", cfg.epochs)
            });
            if interrupted() {
                status = Status::Interrupted;
                break;
            }
        }
        if status == Status::Interrupted {
            // The epoch is incomplete: it does not enter the history.
            break;
        }
        let rate = batches as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let mut values: Vec<(String, f64)> = sums
            .into_iter()
            .map(|(name, s)| (format!("train_{name}"), s / seen as f64))
            .collect();
        if epoch.is_multiple_of(cfg.val_every) || epoch == cfg.epochs {
            if let Some(m) = tch::no_grad(|| task.validate())? {
                values.extend(m.0.into_iter().map(|(name, v)| (format!("val_{name}"), v)));
            }
        }
        for (i, g) in t.groups.iter().enumerate() {
            let name = if i == 0 {
                "lr".to_string()
            } else {
                format!("lr_{}", g.name)
            };
            values.push((name, g.last_lr));
        }
        t.history.push(&values);
        t.track_best(task, epoch)?;
        progress.line(&epoch_line(op, epoch, cfg.epochs, &values, rate));
        if cfg.checkpoint_every > 0 && epoch.is_multiple_of(cfg.checkpoint_every) {
            t.save_checkpoint(task, epoch)?;
        }
    }
    drop(progress);
    let mut history = t.history;
    history.status = status;
    match t.best {
        Some(b) => {
            restore(op, &task.state(), &b.snapshot)?;
            history.best_epoch = b.epoch;
            history.best_value = Some(b.value);
        }
        None => {
            history.best_epoch = history.epochs;
            history.best_value = None;
        }
    }
    if status == Status::Interrupted && cfg.verbose {
        eprintln!(
            "{op}: interrupted after {} complete epochs; keeping epoch {}",
            history.epochs, history.best_epoch
        );
    }
    Ok(history)
}
