// poc::runtime and poc_cpp_runtime_*: an io_context, its threads, and an orderly shutdown.
#include "runtime_core.hpp"

#include "c_runtime.hpp"
#include "channel_state.hpp"
#include "ffi_guard.hpp"

#include <poc/detail/stop_registry.hpp>
#include <poc/runtime.hpp>

#include <cstdio>
#include <exception>
#include <new>
#include <utility>

namespace poc::detail {

bool asio_uses_std_aligned_alloc() noexcept {
#if defined(ASIO_HAS_STD_ALIGNED_ALLOC)
  return true;
#else
  return false;
#endif
}

// ================================================================================================
// runtime_core
// ================================================================================================

void runtime_core::start(unsigned threads) {
  std::lock_guard serial(shutdown_mutex_);
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
  {
    std::lock_guard lock(threads_mutex_);
    --running_threads_;
  }
  threads_done_.notify_all();
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
