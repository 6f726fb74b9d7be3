// mayon.cpp — a RE-IMPLEMENTATION of mayon asio-poc's Rust→C++ send design (future_void.cpp /
// future_void.rs; docs/lessons.md "mayon asio-poc"), used only as a labelled baseline by
// poc-bench-native-rust's `strategies` section (src/strategies.rs). It is NOT Poc code and not
// mayon's code: the same design, written again, minimal and leak-free.
//
// The design: every send makes a std::promise<void> / std::future<void> pair on the heap, starts
// `channel.async_send(error_code{}, value, handler)` from the calling (Rust) thread, and hands the
// future to Rust as a raw owning pointer. Asio runs the handler on the io_context thread, where it
// fulfils the promise. The Rust future's poll then either blocks in std::future::wait()
// (mayon: "blocking_future") or asks wait_for(0) and re-schedules itself ("busy_polling").
//
// Differences from mayon, all for a fair, safe measurement (none changes the cost per send):
//   * the handler owns the promise (moved into it), the Rust side owns the future: mayon's handler
//     keeps a raw pointer to a promise object that Rust may already have freed;
//   * the io_context and its thread belong to a shim object that is stopped and joined on destroy
//     (mayon: one static io_context on a detached thread, never stopped);
//   * a failed send still fulfils the promise (and is counted), so a wait never hangs.
//
// Asio note: include a standard header before Asio so that this translation unit takes the same
// std::aligned_alloc branch of Asio 1.22's aligned_new as libpoc_cpp.a, which is linked into the
// same program (native-cpp/include/poc/detail/asio_config.hpp explains the ODR hazard). Built with
// -DASIO_STANDALONE -DASIO_NO_DEPRECATED, as poc_cpp.
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <asio/experimental/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/concurrent_channel.hpp>

namespace {

using channel_t = asio::experimental::concurrent_channel<void(asio::error_code, std::uint64_t)>;

constexpr std::uint64_t kSeqBits = 48;
constexpr std::uint64_t kSeqMask = (std::uint64_t{1} << kSeqBits) - 1;
constexpr std::size_t kMaxStreams = 4096;

// The same mix as poc_bridge::message::splitmix64, so Rust can compute the expected checksum.
std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

// The shim: io_context + its thread + the channel + the consumer's totals.
struct mayon_shim {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  channel_t ch;
  std::thread thread;
  // Written by the consumer (io thread). A send completes when its value is buffered, before the
  // consumer took it, so a reader waits for `received` to reach its count (mayon_wait_received).
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> checksum{0};
  std::atomic<std::uint64_t> order_errors{0};
  std::atomic<std::uint64_t> send_errors{0};
  std::vector<std::uint64_t> next_seq = std::vector<std::uint64_t>(kMaxStreams, 0);  // io thread only
  // mayon_wait_received's wake-up: the consumer notifies only while someone waits.
  std::mutex m;
  std::condition_variable cv;
  std::atomic<bool> waiting{false};

