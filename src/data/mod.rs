//! Brain data as scripts see it: volumes (and later masks, ROIs, datasets,
//! the simulated subject).
pub mod volume;

pub use volume::Volume;
