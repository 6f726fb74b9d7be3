// poc_bench_native_cpp — the C++ figures of Poc's benchmark report that need no .NET:
//
//   native_throughput  a plain asio::experimental::concurrent_channel, one producer coroutine, one
//                      consumer coroutine on an io_context run by one thread (no Poc code on the
//                      message path);
//   native_latency     ping-pong between two coroutines of that io_context over two plain
//                      concurrent_channels;
//   latency            a C++ pinger coroutine on a poc_cpp_runtime awaiting Poc ports through the
//                      C++ import API (poc::port_sender / poc::port_receiver, use_awaitable), with
//                      an echo agent of the C++ or the Rust runtime on the other side;
//   native_calls       what awaiting an async operation costs natively in Asio (ready / posted);
//   allocations        heap allocations per message of the C++ import path (port_sender /
//                      port_receiver, coroutines and callbacks) on Rust-owned channels, fast and
//                      pending path, counted by this program's replacements of the global operator
//                      new and of aligned_alloc (counting only during that section);
//   call_allocations   heap allocations per async call of a C++ caller awaiting the Rust
//                      "square" lent function (READY / POSTED) through poc::async_call (coroutine)
//                      and poc::async_await (callback handler), counted the same way.
//
// Usage: poc_bench_native_cpp --out FILE [--quick]. Writes one JSON object to FILE (schema and
// methodology: bench/native/README.md), prints one progress line per figure. Every figure
// validates its own work (counts, order, payload bytes, checksums); a failure exits 1 with a
// message, bad arguments exit 2. A wait that exceeds its bound is a failure (the process then
// exits at once rather than hang in destructors).
#include <poc/bridge.h>

#include <algorithm>
#include <atomic>
#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <memory>
#include <malloc.h>  // memalign
#include <new>
#include <functional>
#include <future>
#include <poc/async_fn.hpp>
#include <poc/future.hpp>
#include <poc/message.hpp>
#include <poc/port.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "c_runtime.hpp"  // poc_cpp_runtime -> its poc::runtime (the pinger runs on its executor)

// --- counting operator new and aligned_alloc (the allocation sections) ------------------------
//
// Every replaceable global operator new / delete of this program (plain, array, nothrow, aligned,
// sized) is replaced below, and so is C's aligned_alloc: Asio's recycling allocator (handler ops,
// posted completions, awaitable frames) keeps a small per-thread cache and, when the cache cannot
// serve a block (e.g. on a thread that is not running an io_context), allocates it with
// std::aligned_alloc, not operator new. While alloc_count::on is set (only during the allocation
// sections) each allocation adds 1 and its size to process-wide relaxed atomic counters, whatever
// thread makes it (aligned_alloc calls also to a counter of their own); otherwise the cost is one
// relaxed load of a flag nobody writes, in front of malloc/memalign — so the other figures of this
// program are not distorted. The Rust exporter (the Rust staticlib) allocates with Rust's
// allocator, i.e. malloc / posix_memalign, neither operator new nor aligned_alloc: it is not
// counted, which is what "the C++ import path" means here.
namespace alloc_count {
std::atomic<bool> on{false};
std::atomic<std::uint64_t> allocs{0};
std::atomic<std::uint64_t> bytes{0};
std::atomic<std::uint64_t> aligned_allocs{0};  // of `allocs`: the aligned_alloc calls

inline void note(std::size_t n) noexcept {
  if (on.load(std::memory_order_relaxed)) {
    allocs.fetch_add(1, std::memory_order_relaxed);
    bytes.fetch_add(n, std::memory_order_relaxed);
  }
}
inline void note_aligned_alloc(std::size_t n) noexcept {
  if (on.load(std::memory_order_relaxed)) {
    aligned_allocs.fetch_add(1, std::memory_order_relaxed);
    allocs.fetch_add(1, std::memory_order_relaxed);
    bytes.fetch_add(n, std::memory_order_relaxed);
  }
}

void* plain(std::size_t n, bool nothrow) {
  note(n);
  if (n == 0) n = 1;
  for (;;) {
    if (void* p = std::malloc(n)) return p;
    std::new_handler h = std::get_new_handler();
    if (h == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    h();
  }
}

void* aligned(std::size_t n, std::align_val_t al, bool nothrow) {
  note(n);
  std::size_t a = static_cast<std::size_t>(al);
  if (a < sizeof(void*)) a = sizeof(void*);
  const std::size_t size = n == 0 ? a : (n + a - 1) / a * a;  // aligned_alloc: a multiple of a
  for (;;) {
    if (void* p = ::memalign(a, size)) return p;  // not aligned_alloc: counted once
    std::new_handler h = std::get_new_handler();
    if (h == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    h();
  }
}
}  // namespace alloc_count

// C's aligned_alloc (glibc's is memalign with a size check): Asio's allocations that miss its
// per-thread cache. The program's definition takes precedence over glibc's for every caller.
extern "C" void* aligned_alloc(std::size_t a, std::size_t n) noexcept {
  alloc_count::note_aligned_alloc(n);
  return ::memalign(a, n);
}

void* operator new(std::size_t n) { return alloc_count::plain(n, false); }
void* operator new[](std::size_t n) { return alloc_count::plain(n, false); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return alloc_count::plain(n, true);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return alloc_count::plain(n, true);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a) { return alloc_count::aligned(n, a, false); }
void* operator new[](std::size_t n, std::align_val_t a) { return alloc_count::aligned(n, a, false); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return alloc_count::aligned(n, a, true);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return alloc_count::aligned(n, a, true);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }


namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t capacity = 1024;  // the .NET driver's throughput capacity
// Threads of every runtime here: the default of Poc.Bridge's CppRuntime/RustRuntime (threads = 1),
// which the .NET benchmark uses for its Poc figures.
constexpr unsigned threads = 1;
constexpr std::size_t payloads[] = {0, 64, 4096};
constexpr std::size_t latency_payload = 64;
constexpr std::size_t latency_warmup = 1000;
constexpr auto limit = 120s;  // bound on any single wait

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

struct config {
  bool quick = false;
  int runs = 7;
  std::uint64_t messages = 200'000;
  std::size_t samples = 50'000;
  std::uint64_t ready_calls = 1'000'000;
  std::uint64_t posted_calls = 100'000;
};

struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail_hard(const std::string& what) {
  std::fprintf(stderr, "poc_bench_native_cpp: FAILED: %s\n", what.c_str());
  std::fflush(nullptr);
  std::_Exit(1);  // something is still running: do not wait for it in destructors
}

/// Waits (bounded) for a std::future and returns its value (rethrows what it holds).
template <typename T>
T wait(std::future<T>& f, const char* what) {
  if (f.wait_for(limit) != std::future_status::ready)
    fail_hard(std::string(what) + ": no result within 120 s");
  try {
    return f.get();
  } catch (const std::exception& e) {
    // Another coroutine may still wait on a channel: unwinding would hang in io_thread's join.
    fail_hard(std::string(what) + ": " + e.what());
  }
}

// --- statistics and output -------------------------------------------------------------------

struct stats {
  double median, min, max;
  int runs;
};

/// One warm-up run (discarded), then `runs` timed runs: median, min, max.
stats measure(int runs, const std::function<double()>& once) {
  (void)once();
  std::vector<double> xs;
  for (int i = 0; i < runs; ++i) xs.push_back(once());
  std::sort(xs.begin(), xs.end());
  const std::size_t n = xs.size();
  const double med = n % 2 == 1 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
  return {med, xs.front(), xs.back(), runs};
}

/// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<std::uint64_t>& sorted, double p) {
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]);
}

struct rtt {
  double p50, p99;
  std::size_t samples;
};

rtt rtt_of(std::vector<std::uint64_t> s) {
  std::sort(s.begin(), s.end());
  return {percentile(s, 50), percentile(s, 99), s.size()};
}

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"')
      out += "\\\"";
    else if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else
      out += c;
  }
  return out + "\"";
}

