// Steady-state costs of the C++ import path and of the runtime's idle spin (a test executable of
// its own: it replaces the global allocation functions to count them).
//
// * A pending send / receive completed from a foreign thread, and an awaited future woken from a
//   foreign thread, allocate nothing once warmed up (poc/detail/import_op.hpp, "Relaying";
//   future_op.hpp's cell pool) — counted with replaced operator new and aligned_alloc (Asio's
//   recycling allocator falls back to std::aligned_alloc, bypassing operator new). The ports and
//   the future here are allocation-free fakes, completed by one long-lived foreign thread.
// * POC_IDLE_SPIN_US parsing (src/runtime.cpp).
#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <poc/bridge.h>
#include <poc/future.hpp>
#include <poc/message.hpp>
#include <poc/port.hpp>
#include <poc/runtime.hpp>

#include "runtime_core.hpp"  // src/: parse_idle_spin

#include <asio/bind_executor.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>

#include <gtest/gtest.h>

#include <malloc.h>  // memalign

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <new>
#include <system_error>
#include <thread>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define POC_TEST_COUNTS_ALLOCATIONS 0  // the sanitizers own the allocation functions
#else
#define POC_TEST_COUNTS_ALLOCATIONS 1
#endif

// ---- counting allocation functions (counting only while `on`) -----------------------------------

