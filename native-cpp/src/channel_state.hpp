// One exported channel: an Asio concurrent_channel plus the bookkeeping that bridge.h needs and
// the Asio channel does not provide (close semantics, per-op cancellation by id, completion of
// pending ops on close, release and shutdown).
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include "runtime_core.hpp"

#include <poc/bridge.h>
#include <poc/message.hpp>

#include <asio/cancellation_signal.hpp>
#include <asio/error.hpp>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace poc::detail {

/// The Asio channel behind every exported channel. The error_code in the signature is what
/// concurrent_channel requires to report cancellation; we always send a default one.
using message_channel = asio::experimental::basic_concurrent_channel<
    asio::io_context::executor_type, asio::experimental::channel_traits<>,
    void(asio::error_code, poc::message)>;

/// One exported channel (bridge.h rules 1–8 for a bounded asio concurrent_channel).
///
/// Who does what:
///
/// * **The Asio channel** holds the buffer (`capacity` messages) and the FIFO queue of senders
///   waiting for room (backpressure): async_send waits while the buffer is full, and each
///   try_receive that frees a slot moves the oldest waiting sender's message in and posts that
///   send's completion.
/// * **This class** holds the FIFO queue of receives waiting for a message (`receives_`). A send
///   that finds a waiting receive hands its message straight to the oldest one. The receives are
///   not left in the Asio channel because in Asio 1.22, cancelling the last waiting async_receive
///   of a *buffered* channel leaves it believing it is full (asio issue #1241, fixed upstream in
///   2023): every later try_send would fail and an async_send would queue next to receivers.
///   Invariant: `receives_` is non-empty only while the Asio buffer is empty and no sender waits.
/// * **Close.** concurrent_channel::close() would also stop receivers from draining the buffer,
///   and it leaves waiting senders pending forever (asio issue #1575), so it is never called.
///   Instead `senders_closed_` / `receiver_closed_` are checked under `mutex_`, which every
///   enqueue holds: once closed, no message can enter the channel, so "closed and the buffer is
///   empty" is final and receivers can report POC_CLOSED.
/// * **Pending sends** get a pending_op with its own asio::cancellation_signal bound to the
///   async_send. Emitting it runs the channel's cancel_by_key(): if the send still waits, the
///   channel removes it and completes it with channel_cancelled, which the completion handler
///   reports as the op's stored `reason_` (CANCELLED, CLOSED or SHUTDOWN); if the send already
///   completed, the emission does nothing and the real outcome wins (bridge.h rule 5). The same
///   mechanism completes pending sends on close, release and shutdown.
/// * **Pending receives** are completed by whoever takes them out of `receives_` under `mutex_`:
///   a send (POC_OK with the message), cancel, close or shutdown. Whoever takes it out posts its
///   completion; an op that is no longer queued cannot be taken out again. Exactly once.
///
/// Every completion is posted to the io_context: it runs on a runtime thread, never inline in
/// the call that caused it and never under a lock. The send handler takes `mutex_` only to
/// unlink its op, releases it, deletes the op and then calls the importer's callback; signals
/// are emitted only for linked ops and under `mutex_`, so never after the op was deleted.
///
/// Lock order: `mutex_` → the Asio channel's internal mutex → the io_context's scheduler mutex.
/// Asio never calls back into this class while holding its own locks (completions are posted;
/// a try_receive handler runs after the channel unlocked), and importer callbacks (`deliver`,
/// completions) are only called with no lock held, so they may re-enter any port function.
///
/// Thread safety: every member may be called concurrently from any thread.
class channel_state : public std::enable_shared_from_this<channel_state> {
 public:
  /// `capacity` >= 1; `max_payload` is the largest accepted payload in bytes.
  channel_state(std::shared_ptr<runtime_core> core, std::size_t capacity, std::size_t max_payload);
  channel_state(const channel_state&) = delete;
  channel_state& operator=(const channel_state&) = delete;
  ~channel_state();

  // ---- sender ports (`port` is the handle of the calling port) --------------------------------

