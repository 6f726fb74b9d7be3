// poc_bench_micro_cpp — Google Benchmark microbenchmarks of single operations of Poc's C++ import
// path, beside a plain-Asio baseline (bench/native/README.md, "micro-cpp.json"):
//
//   import_try_send_try_receive_rust_channel          poc::port_sender::try_send + port_receiver::
//                                                     try_receive on a Rust-owned channel
//   import_async_send_async_receive_callbacks_rust_channel
//                                                     async_send then async_receive (fast path),
//                                                     plain callback handlers, io_context run by
//                                                     the benchmark thread
//   import_call_rust_square_ready_callback            one READY call of poc_rust_square_fn through
//                                                     poc::async_fn::call + poc::async_await
//   import_call_cpp_square_ready_abi_callback         the same with poc_cpp_square_fn (C++ lent
//                                                     through the C ABI, imported back)
//   asio_concurrent_channel_try_send_try_receive      native baseline, no Poc code
//   asio_post_run_one                                 native baseline: the posted completion every
//                                                     async import op pays (post + run one handler)
//
// Usage: poc_bench_micro_cpp --out FILE [--quick] [--raw FILE] [--benchmark_... flags]
//   --quick   --benchmark_min_time=0.05 --benchmark_repetitions=3 (full: 0.5 and 5), always
//             --benchmark_report_aggregates_only=true; extra --benchmark_* flags are passed on
//             after these (so they override them) and are named in the output's "tool".
//   --raw F   also Google Benchmark's own JSON (--benchmark_out=F --benchmark_out_format=json).
// Writes {"runtime": "C++", "tool": ..., "micro": [{"benchmark", "what", "mean_ns", "stddev_ns",
// "median_ns"}]} to FILE (written only when every benchmark ran and validated its work), prints
// one progress line per benchmark. A benchmark whose operation gives a wrong value or status
// stops with state.SkipWithError: the program then exits 1 and writes nothing; bad arguments
// exit 2. Every wait for a handler is bounded (10 s).
#include <poc/bridge.h>

#include <benchmark/benchmark.h>

#include <asio/executor_work_guard.hpp>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <poc/async_fn.hpp>
#include <poc/future.hpp>
#include <poc/message.hpp>
#include <poc/port.hpp>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#ifndef POC_BENCHMARK_VERSION
#define POC_BENCHMARK_VERSION "?"
#endif

namespace {

using clock_type = std::chrono::steady_clock;
constexpr auto handler_limit = std::chrono::seconds(10);  // bound on any wait for a handler

// The runtimes every benchmark shares, made once in main (1 thread each, as everywhere in bench/).
poc_rust_runtime* g_rust = nullptr;
poc_cpp_runtime* g_cpp = nullptr;

/// Every benchmark that stopped with an error, whatever Google Benchmark reports of it (with
/// report_aggregates_only an errored repetition may not reach the reporter).
std::vector<std::string> g_failures;

/// Stops the benchmark with an error (state.SkipWithError) and remembers it: the program exits 1.
void skip(benchmark::State& state, const char* why) {
  g_failures.push_back(why);
  state.SkipWithError(why);
}

/// Runs one handler of `io` on this thread: a ready one at once, else waits (bounded) for one.
/// False when none ran within the bound.
bool run_one(asio::io_context& io) {
  return io.poll_one() != 0 || io.run_one_for(handler_limit) != 0;
}

/// Runs handlers until `done()`; false when a wait exceeded its bound.
template <typename Done>
bool run_until(asio::io_context& io, Done done) {
  while (!done())
    if (!run_one(io)) return false;
  return true;
}

// --- import: try_send + try_receive on a Rust-owned channel -------------------------------------

void import_try_send_try_receive(benchmark::State& state) {
  poc_sender s{};
  poc_receiver r{};
  if (poc_rust_channel_new(g_rust, 1, &s, &r) != POC_OK) {
    skip(state, "poc_rust_channel_new failed");
    return;
  }
  asio::io_context io;  // the ports' executor; nothing is run here
  poc::port_sender tx(io.get_executor(), s);
  poc::port_receiver rx(io.get_executor(), r);
  poc::message msg(0, {});
  for (auto _ : state) {
    if (!tx.try_send(msg)) {
      skip(state, "try_send failed");
      break;
    }
    auto got = rx.try_receive();
    if (!got || got->id != msg.id || !got->payload.empty()) {
      skip(state, "try_receive did not return the message sent");
      break;
    }
    benchmark::DoNotOptimize(got->id);
    ++msg.id;
  }
}

// --- import: async_send then async_receive, callback handlers, fast path -----------------------

/// Send message i, its handler receives, the receive's handler checks message i and sends i + 1:
/// a chain of plain callback handlers on `io`, run by the benchmark thread. Every op completes in
/// the port call (capacity 1, one message at a time); its handler is posted (never inline).
class send_receive_chain {
 public:
  send_receive_chain(asio::io_context& io, poc_sender s, poc_receiver r)
      : tx_(io.get_executor(), s), rx_(io.get_executor(), r) {}

