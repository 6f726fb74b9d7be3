// poc-host-cpp — the .NET scenario runner (poc-scenarios/Poc.Scenarios) in a process whose main
// is C++. This program loads .NET itself through nethost and hostfxr and calls the runner's
// [UnmanagedCallersOnly] entry point, so `scripts/run --host cpp SCENARIO` runs the same scenario
// as `dotnet Poc.Scenarios.dll SCENARIO`, with C++ owning main. The C++ and Rust runtimes come
// from libpoc_native.so, which the runner loads as usual ([LibraryImport("poc_native")], found
// next to Poc.Scenarios.dll); this file needs neither Asio nor Poc's C++ library.
//
//   poc-host-cpp [--runner-dir DIR] [RUNNER ARGUMENTS...]
//
// Every argument except --runner-dir DIR (or --runner-dir=DIR) goes to the runner unchanged:
// scenario names, --messages N, --list, ... The runner's files are looked for in --runner-dir,
// else in $POC_SCENARIOS_DIR, else where scripts/run builds them
// (poc-scenarios/Poc.Scenarios/bin/Release/net10.0/, fixed when CMake configures this program).
//
// Hosting steps (the nethost/hostfxr API documented by Microsoft: "Write a custom .NET host"):
//   1. Split off --runner-dir, find Poc.Scenarios.dll and Poc.Scenarios.runtimeconfig.json.
//   2. nethost's get_hostfxr_path finds libhostfxr.so, looking from the runner's assembly as an
//      apphost would: app-local, $DOTNET_ROOT, the global install location; if that fails, the
//      `dotnet` on PATH is tried as the .NET root.
//   3. dlopen libhostfxr.so and look up hostfxr_initialize_for_runtime_config,
//      hostfxr_get_runtime_delegate and hostfxr_close.
//   4. hostfxr_initialize_for_runtime_config(Poc.Scenarios.runtimeconfig.json): resolves the
//      framework the runner was built for (Microsoft.NETCore.App 10) and prepares the runtime.
//   5. hostfxr_get_runtime_delegate(hdt_load_assembly_and_get_function_pointer) starts the
//      runtime (CoreCLR) and returns the loader function.
//   6. The loader loads Poc.Scenarios.dll (with its dependencies, Poc.Bridge.dll) and returns a
//      C function pointer to Poc.Scenarios.HostEntry.Run, an [UnmanagedCallersOnly] method.
//   7. Run(args, length, "C++ (hostfxr)"): the arguments go as UTF-8, each one followed by a NUL
//      byte (unambiguous: an argument cannot contain NUL). Run runs Runner.MainAsync, the code
//      path of the runner's own Main, on this thread and returns its exit code; it never throws.
//   8. hostfxr_close, and main returns the runner's exit code. (The runtime stays loaded until
//      the process ends: .NET cannot be unloaded.)
//
// Exit code: the runner's (0 every invariant held, 1 one broke, 2 bad arguments), or 3 when this
// host could not start .NET or load the runner (the reason is printed on stderr).
#include <coreclr_delegates.h>
#include <hostfxr.h>
#include <nethost.h>

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#ifndef POC_DEFAULT_RUNNER_DIR
#error "POC_DEFAULT_RUNNER_DIR (the runner's build output) must be defined by the build"
#endif

namespace {

namespace fs = std::filesystem;

constexpr const char* kProgram = "poc-host-cpp";
constexpr const char* kHostName = "C++ (hostfxr)";
constexpr const char* kRunnerDirEnv = "POC_SCENARIOS_DIR";
constexpr const char* kAssemblyFile = "Poc.Scenarios.dll";
constexpr const char* kRuntimeConfigFile = "Poc.Scenarios.runtimeconfig.json";
constexpr const char* kEntryType = "Poc.Scenarios.HostEntry, Poc.Scenarios";
constexpr const char* kEntryMethod = "Run";

constexpr int kExitUsage = 2;      // the runner's code for bad arguments
constexpr int kExitHostError = 3;  // .NET or the runner could not be loaded

// HostEntry.Run: int Run(byte* utf8Args, int length, byte* hostNameUtf8).
using host_entry_fn = int (*)(const unsigned char* utf8_args, int length, const char* host_name);

// hostfxr's and hostpolicy's own error messages (several lines each, already worded for a user)
// go to stderr as they are; this host's own summary follows them.
void write_hostfxr_error(const char_t* message) {
  std::fputs(message, stderr);
  std::fputc('\n', stderr);
}

// Prints "poc-host-cpp: error: ..." and returns the host's error code.
[[gnu::format(printf, 1, 2)]] int fail(const char* format, ...) {
  std::fflush(stdout);
  std::fprintf(stderr, "%s: error: ", kProgram);
  std::va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
  return kExitHostError;
}

std::string hex(std::int32_t code) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", static_cast<std::uint32_t>(code));
  return text;
}

