//! Training and using ResNet image classifiers (the BNU valence classifiers),
//! and extracting stage activations for RSA.

use tch::{Kind, Tensor as TchTensor};

use super::resnet::{prepare_images, Arch, ResNet};
use super::train::{
    self, Group, History, Metrics, Mode, Monitor, OptimConfig, Optimizer, Schedule, StepContext,
    Task, TrainConfig,
};
use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub arch: Arch,
    pub classes: Option<i64>,
    /// Random horizontal flips of training images.
    pub augment: bool,
    /// Fraction of images held out for validation (the last ones after a seeded shuffle).
    pub val_split: f64,
    /// torchvision-named weights to start from.
    pub pretrained: Option<std::path::PathBuf>,
    /// Train only the fc layer.
    pub freeze: bool,
    pub device: tch::Device,
    /// Epochs, batch, optimiser, schedule, seed, checkpoints... (the one trainer's options).
    pub train: TrainConfig,
}

impl TrainOptions {
    /// train_resnet's defaults: 10 epochs of 32 images, SGD (momentum 0.9)
    /// at lr 0.01 with weight decay 1e-4, flips, 20 % validation, keeping the
    /// epoch of best validation accuracy (ties: lowest validation loss).
    pub fn new(device: tch::Device) -> TrainOptions {
        let mut train = TrainConfig::new("train_resnet");
        train.epochs = 10;
        train.batch = 32;
        train.optim = OptimConfig {
            optimizer: Optimizer::sgd(0.9),
            lr: 0.01,
            weight_decay: 1e-4,
            schedule: Schedule::Constant,
            clip_grad_norm: None,
        };
        train.monitor = Some(classifier_monitor());
        train.verbose = true;
        TrainOptions {
            arch: Arch::ResNet18,
            classes: None,
            augment: true,
            val_split: 0.2,
            pretrained: None,
            freeze: false,
            device,
            train,
        }
    }
}

/// Best validation accuracy, ties broken by the lowest validation loss.
pub fn classifier_monitor() -> Monitor {
    Monitor {
        metric: "val_acc".into(),
        mode: Mode::Max,
        then: Some(("val_loss".into(), Mode::Min)),
    }
}

/// Labels as an i64 tensor, checked against the image count and class count.
fn check_labels(
    op: &'static str,
    labels: &TchTensor,
    n: i64,
    classes: Option<i64>,
) -> Result<(TchTensor, i64)> {
    let l = tc(op, labels.f_to_kind(Kind::Int64))?;
    let l = tc(op, l.f_reshape([-1]))?;
    if l.size()[0] != n {
        return Err(Error::shape(
            op,
            "labels",
            format!("one per image ({n})"),
            l.size()[0].to_string(),
        ));
    }
    if n == 0 {
        return Err(Error::invalid(op, "no images"));
    }
    let lo = tc(op, tc(op, l.f_min())?.f_int64_value(&[]))?;
    let hi = tc(op, tc(op, l.f_max())?.f_int64_value(&[]))?;
    let classes = classes.unwrap_or(hi + 1);
    if lo < 0 || hi >= classes {
        return Err(Error::invalid(
            op,
            format!(
                "labels must be 0..{} for {classes} classes, got values from {lo} to {hi}",
                classes - 1
            ),
        ));
    }
    Ok((l, classes))
}

/// Runs a function over a dataset in batches without gradients.
fn batched<T>(n: i64, batch: i64, mut f: impl FnMut(i64, i64) -> Result<T>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        out.push(f(start, len)?);
        start += len;
    }
    Ok(out)
}

impl ResNet {
    /// Softmax probabilities (N×classes) for images in [0, 1].
    pub fn predict(&self, op: &'static str, images: &TchTensor, batch: i64) -> Result<TchTensor> {
        let device = self.vs.device();
        let n = images.size().first().copied().unwrap_or(0);
        let parts = tch::no_grad(|| {
            batched(n, batch, |s, len| {
                let x = prepare_images(op, &tc(op, images.f_narrow(0, s, len))?, device)?;
                Ok(self
                    .forward_t(&x, false)
                    .softmax(-1, Kind::Float)
                    .to_device(tch::Device::Cpu))
            })
        })?;
        tc(op, TchTensor::f_cat(&parts, 0))
    }

