// Lent functions on the C++ side (bridge.h `poc_async_fn`): poc::lend (poc/async_fn.hpp), the C++
// "square" lent function (poc_cpp_square_fn) and sum_calls (poc_cpp_sum_calls), a C++20 coroutine
// that awaits the calls of any lent function. Every call's future is made by the C++ future
// exporter (future_export.hpp), which also contains what they throw.
#include "c_runtime.hpp"
#include "ffi_guard.hpp"
#include "future_export.hpp"
#include "runtime_core.hpp"

#include <poc/async_fn.hpp>
#include <poc/bridge.h>
#include <poc/future.hpp>

#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace poc::detail {

namespace {

// ------------------------------------------------------------------------------------------------
// poc::lend
// ------------------------------------------------------------------------------------------------

/// The future outcome of a lent body's result (the table in poc/async_fn.hpp).
future_outcome outcome_of(call_result r) {
  if (r) return {POC_OK, r->id, std::string(r->payload.begin(), r->payload.end())};
  call_error& e = r.error();
  if (e.code == errc::error) return {POC_ERROR, e.id, std::move(e.text)};
  if (e.code == errc::panic) return {POC_PANIC, e.id, std::move(e.text)};
  if (e.code == asio::error::operation_aborted) return {POC_CANCELLED, 0, {}};
  if (e.code == errc::shutdown) return {POC_SHUTDOWN, 0, {}};
  return {POC_PANIC, e.id, e.text.empty() ? e.code.message() : std::move(e.text)};
}

/// One call of a lent body, on its strand. `body` is shared with the function, which may be
/// released while calls run.
asio::awaitable<future_outcome> run_lent(std::shared_ptr<const lent_body> body, message arg) {
  co_return outcome_of(co_await (*body)(std::move(arg)));
}

struct lent_context {
  std::shared_ptr<runtime_core> core;
  std::shared_ptr<const lent_body> body;
};

poc_status lent_call(void* context, const poc_message_view* arg, poc_future* out) {
  return ffi_guard([&] {
    if (arg == nullptr || out == nullptr || (arg->data == nullptr && arg->len != 0))
      return POC_INVALID;
    const auto* ctx = static_cast<const lent_context*>(context);
    if (ctx->core->stopping()) return POC_SHUTDOWN;
    return export_awaitable(ctx->core, run_lent(ctx->body, message::from_view(*arg)), out);
  });
}

void lent_release(void* context) { delete static_cast<lent_context*>(context); }

// ------------------------------------------------------------------------------------------------
// poc_cpp_square_fn
// ------------------------------------------------------------------------------------------------

struct square_context {
  std::shared_ptr<runtime_core> core;  // the io_context stays alive until release
  std::uint32_t mode;
  std::uint32_t delay_ms;
};

poc_status square_call(void* context, const poc_message_view* arg, poc_future* out) {
  return ffi_guard([&] {
    // A view with NULL data and a length is a bad argument (bridge.h), even though square only
    // reads the id: the same answer as every other lent function's call.
    if (arg == nullptr || out == nullptr || (arg->data == nullptr && arg->len != 0))
      return POC_INVALID;
    const auto* ctx = static_cast<const square_context*>(context);
    if (ctx->core->stopping()) return POC_SHUTDOWN;
    const std::uint64_t x = arg->id;
    switch (ctx->mode) {
      case POC_SQUARE_READY:  // computed here; a throw becomes the future's POC_PANIC
        return export_ready_future(contained_outcome([x] { return square_outcome(x); }), out);
      case POC_SQUARE_POSTED:
        return export_cpp_future(
            ctx->core,
            [x](const future_strand& strand, asio::cancellation_slot, future_completer done) {
              asio::post(strand, done.contain([x, done] { done(square_outcome(x)); }));
            },
            out);
      case POC_SQUARE_TIMER:
        return export_cpp_future(ctx->core, square_after_timer(x, ctx->delay_ms), out);
      default:
        return POC_INVALID;  // not reachable: the mode is checked when the function is made
    }
  });
}

void square_release(void* context) { delete static_cast<square_context*>(context); }

// ------------------------------------------------------------------------------------------------
// sum_calls
// ------------------------------------------------------------------------------------------------

std::string call_prefix(std::uint64_t x) { return "call " + std::to_string(x) + ": "; }

/// Awaits f({first + i}) for i in [0, count), one after the other (bridge.h poc_cpp_sum_calls).
/// The first call that gives no value ends it, naming its argument x: ERROR and PANIC pass through
/// with the callee's code and the message prefixed "call <x>: "; SHUTDOWN passes through (no
/// value); a call that could not start gives ERROR 502 "call <x>: could not start (<STATUS>)"; one
/// that answered CANCELLED or INVALID gives ERROR 502 "call <x>: answered <STATUS>" (the texts of
/// the Rust sum_calls). `f` lives in the coroutine frame: released when the coroutine ends, or
/// when it is destroyed unstarted.
/// `own` is the runtime it runs on: once that runtime is stopping, a call refused with SHUTDOWN
/// or an await cancelled (shutdown cancels both this coroutine and the awaits on its io_context,
/// in no particular order) ends it with SHUTDOWN, not with ERROR 502.
asio::awaitable<future_outcome> sum_calls(async_fn f, std::uint64_t first, std::uint32_t count,
                                          std::weak_ptr<const runtime_core> own) {
  const auto own_stopping = [&own] {
    const auto core = own.lock();
    return core == nullptr || core->stopping();
  };
  std::uint64_t sum = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    // The outer future was cancelled between two calls: start no more (its poll answers
    // CANCELLED or SHUTDOWN whatever this returns).
    const auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none)
      co_return future_outcome{POC_CANCELLED, 0, {}};