// The few hostfxr status codes a user can act on (the rest are printed as hex).
const char* status_hint(std::int32_t code) {
  switch (static_cast<std::uint32_t>(code)) {
    case 0x80008083u: return "the host version is not compatible with hostfxr";
    case 0x8000808Cu: return "hostfxr could not read the runtimeconfig.json";
    case 0x80008093u: return "the runtimeconfig.json is invalid";
    case 0x80008096u: return "the .NET runtime named by the runtimeconfig.json (Microsoft.NETCore.App) is not installed";
    case 0x800080A5u: return "the runtime is already initialised with other properties";
    case 0x80070002u: return "a file was not found (is the runner's build complete?)";
    case 0x80131522u: return "type not found: Poc.Scenarios.HostEntry (rebuild the runner)";
    case 0x80131513u: return "method not found: HostEntry.Run (rebuild the runner)";
    default: return "";
  }
}

// The `dotnet` executable on PATH, its symlinks resolved; empty when there is none.
fs::path dotnet_on_path() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return {};
  std::string_view rest(path);
  while (true) {
    std::size_t colon = rest.find(':');
    std::string_view dir = rest.substr(0, colon);
    if (!dir.empty()) {
      fs::path candidate = fs::path(dir) / "dotnet";
      if (::access(candidate.c_str(), X_OK) == 0) {
        std::error_code ec;
        fs::path real = fs::canonical(candidate, ec);
        return ec ? candidate : real;
      }
    }
    if (colon == std::string_view::npos) return {};
    rest.remove_prefix(colon + 1);
  }
}

// Step 2: libhostfxr.so's path, or empty (with the reason printed).
std::string find_hostfxr(const fs::path& assembly) {
  std::string assembly_text = assembly.string();
  get_hostfxr_parameters params{sizeof(get_hostfxr_parameters), assembly_text.c_str(), nullptr};
  std::vector<char_t> buffer(PATH_MAX);
  std::size_t size = buffer.size();
  int rc = get_hostfxr_path(buffer.data(), &size, &params);
  if (rc == static_cast<int>(0x80008098u)) {  // HostApiBufferTooSmall: size is what it needs
    buffer.resize(size);
    rc = get_hostfxr_path(buffer.data(), &size, &params);
  }
  if (rc == 0) return buffer.data();

  // Not app-local, no $DOTNET_ROOT, no global install: try the `dotnet` on PATH.
  fs::path dotnet = dotnet_on_path();
  if (!dotnet.empty()) {
    std::string root = dotnet.parent_path().string();
    get_hostfxr_parameters from_root{sizeof(get_hostfxr_parameters), nullptr, root.c_str()};
    size = buffer.size();
    if (get_hostfxr_path(buffer.data(), &size, &from_root) == 0) return buffer.data();
  }
  fail(".NET was not found (nethost's get_hostfxr_path: %s; no usable `dotnet` on PATH).\n"
       "       Install the .NET 10 runtime (scripts/setup does), or set DOTNET_ROOT to its directory.",
       hex(rc).c_str());
  return {};
}

// Step 1: --runner-dir DIR / --runner-dir=DIR is ours, everything else is the runner's.
struct command_line {
  std::string runner_dir;  // empty: not given
  std::vector<std::string> runner_args;
};

