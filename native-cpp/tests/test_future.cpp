// The Asio importer of continuation-polled futures (poc/future.hpp) over a scriptable fake future
// exporter written here: a vtable the test controls, so that every ordering bridge.h allows
// (ready now, PENDING then woken from another thread, woken during poll, error, panic, cancel
// before and during, stale handle) is forced deterministically.
//
// Rules: every wait is bounded and fails with a message; no sleeps are used to synchronise;
// polls, wakes, cancels, releases and handler calls are counted and asserted.
#include "async_test_support.hpp"

#include <poc/bridge.h>
#include <poc/detail/future_op.hpp>
#include <poc/detail/stop_registry.hpp>
#include <poc/error.hpp>
#include <poc/future.hpp>
#include <poc/message.hpp>

#include <asio/bind_allocator.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

using namespace poc::test;

// ---------------------------------------------------------------------------------------------
// The fake exporter
// ---------------------------------------------------------------------------------------------

/// One scripted future. Each poll consumes one step of `script` (an empty script means
/// "pending"); a cancelled future's next poll returns CANCELLED; a finished one returns INVALID.
/// A pending wake is fired exactly once: by fire() (any thread), by release, or by cancel when
/// `wake_on_cancel` — whoever takes it first under the lock, outside the lock.
struct fake_future {
  enum class step { ready, error, panic, shutdown, pending, wake_in_poll };
  struct action {
    action() = default;
    action(step k, std::uint64_t i = 0, std::string t = {}) : kind(k), id(i), text(std::move(t)) {}
    step kind = step::pending;
    std::uint64_t id = 0;
    std::string text;
  };

  std::mutex m;
  std::condition_variable cv;
  std::deque<action> script;
  bool cancelled = false, finished = false, wake_pending = false, wake_on_cancel = false;
  poc_wake_fn wake = nullptr;
  void* user = nullptr;
  std::function<void()> on_poll;  // called (outside the lock) at each poll

  std::atomic<int> polls{0}, cancels{0}, releases{0}, wakes{0}, invalid_polls{0};

  /// Fires the pending wake, if any; true if this call fired it.
  bool fire() {
    poc_wake_fn w;
    void* u;
    {
      std::lock_guard lock(m);
      if (!wake_pending) return false;
      wake_pending = false;
      w = wake;
      u = user;
    }
    ++wakes;
    w(u);
    return true;
  }

  /// Waits (bounded) until a wake is pending.
  bool wait_pending() {
    std::unique_lock lock(m);
    return cv.wait_for(lock, bound, [&] { return wake_pending; });
  }
};

class fake_exporter {
 public:
  static fake_exporter& instance() {
    static fake_exporter e;
    return e;
  }

  /// A new future following `script`; the test keeps `state` to script and inspect it.
  poc_future make(std::shared_ptr<fake_future> state) {
    std::lock_guard lock(mutex_);
    const std::uint64_t h = ++next_;
    live_[h] = std::move(state);
    return poc_future{h, &vtable};
  }

  /// A handle that was never issued (or was released): every call gets POC_INVALID.
  poc_future stale() {
    std::lock_guard lock(mutex_);
    return poc_future{++next_, &vtable};
  }

  std::atomic<int> stale_calls{0};

  static const poc_future_vtable vtable;

 private:
  std::shared_ptr<fake_future> find(std::uint64_t h, bool erase = false) {
    std::lock_guard lock(mutex_);
    auto it = live_.find(h);
    if (it == live_.end()) return nullptr;
    auto f = it->second;
    if (erase) live_.erase(it);
    return f;
  }

  static poc_status poll(std::uint64_t h, poc_wake_fn wake, poc_recv_complete_fn deliver,
                         void* user) {
    auto f = instance().find(h);
    if (!f || wake == nullptr || deliver == nullptr) {
      ++instance().stale_calls;
      return POC_INVALID;
    }
    ++f->polls;
    if (f->on_poll) f->on_poll();
    std::unique_lock lock(f->m);
    if (f->finished) {
      ++f->invalid_polls;
      return POC_INVALID;
    }
    if (f->cancelled) {
      f->finished = true;
      return POC_CANCELLED;
    }
    fake_future::action a;
    if (!f->script.empty()) {
      a = std::move(f->script.front());
      f->script.pop_front();
    }
    switch (a.kind) {
      case fake_future::step::ready:
      case fake_future::step::error:
      case fake_future::step::panic: {
        f->finished = true;
        lock.unlock();
        const poc_status s = a.kind == fake_future::step::ready   ? POC_OK
                             : a.kind == fake_future::step::error ? POC_ERROR
                                                                  : POC_PANIC;
        const poc_message_view v{a.id, reinterpret_cast<const std::uint8_t*>(a.text.data()),
                                 a.text.size()};
        deliver(user, s, &v);
        return s;
      }
      case fake_future::step::shutdown:
        f->finished = true;
        return POC_SHUTDOWN;
      case fake_future::step::pending:
        f->wake_pending = true;
        f->wake = wake;
        f->user = user;
        lock.unlock();
        f->cv.notify_all();
        return POC_PENDING;
      case fake_future::step::wake_in_poll:
        lock.unlock();
        ++f->wakes;
        wake(user);  // before poll returns PENDING: must not be lost
        return POC_PENDING;
    }
    return POC_PANIC;
  }

