//! Build script: make the binary find libtorch by itself, and record versions.
//!
//! torch-sys (links = "tch") exports the folder holding libtorch as
//! `DEP_TCH_LIBTORCH_LIB`. We embed it as an rpath so `cargo run`, `cargo test`
//! and the built binary start without LD_LIBRARY_PATH. libtorch_cuda is not
//! linked here (the linker would drop it as unneeded anyway); `src/device.rs`
//! opens it at start-up only when an NVIDIA GPU is present.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=stdlib");

    let lib_dir = env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    if !lib_dir.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
    println!("cargo:rustc-env=VOXLAB_LIBTORCH_LIB={lib_dir}");
    route_torch_warnings(&lib_dir);

    // libtorch's version, from the torch package the library folder sits in.
    let torch_version = PathBuf::from(&lib_dir)
        .parent()
        .map(|torch_dir| torch_dir.join("version.py"))
        .and_then(|p| fs::read_to_string(p).ok())
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=VOXLAB_LIBTORCH_VERSION={torch_version}");

    // Versions of the crates that shape a script's behaviour, from Cargo.lock.
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let lock = fs::read_to_string(manifest_dir.join("Cargo.lock")).unwrap_or_default();
    for (krate, var) in [
        ("rhai", "VOXLAB_RHAI_VERSION"),
        ("tch", "VOXLAB_TCH_VERSION"),
    ] {
        println!("cargo:rustc-env={var}={}", locked_version(&lock, krate));
    }

    // The Rhai standard library shipped inside the binary: stdlib/NAME.rhai.
    let stdlib_dir = manifest_dir.join("stdlib");
    let mut entries: Vec<(String, PathBuf)> = fs::read_dir(&stdlib_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
                .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    let mut code = String::from("/// Rhai modules embedded from stdlib/: (import name, source).\n");
    code.push_str("pub static STDLIB: &[(&str, &str)] = &[\n");
    for (name, path) in &entries {
        code.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default()).join("stdlib.rs");
    if let Err(e) = fs::write(&out, code) {
        panic!("build.rs: cannot write {}: {e}", out.display());
    }
}

/// Compiles csrc/torch_warnings.cpp, the c10 warning handler that hands
/// libtorch's warnings to voxlab (src/torch_warnings.rs), against the same
/// libtorch headers and C++ ABI as torch-sys's own wrapper.
fn route_torch_warnings(lib_dir: &str) {
    println!("cargo:rerun-if-changed=csrc/torch_warnings.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let include = PathBuf::from(lib_dir)
        .parent()
        .map(|torch_dir| torch_dir.join("include"))
        .unwrap_or_default();
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(include)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .file("csrc/torch_warnings.cpp")
        .compile("voxlab_torch_warnings");
}

fn locked_version(lock: &str, krate: &str) -> String {
    let header = format!("name = \"{krate}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == header {
            if let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
            {
                return v.trim_matches('"').to_string();
            }
        }
    }
    "unknown".to_string()
}
