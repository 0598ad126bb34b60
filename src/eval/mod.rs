//! Evaluation protocols: identification of predicted against true features.

pub mod identification;

pub use identification::{identification, Identification, IdentificationOptions, Metric};