  static poc_status cancel(std::uint64_t h) {
    auto f = instance().find(h);
    if (!f) {
      ++instance().stale_calls;
      return POC_INVALID;
    }
    ++f->cancels;
    bool fire;
    {
      std::lock_guard lock(f->m);
      f->cancelled = true;
      fire = f->wake_on_cancel;
    }
    if (fire) f->fire();
    return POC_OK;
  }

  static poc_status release(std::uint64_t h) {
    auto f = instance().find(h, true);
    if (!f) {
      ++instance().stale_calls;
      return POC_INVALID;
    }
    ++f->releases;
    f->fire();  // a pending wake still runs exactly once
    return POC_OK;
  }

  std::mutex mutex_;
  std::uint64_t next_ = 0;
  std::map<std::uint64_t, std::shared_ptr<fake_future>> live_;
};

const poc_future_vtable fake_exporter::vtable{POC_ABI_VERSION, sizeof(poc_future_vtable),
                                              &fake_exporter::poll, &fake_exporter::cancel,
                                              &fake_exporter::release};

using step = fake_future::step;

std::shared_ptr<fake_future> scripted(std::initializer_list<fake_future::action> steps) {
  auto f = std::make_shared<fake_future>();
  f->script.assign(steps.begin(), steps.end());
  return f;
}

