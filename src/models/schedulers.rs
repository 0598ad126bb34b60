//! The DDPM and DDIM noise schedules and samplers as diffusers'
//! `DDPMScheduler` and `DDIMScheduler` compute them: beta schedules
//! (linear, scaled-linear, cosine, or given), the inference timesteps
//! (`leading` + `steps_offset`, `trailing`, `linspace`), one denoising step
//! for epsilon, v and sample predictions (DDIM with `eta`), `add_noise`, and
//! img2img's start at `strength`. The cumulative alphas are computed in
//! float32 as PyTorch does, so timesteps and coefficients agree exactly.

use std::collections::VecDeque;

use serde_json::json;
use tch::{Device, Kind, Tensor};

use super::hf::Config;
use crate::error::{Error, Result};
use crate::tensor::shape_text;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampler {
    Ddim,
    Ddpm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prediction {
    Epsilon,
    VPrediction,
    Sample,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    Leading,
    Trailing,
    Linspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdpmVariance {
    FixedSmall,
    FixedLarge,
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub sampler: Sampler,
    pub num_train_timesteps: i64,
    /// The betas, float32 as diffusers holds them.
    pub betas: Vec<f32>,
    pub beta_schedule: String,
    pub prediction: Prediction,
    pub spacing: Spacing,
    pub steps_offset: i64,
    pub set_alpha_to_one: bool,
    pub clip_sample: bool,
    pub clip_sample_range: f64,
    pub variance: DdpmVariance,
    /// The class the scheduler_config.json named (PNDM, LMS… configs
    /// share the betas; voxlab samples them with DDIM).
    pub source_class: String,
}

impl SchedulerConfig {
    /// A scheduler_config.json. DDPMScheduler samples with DDPM; DDIM and
    /// every other class (Stable Diffusion v1 ships PNDMScheduler) with
    /// DDIM over the same betas, as `DDIMScheduler.from_config` would.
    pub fn from_config(op: &'static str, c: &Config) -> Result<SchedulerConfig> {
        c.only(op, "thresholding", &[json!(false)])?;
        c.only(op, "rescale_betas_zero_snr", &[json!(false)])?;
        c.only(op, "timestep_type", &[json!("discrete")])?;
        let source_class = c.str_or(op, "_class_name", "DDIMScheduler")?;
        let sampler = if source_class == "DDPMScheduler" {
            Sampler::Ddpm
        } else {
            Sampler::Ddim
        };
        let n = c.int_or(op, "num_train_timesteps", 1000)?;
        if n < 2 {
            return Err(Error::format(
                op,
                &c.path,
                format!("num_train_timesteps {n} must be at least 2"),
            ));
        }
        let beta_start = c.float_or(op, "beta_start", 0.0001)?;
        let beta_end = c.float_or(op, "beta_end", 0.02)?;
        let beta_schedule = c.str_or(op, "beta_schedule", "linear")?;
        let betas: Vec<f32> = match c.value.get("trained_betas") {
            Some(serde_json::Value::Array(list)) => {
                let b: Option<Vec<f32>> = list.iter().map(|v| v.as_f64().map(|x| x as f32)).collect();
                match b {
                    Some(b) if b.len() as i64 == n => b,
                    _ => {
                        return Err(Error::format(
                            op,
                            &c.path,
                            format!("\"trained_betas\" must be {n} numbers (num_train_timesteps)"),
                        ))
                    }
                }
            }
            _ => match beta_schedule.as_str() {
                "linear" => linspace_f32(beta_start, beta_end, n),
                "scaled_linear" => linspace_f32(beta_start.sqrt(), beta_end.sqrt(), n)
                    .into_iter()
                    .map(|b| b * b)
                    .collect(),
                "squaredcos_cap_v2" => {
                    let bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
                    (0..n)
                        .map(|i| {
                            let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                            (1.0 - bar(t2) / bar(t1)).min(0.999) as f32
                        })
                        .collect()
                }
                other => {
                    return Err(Error::format(
                        op,
                        &c.path,
                        format!("\"beta_schedule\" \"{other}\" is not known (linear, scaled_linear, squaredcos_cap_v2)"),
                    ))
                }
            },
        };
        let prediction = match c.str_or(op, "prediction_type", "epsilon")?.as_str() {
            "epsilon" => Prediction::Epsilon,
            "v_prediction" => Prediction::VPrediction,
            "sample" => Prediction::Sample,
            other => {
                return Err(Error::format(
                    op,
                    &c.path,
                    format!(
                    "\"prediction_type\" \"{other}\" is not known (epsilon, v_prediction, sample)"
                ),
                ))
            }
        };
        let spacing = match c.str_or(op, "timestep_spacing", "leading")?.as_str() {
            "leading" => Spacing::Leading,
            "trailing" => Spacing::Trailing,
            "linspace" => Spacing::Linspace,
            other => {
                return Err(Error::format(
                    op,
                    &c.path,
                    format!(
                    "\"timestep_spacing\" \"{other}\" is not known (leading, trailing, linspace)"
                ),
                ))
            }
        };
        let variance = match (
            sampler,
            c.str_or(op, "variance_type", "fixed_small")?.as_str(),
        ) {
            (_, "fixed_small") => DdpmVariance::FixedSmall,
            (_, "fixed_large") => DdpmVariance::FixedLarge,
            (Sampler::Ddim, _) => DdpmVariance::FixedSmall,
            (Sampler::Ddpm, other) => {
                return Err(Error::format(
                    op,
                    &c.path,
                    format!(
                    "\"variance_type\" \"{other}\" is not implemented (fixed_small, fixed_large)"
                ),
                ))
            }
        };
        Ok(SchedulerConfig {
            sampler,
            num_train_timesteps: n,
            betas,
            beta_schedule,
            prediction,
            spacing,
            steps_offset: c.int_or(op, "steps_offset", 0)?,
            set_alpha_to_one: c.bool_or(op, "set_alpha_to_one", true)?,
            clip_sample: c.bool_or(op, "clip_sample", true)?,
            clip_sample_range: c.float_or(op, "clip_sample_range", 1.0)?,
            variance,
            source_class,
        })
    }

    /// Stable Diffusion's schedule (scaled-linear 0.00085 → 0.012 over
    /// 1000 steps, leading spacing with offset 1, no clipping) for `sampler`.
    pub fn stable_diffusion(sampler: Sampler) -> SchedulerConfig {
        SchedulerConfig {
            sampler,
            num_train_timesteps: 1000,
            betas: linspace_f32(0.00085f64.sqrt(), 0.012f64.sqrt(), 1000)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            beta_schedule: "scaled_linear".into(),
            prediction: Prediction::Epsilon,
            spacing: Spacing::Leading,
            steps_offset: 1,
            set_alpha_to_one: false,
            clip_sample: false,
            clip_sample_range: 1.0,
            variance: DdpmVariance::FixedSmall,
            source_class: match sampler {
                Sampler::Ddim => "DDIMScheduler".into(),
                Sampler::Ddpm => "DDPMScheduler".into(),
            },
        }
    }

    /// The scheduler_config.json diffusers reads back.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "_class_name": match self.sampler { Sampler::Ddim => "DDIMScheduler", Sampler::Ddpm => "DDPMScheduler" },
            "num_train_timesteps": self.num_train_timesteps,
            "trained_betas": self.betas,
            "beta_schedule": self.beta_schedule,
            "prediction_type": match self.prediction {
                Prediction::Epsilon => "epsilon",
                Prediction::VPrediction => "v_prediction",
                Prediction::Sample => "sample",
            },
            "timestep_spacing": match self.spacing {
                Spacing::Leading => "leading",
                Spacing::Trailing => "trailing",
                Spacing::Linspace => "linspace",
            },
            "steps_offset": self.steps_offset,
            "set_alpha_to_one": self.set_alpha_to_one,
            "clip_sample": self.clip_sample,
            "clip_sample_range": self.clip_sample_range,
            "variance_type": match self.variance { DdpmVariance::FixedSmall => "fixed_small", DdpmVariance::FixedLarge => "fixed_large" },
        })
    }
}