std::string num(double x, int decimals = 1) {
  if (!std::isfinite(x)) throw failure("non-finite figure");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
  return buf;
}

struct progress {
  int done = 0, total = 0;
  clock_type::time_point t0 = clock_type::now();
  void line(const std::string& what) {
    ++done;
    std::printf("[native-cpp %d/%d %.0fs] %s\n", done, total,
                std::chrono::duration<double>(clock_type::now() - t0).count(), what.c_str());
    std::fflush(stdout);
  }
};

/// An io_context run by one thread until destroyed (a plain Asio "runtime").
class io_thread {
 public:
  io_thread() : work_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~io_thread() {
    work_.reset();
    thread_.join();
  }
  asio::io_context& io() { return io_; }
  asio::io_context::executor_type executor() { return io_.get_executor(); }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

// --- native throughput -------------------------------------------------------------------------

/// The native message: an id and an owned payload (what poc::message is, without Poc).
struct native_msg {
  std::uint64_t id = 0;
  std::vector<std::uint8_t> payload;
};

using native_channel = asio::experimental::concurrent_channel<void(std::error_code, native_msg)>;

std::uint64_t sum_of(const native_msg& m) {
  return poc::checksum(poc_message_view{m.id, m.payload.data(), m.payload.size()});
}

native_msg with_pattern(std::uint64_t id, std::size_t len) {
  native_msg m{id, std::vector<std::uint8_t>(len)};
  poc::fill_pattern(id, m.payload);
  return m;
}

/// The Poc producer agent's work: a fresh patterned payload per message and its checksum.
asio::awaitable<std::uint64_t> producer(native_channel& ch, std::uint64_t n, std::size_t payload) {
  std::uint64_t sum = 0;
  for (std::uint64_t seq = 0; seq < n; ++seq) {
    native_msg m = with_pattern(poc::make_id(1, seq), payload);
    const std::uint64_t s = sum_of(m);
    auto [ec] = co_await ch.async_send(std::error_code{}, std::move(m), use_tuple);
    if (ec) throw failure("native send " + std::to_string(seq) + ": " + ec.message());
    sum += s;
  }
  co_return sum;
}

struct consumed {
  std::uint64_t count = 0, sum = 0, errors = 0;
};

/// The Poc consumer agent's checks (order, pattern, checksum). It receives exactly `n` messages:
/// concurrent_channel::close() does not complete a receive already waiting (asio issue #1575).
asio::awaitable<consumed> consumer(native_channel& ch, std::uint64_t n, std::size_t payload) {
  consumed c;
  std::uint64_t expected = 0;
  while (c.count < n) {
    auto [ec, m] = co_await ch.async_receive(use_tuple);
    if (ec) throw failure("native receive: " + ec.message());
    if (poc::seq_of(m.id) != expected || m.payload.size() != payload ||
        !poc::check_pattern(m.id, m.payload))
      ++c.errors;
    expected = poc::seq_of(m.id) + 1;
    c.sum += sum_of(m);
    ++c.count;
  }
  co_return c;
}

double native_throughput_once(io_thread& rt, std::uint64_t n, std::size_t payload) {
  native_channel ch(rt.executor(), capacity);
  const auto t0 = clock_type::now();
  auto cons = asio::co_spawn(rt.executor(), consumer(ch, n, payload), asio::use_future);
  auto prod = asio::co_spawn(rt.executor(), producer(ch, n, payload), asio::use_future);
  const std::uint64_t sent = wait(prod, "native producer");
  const consumed c = wait(cons, "native consumer");
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (c.count != n || c.sum != sent || c.errors != 0)
    throw failure("concurrent_channel payload " + std::to_string(payload) + ": consumer got " +
                  std::to_string(c.count) + " of " + std::to_string(n) + ", " +
                  std::to_string(c.errors) +
                  " order/pattern errors, checksums differ: " + (c.sum != sent ? "yes" : "no"));
  return static_cast<double>(n) / secs;
}

// --- native latency ----------------------------------------------------------------------------

void check_reply(std::uint64_t id, std::uint64_t got_id, const std::vector<std::uint8_t>& p) {
  if (got_id != id || p.size() != latency_payload || !poc::check_pattern(id, p))
    throw failure("ping " + std::to_string(id) + ": the reply is id " + std::to_string(got_id) +
                  " with " + std::to_string(p.size()) + " bytes — not the bytes sent");
}

/// Echoes exactly `n` messages.
asio::awaitable<std::uint64_t> native_echo(native_channel& in, native_channel& out, std::size_t n) {
  std::uint64_t echoed = 0;
  while (echoed < n) {
    auto [ec, m] = co_await in.async_receive(use_tuple);
    if (ec) throw failure("native echo receive: " + ec.message());
    auto [sec] = co_await out.async_send(std::error_code{}, std::move(m), use_tuple);
    if (sec) throw failure("native echo send: " + sec.message());
    ++echoed;
  }
  co_return echoed;
}

asio::awaitable<std::vector<std::uint64_t>> native_pinger(native_channel& ping,
                                                          native_channel& pong,
                                                          std::size_t samples) {
  std::vector<std::uint64_t> out;
  out.reserve(samples);
  for (std::size_t i = 0; i < latency_warmup + samples; ++i) {
    native_msg m = with_pattern(i, latency_payload);
    const auto t = clock_type::now();
    auto [ec] = co_await ping.async_send(std::error_code{}, std::move(m), use_tuple);
    if (ec) throw failure("native ping send: " + ec.message());
    auto [rec, back] = co_await pong.async_receive(use_tuple);
    const auto dt = clock_type::now() - t;
    if (rec) throw failure("native pong receive: " + rec.message());
    check_reply(i, back.id, back.payload);
    if (i >= latency_warmup)
      out.push_back(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(dt).count()));
  }
  co_return out;
}

rtt native_latency(io_thread& rt, std::size_t samples) {
  native_channel ping(rt.executor(), capacity), pong(rt.executor(), capacity);
  const std::size_t total = latency_warmup + samples;
  auto echo = asio::co_spawn(rt.executor(), native_echo(ping, pong, total), asio::use_future);
  auto pinger = asio::co_spawn(rt.executor(), native_pinger(ping, pong, samples), asio::use_future);
  auto out = wait(pinger, "native pinger");
  const std::uint64_t echoed = wait(echo, "native echo");
  if (echoed != total || out.size() != samples)
    throw failure("native ping-pong: echoed " + std::to_string(echoed));
  return rtt_of(std::move(out));
}

// --- Poc latency: C++ pinger, echo agent of C++ or Rust
// -------------------------------------------

struct agent_done {
  std::promise<poc_agent_report> report;
  static void fn(void* user, const poc_agent_report* r) {
    static_cast<agent_done*>(user)->report.set_value(*r);
  }
};

std::string status_name(poc_status s) { return poc_status_str(s); }

asio::awaitable<std::vector<std::uint64_t>> poc_pinger(poc_sender x_tx, poc_receiver y_rx,
                                                       std::size_t samples) {
  auto ex = co_await asio::this_coro::executor;
  poc::port_sender tx(ex, x_tx);
  poc::port_receiver rx(ex, y_rx);
  std::vector<std::uint64_t> out;
  out.reserve(samples);
  for (std::size_t i = 0; i < latency_warmup + samples; ++i) {
    poc::message m(i, std::vector<std::uint8_t>(latency_payload));
    poc::fill_pattern(m.id, m.payload);
    const auto t = clock_type::now();
    auto [ec] = co_await tx.async_send(std::move(m), use_tuple);
    if (ec) throw failure("send on X: " + ec.message());
    auto [rec, back] = co_await rx.async_receive(use_tuple);
    const auto dt = clock_type::now() - t;
    if (rec) throw failure("receive on Y: " + rec.message());
    check_reply(i, back.id, back.payload);
    if (i >= latency_warmup)
      out.push_back(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(dt).count()));
  }
  (void)tx.release();  // X's only sender: the echo agent sees CLOSED and ends OK
  co_return out;
}

