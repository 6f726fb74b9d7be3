// poc/port.hpp — the Asio wake-up adapter (import side): any C-ABI port (C++'s own exporter,
// Rust's, C#'s) as an Asio I/O object with async_send / async_receive.
//
// The handoff with the exporter is described step by step in docs/contract.md; the importer's
// half is summarised at the top of poc/detail/import_op.hpp. In short: the op state is allocated
// with the handler's associated allocator and holds outstanding work on the handler's associated
// executor; the exporter's completion callback (any thread, exactly once, maybe before send/recv
// returned) moves the handler out, frees the state and dispatches the handler to its associated
// executor. A handler is never invoked inside the initiating function, nor inside any other call
// this adapter makes into an exporter (send, recv, cancel, close, release, …): those completions
// are posted.
//
// Exceptions. A handler that throws behaves as with any Asio operation: the exception leaves the
// run() (or poll(), …) call of the handler's execution context, after the op state was freed and
// the cancellation slot cleared. It never unwinds into an exporter's frames: a handler that
// runs inline from a C callback and throws is caught there and the exception is re-raised on the
// handler's executor. poc::runtime's threads catch such exceptions, report them and keep running.
//
// Shutdown. Every PENDING op registers with the stop registry of its handler's execution context
// (poc/detail/stop_service.hpp); poc::detail::request_stop_all — called by poc::runtime::shutdown()
// — cancels each one through its port. The execution context must outlive every pending op (as
// with any Asio I/O object: the op keeps the context's run() busy until it completes).
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <poc/bridge.h>
#include <poc/detail/import_op.hpp>
#include <poc/detail/stop_service.hpp>
#include <poc/error.hpp>
#include <poc/message.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/error.hpp>
#include <asio/execution_context.hpp>

#include <cstddef>
#include <expected>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace poc {

/// True when the port's vtable is one this importer can call (non-NULL, POC_ABI_VERSION, size, no
/// NULL function).
/// Says nothing about the handle: only the exporter can tell whether it is live.
inline bool is_usable(const poc_sender& port) noexcept { return detail::vtable_usable(port.vtable); }
/// True when the port's vtable is one this importer can call (non-NULL, POC_ABI_VERSION, size, no
/// NULL function).
inline bool is_usable(const poc_receiver& port) noexcept {
  return detail::vtable_usable(port.vtable);
}

namespace detail {

inline std::expected<void, errc> to_expected(poc_status s) noexcept {
  if (s == POC_OK) return {};
  return std::unexpected(static_cast<errc>(s));
}

/// Completes `handler` with `args` as if by asio::post (the op never reached an exporter).
template <typename Handler, typename IoExecutor, typename... Args>
void post_immediate(Handler&& handler, const IoExecutor& io_ex, Args... args) {
  using handler_type = std::decay_t<Handler>;
  handler_type h(std::forward<Handler>(handler));
  auto ex = asio::get_associated_executor(h, io_ex);
  post_completion(ex, completion_binder<handler_type, Args...>(std::move(h), false,
                                                               std::move(args)...));
}

}  // namespace detail

/// The sending end of a channel owned by any runtime, imported into Asio.
///
/// Owns one sender port (`poc_sender`: handle + vtable) and gives it back to its exporter
/// (`release`) in the destructor. Move-only. Messages from one sender that awaits each send
/// arrive in order (contract rule 6); several senders (clone()) feed the same channel.
///
/// Thread safety
///   Distinct objects: safe. Shared objects: async_send, try_send, close, clone, native_handle
///   and get_executor may be called concurrently from several threads (they only read the port;
///   the exporter is thread-safe). Move, release, detach and destruction must not run concurrently
///   with any other member. Pending operations do not refer to this object: it may be destroyed
///   (which releases the port, completing them per the contract) while they are in flight.
template <typename Executor = asio::any_io_executor>
class basic_port_sender {
 public:
  /// The type of the executor associated with the object.
  using executor_type = Executor;

  /// Rebinds the sender to another executor type.
  template <typename Executor1>
  struct rebind_executor {
    using other = basic_port_sender<Executor1>;
  };

  /// Constructs a sender that holds no port; its operations fail with poc::errc::invalid.
  explicit basic_port_sender(const executor_type& ex)
      : ex_(ex), hint_(detail::stop_hint::for_executor(ex_)) {}

