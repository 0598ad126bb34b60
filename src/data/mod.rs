//! Brain data as scripts see it: volumes (and later masks, ROIs, datasets,
//! the simulated subject).
pub mod dataset;
pub mod images;
pub mod mask;
pub mod smooth;
pub mod volume;

pub use dataset::Dataset;
pub use images::ImageSet;
pub use mask::Mask;

pub use volume::Volume;