enum class peer { cpp, rust };
const char* name(peer p) { return p == peer::cpp ? "C++" : "Rust"; }

/// A C++ pinger coroutine on `cpp`'s io_context sends a 64-byte message on Poc channel X (owned
/// by `b`) and awaits the reply on Poc channel Y (owned by C++); an echo agent of `b` receives
/// from X and sends to Y.
rtt poc_latency(poc_cpp_runtime* cpp, poc_rust_runtime* rust, peer b, std::size_t samples) {
  poc_sender y_tx{}, x_tx{};
  poc_receiver y_rx{}, x_rx{};
  if (poc_status s = poc_cpp_channel_new(cpp, capacity, &y_tx, &y_rx); s != POC_OK)
    throw failure("poc_cpp_channel_new (Y): " + status_name(s));
  const poc_status xs = b == peer::cpp ? poc_cpp_channel_new(cpp, capacity, &x_tx, &x_rx)
                                       : poc_rust_channel_new(rust, capacity, &x_tx, &x_rx);
  if (xs != POC_OK) throw failure(std::string("channel X of ") + name(b) + ": " + status_name(xs));
  auto done = std::make_unique<agent_done>();
  auto report = done->report.get_future();
  const poc_status es =
      b == peer::cpp ? poc_cpp_echo_start(cpp, x_rx, y_tx, &agent_done::fn, done.get(), nullptr)
                     : poc_rust_echo_start(rust, x_rx, y_tx, &agent_done::fn, done.get(), nullptr);
  if (es != POC_OK) throw failure(std::string(name(b)) + " echo agent: " + status_name(es));
  auto pinger =
      asio::co_spawn(cpp->rt.get_executor(), poc_pinger(x_tx, y_rx, samples), asio::use_future);
  auto out = wait(pinger, "Poc pinger");
  const poc_agent_report r = wait(report, "echo agent's done");
  const std::uint64_t expect = latency_warmup + samples;
  if (r.status != POC_OK || r.messages != expect || out.size() != samples)
    throw failure(std::string(name(b)) + " echo agent ended " + status_name(r.status) + " after " +
                  std::to_string(r.messages) + " messages (expected OK after " +
                  std::to_string(expect) + ")");
  return rtt_of(std::move(out));
}

// --- native calls ------------------------------------------------------------------------------

/// An async operation that is complete when awaited: a coroutine that returns at once.
asio::awaitable<std::uint64_t> square_ready(std::uint64_t x) { co_return x* x; }

asio::awaitable<double> ready_calls(std::uint64_t n, std::uint64_t* acc_out) {
  const auto t0 = clock_type::now();
  std::uint64_t acc = 0;
  for (std::uint64_t i = 0; i < n; ++i) acc += co_await square_ready(i);
  *acc_out = acc;
  co_return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() /
      static_cast<double>(n);
}

/// Per call: asio::post to another io_context's thread, which completes it; the coroutine is then
/// resumed on its own executor (post's work dispatcher dispatches the handler back there). With
/// `worker` == nullptr: asio::post to the coroutine's own executor (queued, then resumed).
asio::awaitable<double> posted_calls(io_thread* worker, std::uint64_t n, std::uint64_t* acc_out) {
  const auto t0 = clock_type::now();
  std::uint64_t acc = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    if (worker != nullptr)
      co_await asio::post(worker->executor(), asio::use_awaitable);
    else
      co_await asio::post(asio::use_awaitable);
    acc += i * i;
  }
  *acc_out = acc;
  co_return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() /
      static_cast<double>(n);
}

enum class call_mode { ready, posted, posted_same_thread };

double calls_once(io_thread& rt, call_mode mode, io_thread* worker, std::uint64_t n) {
  std::uint64_t acc = 0;
  auto f = mode == call_mode::ready
               ? asio::co_spawn(rt.executor(), ready_calls(n, &acc), asio::use_future)
               : asio::co_spawn(rt.executor(),
                                posted_calls(mode == call_mode::posted ? worker : nullptr, n, &acc),
                                asio::use_future);
  const double ns = wait(f, "calls");
  std::uint64_t expect = 0;
  for (std::uint64_t i = 0; i < n; ++i) expect += i * i;
  if (acc != expect) throw failure("calls: the results do not add up");
  return ns;
}

// --- allocations per message on the C++ import path (Rust-owned channels) -----------------------
//
// Each op is bracketed by two snapshots of the counters: right before async_send/async_receive is
// initiated and at the start of its completion (the coroutine resumed / the handler called) — the
// *adapter* figure: what the import path allocated for the op on any thread (import op, posted
// completion, for a receive the copy of the payload into the new poc::message: one vector per
// message by design when the payload is not empty). The *total* figure counts the whole loop,
// also the test's own message per message (a vector of `payload` bytes; none for payload 0).
// Whether an op went PENDING is read from the port itself: the Rust ports are wrapped in a copy
// of their vtable whose send/recv forward to Rust's and record the status they returned.

constexpr std::size_t alloc_payloads[] = {0, 64};
constexpr std::uint64_t alloc_warmup = 1000;

struct snap {
  std::uint64_t allocs = 0, bytes = 0, aligned = 0;  // aligned: of allocs, the aligned_alloc calls
  snap operator-(const snap& o) const {
    return {allocs - o.allocs, bytes - o.bytes, aligned - o.aligned};
  }
};
snap snap_now() {
  return {alloc_count::allocs.load(std::memory_order_seq_cst),
          alloc_count::bytes.load(std::memory_order_seq_cst),
          alloc_count::aligned_allocs.load(std::memory_order_seq_cst)};
}

struct tally {
  std::uint64_t ops = 0, allocs = 0, bytes = 0, aligned = 0;
  void add(const snap& d) {
    ++ops;
    allocs += d.allocs;
    bytes += d.bytes;
    aligned += d.aligned;
  }
  double allocs_per_op() const { return ops == 0 ? 0.0 : double(allocs) / double(ops); }
  double bytes_per_op() const { return ops == 0 ? 0.0 : double(bytes) / double(ops); }
};

struct alloc_run {
  tally send_fast, send_pending, recv_fast, recv_pending, total;
  void send(bool pended, const snap& d) { (pended ? send_pending : send_fast).add(d); }
  void recv(bool pended, const snap& d) { (pended ? recv_pending : recv_fast).add(d); }
};

// Wrapped Rust port vtables: send/recv record the status the Rust port returned.
const poc_sender_vtable* real_tx_vt = nullptr;
const poc_receiver_vtable* real_rx_vt = nullptr;
poc_sender_vtable wrap_tx_vt{};
poc_receiver_vtable wrap_rx_vt{};
std::atomic<poc_status> last_send{POC_OK};
std::atomic<poc_status> last_recv{POC_OK};

poc_status wrapped_send(std::uint64_t h, const poc_message_view* m, poc_send_complete_fn f,
                        void* user, poc_op_id* op) {
  const poc_status s = real_tx_vt->send(h, m, f, user, op);
  last_send.store(s);
  return s;
}
poc_status wrapped_recv(std::uint64_t h, poc_recv_complete_fn deliver, poc_recv_complete_fn f,
                        void* user, poc_op_id* op) {
  const poc_status s = real_rx_vt->recv(h, deliver, f, user, op);
  last_recv.store(s);
  return s;
}
poc_sender wrap(poc_sender p) {
  if (real_tx_vt == nullptr) {
    real_tx_vt = p.vtable;
    wrap_tx_vt = *p.vtable;
    wrap_tx_vt.send = &wrapped_send;
  } else if (real_tx_vt != p.vtable) {
    throw failure("allocations: a Rust sender port with another vtable");
  }
  return {p.handle, &wrap_tx_vt};
}
poc_receiver wrap(poc_receiver p) {
  if (real_rx_vt == nullptr) {
    real_rx_vt = p.vtable;
    wrap_rx_vt = *p.vtable;
    wrap_rx_vt.recv = &wrapped_recv;
  } else if (real_rx_vt != p.vtable) {
    throw failure("allocations: a Rust receiver port with another vtable");
  }
  return {p.handle, &wrap_rx_vt};
}