    pub fn accuracy(&self, images: &TchTensor, labels: &TchTensor) -> Result<f64> {
        const OP: &str = "accuracy";
        let (l, _) = check_labels(
            OP,
            labels,
            images.size().first().copied().unwrap_or(0),
            Some(self.classes),
        )?;
        let pred = self.predict(OP, images, 64)?.argmax(-1, false);
        let hits = tc(OP, pred.f_eq_tensor(&l.to_device(tch::Device::Cpu)))?;
        Ok(tc(
            OP,
            tc(OP, hits.f_to_kind(Kind::Double))?.f_mean(Kind::Double),
        )?
        .double_value(&[]))
    }

    /// Confusion matrix: rows are true classes, columns predicted classes.
    pub fn confusion(&self, images: &TchTensor, labels: &TchTensor) -> Result<TchTensor> {
        const OP: &str = "confusion";
        let (l, k) = check_labels(
            OP,
            labels,
            images.size().first().copied().unwrap_or(0),
            Some(self.classes),
        )?;
        let pred = self.predict(OP, images, 64)?.argmax(-1, false);
        let idx = l.to_device(tch::Device::Cpu) * k + pred;
        let counts = tc(OP, idx.f_bincount::<TchTensor>(None, k * k))?;
        tc(OP, counts.f_reshape([k, k]))
    }

    /// Activations of the named stages (all when `layers` is empty), each
    /// flattened to images × units, computed in batches without gradients.
    pub fn features(
        &self,
        images: &TchTensor,
        layers: &[String],
        batch: i64,
        pool: bool,
    ) -> Result<Vec<(String, TchTensor)>> {
        const OP: &str = "resnet_features";
        let names = self.stage_names();
        for l in layers {
            if !names.contains(l) {
                return Err(Error::invalid(
                    OP,
                    format!("no stage named \"{l}\"; stages are {}", names.join(", ")),
                ));
            }
        }
        let wanted: Vec<String> = if layers.is_empty() {
            names
        } else {
            layers.to_vec()
        };
        let device = self.vs.device();
        let n = images.size().first().copied().unwrap_or(0);
        let mut acc: Vec<(String, Vec<TchTensor>)> =
            wanted.iter().map(|w| (w.clone(), Vec::new())).collect();
        tch::no_grad(|| -> Result<()> {
            batched(n, batch, |s, len| {
                let x = prepare_images(OP, &tc(OP, images.f_narrow(0, s, len))?, device)?;
                for (name, act) in self.stages(&x) {
                    if let Some(slot) = acc.iter_mut().find(|(w, _)| *w == name) {
                        let act = if pool && act.dim() == 4 {
                            act.mean_dim(Some([2i64, 3].as_slice()), false, Kind::Float)
                        } else {
                            act
                        };
                        slot.1.push(act.flatten(1, -1).to_device(tch::Device::Cpu));
                    }
                }
                Ok(())
            })?;
            Ok(())
        })?;
        acc.into_iter()
            .map(|(name, parts)| Ok((name, tc(OP, TchTensor::f_cat(&parts, 0))?)))
            .collect()
    }
}

/// Cross-entropy training of a ResNet on images held in memory.
struct ClassifierTask<'a> {
    model: &'a ResNet,
    x_train: TchTensor,
    y_train: TchTensor,
    x_val: TchTensor,
    y_val: TchTensor,
    augment: bool,
    device: tch::Device,
}