  explicit mayon_shim(std::size_t capacity) : ch(io, capacity) {}
};

// One send's future (the Rust side owns it through a raw pointer, as in mayon).
struct mayon_future {
  std::future<void> fut;
};

namespace {

// The consumer: receives until it gets the stop signal (error code eof, sent by mayon_destroy:
// in Asio 1.22 close() does not complete a receive already waiting, asio #1575), counting and
// checking per-stream order (id = stream << 48 | seq) and adding splitmix64(id).
asio::awaitable<void> consume(mayon_shim* s) {
  for (;;) {
    auto [ec, v] = co_await s->ch.async_receive(asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    const std::uint64_t stream = v >> kSeqBits, seq = v & kSeqMask;
    if (stream >= kMaxStreams || s->next_seq[stream] != seq) {
      s->order_errors.fetch_add(1, std::memory_order_relaxed);
    } else {
      s->next_seq[stream] = seq + 1;
    }
    s->checksum.store(s->checksum.load(std::memory_order_relaxed) + splitmix64(v),
                      std::memory_order_relaxed);
    s->received.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: pairs with `waiting`
    if (s->waiting.load(std::memory_order_seq_cst)) {
      std::lock_guard lock(s->m);
      s->cv.notify_all();
    }
  }
  // Stopped: sends still waiting (none when the caller awaited all its sends) fail rather than
  // keep the io_context busy forever.
  s->ch.close();
  s->ch.cancel();
}

}  // namespace

extern "C" {

// A shim with a channel of `capacity` and its consumer running; NULL on failure.
mayon_shim* mayon_create(std::size_t capacity) noexcept {
  try {
    auto* s = new mayon_shim(capacity);
    asio::co_spawn(s->io, consume(s), asio::detached);
    s->thread = std::thread([s] { s->io.run(); });
    return s;
  } catch (...) {
    return nullptr;
  }
}

// mayon's send: a promise/future pair per send, async_send from the calling thread; the handler
// (run on the io_context thread) fulfils the promise. Returns the future (owned by the caller,
// freed with mayon_future_free) or NULL if allocation failed.
mayon_future* mayon_send(mayon_shim* s, std::uint64_t value) noexcept {
  try {
    std::promise<void> p;
    auto* f = new mayon_future{p.get_future()};
    s->ch.async_send(asio::error_code{}, value, [s, p = std::move(p)](asio::error_code ec) mutable {
      if (ec) s->send_errors.fetch_add(1, std::memory_order_relaxed);
      p.set_value();
    });
    return f;
  } catch (...) {
    return nullptr;
  }
}

// Blocks the calling thread until the send completed (mayon's poll).
void mayon_future_wait(mayon_future* f) noexcept { f->fut.wait(); }

// 1 when the send completed, without blocking (std::future::wait_for(0)).
int mayon_future_is_ready(mayon_future* f) noexcept {
  return f->fut.wait_for(std::chrono::seconds(0)) == std::future_status::ready ? 1 : 0;
}

void mayon_future_free(mayon_future* f) noexcept { delete f; }

// The consumer's totals so far (acquire: the checksum and order count of the first `received`
// messages are visible).
void mayon_totals(mayon_shim* s, std::uint64_t* received, std::uint64_t* checksum,
                  std::uint64_t* order_errors, std::uint64_t* send_errors) noexcept {
  *received = s->received.load(std::memory_order_acquire);
  *checksum = s->checksum.load(std::memory_order_relaxed);
  *order_errors = s->order_errors.load(std::memory_order_relaxed);
  *send_errors = s->send_errors.load(std::memory_order_relaxed);
}

// Waits (at most `timeout_ms`) until the consumer received at least `count` messages; returns how
// many it received. A condition variable, not a sleep: the consumer notifies while this waits.
std::uint64_t mayon_wait_received(mayon_shim* s, std::uint64_t count, std::uint32_t timeout_ms) noexcept {
  std::unique_lock lock(s->m);
  s->waiting.store(true, std::memory_order_seq_cst);
  s->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                 [&] { return s->received.load(std::memory_order_acquire) >= count; });
  s->waiting.store(false, std::memory_order_seq_cst);
  return s->received.load(std::memory_order_acquire);
}

// Resets the consumer's totals and per-stream sequence numbers (between runs; runs on the io
// thread, and blocks the caller until it ran). 0 on success.
int mayon_reset(mayon_shim* s) noexcept {
  try {
    std::promise<void> done;
    auto f = done.get_future();
    asio::post(s->io, [s, &done] {
      std::fill(s->next_seq.begin(), s->next_seq.end(), 0);
      s->received.store(0, std::memory_order_relaxed);
      s->checksum.store(0, std::memory_order_relaxed);
      s->order_errors.store(0, std::memory_order_relaxed);
      s->send_errors.store(0, std::memory_order_relaxed);
      done.set_value();
    });
    f.wait();
    return 0;
  } catch (...) {
    return -1;
  }
}

// Stops the consumer (an eof "message"), lets the io_context run out of work, joins its thread
// and frees everything. Not from the io thread. Every future handed out must be freed by the
// caller (before or after).
void mayon_destroy(mayon_shim* s) noexcept {
  if (!s) return;
  try {
    s->ch.async_send(asio::error::eof, 0, [](asio::error_code) {});
  } catch (...) {
    s->io.stop();  // could not signal the consumer: stop the loop instead
  }
  s->work.reset();
  if (s->thread.joinable()) s->thread.join();
  delete s;
}

}  // extern "C"
