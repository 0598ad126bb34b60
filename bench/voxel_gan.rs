//! Training throughput of train_voxel_gan (src/models/voxel_gan.rs) on random
//! voxels and images; bench/voxel_gan.py runs the identical PyTorch model and
//! loop and compares.
//!
//!     cargo run --release --features bench --example voxel_gan -- STEPS SIZE VOXELS NGF NDF
//!
//! Prints one JSON line with the timing.

#[path = "timing.rs"]
mod timing;
use timing::cpu_seconds;

use tch::{Device, Kind, Tensor};

use voxlab::models::voxel_gan::{train_voxel_gan, VoxelGanOptions};

const BATCH: i64 = 64;

fn main() {
    let args: Vec<i64> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("integer arguments"))
        .collect();
    let arg = |i: usize, default: i64| args.get(i).copied().unwrap_or(default);
    let (steps, size, voxels, ngf, ndf) =
        (arg(0, 10), arg(1, 32), arg(2, 3354), arg(3, 16), arg(4, 16));
    let threads = timing::setup();
    let n = BATCH * steps;
    let betas = Tensor::randn([n, voxels], (Kind::Float, Device::Cpu));
    let images = Tensor::rand([n, 3, size, size], (Kind::Float, Device::Cpu));
    let mut o = VoxelGanOptions::new(Device::Cpu);
    o.config.ngf = ngf;
    o.config.ndf = ndf;
    o.train.batch = BATCH as usize;
    o.train.seed = Some(0);
    o.train.verbose = false;
    // One epoch to warm up (allocator, kernels), then a fresh model's two timed epochs.
    o.train.epochs = 1;
    train_voxel_gan(&betas, &images, None, &o).expect("warm-up");
    o.train.epochs = 2;
    let t0 = std::time::Instant::now();
    let c0 = cpu_seconds();
    let (gan, h) = train_voxel_gan(&betas, &images, None, &o).expect("training");
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let total = 2 * steps;
    println!(
        "{}",
        serde_json::json!({"tool": "voxlab", "params": gan.parameter_count(), "steps": total,
            "seconds": seconds, "cpu_s": cpu, "steps_per_s": total as f64 / seconds, "threads": threads,
            "last_d_loss": h.get("train_d_loss").and_then(|v| v.last().copied())})
    );
}