poc::message patterned(std::uint64_t id, std::size_t payload) {
  poc::message m(id, std::vector<std::uint8_t>(payload));
  poc::fill_pattern(m.id, m.payload);
  return m;
}

void check_msg(std::uint64_t id, std::size_t payload, const poc::message& m) {
  if (m.id != id || m.payload.size() != payload || !poc::check_pattern(m.id, m.payload))
    fail_hard("allocations: expected message " + std::to_string(id) + ", got id " +
              std::to_string(m.id) + " with " + std::to_string(m.payload.size()) + " bytes");
}

void counting_on(snap& t0) {
  alloc_count::on.store(true);
  t0 = snap_now();
}
void counting_off(alloc_run& run, const snap& t0, std::uint64_t msgs) {
  const snap d = snap_now() - t0;
  alloc_count::on.store(false);
  run.total = {msgs, d.allocs, d.bytes, d.aligned};
}

// Fast path, coroutine: send a message on a Rust-owned channel of capacity 1, then receive it.
asio::awaitable<alloc_run> coro_fast(poc_sender xs, poc_receiver xr, std::size_t payload,
                                     std::uint64_t n) {
  auto ex = co_await asio::this_coro::executor;
  poc::port_sender tx(ex, xs);
  poc::port_receiver rx(ex, xr);
  alloc_run run;
  snap t0;
  for (std::uint64_t i = 0; i < alloc_warmup + n; ++i) {
    if (i == alloc_warmup) counting_on(t0);
    poc::message m = patterned(i, payload);
    const snap a = snap_now();
    auto [ec] = co_await tx.async_send(std::move(m), use_tuple);
    const snap b = snap_now();
    const bool sp = last_send.load() == POC_PENDING;
    if (ec) fail_hard("allocations: send: " + ec.message());
    auto [rec, back] = co_await rx.async_receive(use_tuple);
    const snap c = snap_now();
    const bool rp = last_recv.load() == POC_PENDING;
    if (rec) fail_hard("allocations: receive: " + rec.message());
    check_msg(i, payload, back);
    if (i >= alloc_warmup) {
      run.send(sp, b - a);
      run.recv(rp, c - b);
    }
  }
  counting_off(run, t0, n);
  co_return run;
}

// Pending path, coroutine: pairs of sends on Rust channel X (capacity 1), a Rust echo agent (its
// own thread) from X to Rust channel Y (capacity 1), pairs of receives on Y.
asio::awaitable<alloc_run> coro_echo(poc_sender xs, poc_receiver yr, std::size_t payload,
                                     std::uint64_t total_msgs) {
  auto ex = co_await asio::this_coro::executor;
  poc::port_sender tx(ex, xs);
  poc::port_receiver rx(ex, yr);
  alloc_run run;
  snap t0;
  for (std::uint64_t i = 0; i < total_msgs; i += 2) {
    if (i == alloc_warmup) counting_on(t0);
    poc::message m1 = patterned(i, payload), m2 = patterned(i + 1, payload);
    const snap a = snap_now();
    auto [e1] = co_await tx.async_send(std::move(m1), use_tuple);
    const snap b = snap_now();
    const bool p1 = last_send.load() == POC_PENDING;
    auto [e2] = co_await tx.async_send(std::move(m2), use_tuple);
    const snap c = snap_now();
    const bool p2 = last_send.load() == POC_PENDING;
    if (e1 || e2) fail_hard("allocations: send on X: " + (e1 ? e1 : e2).message());
    auto [r1, back1] = co_await rx.async_receive(use_tuple);
    const snap d = snap_now();
    const bool q1 = last_recv.load() == POC_PENDING;
    auto [r2, back2] = co_await rx.async_receive(use_tuple);
    const snap e = snap_now();
    const bool q2 = last_recv.load() == POC_PENDING;
    if (r1 || r2) fail_hard("allocations: receive on Y: " + (r1 ? r1 : r2).message());
    check_msg(i, payload, back1);
    check_msg(i + 1, payload, back2);
    if (i >= alloc_warmup) {
      run.send(p1, b - a);
      run.send(p2, c - b);
      run.recv(q1, d - c);
      run.recv(q2, e - d);
    }
  }
  counting_off(run, t0, total_msgs - alloc_warmup);
  (void)tx.release();  // X's only sender: the echo agent sees CLOSED and ends OK
  co_return run;
}

// The same two loops with plain callback handlers (lambdas; no associated allocator, so the
// import op uses asio::recycling_allocator). Each handler starts the next op; handlers are never
// invoked inline (port.hpp), so the chain does not grow the stack. Runs on the io_context's thread.
class callback_loop {
 public:
  callback_loop(asio::io_context::executor_type ex, poc_sender tx, poc_receiver rx,
                std::size_t payload, std::uint64_t total_msgs, bool echo)
      : tx_(ex, tx), rx_(ex, rx), payload_(payload), total_(total_msgs), echo_(echo) {}

  std::future<alloc_run> start() {
    auto f = done_.get_future();
    asio::post(tx_.get_executor(), [this] { next(); });
    return f;
  }

 private:
  bool counted() const { return i_ >= alloc_warmup; }

  void next() {
    if (i_ >= total_) {
      counting_off(run_, t0_, total_ - alloc_warmup);
      (void)tx_.release();
      done_.set_value(run_);
      return;
    }
    if (i_ == alloc_warmup) counting_on(t0_);
    if (!echo_) {
      poc::message m = patterned(i_, payload_);
      a_ = snap_now();
      tx_.async_send(std::move(m), [this](std::error_code ec) {
        const snap b = snap_now();
        const bool sp = last_send.load() == POC_PENDING;
        if (ec) fail_hard("allocations: send: " + ec.message());
        if (counted()) run_.send(sp, b - a_);
        a_ = snap_now();
        rx_.async_receive([this](std::error_code rec, poc::message back) {
          const snap c = snap_now();
          const bool rp = last_recv.load() == POC_PENDING;
          if (rec) fail_hard("allocations: receive: " + rec.message());
          check_msg(i_, payload_, back);
          if (counted()) run_.recv(rp, c - a_);
          ++i_;
          next();
        });
      });
      return;
    }
    // echo: send i, send i+1, receive i, receive i+1
    poc::message m1 = patterned(i_, payload_);
    a_ = snap_now();
    tx_.async_send(std::move(m1), [this](std::error_code e1) {
      const snap b = snap_now();
      const bool p1 = last_send.load() == POC_PENDING;
      if (e1) fail_hard("allocations: send on X: " + e1.message());
      if (counted()) run_.send(p1, b - a_);
      poc::message m2 = patterned(i_ + 1, payload_);
      a_ = snap_now();
      tx_.async_send(std::move(m2), [this](std::error_code e2) {
        const snap c = snap_now();
        const bool p2 = last_send.load() == POC_PENDING;
        if (e2) fail_hard("allocations: send on X: " + e2.message());
        if (counted()) run_.send(p2, c - a_);
        a_ = snap_now();
        rx_.async_receive([this](std::error_code r1, poc::message back1) {
          const snap d = snap_now();
          const bool q1 = last_recv.load() == POC_PENDING;
          if (r1) fail_hard("allocations: receive on Y: " + r1.message());
          check_msg(i_, payload_, back1);
          if (counted()) run_.recv(q1, d - a_);
          a_ = snap_now();
          rx_.async_receive([this](std::error_code r2, poc::message back2) {
            const snap e = snap_now();
            const bool q2 = last_recv.load() == POC_PENDING;
            if (r2) fail_hard("allocations: receive on Y: " + r2.message());
            check_msg(i_ + 1, payload_, back2);
            if (counted()) run_.recv(q2, e - a_);
            i_ += 2;
            next();
          });
        });
      });
    });
  }

