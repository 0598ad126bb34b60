//! Layers written once, named after the Hugging Face modules they mirror.
