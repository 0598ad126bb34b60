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
    /// The script being run (`voxlab run`), which no save may replace.
    pub script: Option<PathBuf>,
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
        self.check_replaceable(&out)?;
        write(&out)?;
        self.wrote(&out);
        Ok(out.display().to_string())
    }

    /// A save must not replace the running script, the run record, or a
    /// file this run already wrote (two outputs under one name lose one; in
    /// `voxlab run` only), nor leave the sandbox.
    pub fn check_replaceable(&self, out: &Path) -> crate::error::Result<()> {
        crate::sandbox::check_write("save", out)?;
        let s = self.0.borrow();
        let same = |a: &Path, b: &Path| {
            a == b
                || matches!(
                    (std::fs::canonicalize(a), std::fs::canonicalize(b)),
                    (Ok(x), Ok(y)) if x == y
                )
        };
        let refuse = |why: &str| {
            Err(crate::error::Error::invalid(
                "save",
                format!("{}: {why}", out.display()),
            ))
        };
        if s.script.as_deref().is_some_and(|script| same(script, out)) {
            return refuse("that is the script being run; choose another name");
        }
        if same(&s.out_dir.join("run.json"), out) {
            return refuse("run.json is the run's record, written by voxlab; choose another name");
        }
        // In a `voxlab run` (a record lists what it wrote); the REPL and
        // `-e` may save a figure again after changing it.
        if s.script.is_some() && s.files.iter().any(|f| same(f, out)) {
            return refuse("this run already wrote that file; give each output its own name");
        }
        Ok(())
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