  poc::port_sender tx_;
  poc::port_receiver rx_;
  std::size_t payload_;
  std::uint64_t total_;
  bool echo_;
  std::uint64_t i_ = 0;
  snap a_, t0_;
  alloc_run run_;
  std::promise<alloc_run> done_;
};

enum class style { coroutine, callback };

/// One scenario on `cpp`'s io_context (1 thread) against channels of `rust` (1 worker).
alloc_run alloc_scenario(poc_cpp_runtime* cpp, poc_rust_runtime* rust, style st, bool echo,
                         std::size_t payload, std::uint64_t n) {
  poc_sender x_tx{}, y_tx{};
  poc_receiver x_rx{}, y_rx{};
  if (poc_status s = poc_rust_channel_new(rust, 1, &x_tx, &x_rx); s != POC_OK)
    throw failure("poc_rust_channel_new: " + status_name(s));
  const std::uint64_t total = alloc_warmup + n + (n % 2);
  std::unique_ptr<agent_done> done;
  std::future<poc_agent_report> report;
  if (echo) {
    if (poc_status s = poc_rust_channel_new(rust, 1, &y_tx, &y_rx); s != POC_OK)
      throw failure("poc_rust_channel_new: " + status_name(s));
    done = std::make_unique<agent_done>();
    report = done->report.get_future();
    if (poc_status s = poc_rust_echo_start(rust, x_rx, y_tx, &agent_done::fn, done.get(), nullptr);
        s != POC_OK)
      throw failure("poc_rust_echo_start: " + status_name(s));
  }
  const poc_sender tx = wrap(x_tx);
  const poc_receiver rx = wrap(echo ? y_rx : x_rx);
  auto ex = cpp->rt.get_executor();
  alloc_run run;
  if (st == style::coroutine) {
    auto f = echo ? asio::co_spawn(ex, coro_echo(tx, rx, payload, total), asio::use_future)
                  : asio::co_spawn(ex, coro_fast(tx, rx, payload, total - alloc_warmup),
                                   asio::use_future);
    run = wait(f, "allocations (coroutine)");
  } else {
    auto loop = std::make_unique<callback_loop>(ex, tx, rx, payload, echo ? total : alloc_warmup + n, echo);
    auto f = loop->start();
    run = wait(f, "allocations (callbacks)");
    // Destroyed on the io_context's thread, after the last handler has returned.
    std::promise<void> released;
    auto g = released.get_future();
    asio::post(ex, [&] {
      loop.reset();
      released.set_value();
    });
    wait(g, "allocations (callbacks): releasing the ports");
  }
  if (echo) {
    const poc_agent_report r = wait(report, "Rust echo agent's done");
    if (r.status != POC_OK || r.messages != total)
      throw failure("Rust echo agent ended " + status_name(r.status) + " after " +
                    std::to_string(r.messages) + " messages (expected OK after " +
                    std::to_string(total) + ")");
  }
  return run;
}

std::string alloc_row(const std::string& path, std::size_t payload, const char* scope,
                      const tally& t, const std::string& what) {
  return "    {\"runtime\": \"C++\", \"path\": " + json_str(path) +
         ", \"payload\": " + std::to_string(payload) + ", \"scope\": " + json_str(scope) +
         ", \"bytes_per_msg\": " + num(t.bytes_per_op(), 3) +
         ", \"allocs_per_msg\": " + num(t.allocs_per_op(), 3) +
         ", \"messages\": " + std::to_string(t.ops) + ", \"allocs\": " + std::to_string(t.allocs) +
         ", \"bytes\": " + std::to_string(t.bytes) +
         ", \"aligned_allocs\": " + std::to_string(t.aligned) + ", \"what\": " + json_str(what) +
         "}";
}

std::vector<std::string> allocations(const config& cfg, progress& pr) {
  poc_cpp_runtime* cpp = nullptr;
  poc_rust_runtime* rust = nullptr;
  if (poc_status s = poc_cpp_runtime_new(threads, &cpp); s != POC_OK)
    throw failure("poc_cpp_runtime_new: " + status_name(s));
  if (poc_status s = poc_rust_runtime_new(threads, &rust); s != POC_OK)
    throw failure("poc_rust_runtime_new: " + status_name(s));
  const std::uint64_t n = cfg.samples;
  std::vector<std::string> rows;
  const std::string window =
      "counted from just before the op is initiated until its completion runs, on every thread "
      "(process-wide counting operator new and aligned_alloc — Asio's recycling allocator takes a "
      "block from aligned_alloc when its per-thread cache cannot serve it, e.g. on the Rust "
      "thread that completes a PENDING op; aligned_allocs says how many of allocs those are; the "
      "Rust exporter allocates with malloc through Rust's allocator and is not counted); PENDING "
      "or not as returned by the Rust port's send/recv";
  for (style st : {style::coroutine, style::callback}) {
    const std::string how = st == style::coroutine
                                ? "coroutine, as_tuple(use_awaitable)"
                                : "callback handler (lambda)";
    for (std::size_t payload : alloc_payloads) {
      const alloc_run fast = alloc_scenario(cpp, rust, st, false, payload, n);
      const alloc_run echo = alloc_scenario(cpp, rust, st, true, payload, n);
      const std::string note =
          payload == 0
              ? "payload 0: no vector anywhere, so this is the adapter's own allocation"
              : "payload " + std::to_string(payload) +
                    ": a receive includes its copy of the payload into the new poc::message's "
                    "vector (one allocation per message, by design); the test's own payload vector "
                    "is made before the window";
      const std::uint64_t f_ops = fast.send_fast.ops + fast.send_pending.ops;
      const std::uint64_t e_sends = echo.send_fast.ops + echo.send_pending.ops;
      const std::uint64_t e_recvs = echo.recv_fast.ops + echo.recv_pending.ops;
      struct cls {
        std::string path;
        tally t;
        std::string what;
      };
      const std::vector<cls> classes = {
          {"send fast (Rust channel, " + how + ")", fast.send_fast,
           "fast-path loop (one coroutine/handler chain sends a message on a Rust-owned channel of "
           "capacity 1, then receives it): poc::port_sender::async_send that completed in the "
           "port call (room; no PENDING); " + std::to_string(fast.send_fast.ops) + " of the loop's " +
               std::to_string(f_ops) + " sends"},
          {"recv fast (Rust channel, " + how + ")", fast.recv_fast,
           "fast-path loop: poc::port_receiver::async_receive that completed in the port call (a "
           "message was queued); " + std::to_string(fast.recv_fast.ops) + " of the loop's " +
               std::to_string(f_ops) + " receives"},
          {"send pending (Rust channel, " + how + ")", echo.send_pending,
           "echo loop (pairs of sends on Rust-owned channel X of capacity 1, a Rust echo agent on "
           "its own runtime thread, pairs of receives on Rust-owned channel Y of capacity 1): "
           "async_send that went PENDING (X full) and was completed by the Rust exporter's "
           "callback; " + std::to_string(echo.send_pending.ops) + " of the loop's " +
               std::to_string(e_sends) + " sends"},
          {"send fast, echo loop (Rust channel, " + how + ")", echo.send_fast,
           "echo loop: the sends that did not go PENDING; " + std::to_string(echo.send_fast.ops) +
               " of the loop's " + std::to_string(e_sends) + " sends"},
          {"recv pending (Rust channel, " + how + ")", echo.recv_pending,
           "echo loop: async_receive that went PENDING (Y empty) and was completed by the Rust "
           "exporter's callback when the echo agent sent the reply; " +
               std::to_string(echo.recv_pending.ops) + " of the loop's " +
               std::to_string(e_recvs) + " receives"},
          {"recv fast, echo loop (Rust channel, " + how + ")", echo.recv_fast,
           "echo loop: the receives that did not go PENDING; " +
               std::to_string(echo.recv_fast.ops) + " of the loop's " + std::to_string(e_recvs) +
               " receives"},
      };
      for (const cls& c : classes) {
        char line[300];
        std::snprintf(line, sizeof line, "allocations C++ %s payload %zu: %.3f allocs/msg, %.1f B/msg (%llu ops, %llu aligned_alloc)",
                      c.path.c_str(), payload, c.t.allocs_per_op(), c.t.bytes_per_op(),
                      static_cast<unsigned long long>(c.t.ops),
                      static_cast<unsigned long long>(c.t.aligned));
        pr.line(line);
        rows.push_back(alloc_row(c.path, payload, "adapter", c.t,
                                 c.what + "; " + window + "; " + note + "; " +
                                     std::to_string(alloc_warmup) + " warm-up messages first"));
      }
      const std::vector<cls> totals = {
          {"send+recv loop, fast path (Rust channel, " + how + ")", fast.total,
           "the whole fast-path loop per message: the test's patterned poc::message (a vector of "
           "payload bytes, none for 0), send, receive (with its payload copy), checks"},
          {"send+recv loop, pending path (Rust echo, " + how + ")", echo.total,
           "the whole echo loop per message (pairs of sends on Rust channel X, pairs of receives on "
           "Rust channel Y, capacity 1, Rust echo agent between): the test's message, send, "
           "receive, checks"},
      };
      for (const cls& c : totals) {
        char line[300];
        std::snprintf(line, sizeof line, "allocations C++ %s payload %zu: %.3f allocs/msg, %.1f B/msg total (%llu msgs, %llu aligned_alloc)",
                      c.path.c_str(), payload, c.t.allocs_per_op(), c.t.bytes_per_op(),
                      static_cast<unsigned long long>(c.t.ops),
                      static_cast<unsigned long long>(c.t.aligned));
        pr.line(line);
        rows.push_back(alloc_row(c.path, payload, "total", c.t,
                                 c.what + "; counted process-wide after " +
                                     std::to_string(alloc_warmup) + " warm-up messages"));
      }
    }
  }
  poc_rust_runtime_free(rust);
  poc_cpp_runtime_free(cpp);
  return rows;
}

