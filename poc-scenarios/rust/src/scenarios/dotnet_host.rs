// poc-host-rust — the .NET scenario runner (poc-scenarios/Poc.Scenarios) in a process whose main
// is Rust. This program loads .NET itself through nethost and hostfxr and calls the runner's
// [UnmanagedCallersOnly] entry point, so `scripts/run --host rust SCENARIO` runs the same scenario
// as `dotnet Poc.Scenarios.dll SCENARIO`, with Rust owning main. The C++ and Rust runtimes come
// from libpoc_native.so, which the runner loads as usual ([LibraryImport("poc_native")], found
// next to Poc.Scenarios.dll); this binary uses neither poc-bridge nor the C++ library. The C++
// twin is poc-scenarios/host/dotnet_host.cpp (poc-host-cpp): same options, same exit codes.
//
//   poc-host-rust [--runner-dir DIR] [RUNNER ARGUMENTS...]
//
// Every argument except --runner-dir DIR (or --runner-dir=DIR) goes to the runner unchanged:
// scenario names, --messages N, --list, ... The runner's files are looked for in --runner-dir,
// else in $POC_SCENARIOS_DIR, else where scripts/run builds them
// (poc-scenarios/Poc.Scenarios/bin/Release/net10.0/, fixed by build.rs at build time).
//
// Hosting steps (the nethost/hostfxr API documented by Microsoft: "Write a custom .NET host"; the
// C declarations of nethost.h, hostfxr.h and coreclr_delegates.h are written out below):
//   1. Split off --runner-dir, find Poc.Scenarios.dll and Poc.Scenarios.runtimeconfig.json.
//   2. nethost's get_hostfxr_path (libnethost.a, linked by build.rs) finds libhostfxr.so, looking
//      from the runner's assembly as an apphost would: app-local, $DOTNET_ROOT, the global install
//      location; if that fails, the `dotnet` on PATH is tried as the .NET root.
//   3. dlopen libhostfxr.so and look up hostfxr_initialize_for_runtime_config,
//      hostfxr_get_runtime_delegate and hostfxr_close.
//   4. hostfxr_initialize_for_runtime_config(Poc.Scenarios.runtimeconfig.json): resolves the
//      framework the runner was built for (Microsoft.NETCore.App 10) and prepares the runtime.
//   5. hostfxr_get_runtime_delegate(hdt_load_assembly_and_get_function_pointer) starts the
//      runtime (CoreCLR) and returns the loader function.
//   6. The loader loads Poc.Scenarios.dll (with its dependencies, Poc.Bridge.dll) and returns a
//      C function pointer to Poc.Scenarios.HostEntry.Run, an [UnmanagedCallersOnly] method.
//   7. Run(args, length, "Rust (hostfxr)"): the arguments go as bytes (UTF-8), each one followed
//      by a NUL byte (unambiguous: an argument cannot contain NUL). Run runs Runner.MainAsync,
//      the code path of the runner's own Main, on this thread and returns its exit code; it never
//      throws (no unwinding crosses into Rust).
//   8. hostfxr_close, and the process exits with the runner's exit code. (The runtime stays
//      loaded until the process ends: .NET cannot be unloaded.)
//
// Exit code: the runner's (0 every invariant held, 1 one broke, 2 bad arguments), or 3 when this
// host could not start .NET or load the runner (the reason is printed on stderr).

