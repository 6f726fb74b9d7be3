// poc/detail/future_op.hpp — the state of one poc::async_await (poc/future.hpp).
//
// Handoff (the importer's half of "Futures" in docs/contract.md):
//   1. The initiating function takes the future (a future_owner releases it if anything fails
//      before an op owns it), allocates the op with the handler's associated allocator, holds an
//      executor_work_guard on the handler's associated executor, takes a future_cell (below)
//      from the cell pool, links the cell into the context's future_service (the stop
//      registry's reach), installs the cancellation slot handler, and posts the first *drive* to
//      that executor.
//   2. A drive runs on the handler's executor: it sends a requested cancel to the exporter, then
//      polls with {on_wake, on_deliver, cell}. OK/ERROR/PANIC/CANCELLED/SHUTDOWN/INVALID: finish.
//      PENDING: if a wake or a cancel arrived meanwhile (even during poll), post another drive;
//      otherwise stop driving until the next one.
//   3. The wake (any thread, exactly once per PENDING) never polls: it marks the cell "notified"
//      and, if no drive is scheduled or running, posts one (cxx-async deadlocked resuming inline
//      on the waker's thread, ARCHITECTURE.md §6). A wake during poll is remembered, not lost.
//      The post holds outstanding work on the executor until it has returned, so that the
//      io_context cannot run out of work and be destroyed while the waker is still inside it.
//   4. A cancel request (the handler's slot, or request_stop_all) marks the cell "cancel" and
//      posts a drive the same way; that drive calls the future's cancel, then polls (→ CANCELLED,
//      or the real outcome if it won the race).
//   5. finish (in a drive): release the future (exactly once), unlink from the service, mark the
//      cell detached, move the handler out, free the op, clear the slot, invoke the handler.
//
// A drive is posted through the relay of import_op.hpp ("Relaying") when the handler's executor
// belongs to an io_context: from a waker's thread that costs no allocation (the relay's memory is
// an arena in the op; one drive at a time, so one arena).
//
// At most one drive is scheduled or running at a time (the `scheduled` bit), so polls never
// overlap and finish runs once. The cell is a separate small block (recycled through a
// process-wide pool, so a call allocates none in steady state), reference counted by
// the op, each outstanding wake, the slot handler and a stop snapshot in progress: the exporter may
// call a wake after the handler ran (a cancelled future's pending wake still runs exactly once),
// and memory from the handler's allocator must be freed before the handler runs.
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <poc/bridge.h>
#include <poc/detail/import_op.hpp>
#include <poc/detail/stop_service.hpp>
#include <poc/error.hpp>
#include <poc/message.hpp>

#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/execution_context.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/recycling_allocator.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

namespace poc::detail {

/// Owns a poc_future until an op takes it; releases it otherwise (e.g. a deferred operation that
/// is destroyed without being launched). A future whose vtable is unusable is never called.
class future_owner {
 public:
  explicit future_owner(poc_future f) noexcept : f_(f) {}
  future_owner(future_owner&& o) noexcept : f_(std::exchange(o.f_, poc_future{})) {}
  future_owner& operator=(future_owner&&) = delete;
  ~future_owner() {
    if (vtable_usable(f_.vtable)) {
      no_inline_scope scope;
      f_.vtable->release(f_.handle);
    }
  }
  [[nodiscard]] const poc_future& get() const noexcept { return f_; }
  poc_future take() noexcept { return std::exchange(f_, poc_future{}); }

 private:
  poc_future f_;
};

inline constexpr std::uint32_t fut_scheduled = 1;  // a drive is posted or running
inline constexpr std::uint32_t fut_notified = 2;   // a wake arrived since the last poll began
inline constexpr std::uint32_t fut_cancel = 4;     // a cancel was requested
inline constexpr std::uint32_t fut_detached = 8;   // the op finished; only refs remain

/// The op as the cell sees it.
class future_op_base {
 public:
  /// Posts a drive to the handler's executor. Called by whoever set `fut_scheduled`.
  virtual void schedule() noexcept = 0;
  /// The deliver callback's target (synchronous, during a poll).
  void store(poc_status status, const poc_message_view* msg) noexcept {
    delivered_ = true;
    if (msg == nullptr) return;
    if (msg->data == nullptr && msg->len != 0) {
      broken_ = true;  // the exporter broke the contract: report, do not crash
      return;
    }
    try {
      msg_ = message::from_view(*msg);
    } catch (...) {
      broken_ = true;  // out of memory copying the value
    }
    (void)status;
  }

