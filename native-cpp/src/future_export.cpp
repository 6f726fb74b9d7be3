// The C++ exporter of futures (future_export.hpp has the rules), the "square" computation shared
// by the C++ examples, and the example export poc_cpp_delayed_square (bridge.h "Section - Async
// calls exported by C++"). The lent functions (poc_cpp_square_fn, poc_cpp_sum_calls, poc::lend)
// are in lent_calls.cpp.
#include "future_export.hpp"

#include "c_runtime.hpp"
#include "ffi_guard.hpp"
#include "handle_table.hpp"

#include <poc/detail/stop_service.hpp>
#include <poc/runtime.hpp>

#include <asio/co_spawn.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

namespace poc::detail {

namespace {

handle_table<cpp_future>& futures() {
  static handle_table<cpp_future> table;  // never destroyed before a late release: see below
  return table;
}

struct owed_wake {
  poc_wake_fn wake = nullptr;
  void* user = nullptr;
  void fire() const noexcept {
    if (wake != nullptr) wake(user);
  }
};

}  // namespace

/// One exported operation. Lifetime: shared by the handle table (until release), the operation's
/// handlers (until they ran) and calls in progress.
class cpp_future : public std::enable_shared_from_this<cpp_future> {
 public:
  /// An operation to be started on `core`'s io_context.
  explicit cpp_future(std::shared_ptr<runtime_core> core)
      : core_(std::move(core)),
        strand_(asio::make_strand(core_->context())),
        stops_(&asio::use_service<stop_service>(core_->context())) {}

  /// A ready future: finished with `outcome`; no io_context, nothing to stop.
  explicit cpp_future(future_outcome outcome) : outcome_(std::move(outcome)), finished_(true) {}

  ~cpp_future() { unregister(); }

  cpp_future(const cpp_future&) = delete;
  cpp_future& operator=(const cpp_future&) = delete;

  /// Registers for shutdown and starts the operation on the strand.
  void start(std::uint64_t handle, future_start start_fn) {
    entry_.request_ = stop_request{&on_stop, &cpp_future_vtable, handle, 0};
    registered_.store(true, std::memory_order_release);
    const bool already_stopped = stops_->add(entry_);
    future_completer done(shared_from_this());
    asio::post(*strand_, done.contain([self = shared_from_this(), f = std::move(start_fn),
                                       done]() mutable {
      f(*self->strand_, self->signal_.slot(), done);
    }));
    if (already_stopped) stop(POC_SHUTDOWN);
  }

  poc_status poll(poc_wake_fn wake, poc_recv_complete_fn deliver, void* user) {
    owed_wake previous;
    std::optional<future_outcome> out;
    poc_status answer;
    {
      std::lock_guard lock(mutex_);
      previous = std::exchange(owed_, owed_wake{});
      if (delivered_) {
        answer = POC_INVALID;
      } else if (stopped_ != POC_OK) {
        answer = stopped_;
        if (stopped_ == POC_SHUTDOWN) delivered_ = true;  // a final outcome, like a value
      } else if (outcome_) {
        out = std::move(outcome_);
        outcome_.reset();
        delivered_ = true;
        answer = out->status;
      } else {
        owed_ = owed_wake{wake, user};
        answer = POC_PENDING;
      }
    }
    previous.fire();  // exactly one wake per PENDING, even when polled again before it
    if (out && (answer == POC_OK || answer == POC_ERROR || answer == POC_PANIC)) {
      const poc_message_view view{out->id, reinterpret_cast<const std::uint8_t*>(out->data.data()),
                                  out->data.size()};
      deliver(user, answer, &view);
    }
    return answer;
  }