// --- allocations per async call: C++ awaiting the Rust "square" lent function ------------------
//
// A C++ caller on the poc_cpp_runtime's io_context (1 thread) calls poc_rust_square_fn (READY: the
// value is computed inside `call`; POSTED: a tokio task on a poc_rust_runtime with 1 worker
// finishes it and wakes the importer from that thread) through the C++ import of poc_async_fn /
// poc_future (poc/async_fn.hpp, poc/future.hpp). Each call is bracketed by two snapshots of the
// counters: right before the call is started and when its result is back (the coroutine resumed
// after `co_await poc::async_call(...)` / the handler of poc::async_await called). So the caller's
// own coroutine frame and loop are outside the window; the importer's coroutine (async_call's
// frame), its op, its cell, its posted polls and the copy of the value are inside, on any thread.
// Rust allocates its future with Rust's allocator (malloc), neither operator new nor aligned_alloc:
// not counted.

constexpr std::uint64_t call_alloc_warmup = 1000;

enum class square_mode { ready, posted };
const char* name(square_mode m) { return m == square_mode::ready ? "ready" : "posted"; }

struct call_run {
  tally t, pending;  // every call; the calls whose first poll answered PENDING
  std::uint64_t sum = 0, expect = 0;
  void add(const snap& d, bool pended) {
    t.add(d);
    if (pended) pending.add(d);
  }
};

// The Rust function is wrapped in a poc_async_fn whose call forwards to it and hands out the
// future with a copy of its vtable whose poll records whether the call's first poll answered
// PENDING (then the wake came from the Rust worker thread). Calls are sequential.
const poc_future_vtable* real_fut_vt = nullptr;
poc_future_vtable wrap_fut_vt{};
std::atomic<std::uint64_t> call_polls{0};  // polls of the current call
std::atomic<bool> first_poll_pending{false};

poc_status wrapped_poll(std::uint64_t h, poc_wake_fn wake, poc_recv_complete_fn deliver,
                        void* user) {
  const poc_status s = real_fut_vt->poll(h, wake, deliver, user);
  if (call_polls.fetch_add(1) == 0) first_poll_pending.store(s == POC_PENDING);
  return s;
}
poc_status wrapped_call(void* context, const poc_message_view* arg, poc_future* out) {
  const auto* inner = static_cast<const poc_async_fn*>(context);
  const poc_status s = inner->call(inner->context, arg, out);
  if (s != POC_OK) return s;
  if (real_fut_vt == nullptr) {
    real_fut_vt = out->vtable;
    wrap_fut_vt = *out->vtable;
    wrap_fut_vt.poll = &wrapped_poll;
  } else if (out->vtable != real_fut_vt) {
    fail_hard("call allocations: a Rust future with another vtable");
  }
  out->vtable = &wrap_fut_vt;
  call_polls.store(0);
  return s;
}
void wrapped_release(void* context) {
  const auto* inner = static_cast<const poc_async_fn*>(context);
  inner->release(inner->context);
}

/// Checks one call's outcome: the value {id = x * x, no payload}.
void check_square(std::uint64_t x, std::error_code ec, const poc::message& m) {
  if (ec)
    fail_hard("call allocations: square(" + std::to_string(x) + ") failed: " + ec.message() +
              " " + std::string(poc::error_text(m)));
  if (m.id != x * x || !m.payload.empty())
    fail_hard("call allocations: square(" + std::to_string(x) + ") = id " + std::to_string(m.id) +
              " with " + std::to_string(m.payload.size()) + " bytes");
}

asio::awaitable<call_run> coro_calls(const poc::async_fn& fn, std::uint64_t n) {
  call_run run;
  for (std::uint64_t i = 0; i < call_alloc_warmup + n; ++i) {
    if (i == call_alloc_warmup) alloc_count::on.store(true);
    const std::uint64_t x = i + 1;
    const poc::message arg(x, {});
    const snap a = snap_now();
    auto r = co_await poc::async_call(fn, arg);
    const snap b = snap_now();
    if (!r) fail_hard("call allocations: square(" + std::to_string(x) + ") failed: " +
                      r.error().code.message() + " " + r.error().text);
    check_square(x, {}, *r);
    if (i >= call_alloc_warmup) {
      run.add(b - a, first_poll_pending.load());
      run.sum += r->id;
      run.expect += x * x;
    }
  }
  alloc_count::on.store(false);
  co_return run;
}

/// The same with plain callback handlers: fn.call(x), then poc::async_await(future, ex, lambda);
/// the handler (on the io_context's thread, never inline) checks the value and starts the next call.
class call_chain {
 public:
  call_chain(asio::any_io_executor ex, const poc::async_fn& fn, std::uint64_t n)
      : ex_(std::move(ex)), fn_(fn), total_(call_alloc_warmup + n) {}

  std::future<call_run> start() {
    auto f = done_.get_future();
    asio::post(ex_, [this] { next(); });
    return f;
  }

 private:
  void next() {
    if (i_ >= total_) {
      alloc_count::on.store(false);
      done_.set_value(run_);
      return;
    }
    if (i_ == call_alloc_warmup) alloc_count::on.store(true);
    const std::uint64_t x = i_ + 1;
    a_ = snap_now();
    auto f = fn_.call(x);
    if (!f) fail_hard("call allocations: square(" + std::to_string(x) + ") did not start: " +
                      make_error_code(f.error()).message());
    poc::async_await(*f, ex_, [this, x](std::error_code ec, poc::message m) {
      const snap b = snap_now();
      check_square(x, ec, m);
      if (i_ >= call_alloc_warmup) {
        run_.add(b - a_, first_poll_pending.load());
        run_.sum += m.id;
        run_.expect += x * x;
      }
      ++i_;
      next();
    });
  }