use std::ffi::{c_char, c_int, c_void, CStr, CString, OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const PROGRAM: &str = "poc-host-rust";
const HOST_NAME: &CStr = c"Rust (hostfxr)";
const RUNNER_DIR_ENV: &str = "POC_SCENARIOS_DIR";
const ASSEMBLY_FILE: &str = "Poc.Scenarios.dll";
const RUNTIME_CONFIG_FILE: &str = "Poc.Scenarios.runtimeconfig.json";
const ENTRY_TYPE: &CStr = c"Poc.Scenarios.HostEntry, Poc.Scenarios";
const ENTRY_METHOD: &CStr = c"Run";
/// Set by build.rs: where scripts/run builds the runner.
const DEFAULT_RUNNER_DIR: &str = env!("POC_DEFAULT_RUNNER_DIR");

const EXIT_USAGE: u8 = 2; // the runner's code for bad arguments
const EXIT_HOST_ERROR: u8 = 3; // .NET or the runner could not be loaded

/// The C API of nethost.h, hostfxr.h and coreclr_delegates.h that this host uses (Linux:
/// `char_t` is `char`, the calling convention is the C one).
#[allow(non_camel_case_types, dead_code)]
mod sys {
    use std::ffi::{c_char, c_int, c_void};

    #[repr(C)]
    pub struct get_hostfxr_parameters {
        pub size: usize,
        pub assembly_path: *const c_char,
        pub dotnet_root: *const c_char,
    }

    #[repr(C)]
    pub struct hostfxr_initialize_parameters {
        pub size: usize,
        pub host_path: *const c_char,
        pub dotnet_root: *const c_char,
    }

    pub type hostfxr_handle = *mut c_void;

    /// enum hostfxr_delegate_type: hdt_load_assembly_and_get_function_pointer.
    pub const HDT_LOAD_ASSEMBLY_AND_GET_FUNCTION_POINTER: c_int = 5;
    /// HostApiBufferTooSmall, from get_hostfxr_path.
    pub const HOST_API_BUFFER_TOO_SMALL: i32 = 0x8000_8098_u32 as i32;
    /// UNMANAGEDCALLERSONLY_METHOD: the delegate type name for an `[UnmanagedCallersOnly]` method.
    pub const UNMANAGEDCALLERSONLY_METHOD: *const c_char = usize::MAX as *const c_char;

    pub type hostfxr_error_writer_fn = unsafe extern "C" fn(message: *const c_char);
    pub type hostfxr_set_error_writer_fn =
        unsafe extern "C" fn(writer: Option<hostfxr_error_writer_fn>) -> Option<hostfxr_error_writer_fn>;
    pub type hostfxr_initialize_for_runtime_config_fn = unsafe extern "C" fn(
        runtime_config_path: *const c_char,
        parameters: *const hostfxr_initialize_parameters,
        host_context_handle: *mut hostfxr_handle,
    ) -> i32;
    pub type hostfxr_get_runtime_delegate_fn =
        unsafe extern "C" fn(host_context_handle: hostfxr_handle, kind: c_int, delegate: *mut *mut c_void) -> i32;
    pub type hostfxr_close_fn = unsafe extern "C" fn(host_context_handle: hostfxr_handle) -> i32;
    pub type load_assembly_and_get_function_pointer_fn = unsafe extern "C" fn(
        assembly_path: *const c_char,
        type_name: *const c_char,
        method_name: *const c_char,
        delegate_type_name: *const c_char,
        reserved: *mut c_void,
        delegate: *mut *mut c_void,
    ) -> c_int;

    /// Poc.Scenarios.HostEntry.Run: int Run(byte* utf8Args, int length, byte* hostNameUtf8).
    pub type host_entry_fn =
        unsafe extern "C" fn(utf8_args: *const u8, length: c_int, host_name: *const c_char) -> c_int;

    // libnethost.a (build.rs).
    #[cfg(poc_nethost)]
    extern "C" {
        pub fn get_hostfxr_path(
            buffer: *mut c_char,
            buffer_size: *mut usize,
            parameters: *const get_hostfxr_parameters,
        ) -> c_int;
    }

    /// Without nethost (build.rs found no SDK) this host cannot find .NET; find_hostfxr says so
    /// before this is ever called.
    #[cfg(not(poc_nethost))]
    pub unsafe fn get_hostfxr_path(
        _buffer: *mut c_char,
        _buffer_size: *mut usize,
        _parameters: *const get_hostfxr_parameters,
    ) -> c_int {
        -1
    }

    // <dlfcn.h> (libc / libdl).
    pub const RTLD_NOW: c_int = 2;
    pub const RTLD_LOCAL: c_int = 0;
    extern "C" {
        pub fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
        pub fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
        pub fn dlerror() -> *mut c_char;
    }
}

/// A failure of the host itself, printed as "poc-host-rust: error: ...".
struct HostError(String);

fn hex(code: i32) -> String {
    format!("{:#010x}", code as u32)
}

/// The few hostfxr status codes a user can act on (the rest are printed as hex).
fn status_hint(code: i32) -> &'static str {
    match code as u32 {
        0x8000_8083 => "the host version is not compatible with hostfxr",
        0x8000_808C => "hostfxr could not read the runtimeconfig.json",
        0x8000_8093 => "the runtimeconfig.json is invalid",
        0x8000_8096 => "the .NET runtime named by the runtimeconfig.json (Microsoft.NETCore.App) is not installed",
        0x8000_80A5 => "the runtime is already initialised with other properties",
        0x8007_0002 => "a file was not found (is the runner's build complete?)",
        0x8013_1522 => "type not found: Poc.Scenarios.HostEntry (rebuild the runner)",
        0x8013_1513 => "method not found: HostEntry.Run (rebuild the runner)",
        _ => "",
    }
}

