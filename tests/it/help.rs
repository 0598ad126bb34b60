//! The help registry is complete, its examples run, and docs/reference.md is current.

use std::collections::BTreeSet;

use crate::common::{engine_in, eval_in};

/// Script functions registered by voxlab: every signature the engine has
/// that a bare Rhai engine lacks (operators and property getters excluded).
fn registered_names(vox: &voxlab::engine::Voxlab) -> BTreeSet<String> {
    let builtin: BTreeSet<String> = rhai::Engine::new()
        .gen_fn_signatures(false)
        .into_iter()
        .collect();
    vox.engine
        .gen_fn_signatures(false)
        .into_iter()
        .filter(|s| !builtin.contains(s))
        .filter_map(|s| s.split('(').next().map(str::to_string))
        .filter(|n| n.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
        .filter(|n| !n.starts_with("get$") && !n.starts_with("set$") && !n.starts_with("index$"))
        // Rhai's own printing functions (voxlab overrides print/to_string of floats).
        .filter(|n| n != "to_string" && n != "to_debug" && n != "print")
        .collect()
}

#[test]
fn every_registered_function_has_help_and_every_help_entry_exists() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let aliases: BTreeSet<&str> = voxlab::engine::tensor::ALIASES
        .iter()
        .map(|(a, _)| *a)
        .collect();
    for name in registered_names(&vox) {
        let documented = vox.help.get(&name).is_some()
            || aliases.contains(name.as_str())
            || !vox.help.types_with_member(&name).is_empty();
        assert!(documented, "'{name}' is registered without a help entry");
    }
    let registered = registered_names(&vox);
    for doc in vox.help.all() {
        // Type entries (Tensor, Volume) document properties; `save` is a method.
        if doc.name.starts_with(char::is_uppercase) || doc.name == "save" {
            continue;
        }
        assert!(
            registered.contains(doc.name),
            "help documents '{}' which is not registered",
            doc.name
        );
        assert!(
            doc.signature.starts_with(doc.name),
            "{}: signature should start with the name",
            doc.name
        );
        assert!(
            !doc.summary.is_empty() && !doc.example.is_empty(),
            "{}: summary and example are required",
            doc.name
        );
        assert!(
            voxlab::engine::help::DOMAINS
                .iter()
                .any(|(d, _)| *d == doc.domain),
            "{}: unknown domain {}",
            doc.name,
            doc.domain
        );
    }
}

#[test]
fn every_example_in_the_help_runs() {
    for doc in {
        let dir = tempfile::tempdir().expect("temp dir");
        engine_in(dir.path()).help.all().collect::<Vec<_>>()
    } {
        let dir = tempfile::tempdir().expect("temp dir");
        let vox = engine_in(dir.path());
        if let Err(e) = eval_in(&vox, doc.example) {
            panic!("the example of '{}' fails: {e}\n{}", doc.name, doc.example);
        }
    }
}

#[test]
fn reference_md_is_generated_from_the_registry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == vox.help.markdown(),
        "docs/reference.md is out of date: run `make docs`"
    );
}

#[test]
fn help_overview_lists_domains() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let text = vox.help.overview();
    for heading in [
        "Tensors:",
        "Files: npy, JSON, CSV:",
        "Figures:",
        "Runs, parameters",
    ] {
        assert!(text.contains(heading), "{text}");
    }
    let method = vox
        .help
        .describe("accuracy")
        .expect("a method is described by its type");
    assert!(method.contains("m.accuracy(images, labels)"), "{method}");
    let method = vox
        .help
        .describe("accuracy")
        .expect("a method is described by its type");
    assert!(method.contains("m.accuracy(images, labels)"), "{method}");
    let one = vox.help.describe("load_csv").expect("load_csv documented");
    assert!(
        one.contains("delimiter") && one.contains("example:"),
        "{one}"
    );
}
