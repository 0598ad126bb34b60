//! Training throughput of voxlab's trainer (models/train.rs) on networks built
//! from models/nn: a 6-layer transformer encoder and a small conv UNet-style
//! stack of diffusers blocks. bench/train_throughput.py runs the identical
//! PyTorch models and loops and compares.
//!
//!     cargo run --release --features bench --example train_throughput -- MODEL STEPS
//!
//! MODEL is `transformer` or `unet`; prints one JSON line with the timing.

#[path = "timing.rs"]
mod timing;
use timing::cpu_seconds;

use tch::nn::{self as tnn, Module};
use tch::{Device, Kind, Tensor};

use voxlab::models::nn::{self, BlockConfig, BlockNames, TransformerBlock};
use voxlab::models::train::{fit, LossTask, Metrics, Optimizer, TrainConfig};

const BATCH: i64 = 32;

struct Encoder {
    tokens: tnn::Embedding,
    positions: nn::LearnedPositions,
    layers: Vec<TransformerBlock>,
    head: tnn::Linear,
}

impl Encoder {
    fn new(p: &tnn::Path) -> Encoder {
        let c = BlockConfig {
            dim: 256,
            heads: 4,
            mlp_dim: 1024,
            act: nn::Activation::Gelu,
            eps: 1e-12,
            pre_norm: false,
            cross_dim: None,
            dropout: 0.0,
            qkv_bias: true,
        };
        Encoder {
            tokens: nn::embedding(&(p / "tokens"), 1000, 256),
            positions: nn::LearnedPositions::new(&(p / "positions"), 64, 256),
            layers: (0..6)
                .map(|i| TransformerBlock::new(&(p / "layers" / i), c, BlockNames::BERT))
                .collect(),
            head: nn::linear(&(p / "head"), 256, 10, true),
        }
    }

    fn forward(&self, ids: &Tensor) -> Tensor {
        let mut x = self.tokens.forward(ids) + self.positions.first(ids.size()[1]);
        for l in &self.layers {
            x = l.forward(&x, None, None, None, true);
        }
        self.head.forward(&x.mean_dim(1, false, Kind::Float))
    }
}

struct Unet {
    conv_in: tnn::Conv2D,
    blocks: Vec<nn::ResnetBlock2d>,
    downs: Vec<nn::Downsample2d>,
    ups: Vec<nn::Upsample2d>,
    norm_out: tnn::GroupNorm,
    conv_out: tnn::Conv2D,
}

impl Unet {
    fn new(p: &tnn::Path) -> Unet {
        let block = |i: i64, a: i64, b: i64| {
            let mut c = nn::ResnetBlockConfig::new(a, b);
            c.groups = 32;
            nn::ResnetBlock2d::new(&(p / "blocks" / i), c)
        };
        Unet {
            conv_in: nn::conv2d(&(p / "conv_in"), 3, 64, 3, 1, 1, true),
            blocks: vec![
                block(0, 64, 64),
                block(1, 64, 128),
                block(2, 128, 128),
                block(3, 128, 64),
                block(4, 64, 64),
            ],
            downs: vec![
                nn::Downsample2d::new(&(p / "downs" / 0), 64, 64, 1),
                nn::Downsample2d::new(&(p / "downs" / 1), 128, 128, 1),
            ],
            ups: vec![
                nn::Upsample2d::new(&(p / "ups" / 0), 128, 128),
                nn::Upsample2d::new(&(p / "ups" / 1), 64, 64),
            ],
            norm_out: nn::group_norm(&(p / "norm_out"), 32, 64, 1e-6),
            conv_out: nn::conv2d(&(p / "conv_out"), 64, 3, 3, 1, 1, true),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let b = &self.blocks;
        let h = b[0].forward(&self.conv_in.forward(x), None, true);
        let h = b[1].forward(&self.downs[0].forward(&h), None, true);
        let h = b[2].forward(&self.downs[1].forward(&h), None, true);
        let h = b[3].forward(&self.ups[0].forward(&h), None, true);
        let h = b[4].forward(&self.ups[1].forward(&h), None, true);
        self.conv_out.forward(&self.norm_out.forward(&h).silu())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map(String::as_str).unwrap_or("transformer");
    let steps: i64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let threads = timing::setup();
    let vs = tnn::VarStore::new(Device::Cpu);
    let n = BATCH * steps;
    let (inputs, targets, forward): (Tensor, Tensor, Box<dyn Fn(&Tensor) -> Tensor>) = match model {
        "transformer" => {
            let m = Encoder::new(&vs.root());
            (
                Tensor::randint(1000, [n, 64], (Kind::Int64, Device::Cpu)),
                Tensor::randint(10, [n], (Kind::Int64, Device::Cpu)),
                Box::new(move |x| m.forward(x)),
            )
        }
        "unet" => {
            let m = Unet::new(&vs.root());
            (
                Tensor::randn([n, 3, 32, 32], (Kind::Float, Device::Cpu)),
                Tensor::randn([n, 3, 32, 32], (Kind::Float, Device::Cpu)),
                Box::new(move |x| m.forward(x)),
            )
        }
        other => panic!("unknown model {other}"),
    };
    let loss = |idx: &[i64]| -> voxlab::Result<Tensor> {
        let i = Tensor::from_slice(idx);
        let x = inputs.index_select(0, &i);
        let y = targets.index_select(0, &i);
        let out = forward(&x);
        Ok(if model == "transformer" {
            out.cross_entropy_for_logits(&y)
        } else {
            out.mse_loss(&y, tch::Reduction::Mean)
        })
    };
    let mut cfg = TrainConfig::new("bench");
    cfg.batch = BATCH as usize;
    cfg.optim.optimizer = Optimizer::adamw();
    cfg.optim.lr = 1e-4;
    cfg.optim.weight_decay = 0.01;
    cfg.seed = Some(0);
    cfg.monitor = None;
    let params: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    // One epoch to warm up (allocator, kernels), then the timed epochs.
    let mut task = LossTask {
        vs: &vs,
        n_train: n,
        loss,
        validate: || Ok(None::<Metrics>),
    };
    cfg.epochs = 1;
    fit(&mut task, &cfg).expect("warm-up");
    cfg.epochs = 2;
    let t0 = std::time::Instant::now();
    let c0 = cpu_seconds();
    let h = fit(&mut task, &cfg).expect("training");
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let total = 2 * steps;
    println!(
        "{}",
        serde_json::json!({"tool": "voxlab", "model": model, "params": params, "steps": total,
            "seconds": seconds, "cpu_s": cpu, "steps_per_s": total as f64 / seconds, "threads": threads,
            "last_loss": h.get("train_loss").and_then(|v| v.last().copied())})
    );
}
