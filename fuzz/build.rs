//! Embeds libtorch's folder as an rpath, as the main crate's build.rs does
//! for its own targets (a `rustc-link-arg` does not reach dependents), so
//! the fuzz binaries start without LD_LIBRARY_PATH. torch-sys (links =
//! "tch") exports the folder as DEP_TCH_LIBTORCH_LIB to direct dependents.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let lib_dir = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    if !lib_dir.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
}
