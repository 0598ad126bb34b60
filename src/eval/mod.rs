//! Evaluation protocols: identification of predicted against true features,
//! image similarity (SSIM, pixel correlation), feature correlations and
//! caption metrics (BLEU, ROUGE-L, embedding similarity, chance levels), and
//! the standard reconstruction scores.

pub mod captions;
pub mod identification;
pub mod image_metrics;
pub mod reconstruction;
pub mod retrieval;

pub use identification::{identification, Identification, IdentificationOptions, Metric, PTest};