  asio::any_io_executor ex_;
  const poc::async_fn& fn_;
  std::uint64_t total_;
  std::uint64_t i_ = 0;
  snap a_;
  call_run run_;
  std::promise<call_run> done_;
};

std::vector<std::string> call_allocations(const config& cfg, progress& pr) {
  poc_cpp_runtime* cpp = nullptr;
  poc_rust_runtime* rust = nullptr;
  if (poc_status s = poc_cpp_runtime_new(threads, &cpp); s != POC_OK)
    throw failure("poc_cpp_runtime_new: " + status_name(s));
  if (poc_status s = poc_rust_runtime_new(threads, &rust); s != POC_OK)
    throw failure("poc_rust_runtime_new: " + status_name(s));
  const std::uint64_t n = cfg.samples;
  std::vector<std::string> rows;
  for (square_mode mode : {square_mode::ready, square_mode::posted}) {
    for (style st : {style::coroutine, style::callback}) {
      poc_async_fn raw{};
      const std::uint32_t m = mode == square_mode::ready ? POC_SQUARE_READY : POC_SQUARE_POSTED;
      if (poc_status s = poc_rust_square_fn(rust, m, 0, &raw); s != POC_OK)
        throw failure("poc_rust_square_fn: " + status_name(s));
      real_fut_vt = nullptr;  // the previous scenario's futures are all released
      const poc::async_fn fn(poc_async_fn{&wrapped_call, &wrapped_release, &raw});
      call_run run;
      if (st == style::coroutine) {
        auto f = asio::co_spawn(cpp->rt.get_executor(), coro_calls(fn, n), asio::use_future);
        run = wait(f, "call allocations (coroutine)");
      } else {
        auto chain = std::make_unique<call_chain>(cpp->rt.get_executor(), fn, n);
        auto f = chain->start();
        run = wait(f, "call allocations (callbacks)");
        // Destroyed on the io_context's thread, after the last handler has returned.
        std::promise<void> gone;
        auto g = gone.get_future();
        asio::post(cpp->rt.get_executor(), [&] {
          chain.reset();
          gone.set_value();
        });
        wait(g, "call allocations (callbacks): ending the chain");
      }
      if (run.t.ops != n || run.sum != run.expect)
        throw failure(std::string("call allocations ") + name(mode) + ": " +
                      std::to_string(run.t.ops) + " of " + std::to_string(n) +
                      " calls counted, the sum of the squares is wrong: " +
                      (run.sum != run.expect ? "yes" : "no"));
      const char* handler = st == style::coroutine ? "coroutine" : "callback";
      char line[300];
      std::snprintf(line, sizeof line,
                    "call allocations C++ -> Rust square %s (%s): %.3f allocs/call, %.1f B/call "
                    "(%llu calls, %llu aligned_alloc; %llu woken after a PENDING first poll: %.3f "
                    "allocs/call)",
                    name(mode), handler, run.t.allocs_per_op(), run.t.bytes_per_op(),
                    static_cast<unsigned long long>(run.t.ops),
                    static_cast<unsigned long long>(run.t.aligned),
                    static_cast<unsigned long long>(run.pending.ops), run.pending.allocs_per_op());
      pr.line(line);
      const std::string how =
          st == style::coroutine
              ? "a coroutine co_spawned on the poc_cpp_runtime's io_context (1 thread) awaits "
                "`co_await poc::async_call(fn, poc::message{x, {}})` (std::expected result)"
              : "a chain of plain callback handlers on the poc_cpp_runtime's io_context (1 thread): "
                "fn.call(x) then poc::async_await(future, executor, lambda) (no associated "
                "allocator, so the op uses asio::recycling_allocator); each handler starts the next "
                "call";
      const std::string callee =
          mode == square_mode::ready
              ? "poc_rust_square_fn POC_SQUARE_READY (the value is computed inside call: the first "
                "poll answers, no wake)"
              : "poc_rust_square_fn POC_SQUARE_POSTED (a task on a poc_rust_runtime with 1 worker "
                "finishes it: the first poll usually answers PENDING and the wake comes from the "
                "Rust worker thread)";
      const std::string what =
          how + ", one call after the other, of " + callee + "; arguments 1, 2, ...; every value "
          "checked and the sum of the squares compared; pending_calls/pending_allocs/pending_bytes: the "
          "calls whose first poll answered PENDING (read by a wrapper of the Rust future's poll), "
          "i.e. were woken from the Rust worker thread, and what they allocated; counted per call from just before the call "
          "is started until the coroutine resumed / the handler ran (the caller's own loop and "
          "coroutine frame are outside that window), on every thread, by this program's counting "
          "global operator new and aligned_alloc (aligned_allocs: how many of allocs came from "
          "Asio's recycling allocator missing its per-thread cache, e.g. a wake posted from the "
          "Rust thread); the Rust side allocates with malloc through Rust's allocator and is not "
          "counted; " + std::to_string(call_alloc_warmup) + " warm-up calls first";
      rows.push_back(
          std::string("    {\"runtime\": \"C++\", \"caller\": \"C++\", \"callee\": \"Rust\", "
                      "\"mode\": ") +
          json_str(name(mode)) + ", \"handler\": " + json_str(handler) +
          ", \"bytes_per_call\": " + num(run.t.bytes_per_op(), 3) +
          ", \"allocs_per_call\": " + num(run.t.allocs_per_op(), 3) +
          ", \"calls\": " + std::to_string(run.t.ops) + ", \"allocs\": " +
          std::to_string(run.t.allocs) + ", \"bytes\": " + std::to_string(run.t.bytes) +
          ", \"pending_calls\": " + std::to_string(run.pending.ops) +
          ", \"pending_allocs\": " + std::to_string(run.pending.allocs) +
          ", \"pending_bytes\": " + std::to_string(run.pending.bytes) +
          ", \"aligned_allocs\": " + std::to_string(run.t.aligned) +
          ", \"what\": " + json_str(what) + "}");
    }
  }
  poc_rust_runtime_free(rust);
  poc_cpp_runtime_free(cpp);
  return rows;
}

// --- main ----------------------------------------------------------------------------------------