poc_future make_future(const std::shared_ptr<fake_future>& f) {
  return fake_exporter::instance().make(f);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

// What one plain-callback await saw.
struct outcome {
  std::atomic<int> calls{0};
  std::error_code ec;
  poc::message msg;
  auto handler() {
    return [this](std::error_code e, poc::message m) {
      ec = e;
      msg = std::move(m);
      ++calls;
    };
  }
};

poc::message text_msg(std::uint64_t id, std::string_view text) {
  return poc::message(id, std::vector<std::uint8_t>(text.begin(), text.end()));
}

// Every cell (the wake's target) is freed once its wakes ran.
struct cell_leak_check {
  long before = poc::detail::future_cell::live();
  ~cell_leak_check() { EXPECT_EQ(poc::detail::future_cell::live(), before) << "future cells leaked"; }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------------

TEST(FutureImport, ReadyImmediatelyCompletesWithoutAWakeAndNotInline) {
  cell_leak_check leaks;
  auto f = scripted({{step::ready, 7, "alice"}});
  asio::io_context io;
  outcome out;
  alloc_stats stats;
  poc::async_await(make_future(f), io,
                   asio::bind_allocator(counting_allocator<void>(&stats), out.handler()));
  EXPECT_EQ(out.calls, 0) << "the handler ran inside async_await";
  EXPECT_EQ(f->polls, 0) << "polled inside async_await, not on the handler's executor";
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(out.calls, 1);
  EXPECT_FALSE(out.ec);
  EXPECT_EQ(out.msg, text_msg(7, "alice"));
  EXPECT_EQ(f->polls, 1);
  EXPECT_EQ(f->wakes, 0);
  EXPECT_EQ(f->releases, 1);
  EXPECT_GE(stats.allocs, 1) << "the op state was not allocated with the handler's allocator";
  EXPECT_EQ(stats.allocs, stats.deallocs);
}

TEST(FutureImport, PendingWokenFromAnotherThreadIsRepolledOnTheHandlersStrand) {
  cell_leak_check leaks;
  background_io bg(2);
  auto strand = asio::make_strand(bg.io);
  auto f = scripted({{step::pending}, {step::ready, 1, "v"}});
  std::atomic<int> off_strand{0};
  f->on_poll = [&] { off_strand += !strand.running_in_this_thread(); };
  std::promise<std::error_code> done;
  std::atomic<int> calls{0}, handler_off_strand{0};
  poc::async_await(make_future(f), bg.io.get_executor(),
                   asio::bind_executor(strand, [&](std::error_code ec, poc::message m) {
                     handler_off_strand += !strand.running_in_this_thread();
                     EXPECT_EQ(m, text_msg(1, "v"));
                     ++calls;
                     done.set_value(ec);
                   }));
  ASSERT_TRUE(f->wait_pending());
  std::thread waker([&] { EXPECT_TRUE(f->fire()); });
  waker.join();
  auto result = done.get_future();
  ASSERT_TRUE(ready(result));
  EXPECT_FALSE(result.get());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(f->polls, 2);
  EXPECT_EQ(f->wakes, 1);
  EXPECT_EQ(f->releases, 1);
  EXPECT_EQ(off_strand, 0) << "polled off the handler's strand (e.g. on the waker's thread)";
  EXPECT_EQ(handler_off_strand, 0);
}

// Regression (found by scripts/sanitize tsan: ~io_context racing pthread_cond_signal inside
// asio::post). The wake runs on the exporter's thread and posts the drive that polls again; that
// drive can finish the await and run its handler on the io_context's thread before the post has
// returned on the waking thread. An owner that then lets run() return and destroys the io_context
// (the usual "await, then tear down" pattern) must not pull it from under that post: the importer
// holds outstanding work across it. Under ThreadSanitizer a missing guard is reported here.
TEST(FutureImport, AnIoContextDestroyedRightAfterAWokenAwaitIsNoLongerInUseByTheWake) {
  cell_leak_check leaks;
  for (int i = 0; i < 100; ++i) {
    auto f = scripted({{step::pending}, {step::ready, 1, "v"}});
    auto io = std::make_unique<asio::io_context>();
    auto work = asio::make_work_guard(*io);
    std::thread runner([&io] { io->run(); });
    std::promise<std::error_code> done;
    poc::async_await(make_future(f), *io,
                     [&done](std::error_code ec, poc::message) { done.set_value(ec); });
    const bool pending = f->wait_pending();
    std::thread waker([&f] { f->fire(); });
    auto result = done.get_future();
    const bool completed = pending && ready(result);
    work.reset();
    if (!completed) io->stop();
    runner.join();  // run() returns once no work is left...
    io.reset();     // ...and the io_context goes, while the waker may still be returning
    waker.join();
    ASSERT_TRUE(completed) << "iteration " << i;
    EXPECT_FALSE(result.get());
    EXPECT_EQ(f->releases, 1);
  }
}

TEST(FutureImport, WakeDuringPollIsNotLost) {
  cell_leak_check leaks;
  auto f = scripted({{step::wake_in_poll}, {step::ready, 2, "x"}});
  asio::io_context io;
  outcome out;
  poc::async_await(make_future(f), io, out.handler());
  ASSERT_TRUE(run_to_completion(io)) << "the wake that came during poll was lost";
  EXPECT_EQ(out.calls, 1);
  EXPECT_FALSE(out.ec);
  EXPECT_EQ(f->polls, 2);
  EXPECT_EQ(f->wakes, 1);
}

TEST(FutureImport, RepeatedYieldsArePolledOncePerWakeAndNeverOverlap) {
  cell_leak_check leaks;
  auto f = std::make_shared<fake_future>();
  for (int i = 0; i < 200; ++i) f->script.push_back({step::wake_in_poll});
  f->script.push_back({step::ready, 3, "done"});
  std::atomic<int> inside{0}, overlaps{0};
  f->on_poll = [&] {
    overlaps += inside.fetch_add(1) != 0;
    inside.fetch_sub(1);
  };
  background_io bg(2);  // two threads, no strand: polls must still not overlap
  std::promise<std::error_code> done;
  poc::async_await(make_future(f), bg.io.get_executor(),
                   [&](std::error_code ec, poc::message) { done.set_value(ec); });
  auto result = done.get_future();
  ASSERT_TRUE(ready(result));
  EXPECT_FALSE(result.get());
  EXPECT_EQ(f->polls, 201);
  EXPECT_EQ(f->wakes, 200);
  EXPECT_EQ(overlaps, 0);
}

TEST(FutureImport, ErrorCarriesTheCodeAndTheText) {
  cell_leak_check leaks;
  auto f = scripted({{step::pending}, {step::error, 404, "no such user"}});
  asio::io_context io;
  outcome out;
  poc::async_await(make_future(f), io, out.handler());
  std::thread waker([&] {
    if (f->wait_pending()) f->fire();
  });
  ASSERT_TRUE(run_to_completion(io));
  waker.join();
  EXPECT_EQ(out.calls, 1);
  EXPECT_EQ(out.ec, poc::errc::error);
  EXPECT_EQ(out.msg.id, 404u);
  EXPECT_EQ(poc::error_text(out.msg), "no such user");
  auto e = poc::to_expected(out.ec, out.msg);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, poc::errc::error);
  EXPECT_EQ(e.error().id, 404u);
  EXPECT_EQ(e.error().text, "no such user");
  EXPECT_EQ(f->releases, 1);
}

TEST(FutureImport, PanicAndShutdownMapToErrorCodes) {
  cell_leak_check leaks;
  auto p = scripted({{step::panic, 0, "boom"}});
  auto s = scripted({{step::shutdown}});
  asio::io_context io;
  outcome po, so;
  poc::async_await(make_future(p), io, po.handler());
  poc::async_await(make_future(s), io, so.handler());
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(po.calls, 1);
  EXPECT_EQ(po.ec, poc::errc::panic);
  EXPECT_EQ(poc::error_text(po.msg), "boom");
  EXPECT_EQ(so.calls, 1);
  EXPECT_EQ(so.ec, poc::errc::shutdown);
  EXPECT_EQ(p->releases, 1);
  EXPECT_EQ(s->releases, 1);
}

TEST(FutureImport, StaleHandleAndBadVtableCompleteWithInvalid) {
  cell_leak_check leaks;
  asio::io_context io;
  outcome stale, bad;
  const int stale_before = fake_exporter::instance().stale_calls;
  poc::async_await(fake_exporter::instance().stale(), io, stale.handler());
  poc::async_await(poc_future{1, nullptr}, io, bad.handler());
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(stale.calls, 1);
  EXPECT_EQ(stale.ec, poc::errc::invalid);
  EXPECT_EQ(bad.calls, 1);
  EXPECT_EQ(bad.ec, poc::errc::invalid);
  // poll, then the one release: both INVALID (the adapter still releases exactly once).
  EXPECT_EQ(fake_exporter::instance().stale_calls - stale_before, 2);
}

TEST(FutureImport, PolledAgainAfterFinishingIsInvalidAtTheExporter) {
  // The fake keeps the contract's INVALID for a poll after finishing; the adapter never does it.
  auto f = scripted({{step::ready, 1, ""}});
  asio::io_context io;
  outcome out;
  poc::async_await(make_future(f), io, out.handler());
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(out.calls, 1);
  EXPECT_EQ(f->invalid_polls, 0);
  EXPECT_EQ(f->polls, 1);
}

// ---------------------------------------------------------------------------------------------
// Completion tokens
// ---------------------------------------------------------------------------------------------

TEST(FutureImport, UseAwaitableAndAsyncCall) {
  cell_leak_check leaks;
  auto ok = scripted({{step::pending}, {step::ready, 5, "bob"}});
  auto err = scripted({{step::error, 9, "denied"}});
  auto thrown = scripted({{step::error, 1, "x"}});
  asio::io_context io;
  int done = 0;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        poc::message v = co_await poc::async_await(make_future(ok), ex, asio::use_awaitable);
        EXPECT_EQ(v, text_msg(5, "bob"));
        auto r = co_await poc::async_call(make_future(err));
        EXPECT_FALSE(r.has_value());
        if (!r) {
          EXPECT_EQ(r.error().code, poc::errc::error);
          EXPECT_EQ(r.error().id, 9u);
          EXPECT_EQ(r.error().text, "denied");
        }
        try {
          co_await poc::async_await(make_future(thrown), ex, asio::use_awaitable);
          ADD_FAILURE() << "expected a system_error";
        } catch (const std::system_error& e) {
          EXPECT_EQ(e.code(), poc::errc::error);
        }
        ++done;
      },
      [&](std::exception_ptr e) {
        failure = e;
        ++done;
      });
  std::thread waker([&] {
    if (ok->wait_pending()) ok->fire();
  });
  ASSERT_TRUE(run_to_completion(io));
  waker.join();
  EXPECT_FALSE(failure);
  EXPECT_EQ(done, 2);
  EXPECT_EQ(ok->releases + err->releases + thrown->releases, 3);
}

