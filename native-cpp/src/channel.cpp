// The C++ exporter: asio concurrent_channels handed out as bridge.h ports.
//
//   poc_cpp_channel_new(_ex) / poc::runtime::make_channel  create a channel_state and put one
//     sender and one receiver port for it into the process-wide port table;
//   the static sender/receiver vtables resolve the handle through that table and forward to the
//     channel_state, which implements the rules of bridge.h (see channel_state.hpp).
//
// Every function that the C ABI reaches is wrapped in ffi_guard: a C++ exception becomes
// POC_PANIC and never crosses into the caller's runtime.
#include "channel_state.hpp"
#include "c_runtime.hpp"
#include "ffi_guard.hpp"
#include "handle_table.hpp"

#include <poc/runtime.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/post.hpp>
#include <asio/experimental/channel_error.hpp>

#include <cassert>
#include <optional>
#include <utility>

namespace poc::detail {

// ================================================================================================
// Pending ops
// ================================================================================================

/// One send or receive that returned POC_PENDING: the only allocation per pending op.
///
/// A pending send is linked in `sends_` and owned by the Asio operation that carries its
/// handler; the handler unlinks and deletes it. A pending receive is linked in `receives_`
/// until someone takes it out to complete it; from then on it is owned by the posted
/// recv_completion, which deletes it. The list links, `reason_` and `completion_requested_`
/// are guarded by the channel's mutex_; the rest is immutable after construction.
struct channel_state::pending_op {
  pending_op* prev_ = nullptr;
  pending_op* next_ = nullptr;
  poc_op_id id_ = 0;
  std::uint64_t port_ = 0;  // handle of the port that issued the op
  /// Sends: what a channel_cancelled completion reports, i.e. why the signal below took the
  /// send out of the channel before it had any effect. The first reason wins.
  poc_status reason_ = POC_CANCELLED;
  bool completion_requested_ = false;
  /// Sends: bound to the async_send as its cancellation slot. Alive until the op is deleted,
  /// which happens only after it was unlinked, so an emission never outlives it.
  asio::cancellation_signal signal_;
  poc_send_complete_fn send_done_ = nullptr;  // set for a send
  poc_recv_complete_fn recv_done_ = nullptr;  // set for a receive
  void* user_ = nullptr;
  /// Keeps the channel, and so the io_context its completion is queued on, alive until the
  /// completion has run.
  std::shared_ptr<channel_state> channel_;
};

/// Completion handler of a pending async_send. Runs on an io_context thread, posted by Asio.
struct channel_state::send_handler {
  pending_op* op;
  void operator()(asio::error_code ec) const noexcept { finish_send(op, ec); }
};

/// Completion of a pending receive, posted by whoever took the op out of `receives_`.
struct channel_state::recv_completion {
  pending_op* op;
  poc_status status;
  poc::message msg;  // the message when status is POC_OK
  void operator()() const noexcept { finish_recv(op, status, msg); }
};

void channel_state::op_list::push_back(pending_op* op) noexcept {
  op->prev_ = tail;
  op->next_ = nullptr;
  if (tail != nullptr) tail->next_ = op;
  else head = op;
  tail = op;
}

void channel_state::op_list::erase(pending_op* op) noexcept {
  if (op->prev_ != nullptr) op->prev_->next_ = op->next_;
  else head = op->next_;
  if (op->next_ != nullptr) op->next_->prev_ = op->prev_;
  else tail = op->prev_;
  op->prev_ = op->next_ = nullptr;
}

namespace {

/// The bridge.h status of a send's Asio completion. channel_cancelled means "our signal took the
/// send out of the channel before it had any effect", reported as the reason it was emitted.
poc_status outcome(asio::error_code ec, poc_status reason) noexcept {
  if (!ec) return POC_OK;
  if (ec == asio::experimental::error::channel_cancelled) return reason;
  if (ec == asio::experimental::error::channel_closed) return POC_CLOSED;  // unused: see class doc
  return POC_PANIC;
}

/// Hands a message to the importer's deliver/completion function. No lock may be held.
void hand_over(poc_recv_complete_fn fn, void* user, const poc::message& msg) noexcept {
  const poc_message_view view = msg.view();
  fn(user, POC_OK, &view);
}

}  // namespace

// ================================================================================================
// channel_state
// ================================================================================================

channel_state::channel_state(std::shared_ptr<runtime_core> core, std::size_t capacity,
                             std::size_t max_payload)
    : core_(std::move(core)),
      max_payload_(max_payload),
      channel_(core_->context().get_executor(), capacity) {}

channel_state::~channel_state() {
  // Every pending op holds a reference to this object, so none can be left.
  assert(sends_.empty() && receives_.empty());
}

bool channel_state::acceptable(const poc_message_view* msg) const noexcept {
  return msg != nullptr && (msg->data != nullptr || msg->len == 0) && msg->len <= max_payload_;
}

poc_status channel_state::send_gate_locked() const noexcept {
  if (core_->stopping()) return POC_SHUTDOWN;
  if (senders_closed_ || receiver_closed_) return POC_CLOSED;
  return POC_OK;
}

poc_status channel_state::enqueue_locked(poc::message& m) {
  // A waiting receive means an empty buffer and no waiting sender (class invariant): hand the
  // message to the oldest receive, nothing can be overtaken.
  if (!receives_.empty()) {
    complete_recv_locked(receives_.head, POC_OK, std::move(m));
    return POC_OK;
  }
  // try_send builds the queued message from `m` only when it succeeds, so after a failure `m`
  // is intact for the caller.
  return channel_.try_send(asio::error_code{}, std::move(m)) ? POC_OK : POC_FULL;
}

channel_state::pending_op* channel_state::new_op_locked(std::uint64_t port, void* user) {
  auto* op = new pending_op;
  op->id_ = next_op_id_++;
  op->port_ = port;
  op->user_ = user;
  op->channel_ = shared_from_this();
  return op;
}

void channel_state::request_completion_locked(pending_op* send, poc_status reason) noexcept {
  if (send->completion_requested_) return;
  send->completion_requested_ = true;
  send->reason_ = reason;
  // Runs the channel's cancel_by_key() synchronously: a still-waiting send leaves the channel's
  // waiter queue now and its completion (channel_cancelled → reason_) is posted; a send that
  // already completed is not in the queue and keeps its real outcome.
  send->signal_.emit(asio::cancellation_type::terminal);
}

void channel_state::complete_recv_locked(pending_op* recv, poc_status status,
                                         poc::message msg) noexcept {
  receives_.erase(recv);  // taken out: nobody else can complete it now
  asio::post(core_->context(), recv_completion{recv, status, std::move(msg)});
}

void channel_state::complete_all_locked(poc_status reason) noexcept {
  for (pending_op* op = sends_.head; op != nullptr; op = op->next_)
    request_completion_locked(op, reason);
  while (receives_.head != nullptr) complete_recv_locked(receives_.head, reason, poc::message{});
}

// ---- sending ------------------------------------------------------------------------------------

poc_status channel_state::try_send(const poc_message_view* msg) {
  if (!acceptable(msg)) return POC_INVALID;
  poc::message m = poc::message::from_view(*msg);  // the view is borrowed for this call only

  std::lock_guard lock(mutex_);
  if (const poc_status gate = send_gate_locked(); gate != POC_OK) return gate;
  return enqueue_locked(m);
}

poc_status channel_state::send(std::uint64_t port, const poc_message_view* msg,
                               poc_send_complete_fn on_complete, void* user, poc_op_id* op_out) {
  if (on_complete == nullptr || op_out == nullptr || !acceptable(msg)) return POC_INVALID;
  poc::message m = poc::message::from_view(*msg);  // the view is borrowed for this call only

  std::lock_guard lock(mutex_);
  if (const poc_status gate = send_gate_locked(); gate != POC_OK) return gate;
  if (enqueue_locked(m) == POC_OK) return POC_OK;  // fast path: the callback is not called

  // The buffer is full. Every enqueue and dequeue holds mutex_, so it still is, and async_send
  // joins the channel's queue of waiting senders (FIFO behind earlier ones).
  std::unique_ptr<pending_op> op(new_op_locked(port, user));
  op->send_done_ = on_complete;
  *op_out = op->id_;  // before the op can complete: its handler needs mutex_ first
  channel_.async_send(asio::error_code{}, std::move(m),
                      asio::bind_cancellation_slot(op->signal_.slot(), send_handler{op.get()}));
  sends_.push_back(op.release());  // from here on the handler owns the op
  return POC_PENDING;
}

poc_status channel_state::close_senders() noexcept {
  std::lock_guard lock(mutex_);
  if (core_->stopping()) return POC_SHUTDOWN;
  close_senders_locked();
  return POC_OK;
}

poc_status channel_state::unless_stopping(poc_status status) const noexcept {
  // Shutdown step 2 (docs/contract.md): an op pending when the runtime began to stop completes
  // with SHUTDOWN. The shutdown sweep completes the channels one after another, so a release on a
  // channel not swept yet (by an agent whose op elsewhere just ended with SHUTDOWN, say) must not
  // complete that channel's pending ops with CLOSED or CANCELLED first (found by scripts/stress,
  // phase shutdown-load).
  return core_->stopping() ? POC_SHUTDOWN : status;
}

void channel_state::close_senders_locked() noexcept {
  if (senders_closed_) return;
  senders_closed_ = true;
  // Waiting sends complete with CLOSED: nothing of theirs was enqueued. Waiting receives too:
  // they imply an empty buffer, and nothing can be enqueued any more.
  complete_all_locked(unless_stopping(POC_CLOSED));
}

poc_status channel_state::add_sender() noexcept {
  std::lock_guard lock(mutex_);
  if (core_->stopping()) return POC_SHUTDOWN;
  ++senders_;
  return POC_OK;
}

void channel_state::release_sender(std::uint64_t port) noexcept {
  std::lock_guard lock(mutex_);
  for (pending_op* op = sends_.head; op != nullptr; op = op->next_)
    if (op->port_ == port) request_completion_locked(op, unless_stopping(POC_CANCELLED));
  if (senders_ > 0 && --senders_ == 0) close_senders_locked();
}

// ---- receiving ----------------------------------------------------------------------------------

poc_status channel_state::try_recv(poc_recv_complete_fn deliver, void* user) {
  if (deliver == nullptr) return POC_INVALID;
  std::optional<poc::message> got;
  {
    std::lock_guard lock(mutex_);
    if (core_->stopping()) return POC_SHUTDOWN;
    if (receiver_closed_) return POC_CLOSED;
    // The handler runs synchronously, after the Asio channel released its own lock. Taking a
    // message lets the oldest waiting sender (if any) into the buffer and posts its completion.
    const bool received =
        channel_.try_receive([&got](asio::error_code, poc::message m) { got.emplace(std::move(m)); });
    // Both facts were read under mutex_, which every enqueue and every close holds: "closed and
    // nothing queued" cannot be undone by a racing send.
    if (!received) return senders_closed_ ? POC_CLOSED : POC_EMPTY;
  }
  hand_over(deliver, user, *got);  // synchronously, with no lock held (re-entrancy)
  return POC_OK;
}

poc_status channel_state::recv(std::uint64_t port, poc_recv_complete_fn deliver,
                               poc_recv_complete_fn on_complete, void* user, poc_op_id* op_out) {
  if (deliver == nullptr || on_complete == nullptr || op_out == nullptr) return POC_INVALID;
  std::optional<poc::message> got;
  {
    std::lock_guard lock(mutex_);
    if (core_->stopping()) return POC_SHUTDOWN;
    if (receiver_closed_) return POC_CLOSED;
    const bool received =
        channel_.try_receive([&got](asio::error_code, poc::message m) { got.emplace(std::move(m)); });
    if (!received) {
      if (senders_closed_) return POC_CLOSED;  // closed and drained (see try_recv)
      // Nothing queued and no sender waiting: wait behind earlier receives (FIFO).
      pending_op* op = new_op_locked(port, user);
      op->recv_done_ = on_complete;
      *op_out = op->id_;
      receives_.push_back(op);
      return POC_PENDING;
    }
  }
  hand_over(deliver, user, *got);
  return POC_OK;
}

poc_status channel_state::close_receiver() noexcept {
  std::lock_guard lock(mutex_);
  if (core_->stopping()) return POC_SHUTDOWN;
  close_receiver_locked();
  return POC_OK;
}

void channel_state::release_receiver() noexcept {
  std::lock_guard lock(mutex_);
  close_receiver_locked();
}

void channel_state::close_receiver_locked() noexcept {
  if (receiver_closed_) return;
  receiver_closed_ = true;
  complete_all_locked(unless_stopping(POC_CLOSED));
  // Drop what is queued. No sender waits in the channel any more, so this only pops the buffer.
  // (concurrent_channel::reset() would do it in one call, but in Asio 1.22 it leaves the
  // channel's receive state claiming a non-empty buffer.)
  while (channel_.try_receive([](asio::error_code, poc::message) {})) {
  }
}

// ---- both ---------------------------------------------------------------------------------------

poc_status channel_state::cancel(std::uint64_t port, poc_op_id id) noexcept {
  std::lock_guard lock(mutex_);
  if (core_->stopping()) return POC_SHUTDOWN;
  // Linear searches: a channel rarely has more than a few pending ops (one per awaiting sender
  // and receiver). An op that is not found already completed, or never existed: cancel is a
  // request, so that is fine.
  for (pending_op* op = sends_.head; op != nullptr; op = op->next_) {
    if (op->id_ == id && op->port_ == port) {
      request_completion_locked(op, POC_CANCELLED);
      return POC_OK;
    }
  }
  for (pending_op* op = receives_.head; op != nullptr; op = op->next_) {
    if (op->id_ == id && op->port_ == port) {
      complete_recv_locked(op, POC_CANCELLED, poc::message{});
      return POC_OK;
    }
  }
  return POC_OK;
}

void channel_state::complete_pending(poc_status reason) noexcept {
  std::lock_guard lock(mutex_);
  complete_all_locked(reason);
}

// ---- completions (io_context threads) -------------------------------------------------------------

void channel_state::finish_send(pending_op* op, asio::error_code ec) noexcept {
  const std::shared_ptr<channel_state> self = std::move(op->channel_);  // outlives `delete op`
  poc_status status;
  {
    std::lock_guard lock(self->mutex_);
    self->sends_.erase(op);  // from now on nobody can emit op->signal_
    status = outcome(ec, op->reason_);
  }
  const poc_send_complete_fn done = op->send_done_;
  void* const user = op->user_;
  delete op;
  done(user, status);  // exactly once, on an io_context thread, with no lock held
}

void channel_state::finish_recv(pending_op* op, poc_status status, const poc::message& msg) noexcept {
  // Already out of receives_ (the poster took it out), so no lock is needed.
  const std::shared_ptr<channel_state> self = std::move(op->channel_);
  const poc_recv_complete_fn done = op->recv_done_;
  void* const user = op->user_;
  delete op;
  if (status == POC_OK) hand_over(done, user, msg);
  else done(user, status, nullptr);
}

// ================================================================================================
// The port table and the vtables
// ================================================================================================

namespace {

/// Every port this process exported. Deliberately leaked: a port may be released from any thread
/// at any time, including during static destruction at exit.
handle_table<channel_state>& port_table() noexcept {
  static auto* const table = new handle_table<channel_state>();
  return *table;
}

std::shared_ptr<channel_state> resolve_sender(std::uint64_t handle) noexcept {
  return port_table().resolve(handle, handle_kind::sender);
}
std::shared_ptr<channel_state> resolve_receiver(std::uint64_t handle) noexcept {
  return port_table().resolve(handle, handle_kind::receiver);
}

poc_status sender_try_send(std::uint64_t handle, const poc_message_view* msg) noexcept {
  return ffi_guard([&] {
    const auto ch = resolve_sender(handle);
    return ch ? ch->try_send(msg) : POC_INVALID;
  });
}

poc_status sender_send(std::uint64_t handle, const poc_message_view* msg,
                       poc_send_complete_fn on_complete, void* user, poc_op_id* op) noexcept {
  return ffi_guard([&] {
    const auto ch = resolve_sender(handle);
    return ch ? ch->send(handle, msg, on_complete, user, op) : POC_INVALID;
  });
}

poc_status sender_cancel(std::uint64_t handle, poc_op_id op) noexcept {
  return ffi_guard([&] {
    const auto ch = resolve_sender(handle);
    return ch ? ch->cancel(handle, op) : POC_INVALID;
  });
}

poc_status sender_close(std::uint64_t handle) noexcept {
  return ffi_guard([&] {
    const auto ch = resolve_sender(handle);
    return ch ? ch->close_senders() : POC_INVALID;
  });
}

const poc_sender_vtable& sender_vtable() noexcept;

poc_status sender_clone(std::uint64_t handle, poc_sender* out) noexcept {
  return ffi_guard([&] {
    const auto ch = resolve_sender(handle);
    if (!ch || out == nullptr) return POC_INVALID;
    if (const poc_status s = ch->add_sender(); s != POC_OK) return s;
    try {
      out->handle = port_table().insert(handle_kind::sender, ch);
    } catch (...) {
      ch->release_sender(0);  // undo add_sender(); no op carries port 0
      throw;
    }
    out->vtable = &sender_vtable();
    return POC_OK;
  });
}

poc_status sender_release(std::uint64_t handle) noexcept {
  return ffi_guard([&] {
    const auto ch = port_table().erase(handle, handle_kind::sender);
    if (!ch) return POC_INVALID;
    ch->release_sender(handle);
    return POC_OK;
  });
}

poc_status receiver_try_recv(std::uint64_t handle, poc_recv_complete_fn deliver, void* user) noexcept {
  return ffi_guard([&] {
    const auto ch = resolve_receiver(handle);
    return ch ? ch->try_recv(deliver, user) : POC_INVALID;
  });
}

poc_status receiver_recv(std::uint64_t handle, poc_recv_complete_fn deliver,
                         poc_recv_complete_fn on_complete, void* user, poc_op_id* op) noexcept {
  return ffi_guard([&] {
    const auto ch = resolve_receiver(handle);
    return ch ? ch->recv(handle, deliver, on_complete, user, op) : POC_INVALID;
  });
}

poc_status receiver_cancel(std::uint64_t handle, poc_op_id op) noexcept {
  return ffi_guard([&] {
    const auto ch = resolve_receiver(handle);
    return ch ? ch->cancel(handle, op) : POC_INVALID;
  });
}

poc_status receiver_close(std::uint64_t handle) noexcept {
  return ffi_guard([&] {
    const auto ch = resolve_receiver(handle);
    return ch ? ch->close_receiver() : POC_INVALID;
  });
}

poc_status receiver_release(std::uint64_t handle) noexcept {
  return ffi_guard([&] {
    const auto ch = port_table().erase(handle, handle_kind::receiver);
    if (!ch) return POC_INVALID;
    ch->release_receiver();
    return POC_OK;
  });
}

constexpr poc_sender_vtable sender_vtable_instance{
    .abi_version = POC_ABI_VERSION,
    .size = sizeof(poc_sender_vtable),
    .try_send = &sender_try_send,
    .send = &sender_send,
    .cancel = &sender_cancel,
    .close = &sender_close,
    .clone = &sender_clone,
    .release = &sender_release,
};

constexpr poc_receiver_vtable receiver_vtable_instance{
    .abi_version = POC_ABI_VERSION,
    .size = sizeof(poc_receiver_vtable),
    .try_recv = &receiver_try_recv,
    .recv = &receiver_recv,
    .cancel = &receiver_cancel,
    .close = &receiver_close,
    .release = &receiver_release,
};

const poc_sender_vtable& sender_vtable() noexcept { return sender_vtable_instance; }

}  // namespace
}  // namespace poc::detail