 protected:
  ~future_op_base() = default;
  message msg_;
  bool delivered_ = false;
  bool broken_ = false;
};

/// The `user` of poll/wake/deliver; outlives the op while a wake is outstanding. Cells are
/// recycled through a small process-wide pool (make / the last release_ref), so that a call does
/// not allocate one in steady state; a cell is reset when it is taken from the pool.
class future_cell {
 public:
  explicit future_cell(future_op_base* op) noexcept : op_(op) {
    if (op_ != nullptr) live_.fetch_add(1, std::memory_order_relaxed);  // not the sentinels
  }
  future_cell(const future_cell&) = delete;
  future_cell& operator=(const future_cell&) = delete;

  /// A cell for `op` with one reference (the op's): from the pool, or new.
  static future_cell* make(future_op_base* op) {
    pool& p = the_pool();
    {
      std::lock_guard lock(p.mutex);
      if (future_cell* c = p.free) {
        p.free = c->next_;
        --p.size;
        c->next_ = nullptr;
        c->op_ = op;
        c->refs_.store(1, std::memory_order_relaxed);
        c->state_.store(fut_scheduled, std::memory_order_relaxed);
        live_.fetch_add(1, std::memory_order_relaxed);
        return c;
      }
    }
    return new future_cell(op);
  }

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release_ref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) recycle(this);
  }

  /// Any thread: sets `bits` and, unless a drive is scheduled or the op finished, schedules one.
  void notify(std::uint32_t bits) noexcept {
    std::uint32_t st = state_.load(std::memory_order_acquire);
    for (;;) {
      if (st & fut_detached) return;
      if (state_.compare_exchange_weak(st, st | bits | fut_scheduled, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
        // No drive runs and the op is not detached: it is alive until the drive we post runs.
        if (!(st & fut_scheduled)) op_->schedule();
        return;
      }
    }
  }

  static void on_wake(void* user) noexcept {
    auto* cell = static_cast<future_cell*>(user);
    cell->notify(fut_notified);
    cell->release_ref();  // the reference the drive took for this wake
  }

  static void on_deliver(void* user, poc_status status, const poc_message_view* msg) noexcept {
    static_cast<future_cell*>(user)->op_->store(status, msg);
  }

  /// Cells in use in the process, pooled ones excepted (tests: every cell is given back once its
  /// wakes have run).
  static long live() noexcept { return live_.load(std::memory_order_acquire); }

  /// Cells kept by the pool right now (tests, diagnostics).
  static std::size_t pooled() noexcept {
    pool& p = the_pool();
    std::lock_guard lock(p.mutex);
    return p.size;
  }

  std::atomic<std::uint32_t> state_{fut_scheduled};  // the first drive is posted by start()

 private:
  friend class future_service;
  ~future_cell() = default;

  struct pool {
    std::mutex mutex;
    future_cell* free = nullptr;  // linked through next_
    std::size_t size = 0;
  };
  static constexpr std::size_t pool_capacity = 256;

  // Never destroyed: a wake may give a cell back during static destruction.
  static pool& the_pool() {
    static pool* const p = new pool();
    return *p;
  }

  // Only for cells from make() (the pool exists by then); the sentinels are never released.
  static void recycle(future_cell* c) noexcept {
    live_.fetch_sub(1, std::memory_order_release);
    pool& p = the_pool();
    {
      std::lock_guard lock(p.mutex);
      if (p.size < pool_capacity) {
        c->op_ = nullptr;
        c->prev_ = nullptr;
        c->next_ = p.free;
        p.free = c;
        ++p.size;
        return;
      }
    }
    delete c;
  }

  std::atomic<std::uint32_t> refs_{1};  // the op's
  future_op_base* op_;
  future_cell* prev_ = nullptr;  // future_service list, under its mutex; the pool's, in the pool
  future_cell* next_ = nullptr;
  static inline std::atomic<long> live_{0};
};