TEST(FutureImport, UseFuture) {
  cell_leak_check leaks;
  auto f = scripted({{step::pending}, {step::ready, 6, "carol"}});
  auto e = scripted({{step::error, 2, "nope"}});
  asio::io_context io;  // not run: use_future handlers run on Asio's system executor
  std::future<poc::message> got = poc::async_await(make_future(f), io, asio::use_future);
  std::future<poc::message> failed = poc::async_await(make_future(e), io, asio::use_future);
  ASSERT_TRUE(f->wait_pending());
  std::thread waker([&] { f->fire(); });
  waker.join();
  ASSERT_TRUE(ready(got));
  EXPECT_EQ(got.get(), text_msg(6, "carol"));
  ASSERT_TRUE(ready(failed));
  try {
    failed.get();
    FAIL() << "expected a system_error";
  } catch (const std::system_error& ex) {
    EXPECT_EQ(ex.code(), poc::errc::error);
  }
  EXPECT_EQ(f->releases, 1);
  EXPECT_EQ(e->releases, 1);
}

TEST(FutureImport, DeferredStartsOnlyWhenLaunchedAndReleasesWhenDropped) {
  cell_leak_check leaks;
  auto f = scripted({{step::ready, 3, "d"}});
  auto dropped = scripted({{step::ready, 4, "never"}});
  asio::io_context io;
  outcome out;
  {
    auto op = poc::async_await(make_future(f), io, asio::experimental::deferred);
    auto unused = poc::async_await(make_future(dropped), io, asio::experimental::deferred);
    ASSERT_TRUE(run_to_completion(io));
    EXPECT_EQ(f->polls, 0) << "a deferred await started before it was launched";
    std::move(op)(out.handler());
  }
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(out.calls, 1);
  EXPECT_EQ(out.msg, text_msg(3, "d"));
  EXPECT_EQ(dropped->polls, 0);
  EXPECT_EQ(dropped->releases, 1) << "a dropped deferred await did not release its future";
  EXPECT_EQ(f->releases, 1);
}

