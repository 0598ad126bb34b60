//! The one trainer: optimisers and schedules against PyTorch, exact resume,
//! Ctrl-C, parameter groups, and train_resnet's options through scripts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use tch::{nn, nn::Module, Kind, Reduction, Tensor};
use voxlab::error::Result;
use voxlab::models::train::{
    self, fit, Group, Metrics, Mode, Monitor, OptimConfig, Optimizer, Schedule, StepContext, Task,
    TrainConfig,
};

use crate::common::{assert_script_error, bin, engine_in, eval_in, fixture};

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture("train/reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("JSON")
}

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<i64> = v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_i64().expect("dim"))
        .collect();
    let values: Vec<f32> = v["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect();
    Tensor::from_slice(&values).reshape(shape)
}

/// Linear 4→8, tanh, dropout, Linear 8→3 with PyTorch's Sequential names.
struct Mlp {
    vs: nn::VarStore,
    l0: nn::Linear,
    l2: nn::Linear,
    dropout: f64,
    x: Tensor,
    y: Tensor,
    val: Option<(Tensor, Tensor)>,
    losses: Vec<f64>,
}

impl Mlp {
    fn new(x: Tensor, y: Tensor, dropout: f64) -> Mlp {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let l0 = nn::linear(&root / "0", 4, 8, Default::default());
        let l2 = nn::linear(&root / "2", 8, 3, Default::default());
        Mlp {
            vs,
            l0,
            l2,
            dropout,
            x,
            y,
            val: None,
            losses: Vec::new(),
        }
    }

    fn load(&mut self, weights: &Value) {
        tch::no_grad(|| {
            for (name, mut var) in self.vs.variables() {
                var.copy_(&tensor_of(&weights[name.as_str()]));
            }
        });
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.l0.forward(x).tanh().dropout(self.dropout, train);
        self.l2.forward(&h)
    }
}

impl Task for Mlp {
    fn n_train(&self) -> i64 {
        self.x.size()[0]
    }
    fn groups(&self) -> Vec<Group> {
        vec![Group::trainable("model", &self.vs)]
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        train::state_of(&self.vs)
    }
    fn train_step(&mut self, batch: &[i64], ctx: &mut StepContext) -> Result<Metrics> {
        let i = Tensor::from_slice(batch);
        let out = self.forward(&self.x.index_select(0, &i), true);
        let loss = out.mse_loss(&self.y.index_select(0, &i), Reduction::Mean);
        ctx.backward_step("model", &loss)?;
        let l = ctx.value(&loss)?;
        self.losses.push(l);
        Ok(Metrics::new().with("loss", l))
    }
    fn validate(&mut self) -> Result<Option<Metrics>> {
        Ok(self.val.as_ref().map(|(x, y)| {
            let l = self
                .forward(x, false)
                .mse_loss(y, Reduction::Mean)
                .double_value(&[]);
            Metrics::new().with("loss", l)
        }))
    }
}

fn config_of(case: &Value, r: &Value) -> TrainConfig {
    let f = |k: &str| case[k].as_f64().expect(k);
    let optimizer = match case["optimizer"].as_str().expect("optimizer") {
        "sgd" => Optimizer::Sgd {
            momentum: f("momentum"),
            dampening: f("dampening"),
            nesterov: case["nesterov"].as_bool().expect("nesterov"),
        },
        kind => {
            let b = case["betas"].as_array().expect("betas");
            let (beta1, beta2) = (b[0].as_f64().expect("b1"), b[1].as_f64().expect("b2"));
            if kind == "adam" {
                Optimizer::Adam {
                    beta1,
                    beta2,
                    eps: f("eps"),
                }
            } else {
                Optimizer::AdamW {
                    beta1,
                    beta2,
                    eps: f("eps"),
                }
            }
        }
    };
    let schedule = match case["schedule"].as_str().expect("schedule") {
        "cosine" => Schedule::Cosine {
            warmup_steps: case["warmup_steps"].as_u64().expect("warmup") as usize,
            min_lr: f("min_lr"),
        },
        _ => Schedule::Step {
            step_size: case["step_size"].as_u64().expect("step_size") as usize,
            gamma: f("gamma"),
        },
    };
    let mut c = TrainConfig::new("test_train");
    c.epochs = r["epochs"].as_u64().expect("epochs") as usize;
    c.batch = r["batch"].as_u64().expect("batch") as usize;
    c.seed = Some(r["seed"].as_i64().expect("seed"));
    c.accumulate = case["accumulate"].as_u64().expect("accumulate") as usize;
    c.optim = OptimConfig {
        optimizer,
        lr: f("lr"),
        weight_decay: f("weight_decay"),
        schedule,
        clip_grad_norm: case["clip_grad_norm"].as_f64(),
    };
    c.monitor = None;
    c
}