  /// bridge.h poc_sender_vtable::try_send.
  poc_status try_send(const poc_message_view* msg);
  /// bridge.h poc_sender_vtable::send.
  poc_status send(std::uint64_t port, const poc_message_view* msg, poc_send_complete_fn on_complete,
                  void* user, poc_op_id* op);
  /// bridge.h poc_sender_vtable::close: closes the channel for every sender.
  poc_status close_senders() noexcept;
  /// Counts one more sender port (clone). POC_OK or POC_SHUTDOWN.
  poc_status add_sender() noexcept;
  /// The port `port` was released: its pending sends complete with POC_CANCELLED (unless they
  /// already enqueued); the last sender closes the channel. Valid after shutdown.
  void release_sender(std::uint64_t port) noexcept;

  // ---- the receiver port ----------------------------------------------------------------------

  /// bridge.h poc_receiver_vtable::try_recv.
  poc_status try_recv(poc_recv_complete_fn deliver, void* user);
  /// bridge.h poc_receiver_vtable::recv.
  poc_status recv(std::uint64_t port, poc_recv_complete_fn deliver, poc_recv_complete_fn on_complete,
                  void* user, poc_op_id* op);
  /// bridge.h poc_receiver_vtable::close.
  poc_status close_receiver() noexcept;
  /// The receiver port was released: as close_receiver(), also after shutdown.
  void release_receiver() noexcept;

  // ---- both -----------------------------------------------------------------------------------

  /// bridge.h cancel: requests completion of op `op` if it is a pending op of port `port`.
  poc_status cancel(std::uint64_t port, poc_op_id op) noexcept;

  // ---- the runtime ----------------------------------------------------------------------------

  /// Completes every pending op with `reason` (shutdown step 2). Ops that already completed
  /// inside the channel keep their real outcome.
  void complete_pending(poc_status reason) noexcept;

 private:
  struct pending_op;
  struct send_handler;
  struct recv_completion;

  /// An intrusive doubly linked list of pending ops in insertion order. Guarded by mutex_.
  struct op_list {
    pending_op* head = nullptr;
    pending_op* tail = nullptr;
    [[nodiscard]] bool empty() const noexcept { return head == nullptr; }
    void push_back(pending_op* op) noexcept;
    void erase(pending_op* op) noexcept;
  };

  [[nodiscard]] bool acceptable(const poc_message_view* msg) const noexcept;
  [[nodiscard]] poc_status send_gate_locked() const noexcept;
  [[nodiscard]] poc_status enqueue_locked(poc::message& m);
  [[nodiscard]] pending_op* new_op_locked(std::uint64_t port, void* user);
  static void request_completion_locked(pending_op* send, poc_status reason) noexcept;
  void complete_recv_locked(pending_op* recv, poc_status status, poc::message msg) noexcept;
  void complete_all_locked(poc_status reason) noexcept;
  /// SHUTDOWN once the runtime is stopping, else `status`: for ops completed by close/release.
  [[nodiscard]] poc_status unless_stopping(poc_status status) const noexcept;
  void close_senders_locked() noexcept;
  void close_receiver_locked() noexcept;

  static void finish_send(pending_op* op, asio::error_code ec) noexcept;
  static void finish_recv(pending_op* op, poc_status status, const poc::message& msg) noexcept;

  // Declared first so that it is destroyed last: channel_ must die while its io_context lives.
  const std::shared_ptr<runtime_core> core_;
  const std::size_t max_payload_;

  std::mutex mutex_;
  message_channel channel_;        // every call on it is made under mutex_ as well
  op_list sends_;                  // sends waiting inside channel_ (until their handler ran)
  op_list receives_;               // receives waiting for a message, oldest first
  poc_op_id next_op_id_ = 1;       // 0 is "no op"
  std::size_t senders_ = 1;        // live sender ports
  bool senders_closed_ = false;    // a sender closed, or the last one was released
  bool receiver_closed_ = false;   // the receiver closed or was released
};

}  // namespace poc::detail
