//! Training and using ResNet image classifiers (the BNU valence classifiers),
//! and extracting stage activations for RSA.

use std::io::Write;

use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor as TchTensor};

use super::resnet::{prepare_images, Arch, ResNet};
use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub arch: Arch,
    pub classes: Option<i64>,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    /// "sgd" (momentum 0.9) or "adam".
    pub optimizer: String,
    pub weight_decay: f64,
    /// Random horizontal flips of training images.
    pub augment: bool,
    /// Fraction of images held out for validation (the last ones after a seeded shuffle).
    pub val_split: f64,
    /// torchvision-named weights to start from.
    pub pretrained: Option<std::path::PathBuf>,
    /// Train only the fc layer.
    pub freeze: bool,
    pub seed: Option<i64>,
    pub device: tch::Device,
    pub verbose: bool,
}

#[derive(Debug, Clone, Default)]
pub struct History {
    pub train_loss: Vec<f64>,
    pub train_acc: Vec<f64>,
    pub val_loss: Vec<f64>,
    pub val_acc: Vec<f64>,
    /// Epoch (1-based) whose weights were kept: best validation accuracy.
    pub best_epoch: usize,
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

/// Trains a ResNet classifier on images in [0, 1] (N×3×H×W) with integer labels.
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
    if opts.epochs == 0 || opts.batch == 0 {
        return Err(Error::invalid(OP, "epochs and batch must be ≥ 1"));
    }
    if !(0.0..1.0).contains(&opts.val_split) {
        return Err(Error::invalid(
            OP,
            format!("val_split must be in [0, 1), got {}", opts.val_split),
        ));
    }
    if !(opts.lr > 0.0 && opts.lr.is_finite()) {
        return Err(Error::invalid(
            OP,
            format!("lr must be a positive number, got {}", opts.lr),
        ));
    }
    if let Some(seed) = opts.seed {
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
    let order = TchTensor::randperm(n, (Kind::Int64, tch::Device::Cpu));
    let train_idx = order.narrow(0, 0, n - n_val);
    let val_idx = order.narrow(0, n - n_val, n_val);
    let (x_train, y_train) = (
        images.index_select(0, &train_idx),
        labels.index_select(0, &train_idx),
    );
    let (x_val, y_val) = (
        images.index_select(0, &val_idx),
        labels.index_select(0, &val_idx),
    );

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
    let mut opt = match opts.optimizer.as_str() {
        "sgd" => nn::Sgd {
            momentum: 0.9,
            wd: opts.weight_decay,
            ..Default::default()
        }
        .build(&model.vs, opts.lr),
        "adam" => nn::Adam {
            wd: opts.weight_decay,
            ..Default::default()
        }
        .build(&model.vs, opts.lr),
        other => {
            return Err(Error::invalid(
                OP,
                format!("optimizer must be \"sgd\" or \"adam\", got \"{other}\""),
            ))
        }
    }
    .map_err(|e| Error::torch(OP, e))?;
    if opts.freeze {
        opt.set_weight_decay(opts.weight_decay);
    }

    let mut history = History::default();
    let mut best: Option<((f64, f64), Vec<(String, TchTensor)>)> = None;
    let n_train = n - n_val;
    let device = opts.device;
    for epoch in 1..=opts.epochs {
        let perm = TchTensor::randperm(n_train, (Kind::Int64, tch::Device::Cpu));
        let (mut loss_sum, mut correct) = (0.0, 0i64);
        let mut start = 0;
        while start < n_train {
            let len = (opts.batch as i64).min(n_train - start);
            let idx = perm.narrow(0, start, len);
            let mut xb = x_train.index_select(0, &idx);
            if opts.augment {
                // Flip a random half of the batch left-right.
                let flip = TchTensor::rand([len, 1, 1, 1], (Kind::Float, tch::Device::Cpu)).lt(0.5);
                xb = xb.flip([3]).where_self(&flip, &xb);
            }
            let yb = y_train.index_select(0, &idx).to_device(device);
            let x = prepare_images(OP, &xb, device)?;
            let logits = model.forward_t(&x, true);
            let loss = logits.cross_entropy_for_logits(&yb);
            opt.backward_step(&loss);
            loss_sum += loss.double_value(&[]) * len as f64;
            correct += logits
                .argmax(-1, false)
                .eq_tensor(&yb)
                .sum(Kind::Int64)
                .int64_value(&[]);
            start += len;
        }
        history.train_loss.push(loss_sum / n_train as f64);
        history.train_acc.push(correct as f64 / n_train as f64);
        let (val_loss, val_acc) = if n_val > 0 {
            let probs = model.predict(OP, &x_val, 64)?;
            let yv = y_val.to_device(tch::Device::Cpu);
            let nll = probs.clamp_min(1e-12).log().nll_loss(&yv).double_value(&[]);
            let acc = probs
                .argmax(-1, false)
                .eq_tensor(&yv)
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[]);
            (nll, acc)
        } else {
            (f64::NAN, f64::NAN)
        };
        history.val_loss.push(val_loss);
        history.val_acc.push(val_acc);
        // Keep the weights of the best validation epoch: highest accuracy, then
        // lowest loss (the last epoch when there is no validation set).
        let score = if n_val > 0 {
            (val_acc, -val_loss)
        } else {
            (epoch as f64, 0.0)
        };
        if best
            .as_ref()
            .is_none_or(|(b, _)| score.0 > b.0 || (score.0 == b.0 && score.1 > b.1))
        {
            let snapshot = model
                .vs
                .variables()
                .into_iter()
                .map(|(k, v)| (k, v.detach().copy()))
                .collect();
            best = Some((score, snapshot));
            history.best_epoch = epoch;
        }
        if opts.verbose {
            eprintln!(
                "train_resnet: epoch {epoch}/{} loss {:.4} acc {:.3} val_loss {:.4} val_acc {:.3}",
                opts.epochs,
                history.train_loss[epoch - 1],
                history.train_acc[epoch - 1],
                val_loss,
                val_acc
            );
            let _ = std::io::stderr().flush();
        }
    }
    if let Some((_, snapshot)) = best {
        tch::no_grad(|| {
            for (name, mut var) in model.vs.variables() {
                if let Some((_, v)) = snapshot.iter().find(|(k, _)| *k == name) {
                    var.copy_(v);
                }
            }
        });
    }
    Ok((model, history))
}
