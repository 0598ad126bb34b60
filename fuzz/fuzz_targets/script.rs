//! Arbitrary text as a Rhai script through voxlab's engine with every
//! primitive registered: parse errors, runtime errors and bad arguments must
//! all come back as errors (a primitive's panic is caught by its guard and
//! would show as "internal error", which this target reports as a finding).
//! The run is confined: --sandbox to a scratch folder, 20,000 operations,
//! --max-seconds 2 and --max-memory 1500, and libFuzzer's -rss_limit_mb and
//! -timeout for the rest (a run past the timeout is a limit that did not stop).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Once;
use voxlab::cli::run::{compile, eval, Outcome};
use voxlab::engine::{self, Limits, Session, Voxlab};

static SETUP: Once = Once::new();

/// A fresh engine per input (its own stop flag and files list), in a
/// sandbox around a scratch folder; allocations of known size past 1.5 GB
/// are refused as --max-memory would.
fn with_engine(f: impl FnOnce(&Voxlab)) {
    let dir = std::env::temp_dir().join(format!("voxlab-fuzz-script-{}", std::process::id()));
    SETUP.call_once(|| {
        voxlab::engine::error::install_panic_hook();
        voxlab::device::init_threads(Some(1));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        voxlab::sandbox::enable(&dir, &dir, &[]).expect("sandbox");
    });
    let vox = engine::build(
        Session::new(dir, Default::default()),
        Limits {
            max_operations: Some(20_000),
            max_memory_mb: Some(1500),
            // A stop must apply within ~0.5 s whatever the script does: an
            // input still running at libFuzzer's -timeout (10 s) is a finding.
            max_seconds: Some(2.0),
        },
    );
    f(&vox)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // On a thread with the stack `voxlab run` gives scripts, as the command
    // line does (a panic there comes back here and is the finding).
    let text = text.to_owned();
    let worker = std::thread::Builder::new()
        .stack_size(voxlab::cli::SCRIPT_STACK_BYTES)
        .spawn(move || run_script(&text))
        .expect("script thread");
    if let Err(panic) = worker.join() {
        std::panic::resume_unwind(panic);
    }
});

fn run_script(text: &str) {
    with_engine(|vox| {
        let mut scope = rhai::Scope::new();
        let Ok(ast) = compile(vox, "<fuzz>", text, &scope) else {
            return;
        };
        if let Outcome::Failed(d) = eval(vox, &ast, &mut scope) {
            assert!(
                !d.message.contains("internal error"),
                "a primitive panicked: {}",
                d.message
            );
        }
    });
}
