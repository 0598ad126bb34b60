//! Models from brain data to features and back: ridge decoders and encoders.

pub mod ridge;

pub use ridge::{fit_ridge, RidgeModel, RidgeOptions, RidgeScore, Scoring};
