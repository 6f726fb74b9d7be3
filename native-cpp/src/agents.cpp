// The agents of bridge.h §"C++ runtime": producer, consumer, echo and the mayon timer task.
//
// Each agent is a C++20 coroutine (asio::co_spawn + use_awaitable) on its own strand of the
// runtime's io_context, talking to its ports through poc::port_sender / poc::port_receiver, so it
// works against any exporter (C++, Rust, C#, or a test's fake).
//
// Life of an agent:
//   1. *_start validates its arguments, creates the agent object (id, strand, cancellation signal),
//      and registers it in the runtime's agent_table (for poc_cpp_agent_cancel) and stop registry
//      (for runtime shutdown). If shutdown already began, it unregisters and returns POC_SHUTDOWN
//      without taking the ports. A work guard held meanwhile keeps the io_context from running
//      out of work between "registered" and "spawn queued".
//   2. The spawn is posted to the strand, so every use of the cancellation signal (the co_spawn
//      that connects it, the emits, the end) happens on the strand.
//   3. The body takes the ports (their destructors release them), loops, and checks its stop
//      reason before every operation; a stop request sets the reason and posts an emit to the
//      strand, which cancels the operation in flight (port cancel, timer cancel).
//   4. The co_spawn completion (on the strand) unregisters the agent and calls `done` exactly
//      once — on a runtime thread, with no lock held — after the body released its ports.
#include "c_runtime.hpp"
#include "ffi_guard.hpp"

#include <poc/bridge.h>
#include <poc/detail/stop_service.hpp>
#include <poc/message.hpp>
#include <poc/port.hpp>
#include <poc/runtime.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/execution_context.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace poc::detail {
namespace {

using strand_type = asio::strand<asio::io_context::executor_type>;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

/// Agent ids are unique in the process (across runtimes); 0 is never used.
std::atomic<poc_agent_id> next_agent_id{1};

class agent;

/// The agents alive on one io_context, by id. An asio service, so it lives exactly as long as the
/// context and stop requests from the stop registry may name it by address.
///
/// Thread safety: every member may be called from any thread.
class agent_table final : public asio::execution_context::service {
 public:
  static asio::execution_context::id id;

  explicit agent_table(asio::execution_context& owner) : asio::execution_context::service(owner) {}

  void add(const std::shared_ptr<agent>& a);
  void remove(poc_agent_id agent_id) noexcept;
  std::shared_ptr<agent> find(poc_agent_id agent_id);

  /// stop_request function: asks agent `agent_id` of table `target` to stop with `reason`.
  static void stop(const void* target, std::uint64_t agent_id, std::uint64_t reason) noexcept;

 private:
  void shutdown() override {
    std::unordered_map<poc_agent_id, std::shared_ptr<agent>> agents;
    {
      std::lock_guard lock(mutex_);
      agents.swap(agents_);
    }
  }

  std::mutex mutex_;
  std::unordered_map<poc_agent_id, std::shared_ptr<agent>> agents_;
};

asio::execution_context::id agent_table::id;

/// One running agent. Shared by its coroutine, its table entry and posted stop requests.
///
/// Thread safety: request_stop() and stop_reason() from any thread; everything else on the strand.
class agent : public std::enable_shared_from_this<agent> {
 public:
  agent(asio::io_context& ctx, poc_agent_done_fn done, void* user)
      : id_(next_agent_id.fetch_add(1, std::memory_order_relaxed)),
        strand_(asio::make_strand(ctx)),
        done_(done),
        user_(user),
        table_(asio::use_service<agent_table>(ctx)),
        stops_(asio::use_service<stop_service>(ctx)),
        entry_(stop_request{&agent_table::stop, &table_, id_, POC_SHUTDOWN}) {}

  [[nodiscard]] poc_agent_id id() const noexcept { return id_; }
  [[nodiscard]] const strand_type& strand() const noexcept { return strand_; }

  /// Step 1: registers for poc_cpp_agent_cancel and for shutdown. False (nothing registered)
  /// when the runtime's shutdown already began.
  [[nodiscard]] bool register_self() {
    table_.add(shared_from_this());
    registered_ = true;
    if (stops_.add(entry_)) {
      unregister();
      return false;
    }
    return true;
  }