  void start() { send(); }
  std::uint64_t received = 0;
  bool stop = false;
  const char* error = nullptr;

 private:
  void send() {
    tx_.async_send(poc::message(id_, {}), [this](std::error_code ec) {
      if (ec) {
        error = "async_send failed";
        return;
      }
      rx_.async_receive([this](std::error_code rec, poc::message m) {
        if (rec || m.id != id_ || !m.payload.empty()) {
          error = "async_receive did not return the message sent";
          return;
        }
        benchmark::DoNotOptimize(m.id);
        ++received;
        ++id_;
        if (!stop) send();
      });
    });
  }

  poc::port_sender tx_;
  poc::port_receiver rx_;
  std::uint64_t id_ = 0;
};

void import_async_send_async_receive(benchmark::State& state) {
  poc_sender s{};
  poc_receiver r{};
  if (poc_rust_channel_new(g_rust, 1, &s, &r) != POC_OK) {
    skip(state, "poc_rust_channel_new failed");
    return;
  }
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  send_receive_chain chain(io, s, r);
  chain.start();
  for (auto _ : state) {
    const std::uint64_t before = chain.received;
    if (!run_until(io, [&] { return chain.received != before || chain.error != nullptr; })) {
      skip(state, "no handler within 10 s");
      break;
    }
    if (chain.error != nullptr) {
      skip(state, chain.error);
      break;
    }
  }
  // End the chain: the op in flight completes (fast path), nothing new is started.
  chain.stop = true;
  const std::uint64_t last = chain.received + 1;
  if (chain.error == nullptr &&
      !run_until(io, [&] { return chain.received == last || chain.error != nullptr; }))
    skip(state, "the last send/receive did not complete within 10 s");
  work.reset();
  io.run();  // nothing left but what releasing the ports may have posted
}

// --- import: one READY call of a lent "square" through poc::async_fn + poc::async_await ---------

/// fn.call(x), then poc::async_await(future, io, lambda); the handler checks x * x and starts the
/// next call: a chain of plain callback handlers on `io`, run by the benchmark thread. A READY
/// square answers the first poll, which the importer posts: one handler run per call.
class call_chain {
 public:
  call_chain(asio::io_context& io, poc::async_fn fn) : io_(io), fn_(std::move(fn)) {}

  void start() { call(); }
  std::uint64_t done = 0;
  bool stop = false;
  const char* error = nullptr;

 private:
  void call() {
    const std::uint64_t x = done % 1'000'000 + 1;  // x * x fits: no overflow answer
    auto f = fn_.call(x);
    if (!f) {
      error = "the call did not start";
      return;
    }
    poc::async_await(*f, io_.get_executor(), [this, x](std::error_code ec, poc::message m) {
      if (ec || m.id != x * x || !m.payload.empty()) {
        error = "the call did not answer x * x";
        return;
      }
      benchmark::DoNotOptimize(m.id);
      ++done;
      if (!stop) call();
    });
  }