#[test]
fn optimisers_schedules_clipping_and_accumulation_match_pytorch() {
    let r = reference();
    for case in r["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let mut task = Mlp::new(tensor_of(&r["data"]["x"]), tensor_of(&r["data"]["y"]), 0.0);
        task.load(&r["init"]);
        let h = fit(&mut task, &config_of(case, &r)).expect("training runs");
        let want: Vec<f64> = case["losses"]
            .as_array()
            .expect("losses")
            .iter()
            .map(|x| x.as_f64().expect("loss"))
            .collect();
        assert_eq!(task.losses.len(), want.len(), "{name}: batches");
        let mut worst = (0.0f64, 0.0f64);
        for (i, (a, b)) in task.losses.iter().zip(&want).enumerate() {
            worst.0 = worst.0.max((a - b).abs());
            assert!(
                (a - b).abs() <= 1e-5,
                "{name}: loss of batch {i}: {a} vs PyTorch {b}"
            );
        }
        let lrs: Vec<f64> = case["lrs"]
            .as_array()
            .expect("lrs")
            .iter()
            .map(|x| x.as_f64().expect("lr"))
            .collect();
        let got = h.get("lr").expect("lr history");
        for (a, b) in got.iter().zip(&lrs) {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "{name}: lr {a} vs {b}"
            );
        }
        for (pname, var) in task.vs.variables() {
            let want = tensor_of(&case["final"][pname.as_str()]);
            let diff = (&var - &want).abs().max().double_value(&[]);
            worst.1 = worst.1.max(diff);
            assert!(diff <= 1e-5, "{name}: final {pname} differs by {diff}");
        }
        eprintln!(
            "{name}: largest difference from PyTorch: loss {:.1e}, weights {:.1e}",
            worst.0, worst.1
        );
    }
}

fn dropout_task(r: &Value) -> Mlp {
    let x = tensor_of(&r["data"]["x"]);
    let y = tensor_of(&r["data"]["y"]);
    let mut t = Mlp::new(x.narrow(0, 0, 18), y.narrow(0, 0, 18), 0.3);
    t.val = Some((x.narrow(0, 18, 6), y.narrow(0, 18, 6)));
    t.load(&r["init"]);
    t
}

fn resume_config(epochs: usize, dir: &Path) -> TrainConfig {
    let mut c = TrainConfig::new("test_train");
    c.epochs = epochs;
    c.batch = 5;
    c.seed = Some(3);
    c.optim = OptimConfig {
        optimizer: Optimizer::adam(),
        lr: 0.01,
        weight_decay: 0.001,
        schedule: Schedule::Step {
            step_size: 1,
            gamma: 0.7,
        },
        clip_grad_norm: Some(1.0),
    };
    c.accumulate = 2;
    c.checkpoint_every = 2;
    c.checkpoint_dir = Some(dir.to_path_buf());
    c
}