fn c_path(path: &Path) -> Result<CString, HostError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| HostError(format!("path with a NUL byte: {}", path.display())))
}

/// hostfxr's and hostpolicy's own error messages (several lines each, already worded for a
/// user) go to stderr as they are; this host's own summary follows them. Never panics: a panic
/// cannot unwind out of an `extern "C"` function.
unsafe extern "C" fn write_hostfxr_error(message: *const c_char) {
    if !message.is_null() {
        // SAFETY: hostfxr passes a NUL-terminated string that lives for the call.
        let text = unsafe { CStr::from_ptr(message) };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.to_bytes());
        let _ = err.write_all(b"\n");
    }
}

/// eprintln! without the panic when stderr is closed.
macro_rules! report {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Step 1: --runner-dir DIR / --runner-dir=DIR is ours, everything else is the runner's.
struct CommandLine {
    runner_dir: Option<OsString>,
    runner_args: Vec<OsString>,
}

fn parse(mut args: impl Iterator<Item = OsString>) -> Result<CommandLine, String> {
    const OPTION: &[u8] = b"--runner-dir";
    let mut cmd = CommandLine { runner_dir: None, runner_args: Vec::new() };
    while let Some(a) = args.next() {
        let bytes = a.as_bytes();
        if bytes == OPTION {
            cmd.runner_dir = Some(args.next().ok_or("--runner-dir needs a directory")?);
        } else if bytes.len() > OPTION.len() && bytes.starts_with(OPTION) && bytes[OPTION.len()] == b'=' {
            cmd.runner_dir = Some(OsString::from_vec(bytes[OPTION.len() + 1..].to_vec()));
        } else {
            cmd.runner_args.push(a);
        }
    }
    Ok(cmd)
}

/// The arguments as HostEntry.Run takes them: each one's bytes followed by a NUL.
fn encode_args(args: &[OsString]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for a in args {
        encoded.extend_from_slice(a.as_bytes());
        encoded.push(0);
    }
    encoded
}

/// The `dotnet` executable on PATH, symlinks resolved.
fn dotnet_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join("dotnet"))
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or(p))
}