  asio::io_context& io_;
  poc::async_fn fn_;
};

void run_calls(benchmark::State& state, poc_async_fn raw) {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  call_chain chain(io, poc::async_fn(raw));
  chain.start();
  for (auto _ : state) {
    const std::uint64_t before = chain.done;
    if (!run_until(io, [&] { return chain.done != before || chain.error != nullptr; })) {
      skip(state, "no handler within 10 s");
      break;
    }
    if (chain.error != nullptr) {
      skip(state, chain.error);
      break;
    }
  }
  chain.stop = true;
  const std::uint64_t last = chain.done + 1;
  if (chain.error == nullptr &&
      !run_until(io, [&] { return chain.done == last || chain.error != nullptr; }))
    skip(state, "the last call did not complete within 10 s");
  work.reset();
  io.run();
}

void import_call_rust_square_ready(benchmark::State& state) {
  poc_async_fn fn{};
  if (poc_rust_square_fn(g_rust, POC_SQUARE_READY, 0, &fn) != POC_OK) {
    skip(state, "poc_rust_square_fn failed");
    return;
  }
  run_calls(state, fn);
}

void import_call_cpp_square_ready(benchmark::State& state) {
  poc_async_fn fn{};
  if (poc_cpp_square_fn(g_cpp, POC_SQUARE_READY, 0, &fn) != POC_OK) {
    skip(state, "poc_cpp_square_fn failed");
    return;
  }
  run_calls(state, fn);
}

// --- native baselines (no Poc code) ------------------------------------------------------------

/// The native message of bench/: an id and an owned payload (empty here).
struct native_msg {
  std::uint64_t id = 0;
  std::vector<std::uint8_t> payload;
};
using native_channel = asio::experimental::concurrent_channel<void(std::error_code, native_msg)>;

void asio_channel_try_send_try_receive(benchmark::State& state) {
  asio::io_context io;  // the channel's executor; nothing is run here
  native_channel ch(io.get_executor(), 1);
  std::uint64_t id = 0;
  for (auto _ : state) {
    if (!ch.try_send(std::error_code{}, native_msg{id, {}})) {
      skip(state, "try_send failed");
      break;
    }
    std::uint64_t got = ~std::uint64_t{0};
    const bool ok = ch.try_receive([&](std::error_code ec, native_msg m) {
      if (!ec && m.payload.empty()) got = m.id;
    });
    if (!ok || got != id) {
      skip(state, "try_receive did not return the message sent");
      break;
    }
    benchmark::DoNotOptimize(got);
    ++id;
  }
}

/// Each handler posts the next one to the same io_context; one iteration runs one handler.
struct post_chain {
  asio::io_context& io;
  std::uint64_t ran = 0;
  bool stop = false;
  void post() {
    asio::post(io, [this] {
      ++ran;
      if (!stop) post();
    });
  }
};

void asio_post_run_one(benchmark::State& state) {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  post_chain chain{io};
  chain.post();
  for (auto _ : state) {
    const std::uint64_t before = chain.ran;
    if (!run_one(io) || chain.ran != before + 1) {
      skip(state, "the posted handler did not run");
      break;
    }
    benchmark::DoNotOptimize(chain.ran);
  }
  chain.stop = true;
  work.reset();
  io.run();
}

// --- registry, reporter, output -----------------------------------------------------------------

struct micro {
  const char* name;
  void (*fn)(benchmark::State&);
  const char* what;
};

const micro micros[] = {
    {"import_try_send_try_receive_rust_channel", &import_try_send_try_receive,
     "poc::port_sender::try_send then poc::port_receiver::try_receive of one message {id, payload "
     "0} on a Rust-owned channel of capacity 1 (C++ import of the Rust ports); the received id is "
     "checked; ns per send+receive"},
    {"import_async_send_async_receive_callbacks_rust_channel", &import_async_send_async_receive,
     "poc::port_sender::async_send of {id, payload 0} on a Rust-owned channel of capacity 1, its "
     "plain callback handler starts poc::port_receiver::async_receive, whose handler checks the id "
     "and starts the next send; both ops complete inside the port call (fast path) and their "
     "handlers are posted to an io_context run by the benchmark thread (poll_one/run_one_for); ns "
     "per send+receive (two posted handlers)"},
    {"import_call_rust_square_ready_callback", &import_call_rust_square_ready,
     "one call of the Rust square lent function (poc_rust_square_fn, POC_SQUARE_READY) from C++: "
     "poc::async_fn::call({id = x}) then poc::async_await(future, io, callback); the importer "
     "posts the first poll, which answers; the handler checks x * x and starts the next call; "
     "io_context run by the benchmark thread; ns per call"},
    {"import_call_cpp_square_ready_abi_callback", &import_call_cpp_square_ready,
     "as import_call_rust_square_ready_callback with the C++ square lent through the C ABI "
     "(poc_cpp_square_fn, POC_SQUARE_READY: computed inside call, its future exported by the C++ "
     "future exporter) and imported back by C++; ns per call"},
    {"asio_concurrent_channel_try_send_try_receive", &asio_channel_try_send_try_receive,
     "native baseline, no Poc code: asio::experimental::concurrent_channel<void(std::error_code, "
     "msg)>(1) of {uint64_t id; std::vector<uint8_t> payload} (payload empty): try_send then "
     "try_receive (handler invoked inside the call), the id checked; ns per send+receive"},
    {"asio_post_run_one", &asio_post_run_one,
     "native baseline, no Poc code: asio::post of a plain handler to an io_context and "
     "io_context::poll_one running it on the benchmark thread (each handler posts the next): the "
     "posted completion every async import op above pays once per op; ns per handler"},
};

/// Prints one progress line per benchmark and keeps its aggregates (real time, ns).
class collecting_reporter : public benchmark::BenchmarkReporter {
 public:
  struct figures {
    double mean = NAN, stddev = NAN, median = NAN;
    long long repetitions = 0;
  };
  std::map<std::string, figures> results;
  std::vector<std::string> errors;
  clock_type::time_point t0 = clock_type::now();
  int total = 0, done = 0;