  /// Takes ownership of `port`. Handlers without an associated executor run on `ex`.
  /// Throws std::system_error(poc::errc::invalid) — without taking the port — if its vtable is
  /// NULL or of another ABI version (see poc::is_usable).
  basic_port_sender(const executor_type& ex, poc_sender port)
      : ex_(ex), hint_(detail::stop_hint::for_executor(ex_)) {
    if (!is_usable(port)) throw std::system_error(make_error_code(errc::invalid), "poc_sender");
    port_ = port;
  }

  /// Takes ownership of `port`; handlers without an associated executor run on `ctx`.
  template <typename ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, asio::execution_context&>
  basic_port_sender(ExecutionContext& ctx, poc_sender port)
      : basic_port_sender(executor_type(ctx.get_executor()), port) {}

  basic_port_sender(basic_port_sender&& other) noexcept
      : ex_(other.ex_), hint_(other.hint_), port_(std::exchange(other.port_, poc_sender{})) {}

  /// Releases the port held now, then takes `other`'s.
  basic_port_sender& operator=(basic_port_sender&& other) noexcept {
    if (this != &other) {
      (void)release();
      ex_ = other.ex_;
      hint_ = other.hint_;
      port_ = std::exchange(other.port_, poc_sender{});
    }
    return *this;
  }

  basic_port_sender(const basic_port_sender&) = delete;
  basic_port_sender& operator=(const basic_port_sender&) = delete;

  /// Releases the port (pending sends complete per the contract: CANCELLED unless already
  /// enqueued; releasing the last sender closes the channel).
  ~basic_port_sender() { (void)release(); }

  /// The executor used for handlers that have no associated executor.
  executor_type get_executor() const noexcept { return ex_; }

  /// True while the object holds a port.
  bool has_port() const noexcept { return port_.vtable != nullptr; }

  /// The port, still owned by this object.
  const poc_sender& native_handle() const noexcept { return port_; }

  /// Gives up ownership of the port without releasing it; the caller must release it.
  poc_sender detach() noexcept { return std::exchange(port_, poc_sender{}); }

  /// Enqueues `msg` now if there is room. Never blocks.
  /// Errors: full, closed, shutdown, invalid (no port, stale handle, oversized payload).
  std::expected<void, errc> try_send(const message& msg) noexcept {
    if (!has_port()) return std::unexpected(errc::invalid);
    const poc_message_view view = msg.view();
    detail::no_inline_scope scope;
    return detail::to_expected(port_.vtable->try_send(port_.handle, &view));
  }

  /// Closes the channel for new sends from every sender (pending sends complete with closed
  /// unless already enqueued; receivers drain, then get closed). Idempotent; the port is kept.
  std::expected<void, errc> close() noexcept {
    if (!has_port()) return std::unexpected(errc::invalid);
    detail::no_inline_scope scope;
    return detail::to_expected(port_.vtable->close(port_.handle));
  }

  /// Gives the port back to its exporter now; the object then holds no port.
  /// Errors: invalid (no port, or the exporter did not know the handle).
  std::expected<void, errc> release() noexcept {
    if (!has_port()) return std::unexpected(errc::invalid);
    const poc_sender port = std::exchange(port_, poc_sender{});
    detail::no_inline_scope scope;
    return detail::to_expected(port.vtable->release(port.handle));
  }

  /// Another sender for the same channel (its own port, released separately), on the same
  /// executor. Errors: shutdown, invalid.
  std::expected<basic_port_sender, errc> clone() const {
    if (!has_port()) return std::unexpected(errc::invalid);
    poc_sender out{};
    poc_status s;
    {
      detail::no_inline_scope scope;
      s = port_.vtable->clone(port_.handle, &out);
    }
    if (s != POC_OK) return std::unexpected(static_cast<errc>(s));
    if (!is_usable(out)) {
      if (out.vtable != nullptr && out.vtable->release != nullptr) out.vtable->release(out.handle);
      return std::unexpected(errc::invalid);
    }
    return basic_port_sender(ex_, out);
  }

