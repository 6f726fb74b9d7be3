// The shared heart of poc::runtime: the io_context, the threads that run it, and the registry of
// channels exported on it (so that shutdown can complete their pending ops).
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <poc/detail/import_op.hpp>  // relay_arena, thread_activity

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

namespace poc::detail {

class channel_state;

/// How this library's translation units compiled Asio's inline allocation functions:
/// std::aligned_alloc / std::free (true) or ::operator new / ::operator delete (false). Every
/// translation unit that uses Asio together with the library must agree, or memory allocated by
/// one is freed by the other's function (poc/detail/asio_config.hpp; a test compares).
[[nodiscard]] bool asio_uses_std_aligned_alloc() noexcept;

/// Default of POC_IDLE_SPIN_US (the same as the Rust runtime's, rust/poc-bridge/src/idle.rs).
inline constexpr std::chrono::microseconds default_idle_spin{50};
/// Upper bound accepted from POC_IDLE_SPIN_US.
inline constexpr std::chrono::microseconds max_idle_spin{10'000};

/// The value of POC_IDLE_SPIN_US `text` (nullptr: unset): a number of microseconds (surrounding
/// blanks allowed), clamped to max_idle_spin; 0 turns the spin off. Unset → the default;
/// anything else → the default, with `valid` false.
struct idle_spin_setting {
  std::chrono::microseconds length;
  bool valid;
};
[[nodiscard]] idle_spin_setting parse_idle_spin(const char* text) noexcept;

/// The spin length of every C++ runtime thread: POC_IDLE_SPIN_US, read once per process (an
/// invalid value is reported on stderr once).
[[nodiscard]] std::chrono::microseconds idle_spin() noexcept;

/// An io_context, the threads that run it, and the channels exported on it.
///
/// Lifetime: shared. The poc::runtime object owns one reference; every channel it exported owns
/// another (a port may be released after the runtime object is gone, and the channel's Asio
/// object must be destroyed while its io_context still exists); each running thread owns one
/// (only relevant when the runtime is destroyed on one of its own threads, see
/// shutdown_detached()).
///
/// Shutdown, in order:
///   1. mark stopping: channel creation and every port call except release answer POC_SHUTDOWN;
///   2. complete every pending op of every registered channel with POC_SHUTDOWN;
///   3. poc::detail::request_stop_all(): agents and in-flight imports are asked to stop;
///   4. drop the work guard and wait (bounded) for io_context::run() to run out of work on every
///      thread, then join. If the bound is exceeded, something never completed: the io_context
///      is stopped (its queued handlers are destroyed without running) and one line goes to
///      stderr. Shutdown never hangs forever.
///
/// Idle spin (runtime.cpp has the details): while the runtime has Poc traffic (an import completion,
/// a future drive) a *spin step* stays queued on its io_context, re-posting itself after a yield,
/// so that an idle thread keeps polling the queue instead of blocking, until idle_spin() has passed
/// without traffic; then run() blocks as usual. One step per runtime at a time, inside the threads'
/// long-lived run() calls (no per-iteration run/poll call, which would drop Asio's per-thread
/// recycling cache), with its memory in an arena of its own (no allocation, no eviction of the
/// thread's cached blocks). Not while stopping: it never keeps run() from running out of work.
///
/// Thread safety: every member may be called from any thread. shutdown() must not be called on
/// one of the runtime's own threads (it returns errc::invalid there, since a thread cannot join
/// itself). Concurrent shutdown() calls are serialised; the later ones return once the first has
/// finished.
class runtime_core : public std::enable_shared_from_this<runtime_core> {
 public:
  runtime_core() = default;
  runtime_core(const runtime_core&) = delete;
  runtime_core& operator=(const runtime_core&) = delete;
  ~runtime_core() = default;  // threads were joined by shutdown() or detached

  /// Starts `threads` threads running the io_context. Called once, right after make_shared.
  /// On failure, stops the threads already started and rethrows.
  void start(unsigned threads);

  [[nodiscard]] asio::io_context& context() noexcept { return ctx_; }

  /// True once shutdown has begun (step 1).
  [[nodiscard]] bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

  /// True on one of this runtime's threads (i.e. inside its io_context::run()).
  [[nodiscard]] bool running_in_this_thread() noexcept {
    return ctx_.get_executor().running_in_this_thread();
  }

  /// Bound of step 4 (default 10 s).
  void set_shutdown_timeout(std::chrono::milliseconds timeout) noexcept {
    shutdown_timeout_ms_.store(timeout.count(), std::memory_order_relaxed);
  }

  /// Adds `channel` to those whose pending ops shutdown completes with POC_SHUTDOWN. Returns false,
  /// registering nothing, once stopping (the caller then answers POC_SHUTDOWN). The channel is
  /// held weakly: registration does not keep it alive.
  [[nodiscard]] bool register_channel(const std::shared_ptr<channel_state>& channel);

  /// Steps 1–4. Idempotent. errc::invalid on one of the runtime's own threads.
  std::error_code shutdown() noexcept;

  /// Steps 1–3, then drops the work guard and detaches the threads instead of joining them: for a
  /// runtime object destroyed on one of its own threads. The threads end when their work does;
  /// the last one to finish releases this object.
  void shutdown_detached() noexcept;

 private:
  void begin_stop() noexcept;  // steps 1–3; only the first call does anything
  void run_thread() noexcept;

  // Idle spin.
  struct spin_fn {
    runtime_core* core;
    void operator()() const noexcept { core->spin_step(); }
  };
  static void on_activity(void* self) noexcept;  // thread_activity hook of the runtime's threads
  void note_activity() noexcept;
  void spin_step() noexcept;
  bool post_spin_step() noexcept;  // false: could not be queued (out of memory)

  std::chrono::steady_clock::duration spin_{};  // 0: off; set by start()
  std::atomic<bool> spin_armed_{false};         // a spin step is queued or running
  std::atomic<bool> activity_{false};           // traffic since the step last looked
  // Written by the step and by whoever arms it (exclusive: spin_armed_).
  std::chrono::steady_clock::time_point last_activity_{};
  std::chrono::steady_clock::time_point step_end_{};  // when the last step queued the next one
  // Shorter than this between two steps: nothing else ran in between (a queue round trip).
  static constexpr std::chrono::nanoseconds idle_gap{1'000};
  relay_arena spin_arena_;  // the queued step's memory; declared before ctx_, which may destroy
                            // a queued step (and so free its memory) when it is destroyed

  asio::io_context ctx_;
  // Keeps run() from returning while the runtime is idle; reset in step 4. Declared after ctx_
  // so that it is destroyed first. Guarded by shutdown_mutex_ once the threads are running.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;

  std::atomic<bool> stopping_{false};
  std::atomic<std::chrono::milliseconds::rep> shutdown_timeout_ms_{10'000};

  // Registry of exported channels. stopping_ flips under this mutex too, so a channel is either
  // registered before the shutdown snapshot or refused.
  std::mutex channels_mutex_;
  std::vector<std::weak_ptr<channel_state>> channels_;
  std::size_t prune_at_ = 64;  // drop expired entries when the registry reaches this size

  std::mutex shutdown_mutex_;  // serialises shutdown(); guards threads_ and joined_
  std::vector<std::thread> threads_;
  bool joined_ = false;

  std::mutex threads_mutex_;  // guards running_threads_
  std::condition_variable threads_done_;
  unsigned running_threads_ = 0;
};

}  // namespace poc::detail