/// The futures awaited on one execution context, reachable by request_stop_all. It registers one
/// entry with the context's stop_service (its own lifetime is the context's, so the request never
/// names freed memory) and, when asked to stop, takes a reference on each linked cell under its
/// mutex, then requests cancellation outside it.
class future_service final : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;

  explicit future_service(asio::execution_context& ctx)
      : asio::execution_context::service(ctx), stops_(asio::use_service<stop_service>(ctx)) {
    head_.prev_ = head_.next_ = &head_;
    entry_.request_ = stop_request{&future_service::stop_all, this, 0, 0};
    (void)stops_.add(entry_);  // if stopping already, add() below reports it for each cell
  }
  ~future_service() override { stops_.remove(entry_); }

  /// Links `c`; true when the context is stopping already (the caller then cancels at once).
  [[nodiscard]] bool add(future_cell& c) noexcept {
    std::lock_guard lock(mutex_);
    c.next_ = &head_;
    c.prev_ = head_.prev_;
    head_.prev_->next_ = &c;
    head_.prev_ = &c;
    return stops_.stop_requested();
  }

  void remove(future_cell& c) noexcept {
    std::lock_guard lock(mutex_);
    c.prev_->next_ = c.next_;
    c.next_->prev_ = c.prev_;
    c.prev_ = c.next_ = nullptr;
  }

 private:
  void shutdown() override {}

  static void stop_all(const void* target, std::uint64_t, std::uint64_t) noexcept {
    auto* self = const_cast<future_service*>(static_cast<const future_service*>(target));
    std::vector<future_cell*> cells;
    try {
      std::lock_guard lock(self->mutex_);
      for (future_cell* c = self->head_.next_; c != &self->head_; c = c->next_) {
        c->add_ref();
        cells.push_back(c);
      }
    } catch (...) {
      // Out of memory: cancel what was collected.
    }
    for (future_cell* c : cells) {
      c->notify(fut_cancel);
      c->release_ref();
    }
  }

  stop_service& stops_;
  stop_entry entry_;
  std::mutex mutex_;
  future_cell head_{nullptr};  // sentinel; never released
};

/// What an await installs in its handler's cancellation slot: holds a reference to the cell, so
/// an emit that comes after the op finished (before the slot is cleared) is harmless.
class future_slot_handler {
 public:
  explicit future_slot_handler(future_cell* cell) noexcept : cell_(cell) { cell_->add_ref(); }
  future_slot_handler(const future_slot_handler&) = delete;
  future_slot_handler& operator=(const future_slot_handler&) = delete;
  ~future_slot_handler() { cell_->release_ref(); }

  void operator()(asio::cancellation_type_t type) noexcept {
    if (type != asio::cancellation_type::none) cell_->notify(fut_cancel);
  }

 private:
  future_cell* cell_;
};

/// One poc::async_await. See the file comment.
template <typename Handler, typename IoExecutor>
class future_op final : public future_op_base {
 public:
  using work_executor_type = asio::associated_executor_t<Handler, IoExecutor>;
  using allocator_type = asio::associated_allocator_t<Handler, asio::recycling_allocator<void>>;

  template <typename H>
  static void start(H&& handler, const IoExecutor& io_ex, future_owner&& owner) {
    future_op* op = create(std::forward<H>(handler), io_ex);
    future_cell* cell;
    try {
      cell = future_cell::make(op);
    } catch (...) {
      op->destroy(op->handler_);  // the handler is dropped: the exception reports the failure
      throw;
    }
    op->cell_ = cell;
    op->future_ = owner.take();  // from here on the op releases it
    op->relay_ = relay_context_of(op->work_.get_executor());

    if (asio::execution_context* ctx = context_of(op->work_.get_executor())) {
      try {
        op->service_ = &asio::use_service<future_service>(*ctx);
      } catch (...) {
        op->service_ = nullptr;  // out of memory: not reachable by request_stop_all
      }
      if (op->service_ != nullptr && op->service_->add(*cell))
        cell->state_.fetch_or(fut_cancel, std::memory_order_acq_rel);  // shutdown began
    }
    asio::cancellation_slot slot = asio::get_associated_cancellation_slot(op->handler_);
    if (slot.is_connected()) {
      try {
        slot.template emplace<future_slot_handler>(cell);
        op->slot_installed_ = true;
      } catch (...) {
        // Out of memory: not cancellable from the slot (it still completes).
      }
    }
    op->schedule();  // the first poll, on the handler's executor (never inline here)
  }

  void schedule() noexcept override {
    // Handler's executor on an io_context: relayed through it without allocating (import_op.hpp,
    // "Relaying"), then dispatched to the handler's executor from its io thread. At most one drive
    // is scheduled or running, so the arena is free again: the previous relay's memory was freed
    // before that relay ran, and this schedule() is ordered after it by the cell's state.
    if (relay_ != nullptr) {
      relay_post(*relay_, arena_, relay_fn{this});
      return;
    }
    // Our own outstanding work on a copy of the executor, held until post() has returned: the
    // posted drive may run at once on another thread, finish the op (freeing it and its work
    // guard) and complete the handler, after which the owner may let run() return and destroy
    // the io_context — while a wake on the exporter's thread is still inside this post()
    // (scripts/sanitize tsan found it: ~io_context racing pthread_cond_signal in post). Held as
    // a tracked executor, so that no copy of a strand outlives the work here (hold_work).
    const auto keep = hold_work(work_.get_executor());
    asio::post(held_executor(keep), drive_fn{this});
  }