#[test]
fn four_epochs_equal_two_then_resume_to_four() {
    let r = reference();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut straight = dropout_task(&r);
    let a = fit(&mut straight, &resume_config(4, &dir.path().join("a"))).expect("4 epochs");
    for f in [
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(dir.path().join("a/epoch-2").join(f).exists(), "{f}");
    }
    assert!(dir.path().join("a/epoch-4/best.safetensors").exists());

    let mut first = dropout_task(&r);
    fit(&mut first, &resume_config(2, &dir.path().join("b"))).expect("2 epochs");
    // A fresh model of other initial weights: the checkpoint decides.
    let mut second = Mlp::new(
        tensor_of(&r["data"]["x"]).narrow(0, 0, 18),
        tensor_of(&r["data"]["y"]).narrow(0, 0, 18),
        0.3,
    );
    second.val = dropout_task(&r).val;
    let mut c = resume_config(4, &dir.path().join("c"));
    c.resume = Some(dir.path().join("b"));
    let b = fit(&mut second, &c).expect("resume to 4");
    assert_eq!(a.epochs, 4);
    assert_eq!(b.epochs, 4);
    assert_eq!(a.metrics, b.metrics, "identical per-epoch history");
    assert_eq!(a.best_epoch, b.best_epoch);
    assert_eq!(
        straight.losses[straight.losses.len() - 8..],
        second.losses[..]
    );
    for ((n1, v1), (n2, v2)) in train::state_of(&straight.vs)
        .iter()
        .zip(train::state_of(&second.vs).iter())
    {
        assert_eq!(n1, n2);
        assert!(v1.equal(v2), "final {n1} differs");
    }
    // Dropout was on: without reseeding the second half would differ.
    assert!(a
        .get("train_loss")
        .expect("train_loss")
        .iter()
        .all(|x| x.is_finite()));
    assert!(a
        .get("val_loss")
        .expect("val_loss")
        .iter()
        .all(|x| x.is_finite()));
}

#[test]
fn resume_refuses_another_model_naming_the_parameters() {
    let r = reference();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut t = dropout_task(&r);
    let first = fit(&mut t, &resume_config(2, dir.path()));
    // (Panics are silent once a test installs voxlab's panic hook: say why first.)
    if let Err(e) = &first {
        eprintln!("the first training failed: {e}");
    }
    let first = first.expect("2 epochs");
    eprintln!("first run: {} epochs, {:?}", first.epochs, first.status);
    struct Other {
        vs: nn::VarStore,
    }
    impl Task for Other {
        fn n_train(&self) -> i64 {
            10
        }
        fn groups(&self) -> Vec<Group> {
            vec![Group::trainable("model", &self.vs)]
        }
        fn state(&self) -> Vec<(String, Tensor)> {
            train::state_of(&self.vs)
        }
        fn train_step(&mut self, _: &[i64], _: &mut StepContext) -> Result<Metrics> {
            Ok(Metrics::new())
        }
    }
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let _ = nn::linear(vs.root() / "0", 4, 5, Default::default());
    let _ = nn::linear(vs.root() / "head", 5, 3, Default::default());
    let mut c = resume_config(4, &dir.path().join("x"));
    c.resume = Some(dir.path().join("epoch-2"));
    let err = match fit(&mut Other { vs }, &c) {
        Ok(h) => panic!("resumed another model: {h:?}"),
        Err(e) => e.to_string(),
    };
    eprintln!("error: {err}");
    assert!(err.contains("option 'resume'"), "{err}");
    assert!(
        err.contains("0.weight is 8×4 in the checkpoint but 5×4 in the model"),
        "{err}"
    );
    assert!(
        err.contains("the checkpoint lacks head.bias, head.weight"),
        "{err}"
    );
    assert!(err.contains("the model has no 2.bias, 2.weight"), "{err}");
}