  /// Asynchronously sends a message, waiting for room in the channel (backpressure: nothing is
  /// dropped).
  ///
  /// @param msg The message; the exporter copies it before the operation is started.
  /// @param token The completion token. The completion signature is
  /// @code void(std::error_code ec) @endcode
  /// `ec` is success (enqueued), asio::error::operation_aborted (cancelled before anything was
  /// enqueued), or a poc::errc: closed, shutdown, invalid (no port, stale handle, oversized
  /// payload), panic (the exporter failed and contained it).
  ///
  /// The handler is never invoked from inside this function: an immediate result is delivered as
  /// if by asio::post, a later one is dispatched to the handler's associated executor (outstanding
  /// work is held on it meanwhile) — never run on the exporter's thread unless that thread is
  /// running the handler's executor already.
  ///
  /// Per-operation cancellation: terminal, partial and total cancellation ask the exporter to
  /// cancel (port cancel). The operation still completes exactly once, with operation_aborted if
  /// nothing was enqueued, or with its real outcome if the send won the race.
  template <ASIO_COMPLETION_TOKEN_FOR(void(std::error_code)) CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_send(message msg,
                  CompletionToken&& token = asio::default_completion_token_t<executor_type>()) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(initiate_send(this), token,
                                                                        std::move(msg));
  }

 private:
  class initiate_send {
   public:
    using executor_type = Executor;

    explicit initiate_send(basic_port_sender* self) noexcept : self_(self) {}

    executor_type get_executor() const noexcept { return self_->get_executor(); }

    template <typename Handler>
    void operator()(Handler&& handler, message msg) const {
      using op = detail::import_op<std::decay_t<Handler>, Executor, false>;
      if (!self_->has_port()) {
        detail::post_immediate(std::forward<Handler>(handler), self_->ex_,
                               make_error_code(errc::invalid));
        return;
      }
      op::start_send(std::forward<Handler>(handler), self_->ex_, self_->hint_, self_->port_, msg);
    }

   private:
    basic_port_sender* self_;
  };

  executor_type ex_;
  detail::stop_hint hint_;
  poc_sender port_{};
};

/// The receiving end of a channel owned by any runtime, imported into Asio.
///
/// Owns the channel's receiver port and releases it (which closes the channel from the receiving
/// side) in the destructor. Move-only. Concurrent async_receive operations are served in the
/// order they were issued.
///
/// It also owns a small stash: messages that a cancelled receive got anyway, kept for the next
/// async_receive / try_receive (see "Cancel safety" on async_receive). Moving the object moves the
/// stash; close, release, detach and destruction drop what it holds (and what cancelled receives
/// still in flight would keep), as closing drops queued messages.
///
/// Thread safety
///   Distinct objects: safe. Shared objects: async_receive, try_receive, close, native_handle and
///   get_executor may be called concurrently; move, release, detach and destruction must not run
///   concurrently with any other member. Pending operations do not refer to this object (a
///   cancellable one shares the stash with it, which stays alive until both are gone).
template <typename Executor = asio::any_io_executor>
class basic_port_receiver {
 public:
  /// The type of the executor associated with the object.
  using executor_type = Executor;

  /// Rebinds the receiver to another executor type.
  template <typename Executor1>
  struct rebind_executor {
    using other = basic_port_receiver<Executor1>;
  };

  /// Constructs a receiver that holds no port; its operations fail with poc::errc::invalid.
  explicit basic_port_receiver(const executor_type& ex)
      : ex_(ex), hint_(detail::stop_hint::for_executor(ex_)) {}

  /// Takes ownership of `port`. Handlers without an associated executor run on `ex`.
  /// Throws std::system_error(poc::errc::invalid) — without taking the port — if its vtable is
  /// NULL or of another ABI version (std::bad_alloc, also without taking it, if out of memory).
  basic_port_receiver(const executor_type& ex, poc_receiver port)
      : ex_(ex), hint_(detail::stop_hint::for_executor(ex_)) {
    if (!is_usable(port)) throw std::system_error(make_error_code(errc::invalid), "poc_receiver");
    state_ = std::make_shared<detail::receiver_state>();
    port_ = port;
  }

  /// Takes ownership of `port`; handlers without an associated executor run on `ctx`.
  template <typename ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, asio::execution_context&>
  basic_port_receiver(ExecutionContext& ctx, poc_receiver port)
      : basic_port_receiver(executor_type(ctx.get_executor()), port) {}