/// Step 2: libhostfxr.so's path.
fn find_hostfxr(assembly: &Path) -> Result<PathBuf, HostError> {
    if cfg!(not(poc_nethost)) {
        return Err(HostError(format!(
            "{PROGRAM} was built without nethost (build.rs found no .NET SDK apphost pack, \
             packs/Microsoft.NETCore.App.Host.<rid>). Install the .NET 10 SDK, or set POC_NETHOST_DIR, \
             and rebuild: cargo build --release -p poc-scenarios"
        )));
    }
    let call = |assembly_path: Option<&CStr>, dotnet_root: Option<&CStr>| -> Result<PathBuf, i32> {
        let params = sys::get_hostfxr_parameters {
            size: std::mem::size_of::<sys::get_hostfxr_parameters>(),
            assembly_path: assembly_path.map_or(std::ptr::null(), CStr::as_ptr),
            dotnet_root: dotnet_root.map_or(std::ptr::null(), CStr::as_ptr),
        };
        let mut buffer: Vec<c_char> = vec![0; 4096];
        for _ in 0..2 {
            let mut size = buffer.len();
            // SAFETY: buffer holds `size` chars; params' strings outlive the call.
            let rc = unsafe { sys::get_hostfxr_path(buffer.as_mut_ptr(), &mut size, &params) };
            if rc == sys::HOST_API_BUFFER_TOO_SMALL && size > buffer.len() {
                buffer.resize(size, 0); // size is what it needs: try once more
                continue;
            }
            if rc != 0 {
                return Err(rc);
            }
            // SAFETY: on success the buffer holds a NUL-terminated path.
            let path = unsafe { CStr::from_ptr(buffer.as_ptr()) };
            return Ok(PathBuf::from(OsStr::from_bytes(path.to_bytes())));
        }
        Err(sys::HOST_API_BUFFER_TOO_SMALL)
    };

    let assembly_c = c_path(assembly)?;
    let rc = match call(Some(&assembly_c), None) {
        Ok(path) => return Ok(path),
        Err(rc) => rc,
    };
    // Not app-local, no $DOTNET_ROOT, no global install: try the `dotnet` on PATH.
    if let Some(root) = dotnet_on_path().and_then(|d| d.parent().map(Path::to_path_buf)) {
        if let Ok(path) = call(None, Some(&c_path(&root)?)) {
            return Ok(path);
        }
    }
    Err(HostError(format!(
        ".NET was not found (nethost's get_hostfxr_path: {}; no usable `dotnet` on PATH).\n       \
         Install the .NET 10 runtime (scripts/setup does), or set DOTNET_ROOT to its directory.",
        hex(rc)
    )))
}

/// Looks up a hostfxr export as a function pointer of type `F`.
///
/// # Safety
/// `F` must be the C function pointer type of that export.
unsafe fn export<F: Copy>(library: *mut c_void, name: &CStr) -> Option<F> {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: library is a live dlopen handle and name is NUL-terminated.
    let symbol = unsafe { sys::dlsym(library, name.as_ptr()) };
    // SAFETY: a non-null symbol is the function; the caller vouches for its type.
    (!symbol.is_null()).then(|| unsafe { std::mem::transmute_copy::<*mut c_void, F>(&symbol) })
}