  agent(const agent&) = delete;
  agent& operator=(const agent&) = delete;

  /// Normally finish() unregistered already. Still linked only if the io_context was stopped
  /// with the agent's coroutine queued (shutdown timeout), when its handlers are destroyed.
  ~agent() {
    if (registered_) stops_.remove(entry_);
  }

  /// Step 2: spawns `body` on the strand. Exceptions before the spawn is queued unregister.
  void launch(asio::awaitable<void> body) {
    try {
      asio::post(strand_, [self = shared_from_this(), body = std::move(body)]() mutable {
        self->running_ = true;
        asio::co_spawn(self->strand_, std::move(body),
                       asio::bind_cancellation_slot(self->signal_.slot(),
                                                    [self](std::exception_ptr e) { self->finish(e); }));
      });
    } catch (...) {
      unregister();
      throw;
    }
  }

  /// Asks the agent to stop: it ends with `reason` (the first reason wins) unless it already
  /// ended. Never blocks; any thread.
  void request_stop(poc_status reason) {
    poc_status expected = POC_OK;
    stop_reason_.compare_exchange_strong(expected, reason, std::memory_order_acq_rel);
    asio::post(strand_, [self = shared_from_this()] {
      if (self->running_) self->signal_.emit(asio::cancellation_type::terminal);
    });
  }

  /// POC_OK while nobody asked the agent to stop.
  [[nodiscard]] poc_status stop_reason() const noexcept {
    return stop_reason_.load(std::memory_order_acquire);
  }

  /// The status an operation's error stops the agent with: a cancelled operation reports why the
  /// agent was stopped (CANCELLED for poc_cpp_agent_cancel, SHUTDOWN for runtime shutdown, whose
  /// stop registry may reach the operation before the agent itself).
  [[nodiscard]] poc_status status_of(const std::error_code& ec) const noexcept {
    const poc_status s = to_status(ec);
    if (s != POC_CANCELLED) return s;
    if (const poc_status reason = stop_reason(); reason != POC_OK) return reason;
    return stops_.stop_requested() ? POC_SHUTDOWN : POC_CANCELLED;
  }

  /// Written by the body (on the strand); handed to `done`.
  poc_agent_report report{};

 private:
  // Step 4, on the strand: the body has returned (or thrown) and released its ports.
  void finish(std::exception_ptr e) {
    running_ = false;
    unregister();
    poc_agent_report r = report;
    if (e) r.status = POC_PANIC;
    done_(user_, &r);
  }

  void unregister() noexcept {
    if (!registered_) return;
    registered_ = false;
    stops_.remove(entry_);
    table_.remove(id_);
  }

