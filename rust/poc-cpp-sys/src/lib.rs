//! # poc-cpp-sys — links Poc's C++ side into Rust binaries
//!
//! This crate has no API. Its build script finds `libpoc_cpp.a` — the C++ library built by
//! CMake from `native-cpp/` (Asio runtime, `concurrent_channel` exporter, import adapter,
//! agents) — and tells cargo to link it, together with `libstdc++`, into whatever depends on
//! this crate. The declarations of the C++ exports are part of bridge.h and live with the other
//! bridge.h declarations, in `poc_bridge::ffi::cpp`.
//!
//! ## Use
//!
//! ```toml
//! [dev-dependencies]          # tests of poc-bridge
//! poc-cpp-sys = { path = "../poc-cpp-sys" }
//! ```
//!
//! and, in the crate root (or in every test file) that calls a C++ export:
//!
//! ```text
//! use poc_cpp_sys as _; // links libpoc_cpp.a: an unused dependency is not linked at all
//! ```
//!
//! Without that `use`, rustc leaves the crate (and its native library) out of the link and the
//! `poc_cpp_*` symbols come out undefined.
//!
//! ## Where the library comes from
//!
//! * `$POC_CPP_LIB_DIR` if set (absolute, or relative to the workspace root), else
//! * `<workspace root>/build/native-cpp`, where `cmake -S . -B build` puts it.
//!
//! A missing library fails the build with the command that makes it (`scripts/test` does it, or
//! `cmake -S . -B build -G Ninja && cmake --build build`). The build script reruns when the
//! variable or the library file changes, so a rebuilt C++ side is relinked.
//!
//! ## Why not a dependency of poc-bridge's library
//!
//! `poc-bridge` also builds as a `staticlib` that CMake links, whole-archive, with `libpoc_cpp.a`
//! into `libpoc_native.so` (the library .NET loads). If `poc-bridge` depended on this crate, the
//! C++ objects would be bundled into that staticlib too and every C++ symbol would be defined
//! twice. So `poc-bridge` uses it as a dev-dependency only, and executables (the scenarios)
//! depend on it directly.
#![no_std]
