//! voxlab's one integration-test binary (libtorch links once).
//! Science modules are tested through their Rust API; the platform through
//! the real binary and the engine in-process.

mod adversarial;
mod beliy;
mod captions;
mod captions_metrics;
mod cli;
mod common;
mod data;
mod dataset;
mod diffusion;
mod engine;
mod eval;
mod figures;
mod gan;
mod help;
mod labs;
mod models;
mod nets;
mod nifti;
mod npy;
mod public_datasets;
mod reconstruction;
mod records;
mod repl;
mod resnet;
mod rsa;
mod scripts;
mod simulate;
mod stats;
mod sweep;
mod tensor;
mod train;
mod units;
mod volume;
