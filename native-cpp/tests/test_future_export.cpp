// The C++ exporter of futures (src/future_export.cpp) through its raw vtable, and the C++ importer
// (poc::async_call) awaiting it: C++ awaiting C++. The example export is poc_cpp_delayed_square.
//
// Rules: every wait is bounded and fails with a message; no sleeps are used to synchronise. A
// "PENDING" first poll is forced by blocking the runtime's only thread behind a gate (the
// operation cannot start before the gate opens), or by a delay no test ever waits for (cancel,
// release and shutdown end it).
#include "async_test_support.hpp"
#include "c_runtime.hpp"
#include "future_export.hpp"
#include "runtime_core.hpp"

#include <poc/bridge.h>
#include <poc/error.hpp>
#include <poc/future.hpp>
#include <poc/message.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>

namespace {

using poc::test::bound;
constexpr std::uint32_t never_ms = 3'600'000;  // an hour: only cancel/release/shutdown end it

/// The `user` of one poll: counts wakes (and where they ran) and keeps what deliver handed over.
struct probe {
  explicit probe(std::shared_ptr<poc::detail::runtime_core> c) : core(std::move(c)) {}
  std::shared_ptr<poc::detail::runtime_core> core;
  std::mutex m;
  std::condition_variable cv;
  int wakes = 0;
  int wakes_on_io_thread = 0;
  int delivers = 0;
  poc_status delivered_status = POC_INVALID;
  std::uint64_t id = 0;
  std::string data;

  static void on_wake(void* user) {
    auto* p = static_cast<probe*>(user);
    const bool io = p->core && p->core->running_in_this_thread();
    std::lock_guard lock(p->m);
    ++p->wakes;
    p->wakes_on_io_thread += io ? 1 : 0;
    p->cv.notify_all();
  }
  static void on_deliver(void* user, poc_status s, const poc_message_view* v) {
    auto* p = static_cast<probe*>(user);
    std::lock_guard lock(p->m);
    ++p->delivers;
    p->delivered_status = s;
    p->id = v->id;
    p->data.assign(reinterpret_cast<const char*>(v->data), v->len);
  }
  int wake_count() {
    std::lock_guard lock(m);
    return wakes;
  }
  ::testing::AssertionResult wait_woken() {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, bound, [&] { return wakes > 0; }))
      return ::testing::AssertionFailure() << "no wake within 10 s";
    return ::testing::AssertionSuccess();
  }
};

poc_status poll(const poc_future& f, probe& p) {
  return f.vtable->poll(f.handle, &probe::on_wake, &probe::on_deliver, &p);
}

/// A C++ runtime with one thread, freed at the end of the test.
struct cpp_rt {
  cpp_rt() { EXPECT_EQ(poc_cpp_runtime_new(1, &rt), POC_OK); }
  ~cpp_rt() { poc_cpp_runtime_free(rt); }
  std::shared_ptr<poc::detail::runtime_core> core() const { return rt->rt.core(); }
  poc_future square(std::uint64_t x, std::uint32_t delay_ms) const {
    poc_future f{0, nullptr};
    EXPECT_EQ(poc_cpp_delayed_square(rt, x, delay_ms, &f), POC_OK);
    return f;
  }
  poc_cpp_runtime* rt = nullptr;
};

/// Blocks the runtime's only thread until opened (or the bound passes), so that nothing posted
/// after it runs before open().
struct io_gate {
  explicit io_gate(cpp_rt& r) {
    asio::post(r.rt->rt.context(), [f = opened.get_future().share()] { f.wait_for(bound); });
  }
  ~io_gate() { open(); }
  void open() {
    if (!done.exchange(true)) opened.set_value();
  }
  std::promise<void> opened;
  std::atomic<bool> done{false};
};

/// Polls until finished, waiting for each wake (bounded). Returns the final status.
poc_status drive(const poc_future& f, probe& last) {
  for (int i = 0; i < 100; ++i) {
    probe p{last.core};
    const poc_status s = poll(f, p);
    if (s != POC_PENDING) {
      std::lock_guard lock(last.m);
      last.delivers = p.delivers, last.delivered_status = p.delivered_status;
      last.id = p.id, last.data = p.data;
      return s;
    }
    if (!p.wait_woken()) return POC_PENDING;
    EXPECT_EQ(p.wake_count(), 1);
  }
  return POC_PENDING;
}

