// The C++ exporter of futures: an Asio async operation behind a `poc_future {handle, vtable}`
// (bridge.h "Section - Futures", docs/contract.md "Futures"; the same steps as the Rust exporter,
// rust/poc-bridge/src/future/export.rs).
//
//   * The operation runs on a strand of the runtime's io_context; it gets that strand, a
//     cancellation slot and a completer, and calls the completer once with its outcome.
//   * poll (any thread): the outcome if there is one (`deliver` runs synchronously, outside every
//     lock; later polls answer INVALID), CANCELLED after cancel, SHUTDOWN after the runtime's
//     shutdown, else {wake, user} is stored and poll answers PENDING. The completion takes the
//     stored wake under the lock and calls it outside: exactly once per PENDING, and a completion
//     racing with poll is seen by one of them.
//   * A wake still owed from an earlier PENDING is fired when a new poll starts, and by cancel /
//     release / shutdown (which also answer the future for good).
//   * cancel marks the future and posts `signal.emit(all)` to the strand (the operation stops
//     early); release erases the handle and cancels. Runtime shutdown reaches every unfinished
//     future through the io_context's stop registry: SHUTDOWN, plus the same emit. Shutdown
//     reaches registered things in no particular order, so an operation may see what it awaits
//     cancelled before its own stop request arrives: an operation that completes with
//     POC_CANCELLED once its runtime is stopping (and was not cancelled through its future)
//     answers POC_SHUTDOWN.
//   * Containment: nothing an exported operation throws reaches io_context::run or the caller.
//     The start function is guarded by the exporter; every completion handler an operation gives
//     to Asio is wrapped with future_completer::contain (or future_handler, which also binds the
//     strand and the slot), so an exception thrown there completes the future with POC_PANIC
//     {data = what()}. export_awaitable does both for a coroutine (an exception escaping it is a
//     POC_PANIC too).
//   * Ready futures (export_ready_future): an outcome known when the call is made is exported as
//     an already-finished future. Nothing is started on an io_context and no runtime is needed:
//     the first poll delivers it synchronously (no wake); cancel before that poll wins, as for
//     any future; shutdown does not touch it. contained_outcome computes such an outcome with the
//     same containment (an exception becomes POC_PANIC from poll, not a failed call).
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include "runtime_core.hpp"

#include <poc/bridge.h>

#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace poc::detail {

/// What an exported operation finished with: POC_OK {id, data} = the value; POC_ERROR {id = code,
/// data = UTF-8 message}; POC_PANIC {data = message}; POC_CANCELLED / POC_SHUTDOWN (no value).
struct future_outcome {
  poc_status status = POC_OK;
  std::uint64_t id = 0;
  std::string data;
};

/// The outcome of the exception in flight (call inside a catch block): POC_PANIC {data = what()
/// of a std::exception, else a fixed text}. Never throws (without memory, the text is empty).
future_outcome current_exception_outcome() noexcept;

/// Runs `work` (returning a future_outcome) and turns anything it throws into a POC_PANIC
/// outcome: the computation of a ready future (export_ready_future).
template <typename F>
future_outcome contained_outcome(F&& work) noexcept {
  try {
    return std::forward<F>(work)();
  } catch (...) {
    return current_exception_outcome();
  }
}

class cpp_future;

template <typename F>
class contained_handler;

/// Hands an operation's outcome to its future. Copyable; only the first call counts.
class future_completer {
 public:
  explicit future_completer(std::shared_ptr<cpp_future> f) noexcept : f_(std::move(f)) {}
  void operator()(future_outcome outcome) const noexcept;

  /// Wraps a completion handler of the operation: if `handler` throws, the future completes with
  /// POC_PANIC {data = what()} and the exception goes no further (not into io_context::run).
  /// Wrap the innermost handler and bind executors and slots around the wrapper (it has no
  /// associated executor, slot or allocator of its own): future_handler does that.
  template <typename F>
  [[nodiscard]] contained_handler<std::decay_t<F>> contain(F&& handler) const {
    return contained_handler<std::decay_t<F>>(*this, std::forward<F>(handler));
  }

