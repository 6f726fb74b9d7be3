// poc/detail/import_op.hpp — the state of one async_send / async_receive of poc/port.hpp.
//
// Handoff (docs/contract.md has the numbered protocol; this is the importer's half):
//   1. The initiating function allocates the op with the handler's associated allocator and takes
//      outstanding work on the handler's associated executor (held as an executor preferred with
//      `outstanding_work.tracked`, see hold_work below; a work guard only for legacy executors).
//   2. It calls the port's send/recv with the op as `user`, inside a no_inline_scope.
//   3. OK or an error: the callback will not run; the op is freed and the handler is posted.
//   4. PENDING: the op id is known. The initiator installs the cancellation slot handler (it keeps
//      {vtable, handle, op id} by value, never the op), links the op into the stop registry, then
//      sets `initiated`. The C callback (any thread, maybe already run, maybe running now) stores
//      the outcome and sets `completed`. Whoever of the two sets its bit second owns the op:
//      it unlinks it, moves the handler out, frees the op, then dispatches the handler (posts, if
//      it is the initiator or the callback arrived inside one of the adapter's own calls). A
//      callback on a thread that is not running the handler's io_context (or inside one of the
//      adapter's own calls) relays the op to that io_context first, allocation-free ("Relaying"
//      below); the op is freed and the handler dispatched there.
//   5. On the handler's executor, the cancellation slot is cleared, then the handler runs.
//
// Receives and the stash (contract rule 5 / Cancel step 4; "Cancel safety" in poc/port.hpp):
//   * A receive whose handler has a connected cancellation slot installs a receive_slot_handler,
//     not a cancel_slot_handler — also when recv returned OK at once (then with no port request),
//     because the message is only handed over when the handler runs, and a cancel may be emitted
//     until then. When emitted it first sets its `requested` flag (release), then asks the port to
//     cancel. The flag lives in the slot's memory, which stays valid until the slot is cleared
//     (step 5), so it outlives the op state, which is freed before the handler is submitted.
//   * Such an op keeps a shared reference to the receiver's receiver_state (the stash), so the
//     stash stays valid if the port_receiver is moved or destroyed while the op is in flight.
//   * The decision is taken in step 5, not in the C callback: receive_completion_binder, on the
//     handler's executor — where Asio requires emit to be serialised with the handler — reads
//     `requested` (acquire), then clears the slot. If a cancel was requested and the outcome is
//     success, the message goes to the stash and the handler gets operation_aborted and an empty
//     message. Whatever the order of "cancel emitted", "exporter completed" and "completion
//     queued", a handler whose cancel was requested before it ran never carries a message, and
//     the message is not lost. (Deciding in the callback would miss a cancel emitted while the
//     completion is queued — the window in which `||` and parallel_group discard a result.)
//   * The next async_receive / try_receive takes the oldest stashed message before calling the
//     port (an empty stash costs one atomic load); async_receive then completes as if by post,
//     watching its slot in the same way: a cancelled stash-served receive puts its message back
//     in its place (stash entries carry a sequence number).
//   * Closing, releasing or detaching the receiver closes the stash: it drops what it holds and
//     what in-flight receives would keep later (the handler still gets operation_aborted).
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <poc/bridge.h>
#include <poc/detail/stop_service.hpp>
#include <poc/error.hpp>
#include <poc/message.hpp>

#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/execution/execute.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/recycling_allocator.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

