// poc/async_fn.hpp — lent async functions (bridge.h `poc_async_fn`, "Section - Futures"): call an
// async function another runtime lends to C++, and lend a C++ coroutine to the other runtimes.
//
//   poc::async_fn                     owns a borrowed poc_async_fn (move-only; releases it once)
//     .call(arg)                        std::expected<poc_future, poc::errc>: starts one call
//   poc::async_call(fn, arg)          asio::awaitable<poc::call_result>: starts one call, awaits it
//   poc::lend(rt, body)               std::expected<poc::async_fn, poc::errc>: a C++ coroutine body
//                                     lent as a poc_async_fn whose calls run on `rt`
//
// Rules (bridge.h, poc_async_fn):
//   * Ownership. A poc_async_fn is owned by whoever holds it and released exactly once, when no
//     more calls will be made. poc::async_fn is that owner: its destructor (or reset()) calls
//     `release(context)` once; it is move-only. detach() hands the raw value over to a function
//     that takes a poc_async_fn by value (such functions take it over and release it whatever
//     they return, e.g. poc_cpp_sum_calls, poc_rust_sum_calls).
//   * Calls. call() may be made from any thread, concurrently; it never blocks on the call's
//     work. The argument is borrowed for the call only. On success the caller owns the returned
//     future and must release it exactly once — poc::async_call / poc::async_await do that (see
//     poc/future.hpp for where it is polled, cancellation, and how errors arrive). A call that
//     does not start answers a poc::errc: invalid (bad argument, empty async_fn), shutdown (the
//     lender's runtime is stopping), panic (the lender failed).
//   * Calls outlive the function: releasing the function does not cancel calls already started;
//     their futures stay valid and are released on their own.
//   * Lending. poc::lend keeps `rt`'s io_context alive (shared) until the borrower releases the
//     function, so the function may outlive the poc::runtime object; calls made after `rt` began
//     shutting down answer POC_SHUTDOWN. Each call copies its argument, then runs `body(arg)` as
//     a coroutine co_spawned on a strand of its own on `rt`'s io_context, exported as a
//     poc_future by the C++ future exporter: cancel/release of that future (and `rt`'s shutdown)
//     emit a terminal cancellation into the coroutine; an exception escaping `body` becomes
//     POC_PANIC {data = what()}. The body's result becomes the future's outcome:
//       a value                                  POC_OK {id, payload}
//       call_error{errc::error, id, text}        POC_ERROR {id, text}
//       call_error{errc::panic, id, text}        POC_PANIC {id, text}
//       call_error{asio::error::operation_aborted}   POC_CANCELLED
//       call_error{errc::shutdown}               POC_SHUTDOWN
//       any other code                           POC_PANIC {id, text or the code's message}
//
// Thread safety: a poc::async_fn object is not shared between threads while it is moved, reset
// or destroyed; call() on one object is safe from many threads (the lender allows concurrent
// calls). The lent body may run on any thread of `rt`, one call per strand.
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <poc/bridge.h>
#include <poc/error.hpp>
#include <poc/future.hpp>
#include <poc/message.hpp>
#include <poc/runtime.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <cstdint>
#include <expected>
#include <functional>
#include <utility>

namespace poc {

/// What a C++ caller gets from one awaited call: the value, or why there is none.
using call_result = std::expected<message, call_error>;

/// Owns a poc_async_fn lent by another runtime (or by C++ itself). Move-only; releases the
/// function exactly once (destructor or reset()), unless detach() handed it over.
class async_fn {
 public:
  /// An empty function: call() answers errc::invalid, nothing is released.
  async_fn() noexcept = default;

  /// Takes over `f`. A NULL `f.release` is never called (such a function cannot be given back).
  explicit async_fn(poc_async_fn f) noexcept : f_(f) {}