TEST(FutureExport, ReadyAfterCompletionDeliversOnceThenInvalid) {
  cpp_rt r;
  const std::size_t live = poc::detail::cpp_future_count();
  poc_future f = r.square(7, 0);
  EXPECT_EQ(f.vtable, &poc::detail::cpp_future_vtable);
  EXPECT_EQ(f.handle >> 56, 0xC3u);
  EXPECT_EQ(poc::detail::cpp_future_count(), live + 1);
  probe p{r.core()};
  ASSERT_EQ(drive(f, p), POC_OK);
  EXPECT_EQ(p.delivers, 1);
  EXPECT_EQ(p.delivered_status, POC_OK);
  EXPECT_EQ(p.id, 49u);
  EXPECT_EQ(p.data, "");
  probe again{r.core()};
  EXPECT_EQ(poll(f, again), POC_INVALID);  // polled after it finished
  EXPECT_EQ(again.delivers + again.wake_count(), 0);
  EXPECT_EQ(f.vtable->cancel(f.handle), POC_OK);  // harmless after the end
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
  EXPECT_EQ(poc::detail::cpp_future_count(), live);
}

TEST(FutureExport, PendingIsWokenExactlyOnceFromTheIoThread) {
  cpp_rt r;
  io_gate gate(r);
  poc_future f = r.square(9, 0);
  probe p{r.core()};
  ASSERT_EQ(poll(f, p), POC_PENDING);  // the operation cannot have started: the thread is gated
  EXPECT_EQ(p.wake_count(), 0);
  gate.open();
  ASSERT_TRUE(p.wait_woken());
  probe done{r.core()};
  EXPECT_EQ(poll(f, done), POC_OK);
  EXPECT_EQ(done.id, 81u);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);  // joins the thread: no late wake after it
  EXPECT_EQ(p.wake_count(), 1);
  EXPECT_EQ(p.wakes_on_io_thread, 1);
  EXPECT_EQ(done.wake_count(), 0);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
}

TEST(FutureExport, ASecondPollBeforeTheWakeFiresTheFirstWake) {
  cpp_rt r;
  io_gate gate(r);
  poc_future f = r.square(3, 0);
  probe first{r.core()}, second{r.core()};
  ASSERT_EQ(poll(f, first), POC_PENDING);
  ASSERT_EQ(poll(f, second), POC_PENDING);
  EXPECT_EQ(first.wake_count(), 1);  // owed by the first PENDING, fired by the second poll
  EXPECT_EQ(second.wake_count(), 0);
  gate.open();
  ASSERT_TRUE(second.wait_woken());
  probe done{r.core()};
  EXPECT_EQ(poll(f, done), POC_OK);
  EXPECT_EQ(done.id, 9u);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(first.wake_count(), 1);
  EXPECT_EQ(second.wake_count(), 1);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
}

TEST(FutureExport, CancelWhilePendingWakesOnceAndTheNextPollIsCancelled) {
  cpp_rt r;
  poc_future f = r.square(5, never_ms);
  probe p{r.core()};
  ASSERT_EQ(poll(f, p), POC_PENDING);
  EXPECT_EQ(f.vtable->cancel(f.handle), POC_OK);
  EXPECT_EQ(p.wake_count(), 1);  // fired by cancel itself
  probe after{r.core()}, again{r.core()};
  EXPECT_EQ(poll(f, after), POC_CANCELLED);
  EXPECT_EQ(poll(f, again), POC_CANCELLED);
  EXPECT_EQ(after.delivers + again.delivers, 0);
  EXPECT_EQ(f.vtable->cancel(f.handle), POC_OK);  // idempotent
  // The timer was cancelled: shutdown has nothing left to wait for and no wake comes later.
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(p.wake_count(), 1);
  EXPECT_EQ(after.wake_count() + again.wake_count(), 0);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
}

TEST(FutureExport, ReleaseWhilePendingWakesOnceAndTheHandleIsStale) {
  cpp_rt r;
  const std::size_t live = poc::detail::cpp_future_count();
  poc_future f = r.square(5, never_ms);
  probe p{r.core()};
  ASSERT_EQ(poll(f, p), POC_PENDING);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
  EXPECT_EQ(p.wake_count(), 1);
  EXPECT_EQ(poc::detail::cpp_future_count(), live);
  probe stale{r.core()};
  EXPECT_EQ(poll(f, stale), POC_INVALID);
  EXPECT_EQ(f.vtable->cancel(f.handle), POC_INVALID);
  EXPECT_EQ(f.vtable->release(f.handle), POC_INVALID);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(p.wake_count(), 1);
  EXPECT_EQ(stale.wake_count(), 0);
}