  /// The operation finished: keep the first outcome, fire the owed wake.
  void complete(future_outcome outcome) noexcept {
    owed_wake owed;
    {
      std::lock_guard lock(mutex_);
      if (finished_) return;
      finished_ = true;
      if (stopped_ == POC_OK && !delivered_) {
        // Shutdown cancels what operations await (imports, agents) and the operations themselves
        // in no particular order: one that ended "cancelled" before its own stop request was
        // reached was stopped by the shutdown, and answers so.
        if (outcome.status == POC_CANCELLED && core_ != nullptr && core_->stopping())
          outcome.status = POC_SHUTDOWN;
        try {
          outcome_ = std::move(outcome);
        } catch (...) {
          outcome_.reset();
        }
      }
      owed = std::exchange(owed_, owed_wake{});
    }
    unregister();
    owed.fire();
  }

  /// cancel (POC_CANCELLED) or shutdown (POC_SHUTDOWN): answers the future for good (unless it
  /// was delivered), fires the owed wake and asks the operation to stop.
  void stop(poc_status why) noexcept {
    owed_wake owed;
    bool emit = false;
    {
      std::lock_guard lock(mutex_);
      // Cancel wins over an outcome not yet delivered (as in the Rust exporter); shutdown only
      // answers a future whose operation had not finished.
      if (!delivered_ && stopped_ == POC_OK && (why == POC_CANCELLED || !finished_)) stopped_ = why;
      emit = !finished_ && !emitted_;
      emitted_ = emitted_ || emit;
      owed = std::exchange(owed_, owed_wake{});
    }
    if (emit) {  // never for a ready future: it is finished from the start
      try {
        asio::post(*strand_, [self = shared_from_this()] {
          if (!self->finished()) self->signal_.emit(asio::cancellation_type::all);
        });
      } catch (...) {
        // Out of memory: the operation runs to its natural end; the future is answered anyway.
      }
    }
    owed.fire();
  }

 private:
  [[nodiscard]] bool finished() {
    std::lock_guard lock(mutex_);
    return finished_;
  }

  void unregister() noexcept {
    if (registered_.exchange(false, std::memory_order_acq_rel)) stops_->remove(entry_);
  }

  // The stop request: `a` is the handle (a released future was already cancelled).
  static void on_stop(const void*, std::uint64_t handle, std::uint64_t) noexcept {
    if (auto f = futures().resolve(handle, handle_kind::future)) f->stop(POC_SHUTDOWN);
  }

  // Operations only (a ready future has none of these):
  std::shared_ptr<runtime_core> core_;  // keeps the io_context alive for the strand and the op
  std::optional<future_strand> strand_;
  asio::cancellation_signal signal_;  // used on the strand only
  stop_service* stops_ = nullptr;
  stop_entry entry_;
  std::atomic<bool> registered_{false};