  bool ReportContext(const Context& ctx) override {
    std::printf("[micro-cpp] %d CPUs at %.0f MHz; Google Benchmark %s\n", ctx.cpu_info.num_cpus,
                ctx.cpu_info.cycles_per_second / 1e6, POC_BENCHMARK_VERSION);
    std::fflush(stdout);
    return true;
  }

  void ReportRuns(const std::vector<Run>& runs) override {
    std::string name;
    for (const Run& r : runs) {
      name = r.run_name.function_name;
      if (r.error_occurred) {
        errors.push_back(name + ": " + r.error_message);
        continue;
      }
      figures& f = results[name];
      if (r.run_type != Run::RT_Aggregate) continue;  // the repetitions' own runs
      const double ns = r.GetAdjustedRealTime() * to_ns(r.time_unit);
      if (r.aggregate_name == "mean") {
        f.mean = ns;
        f.repetitions = r.repetitions;
      } else if (r.aggregate_name == "median") {
        f.median = ns;
      } else if (r.aggregate_name == "stddev") {
        f.stddev = ns;
      }
    }
    if (name.empty()) return;
    ++done;
    const auto it = results.find(name);
    char line[400];
    if (it == results.end() || !errors.empty())
      std::snprintf(line, sizeof line, "%s: FAILED", name.c_str());
    else
      std::snprintf(line, sizeof line,
                    "%s: mean %.1f ns, median %.1f ns, stddev %.2f ns (%lld repetitions)",
                    name.c_str(), it->second.mean, it->second.median, it->second.stddev,
                    it->second.repetitions);
    std::printf("[micro-cpp %d/%d %.0fs] %s\n", done, total,
                std::chrono::duration<double>(clock_type::now() - t0).count(), line);
    std::fflush(stdout);
  }

 private:
  static double to_ns(benchmark::TimeUnit u) {
    switch (u) {
      case benchmark::kNanosecond: return 1.0;
      case benchmark::kMicrosecond: return 1e3;
      case benchmark::kMillisecond: return 1e6;
      case benchmark::kSecond: return 1e9;
    }
    return NAN;
  }
};

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"')
      out += "\\\"";
    else if (c == '\\')
      out += "\\\\";
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else
      out += c;
  }
  return out + "\"";
}

std::string num(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", x);
  return buf;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "poc_bench_micro_cpp: FAILED: %s\n", what.c_str());
  std::fflush(nullptr);
  std::_Exit(1);  // a runtime may still hold a thread: do not wait in destructors
}

}  // namespace

