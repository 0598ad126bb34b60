//! What one run (or REPL session) knows about itself: parameters given with
//! `--set`, the output folder, recorded metrics, files written, the seed.
//! The CLI reads it back to write run.json.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde_json::Value;

#[derive(Debug, Default)]
pub struct SessionState {
    /// `--set key=value` as given.
    pub given: BTreeMap<String, String>,
    /// Every `param(...)` read, with the value used (given or default).
    pub params: BTreeMap<String, Value>,
    pub out_dir: PathBuf,
    /// Metrics in the order they were recorded (a re-recorded name keeps its place).
    pub metrics: Vec<(String, Value)>,
    pub files: Vec<PathBuf>,
    pub seed: Option<i64>,
}

/// Shared handle: the engine's functions and the runner hold clones.
#[derive(Debug, Clone, Default)]
pub struct Session(Rc<RefCell<SessionState>>);

impl Session {
    pub fn new(out_dir: PathBuf, given: BTreeMap<String, String>) -> Self {
        Session(Rc::new(RefCell::new(SessionState {
            given,
            out_dir,
            ..Default::default()
        })))
    }

    pub fn state(&self) -> std::cell::Ref<'_, SessionState> {
        self.0.borrow()
    }

    pub fn state_mut(&self) -> std::cell::RefMut<'_, SessionState> {
        self.0.borrow_mut()
    }

    pub fn out_dir(&self) -> PathBuf {
        self.0.borrow().out_dir.clone()
    }

    /// Where a save function writes `path`: relative paths land in the
    /// output folder, so a run's figures and tables stay together.
    pub fn output_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.out_dir().join(p)
        }
    }

    /// Writes one output of a save function: `write` gets the full path
    /// ([`Session::output_path`] of `path`); the file joins the run record's
    /// list and its path is returned as the script sees it.
    pub fn save(
        &self,
        path: &str,
        write: impl FnOnce(&Path) -> crate::error::Result<()>,
    ) -> crate::error::Result<String> {
        let out = self.output_path(path);
        write(&out)?;
        self.wrote(&out);
        Ok(out.display().to_string())
    }

    pub fn wrote(&self, path: &Path) {
        let mut s = self.0.borrow_mut();
        if !s.files.iter().any(|f| f == path) {
            s.files.push(path.to_path_buf());
        }
    }

    pub fn record(&self, name: &str, value: Value) {
        let mut s = self.0.borrow_mut();
        match s.metrics.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => s.metrics.push((name.to_string(), value)),
        }
    }

    /// `--set` keys no `param(...)` call asked for (likely typos).
    pub fn unused_params(&self) -> Vec<String> {
        let s = self.0.borrow();
        s.given
            .keys()
            .filter(|k| !s.params.contains_key(*k))
            .cloned()
            .collect()
    }
}