#[test]
fn groups_step_only_their_own_parameters() {
    // A GAN-shaped task: two groups with their own optimisers; the loss of
    // group "d" flows through "g" but must not move it.
    struct Two {
        vs: nn::VarStore,
        g: nn::Linear,
        d: nn::Linear,
    }
    impl Task for Two {
        fn n_train(&self) -> i64 {
            8
        }
        fn groups(&self) -> Vec<Group> {
            let params = |prefix: &str| {
                train::state_of(&self.vs)
                    .into_iter()
                    .filter(|(n, _)| n.starts_with(prefix))
                    .collect()
            };
            vec![
                Group::new("g", params("g.")),
                Group::new("d", params("d.")).with_optim(OptimConfig {
                    optimizer: Optimizer::sgd(0.0),
                    lr: 0.1,
                    ..OptimConfig::default()
                }),
            ]
        }
        fn state(&self) -> Vec<(String, Tensor)> {
            train::state_of(&self.vs)
        }
        fn train_step(&mut self, batch: &[i64], ctx: &mut StepContext) -> Result<Metrics> {
            let x = Tensor::ones([batch.len() as i64, 2], (Kind::Float, tch::Device::Cpu));
            let out = self.d.forward(&self.g.forward(&x));
            let loss = out.pow_tensor_scalar(2).mean(Kind::Float);
            ctx.backward_step("d", &loss)?;
            Ok(Metrics::new().with("d_loss", ctx.value(&loss)?))
        }
    }
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let g = nn::linear(vs.root() / "g", 2, 2, Default::default());
    let d = nn::linear(vs.root() / "d", 2, 1, Default::default());
    let g_before = g.ws.copy();
    let d_before = d.ws.copy();
    let mut task = Two { vs, g, d };
    let mut c = TrainConfig::new("test_train");
    c.epochs = 2;
    c.batch = 4;
    c.seed = Some(1);
    let h = fit(&mut task, &c).expect("two groups");
    assert!(task.g.ws.equal(&g_before), "g untouched by d's loss");
    assert!(!task.d.ws.equal(&d_before), "d trained");
    assert_eq!(h.get("lr").expect("lr"), &[1e-3, 1e-3], "first group's lr");
    assert_eq!(h.get("lr_d").expect("lr_d"), &[0.1, 0.1]);
    assert_eq!(h.get("train_d_loss").expect("metric").len(), 2);
    // Unknown group names are errors naming the groups.
    struct Bad(nn::VarStore);
    impl Task for Bad {
        fn n_train(&self) -> i64 {
            2
        }
        fn groups(&self) -> Vec<Group> {
            vec![Group::trainable("model", &self.0)]
        }
        fn state(&self) -> Vec<(String, Tensor)> {
            train::state_of(&self.0)
        }
        fn train_step(&mut self, _: &[i64], ctx: &mut StepContext) -> Result<Metrics> {
            ctx.backward_step("generator", &Tensor::from(1.0f32))?;
            Ok(Metrics::new())
        }
    }
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let _ = nn::linear(vs.root(), 1, 1, Default::default());
    let err = fit(&mut Bad(vs), &c)
        .expect_err("unknown group")
        .to_string();
    assert!(
        err.contains("no parameter group \"generator\" (groups: model)"),
        "{err}"
    );
}

#[test]
fn monitor_keeps_the_best_epoch() {
    let r = reference();
    let mut t = dropout_task(&r);
    let mut c = resume_config(5, Path::new("/nonexistent"));
    c.checkpoint_every = 0;
    c.optim.lr = 0.2; // large enough that validation gets worse at some point
    c.monitor = Some(Monitor::new("val_loss", Mode::Min));
    let h = fit(&mut t, &c).expect("fit");
    let v = h.get("val_loss").expect("val_loss");
    let best = v
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i + 1)
        .expect("epochs");
    assert_eq!(h.best_epoch, best);
    assert_eq!(h.best_value, Some(v[best - 1]));
    let (x, y) = t.val.as_ref().expect("val");
    let now = t
        .forward(x, false)
        .mse_loss(y, Reduction::Mean)
        .double_value(&[]);
    assert!(
        (now - v[best - 1]).abs() < 1e-7,
        "best weights restored: {now} vs {}",
        v[best - 1]
    );
}

#[test]
fn train_resnet_history_and_common_options() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let script = r#"
        set_seed(0);
        let x = rand([10, 3, 16, 16]);
        let y = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1];
        let m = train_resnet(x, y, #{epochs: 3, batch: 4, optimizer: "adamw", lr: 0.001, schedule: "cosine",
                                     warmup_steps: 1, clip_grad_norm: 1.0, accumulate: 2, checkpoint_every: 3,
                                     verbose: false, seed: 5});
        let h = m.history;
        [h.keys(), h.train_loss.len(), h.lr, h.best_epoch, h.epochs, h.status]
    "#;
    let v = eval_in(&vox, script).expect("train_resnet");
    let shown = voxlab::cli::show(&v);
    for key in [
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "lr",
        "best_epoch",
        "epochs",
        "status",
    ] {
        assert!(shown.contains(&format!("\"{key}\"")), "{key} in {shown}");
    }
    assert!(shown.contains("\"completed\""), "{shown}");
    // 8 training images / batch 4 = 2 batches = 1 optimiser step per epoch:
    // warm-up step 0 (lr 0), then cosine over the remaining 2 steps.
    assert!(shown.contains(", 3, [0.0, 0.001, 5e-4"), "{shown}");
    assert!(dir
        .path()
        .join("checkpoints/epoch-3/trainer_state.json")
        .exists());
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("checkpoints/epoch-3/trainer_state.json"))
            .expect("state"),
    )
    .expect("json");
    assert_eq!(state["op"], "train_resnet");
    assert_eq!(state["epoch"], 3);
    assert_eq!(state["config"]["optim"]["optimizer"]["kind"], "adamw");
}