  async_fn(async_fn&& other) noexcept : f_(std::exchange(other.f_, poc_async_fn{})) {}
  async_fn& operator=(async_fn&& other) noexcept {
    if (this != &other) {
      reset();
      f_ = std::exchange(other.f_, poc_async_fn{});
    }
    return *this;
  }
  async_fn(const async_fn&) = delete;
  async_fn& operator=(const async_fn&) = delete;

  /// Releases the function (once).
  ~async_fn() { reset(); }

  /// True when the function can be called (it holds a non-NULL `call`).
  explicit operator bool() const noexcept { return f_.call != nullptr; }

  /// Starts one call with `arg` (borrowed for this call only). Success: the call's future, owned
  /// by the caller (release it exactly once; poc::async_call does). Otherwise the call did not
  /// start: errc::invalid (empty function, bad argument), errc::shutdown, errc::panic (the lender
  /// failed or answered a status bridge.h does not allow).
  [[nodiscard]] std::expected<poc_future, errc> call(const poc_message_view& arg) const noexcept {
    if (f_.call == nullptr) return std::unexpected(errc::invalid);
    poc_future out{0, nullptr};
    const poc_status s = f_.call(f_.context, &arg, &out);
    switch (s) {
      case POC_OK: return out;
      case POC_INVALID: return std::unexpected(errc::invalid);
      case POC_SHUTDOWN: return std::unexpected(errc::shutdown);
      default: return std::unexpected(errc::panic);  // POC_PANIC, or a status call must not return
    }
  }
  /// As above with a message (its bytes are borrowed for the call).
  [[nodiscard]] std::expected<poc_future, errc> call(const message& arg) const noexcept {
    const poc_message_view v = arg.view();
    return call(v);
  }
  /// As above with the message {id, no payload}.
  [[nodiscard]] std::expected<poc_future, errc> call(std::uint64_t id) const noexcept {
    const poc_message_view v{id, nullptr, 0};
    return call(v);
  }

  /// Releases the function now (if held); the object is empty afterwards.
  void reset() noexcept {
    const poc_async_fn f = std::exchange(f_, poc_async_fn{});
    if (f.release != nullptr) f.release(f.context);
  }

  /// Gives up ownership without releasing: the raw value, for a function that takes it over.
  [[nodiscard]] poc_async_fn detach() noexcept { return std::exchange(f_, poc_async_fn{}); }

  /// The raw value, still owned by this object.
  [[nodiscard]] const poc_async_fn& get() const noexcept { return f_; }

 private:
  poc_async_fn f_{nullptr, nullptr, nullptr};
};

namespace detail {
template <typename Executor>
asio::awaitable<call_result, Executor> not_started(errc why) {
  co_return std::unexpected(call_error{make_error_code(why), 0, {}});
}
}  // namespace detail

/// Starts one call of `fn` with `arg` now and returns an awaitable of its result:
/// `auto r = co_await poc::async_call(fn, poc::message{7, {}});`. A call that does not start
/// gives call_error{code = the errc of async_fn::call}. The future is owned by the awaitable
/// (released even if it is never awaited); cancellation follows the awaiting coroutine's.
template <typename Executor = asio::any_io_executor>
asio::awaitable<call_result, Executor> async_call(const async_fn& fn, const message& arg) {
  auto started = fn.call(arg);
  if (!started) return detail::not_started<Executor>(started.error());
  return async_call<Executor>(*started);
}

/// The body of a C++ function lent to other runtimes: one call's argument in, its result out.
/// It runs as a coroutine on the lender runtime's io_context (see the file comment).
using lent_body = std::function<asio::awaitable<call_result>(message arg)>;

/// Lends `body` as a poc_async_fn whose calls run on `rt` (see the file comment). errc::invalid
/// for an empty body, errc::shutdown if `rt` is stopping. Hand it over with detach(), or call it
/// from C++ through the returned object. May throw std::bad_alloc.
std::expected<async_fn, errc> lend(runtime& rt, lent_body body);

}  // namespace poc
