//! The one trainer.
