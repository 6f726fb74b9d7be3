//! Compiles the strategy shim (shim/mayon.cpp: a re-implementation of mayon asio-poc's
//! std::promise/std::future send over an Asio concurrent_channel) into a static library linked
//! into poc-bench-native-rust. libstdc++ is linked by poc-cpp-sys (with libpoc_cpp.a); the shim is
//! compiled with the same Asio configuration as poc_cpp (ASIO_STANDALONE, ASIO_NO_DEPRECATED).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=shim/mayon.cpp");
    cc::Build::new()
        .cpp(true)
        .file("shim/mayon.cpp")
        .flag("-std=c++20")
        .flag("-pthread")
        .define("ASIO_STANDALONE", None)
        .define("ASIO_NO_DEPRECATED", None)
        .warnings(true)
        .extra_warnings(true)
        .compile("poc_bench_mayon_shim");
    // std::thread: pthread (also part of Rust's std on Linux; explicit for clarity).
    println!("cargo:rustc-link-lib=dylib=pthread");
}
