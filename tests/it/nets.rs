//! Networks: text encoders and CLIP against tiny Hugging Face twins.