namespace counting {
std::atomic<bool> on{false};
std::atomic<std::uint64_t> allocs{0};
std::atomic<std::uint64_t> aligned_allocs{0};

inline void note() noexcept {
  if (on.load(std::memory_order_relaxed)) allocs.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace counting

#if POC_TEST_COUNTS_ALLOCATIONS
namespace {
void* plain_new(std::size_t n, bool nothrow) {
  counting::note();
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  if (nothrow) return nullptr;
  throw std::bad_alloc();
}
void* aligned_new(std::size_t n, std::align_val_t al, bool nothrow) {
  counting::note();
  const auto a = static_cast<std::size_t>(al);
  if (void* p = ::memalign(a, n == 0 ? a : n)) return p;
  if (nothrow) return nullptr;
  throw std::bad_alloc();
}
}  // namespace

extern "C" void* aligned_alloc(std::size_t a, std::size_t n) noexcept {
  if (counting::on.load(std::memory_order_relaxed))
    counting::aligned_allocs.fetch_add(1, std::memory_order_relaxed);
  counting::note();
  return ::memalign(a, n);
}

void* operator new(std::size_t n) { return plain_new(n, false); }
void* operator new[](std::size_t n) { return plain_new(n, false); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return plain_new(n, true); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return plain_new(n, true); }
void* operator new(std::size_t n, std::align_val_t a) { return aligned_new(n, a, false); }
void* operator new[](std::size_t n, std::align_val_t a) { return aligned_new(n, a, false); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return aligned_new(n, a, true);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return aligned_new(n, a, true);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
#endif

namespace {

using namespace std::chrono_literals;

// ---- an allocation-free exporter completed by one foreign thread -------------------------------

/// One job at a time: the op that a fake port or future answered PENDING for. The foreign thread
/// takes it, clears the slot, then runs the completion (so that the next op, which the completion
/// may start on the io thread at once, finds the slot free).
class foreign_thread {
 public:
  enum kind : int { none = 0, send = 1, recv = 2, wake = 3, quit = 4 };

  foreign_thread() : thread_([this] { loop(); }) {}
  ~foreign_thread() {
    post(quit, nullptr, nullptr, nullptr, nullptr);
    thread_.join();
  }

  void post(kind k, poc_send_complete_fn s, poc_recv_complete_fn r, poc_wake_fn w, void* user) {
    send_cb_ = s;
    recv_cb_ = r;
    wake_ = w;
    user_ = user;
    job_.store(k, std::memory_order_release);
    job_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      int k;
      while ((k = job_.load(std::memory_order_acquire)) == none) job_.wait(none);
      const auto s = send_cb_;
      const auto r = recv_cb_;
      const auto w = wake_;
      void* const user = user_;
      job_.store(none, std::memory_order_release);
      const poc_message_view empty{7, nullptr, 0};
      switch (k) {
        case send: s(user, POC_OK); break;
        case recv: r(user, POC_OK, &empty); break;
        case wake: w(user); break;
        default: return;
      }
    }
  }

  std::atomic<int> job_{none};
  poc_send_complete_fn send_cb_ = nullptr;
  poc_recv_complete_fn recv_cb_ = nullptr;
  poc_wake_fn wake_ = nullptr;
  void* user_ = nullptr;
  std::thread thread_;
};

foreign_thread* completer = nullptr;  // the current test's

poc_status f_try_send(std::uint64_t, const poc_message_view*) { return POC_FULL; }
poc_status f_send(std::uint64_t, const poc_message_view*, poc_send_complete_fn cb, void* user,
                  poc_op_id* op) {
  *op = 1;
  completer->post(foreign_thread::send, cb, nullptr, nullptr, user);
  return POC_PENDING;
}
poc_status f_cancel(std::uint64_t, poc_op_id) { return POC_OK; }
poc_status f_ok(std::uint64_t) { return POC_OK; }
poc_status f_clone(std::uint64_t, poc_sender*) { return POC_INVALID; }
poc_status f_try_recv(std::uint64_t, poc_recv_complete_fn, void*) { return POC_EMPTY; }
poc_status f_recv(std::uint64_t, poc_recv_complete_fn, poc_recv_complete_fn cb, void* user,
                  poc_op_id* op) {
  *op = 1;
  completer->post(foreign_thread::recv, nullptr, cb, nullptr, user);
  return POC_PENDING;
}

// A future: the first poll answers PENDING (woken by the foreign thread), the second OK.
std::atomic<int> polls{0};
poc_status f_poll(std::uint64_t, poc_wake_fn wake, poc_recv_complete_fn deliver, void* user) {
  if (polls.fetch_add(1) % 2 == 0) {
    completer->post(foreign_thread::wake, nullptr, nullptr, wake, user);
    return POC_PENDING;
  }
  const poc_message_view empty{9, nullptr, 0};
  deliver(user, POC_OK, &empty);
  return POC_OK;
}
poc_status f_future_cancel(std::uint64_t) { return POC_OK; }

constexpr poc_sender_vtable sender_vt{POC_ABI_VERSION, sizeof(poc_sender_vtable), &f_try_send,
                                      &f_send, &f_cancel, &f_ok, &f_clone, &f_ok};
constexpr poc_receiver_vtable receiver_vt{POC_ABI_VERSION, sizeof(poc_receiver_vtable), &f_try_recv,
                                          &f_recv, &f_cancel, &f_ok, &f_ok};
constexpr poc_future_vtable future_vt{POC_ABI_VERSION, sizeof(poc_future_vtable), &f_poll,
                                      &f_future_cancel, &f_ok};

constexpr int warmup = 300;
constexpr int counted = 2000;

/// A chain of ops, each started by the previous one's handler on the runtime's thread: counts
/// allocations (any thread) over the `counted` ops after `warmup`.
template <typename Executor>
class chain {
 public:
  enum class what { send, recv, await };

  chain(Executor ex, what w) : ex_(ex), w_(w), tx_(ex, poc_sender{1, &sender_vt}),
                               rx_(ex, poc_receiver{2, &receiver_vt}) {}

  /// Allocations over the counted ops.
  std::uint64_t run() {
    auto f = done_.get_future();
    asio::post(ex_, [this] { next(); });
    f.wait();
    return result_;
  }

  int failures = 0;

 private:
  void next() {
    if (i_ == warmup) {
      start_ = counting::allocs.load();
      counting::on.store(true);
    }
    if (i_ == warmup + counted) {
      counting::on.store(false);
      result_ = counting::allocs.load() - start_;
      (void)tx_.release();
      (void)rx_.release();
      done_.set_value();
      return;
    }
    ++i_;
    switch (w_) {
      case what::send:
        tx_.async_send(poc::message(), asio::bind_executor(ex_, [this](std::error_code ec) {
                         if (ec) ++failures;
                         next();
                       }));
        break;
      case what::recv:
        rx_.async_receive(asio::bind_executor(ex_, [this](std::error_code ec, poc::message m) {
          if (ec || m.id != 7) ++failures;
          next();
        }));
        break;
      case what::await:
        poc::async_await(poc_future{3, &future_vt}, ex_,
                         asio::bind_executor(ex_, [this](std::error_code ec, poc::message m) {
                           if (ec || m.id != 9) ++failures;
                           next();
                         }));
        break;
    }
  }

  Executor ex_;
  what w_;
  poc::basic_port_sender<Executor> tx_;
  poc::basic_port_receiver<Executor> rx_;
  int i_ = 0;
  std::uint64_t start_ = 0;
  std::uint64_t result_ = 0;
  std::promise<void> done_;
};

template <typename Executor>
std::uint64_t run_chain(Executor ex, typename chain<Executor>::what w) {
  foreign_thread t;
  completer = &t;
  chain<Executor> c(ex, w);
  const std::uint64_t allocs = c.run();
  EXPECT_EQ(c.failures, 0);
  completer = nullptr;
  return allocs;
}

using any_chain = chain<asio::any_io_executor>;

void expect_allocation_free(std::uint64_t allocs, const char* what) {
#if POC_TEST_COUNTS_ALLOCATIONS
  // Target: < 0.01 per op; in practice 0.
  EXPECT_LE(allocs, static_cast<std::uint64_t>(counted / 100))
      << what << ": " << allocs << " allocations over " << counted << " ops";
#else
  (void)allocs;
  (void)what;
#endif
}

#if POC_TEST_COUNTS_ALLOCATIONS
TEST(SteadyState, TheCountersCount) {
  const std::uint64_t a0 = counting::allocs.load(), g0 = counting::aligned_allocs.load();
  counting::on.store(true);
  delete new int(1);
  std::free(std::aligned_alloc(64, 64));
  counting::on.store(false);
  EXPECT_EQ(counting::allocs.load() - a0, 2u);
  EXPECT_EQ(counting::aligned_allocs.load() - g0, 1u);
}
#endif

TEST(SteadyState, PendingSendCompletedOnAForeignThreadAllocatesNothing) {
  poc::runtime rt(1);
  const auto before = poc::detail::relay_arena::fallbacks();
  expect_allocation_free(run_chain<asio::any_io_executor>(rt.get_executor(), any_chain::what::send),
                         "send (any_io_executor)");
  expect_allocation_free(
      run_chain<asio::io_context::executor_type>(rt.get_executor(),
                                                 chain<asio::io_context::executor_type>::what::send),
      "send (io_context::executor_type)");
  EXPECT_EQ(poc::detail::relay_arena::fallbacks(), before);
}

TEST(SteadyState, PendingReceiveCompletedOnAForeignThreadAllocatesNothing) {
  poc::runtime rt(1);
  expect_allocation_free(run_chain<asio::any_io_executor>(rt.get_executor(), any_chain::what::recv),
                         "receive (any_io_executor)");
}

TEST(SteadyState, AwaitWokenOnAForeignThreadAllocatesNothing) {
  poc::runtime rt(1);
  polls = 0;
  const long live = poc::detail::future_cell::live();
  expect_allocation_free(run_chain<asio::any_io_executor>(rt.get_executor(), any_chain::what::await),
                         "await (any_io_executor)");
  EXPECT_EQ(poc::detail::future_cell::live(), live);
  EXPECT_GT(poc::detail::future_cell::pooled(), 0u);
}

// Handlers bound to a strand still complete on it (the relay dispatches to the handler's
// executor from the io thread).
TEST(SteadyState, RelayedCompletionsRunOnTheHandlersStrand) {
  poc::runtime rt(2);
  auto strand = asio::make_strand(rt.get_executor());
  foreign_thread t;
  completer = &t;
  poc::port_sender tx(rt.get_executor(), poc_sender{1, &sender_vt});
  std::promise<bool> on_strand;
  tx.async_send(poc::message(), asio::bind_executor(strand, [&](std::error_code ec) {
                  on_strand.set_value(!ec && strand.running_in_this_thread());
                }));
  auto f = on_strand.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f.get());
  (void)tx.release();
  completer = nullptr;
}

// ---- POC_IDLE_SPIN_US ----------------------------------------------------------------------------

TEST(IdleSpin, ParsesTheEnvironmentValue) {
  using poc::detail::parse_idle_spin;
  using std::chrono::microseconds;
  const auto is = [](const char* text, microseconds length, bool valid) {
    const auto s = parse_idle_spin(text);
    EXPECT_EQ(s.length, length) << (text ? text : "(unset)");
    EXPECT_EQ(s.valid, valid) << (text ? text : "(unset)");
  };
  is(nullptr, poc::detail::default_idle_spin, true);
  is("0", microseconds(0), true);
  is("50", microseconds(50), true);
  is(" 120\n", microseconds(120), true);
  is("10000", microseconds(10'000), true);
  is("10001", microseconds(10'000), true);
  is("99999999999999999999999", microseconds(10'000), true);
  is("", poc::detail::default_idle_spin, false);
  is("abc", poc::detail::default_idle_spin, false);
  is("-5", poc::detail::default_idle_spin, false);
  is("12us", poc::detail::default_idle_spin, false);
  EXPECT_LE(poc::detail::idle_spin(), poc::detail::max_idle_spin);
}

// A runtime whose threads spin shuts down promptly, also right after traffic.
TEST(IdleSpin, ShutdownIsNotDelayedBySpinning) {
  for (int round = 0; round < 20; ++round) {
    poc::runtime rt(2);
    run_chain<asio::any_io_executor>(rt.get_executor(), any_chain::what::send);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(rt.shutdown());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  }
}

// An exception thrown by a handler is reported and the thread keeps running (and spinning).
TEST(IdleSpin, AHandlerThatThrowsDoesNotStopTheThread) {
  poc::runtime rt(1);
  run_chain<asio::any_io_executor>(rt.get_executor(), any_chain::what::send);
  asio::post(rt.get_executor(), [] { throw std::runtime_error("expected by the test"); });
  expect_allocation_free(run_chain<asio::any_io_executor>(rt.get_executor(), any_chain::what::recv),
                         "receive after a throwing handler");
}

}  // namespace