int main(int argc, char** argv) {
  std::string out, raw;
  bool quick = false;
  std::vector<std::string> extra;  // --benchmark_* flags passed on
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--out" && i + 1 < argc) {
      out = argv[++i];
    } else if (a == "--raw" && i + 1 < argc) {
      raw = argv[++i];
    } else if (a.rfind("--benchmark_", 0) == 0) {
      extra.push_back(a);
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: poc_bench_micro_cpp --out FILE [--quick] [--raw FILE] [--benchmark_... flags]\n");
      return 0;
    } else {
      std::fprintf(stderr,
                   "poc_bench_micro_cpp: unknown argument %s (usage: --out FILE [--quick] [--raw "
                   "FILE] [--benchmark_... flags])\n",
                   a.c_str());
      return 2;
    }
  }
  if (out.empty()) {
    std::fprintf(stderr, "poc_bench_micro_cpp: --out FILE is required\n");
    return 2;
  }
  const char* min_time = quick ? "0.05" : "0.5";
  const int repetitions = quick ? 3 : 5;
  std::vector<std::string> flags = {
      argv[0], std::string("--benchmark_min_time=") + min_time,
      "--benchmark_repetitions=" + std::to_string(repetitions),
      "--benchmark_report_aggregates_only=true"};
  if (!raw.empty()) {
    flags.push_back("--benchmark_out=" + raw);
    flags.push_back("--benchmark_out_format=json");
  }
  flags.insert(flags.end(), extra.begin(), extra.end());
  std::vector<char*> gb_argv;
  for (std::string& f : flags) gb_argv.push_back(f.data());
  gb_argv.push_back(nullptr);
  int gb_argc = static_cast<int>(flags.size());
  benchmark::Initialize(&gb_argc, gb_argv.data());
  if (benchmark::ReportUnrecognizedArguments(gb_argc, gb_argv.data())) return 2;

  std::string tool = std::string("Google Benchmark ") + POC_BENCHMARK_VERSION + " (min_time " +
                     min_time + " s, " + std::to_string(repetitions) +
                     " repetitions, report_aggregates_only; real time per iteration; mean, "
                     "median and stddev over the repetitions";
  for (const std::string& e : extra) tool += "; " + e;
  tool += std::string("; ") + (quick ? "quick" : "full") + ")";

  if (poc_rust_runtime_new(1, &g_rust) != POC_OK) fail("poc_rust_runtime_new");
  if (poc_cpp_runtime_new(1, &g_cpp) != POC_OK) fail("poc_cpp_runtime_new");
  for (const micro& m : micros)
    benchmark::RegisterBenchmark(m.name, m.fn)->Unit(benchmark::kNanosecond);

  collecting_reporter reporter;
  reporter.total = static_cast<int>(std::size(micros));
  const std::size_t ran = benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  poc_cpp_runtime_free(g_cpp);
  poc_rust_runtime_free(g_rust);
  if (reporter.errors.empty() && !g_failures.empty()) reporter.errors.push_back(g_failures.front());
  if (!reporter.errors.empty()) {
    std::string all;
    for (const std::string& e : reporter.errors) all += (all.empty() ? "" : "; ") + e;
    fail(all);
  }
  if (ran == 0) fail("no benchmark ran (filter?)");
  if (reporter.results.size() != ran)
    fail(std::to_string(ran) + " benchmarks ran, " + std::to_string(reporter.results.size()) +
         " reported figures");

  std::string js = "{\n  \"runtime\": \"C++\",\n  \"tool\": " + json_str(tool) + ",\n  \"micro\": [\n";
  bool first = true;
  for (const micro& m : micros) {
    const auto it = reporter.results.find(m.name);
    if (it == reporter.results.end()) continue;  // filtered out
    const auto& f = it->second;
    if (!std::isfinite(f.mean) || !std::isfinite(f.median) || !std::isfinite(f.stddev))
      fail(std::string(m.name) + ": no mean/median/stddev (repetitions < 2?)");
    js += std::string(first ? "" : ",\n") + "    {\"benchmark\": " + json_str(m.name) +
          ", \"what\": " + json_str(m.what) + ", \"mean_ns\": " + num(f.mean) +
          ", \"stddev_ns\": " + num(f.stddev) + ", \"median_ns\": " + num(f.median) + "}";
    first = false;
  }
  js += "\n  ]\n}\n";
  std::ofstream file(out);
  file << js;
  file.close();
  if (!file) fail("writing " + out);
  std::printf("[micro-cpp] done in %.0fs, wrote %s\n",
              std::chrono::duration<double>(clock_type::now() - reporter.t0).count(),
              out.c_str());
  return 0;
}