TEST(FutureExport, OverflowIsAnErrorWithCodeAndText) {
  cpp_rt r;
  poc_future big = r.square(std::uint64_t{1} << 32, 0);
  probe p{r.core()};
  ASSERT_EQ(drive(big, p), POC_ERROR);
  EXPECT_EQ(p.delivers, 1);
  EXPECT_EQ(p.delivered_status, POC_ERROR);
  EXPECT_EQ(p.id, 400u);
  EXPECT_EQ(p.data, "overflow");
  EXPECT_EQ(big.vtable->release(big.handle), POC_OK);

  poc_future max = r.square(0xFFFF'FFFFu, 0);  // the largest x whose square fits
  probe q{r.core()};
  ASSERT_EQ(drive(max, q), POC_OK);
  EXPECT_EQ(q.id, 0xFFFF'FFFE'0000'0001u);
  EXPECT_EQ(max.vtable->release(max.handle), POC_OK);
}

TEST(FutureExport, ShutdownWhilePendingWakesOnceAndPollIsShutdown) {
  cpp_rt r;
  poc_future f = r.square(5, never_ms);
  probe p{r.core()};
  ASSERT_EQ(poll(f, p), POC_PENDING);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);  // does not wait an hour for the timer
  EXPECT_EQ(p.wake_count(), 1);
  probe after{r.core()};
  EXPECT_EQ(poll(f, after), POC_SHUTDOWN);
  EXPECT_EQ(poll(f, after), POC_INVALID);  // SHUTDOWN was its final answer
  EXPECT_EQ(after.delivers + after.wake_count(), 0);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);

  poc_future late{0, nullptr};
  EXPECT_EQ(poc_cpp_delayed_square(r.rt, 2, 0, &late), POC_SHUTDOWN);
  EXPECT_EQ(late.vtable, nullptr);
}

TEST(FutureExport, StaleForgedAndMisusedHandlesAreInvalid) {
  cpp_rt r;
  poc_future out{0, nullptr};
  EXPECT_EQ(poc_cpp_delayed_square(nullptr, 1, 0, &out), POC_INVALID);
  EXPECT_EQ(poc_cpp_delayed_square(r.rt, 1, 0, nullptr), POC_INVALID);

  poc_future f = r.square(4, 0);
  const poc_future_vtable* vt = f.vtable;
  EXPECT_EQ(vt->abi_version, POC_ABI_VERSION);
  EXPECT_EQ(vt->size, sizeof(poc_future_vtable));
  probe p{r.core()};
  EXPECT_EQ(vt->poll(f.handle, nullptr, &probe::on_deliver, &p), POC_INVALID);
  EXPECT_EQ(vt->poll(f.handle, &probe::on_wake, nullptr, &p), POC_INVALID);
  const std::uint64_t forged[] = {
      0,
      ~std::uint64_t{0},
      (f.handle & ~(std::uint64_t{0xFF} << 56)) | (std::uint64_t{0xC1} << 56),  // a sender's tag
      f.handle + (std::uint64_t{1} << 32),                                      // next generation
      f.handle + 1,                                                             // another slot
  };
  for (std::uint64_t h : forged) {
    EXPECT_EQ(vt->poll(h, &probe::on_wake, &probe::on_deliver, &p), POC_INVALID) << std::hex << h;
    EXPECT_EQ(vt->cancel(h), POC_INVALID) << std::hex << h;
    EXPECT_EQ(vt->release(h), POC_INVALID) << std::hex << h;
  }
  EXPECT_EQ(p.wake_count() + p.delivers, 0);
  EXPECT_EQ(vt->release(f.handle), POC_OK);
  EXPECT_EQ(vt->poll(f.handle, &probe::on_wake, &probe::on_deliver, &p), POC_INVALID);
  EXPECT_EQ(vt->release(f.handle), POC_INVALID);
  // The slot is reused with a new generation: the old handle still does not resolve.
  poc_future g = r.square(4, 0);
  EXPECT_NE(g.handle, f.handle);
  EXPECT_EQ(vt->cancel(f.handle), POC_INVALID);
  EXPECT_EQ(vt->release(g.handle), POC_OK);
}

TEST(FutureExport, CppAwaitsCppWithAsyncCall) {
  cpp_rt r;
  poc_future ok = r.square(7, 1);
  poc_future err = r.square(std::uint64_t{1} << 40, 1);
  asio::io_context io;
  int done = 0;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto v = co_await poc::async_call(ok);
        EXPECT_TRUE(v.has_value());
        if (v) {
          EXPECT_EQ(v->id, 49u);
        }
        auto e = co_await poc::async_call(err);
        EXPECT_FALSE(e.has_value());
        if (!e) {
          EXPECT_EQ(e.error().code, poc::errc::error);
          EXPECT_EQ(e.error().id, 400u);
          EXPECT_EQ(e.error().text, "overflow");
        }
        ++done;
      },
      [&](std::exception_ptr e) {
        failure = e;
        ++done;
      });
  ASSERT_TRUE(poc::test::run_to_completion(io));
  EXPECT_FALSE(failure);
  EXPECT_EQ(done, 2);
}

}  // namespace
