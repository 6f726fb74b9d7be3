//! Build script of poc-scenarios: finds nethost for `poc-host-rust` (src/scenarios/dotnet_host.rs),
//! the Rust main that loads .NET itself, and tells that binary where the .NET scenario runner is
//! built. The other binaries (mayon-*) are not affected: every link argument here is for
//! `poc-host-rust` only (`cargo:rustc-link-arg-bin`).
//!
//! nethost (nethost.h, libnethost.a) ships in the .NET SDK's apphost pack:
//! `<dotnet root>/packs/Microsoft.NETCore.App.Host.<rid>/<version>/runtimes/<rid>/native`. The
//! newest version is used; `$POC_NETHOST_DIR` names that directory directly. The .NET roots tried:
//! `$DOTNET_ROOT`, the directory of the `dotnet` on PATH (symlinks resolved), /usr/share/dotnet,
//! /usr/lib/dotnet, /usr/local/share/dotnet.
//!
//! Without nethost the build does not fail (the mayon-* binaries do not need it): cargo prints a
//! warning and `poc-host-rust` is built as a stub that explains what is missing and exits 3.

use std::env;
use std::path::{Path, PathBuf};

const HOST_BIN: &str = "poc-host-rust";
const ENV_NETHOST_DIR: &str = "POC_NETHOST_DIR";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={ENV_NETHOST_DIR}");
    println!("cargo:rerun-if-env-changed=DOTNET_ROOT");
    println!("cargo::rustc-check-cfg=cfg(poc_nethost)");

    // Where scripts/run builds the runner (dotnet build -c Release): the default of --runner-dir.
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let scenarios = manifest.parent().map(Path::to_path_buf).unwrap_or_else(|| manifest.join(".."));
    let runner = scenarios.join("Poc.Scenarios").join("bin").join("Release").join("net10.0");
    println!("cargo:rustc-env=POC_DEFAULT_RUNNER_DIR={}", runner.display());

    let rid = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "linux-x64".to_string(),
        Ok("aarch64") => "linux-arm64".to_string(),
        Ok("arm") => "linux-arm".to_string(),
        Ok(other) => format!("linux-{other}"),
        Err(_) => "linux-x64".to_string(),
    };

    let Some(dir) = find_nethost(&rid) else {
        println!(
            "cargo:warning={HOST_BIN}: nethost not found (the .NET SDK's packs/Microsoft.NETCore.App.Host.{rid}); \
             {HOST_BIN} is built as a stub. Install the .NET 10 SDK or set {ENV_NETHOST_DIR}."
        );
        return;
    };
    println!("cargo:rustc-cfg=poc_nethost");
    let static_lib = dir.join("libnethost.a");
    println!("cargo:rerun-if-changed={}", static_lib.display());
    if static_lib.is_file() {
        // Static: no libnethost.so needed at run time. nethost is C++ (libstdc++); dlopen comes
        // from libc (glibc >= 2.34) or libdl.
        println!("cargo:rustc-link-arg-bin={HOST_BIN}={}", static_lib.display());
        println!("cargo:rustc-link-arg-bin={HOST_BIN}=-lstdc++");
    } else {
        println!("cargo:rustc-link-arg-bin={HOST_BIN}=-L{}", dir.display());
        println!("cargo:rustc-link-arg-bin={HOST_BIN}=-lnethost");
        println!("cargo:rustc-link-arg-bin={HOST_BIN}=-Wl,-rpath,{}", dir.display());
    }
    println!("cargo:rustc-link-arg-bin={HOST_BIN}=-ldl");
}

/// The nethost directory (with nethost.h and libnethost.a or .so), or None.
fn find_nethost(rid: &str) -> Option<PathBuf> {
    let usable = |d: &Path| {
        d.join("nethost.h").is_file() && (d.join("libnethost.a").is_file() || d.join("libnethost.so").is_file())
    };
    if let Some(d) = env::var_os(ENV_NETHOST_DIR).filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        if usable(&d) {
            return Some(d);
        }
        println!("cargo:warning={ENV_NETHOST_DIR}={} has no nethost.h + libnethost.a/.so; searching", d.display());
    }

    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(r) = env::var_os("DOTNET_ROOT").filter(|r| !r.is_empty()) {
        roots.push(PathBuf::from(r));
    }
    if let Some(dotnet) = dotnet_on_path() {
        if let Some(parent) = dotnet.parent() {
            roots.push(parent.to_path_buf());
        }
    }
    roots.extend(["/usr/share/dotnet", "/usr/lib/dotnet", "/usr/local/share/dotnet"].map(PathBuf::from));

    for root in roots {
        let pack = root.join("packs").join(format!("Microsoft.NETCore.App.Host.{rid}"));
        // A new SDK adds a version directory here, which changes the directory's mtime.
        if pack.is_dir() {
            println!("cargo:rerun-if-changed={}", pack.display());
        }
        let Ok(entries) = pack.read_dir() else { continue };
        let mut versions: Vec<(VersionKey, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .map(|e| (version_key(&e.file_name().to_string_lossy()), e.path()))
            .collect();
        versions.sort();
        for (_, version) in versions.into_iter().rev() {
            let native = version.join("runtimes").join(rid).join("native");
            if usable(&native) {
                return Some(native);
            }
        }
    }
    None
}

/// Sort key of a version directory: numbers, is-a-release, pre-release numbers.
type VersionKey = (Vec<u64>, bool, Vec<u64>);

/// Orders version directories: "10.0.12" -> ([10, 0, 12], true, []); a pre-release
/// ("10.0.0-rc.1" -> ([10, 0, 0], false, [1])) sorts below its release.
fn version_key(name: &str) -> VersionKey {
    let numbers = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).map(|p| p.parse().unwrap_or(0)).collect()
    };
    match name.split_once('-') {
        Some((core, pre)) => (numbers(core), false, numbers(pre)),
        None => (numbers(name), true, Vec::new()),
    }
}

/// The `dotnet` executable on PATH, symlinks resolved.
fn dotnet_on_path() -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|d| d.join("dotnet")).find(|p| p.is_file()).map(|p| p.canonicalize().unwrap_or(p))
}