/// Steps 1–8; returns the runner's exit code.
fn run(cmd: CommandLine) -> Result<u8, HostError> {
    // 1. Where the runner is.
    let (dir, origin) = match (cmd.runner_dir, std::env::var_os(RUNNER_DIR_ENV).filter(|d| !d.is_empty())) {
        (Some(d), _) => (PathBuf::from(d), "--runner-dir".to_string()),
        (None, Some(d)) => (PathBuf::from(d), format!("${RUNNER_DIR_ENV}")),
        (None, None) => (
            PathBuf::from(DEFAULT_RUNNER_DIR),
            format!("the default; --runner-dir DIR or ${RUNNER_DIR_ENV} choose another"),
        ),
    };
    let dir = match std::env::current_dir() {
        Ok(cwd) if dir.is_relative() => cwd.join(dir),
        _ => dir,
    };
    let assembly = dir.join(ASSEMBLY_FILE);
    let config = dir.join(RUNTIME_CONFIG_FILE);
    for file in [&assembly, &config] {
        if !file.is_file() {
            return Err(HostError(format!(
                "the scenario runner is not built: {} not found (runner directory from {origin}).\n       \
                 Build it with: dotnet build poc-scenarios/Poc.Scenarios/Poc.Scenarios.csproj -c Release\n       \
                 (scripts/run does), or point --runner-dir / ${RUNNER_DIR_ENV} at its output.",
                file.display()
            )));
        }
    }

    // 2. Find hostfxr.
    let hostfxr_path = find_hostfxr(&assembly)?;

    // 3. Load it and look up the functions this host needs.
    let hostfxr_c = c_path(&hostfxr_path)?;
    // SAFETY: a NUL-terminated path; loading hostfxr runs no code of ours.
    let hostfxr = unsafe { sys::dlopen(hostfxr_c.as_ptr(), sys::RTLD_NOW | sys::RTLD_LOCAL) };
    if hostfxr.is_null() {
        // SAFETY: dlerror returns a NUL-terminated message (or null) after a failed dlopen.
        let why = unsafe { sys::dlerror() };
        let why = if why.is_null() { "?".into() } else { unsafe { CStr::from_ptr(why) }.to_string_lossy() };
        return Err(HostError(format!("cannot load {}: {why}", hostfxr_path.display())));
    }
    // SAFETY: each type is the one hostfxr.h declares for that export.
    let (init, get_delegate, close, set_error_writer) = unsafe {
        (
            export::<sys::hostfxr_initialize_for_runtime_config_fn>(hostfxr, c"hostfxr_initialize_for_runtime_config"),
            export::<sys::hostfxr_get_runtime_delegate_fn>(hostfxr, c"hostfxr_get_runtime_delegate"),
            export::<sys::hostfxr_close_fn>(hostfxr, c"hostfxr_close"),
            export::<sys::hostfxr_set_error_writer_fn>(hostfxr, c"hostfxr_set_error_writer"),
        )
    };
    let (Some(init), Some(get_delegate), Some(close)) = (init, get_delegate, close) else {
        return Err(HostError(format!(
            "{} lacks the hosting API (hostfxr_initialize_for_runtime_config...): .NET 3.0 or later is needed",
            hostfxr_path.display()
        )));
    };
    if let Some(set_error_writer) = set_error_writer {
        // SAFETY: the writer is a plain function that lives as long as the process.
        unsafe { set_error_writer(Some(write_hostfxr_error)) };
    }

    // 4. Initialise for the runner's runtimeconfig.json. The .NET root is the directory that
    //    holds host/fxr/<version>/libhostfxr.so.
    let fxr = hostfxr_path.parent().and_then(Path::parent);
    let dotnet_root = match fxr.and_then(|f| Some((f, f.parent()?))) {
        Some((f, host)) if f.file_name() == Some(OsStr::new("fxr")) && host.file_name() == Some(OsStr::new("host")) => {
            host.parent().map(c_path).transpose()?
        }
        _ => None,
    };
    let host_path = std::env::current_exe().ok().map(|p| c_path(&p)).transpose()?;
    let init_params = sys::hostfxr_initialize_parameters {
        size: std::mem::size_of::<sys::hostfxr_initialize_parameters>(),
        host_path: host_path.as_deref().map_or(std::ptr::null(), CStr::as_ptr),
        dotnet_root: dotnet_root.as_deref().map_or(std::ptr::null(), CStr::as_ptr),
    };
    let config_c = c_path(&config)?;
    let mut context: sys::hostfxr_handle = std::ptr::null_mut();
    // SAFETY: valid strings and parameters for the call; context receives the handle.
    let rc = unsafe { init(config_c.as_ptr(), &init_params, &mut context) };
    if rc < 0 || context.is_null() {
        // 0, 1 and 2 are the success codes.
        if !context.is_null() {
            // SAFETY: a handle hostfxr returned, closed once.
            unsafe { close(context) };
        }
        return Err(HostError(format!(
            "hostfxr_initialize_for_runtime_config({}) failed: {} {}",
            config.display(),
            hex(rc),
            status_hint(rc)
        )));
    }
    // Closes the host context on every path from here on (step 8).
    struct Context(sys::hostfxr_handle, sys::hostfxr_close_fn);
    impl Drop for Context {
        fn drop(&mut self) {
            // SAFETY: the handle from hostfxr_initialize_for_runtime_config, closed once.
            unsafe { (self.1)(self.0) };
        }
    }
    let context = Context(context, close);

    // 5. Start the runtime and get the loader.
    let mut loader: *mut c_void = std::ptr::null_mut();
    // SAFETY: a live host context; loader receives a function pointer.
    let rc = unsafe { get_delegate(context.0, sys::HDT_LOAD_ASSEMBLY_AND_GET_FUNCTION_POINTER, &mut loader) };
    if rc < 0 || loader.is_null() {
        return Err(HostError(format!(
            "hostfxr_get_runtime_delegate(load_assembly_and_get_function_pointer) failed: {} {}",
            hex(rc),
            status_hint(rc)
        )));
    }
    // SAFETY: that delegate has the type coreclr_delegates.h declares.
    let load_and_get: sys::load_assembly_and_get_function_pointer_fn = unsafe { std::mem::transmute(loader) };

    // 6. Load the runner and get HostEntry.Run.
    let assembly_c = c_path(&assembly)?;
    let mut entry: *mut c_void = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings; entry receives the function pointer.
    let rc = unsafe {
        load_and_get(
            assembly_c.as_ptr(),
            ENTRY_TYPE.as_ptr(),
            ENTRY_METHOD.as_ptr(),
            sys::UNMANAGEDCALLERSONLY_METHOD,
            std::ptr::null_mut(),
            &mut entry,
        )
    };
    if rc < 0 || entry.is_null() {
        return Err(HostError(format!(
            "cannot get {}::{} from {}: {} {}\n       (COREHOST_TRACE=1 shows the loader's details)",
            ENTRY_TYPE.to_string_lossy(),
            ENTRY_METHOD.to_string_lossy(),
            assembly.display(),
            hex(rc),
            status_hint(rc)
        )));
    }
    // SAFETY: HostEntry.Run is [UnmanagedCallersOnly(CallConvCdecl)] with this signature.
    let run: sys::host_entry_fn = unsafe { std::mem::transmute(entry) };

    // 7. Run the runner with the arguments, each one NUL-terminated.
    let encoded = encode_args(&cmd.runner_args);
    let length = c_int::try_from(encoded.len())
        .map_err(|_| HostError(format!("the arguments are too long ({} bytes)", encoded.len())))?;
    let args_ptr = if encoded.is_empty() { std::ptr::null() } else { encoded.as_ptr() };
    // SAFETY: `length` bytes at args_ptr, a NUL-terminated host name; Run never throws.
    let code = unsafe { run(args_ptr, length, HOST_NAME.as_ptr()) };

    // 8. `context` closes the host context when it goes out of scope; the code is ours.
    drop(context);
    Ok(u8::try_from(code).unwrap_or(1))
}