impl Task for ClassifierTask<'_> {
    fn n_train(&self) -> i64 {
        self.x_train.size()[0]
    }

    fn groups(&self) -> Vec<Group> {
        vec![Group::trainable("model", &self.model.vs)]
    }

    fn state(&self) -> Vec<(String, TchTensor)> {
        train::state_of(&self.model.vs)
    }

    fn train_step(&mut self, batch: &[i64], ctx: &mut StepContext) -> Result<Metrics> {
        const OP: &str = "train_resnet";
        let idx = tc(OP, TchTensor::f_from_slice(batch))?;
        let mut xb = tc(OP, self.x_train.f_index_select(0, &idx))?;
        if self.augment {
            // Flip a random half of the batch left-right.
            let flip = tc(
                OP,
                TchTensor::f_rand(
                    [batch.len() as i64, 1, 1, 1],
                    (Kind::Float, tch::Device::Cpu),
                ),
            )?;
            let flip = tc(OP, flip.f_lt(0.5))?;
            xb = tc(OP, tc(OP, xb.f_flip([3]))?.f_where_self(&flip, &xb))?;
        }
        let yb = tc(
            OP,
            tc(OP, self.y_train.f_index_select(0, &idx))?.f_to_device(self.device),
        )?;
        let x = prepare_images(OP, &xb, self.device)?;
        let logits = self.model.forward_t(&x, true);
        let logp = tc(OP, logits.f_log_softmax(-1, Kind::Float))?;
        let loss = tc(
            OP,
            logp.f_nll_loss::<TchTensor>(&yb, None, tch::Reduction::Mean, -100),
        )?;
        ctx.backward_step("model", &loss)?;
        let correct = tc(
            OP,
            tc(OP, tc(OP, logits.f_argmax(-1, false))?.f_eq_tensor(&yb))?.f_sum(Kind::Int64),
        )?;
        let correct = tc(OP, correct.f_int64_value(&[]))?;
        Ok(Metrics::new()
            .with("loss", ctx.value(&loss)?)
            .with("acc", correct as f64 / batch.len() as f64))
    }

    fn validate(&mut self) -> Result<Option<Metrics>> {
        const OP: &str = "train_resnet";
        if self.x_val.size()[0] == 0 {
            return Ok(None);
        }
        let probs = self.model.predict(OP, &self.x_val, 64)?;
        let yv = tc(OP, self.y_val.f_to_device(tch::Device::Cpu))?;
        let nll = tc(OP, tc(OP, probs.f_clamp_min(1e-12))?.f_log())?;
        let nll = tc(
            OP,
            nll.f_nll_loss::<TchTensor>(&yv, None, tch::Reduction::Mean, -100),
        )?;
        let nll = tc(OP, nll.f_double_value(&[]))?;
        let hits = tc(OP, tc(OP, probs.f_argmax(-1, false))?.f_eq_tensor(&yv))?;
        let acc = tc(
            OP,
            tc(
                OP,
                tc(OP, hits.f_to_kind(Kind::Double))?.f_mean(Kind::Double),
            )?
            .f_double_value(&[]),
        )?;
        Ok(Some(Metrics::new().with("loss", nll).with("acc", acc)))
    }
}

/// Trains a ResNet classifier on images in [0, 1] (N×3×H×W) with integer
/// labels, through the one trainer ([`train::fit`]).
pub fn train(
    images: &TchTensor,
    labels: &TchTensor,
    opts: &TrainOptions,
) -> Result<(ResNet, History)> {
    const OP: &str = "train_resnet";
    let s = images.size();
    if s.len() != 4 || s[1] != 3 {
        return Err(Error::shape(
            OP,
            "images",
            "N×3×H×W (RGB in [0, 1])",
            shape_text(&s),
        ));
    }
    let n = s[0];
    let (labels, classes) = check_labels(OP, labels, n, opts.classes)?;
    opts.train.validate()?;
    if !(0.0..1.0).contains(&opts.val_split) {
        return Err(Error::BadOption {
            op: OP,
            key: "val_split".into(),
            expected: "a fraction in [0, 1)".into(),
            got: opts.val_split.to_string(),
        });
    }
    if let Some(seed) = opts.train.seed {
        crate::device::seed(seed);
    }
    let n_val = ((n as f64) * opts.val_split).round() as i64;
    if n - n_val < 1 {
        return Err(Error::invalid(
            OP,
            format!(
                "val_split {} leaves no training images of {n}",
                opts.val_split
            ),
        ));
    }
    let order = tc(
        OP,
        TchTensor::f_randperm(n, (Kind::Int64, tch::Device::Cpu)),
    )?;
    let train_idx = order.narrow(0, 0, n - n_val);
    let val_idx = order.narrow(0, n - n_val, n_val);
    let pick = |t: &TchTensor, i: &TchTensor| tc(OP, t.f_index_select(0, i));

    let (mut model, _) = match &opts.pretrained {
        Some(p) => ResNet::load(p, Some(classes), opts.device)?,
        None => (ResNet::new(opts.arch, classes, opts.device)?, false),
    };
    if opts.freeze {
        model.vs.freeze();
        // Unfreeze the head only.
        for (name, mut var) in model.vs.variables() {
            if name.starts_with("fc.") {
                let _ = var.requires_grad_(true);
            }
        }
    }
    let mut task = ClassifierTask {
        model: &model,
        x_train: pick(images, &train_idx)?,
        y_train: pick(&labels, &train_idx)?,
        x_val: pick(images, &val_idx)?,
        y_val: pick(&labels, &val_idx)?,
        augment: opts.augment,
        device: opts.device,
    };
    let history = train::fit(&mut task, &opts.train)?;
    Ok((model, history))
}
