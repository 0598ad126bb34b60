//! Models from brain data to features and back: ridge decoders and encoders,
//! ResNets with torchvision-compatible weights (in time: decoders, GANs,
//! mappers, diffusion).
pub mod classifier;
pub mod resnet;
pub mod ridge;

pub use ridge::{fit_ridge, RidgeModel, RidgeOptions, RidgeScore, Scoring};