  std::mutex mutex_;  // guards everything below
  std::optional<future_outcome> outcome_;
  owed_wake owed_;
  poc_status stopped_ = POC_OK;  // POC_CANCELLED or POC_SHUTDOWN once stopped
  bool finished_ = false;        // the operation called its completer
  bool delivered_ = false;       // poll handed out a final answer
  bool emitted_ = false;
};

void future_completer::operator()(future_outcome outcome) const noexcept {
  if (f_) f_->complete(std::move(outcome));
}

future_outcome current_exception_outcome() noexcept {
  future_outcome out{POC_PANIC, 0, {}};
  try {
    throw;
  } catch (const std::exception& e) {
    try {
      out.data = e.what();
    } catch (...) {
      // Out of memory: a PANIC without text.
    }
  } catch (...) {
    try {
      out.data = "the C++ operation threw an exception that is not a std::exception";
    } catch (...) {
    }
  }
  return out;
}

poc_status export_cpp_future(const std::shared_ptr<runtime_core>& core, future_start start,
                             poc_future* out) {
  if (core->stopping()) return POC_SHUTDOWN;
  auto f = std::make_shared<cpp_future>(core);
  const std::uint64_t handle = futures().insert(handle_kind::future, f);
  try {
    f->start(handle, std::move(start));
  } catch (...) {
    futures().erase(handle, handle_kind::future);
    f->stop(POC_CANCELLED);
    throw;
  }
  *out = poc_future{handle, &cpp_future_vtable};
  return POC_OK;
}

poc_status export_ready_future(future_outcome outcome, poc_future* out) {
  auto f = std::make_shared<cpp_future>(std::move(outcome));
  *out = poc_future{futures().insert(handle_kind::future, std::move(f)), &cpp_future_vtable};
  return POC_OK;
}

poc_status export_awaitable(const std::shared_ptr<runtime_core>& core,
                            asio::awaitable<future_outcome> coro, poc_future* out) {
  auto start = [coro = std::move(coro)](const future_strand& strand, asio::cancellation_slot slot,
                                        future_completer done) mutable {
    asio::co_spawn(strand, std::move(coro),
                   future_handler(strand, slot, done,
                                  [done](std::exception_ptr e, future_outcome outcome) {
                                    if (e) std::rethrow_exception(e);  // contained: POC_PANIC
                                    done(std::move(outcome));
                                  }));
  };
  return export_cpp_future(core, std::move(start), out);
}

future_outcome square_outcome(std::uint64_t x) {
  if (x == ~std::uint64_t{0}) throw std::domain_error(std::string(square_domain_error));
  if (x > 0xFFFF'FFFFu) return {POC_ERROR, 400, "overflow"};  // x * x must fit in 64 bits
  return {POC_OK, x * x, {}};
}

future_start square_after_timer(std::uint64_t x, std::uint32_t delay_ms) {
  return [x, delay_ms](const future_strand& strand, asio::cancellation_slot slot,
                       future_completer done) {
    auto timer = std::make_shared<asio::steady_timer>(strand, std::chrono::milliseconds(delay_ms));
    timer->async_wait(future_handler(strand, slot, done, [timer, x, done](std::error_code ec) {
      if (ec == asio::error::operation_aborted) return done({POC_CANCELLED, 0, {}});
      if (ec) return done({POC_ERROR, 500, ec.message()});
      done(square_outcome(x));  // x == 2^64 - 1 throws here, in the timer's handler: POC_PANIC
    }));
  };
}

std::size_t cpp_future_count() noexcept { return futures().size(); }

namespace {

poc_status future_poll(uint64_t handle, poc_wake_fn wake, poc_recv_complete_fn deliver, void* user) {
  return ffi_guard([&] {
    if (wake == nullptr || deliver == nullptr) return POC_INVALID;
    const auto f = futures().resolve(handle, handle_kind::future);
    return f ? f->poll(wake, deliver, user) : POC_INVALID;
  });
}

poc_status future_cancel(uint64_t handle) {
  return ffi_guard([&] {
    const auto f = futures().resolve(handle, handle_kind::future);
    if (!f) return POC_INVALID;
    f->stop(POC_CANCELLED);
    return POC_OK;
  });
}

poc_status future_release(uint64_t handle) {
  return ffi_guard([&] {
    const auto f = futures().erase(handle, handle_kind::future);
    if (!f) return POC_INVALID;
    f->stop(POC_CANCELLED);
    return POC_OK;
  });
}

}  // namespace

const poc_future_vtable cpp_future_vtable = {
    POC_ABI_VERSION, sizeof(poc_future_vtable), &future_poll, &future_cancel, &future_release,
};

}  // namespace poc::detail

// ================================================================================================
// C ABI: the example export
// ================================================================================================

extern "C" {

poc_status poc_cpp_delayed_square(poc_cpp_runtime* rt, uint64_t x, uint32_t delay_ms,
                                  poc_future* out) {
  using namespace poc::detail;
  return ffi_guard([&] {
    if (rt == nullptr || out == nullptr) return POC_INVALID;
    return export_cpp_future(rt->rt.core(), square_after_timer(x, delay_ms), out);
  });
}

}  // extern "C"