  basic_port_receiver(basic_port_receiver&& other) noexcept
      : ex_(other.ex_),
        hint_(other.hint_),
        port_(std::exchange(other.port_, poc_receiver{})),
        state_(std::move(other.state_)) {}

  /// Releases the port held now (dropping its stash), then takes `other`'s port and stash.
  basic_port_receiver& operator=(basic_port_receiver&& other) noexcept {
    if (this != &other) {
      (void)release();
      ex_ = other.ex_;
      hint_ = other.hint_;
      port_ = std::exchange(other.port_, poc_receiver{});
      state_ = std::move(other.state_);
    }
    return *this;
  }

  basic_port_receiver(const basic_port_receiver&) = delete;
  basic_port_receiver& operator=(const basic_port_receiver&) = delete;

  /// Releases the port (implies close: pending receives complete with closed).
  ~basic_port_receiver() { (void)release(); }

  /// The executor used for handlers that have no associated executor.
  executor_type get_executor() const noexcept { return ex_; }

  /// True while the object holds a port.
  bool has_port() const noexcept { return port_.vtable != nullptr; }

  /// The port, still owned by this object.
  const poc_receiver& native_handle() const noexcept { return port_; }

  /// Number of messages in the stash: received by cancelled receives, waiting for the next
  /// async_receive / try_receive (see "Cancel safety" on async_receive). A snapshot, for
  /// diagnostics and tests.
  std::size_t stashed() const noexcept { return state_ != nullptr ? state_->size() : 0; }

  /// Gives up ownership of the port without releasing it; the caller must release it.
  /// Messages in this object's stash (see "Cancel safety" on async_receive) are dropped: drain them
  /// with try_receive first if they matter.
  poc_receiver detach() noexcept {
    if (state_ != nullptr) std::exchange(state_, nullptr)->close();
    return std::exchange(port_, poc_receiver{});
  }

  /// Dequeues a message now if one is queued: the oldest one in the stash (see "Cancel safety" on
  /// async_receive), else one from the port. Never blocks.
  /// Errors: empty, closed (closed and drained), shutdown, invalid, panic (out of memory while
  /// copying the message, or the exporter broke the contract).
  std::expected<message, errc> try_receive() noexcept {
    if (!has_port()) return std::unexpected(errc::invalid);
    if (state_->maybe_nonempty()) {
      detail::stashed_message kept;
      if (state_->take(kept)) return std::move(kept.msg);
    }
    struct slot {
      std::optional<message> msg;
      bool failed = false;
    } out;
    poc_status s;
    {
      detail::no_inline_scope scope;
      s = port_.vtable->try_recv(
          port_.handle,
          [](void* user, poc_status st, const poc_message_view* m) noexcept {
            auto* o = static_cast<slot*>(user);
            if (st != POC_OK || m == nullptr || (m->data == nullptr && m->len != 0)) {
              o->failed = true;
              return;
            }
            try {
              o->msg.emplace(message::from_view(*m));
            } catch (...) {
              o->failed = true;
            }
          },
          &out);
    }
    if (s != POC_OK) return std::unexpected(static_cast<errc>(s));
    if (out.failed || !out.msg) return std::unexpected(errc::panic);
    return std::move(*out.msg);
  }

  /// Closes the channel from the receiving side: pending and later sends fail with closed,
  /// queued messages are dropped (the stash's too, and any that a cancelled receive would still
  /// keep), pending receives complete with closed. Idempotent.
  std::expected<void, errc> close() noexcept {
    if (!has_port()) return std::unexpected(errc::invalid);
    state_->close();
    detail::no_inline_scope scope;
    return detail::to_expected(port_.vtable->close(port_.handle));
  }

  /// Gives the port back to its exporter now (implies close, and drops the stash); the object then
  /// holds no port.
  std::expected<void, errc> release() noexcept {
    if (!has_port()) return std::unexpected(errc::invalid);
    std::exchange(state_, nullptr)->close();
    const poc_receiver port = std::exchange(port_, poc_receiver{});
    detail::no_inline_scope scope;
    return detail::to_expected(port.vtable->release(port.handle));
  }

