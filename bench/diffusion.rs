//! Latent diffusion timings of voxlab's Stable Diffusion code (models/unet.rs,
//! vae.rs, schedulers.rs, diffusion.rs) on a pipeline folder that
//! bench/diffusion.py writes with diffusers; that script times the same work
//! in diffusers (PyTorch eager) and compares.
//!
//!     cargo run --release --features bench --example diffusion -- DIR REPEATS THREADS
//!
//! DIR holds the pipeline (model_index.json, unet/, vae/, scheduler/) and
//! inputs.safetensors; the 50-step sample's latents go to DIR/voxlab_out.safetensors.
//! Prints one JSON line: median seconds of each task.

use std::path::Path;
use std::time::Instant;

use tch::{Device, Kind, Tensor};
use voxlab::models::diffusion::{DiffusionPipeline, SampleSettings};
use voxlab::models::schedulers::Noise;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time(repeats: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    median(
        (0..repeats)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(&args[1]);
    let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    if let Some(n) = args.get(3).and_then(|s| s.parse().ok()) {
        tch::set_num_threads(n);
    }
    let pipe = DiffusionPipeline::load("bench", dir, Device::Cpu, Kind::Float).expect("pipeline");
    let inputs = Tensor::read_safetensors(dir.join("inputs.safetensors")).expect("inputs");
    let get = |k: &str| {
        inputs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, t)| t.shallow_clone())
            .expect(k)
    };
    let (x, t, ctx) = (
        get("train_latents"),
        get("train_timesteps"),
        get("train_context"),
    );
    let unet = &pipe.unet.unet;
    let train = time(repeats, || {
        for v in pipe.unet.vs.trainable_variables() {
            let mut v = v;
            v.zero_grad();
        }
        let out = unet.forward(&x, &t, &ctx, None, true);
        let loss = (out - &x).square().mean(Kind::Float);
        loss.backward();
    });
    let (init, cond, uncond) = (
        get("sample_latents"),
        get("sample_cond"),
        get("sample_uncond"),
    );
    let settings = SampleSettings {
        steps: 50,
        guidance: 5.0,
        eta: 0.0,
    };
    let mut z = Tensor::zeros([1], (Kind::Float, Device::Cpu));
    let sample = time(repeats.min(3), || {
        z = pipe
            .text_to_image(
                "bench",
                &cond,
                Some(&uncond),
                &init,
                settings,
                &mut Noise::Generator,
            )
            .expect("sample");
    });
    Tensor::write_safetensors(&[("latents", &z)], dir.join("voxlab_out.safetensors"))
        .expect("write");
    let images = get("vae_images");
    let vae = &pipe.vae.vae;
    let encode = time(repeats, || {
        tch::no_grad(|| vae.encode(&images, false).mean);
    });
    let latents = get("vae_latents");
    let decode = time(repeats, || {
        tch::no_grad(|| vae.decode(&latents, false));
    });
    println!(
        "{{\"unet_train_step_s\": {train}, \"ddim50_sample_s\": {sample}, \"vae_encode_s\": {encode}, \"vae_decode_s\": {decode}, \"threads\": {}}}",
        tch::get_num_threads()
    );
}