TEST(FutureImport, AsTupleKeepsTheErrorText) {
  cell_leak_check leaks;
  auto f = scripted({{step::error, 77, "quota exceeded"}});
  asio::io_context io;
  int done = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto [ec, m] = co_await poc::async_await(
            make_future(f), io, asio::experimental::as_tuple(asio::use_awaitable));
        EXPECT_EQ(ec, poc::errc::error);
        EXPECT_EQ(m.id, 77u);
        EXPECT_EQ(poc::error_text(m), "quota exceeded");
        ++done;
      },
      [&](std::exception_ptr e) {
        EXPECT_FALSE(e);
        ++done;
      });
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(done, 2);
}

// ---------------------------------------------------------------------------------------------
// Cancellation and shutdown
// ---------------------------------------------------------------------------------------------

TEST(FutureImport, CancelBeforeTheFirstPoll) {
  cell_leak_check leaks;
  auto f = scripted({{step::ready, 1, "late"}});
  asio::io_context io;
  asio::cancellation_signal sig;
  outcome out;
  poc::async_await(make_future(f), io, asio::bind_cancellation_slot(sig.slot(), out.handler()));
  sig.emit(asio::cancellation_type::terminal);
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(out.calls, 1);
  EXPECT_EQ(out.ec, asio::error::operation_aborted);
  EXPECT_EQ(out.msg, poc::message());
  EXPECT_EQ(f->cancels, 1);
  EXPECT_EQ(f->polls, 1);
  EXPECT_EQ(f->releases, 1);
  sig.emit(asio::cancellation_type::terminal);  // after completion: the slot was cleared
  EXPECT_EQ(f->cancels, 1);
}

TEST(FutureImport, CancelWhilePendingRepollsAndTheLateWakeIsHarmless) {
  for (bool wake_on_cancel : {false, true}) {
    cell_leak_check leaks;
    auto f = scripted({{step::pending}, {step::ready, 1, "late"}});
    f->wake_on_cancel = wake_on_cancel;
    asio::io_context io;
    asio::cancellation_signal sig;
    outcome out;
    poc::async_await(make_future(f), io, asio::bind_cancellation_slot(sig.slot(), out.handler()));
    io.run_one();  // the first poll: PENDING
    ASSERT_EQ(f->polls, 1);
    sig.emit(asio::cancellation_type::terminal);
    ASSERT_TRUE(run_to_completion(io));
    EXPECT_EQ(out.calls, 1);
    EXPECT_EQ(out.ec, asio::error::operation_aborted);
    EXPECT_EQ(f->cancels, 1);
    EXPECT_EQ(f->releases, 1);
    EXPECT_EQ(f->wakes, 1) << "the pending wake ran (on cancel or on release) exactly once";
  }
}