std::string run(const config& cfg) {
  progress pr;
  pr.total = 3 + 1 + 2 + 3 + 2 * 2 * 8 + 2 * 2;
  std::ostringstream js;
  js << "{\n  \"runtime\": \"C++\",\n  \"mode\": " << json_str(cfg.quick ? "quick" : "full")
     << ",\n  \"threads\": " << threads << ",\n";

  io_thread native;
  {
    std::vector<std::string> rows;
    for (std::size_t payload : payloads) {
      const stats s =
          measure(cfg.runs, [&] { return native_throughput_once(native, cfg.messages, payload); });
      char line[200];
      std::snprintf(
          line, sizeof line,
          "asio concurrent_channel throughput payload %zu: %.3e msg/s (min %.3e, max %.3e)",
          payload, s.median, s.min, s.max);
      pr.line(line);
      const std::string what =
          "asio::experimental::concurrent_channel<void(std::error_code, msg)>(" +
          std::to_string(capacity) +
          ") of {uint64_t id; std::vector<uint8_t> payload}, one producer coroutine (a fresh "
          "vector of " +
          std::to_string(payload) +
          " bytes per message, filled with the agents' pattern, checksummed) and one consumer "
          "coroutine "
          "(checks order, pattern, checksum; receives exactly the count sent) co_spawned on an "
          "io_context run by 1 thread (Poc.Bridge's CppRuntime default); asio::use_awaitable via "
          "as_tuple";
      rows.push_back("    {\"payload\": " + std::to_string(payload) +
                     ", \"capacity\": " + std::to_string(capacity) +
                     ", \"msgs_per_s\": " + num(s.median) + ", \"min\": " + num(s.min) +
                     ", \"max\": " + num(s.max) + ", \"runs\": " + std::to_string(s.runs) +
                     ", \"messages\": " + std::to_string(cfg.messages) +
                     ", \"what\": " + json_str(what) + "}");
    }
    js << "  \"native_throughput\": [\n";
    for (std::size_t i = 0; i < rows.size(); ++i)
      js << rows[i] << (i + 1 < rows.size() ? ",\n" : "\n");
    js << "  ],\n";
  }
  {
    const rtt r = native_latency(native, cfg.samples);
    pr.line("asio concurrent_channel ping-pong payload 64: RTT p50 " + num(r.p50, 0) + " ns, p99 " +
            num(r.p99, 0) + " ns");
    const std::string what =
        "ping-pong between two coroutines of one io_context (1 thread) over two "
        "asio::experimental::concurrent_channel(" +
        std::to_string(capacity) +
        "); the pinger sends a fresh 64-byte message and awaits its echo; " +
        std::to_string(latency_warmup) + " warm-up round trips, then one sample per round trip";
    js << "  \"native_latency\": [\n    {\"rtt_ns_p50\": " << num(r.p50)
       << ", \"rtt_ns_p99\": " << num(r.p99) << ", \"samples\": " << r.samples
       << ", \"payload\": " << latency_payload << ", \"what\": " << json_str(what) << "}\n  ],\n";
  }
  {
    poc_cpp_runtime* cpp = nullptr;
    poc_rust_runtime* rust = nullptr;
    if (poc_status s = poc_cpp_runtime_new(threads, &cpp); s != POC_OK)
      throw failure("poc_cpp_runtime_new: " + status_name(s));
    if (poc_status s = poc_rust_runtime_new(threads, &rust); s != POC_OK)
      throw failure("poc_rust_runtime_new: " + status_name(s));
    std::vector<std::string> rows;
    for (peer b : {peer::cpp, peer::rust}) {
      const rtt r = poc_latency(cpp, rust, b, cfg.samples);
      pr.line(std::string("Poc ping-pong C++ pinger -> ") + name(b) + " echo payload 64: RTT p50 " +
              num(r.p50, 0) + " ns, p99 " + num(r.p99, 0) + " ns");
      const std::string what =
          std::string(
              "C++ pinger coroutine on a poc_cpp_runtime (1 thread) sends on Poc channel X owned "
              "by ") +
          name(b) +
          " (poc::port_sender::async_send) and awaits the reply on Poc channel Y owned by C++ "
          "(poc::port_receiver::async_receive), both with as_tuple(use_awaitable); the " +
          name(b) + " echo agent (" +
          (b == peer::cpp ? "poc_cpp_echo_start, same runtime as the pinger: one thread in all"
                          : "poc_rust_echo_start on a poc_rust_runtime with 1 worker: two threads, "
                            "one per runtime") +
          ") receives from X and sends to Y; capacity " + std::to_string(capacity);
      rows.push_back(std::string("    {\"a\": \"C++\", \"b\": ") + json_str(name(b)) +
                     ", \"rtt_ns_p50\": " + num(r.p50) + ", \"rtt_ns_p99\": " + num(r.p99) +
                     ", \"samples\": " + std::to_string(r.samples) + ", \"payload\": " +
                     std::to_string(latency_payload) + ", \"what\": " + json_str(what) + "}");
    }
    poc_rust_runtime_free(rust);
    poc_cpp_runtime_free(cpp);
    js << "  \"latency\": [\n" << rows[0] << ",\n" << rows[1] << "\n  ],\n";
  }
  {
    const stats ready = measure(
        cfg.runs, [&] { return calls_once(native, call_mode::ready, nullptr, cfg.ready_calls); });
    pr.line("asio co_await of a completed awaitable: " + num(ready.median, 2) + " ns/call");
    stats posted{};
    {
      io_thread worker;
      posted = measure(cfg.runs, [&] {
        return calls_once(native, call_mode::posted, &worker, cfg.posted_calls);
      });
    }
    pr.line("asio post to another thread and back: " + num(posted.median, 1) + " ns/call");
    const stats same = measure(cfg.runs, [&] {
      return calls_once(native, call_mode::posted_same_thread, nullptr, cfg.posted_calls);
    });
    pr.line("asio post to the same io_context and resume: " + num(same.median, 1) + " ns/call");
    auto row = [](const char* mode, const stats& s, std::uint64_t calls, const std::string& what) {
      return std::string("    {\"mode\": ") + json_str(mode) +
             ", \"ns_per_call\": " + num(s.median, 3) + ", \"min\": " + num(s.min, 3) +
             ", \"max\": " + num(s.max, 3) + ", \"runs\": " + std::to_string(s.runs) +
             ", \"calls\": " + std::to_string(calls) + ", \"what\": " + json_str(what) + "}";
    };
    js << "  \"native_calls\": [\n"
       << row("ready", ready, cfg.ready_calls,
              "awaiting an already-completed operation: co_await of an asio::awaitable<uint64_t> "
              "that "
              "co_returns x*x at once (no executor hop; Asio 1.22 has no immediate completion for "
              "posts), in a coroutine on an io_context run by 1 thread; ns per call, median of "
              "runs")
       << ",\n"
       << row("posted", posted, cfg.posted_calls,
              "per call: co_await asio::post(other_executor, use_awaitable) — queued to a second "
              "io_context run by its own thread, which completes it, then the coroutine is resumed "
              "on "
              "its own io_context thread (two thread hops per call); ns per call, median of runs")
       << ",\n"
       << row("posted_same_thread", same, cfg.posted_calls,
              "per call: co_await asio::post(use_awaitable) to the coroutine's own io_context (1 "
              "thread): queued, then resumed on the same thread; ns per call, median of runs")
       << "\n  ],\n";
  }
  {
    // allocations (the counting allocators are on only inside this section)
    const std::vector<std::string> rows = allocations(cfg, pr);
    js << "  \"allocations\": [\n";
    for (std::size_t i = 0; i < rows.size(); ++i)
      js << rows[i] << (i + 1 < rows.size() ? ",\n" : "\n");
    js << "  ],\n";
  }
  {
    // allocations per async call (the counting allocators are on only inside this section)
    const std::vector<std::string> rows = call_allocations(cfg, pr);
    js << "  \"call_allocations\": [\n";
    for (std::size_t i = 0; i < rows.size(); ++i)
      js << rows[i] << (i + 1 < rows.size() ? ",\n" : "\n");
    js << "  ]\n}\n";
  }
  std::printf("[native-cpp] done in %.0fs\n",
              std::chrono::duration<double>(clock_type::now() - pr.t0).count());
  return js.str();
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  std::string out;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick")
      cfg.quick = true;
    else if (a == "--out" && i + 1 < argc)
      out = argv[++i];
    else if (a == "--help" || a == "-h") {
      std::printf("usage: poc_bench_native_cpp --out FILE [--quick]\n");
      return 0;
    } else {
      std::fprintf(stderr,
                   "poc_bench_native_cpp: unknown argument %s (usage: --out FILE [--quick])\n",
                   a.c_str());
      return 2;
    }
  }
  if (out.empty()) {
    std::fprintf(stderr, "poc_bench_native_cpp: --out FILE is required\n");
    return 2;
  }
  if (cfg.quick) {
    cfg.runs = 3;
    cfg.messages = 20'000;
    cfg.samples = 5'000;
    cfg.ready_calls = 200'000;
    cfg.posted_calls = 20'000;
  }
  try {
    const std::string json = run(cfg);
    std::ofstream f(out);
    f << json;
    f.close();
    if (!f) fail_hard("writing " + out);
    std::printf("[native-cpp] wrote %s\n", out.c_str());
    return 0;
  } catch (const std::exception& e) {
    fail_hard(e.what());
  }
}