#[test]
fn bad_training_options_are_polite_errors() {
    let call = |opts: &str| {
        format!("train_resnet(rand([4, 3, 16, 16]), [0, 1, 0, 1], #{{verbose: false, {opts}}})")
    };
    let cases: &[(&str, &[&str])] = &[
        ("epochs: 0", &["train_resnet: option 'epochs' expects an integer ≥ 1, got 0"]),
        ("batch: 0", &["train_resnet: option 'batch' expects an integer ≥ 1, got 0"]),
        ("lr: -0.1", &["train_resnet: option 'lr' expects a positive number, got -0.1"]),
        ("optimizer: \"rmsprop\"", &["train_resnet: option 'optimizer' expects one of sgd, adam, adamw, got \"rmsprop\""]),
        ("schedule: \"linear\"", &["train_resnet: option 'schedule' expects one of constant, step, cosine, got \"linear\""]),
        ("schedule: \"cosine\", warmup_steps: 5, epochs: 2", &["train_resnet: option 'warmup_steps' expects fewer than the 2 optimiser steps", "got 5"]),
        ("accumulate: 0", &["train_resnet: option 'accumulate' expects an integer ≥ 1, got 0"]),
        ("clip_grad_norm: 0", &["train_resnet: option 'clip_grad_norm' expects a positive number, got 0"]),
        ("clip_grad_norm: -1.0", &["option 'clip_grad_norm' expects a positive number"]),
        ("optimizer: \"adam\", betas: [0.9]", &["train_resnet: option 'betas' expects two numbers"]),
        ("optimizer: \"sgd\", nesterov: true, momentum: 0.0", &["option 'nesterov' expects momentum > 0"]),
        ("mode: \"best\"", &["option 'mode' expects \"min\" or \"max\""]),
        ("resume: \"/nonexistent/ckpt\"", &["train_resnet: /nonexistent/ckpt", "option 'resume': no such checkpoint"]),
        ("epoch: 3", &["unknown option 'epoch'", "epochs"]),
    ];
    for (opts, expected) in cases {
        assert_script_error(&call(opts), expected);
    }
}

#[test]
fn resuming_train_resnet_from_another_model_names_the_offenders() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let _ = eval_in(
        &vox,
        "train_resnet(rand([4, 3, 16, 16]), [0, 1, 2, 0], #{epochs: 1, batch: 4, val_split: 0.0, checkpoint_every: 1, verbose: false})",
    )
    .expect("first run");
    let err = eval_in(
        &vox,
        "train_resnet(rand([4, 3, 16, 16]), [0, 1, 0, 1], #{epochs: 2, batch: 4, val_split: 0.0, resume: \"checkpoints\", verbose: false})",
    )
    .expect_err("other class count");
    assert!(err.contains("option 'resume': the checkpoint is of a different model: fc.bias is 3 in the checkpoint but 2 in the model"), "{err}");
}

