//! Brain data as scripts see it: volumes, the simulated stimulus world and
//! subject (and in time masks, ROIs, datasets).
pub mod scenes;
pub mod simulate;
pub mod volume;

pub use volume::Volume;
