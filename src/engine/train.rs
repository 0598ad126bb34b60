//! Script face of the trainer: the options every training function shares, histories.
use rhai::Engine;

use super::help::HelpRegistry;
use super::session::Session;

pub fn register(_engine: &mut Engine, _help: &mut HelpRegistry, _session: &Session) {}
