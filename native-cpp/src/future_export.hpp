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
//     future through the io_context's stop registry: SHUTDOWN, plus the same emit.
//   * Exceptions thrown by the operation's start or its completion become POC_PANIC outcomes.
#pragma once

#include "runtime_core.hpp"

#include <poc/bridge.h>

#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace poc::detail {

/// What an exported operation finished with: POC_OK {id, data} = the value; POC_ERROR {id = code,
/// data = UTF-8 message}; POC_PANIC {data = message}; POC_CANCELLED / POC_SHUTDOWN (no value).
struct future_outcome {
  poc_status status = POC_OK;
  std::uint64_t id = 0;
  std::string data;
};

class cpp_future;

/// Hands an operation's outcome to its future. Copyable; only the first call counts.
class future_completer {
 public:
  explicit future_completer(std::shared_ptr<cpp_future> f) noexcept : f_(std::move(f)) {}
  void operator()(future_outcome outcome) const noexcept;

 private:
  std::shared_ptr<cpp_future> f_;
};

using future_strand = asio::strand<asio::io_context::executor_type>;

/// Starts the operation: called once, on `strand`. Bind `slot` to the operation's handler (its
/// emit runs on the strand) and call `done` exactly once, from the strand or any other thread.
using future_start =
    std::function<void(const future_strand& strand, asio::cancellation_slot slot, future_completer done)>;

/// Exports an operation run on `core`'s io_context as `*out`. POC_OK, POC_SHUTDOWN (the runtime
/// is stopping; nothing started) or POC_INVALID (handle table full). May throw std::bad_alloc.
poc_status export_cpp_future(const std::shared_ptr<runtime_core>& core, future_start start,
                             poc_future* out);

/// The vtable of every future the C++ side exports.
extern const poc_future_vtable cpp_future_vtable;

/// Number of live C++ future handles (tests and diagnostics).
std::size_t cpp_future_count() noexcept;

}  // namespace poc::detail