/// torch.linspace(start, end, n, dtype=float32).
fn linspace_f32(start: f64, end: f64, n: i64) -> Vec<f32> {
    let t = Tensor::linspace(start, end, n, (Kind::Float, Device::Cpu));
    Vec::<f32>::try_from(&t).unwrap_or_default()
}

/// Where a sampler's random draws come from: libtorch's generator (seeded
/// by the caller; on the CPU it draws what PyTorch's draws for the same
/// seed), or tensors given in the order they are needed (tests, replays).
pub enum Noise {
    Generator,
    Given(VecDeque<Tensor>),
}

impl Noise {
    /// A standard normal draw shaped like `like`.
    pub fn draw(&mut self, op: &'static str, like: &Tensor) -> Result<Tensor> {
        match self {
            Noise::Generator => Ok(Tensor::randn(like.size(), (Kind::Float, Device::Cpu))
                .to_kind(like.kind())
                .to_device(like.device())),
            Noise::Given(queue) => {
                let t = queue.pop_front().ok_or_else(|| {
                    Error::invalid(op, "the given noise ran out: more draws were needed")
                })?;
                if t.size() != like.size() {
                    return Err(Error::shape(
                        op,
                        "noise",
                        shape_text(&like.size()),
                        shape_text(&t.size()),
                    ));
                }
                Ok(t.to_kind(like.kind()).to_device(like.device()))
            }
        }
    }
}

