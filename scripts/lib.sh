# Shared helpers for scripts/*: sourced, not run.
# shellcheck shell=bash
set -euo pipefail

# rustup installs into ~/.cargo/bin, which a non-login shell (CI) may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

POC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POC_BUILD="${POC_BUILD:-$POC_ROOT/build}"
POC_JOBS="${POC_JOBS:-$(nproc)}"
# Where Rust test binaries and Rust scenario executables find the C++ library (rust/poc-cpp-sys).
export POC_CPP_LIB_DIR="${POC_CPP_LIB_DIR:-$POC_BUILD/native-cpp}"

# step "what" cmd...: prints what it is doing, runs it, fails loudly with the command's exit code.
step() {
  local what="$1"; shift
  printf '\n==> %s\n' "$what"
  local t0=$SECONDS rc=0
  "$@" || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '\n!!! %s failed (exit %d): %s\n' "$what" "$rc" "$*" >&2
    exit "$rc"
  fi
  printf '    (%s: %ds)\n' "$what" "$((SECONDS - t0))"
}

die() { printf '!!! %s\n' "$*" >&2; exit 1; }

# Configure (once) and build the native side: C++ library, libpoc_native.so, tests, executables.
build_native() {
  if [ ! -f "$POC_BUILD/CMakeCache.txt" ]; then
    step "configure native build ($POC_BUILD)" \
      cmake -S "$POC_ROOT" -B "$POC_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  step "build native side (-j$POC_JOBS)" cmake --build "$POC_BUILD" -j "$POC_JOBS" "$@"
}

# Build the Rust scenario executables (target/release/mayon-*); they link the C++ library that
# build_native produced (rust/poc-cpp-sys finds it through POC_CPP_LIB_DIR).
build_rust_scenarios() {
  step "build Rust scenarios (cargo build --release -p poc-scenarios)" \
    cargo build --release -p poc-scenarios -j "$POC_JOBS"
}

# True when the Cargo workspace has at least one member crate.
have_rust_crates() {
  grep -Eq '^members *= *\[ *"' "$POC_ROOT/Cargo.toml"
}

# True when Poc.sln lists at least one project.
have_dotnet_projects() {
  grep -q '^Project(' "$POC_ROOT/Poc.sln"
}