namespace poc::detail {

/// True when a port's (or a future's) vtable is one this importer can call: ABI version, size,
/// and no NULL function (a vtable with one is a bad vtable: bridge.h's INVALID, never a call
/// through NULL later, on a runtime thread).
template <typename Vtable>
bool vtable_usable(const Vtable* vt) noexcept {
  if (vt == nullptr || vt->abi_version != POC_ABI_VERSION || vt->size < sizeof(Vtable)) return false;
  if constexpr (std::is_same_v<Vtable, poc_sender_vtable>) {
    return vt->try_send != nullptr && vt->send != nullptr && vt->cancel != nullptr &&
           vt->close != nullptr && vt->clone != nullptr && vt->release != nullptr;
  } else if constexpr (std::is_same_v<Vtable, poc_receiver_vtable>) {
    return vt->try_recv != nullptr && vt->recv != nullptr && vt->cancel != nullptr &&
           vt->close != nullptr && vt->release != nullptr;
  } else {
    static_assert(std::is_same_v<Vtable, poc_future_vtable>, "a bridge.h vtable");
    return vt->poll != nullptr && vt->cancel != nullptr && vt->release != nullptr;
  }
}

/// Outstanding work on `ex` for a thread that is not one of the executor's own (an exporter's
/// thread completing an import, a waker), held as an executor with outstanding_work.tracked:
/// destroying it releases the executor's own state (a strand's implementation) *before* the work.
/// An executor_work_guard also keeps an untracked copy, which it destroys *after* the work: once
/// the work is gone the context may run dry, stop and be destroyed (poc_cpp_runtime_free) while
/// this thread is still destroying that copy — a strand, whose destructor locks the strand
/// service of the destroyed io_context (found by fuzz/). Executors without the property
/// (Networking TS style) keep an executor_work_guard. Submit through held_executor(work).
template <typename Executor>
auto hold_work(const Executor& ex) {
  if constexpr (asio::can_prefer<const Executor&,
                                 asio::execution::outstanding_work_t::tracked_t>::value) {
    return asio::prefer(ex, asio::execution::outstanding_work.tracked);
  } else {
    return asio::executor_work_guard<Executor>(ex);
  }
}

/// The executor to submit to, of what hold_work returned.
template <typename Executor>
const Executor& held_executor(const Executor& tracked) noexcept {
  return tracked;
}
template <typename Executor>
Executor held_executor(const asio::executor_work_guard<Executor>& guard) noexcept {
  return guard.get_executor();
}

// ---- Relaying a completion from a foreign thread without allocating -------------------------
//
// A completion that arrives on a thread which is not running the handler's io_context (an
// exporter's thread: a Rust worker, a .NET thread) must reach that io_context. asio::post from such
// a thread allocates: Asio's recycling allocator keeps its per-thread cache only on threads inside
// one of the io_context's run calls, so the scheduler op (and, for a type-erased executor such as
// any_io_executor, the executor_function it wraps) come from std::aligned_alloc, and are freed on
// the io thread, where they also evict the blocks that thread had cached.
//
// Instead, an op whose handler's executor belongs to an asio::io_context keeps a small arena inside
// itself (allocated on the initiating thread like the rest of the op, normally from that thread's
// recycling cache) and submits one *relay* function to the io_context's own executor —
// io_context::executor_type, which honours execution::allocator, so the scheduler op is built in
// the arena and nothing else is allocated. Asio frees a posted function's memory before invoking it
// (and before destroying it, when the io_context is destroyed with it still queued), so the arena
// is free again when the relay runs; the op itself is freed by the relay, after that. The relay runs
// on the io thread and there submits the completion to the handler's executor as if by
// asio::dispatch — inline for the io_context's own executor, queued for a strand — with that
// thread's recycling cache. The handler still never runs inside the exporter's callback.

/// The memory of the one relay an op has in flight (at most one at a time: see its users). Busy
/// from the allocation (any thread) to the deallocation (the io thread, before the relay runs);
/// the next allocation is ordered after that by the op's own handoff (atomics), so a plain flag.
/// A request that does not fit, or comes while busy, goes to the heap (counted in fallbacks()).
class relay_arena {
 public:
  static constexpr std::size_t capacity = 64;  // an executor_op of a pointer-sized relay: ~40 B

  relay_arena() noexcept = default;
  relay_arena(const relay_arena&) = delete;
  relay_arena& operator=(const relay_arena&) = delete;

  void* allocate(std::size_t n, std::size_t align) {
    if (!busy_ && n <= capacity && align <= alignof(std::max_align_t)) {
      busy_ = true;
      return buf_;
    }
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
    if (align > __STDCPP_DEFAULT_NEW_ALIGNMENT__) return ::operator new(n, std::align_val_t(align));
    return ::operator new(n);
  }