pub struct Scheduler {
    pub config: SchedulerConfig,
    /// ᾱ_t, float32 cumulative products held as f64.
    pub alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
    pub timesteps: Vec<i64>,
    pub num_inference_steps: i64,
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Scheduler {
        // torch.cumprod(1 - betas) in float32 (libtorch accumulates in double).
        let alphas: Tensor = Tensor::from_slice(&config.betas).neg() + 1.0;
        let alphas_cumprod: Vec<f64> = Vec::<f32>::try_from(&alphas.cumprod(0, Kind::Float))
            .unwrap_or_default()
            .into_iter()
            .map(f64::from)
            .collect();
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Scheduler {
            config,
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps: Vec::new(),
            num_inference_steps: 0,
        }
    }

    /// The `steps` inference timesteps, largest first.
    pub fn set_timesteps(&mut self, op: &'static str, steps: i64) -> Result<()> {
        let n = self.config.num_train_timesteps;
        if steps < 1 || steps > n {
            return Err(Error::invalid(
                op,
                format!("steps must be between 1 and the {n} training timesteps, got {steps}"),
            ));
        }
        self.timesteps = match self.config.spacing {
            Spacing::Leading => {
                let ratio = n / steps;
                (0..steps)
                    .rev()
                    .map(|i| i * ratio + self.config.steps_offset)
                    .collect()
            }
            Spacing::Trailing => {
                // np.round(np.arange(n, 0, -n / steps)) - 1
                let ratio = n as f64 / steps as f64;
                let count = (n as f64 / ratio).ceil() as i64;
                (0..count)
                    .map(|i| (n as f64 - i as f64 * ratio).round_ties_even() as i64 - 1)
                    .collect()
            }
            Spacing::Linspace => {
                // np.linspace(0, n - 1, steps).round()[::-1]
                let stop = (n - 1) as f64;
                let step = if steps > 1 {
                    stop / (steps - 1) as f64
                } else {
                    0.0
                };
                let mut v: Vec<i64> = (0..steps)
                    .map(|i| {
                        let x = if i == steps - 1 && steps > 1 {
                            stop
                        } else {
                            i as f64 * step
                        };
                        x.round_ties_even() as i64
                    })
                    .collect();
                v.reverse();
                v
            }
        };
        self.num_inference_steps = steps;
        Ok(())
    }

    fn alpha_at(&self, t: i64) -> f64 {
        if t >= 0 {
            self.alphas_cumprod[t.min(self.config.num_train_timesteps - 1) as usize]
        } else {
            self.final_alpha_cumprod
        }
    }

    /// The img2img timesteps: the last ⌊steps·strength⌋ of the schedule
    /// (diffusers' `get_timesteps`). Call after [`Self::set_timesteps`].
    pub fn img2img_timesteps(&self, op: &'static str, strength: f64) -> Result<Vec<i64>> {
        if !(strength > 0.0 && strength <= 1.0) {
            return Err(Error::invalid(
                op,
                format!("strength must be in (0, 1], got {strength}"),
            ));
        }
        let steps = self.num_inference_steps;
        let init = ((steps as f64 * strength) as i64).min(steps);
        let start = (steps - init).max(0) as usize;
        if start >= self.timesteps.len() {
            return Err(Error::invalid(
                op,
                format!("strength {strength} × {steps} steps leaves no denoising step: raise one of them"),
            ));
        }
        Ok(self.timesteps[start..].to_vec())
    }