  /// Asynchronously receives a message, waiting for one.
  ///
  /// @param token The completion token. The completion signature is
  /// @code void(std::error_code ec, poc::message msg) @endcode
  /// `ec` is success (`msg` is the message), asio::error::operation_aborted (the operation was
  /// cancelled; no message was taken from the channel, or the one taken was kept: see below), or
  /// a poc::errc: closed (the channel is closed and drained), shutdown, invalid, panic. `msg` is
  /// empty unless `ec` is success.
  ///
  /// If this object's stash holds a message (see below), the oldest one is taken instead of calling
  /// the port, and the operation completes as if by asio::post with it.
  ///
  /// The handler is never invoked from inside this function; see async_send of
  /// basic_port_sender for how and where it runs.
  ///
  /// Per-operation cancellation: terminal, partial and total cancellation ask the exporter to
  /// cancel. The operation completes exactly once. Once a cancellation was requested through the
  /// handler's slot, the handler never gets a message: it gets operation_aborted (or the error the
  /// receive failed with anyway, e.g. closed), and the operation has had no observable effect on
  /// the channel — which is what partial and total cancellation promise.
  ///
  /// Cancel safety (contract rule 5): a message is never lost to a cancel. When a cancellation
  /// was requested and the exporter delivered a message anyway (the receive won the race at the
  /// port, or had completed and its handler was queued but had not run yet), the message is kept
  /// in this object's stash and the handler gets operation_aborted with an empty message; the next
  /// async_receive or try_receive on this object returns it, oldest first, before anything from the
  /// port. So compositions that discard the result of an operation they cancelled — awaitable
  /// operators `co_await (rx.async_receive(use_awaitable) || timer.async_wait(use_awaitable))`,
  /// experimental::make_parallel_group(...).async_wait(wait_for_one(), ...) — lose nothing, and a
  /// consumer that keeps one receive in flight at a time gets every message once and in order.
  /// As Asio requires of cancellation slots, the cancellation must be emitted on the executor the
  /// handler runs on: `||` does (the receive runs in a coroutine on the awaiting coroutine's
  /// executor); parallel_group runs a deferred receive's handler on this object's executor, so on
  /// a multi-threaded io_context give this object the strand the group runs on.
  /// Without a cancellation request nothing changes; cancellation of the whole runtime
  /// (poc::runtime::shutdown) is not a request through the slot: such a receive that wins the race
  /// still completes with its message. Moving this object keeps the stash; close, release, detach
  /// and destruction drop it, like the queued messages that closing the channel drops.
  template <ASIO_COMPLETION_TOKEN_FOR(void(std::error_code, message)) CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_receive(CompletionToken&& token = asio::default_completion_token_t<executor_type>()) {
    return asio::async_initiate<CompletionToken, void(std::error_code, message)>(
        initiate_receive(this), token);
  }

 private:
  class initiate_receive {
   public:
    using executor_type = Executor;

    explicit initiate_receive(basic_port_receiver* self) noexcept : self_(self) {}

    executor_type get_executor() const noexcept { return self_->get_executor(); }

    template <typename Handler>
    void operator()(Handler&& handler) const {
      using op = detail::import_op<std::decay_t<Handler>, Executor, true>;
      if (!self_->has_port()) {
        detail::post_immediate(std::forward<Handler>(handler), self_->ex_,
                               make_error_code(errc::invalid), message{});
        return;
      }
      const std::shared_ptr<detail::receiver_state>& stash = self_->state_;
      if (stash->maybe_nonempty()) {  // an empty stash costs one atomic load
        detail::stashed_message kept;
        if (stash->take(kept)) {
          detail::complete_from_stash(std::forward<Handler>(handler), self_->ex_, stash,
                                      std::move(kept));
          return;
        }
      }
      op::start_receive(std::forward<Handler>(handler), self_->ex_, self_->hint_, self_->port_,
                        stash);
    }

   private:
    basic_port_receiver* self_;
  };

  executor_type ex_;
  detail::stop_hint hint_;
  poc_receiver port_{};
  std::shared_ptr<detail::receiver_state> state_;  // non-null while the object holds a port
};

/// A sender port imported into Asio, with a polymorphic executor.
using port_sender = basic_port_sender<>;
/// A receiver port imported into Asio, with a polymorphic executor.
using port_receiver = basic_port_receiver<>;

}  // namespace poc
