//! Models: ResNets with torchvision-compatible weights (and, in time, ridge,
//! decoders, GANs, mappers, diffusion).
pub mod classifier;
pub mod resnet;