bool parse(int argc, char** argv, command_line& out) {
  constexpr std::string_view option = "--runner-dir";
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == option) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: --runner-dir needs a directory\n", kProgram);
        return false;
      }
      out.runner_dir = argv[++i];
    } else if (a.size() > option.size() && a.starts_with(option) && a[option.size()] == '=') {
      out.runner_dir = a.substr(option.size() + 1);
    } else {
      out.runner_args.emplace_back(a);
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // 1. Where the runner is, and what to pass to it.
  command_line cmd;
  if (!parse(argc, argv, cmd)) {
    std::fprintf(stderr, "usage: %s [--runner-dir DIR] [SCENARIO...] [runner options]\n", kProgram);
    return kExitUsage;
  }
  std::string origin = "--runner-dir";
  if (cmd.runner_dir.empty()) {
    const char* env = std::getenv(kRunnerDirEnv);
    if (env != nullptr && *env != '\0') {
      cmd.runner_dir = env;
      origin = std::string("$") + kRunnerDirEnv;
    } else {
      cmd.runner_dir = POC_DEFAULT_RUNNER_DIR;
      origin = "the default; --runner-dir DIR or $" + std::string(kRunnerDirEnv) + " choose another";
    }
  }
  std::error_code ec;
  fs::path dir = fs::absolute(cmd.runner_dir, ec);
  if (ec) dir = cmd.runner_dir;
  dir = dir.lexically_normal();
  fs::path assembly = dir / kAssemblyFile;
  fs::path config = dir / kRuntimeConfigFile;
  for (const fs::path& file : {assembly, config}) {
    if (!fs::is_regular_file(file, ec)) {
      return fail("the scenario runner is not built: %s not found (runner directory from %s).\n"
                  "       Build it with: dotnet build poc-scenarios/Poc.Scenarios/Poc.Scenarios.csproj -c Release\n"
                  "       (scripts/run does), or point --runner-dir / $%s at its output.",
                  file.c_str(), origin.c_str(), kRunnerDirEnv);
    }
  }

  // 2. Find hostfxr.
  std::string hostfxr_path = find_hostfxr(assembly);
  if (hostfxr_path.empty()) return kExitHostError;

  // 3. Load it and look up the three functions this host needs.
  void* hostfxr = ::dlopen(hostfxr_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (hostfxr == nullptr) return fail("cannot load %s: %s", hostfxr_path.c_str(), ::dlerror());
  auto symbol = [hostfxr](const char* name) { return ::dlsym(hostfxr, name); };
  auto init = reinterpret_cast<hostfxr_initialize_for_runtime_config_fn>(
      symbol("hostfxr_initialize_for_runtime_config"));
  auto get_delegate = reinterpret_cast<hostfxr_get_runtime_delegate_fn>(
      symbol("hostfxr_get_runtime_delegate"));
  auto close_context = reinterpret_cast<hostfxr_close_fn>(symbol("hostfxr_close"));
  auto set_error_writer = reinterpret_cast<hostfxr_set_error_writer_fn>(
      symbol("hostfxr_set_error_writer"));
  if (init == nullptr || get_delegate == nullptr || close_context == nullptr) {
    return fail("%s lacks the hosting API (hostfxr_initialize_for_runtime_config...): .NET 3.0 or later is needed",
                hostfxr_path.c_str());
  }
  if (set_error_writer != nullptr) set_error_writer(write_hostfxr_error);

  // 4. Initialise for the runner's runtimeconfig.json. The .NET root is the directory that holds
  //    host/fxr/<version>/libhostfxr.so.
  fs::path fxr_dir = fs::path(hostfxr_path).parent_path();
  std::string dotnet_root;
  if (fxr_dir.parent_path().filename() == "fxr" && fxr_dir.parent_path().parent_path().filename() == "host") {
    dotnet_root = fxr_dir.parent_path().parent_path().parent_path().string();
  }
  std::string host_path;
  if (fs::path self = fs::read_symlink("/proc/self/exe", ec); !ec) host_path = self.string();
  hostfxr_initialize_parameters init_params{sizeof(hostfxr_initialize_parameters),
                                            host_path.empty() ? nullptr : host_path.c_str(),
                                            dotnet_root.empty() ? nullptr : dotnet_root.c_str()};
  hostfxr_handle context = nullptr;
  std::int32_t rc = init(config.c_str(), &init_params, &context);
  if (rc < 0 || context == nullptr) {  // 0, 1, 2 are the success codes
    if (context != nullptr) close_context(context);
    return fail("hostfxr_initialize_for_runtime_config(%s) failed: %s %s", config.c_str(),
                hex(rc).c_str(), status_hint(rc));
  }

  // 5. Start the runtime and get the loader.
  void* loader_ptr = nullptr;
  rc = get_delegate(context, hdt_load_assembly_and_get_function_pointer, &loader_ptr);
  if (rc < 0 || loader_ptr == nullptr) {
    close_context(context);
    return fail("hostfxr_get_runtime_delegate(load_assembly_and_get_function_pointer) failed: %s %s",
                hex(rc).c_str(), status_hint(rc));
  }
  auto load_and_get = reinterpret_cast<load_assembly_and_get_function_pointer_fn>(loader_ptr);

  // 6. Load the runner and get HostEntry.Run.
  void* entry_ptr = nullptr;
  rc = load_and_get(assembly.c_str(), kEntryType, kEntryMethod, UNMANAGEDCALLERSONLY_METHOD, nullptr,
                    &entry_ptr);
  if (rc < 0 || entry_ptr == nullptr) {
    close_context(context);
    return fail("cannot get %s::%s from %s: %s %s\n"
                "       (COREHOST_TRACE=1 shows the loader's details)",
                kEntryType, kEntryMethod, assembly.c_str(), hex(rc).c_str(), status_hint(rc));
  }
  auto run = reinterpret_cast<host_entry_fn>(entry_ptr);

  // 7. Encode the arguments (UTF-8, each one NUL-terminated) and run the runner.
  std::vector<unsigned char> encoded;
  for (const std::string& a : cmd.runner_args) {
    encoded.insert(encoded.end(), a.begin(), a.end());
    encoded.push_back(0);
  }
  if (encoded.size() > static_cast<std::size_t>(INT_MAX)) {
    close_context(context);
    return fail("the arguments are too long (%zu bytes)", encoded.size());
  }
  std::fflush(stdout);  // .NET writes to the same file descriptors through its own buffers
  int exit_code = run(encoded.empty() ? nullptr : encoded.data(), static_cast<int>(encoded.size()), kHostName);

  // 8. Release the host context; the runner's exit code is ours.
  close_context(context);
  return exit_code;
}