  const poc_agent_id id_;
  const strand_type strand_;
  const poc_agent_done_fn done_;
  void* const user_;
  agent_table& table_;
  stop_service& stops_;
  stop_entry entry_;
  std::atomic<poc_status> stop_reason_{POC_OK};
  asio::cancellation_signal signal_;  // strand only
  bool running_ = false;              // strand only: between co_spawn and finish
  bool registered_ = false;           // start thread, then strand (ordered by the post)
};

void agent_table::add(const std::shared_ptr<agent>& a) {
  std::lock_guard lock(mutex_);
  agents_.emplace(a->id(), a);
}

void agent_table::remove(poc_agent_id agent_id) noexcept {
  std::shared_ptr<agent> removed;  // destroyed after the lock is released
  std::lock_guard lock(mutex_);
  if (auto it = agents_.find(agent_id); it != agents_.end()) {
    removed = std::move(it->second);
    agents_.erase(it);
  }
}

std::shared_ptr<agent> agent_table::find(poc_agent_id agent_id) {
  std::lock_guard lock(mutex_);
  auto it = agents_.find(agent_id);
  return it == agents_.end() ? nullptr : it->second;
}

void agent_table::stop(const void* target, std::uint64_t agent_id, std::uint64_t reason) noexcept {
  auto* table = static_cast<agent_table*>(const_cast<void*>(target));
  if (std::shared_ptr<agent> a = table->find(agent_id)) a->request_stop(static_cast<poc_status>(reason));
}

// ------------------------------------------------------------------------------------------------
// Bodies. Each takes its ports by value (raw) and wraps them on its first step, so that ports of
// an agent that never started stay with the caller; the wrappers release them when the body ends.
// ------------------------------------------------------------------------------------------------

asio::awaitable<void> producer_body(std::shared_ptr<agent> self, poc_sender raw_tx,
                                    std::uint64_t stream, std::uint64_t count,
                                    std::size_t payload_len) {
  port_sender tx(self->strand(), raw_tx);
  co_await asio::this_coro::throw_if_cancelled(false);
  poc_agent_report& r = self->report;
  for (std::uint64_t seq = 0; seq < count; ++seq) {
    if (const poc_status reason = self->stop_reason(); reason != POC_OK) {
      r.status = reason;
      break;
    }
    message m(make_id(stream, seq), std::vector<std::uint8_t>(payload_len));
    fill_pattern(m.id, m.payload);
    const std::uint64_t sum = checksum(m);
    auto [ec] = co_await tx.async_send(std::move(m), use_tuple);
    if (ec) {
      r.status = self->status_of(ec);
      break;
    }
    ++r.messages;
    r.checksum += sum;
  }
  (void)tx.release();  // the last sender closes the channel
}

asio::awaitable<void> consumer_body(std::shared_ptr<agent> self, poc_receiver raw_rx) {
  port_receiver rx(self->strand(), raw_rx);
  co_await asio::this_coro::throw_if_cancelled(false);
  poc_agent_report& r = self->report;
  std::unordered_map<std::uint64_t, std::uint64_t> next_seq;  // stream → expected seq
  for (;;) {
    if (const poc_status reason = self->stop_reason(); reason != POC_OK) {
      r.status = reason;
      break;
    }
    auto [ec, m] = co_await rx.async_receive(use_tuple);
    if (ec) {
      r.status = ec == errc::closed ? POC_OK : self->status_of(ec);
      break;
    }
    ++r.messages;
    r.checksum += checksum(m);
    std::uint64_t& expected = next_seq.try_emplace(stream_of(m.id), 0).first->second;
    if (seq_of(m.id) != expected || !check_pattern(m.id, m.payload)) ++r.order_errors;
    expected = seq_of(m.id) + 1;
  }
  (void)rx.release();
}

asio::awaitable<void> echo_body(std::shared_ptr<agent> self, poc_receiver raw_rx,
                                poc_sender raw_tx) {
  port_receiver rx(self->strand(), raw_rx);
  port_sender tx(self->strand(), raw_tx);
  co_await asio::this_coro::throw_if_cancelled(false);
  poc_agent_report& r = self->report;
  for (;;) {
    if (const poc_status reason = self->stop_reason(); reason != POC_OK) {
      r.status = reason;
      break;
    }
    auto [rec, m] = co_await rx.async_receive(use_tuple);
    if (rec) {
      r.status = rec == errc::closed ? POC_OK : self->status_of(rec);
      break;
    }
    // Checked again: a stop that arrived while no operation was in flight must not be missed
    // by a send that could wait forever.
    if (const poc_status reason = self->stop_reason(); reason != POC_OK) {
      r.status = reason;
      break;
    }
    const std::uint64_t sum = checksum(m);
    auto [sec] = co_await tx.async_send(std::move(m), use_tuple);
    if (sec) {
      r.status = self->status_of(sec);
      break;
    }
    ++r.messages;
    r.checksum += sum;
  }
  (void)tx.release();
  (void)rx.release();
}

asio::awaitable<void> timer_body(std::shared_ptr<agent> self, poc_sender raw_tx,
                                 std::uint32_t interval_ms, std::uint64_t max_count) {
  static constexpr std::string_view text = "From Cpp async task!!";
  port_sender tx(self->strand(), raw_tx);
  asio::steady_timer timer(self->strand());
  co_await asio::this_coro::throw_if_cancelled(false);
  poc_agent_report& r = self->report;
  for (std::uint64_t count = 0; max_count == 0 || count < max_count; ++count) {
    if (const poc_status reason = self->stop_reason(); reason != POC_OK) {
      r.status = reason;
      break;
    }
    timer.expires_after(std::chrono::milliseconds(interval_ms));
    auto [wec] = co_await timer.async_wait(use_tuple);
    if (wec) {
      r.status = self->status_of(wec);
      break;
    }
    if (const poc_status reason = self->stop_reason(); reason != POC_OK) {
      r.status = reason;
      break;
    }
    message m(count, std::vector<std::uint8_t>(text.begin(), text.end()));
    const std::uint64_t sum = checksum(m);
    auto [sec] = co_await tx.async_send(std::move(m), use_tuple);
    if (sec) {
      r.status = self->status_of(sec);
      break;
    }
    ++r.messages;
    r.checksum += sum;
  }
  (void)tx.release();
}

/// Steps 1–2 for every agent kind. `make_body(agent)` builds the (not yet started) coroutine.
template <typename MakeBody>
poc_status start_agent(poc_cpp_runtime* rt, poc_agent_done_fn done, void* user, poc_agent_id* out,
                       MakeBody&& make_body) {
  runtime& r = rt->rt;
  if (r.stopping()) return POC_SHUTDOWN;
  asio::io_context& ctx = r.context();
  // Outstanding work from before registration until the spawn is queued: shutdown calls
  // request_stop_all before it lets run() return, so a registered agent always gets to run.
  const auto work = asio::make_work_guard(ctx);
  auto a = std::make_shared<agent>(ctx, done, user);
  asio::awaitable<void> body = make_body(a);
  if (!a->register_self()) return POC_SHUTDOWN;
  // The id is written before the agent can run, so it is known before `done` can be called.
  if (out != nullptr) *out = a->id();
  a->launch(std::move(body));
  return POC_OK;
}

}  // namespace
}  // namespace poc::detail