    const std::uint64_t x = first + i;  // wrapping
    auto started = f.call(x);
    if (!started && started.error() == errc::shutdown && own_stopping())
      co_return future_outcome{POC_SHUTDOWN, 0, {}};
    if (!started)
      co_return future_outcome{POC_ERROR, 502,
                               call_prefix(x) + "could not start (" +
                                   poc_status_str(static_cast<poc_status>(started.error())) + ")"};
    const call_result r = co_await poc::async_call(*started);
    if (!r) {
      const call_error& e = r.error();
      if (e.code == errc::error) co_return future_outcome{POC_ERROR, e.id, call_prefix(x) + e.text};
      if (e.code == errc::panic) co_return future_outcome{POC_PANIC, e.id, call_prefix(x) + e.text};
      // The runtime's shutdown may cancel this await (the importer's stop entry) before it
      // reaches the exported future: that is SHUTDOWN too, not a callee that answered CANCELLED.
      if (e.code == errc::shutdown || (e.code == asio::error::operation_aborted && own_stopping()))
        co_return future_outcome{POC_SHUTDOWN, 0, {}};
      // CANCELLED (asio::error::operation_aborted), INVALID, or a status bridge.h does not allow.
      co_return future_outcome{POC_ERROR, 502,
                               call_prefix(x) + "answered " + poc_status_str(to_status(e.code))};
    }
    sum += r->id;  // wrapping
  }
  co_return future_outcome{POC_OK, sum, "summed " + std::to_string(count) + " calls"};
}

}  // namespace

}  // namespace poc::detail

namespace poc {

std::expected<async_fn, errc> lend(runtime& rt, lent_body body) {
  if (!body) return std::unexpected(errc::invalid);
  if (rt.stopping()) return std::unexpected(errc::shutdown);
  auto* ctx = new detail::lent_context{rt.core(),
                                       std::make_shared<const lent_body>(std::move(body))};
  return async_fn(poc_async_fn{&detail::lent_call, &detail::lent_release, ctx});
}

}  // namespace poc

// ================================================================================================
// C ABI
// ================================================================================================

extern "C" {

poc_status poc_cpp_square_fn(poc_cpp_runtime* rt, uint32_t mode, uint32_t delay_ms,
                             poc_async_fn* out) {
  using namespace poc::detail;
  return ffi_guard([&] {
    if (rt == nullptr || out == nullptr) return POC_INVALID;
    if (mode != POC_SQUARE_READY && mode != POC_SQUARE_POSTED && mode != POC_SQUARE_TIMER)
      return POC_INVALID;
    if (rt->rt.stopping()) return POC_SHUTDOWN;
    auto* ctx = new square_context{rt->rt.core(), mode, delay_ms};
    *out = poc_async_fn{&square_call, &square_release, ctx};
    return POC_OK;
  });
}

poc_status poc_cpp_sum_calls(poc_cpp_runtime* rt, poc_async_fn f, uint64_t first, uint32_t count,
                             poc_future* out) {
  using namespace poc::detail;
  // Taken over: released exactly once whatever this returns (at once unless the coroutine got it).
  poc::async_fn owned(f);
  return ffi_guard([&] {
    if (rt == nullptr || f.call == nullptr || f.release == nullptr || out == nullptr)
      return POC_INVALID;
    const auto& core = rt->rt.core();
    if (core->stopping()) return POC_SHUTDOWN;
    return export_awaitable(core, sum_calls(std::move(owned), first, count, core), out);
  });
}

}  // extern "C"
