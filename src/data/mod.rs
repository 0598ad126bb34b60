//! Brain data as scripts see it: volumes, masks and ROIs, smoothing,
//! stimulus image sets and datasets (the simulated subject is still to come).
pub mod dataset;
pub mod images;
pub mod mask;
pub mod smooth;
pub mod volume;

pub use dataset::Dataset;
pub use images::ImageSet;
pub use mask::Mask;

pub use volume::Volume;