  void deallocate(void* p, [[maybe_unused]] std::size_t n, std::size_t align) noexcept {
    if (p == static_cast<void*>(buf_)) {
      busy_ = false;
      return;
    }
    // The unsized forms: sized deallocation is not on by default in every compiler that includes
    // this header (clang 14 needs -fsized-deallocation).
    if (align > __STDCPP_DEFAULT_NEW_ALIGNMENT__)
      ::operator delete(p, std::align_val_t(align));
    else
      ::operator delete(p);
  }

  /// Relay allocations that went to the heap, in the process (tests, diagnostics).
  static std::uint64_t fallbacks() noexcept { return fallbacks_.load(std::memory_order_relaxed); }

 private:
  alignas(std::max_align_t) unsigned char buf_[capacity];
  bool busy_ = false;
  static inline std::atomic<std::uint64_t> fallbacks_{0};
};

/// A standard allocator over a relay_arena (the associated allocator of a relay).
template <typename T>
class relay_allocator {
 public:
  using value_type = T;

  explicit relay_allocator(relay_arena* arena) noexcept : arena_(arena) {}
  template <typename U>
  relay_allocator(const relay_allocator<U>& other) noexcept : arena_(other.arena_) {}  // NOLINT

  T* allocate(std::size_t n) { return static_cast<T*>(arena_->allocate(n * sizeof(T), alignof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { arena_->deallocate(p, n * sizeof(T), alignof(T)); }

  friend bool operator==(const relay_allocator& a, const relay_allocator& b) noexcept {
    return a.arena_ == b.arena_;
  }

 private:
  template <typename U>
  friend class relay_allocator;
  relay_arena* arena_;
};

template <typename T>
struct is_io_context_executor : std::false_type {};
template <typename Allocator, std::uintptr_t Bits>
struct is_io_context_executor<asio::io_context::basic_executor_type<Allocator, Bits>>
    : std::true_type {};

template <typename AnyExecutor, std::uintptr_t... Bits>
asio::io_context* io_context_target(const AnyExecutor& ex,
                                    std::integer_sequence<std::uintptr_t, Bits...>) noexcept {
  asio::io_context* io = nullptr;
  (void)((io == nullptr &&
          [&] {
            using target = asio::io_context::basic_executor_type<std::allocator<void>, Bits>;
            if (const target* t = ex.template target<target>())
              io = &asio::query(*t, asio::execution::context);
            return io != nullptr;
          }()) || ...);
  return io;
}

/// The io_context whose threads run `ex`'s handlers, if `ex` is known to submit to one: an
/// io_context executor, a type-erased executor (any_io_executor) holding one, or a strand of
/// either. nullptr otherwise (no relay: completions are posted as before).
template <typename Executor>
asio::io_context* relay_context_of(const Executor& ex) noexcept {
  if constexpr (is_io_context_executor<Executor>::value) {
    return &asio::query(ex, asio::execution::context);
  } else if constexpr (requires { ex.template target<asio::io_context::executor_type>(); }) {
    // Every combination of the blocking.never (1), relationship.continuation (2) and
    // outstanding_work.tracked (4) bits.
    return io_context_target(ex, std::integer_sequence<std::uintptr_t, 0, 4, 1, 5, 2, 6, 3, 7>());
  } else if constexpr (requires { ex.get_inner_executor(); }) {
    return relay_context_of(ex.get_inner_executor());
  } else {
    return nullptr;
  }
}

/// Submits `fn` to `io` as if by asio::post, from any thread, building the scheduler op in `arena`.
/// Holds outstanding work on `io` until it returns: the relay may run at once on an io thread and
/// let the io_context run out of work, and its owner destroy it, while this thread is still inside
/// the submission (waking a thread after unlocking the queue).
template <typename Fn>
void relay_post(asio::io_context& io, relay_arena& arena, Fn&& fn) {
  const auto ex = asio::require(io.get_executor(), asio::execution::blocking.never,
                                asio::execution::outstanding_work.tracked,
                                asio::execution::allocator(relay_allocator<void>(&arena)));
  asio::execution::execute(ex, std::forward<Fn>(fn));
}

/// Poc traffic on this thread: an import completion delivered, a future driven. A runtime thread
/// that spins briefly before blocking (src/runtime.cpp, "Idle spin") installs a hook here, so that
/// it keeps spinning while such traffic goes on; elsewhere this is one thread-local load.
class thread_activity {
 public:
  using hook_fn = void (*)(void*) noexcept;

  static void note() noexcept {
    if (hook_ != nullptr) hook_(arg_);
  }
  static void install(hook_fn hook, void* arg) noexcept {
    hook_ = hook;
    arg_ = arg;
  }

 private:
  static inline thread_local hook_fn hook_ = nullptr;
  static inline thread_local void* arg_ = nullptr;
};

/// The stop_service (and relay io_context) of the port's own executor's context, looked up once
/// per port (asio::use_service takes a lock); ops whose handler runs elsewhere look theirs up.
struct stop_hint {
  asio::execution_context* context = nullptr;
  stop_service* service = nullptr;
  asio::io_context* relay = nullptr;

  stop_service* lookup(asio::execution_context* ctx) const {
    if (ctx == nullptr) return nullptr;
    if (ctx == context) return service;
    return &asio::use_service<stop_service>(*ctx);
  }

  template <typename Executor>
  asio::io_context* relay_for(const Executor& ex) const noexcept {
    if (relay != nullptr && context_of(ex) == context) return relay;
    return relay_context_of(ex);
  }

  template <typename Executor>
  static stop_hint for_executor(const Executor& ex) {
    stop_hint h;
    h.context = context_of(ex);
    if (h.context != nullptr) {
      h.service = &asio::use_service<stop_service>(*h.context);
      h.relay = relay_context_of(ex);
    }
    return h;
  }
};

/// A stop_request function: cancel op `op` of the port `handle` whose vtable is `vtable`.
/// A request, harmless for a finished op; completions it triggers inline are posted.
template <typename Vtable>
void cancel_port_op(const void* vtable, std::uint64_t handle, std::uint64_t op) noexcept {
  no_inline_scope scope;
  static_cast<const Vtable*>(vtable)->cancel(handle, op);
}

/// What an op installs in its handler's cancellation slot: only values, so an emit that races
/// with the completion (or comes after it, before the slot is cleared) touches no freed memory.
struct cancel_slot_handler {
  stop_request request_;
  void operator()(asio::cancellation_type_t type) const noexcept {
    if (type != asio::cancellation_type::none) request_();
  }
};

/// The function submitted to the handler's executor: clears the slot, then calls the handler.
template <typename Handler, typename... Args>
class completion_binder {
 public:
  using allocator_type = asio::associated_allocator_t<Handler>;

  completion_binder(Handler&& handler, bool clear_slot, Args... args)
      : handler_(std::move(handler)), clear_slot_(clear_slot), args_(std::move(args)...) {}

  allocator_type get_allocator() const noexcept {
    return asio::get_associated_allocator(handler_);
  }

  void operator()() {
    if (clear_slot_) asio::get_associated_cancellation_slot(handler_).clear();
    std::apply([this](Args&... args) { std::move(handler_)(std::move(args)...); }, args_);
  }

 private:
  Handler handler_;
  bool clear_slot_;
  std::tuple<Args...> args_;
};

/// One message kept by the stash, with its place in the order the stash gives messages out.
struct stashed_message {
  stashed_message() = default;
  stashed_message(std::uint64_t s, message&& m) noexcept : seq(s), msg(std::move(m)) {}
  std::uint64_t seq = 0;  // 0: not stashed yet
  message msg;
};

/// The stash of one imported receiver: messages that a receive completed with after its handler's
/// operation was cancelled, kept (oldest first) for the next receives. Shared by the
/// port_receiver and its in-flight receives, so either may go first. Thread-safe.
class receiver_state {
 public:
  /// True when the stash may hold a message: the fast path's only cost when it is empty. A receive
  /// that happens after a stash (e.g. in the handler that got operation_aborted) sees it.
  [[nodiscard]] bool maybe_nonempty() const noexcept {
    return size_.load(std::memory_order_acquire) != 0;
  }

  /// Moves the oldest kept message to `out`; false if there is none.
  bool take(stashed_message& out) noexcept {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) return false;
    out = std::move(queue_.front());
    queue_.pop_front();
    size_.store(queue_.size(), std::memory_order_release);
    return true;
  }

  /// Keeps `msg`. `seq` 0: a message just received from the port, the newest; otherwise the seq of
  /// a message that `take` gave out, put back in its place. After close(), drops it instead.
  /// Strong guarantee: if this throws (out of memory), `msg` is untouched.
  void keep(message& msg, std::uint64_t seq) {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    if (seq == 0) seq = next_seq_++;
    queue_.emplace_back(seq, std::move(msg));  // allocates before moving: strong guarantee
    if (queue_.size() > 1 && queue_[queue_.size() - 2].seq > seq) {
      const auto last = queue_.end() - 1;
      const auto pos = std::upper_bound(queue_.begin(), last, seq,
                                        [](std::uint64_t s, const stashed_message& m) {
                                          return s < m.seq;
                                        });
      std::rotate(pos, last, queue_.end());  // noexcept moves
    }
    size_.store(queue_.size(), std::memory_order_release);
  }

  /// Drops every kept message, and every later one (the receiver closed the channel or let go of
  /// its port: queued messages are dropped).
  void close() noexcept {
    std::lock_guard lock(mutex_);
    closed_ = true;
    queue_.clear();
    size_.store(0, std::memory_order_release);
  }

  /// Number of kept messages (tests, diagnostics).
  [[nodiscard]] std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;
  std::deque<stashed_message> queue_;  // ordered by seq
  std::uint64_t next_seq_ = 1;         // under mutex_
  bool closed_ = false;                // under mutex_
  std::atomic<std::size_t> size_{0};   // queue_.size(), written under mutex_
};

/// What a receive installs in its handler's cancellation slot: records that a cancel was
/// requested (read when the handler is about to run), then asks the port to cancel (`request_`
/// is empty when the op has already completed). Holds only values, like cancel_slot_handler.
struct receive_slot_handler {
  explicit receive_slot_handler(const stop_request& r) noexcept : request_(r) {}

  void operator()(asio::cancellation_type_t type) noexcept {
    if (type == asio::cancellation_type::none) return;
    requested_.store(true, std::memory_order_release);  // before cancel: it may complete the op
    request_();
  }

  [[nodiscard]] bool requested() const noexcept {
    return requested_.load(std::memory_order_acquire);
  }

  stop_request request_;
  std::atomic<bool> requested_{false};
};

/// Installs a receive_slot_handler in `handler`'s cancellation slot if it is connected; returns
/// it, or nullptr (no slot, or out of memory: the receive then cannot be cancelled from the slot
/// and delivers its outcome as it is).
template <typename Handler>
receive_slot_handler* install_receive_watch(Handler& handler,
                                            const stop_request& request) noexcept {
  asio::cancellation_slot slot = asio::get_associated_cancellation_slot(handler);
  if (!slot.is_connected()) return nullptr;
  try {
    return &slot.template emplace<receive_slot_handler>(request);
  } catch (...) {
    return nullptr;
  }
}

/// The function submitted to a receive handler's executor (step 5 with the stash): when the
/// handler's operation was cancelled, a message goes to the stash instead of to the handler.
template <typename Handler>
class receive_completion_binder {
 public:
  using allocator_type = asio::associated_allocator_t<Handler>;

  receive_completion_binder(Handler&& handler, receive_slot_handler* watch,
                            std::shared_ptr<receiver_state> stash, std::error_code ec, message msg,
                            std::uint64_t seq)
      : handler_(std::move(handler)),
        watch_(watch),
        stash_(std::move(stash)),
        ec_(ec),
        msg_(std::move(msg)),
        seq_(seq) {}

  allocator_type get_allocator() const noexcept {
    return asio::get_associated_allocator(handler_);
  }

  void operator()() {
    if (watch_ != nullptr) {
      const bool cancel_requested = watch_->requested();  // before clear() destroys it
      asio::get_associated_cancellation_slot(handler_).clear();
      watch_ = nullptr;
      if (cancel_requested && !ec_ && stash_ != nullptr) {
        try {
          stash_->keep(msg_, seq_);
          ec_ = asio::error::operation_aborted;
          msg_ = message();
        } catch (...) {
          // Out of memory: the handler gets the message after all (late rather than lost).
        }
      }
    }
    std::move(handler_)(ec_, std::move(msg_));
  }

  /// Puts a message taken from the stash back, if this binder still holds it (it could not be
  /// submitted). Best effort: out of memory here loses it.
  void give_back() noexcept {
    if (stash_ == nullptr || ec_) return;
    try {
      stash_->keep(msg_, seq_);
    } catch (...) {
    }
    stash_.reset();
  }

 private:
  Handler handler_;
  receive_slot_handler* watch_;
  std::shared_ptr<receiver_state> stash_;  // null when nothing could be stashed (no slot), or
                                           // moved from
  std::error_code ec_;
  message msg_;
  std::uint64_t seq_;  // the stash's seq of a message taken from it; 0 for one from the port
};

/// Rethrows, on the handler's executor, an exception that a handler dispatched inline from a C
/// callback threw: it leaves io_context::run() as it would have, never the exporter's frames.
struct rethrow_on_executor {
  std::exception_ptr e;
  void operator()() const { std::rethrow_exception(e); }
};

/// Submits `fn` to `ex` as if by asio::post (not blocking the caller, never inline).
template <typename Executor, typename Fn>
void post_completion(const Executor& ex, Fn&& fn) {
  asio::post(ex, std::forward<Fn>(fn));
}

/// Submits `fn` to `ex` as if by asio::dispatch, unless a no_inline_scope is active on this
/// thread. Called from C callbacks: never lets an exception unwind into the exporter.
template <typename Executor, typename Fn>
void dispatch_completion(const Executor& ex, Fn&& fn) noexcept {
  if (no_inline_scope::active()) {
    asio::post(ex, std::forward<Fn>(fn));
    return;
  }
  try {
    asio::dispatch(ex, std::forward<Fn>(fn));
  } catch (...) {
    asio::post(ex, rethrow_on_executor{std::current_exception()});
  }
}

inline constexpr std::uint32_t op_initiated = 1;
inline constexpr std::uint32_t op_completed = 2;

/// One async_send (Receive = false, completion void(error_code)) or async_receive (Receive = true,
/// completion void(error_code, message)). See the file comment for the handoff.
template <typename Handler, typename IoExecutor, bool Receive>
class import_op {
 public:
  using work_executor_type = asio::associated_executor_t<Handler, IoExecutor>;
  using allocator_type = asio::associated_allocator_t<Handler, asio::recycling_allocator<void>>;
  using vtable_type = std::conditional_t<Receive, poc_receiver_vtable, poc_sender_vtable>;

  /// Starts a send of `msg` on `port` (Receive = false).
  template <typename H>
  static void start_send(H&& handler, const IoExecutor& io_ex, const stop_hint& hint,
                         const poc_sender& port, const message& msg) {
    static_assert(!Receive);
    import_op* op = create(std::forward<H>(handler), io_ex, hint);
    const poc_message_view view = msg.view();
    poc_status s;
    {
      no_inline_scope scope;
      s = port.vtable->send(port.handle, &view, &import_op::on_send_complete, op, &op->op_id_);
    }
    op->started(s, port.vtable, port.handle);
  }

  /// Starts a receive on `port` (Receive = true); `stash` is the receiver's state.
  template <typename H>
  static void start_receive(H&& handler, const IoExecutor& io_ex, const stop_hint& hint,
                            const poc_receiver& port,
                            const std::shared_ptr<receiver_state>& stash) {
    static_assert(Receive);
    import_op* op = create(std::forward<H>(handler), io_ex, hint);
    // Only a handler that can be cancelled can need the stash.
    if (asio::get_associated_cancellation_slot(op->handler_).is_connected()) op->stash_ = stash;
    poc_status s;
    {
      no_inline_scope scope;
      s = port.vtable->recv(port.handle, &import_op::on_deliver, &import_op::on_recv_complete, op,
                            &op->op_id_);
    }
    op->started(s, port.vtable, port.handle);
  }

 private:
  struct empty {};

  template <typename H>
  import_op(H&& handler, const IoExecutor& io_ex, const stop_hint& hint)
      : handler_(std::forward<H>(handler)),
        work_(asio::get_associated_executor(handler_, io_ex)),
        service_(hint.lookup(context_of(work_.get_executor()))),
        relay_(hint.relay_for(work_.get_executor())) {}

  // The function relayed through the io_context (see "Relaying" above). Owns the op: run, it
  // delivers the completion; destroyed unrun (the io_context was destroyed with it queued), it
  // destroys the op and with it the handler, as Asio destroys a queued handler. Asio moves it out
  // of the arena and frees the arena before either, so the op outlives its arena's last use.
  class relay_fn {
   public:
    explicit relay_fn(import_op* op) noexcept : op_(op) {}
    relay_fn(relay_fn&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
    relay_fn& operator=(relay_fn&&) = delete;
    ~relay_fn() {
      if (op_ != nullptr) op_->destroy(op_->handler_);
    }
    void operator()() { std::exchange(op_, nullptr)->deliver(true); }

   private:
    import_op* op_;
  };

  template <typename H>
  static import_op* create(H&& handler, const IoExecutor& io_ex, const stop_hint& hint) {
    using op_alloc = typename std::allocator_traits<allocator_type>::template rebind_alloc<import_op>;
    op_alloc alloc(asio::get_associated_allocator(handler, asio::recycling_allocator<void>()));
    import_op* p = std::allocator_traits<op_alloc>::allocate(alloc, 1);
    try {
      return ::new (static_cast<void*>(p)) import_op(std::forward<H>(handler), io_ex, hint);
    } catch (...) {
      std::allocator_traits<op_alloc>::deallocate(alloc, p, 1);
      throw;
    }
  }

  // Step 3 or 4 of the handoff, on the initiating thread, after send/recv returned `s`.
  void started(poc_status s, const vtable_type* vt, std::uint64_t handle) {
    if (s != POC_PENDING) {
      if constexpr (Receive) {
        // OK means deliver already ran; an OK without a delivery breaks the contract.
        status_ = (s == POC_OK && !delivered_) ? POC_PANIC : (s == POC_OK ? status_ : s);
        // A message is handed over only when the handler runs: watch for a cancel until then.
        if (status_ == POC_OK) watch_ = install_receive_watch(handler_, stop_request{});
      } else {
        status_ = s;
      }
      finish(false);
      return;
    }
    const stop_request request{&cancel_port_op<vtable_type>, vt, handle, op_id_};
    // Out of memory for the slot handler: the op stays uncancellable from this slot (it still
    // completes, and the stop registry below still reaches it).
    if constexpr (Receive) {
      watch_ = install_receive_watch(handler_, request);
    } else {
      asio::cancellation_slot slot = asio::get_associated_cancellation_slot(handler_);
      if (slot.is_connected()) {
        try {
          slot.template emplace<cancel_slot_handler>(cancel_slot_handler{request});
          slot_installed_ = true;
        } catch (...) {
        }
      }
    }
    if (service_ != nullptr) {
      entry_.request_ = request;
      registered_ = true;
      if (service_->add(entry_)) request();  // shutdown already began: cancel at once
    }
    if (state_.fetch_or(op_initiated, std::memory_order_acq_rel) & op_completed) finish(false);
  }

  // Completion callbacks (C ABI). Called exactly once per PENDING, on any thread.
  static void on_send_complete(void* user, poc_status status) noexcept {
    auto* op = static_cast<import_op*>(user);
    op->status_ = status;
    op->completed();
  }

  static void on_deliver(void* user, poc_status status, const poc_message_view* msg) noexcept {
    auto* op = static_cast<import_op*>(user);
    op->delivered_ = true;
    op->store(status, msg);
  }

  static void on_recv_complete(void* user, poc_status status, const poc_message_view* msg) noexcept {
    auto* op = static_cast<import_op*>(user);
    op->store(status, msg);
    op->completed();
  }

  void store(poc_status status, const poc_message_view* msg) noexcept {
    if constexpr (Receive) {
      status_ = status;
      if (status == POC_OK) {
        if (msg == nullptr || (msg->data == nullptr && msg->len != 0)) {
          status_ = POC_PANIC;  // the exporter broke the contract: report, do not crash
          return;
        }
        try {
          msg_ = message::from_view(*msg);
        } catch (...) {
          status_ = POC_PANIC;  // could not copy the message (out of memory)
        }
      }
    }
  }

  void completed() noexcept {
    if (state_.fetch_or(op_completed, std::memory_order_acq_rel) & op_initiated) finish(true);
  }

  // Steps 4–5: unlink, move out, free, then submit the handler. A completion from a thread that
  // is not running the handler's io_context (or inside one of the adapter's own calls) is first
  // relayed to that io_context without allocating; the relay then delivers it from there.
  void finish(bool from_callback) {
    if (registered_) service_->remove(entry_);
    if (from_callback && relay_ != nullptr &&
        (no_inline_scope::active() || !relay_->get_executor().running_in_this_thread())) {
      relay_post(*relay_, arena_, relay_fn(this));
      return;
    }
    deliver(from_callback);
  }

  void deliver(bool from_callback) {
    thread_activity::note();
    // Until the completion is submitted (possibly from an exporter's thread): work held so that
    // no copy of the executor outlives it here (hold_work) — declared first, destroyed last. The
    // op's own guard goes with the op.
    const auto work = hold_work(work_.get_executor());
    Handler handler(std::move(handler_));
    const std::error_code ec = to_error_code(status_);
    [[maybe_unused]] const bool clear_slot = slot_installed_;
    [[maybe_unused]] message msg;
    [[maybe_unused]] std::shared_ptr<receiver_state> stash;
    [[maybe_unused]] receive_slot_handler* watch = nullptr;
    if constexpr (Receive) {
      msg = std::move(msg_);
      stash = std::move(stash_);
      watch = watch_;
    }
    destroy(handler);

    auto submit = [&](auto&& fn) {
      if (from_callback)
        dispatch_completion(held_executor(work), std::move(fn));
      else
        post_completion(held_executor(work), std::move(fn));
    };
    if constexpr (Receive)
      submit(receive_completion_binder<Handler>(std::move(handler), watch, std::move(stash), ec,
                                                std::move(msg), 0));
    else
      submit(completion_binder<Handler, std::error_code>(std::move(handler), clear_slot, ec));
  }

  void destroy(const Handler& handler) noexcept {
    using op_alloc = typename std::allocator_traits<allocator_type>::template rebind_alloc<import_op>;
    op_alloc alloc(asio::get_associated_allocator(handler, asio::recycling_allocator<void>()));
    this->~import_op();
    std::allocator_traits<op_alloc>::deallocate(alloc, this, 1);
  }

  Handler handler_;
  asio::executor_work_guard<work_executor_type> work_;
  stop_service* service_;
  asio::io_context* relay_;  // the handler's executor's io_context, if it is one
  relay_arena arena_;
  std::atomic<std::uint32_t> state_{0};
  poc_op_id op_id_ = 0;
  poc_status status_ = POC_OK;
  bool delivered_ = false;
  bool slot_installed_ = false;  // sends (a receive's slot handler is watch_)
  bool registered_ = false;
  [[no_unique_address]] std::conditional_t<Receive, message, empty> msg_;
  [[no_unique_address]] std::conditional_t<Receive, std::shared_ptr<receiver_state>, empty> stash_;
  [[no_unique_address]] std::conditional_t<Receive, receive_slot_handler*, empty> watch_{};
  stop_entry entry_;
};

/// Completes a receive with a message `taken` from `stash`, as if by asio::post (never inline),
/// watching the handler's cancellation slot like any receive: cancelled before the handler runs,
/// the message goes back to its place in the stash and the handler gets operation_aborted.
template <typename Handler, typename IoExecutor>
void complete_from_stash(Handler&& handler, const IoExecutor& io_ex,
                         const std::shared_ptr<receiver_state>& stash, stashed_message&& taken) {
  using handler_type = std::decay_t<Handler>;
  handler_type h(std::forward<Handler>(handler));
  auto ex = asio::get_associated_executor(h, io_ex);
  receive_slot_handler* watch = install_receive_watch(h, stop_request{});
  receive_completion_binder<handler_type> fn(std::move(h), watch, stash, std::error_code(),
                                             std::move(taken.msg), taken.seq);
  try {
    post_completion(ex, std::move(fn));
  } catch (...) {
    fn.give_back();  // if it was not moved into the failed submission
    throw;
  }
}

}  // namespace poc::detail