// ================================================================================================
// Channel creation: C++ API and C ABI
// ================================================================================================

namespace poc {

std::expected<channel_ports, errc> runtime::make_channel(std::size_t capacity,
                                                         std::size_t max_payload) {
  using namespace poc::detail;
  if (capacity == 0) return std::unexpected(errc::invalid);
  if (max_payload == 0) max_payload = POC_DEFAULT_MAX_PAYLOAD;

  auto channel = std::make_shared<channel_state>(core_, capacity, max_payload);
  if (!core_->register_channel(channel)) return std::unexpected(errc::shutdown);

  auto& table = port_table();
  const std::uint64_t tx = table.insert(handle_kind::sender, channel);
  std::uint64_t rx = 0;
  try {
    rx = table.insert(handle_kind::receiver, channel);
  } catch (...) {
    table.erase(tx, handle_kind::sender);
    throw;
  }
  return channel_ports{poc_sender{tx, &sender_vtable_instance},
                       poc_receiver{rx, &receiver_vtable_instance}};
}

}  // namespace poc

extern "C" {

poc_status poc_cpp_channel_new_ex(poc_cpp_runtime* rt, size_t capacity, size_t max_payload,
                                  poc_sender* tx, poc_receiver* rx) {
  return poc::detail::ffi_guard([&] {
    if (rt == nullptr || tx == nullptr || rx == nullptr) return POC_INVALID;
    auto ports = rt->rt.make_channel(capacity, max_payload);
    if (!ports) return static_cast<poc_status>(ports.error());
    *tx = ports->sender;
    *rx = ports->receiver;
    return POC_OK;
  });
}

poc_status poc_cpp_channel_new(poc_cpp_runtime* rt, size_t capacity, poc_sender* tx,
                               poc_receiver* rx) {
  return poc_cpp_channel_new_ex(rt, capacity, 0, tx, rx);
}

}  // extern "C"
