//! Script face of the pretrained networks (text encoders, CLIP).
use rhai::Engine;

use super::help::HelpRegistry;
use super::session::Session;

pub fn register(_engine: &mut Engine, _help: &mut HelpRegistry, _session: &Session) {}