#[test]
fn ctrl_c_stops_training_keeps_the_best_weights_and_marks_the_run_interrupted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = r#"
        set_seed(0);
        let x = rand([8, 3, 16, 16]);
        let m = train_resnet(x, [0, 1, 0, 1, 0, 1, 0, 1], #{epochs: 500, batch: 4, val_split: 0.25});
        print(`status ${m.history.status} after ${m.history.epochs}`);
        m.save("model.safetensors");
        let again = train_resnet(x, [0, 1, 0, 1, 0, 1, 0, 1], #{epochs: 500, batch: 4, verbose: false});
        print(`second ${again.history.status} after ${again.history.epochs}`);
    "#;
    std::fs::write(dir.path().join("long.rhai"), script).expect("write");
    let mut child = Command::new(bin())
        .args(["run", "long.rhai", "--out", "out"])
        .current_dir(dir.path())
        .env("VOXLAB_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("voxlab starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("train_resnet: epoch 1/500") {
            break;
        }
    }
    assert!(seen.contains("train_resnet: epoch 1/500 loss"), "{seen}");
    // SAFETY: signalling the child we spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    let out = child.wait_with_output().expect("voxlab ends");
    let stderr = format!("{seen}{}", rest.join("\n"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stderr}\n{stdout}");
    assert!(stdout.contains("status interrupted after"), "{stdout}");
    assert!(stdout.contains("second interrupted after 0"), "{stdout}");
    assert!(stderr.contains("interrupted after"), "{stderr}");
    assert!(dir.path().join("out/model.safetensors").exists());
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/run.json")).expect("run.json"),
    )
    .expect("JSON");
    assert_eq!(record["status"], "interrupted");
    assert_eq!(record["files"], serde_json::json!(["model.safetensors"]));
}

#[test]
fn plot_history_draws_one_panel_per_metric_family() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let v = eval_in(
        &vox,
        r#"let h = #{train_loss: [1.0, 0.6, 0.4, 0.35], val_loss: [1.1, 0.8, 0.7, 0.75], train_acc: [0.4, 0.6, 0.8, 0.9],
                   val_acc: [0.3, 0.5, 0.6, 0.55], lr: [0.01, 0.008, 0.004, 0.001], best_epoch: 3, epochs: 4, status: "completed"};
           let f = plot_history(h, #{title: "ResNet18"});
           f.save("history.png");
           f.save("history.svg");
           f.to_string()"#,
    )
    .expect("plot_history");
    assert_eq!(
        voxlab::cli::show(&v),
        "\"Figure[history, 3 panels (loss, acc, lr); 1200×360] \\\"ResNet18\\\"\""
    );
    let png = std::fs::read(dir.path().join("history.png")).expect("png");
    assert!(png.starts_with(b"\x89PNG"));
    let svg = std::fs::read_to_string(dir.path().join("history.svg")).expect("svg");
    for label in [
        "ResNet18",
        "loss",
        "acc",
        "lr",
        "train",
        "val",
        "epoch",
        "best (epoch 3)",
    ] {
        assert!(svg.contains(&format!("\n{label}\n")), "{label} in the svg");
    }
    assert_script_error(
        "plot_history(#{best_epoch: 2})",
        &["plot_history: the history has no per-epoch metrics"],
    );
    assert_script_error("plot_history(#{loss: [1, \"a\"]})", &["plot_history: loss"]);
}

#[test]
fn a_loss_closure_is_a_task() {
    // The smallest use: a VarStore, a loss for a batch of indices.
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let lin = nn::linear(vs.root(), 3, 1, Default::default());
    let x = Tensor::randn([40, 3], (Kind::Float, tch::Device::Cpu));
    let y = x.matmul(&Tensor::from_slice(&[1.0f32, -2.0, 0.5]).reshape([3, 1]));
    let mut task = train::LossTask {
        vs: &vs,
        n_train: 40,
        loss: |idx: &[i64]| {
            let i = Tensor::from_slice(idx);
            Ok(lin
                .forward(&x.index_select(0, &i))
                .mse_loss(&y.index_select(0, &i), Reduction::Mean))
        },
        validate: || Ok(None),
    };
    let mut c = TrainConfig::new("fit_linear");
    c.epochs = 60;
    c.batch = 8;
    c.seed = Some(0);
    c.optim.lr = 0.05;
    let h = fit(&mut task, &c).expect("fit");
    let loss = h.get("train_loss").expect("train_loss");
    assert!(loss[59] < 1e-3 && loss[59] < loss[0] / 100.0, "{loss:?}");
    assert_eq!(
        h.best_epoch, 60,
        "nothing validated: the last epoch is kept"
    );
    assert_eq!(h.best_value, None);
}
