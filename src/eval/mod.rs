//! Evaluation protocols: identification of predicted against true features,
//! image similarity (SSIM, pixel correlation) and feature correlations.

pub mod identification;
pub mod image_metrics;
pub mod retrieval;

pub use identification::{identification, Identification, IdentificationOptions, Metric};
