// poc/detail/stop_service.hpp — the registry behind poc::detail::request_stop_all.
//
// Every in-flight (PENDING) import op and every agent links an intrusive stop_entry into the
// stop_service of the execution context it keeps busy (the one its handler / coroutine runs on).
// request_stop_all copies the entries' stop requests *by value* under the registry's locks, drops
// the locks, and only then invokes them. So:
//   * an entry may deregister and be freed at any time, even while request_stop_all runs: the
//     registry never dereferences an entry outside its lock and never keeps one alive;
//   * a stop request may complete its op inline and re-entrantly (a foreign exporter may run the
//     completion callback on the thread that called cancel): the completion deregisters, which
//     takes a registry lock that nobody holds at that point, so there is no deadlock;
//   * a stop request must therefore be harmless when what it names has already finished — true
//     by contract for port cancel (bridge.h: cancel of a completed or unknown op returns POC_OK)
//     and for poc_cpp_agent_cancel of an ended agent.
// After request_stop_all, the registry stays "stopped": an entry added later is reported to its
// owner, which invokes its own stop request at once, so nothing slips through the gap between a
// snapshot and an op that was just starting.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <poc/detail/stop_registry.hpp>

#include <asio/execution/context.hpp>
#include <asio/execution_context.hpp>
#include <asio/query.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

namespace poc::detail {

/// A stop request held by value: calls `fn(target, a, b)`. `target` must outlive the execution
/// context (a static port vtable, a service of the context); invoking a request whose op or agent
/// already ended must be harmless.
struct stop_request {
  void (*fn)(const void* target, std::uint64_t a, std::uint64_t b) noexcept = nullptr;
  const void* target = nullptr;
  std::uint64_t a = 0;
  std::uint64_t b = 0;

  void operator()() const noexcept {
    if (fn != nullptr) fn(target, a, b);
  }
};

/// Intrusive registry node, embedded in whatever registers (an import op state, an agent).
class stop_entry {
 public:
  stop_entry() = default;
  explicit stop_entry(const stop_request& r) noexcept : request_(r) {}
  stop_entry(const stop_entry&) = delete;
  stop_entry& operator=(const stop_entry&) = delete;

  stop_request request_;

 private:
  friend class stop_service;
  stop_entry* prev_ = nullptr;
  stop_entry* next_ = nullptr;
};

/// The stop registry of one execution context (an asio service; see the file comment).
class stop_service final : public asio::execution_context::service {
 public:
  /// Identifies the service (defined in src/stop_registry.cpp, so that one binary has one key).
  static asio::execution_context::id id;

  explicit stop_service(asio::execution_context& owner);
  ~stop_service() override;

  /// Links `e`. Returns true when request_stop_all already ran on this context: the caller must
  /// then invoke `e.request_` itself (outside any lock of its own). Remove `e` in any case.
  [[nodiscard]] bool add(stop_entry& e) noexcept;

  /// Unlinks `e` (which must have been added). Never blocks on a stop request.
  void remove(stop_entry& e) noexcept;

  /// Invokes the stop request of every entry linked now, outside the registry's locks, and marks
  /// the registry stopped for later entries.
  void request_stop_all() noexcept;

  /// True once request_stop_all ran.
  [[nodiscard]] bool stop_requested() const noexcept {
    return stopped_.load(std::memory_order_acquire);
  }

 private:
  void shutdown() override {}

  static constexpr std::size_t shard_count = 8;
  struct alignas(64) shard {
    std::mutex mutex;
    stop_entry head;  // sentinel of a circular list
  };
  shard& shard_of(const stop_entry& e) noexcept {
    return shards_[(reinterpret_cast<std::uintptr_t>(&e) >> 6) % shard_count];
  }

  std::array<shard, shard_count> shards_;
  std::atomic<bool> stopped_{false};
};

/// The execution context an executor submits to, or nullptr if it cannot tell (then nothing
/// registers for it: e.g. the executor of asio::use_future's handlers).
template <typename Executor>
asio::execution_context* context_of(const Executor& ex) noexcept {
  if constexpr (asio::can_query<const Executor&, asio::execution::context_t>::value) {
    return &asio::query(ex, asio::execution::context);
  } else if constexpr (requires { ex.context(); }) {
    return &ex.context();
  } else {
    return nullptr;
  }
}

/// While one is alive on a thread, a port completion that arrives on that thread is posted to its
/// handler's executor instead of dispatched: the adapter never runs a handler inside one of its
/// own calls into an exporter (send, recv, cancel, close, release, …), nor inside a cancellation
/// slot's emit (where clearing the slot would destroy the running slot handler).
class no_inline_scope {
 public:
  no_inline_scope() noexcept { ++depth_; }
  ~no_inline_scope() { --depth_; }
  no_inline_scope(const no_inline_scope&) = delete;
  no_inline_scope& operator=(const no_inline_scope&) = delete;

  [[nodiscard]] static bool active() noexcept { return depth_ != 0; }

 private:
  static inline thread_local unsigned depth_ = 0;
};

}  // namespace poc::detail
