// poc::runtime and poc_cpp_runtime_*: an io_context, its threads, and an orderly shutdown.
#include "runtime_core.hpp"

#include "c_runtime.hpp"
#include "channel_state.hpp"
#include "ffi_guard.hpp"

#include <poc/detail/stop_registry.hpp>
#include <poc/runtime.hpp>

#include <asio/execution/allocator.hpp>
#include <asio/execution/blocking.hpp>
#include <asio/execution/execute.hpp>
#include <asio/execution/relationship.hpp>
#include <asio/require.hpp>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <thread>
#include <utility>

namespace poc::detail {

bool asio_uses_std_aligned_alloc() noexcept {
#if defined(ASIO_HAS_STD_ALIGNED_ALLOC)
  return true;
#else
  return false;
#endif
}

idle_spin_setting parse_idle_spin(const char* text) noexcept {
  if (text == nullptr) return {default_idle_spin, true};
  const char* b = text;
  const char* e = text + std::strlen(text);
  while (b != e && (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r')) ++b;
  while (e != b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) --e;
  unsigned long long us = 0;
  const auto [end, ec] = std::from_chars(b, e, us);
  if (b == e || ec == std::errc::result_out_of_range) {
    if (b != e && end == e) return {max_idle_spin, true};  // all digits, too large: clamped
    return {default_idle_spin, false};
  }
  if (ec != std::errc() || end != e) return {default_idle_spin, false};
  if (us > static_cast<unsigned long long>(max_idle_spin.count())) return {max_idle_spin, true};
  return {std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(us)), true};
}

std::chrono::microseconds idle_spin() noexcept {
  static const std::chrono::microseconds spin = [] {
    const char* text = std::getenv("POC_IDLE_SPIN_US");
    const idle_spin_setting s = parse_idle_spin(text);
    if (!s.valid)
      std::fprintf(stderr,
                   "poc: POC_IDLE_SPIN_US=\"%s\" is not a number of microseconds; using %lld\n",
                   text, static_cast<long long>(s.length.count()));
    return s.length;
  }();
  return spin;
}

// ================================================================================================
// runtime_core
// ================================================================================================

void runtime_core::start(unsigned threads) {
  std::lock_guard serial(shutdown_mutex_);
  spin_ = idle_spin();
  work_.emplace(ctx_.get_executor());
  threads_.reserve(threads);
  try {
    for (unsigned i = 0; i < threads; ++i) {
      {
        std::lock_guard lock(threads_mutex_);
        ++running_threads_;
      }
      try {
        threads_.emplace_back([self = shared_from_this()] { self->run_thread(); });
      } catch (...) {
        std::lock_guard lock(threads_mutex_);
        --running_threads_;
        throw;
      }
    }
  } catch (...) {
    // Let the threads that did start run out of work, then join them.
    work_.reset();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    joined_ = true;
    throw;
  }
}

void runtime_core::run_thread() noexcept {
  if (spin_ != std::chrono::steady_clock::duration::zero())
    thread_activity::install(&runtime_core::on_activity, this);
  // A handler that throws propagates out of run(); the io_context stays usable, so report it and
  // keep running (Asio's documented pattern). run() returns normally once no work is left.
  for (;;) {
    try {
      ctx_.run();
      break;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "poc: a handler threw out of io_context::run(): %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "poc: a handler threw out of io_context::run()\n");
    }
  }
  thread_activity::install(nullptr, nullptr);
  {
    std::lock_guard lock(threads_mutex_);
    --running_threads_;
  }
  threads_done_.notify_all();
}

// ---- Idle spin ---------------------------------------------------------------------------------
//
// Waking a thread that blocked in io_context::run() costs a futex wake and, on a virtual machine,
// often the wake-up of a halted virtual CPU (~40 µs measured on the benchmark VM): a cross-runtime
// round trip then costs two of them. So while Poc traffic goes on, one *spin step* stays queued:
// it runs, yields the CPU, and queues itself again behind whatever arrived meanwhile, until
// spin_ has passed without traffic. Handlers queued by any thread (a foreign thread's completion
// included) run between two steps, without anybody blocking; when the step stops, run() blocks
// as usual (nothing queued is missed: the step is an ordinary handler of the same queue).
//
// Traffic is reported on the runtime's own threads by thread_activity::note() (an import
// completion delivered, a future driven: poc/detail/import_op.hpp, future_op.hpp), which arms the
// step if it is not armed.
//
// Why not a loop of poll_one()/run_one() around the blocking call: each of Asio's run, run_one,
// poll and poll_one calls makes a thread_info with the thread's recycling cache and frees the
// cached blocks when it returns, so every handler run from such a loop would allocate for real
// what it now takes from the cache. The step runs inside the threads' single run() call. It is
// posted as a continuation (the thread's private queue: no lock, no wake of another thread) and
// built in spin_arena_ (the step's memory is freed before it runs, so one arena suffices for the
// one step in flight; it never takes or evicts the thread's cached blocks).
//
// Cost: one store and load per traffic report; while spinning, one queue round trip per step,
// plus a sched_yield when nothing else ran since the previous step (idle: the CPU goes to whoever
// wants it; busy: no yield, which would only delay the queued handlers), at most spin_ after the
// last traffic. With several threads, one of them spins (the others block as before).

void runtime_core::on_activity(void* self) noexcept { static_cast<runtime_core*>(self)->note_activity(); }

void runtime_core::note_activity() noexcept {
  activity_.store(true, std::memory_order_seq_cst);
  if (spin_armed_.load(std::memory_order_seq_cst)) return;  // the step will see activity_
  if (stopping() || spin_armed_.exchange(true, std::memory_order_seq_cst)) return;
  last_activity_ = std::chrono::steady_clock::now();
  if (!post_spin_step()) spin_armed_.store(false, std::memory_order_seq_cst);
}

void runtime_core::spin_step() noexcept {
  const auto now = std::chrono::steady_clock::now();
  if (activity_.exchange(false, std::memory_order_seq_cst)) last_activity_ = now;
  if (stopping() || now - last_activity_ >= spin_) {
    spin_armed_.store(false, std::memory_order_seq_cst);
    // Traffic reported after the exchange above saw the step armed and left it to the step: take
    // it up again, unless that report (or a later one) has armed a new step already.
    if (stopping() || !activity_.load(std::memory_order_seq_cst) ||
        spin_armed_.exchange(true, std::memory_order_seq_cst))
      return;
    last_activity_ = now;
  } else if (now - step_end_ < idle_gap) {
    // Nothing else ran since the previous step: idle, give the CPU to whoever wants it. (When
    // other handlers ran in between, the thread is busy: no yield, which would only delay them.)
    std::this_thread::yield();
  }
  step_end_ = std::chrono::steady_clock::now();
  if (!post_spin_step()) spin_armed_.store(false, std::memory_order_seq_cst);
}

bool runtime_core::post_spin_step() noexcept {
  try {
    const auto ex = asio::require(ctx_.get_executor(), asio::execution::blocking.never,
                                  asio::execution::relationship.continuation,
                                  asio::execution::allocator(relay_allocator<void>(&spin_arena_)));
    asio::execution::execute(ex, spin_fn{this});
    return true;
  } catch (...) {
    return false;  // out of memory: no spin until the next traffic
  }
}

bool runtime_core::register_channel(const std::shared_ptr<channel_state>& channel) {
  std::lock_guard lock(channels_mutex_);
  if (stopping_.load(std::memory_order_relaxed)) return false;
  if (channels_.size() >= prune_at_) {
    std::erase_if(channels_, [](const std::weak_ptr<channel_state>& w) { return w.expired(); });
    prune_at_ = channels_.size() * 2 + 64;  // amortised O(1) per registration
  }
  channels_.push_back(channel);
  return true;
}

void runtime_core::begin_stop() noexcept {
  // (1) Mark stopping. Under channels_mutex_, so that a channel is either in the snapshot below
  //     or refused by register_channel().
  std::vector<std::weak_ptr<channel_state>> channels;
  {
    std::lock_guard lock(channels_mutex_);
    if (stopping_.load(std::memory_order_relaxed)) return;
    stopping_.store(true, std::memory_order_release);
    channels.swap(channels_);
  }
  // (2) Complete pending ops with SHUTDOWN. A port call that raced with (1) either saw
  //     stopping() under the channel's mutex and answered SHUTDOWN, or linked its op before
  //     complete_pending() took that mutex and is completed here.
  for (const std::weak_ptr<channel_state>& weak : channels)
    if (const std::shared_ptr<channel_state> channel = weak.lock()) channel->complete_pending(POC_SHUTDOWN);
  // (3) Agents and in-flight imports on this io_context.
  request_stop_all(ctx_);
}

std::error_code runtime_core::shutdown() noexcept {
  if (running_in_this_thread()) return make_error_code(errc::invalid);  // cannot join itself
  std::lock_guard serial(shutdown_mutex_);
  if (joined_) return {};

  begin_stop();

  // (4) Without the guard, run() returns on every thread once the completions posted by (2)
  //     and whatever (3) set in motion have run.
  work_.reset();
  const std::chrono::milliseconds timeout(shutdown_timeout_ms_.load(std::memory_order_relaxed));
  bool finished;
  {
    std::unique_lock lock(threads_mutex_);
    finished = threads_done_.wait_for(lock, timeout, [this] { return running_threads_ == 0; });
  }
  if (!finished) {
    std::fprintf(stderr,
                 "poc: runtime shutdown: work still pending after %lld ms (an agent, import or "
                 "handler did not complete); stopping the io_context\n",
                 static_cast<long long>(timeout.count()));
    ctx_.stop();
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  joined_ = true;
  return {};
}

void runtime_core::shutdown_detached() noexcept {
  begin_stop();
  // A shutdown() running concurrently on another thread would be waiting for this very thread;
  // let it do the joining rather than wait for it here.
  std::unique_lock serial(shutdown_mutex_, std::try_to_lock);
  if (!serial.owns_lock() || joined_) return;
  work_.reset();
  for (std::thread& t : threads_) t.detach();  // each thread keeps this object alive
  threads_.clear();
  joined_ = true;
}

}  // namespace poc::detail

// ================================================================================================
// poc::runtime
// ================================================================================================

namespace poc {

runtime::runtime(unsigned threads) {
  if (threads < 1 || threads > 64) throw std::system_error(make_error_code(errc::invalid));
  core_ = std::make_shared<detail::runtime_core>();
  core_->start(threads);
}

runtime::~runtime() {
  if (core_->running_in_this_thread()) {
    // Destroyed from one of its own handlers: a thread cannot join itself.
    std::fprintf(stderr, "poc: runtime destroyed on one of its own threads; not joining them\n");
    core_->shutdown_detached();
  } else {
    core_->shutdown();
  }
}

runtime::executor_type runtime::get_executor() noexcept { return core_->context().get_executor(); }

asio::io_context& runtime::context() noexcept { return core_->context(); }

bool runtime::stopping() const noexcept { return core_->stopping(); }

std::error_code runtime::shutdown() noexcept { return core_->shutdown(); }

void runtime::set_shutdown_timeout(std::chrono::milliseconds timeout) noexcept {
  core_->set_shutdown_timeout(timeout);
}

}  // namespace poc

// ================================================================================================
// C ABI
// ================================================================================================

extern "C" {

poc_status poc_cpp_runtime_new(uint32_t threads, poc_cpp_runtime** out) {
  return poc::detail::ffi_guard([&] {
    if (out == nullptr || threads < 1 || threads > 64) return POC_INVALID;
    *out = new poc_cpp_runtime(threads);
    return POC_OK;
  });
}

poc_status poc_cpp_runtime_shutdown(poc_cpp_runtime* rt) {
  return poc::detail::ffi_guard([&] {
    if (rt == nullptr) return POC_INVALID;
    return rt->rt.shutdown() ? POC_INVALID : POC_OK;
  });
}

void poc_cpp_runtime_free(poc_cpp_runtime* rt) {
  try {
    delete rt;  // ~runtime shuts down; ports still held keep the io_context alive
  } catch (...) {
    // ~runtime is noexcept; nothing can arrive here. Kept so that the boundary is visibly sealed.
  }
}

}  // extern "C"
