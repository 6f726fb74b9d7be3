//! Finds libpoc_cpp.a (CMake's build of native-cpp/) and links it, with libstdc++, into the
//! crates that depend on this one. See src/lib.rs for the rules.

use std::env;
use std::path::{Path, PathBuf};

const LIB_FILE: &str = "libpoc_cpp.a";
const ENV_DIR: &str = "POC_CPP_LIB_DIR";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    // rust/poc-cpp-sys -> the workspace (repository) root.
    let root = manifest.join("../..");
    let root = root.canonicalize().unwrap_or(root);

    println!("cargo:rerun-if-env-changed={ENV_DIR}");
    println!("cargo:rerun-if-changed=build.rs");

    let (dir, from_env) = match env::var_os(ENV_DIR) {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            (if d.is_absolute() { d } else { root.join(d) }, true)
        }
        _ => (root.join("build").join("native-cpp"), false),
    };
    let lib = dir.join(LIB_FILE);
    // Rerun when the library appears or is rebuilt (cargo also reruns while it is missing).
    println!("cargo:rerun-if-changed={}", lib.display());

    if !lib.is_file() {
        fail(&lib, from_env);
    }

    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static=poc_cpp");
    // The C++ runtime library; pthread comes with Rust's std on Linux.
    println!("cargo:rustc-link-lib=dylib=stdc++");
    // For dependents' build scripts (DEP_POC_CPP_LIB_DIR), e.g. to find the headers' build.
    println!("cargo:lib_dir={}", dir.display());
    println!("cargo:root={}", root.display());
}

fn fail(lib: &Path, from_env: bool) -> ! {
    let origin = if from_env {
        format!("${ENV_DIR} points at {}", lib.parent().unwrap_or(lib).display())
    } else {
        format!("the default location; set ${ENV_DIR} to use another")
    };
    // Printed on stderr, which cargo shows for a failing build script; exit rather than panic,
    // so that the message is not buried under a backtrace.
    eprintln!("error: poc-cpp-sys: {} not found ({origin}).", lib.display());
    eprintln!("       Build the C++ side first: scripts/test does it, or");
    eprintln!("       cmake -S . -B build -G Ninja && cmake --build build");
    std::process::exit(1);
}