extern "C" {

poc_status poc_cpp_producer_start(poc_cpp_runtime* rt, poc_sender tx, uint64_t stream,
                                  uint64_t count, size_t payload_len, poc_agent_done_fn done,
                                  void* user, poc_agent_id* out) {
  return poc::detail::ffi_guard([&] {
    if (rt == nullptr || done == nullptr || !poc::is_usable(tx)) return POC_INVALID;
    return poc::detail::start_agent(rt, done, user, out, [&](const auto& a) {
      return poc::detail::producer_body(a, tx, stream, count, payload_len);
    });
  });
}

poc_status poc_cpp_consumer_start(poc_cpp_runtime* rt, poc_receiver rx, poc_agent_done_fn done,
                                  void* user, poc_agent_id* out) {
  return poc::detail::ffi_guard([&] {
    if (rt == nullptr || done == nullptr || !poc::is_usable(rx)) return POC_INVALID;
    return poc::detail::start_agent(rt, done, user, out, [&](const auto& a) {
      return poc::detail::consumer_body(a, rx);
    });
  });
}

poc_status poc_cpp_echo_start(poc_cpp_runtime* rt, poc_receiver rx, poc_sender tx,
                              poc_agent_done_fn done, void* user, poc_agent_id* out) {
  return poc::detail::ffi_guard([&] {
    if (rt == nullptr || done == nullptr || !poc::is_usable(rx) || !poc::is_usable(tx))
      return POC_INVALID;
    return poc::detail::start_agent(rt, done, user, out, [&](const auto& a) {
      return poc::detail::echo_body(a, rx, tx);
    });
  });
}

poc_status poc_cpp_timer_start(poc_cpp_runtime* rt, poc_sender tx, uint32_t interval_ms,
                               uint64_t max_count, poc_agent_done_fn done, void* user,
                               poc_agent_id* out) {
  return poc::detail::ffi_guard([&] {
    if (rt == nullptr || done == nullptr || !poc::is_usable(tx)) return POC_INVALID;
    return poc::detail::start_agent(rt, done, user, out, [&](const auto& a) {
      return poc::detail::timer_body(a, tx, interval_ms, max_count);
    });
  });
}

poc_status poc_cpp_agent_cancel(poc_cpp_runtime* rt, poc_agent_id agent) {
  return poc::detail::ffi_guard([&] {
    if (rt == nullptr) return POC_INVALID;
    auto& table = asio::use_service<poc::detail::agent_table>(rt->rt.context());
    if (auto a = table.find(agent)) a->request_stop(POC_CANCELLED);
    return POC_OK;
  });
}

}  // extern "C"