 private:
  std::shared_ptr<cpp_future> f_;
};

/// See future_completer::contain.
template <typename F>
class contained_handler {
 public:
  contained_handler(future_completer done, F f) : done_(std::move(done)), f_(std::move(f)) {}

  template <typename... Args>
  void operator()(Args&&... args) noexcept {
    try {
      std::move(f_)(std::forward<Args>(args)...);
    } catch (...) {
      done_(current_exception_outcome());  // ignored if the handler completed before throwing
    }
  }

 private:
  future_completer done_;
  F f_;
};

using future_strand = asio::strand<asio::io_context::executor_type>;

/// The completion handler every exported operation gives to Asio: `handler` runs on `strand`
/// with `slot` as its cancellation slot (cleared on the strand before `handler` runs, so that a
/// later cancel emits nothing), and whatever it throws completes the future with POC_PANIC.
template <typename F>
auto future_handler(const future_strand& strand, asio::cancellation_slot slot,
                    const future_completer& done, F&& handler) {
  return asio::bind_cancellation_slot(
      slot, asio::bind_executor(strand, done.contain([slot, h = std::forward<F>(handler)](
                                                         auto&&... args) mutable {
                                  slot.clear();
                                  std::move(h)(std::forward<decltype(args)>(args)...);
                                })));
}

/// Starts the operation: called once, on `strand`. Bind `slot` to the operation's handler (its
/// emit runs on the strand) and call `done` exactly once, from the strand or any other thread.
/// Anything it throws completes the future with POC_PANIC. Move-only captures are fine; if the
/// operation never starts (export refused, io_context destroyed first) it is just destroyed.
using future_start = std::move_only_function<void(const future_strand& strand,
                                                  asio::cancellation_slot slot,
                                                  future_completer done)>;

/// Exports an operation run on `core`'s io_context as `*out`. POC_OK, or POC_SHUTDOWN (the
/// runtime is stopping; nothing started, `start` is destroyed). May throw std::bad_alloc (the
/// handle table is full or out of memory; nothing started).
poc_status export_cpp_future(const std::shared_ptr<runtime_core>& core, future_start start,
                             poc_future* out);

/// Exports an already-finished future with `outcome` (POC_OK, POC_ERROR or POC_PANIC) as `*out`:
/// no io_context, no thread hop; the first poll delivers it and answers its status without a
/// wake. POC_OK; may throw std::bad_alloc (nothing exported).
poc_status export_ready_future(future_outcome outcome, poc_future* out);

/// Exports a coroutine: co_spawned on the future's strand of `core`'s io_context, with the
/// future's cancellation slot bound to its completion (cancel/release/shutdown emit a terminal
/// cancellation into the coroutine, which reaches the operation it awaits). Its co_return value
/// is the outcome; an exception escaping it completes the future with POC_PANIC. As
/// export_cpp_future otherwise (the coroutine is destroyed unstarted if nothing starts).
poc_status export_awaitable(const std::shared_ptr<runtime_core>& core,
                            asio::awaitable<future_outcome> coro, poc_future* out);

// --- the example computation shared by poc_cpp_delayed_square and the C++ square lent function

/// what() of the std::domain_error that square_outcome throws for x == 2^64 - 1.
inline constexpr std::string_view square_domain_error =
    "square(2^64 - 1): the argument is outside the C++ square's domain";

/// bridge.h's "square": x <= 2^32 - 1 gives POC_OK {id = x * x}; x == 2^64 - 1 throws
/// std::domain_error(square_domain_error) (the containment demo: call it inside the operation);
/// any other x gives POC_ERROR {400, "overflow"}.
future_outcome square_outcome(std::uint64_t x);

/// An operation that waits `delay_ms` on an asio::steady_timer of the strand, then completes with
/// square_outcome(x) (a cancelled wait completes with POC_CANCELLED).
future_start square_after_timer(std::uint64_t x, std::uint32_t delay_ms);

/// The vtable of every future the C++ side exports.
extern const poc_future_vtable cpp_future_vtable;

/// Number of live C++ future handles (tests and diagnostics).
std::size_t cpp_future_count() noexcept;

}  // namespace poc::detail
