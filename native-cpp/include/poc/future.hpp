// poc/future.hpp — the Asio importer of continuation-polled futures (bridge.h "Section - Futures",
// ARCHITECTURE.md §2.4): await an async call exported by any runtime (a Rust async fn, a C# Task,
// …) with any Asio completion token.
//
//   poc::async_await(f, ex, token)      completion signature void(std::error_code, poc::message)
//   poc::async_call(f)                  asio::awaitable<std::expected<poc::message, call_error>>
//
// Shape. A free async function, like asio::async_read: a future is a one-shot value, not an I/O
// object, so there is no class to keep alive. `ex` plays the role of an I/O object's executor: it
// is used for a handler with no associated executor of its own.
//
// How it works (poc/detail/future_op.hpp has the steps): the future is polled only on the
// handler's associated executor, never on the waker's thread and never inside async_await — the
// wake only posts a re-poll (cxx-async deadlocked resuming inline on the waker's thread,
// ARCHITECTURE.md §6). A wake during poll is remembered and causes one more poll; polls never
// overlap. Outstanding work is held on the handler's executor while the future is in flight.
//
// Errors and their text. The handler always gets the message too:
//   success                         ec = {},                        msg = the value
//   POC_ERROR  (application error)  ec = poc::errc::error,          msg = {id = error code,
//                                                                          payload = UTF-8 text}
//   POC_PANIC  (contained failure)  ec = poc::errc::panic,          msg = as for ERROR (may be empty)
//   POC_CANCELLED                   ec = asio::error::operation_aborted, msg empty
//   POC_SHUTDOWN / POC_INVALID      ec = poc::errc::shutdown / invalid,  msg empty
// poc::error_text(msg) views the text. Tokens that turn an error_code into an exception
// (use_awaitable, use_future) drop the message: use as_tuple(...) to keep it, or poc::async_call,
// which returns std::expected<poc::message, poc::call_error> (code, error id and text).
//
// Thread safety: async_await may be called from any thread. The future is not shared: whoever
// passes it to async_await gives it up.
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <poc/bridge.h>
#include <poc/detail/future_op.hpp>
#include <poc/detail/import_op.hpp>
#include <poc/error.hpp>
#include <poc/message.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/execution/executor.hpp>
#include <asio/execution_context.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/is_executor.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace poc {

/// True when the future's vtable is one this importer can call (non-NULL, POC_ABI_VERSION, size,
/// no NULL function).
inline bool is_usable(const poc_future& f) noexcept { return detail::vtable_usable(f.vtable); }

/// The UTF-8 text of an error value (ERROR/PANIC): the message's payload, viewed.
inline std::string_view error_text(const message& m) noexcept {
  return std::string_view(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
}

/// Why an awaited async call did not produce a value.
struct call_error {
  /// poc::errc::error (application error), poc::errc::panic, poc::errc::shutdown,
  /// poc::errc::invalid, or asio::error::operation_aborted (cancelled).
  std::error_code code;
  /// The callee's error code (ERROR/PANIC; 0 otherwise).
  std::uint64_t id = 0;
  /// The callee's UTF-8 message (ERROR/PANIC; empty otherwise).
  std::string text;
};

/// The completion arguments of async_await as a std::expected.
inline std::expected<message, call_error> to_expected(std::error_code ec, message msg) {
  if (!ec) return msg;
  return std::unexpected(call_error{ec, msg.id, std::string(error_text(msg))});
}

namespace detail {

template <typename Executor>
class initiate_await {
 public:
  using executor_type = Executor;

  explicit initiate_await(const Executor& ex) : ex_(ex) {}

  executor_type get_executor() const noexcept { return ex_; }

  template <typename Handler>
  void operator()(Handler&& handler, future_owner owner) const {
    using handler_type = std::decay_t<Handler>;
    if (!is_usable(owner.get())) {
      handler_type h(std::forward<Handler>(handler));
      auto ex = asio::get_associated_executor(h, ex_);
      post_completion(ex, completion_binder<handler_type, std::error_code, message>(
                              std::move(h), false, make_error_code(errc::invalid), message()));
      return;
    }
    future_op<handler_type, Executor>::start(std::forward<Handler>(handler), ex_,
                                             std::move(owner));
  }

 private:
  Executor ex_;
};

template <typename Executor>
asio::awaitable<std::expected<message, call_error>, Executor> call_coro(future_owner owner) {
  const Executor ex = co_await asio::this_coro::executor;
  auto token = asio::experimental::as_tuple(asio::use_awaitable_t<Executor>());
  auto [ec, msg] = co_await asio::async_initiate<decltype(token), void(std::error_code, message)>(
      initiate_await<Executor>(ex), token, std::move(owner));
  co_return to_expected(ec, std::move(msg));
}

}  // namespace detail

/// Asynchronously awaits a future exported by any runtime, taking ownership of it.
///
/// @param f The future. It is released exactly once: when the operation finishes, or — if the
/// operation is never launched (a deferred token dropped) or cannot start — by the initiation's
/// argument. A future whose vtable is NULL or of another ABI version cannot be called: the
/// operation completes with poc::errc::invalid and the future is not released.
/// @param ex The executor used when the handler has no associated executor.
/// @param token The completion token. The completion signature is
/// @code void(std::error_code ec, poc::message msg) @endcode
/// See the file comment for ec/msg per outcome (the error text travels in `msg`).
///
/// The future is polled only on the handler's associated executor (first poll posted; with
/// asio::use_future that executor is Asio's system thread pool). The handler is never invoked
/// from inside this function nor from the wake. Outstanding work is held on that executor until
/// the handler runs.
///
/// Per-operation cancellation: terminal, partial and total cancellation call the future's cancel,
/// then poll it again: the operation completes with operation_aborted, or with the real outcome if
/// the future finished first. poc::detail::request_stop_all on the handler's execution context
/// (poc::runtime::shutdown) does the same. The operation completes exactly once.
template <typename Executor,
          ASIO_COMPLETION_TOKEN_FOR(void(std::error_code, message)) CompletionToken =
              asio::default_completion_token_t<Executor>>
  requires(asio::execution::is_executor<Executor>::value || asio::is_executor<Executor>::value)
auto async_await(poc_future f, const Executor& ex,
                 CompletionToken&& token = asio::default_completion_token_t<Executor>()) {
  detail::future_owner owner(f);  // released even if initiation throws
  return asio::async_initiate<CompletionToken, void(std::error_code, message)>(
      detail::initiate_await<Executor>(ex), token, std::move(owner));
}

/// As above, with `ctx.get_executor()`.
template <typename ExecutionContext,
          ASIO_COMPLETION_TOKEN_FOR(void(std::error_code, message)) CompletionToken =
              asio::default_completion_token_t<typename ExecutionContext::executor_type>>
  requires std::is_convertible_v<ExecutionContext&, asio::execution_context&>
auto async_await(poc_future f, ExecutionContext& ctx,
                 CompletionToken&& token =
                     asio::default_completion_token_t<typename ExecutionContext::executor_type>()) {
  return async_await(f, ctx.get_executor(), std::forward<CompletionToken>(token));
}

/// Coroutine convenience: `auto r = co_await poc::async_call(f);` — the value, or a call_error
/// with the code, the callee's error id and text. Takes ownership of `f` now (released even if
/// the awaitable is never awaited). Cancellation follows the awaiting coroutine's.
template <typename Executor = asio::any_io_executor>
asio::awaitable<std::expected<message, call_error>, Executor> async_call(poc_future f) {
  return detail::call_coro<Executor>(detail::future_owner(f));
}

}  // namespace poc