fn main() -> ExitCode {
    let cmd = match parse(std::env::args_os().skip(1)) {
        Ok(cmd) => cmd,
        Err(why) => {
            report!("{PROGRAM}: {why}");
            report!("usage: {PROGRAM} [--runner-dir DIR] [SCENARIO...] [runner options]");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(cmd) {
        Ok(code) => ExitCode::from(code),
        Err(HostError(why)) => {
            report!("{PROGRAM}: error: {why}");
            ExitCode::from(EXIT_HOST_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn runner_dir_is_split_off_and_everything_else_passes_through() {
        let cmd = parse(os(&["ring", "--runner-dir", "/r", "--messages", "5", "--list"]).into_iter()).unwrap();
        assert_eq!(cmd.runner_dir, Some(OsString::from("/r")));
        assert_eq!(cmd.runner_args, os(&["ring", "--messages", "5", "--list"]));

        let cmd = parse(os(&["--runner-dir=a b", "x"]).into_iter()).unwrap();
        assert_eq!(cmd.runner_dir, Some(OsString::from("a b")));
        assert_eq!(cmd.runner_args, os(&["x"]));

        assert!(parse(os(&["ring", "--runner-dir"]).into_iter()).is_err());
    }

    #[test]
    fn arguments_are_nul_terminated_utf8() {
        assert_eq!(encode_args(&[]), b"");
        assert_eq!(encode_args(&os(&["async-calls", "", "a b", "Σ"])), "async-calls\0\0a b\0Σ\0".as_bytes());
    }
}