 private:
  struct drive_fn {
    future_op* op;
    void operator()() const { op->drive(); }
  };

  // On an io thread of the handler's executor's io_context. Destroyed unrun (the io_context was
  // destroyed with it queued), it leaves the op as an unrun drive_fn does.
  struct relay_fn {
    future_op* op;
    void operator()() const { asio::dispatch(op->work_.get_executor(), drive_fn{op}); }
  };

  template <typename H>
  future_op(H&& handler, const IoExecutor& io_ex)
      : handler_(std::forward<H>(handler)), work_(asio::get_associated_executor(handler_, io_ex)) {}

  template <typename H>
  static future_op* create(H&& handler, const IoExecutor& io_ex) {
    using op_alloc = typename std::allocator_traits<allocator_type>::template rebind_alloc<future_op>;
    op_alloc alloc(asio::get_associated_allocator(handler, asio::recycling_allocator<void>()));
    future_op* p = std::allocator_traits<op_alloc>::allocate(alloc, 1);
    try {
      return ::new (static_cast<void*>(p)) future_op(std::forward<H>(handler), io_ex);
    } catch (...) {
      std::allocator_traits<op_alloc>::deallocate(alloc, p, 1);
      throw;
    }
  }

  void destroy(const Handler& handler) noexcept {
    using op_alloc = typename std::allocator_traits<allocator_type>::template rebind_alloc<future_op>;
    op_alloc alloc(asio::get_associated_allocator(handler, asio::recycling_allocator<void>()));
    this->~future_op();
    std::allocator_traits<op_alloc>::deallocate(alloc, this, 1);
  }

  // Step 2, on the handler's executor, with `fut_scheduled` held.
  void drive() {
    thread_activity::note();
    const std::uint32_t st = cell_->state_.fetch_and(~fut_notified, std::memory_order_acq_rel);
    if ((st & fut_cancel) && !cancel_sent_) {
      cancel_sent_ = true;
      no_inline_scope scope;
      future_.vtable->cancel(future_.handle);
    }
    cell_->add_ref();  // owned by the wake if poll returns PENDING
    poc_status s;
    {
      no_inline_scope scope;
      s = future_.vtable->poll(future_.handle, &future_cell::on_wake, &future_cell::on_deliver,
                               cell_);
    }
    if (s != POC_PENDING) {
      cell_->release_ref();  // no wake will come for this poll (the op still holds one)
      finish(s);
      return;
    }
    std::uint32_t cur = cell_->state_.load(std::memory_order_acquire);
    for (;;) {
      if ((cur & fut_notified) || ((cur & fut_cancel) && !cancel_sent_)) {
        schedule();  // woken (or cancelled) meanwhile: poll again, as a new drive
        return;
      }
      if (cell_->state_.compare_exchange_weak(cur, cur & ~fut_scheduled,
                                              std::memory_order_acq_rel,
                                              std::memory_order_acquire))
        return;  // the next wake or cancel schedules the next drive
    }
  }

  // Step 5.
  void finish(poc_status s) {
    const bool has_value = s == POC_OK || s == POC_ERROR || s == POC_PANIC;
    if (s == POC_OK && (!delivered_ || broken_)) s = POC_PANIC;  // contract broken / no memory
    if (s != POC_OK && has_value && broken_) s = POC_PANIC;
    const std::error_code ec = to_error_code(s);
    message msg = has_value ? std::move(msg_) : message();
    {
      no_inline_scope scope;
      future_.vtable->release(future_.handle);  // a pending wake may run now, inline: harmless
    }
    if (service_ != nullptr) service_->remove(*cell_);
    future_cell* cell = cell_;
    cell->state_.fetch_or(fut_detached, std::memory_order_acq_rel);
    Handler handler(std::move(handler_));
    asio::executor_work_guard<work_executor_type> work(std::move(work_));
    const bool clear_slot = slot_installed_;
    destroy(handler);
    cell->release_ref();
    if (clear_slot) asio::get_associated_cancellation_slot(handler).clear();
    std::move(handler)(ec, std::move(msg));  // we run on its executor: invoke directly
  }

  Handler handler_;
  asio::executor_work_guard<work_executor_type> work_;
  future_cell* cell_ = nullptr;
  future_service* service_ = nullptr;
  asio::io_context* relay_ = nullptr;  // the handler's executor's io_context, if it is one
  relay_arena arena_;
  poc_future future_{};
  bool cancel_sent_ = false;
  bool slot_installed_ = false;
};

}  // namespace poc::detail
