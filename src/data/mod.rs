//! Brain data as scripts see it: volumes, masks and ROIs, smoothing,
//! stimulus image sets, datasets, and the simulated stimulus world and subject.
pub mod dataset;
pub mod images;
pub mod mask;
pub mod public;
pub mod resample;
pub mod scenes;
pub mod simulate;
pub mod smooth;
pub mod volume;

pub use dataset::Dataset;
pub use images::ImageSet;
pub use mask::Mask;

pub use volume::Volume;