    /// √ᾱ_t·x + √(1 − ᾱ_t)·noise (diffusers' `add_noise`).
    pub fn add_noise(&self, x: &Tensor, noise: &Tensor, t: i64) -> Tensor {
        let a = self.alpha_at(t);
        x * a.sqrt() + noise * (1.0 - a).sqrt()
    }

    /// The training target for the model's prediction type.
    pub fn target(&self, x: &Tensor, noise: &Tensor, t: &Tensor) -> Tensor {
        match self.config.prediction {
            Prediction::Epsilon => noise.shallow_clone(),
            Prediction::Sample => x.shallow_clone(),
            Prediction::VPrediction => {
                let (sa, sb) = self.coefficients(t, x);
                sa * noise - sb * x
            }
        }
    }

    /// √ᾱ_t and √(1 − ᾱ_t) for B timesteps, shaped B×1×1×1 like `x`'s batch.
    pub fn coefficients(&self, t: &Tensor, x: &Tensor) -> (Tensor, Tensor) {
        let table = Tensor::from_slice(&self.alphas_cumprod)
            .to_kind(Kind::Float)
            .to_device(x.device());
        let a = table
            .index_select(0, &t.to_kind(Kind::Int64))
            .view([-1, 1, 1, 1]);
        let rest: Tensor = a.neg() + 1.0;
        (a.sqrt().to_kind(x.kind()), rest.sqrt().to_kind(x.kind()))
    }

    /// x₀ and ε from the model's output at t.
    fn predictions(&self, out: &Tensor, t: i64, sample: &Tensor) -> (Tensor, Tensor) {
        let a = self.alpha_at(t);
        let b = 1.0 - a;
        match self.config.prediction {
            Prediction::Epsilon => ((sample - out * b.sqrt()) / a.sqrt(), out.shallow_clone()),
            Prediction::Sample => (out.shallow_clone(), (sample - out * a.sqrt()) / b.sqrt()),
            Prediction::VPrediction => (
                sample * a.sqrt() - out * b.sqrt(),
                out * a.sqrt() + sample * b.sqrt(),
            ),
        }
    }

    /// One step from `sample` at timestep `t` to the previous timestep.
    /// DDIM draws noise only when `eta` > 0; DDPM at every t > 0.
    pub fn step(
        &self,
        op: &'static str,
        out: &Tensor,
        t: i64,
        sample: &Tensor,
        eta: f64,
        noise: &mut Noise,
    ) -> Result<Tensor> {
        let (mut x0, eps) = self.predictions(out, t, sample);
        if self.config.clip_sample {
            let r = self.config.clip_sample_range;
            x0 = x0.clamp(-r, r);
        }
        match self.config.sampler {
            Sampler::Ddim => {
                let prev = t - self.config.num_train_timesteps / self.num_inference_steps.max(1);
                let (a, a_prev) = (self.alpha_at(t), self.alpha_at(prev));
                let (b, b_prev) = (1.0 - a, 1.0 - a_prev);
                let variance = (b_prev / b) * (1.0 - a / a_prev);
                let std = eta * variance.sqrt();
                let direction = &eps * (1.0 - a_prev - std * std).sqrt();
                let prev_sample = &x0 * a_prev.sqrt() + direction;
                if eta > 0.0 {
                    Ok(prev_sample + noise.draw(op, out)? * std)
                } else {
                    Ok(prev_sample)
                }
            }
            Sampler::Ddpm => {
                let idx = self.timesteps.iter().position(|&s| s == t);
                let prev = match idx {
                    Some(i) if i + 1 < self.timesteps.len() => self.timesteps[i + 1],
                    Some(_) => -1,
                    None => t - 1,
                };
                let a = self.alpha_at(t);
                let a_prev = if prev >= 0 {
                    self.alphas_cumprod[prev as usize]
                } else {
                    1.0
                };
                let (b, b_prev) = (1.0 - a, 1.0 - a_prev);
                let alpha_t = a / a_prev;
                let beta_t = 1.0 - alpha_t;
                let mean =
                    &x0 * (a_prev.sqrt() * beta_t / b) + sample * (alpha_t.sqrt() * b_prev / b);
                if t > 0 {
                    let var = match self.config.variance {
                        DdpmVariance::FixedSmall => (b_prev / b * beta_t).max(1e-20),
                        DdpmVariance::FixedLarge => beta_t,
                    };
                    Ok(mean + noise.draw(op, out)? * var.sqrt())
                } else {
                    Ok(mean)
                }
            }
        }
    }
}
