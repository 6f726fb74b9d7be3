//! Compiles csrc/layout.c — bridge.h as a C compiler sees it (sizes, alignments, offsets,
//! constants) — into a static library that is linked into the *test* binaries only
//! (`rustc-link-arg-tests`), never into the rlib/staticlib that ships. The `layout` test compares
//! it with src/ffi.rs, so a drift between the header and the Rust declarations fails `cargo test`.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let include = manifest.join("../../native-cpp/include");
    let header = include.join("poc/bridge.h");
    println!("cargo:rerun-if-changed=csrc/layout.c");
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-changed=build.rs");

    cc::Build::new()
        .file("csrc/layout.c")
        .include(&include)
        .flag("-std=c11")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .cargo_metadata(false)
        .compile("poc_layout");

    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    println!("cargo:rustc-link-arg-tests={}", out.join("libpoc_layout.a").display());
}