TEST(FutureImport, CoroutineCancellationReachesTheFuture) {
  cell_leak_check leaks;
  auto f = scripted({{step::pending}});
  asio::io_context io;
  asio::cancellation_signal sig;
  std::error_code got;
  int done = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto r = co_await poc::async_call(make_future(f));
        if (!r) got = r.error().code;
        ++done;
      },
      asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) {
        EXPECT_FALSE(e);
        ++done;
      }));
  while (f->polls == 0) ASSERT_EQ(io.run_one_for(bound), 1u);
  sig.emit(asio::cancellation_type::terminal);
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(done, 2);
  EXPECT_EQ(got, asio::error::operation_aborted);
  EXPECT_EQ(f->cancels, 1);
  EXPECT_EQ(f->releases, 1);
}

TEST(FutureImport, RequestStopAllCancelsPendingAndLaterAwaits) {
  cell_leak_check leaks;
  asio::io_context io;
  std::vector<std::shared_ptr<fake_future>> fs;
  std::vector<std::unique_ptr<outcome>> outs;
  for (int i = 0; i < 5; ++i) {
    fs.push_back(scripted({{step::pending}}));
    outs.push_back(std::make_unique<outcome>());
    poc::async_await(make_future(fs.back()), io, outs.back()->handler());
  }
  while (io.poll_one() != 0) {
  }
  for (auto& f : fs) ASSERT_EQ(f->polls, 1);
  std::thread stopper([&] { poc::detail::request_stop_all(io); });
  stopper.join();
  auto later = scripted({{step::ready, 1, "too late"}});
  outcome later_out;
  poc::async_await(make_future(later), io, later_out.handler());
  ASSERT_TRUE(run_to_completion(io)) << "awaits kept the context busy after stop";
  for (std::size_t i = 0; i < fs.size(); ++i) {
    EXPECT_EQ(outs[i]->calls, 1);
    EXPECT_EQ(outs[i]->ec, asio::error::operation_aborted);
    EXPECT_EQ(fs[i]->cancels, 1);
    EXPECT_EQ(fs[i]->releases, 1);
    EXPECT_EQ(fs[i]->wakes, 1);
  }
  EXPECT_EQ(later_out.calls, 1);
  EXPECT_EQ(later_out.ec, asio::error::operation_aborted);
  EXPECT_EQ(later->releases, 1);
}

TEST(FutureImport, WakeRacingCancelRacingReleaseCompletesAndReleasesExactlyOnce) {
  cell_leak_check leaks;
  constexpr int rounds = 3000;
  background_io bg(2);
  int ok = 0, aborted = 0;
  for (int i = 0; i < rounds; ++i) {
    auto f = scripted({{step::pending}, {step::ready, 1, "v"}});
    f->wake_on_cancel = (i % 2) == 1;
    auto strand = asio::make_strand(bg.io);
    asio::cancellation_signal sig;
    std::atomic<int> calls{0};
    std::promise<std::error_code> done;
    poc::async_await(make_future(f), bg.io.get_executor(),
                     asio::bind_cancellation_slot(
                         sig.slot(), asio::bind_executor(strand, [&](std::error_code ec,
                                                                     poc::message) {
                           if (++calls == 1) done.set_value(ec);
                         })));
    ASSERT_TRUE(f->wait_pending());
    // The wake on a foreign thread races the cancel emitted on the handler's strand (as Asio
    // requires), and the release that follows either (which fires a wake still pending).
    std::thread waker([&] { f->fire(); });
    asio::post(strand, [&] { sig.emit(asio::cancellation_type::terminal); });
    auto result = done.get_future();
    ASSERT_TRUE(ready(result)) << "round " << i;
    waker.join();
    const std::error_code ec = result.get();
    ok += !ec;
    aborted += ec == asio::error::operation_aborted;
    // Let the strand drain (the emit may still be queued) before `sig` goes out of scope.
    std::promise<void> drained;
    asio::post(strand, [&] { drained.set_value(); });
    auto d = drained.get_future();
    ASSERT_TRUE(ready(d));
    ASSERT_EQ(calls, 1) << "round " << i;
    ASSERT_EQ(f->releases, 1) << "round " << i;
    ASSERT_EQ(f->wakes, 1) << "round " << i;
    ASSERT_EQ(f->invalid_polls, 0) << "round " << i;
  }
  EXPECT_EQ(ok + aborted, rounds);
  RecordProperty("won_by_wake", ok);
  RecordProperty("won_by_cancel", aborted);
}
