// Lent functions across C++ and Rust (bridge.h poc_async_fn): C++ calling the Rust "square" lent
// function (poc_rust_square_fn) in its three modes, the C++ sum_calls coroutine
// (poc_cpp_sum_calls) over Rust functions, and the Rust sum_calls (poc_rust_sum_calls) over C++
// functions, awaited from C++. This executable links the C++ library and the Rust staticlib,
// like libpoc_native.so does; it uses the public headers only.
//
// Rules: every wait is bounded and fails with a message; no sleeps are used to synchronise. A
// "PENDING" first poll of a Rust POSTED/TIMER call is forced by holding the Rust runtime's only
// worker inside a port call of a Rust producer agent (rust_worker_gate): the call's task cannot
// run before the gate opens. Calls, wakes, delivers, future polls/cancels/releases and function
// releases are counted (lent_test_support.hpp).
#include "lent_test_support.hpp"

#include <poc/async_fn.hpp>
#include <poc/bridge.h>
#include <poc/error.hpp>
#include <poc/future.hpp>
#include <poc/message.hpp>

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace {

using poc::test::bound;
using poc::test::counting_fn;
using poc::test::drive;
using poc::test::fn_counters;
using poc::test::poll_once;
using poc::test::poll_probe;

constexpr std::uint32_t never_ms = 3'600'000;  // an hour: only cancel/release/shutdown end it
constexpr std::uint64_t max_x = ~std::uint64_t{0};
const std::string max_x_text = "18446744073709551615";

const char* mode_name(std::uint32_t mode) {
  switch (mode) {
    case POC_SQUARE_READY: return "Ready";
    case POC_SQUARE_POSTED: return "Posted";
    case POC_SQUARE_TIMER: return "Timer";
    default: return "Unknown";
  }
}

/// A Rust runtime with one worker, freed at the end of the test.
struct rust_rt {
  rust_rt() { EXPECT_EQ(poc_rust_runtime_new(1, &rt), POC_OK); }
  ~rust_rt() { poc_rust_runtime_free(rt); }
  poc_async_fn square(std::uint32_t mode, std::uint32_t delay_ms = 0) const {
    poc_async_fn f{nullptr, nullptr, nullptr};
    EXPECT_EQ(poc_rust_square_fn(rt, mode, delay_ms, &f), POC_OK);
    return f;
  }
  poc_rust_runtime* rt = nullptr;
};

/// A C++ runtime with one thread, freed at the end of the test.
struct cpp_rt {
  cpp_rt() { EXPECT_EQ(poc_cpp_runtime_new(1, &rt), POC_OK); }
  ~cpp_rt() { poc_cpp_runtime_free(rt); }
  poc_async_fn square(std::uint32_t mode, std::uint32_t delay_ms = 0) const {
    poc_async_fn f{nullptr, nullptr, nullptr};
    EXPECT_EQ(poc_cpp_square_fn(rt, mode, delay_ms, &f), POC_OK);
    return f;
  }
  poc_cpp_runtime* rt = nullptr;
};

/// Holds the only worker of a Rust runtime: a Rust producer agent sends to a port written here
/// whose send blocks (bounded) until open(), then answers CLOSED, which ends the agent.
class rust_worker_gate {
 public:
  explicit rust_worker_gate(const rust_rt& r) : s_(new state) {
    const poc_sender tx{reinterpret_cast<std::uint64_t>(s_), &vtable};
    EXPECT_EQ(poc_rust_producer_start(r.rt, tx, 1, 1, 0, &on_done, s_, nullptr), POC_OK);
    std::unique_lock lock(s_->m);
    entered_ = s_->cv.wait_for(lock, bound, [&] { return s_->entered; });
    EXPECT_TRUE(entered_) << "the Rust worker did not reach the gate within 10 s";
  }
  rust_worker_gate(const rust_worker_gate&) = delete;
  rust_worker_gate& operator=(const rust_worker_gate&) = delete;

  /// Waits (bounded) until the agent ended and released the port, then frees the state.
  ~rust_worker_gate() {
    open();
    bool ended;
    {
      std::unique_lock lock(s_->m);
      ended = s_->cv.wait_for(lock, bound, [&] { return s_->done && s_->released; });
    }
    EXPECT_TRUE(ended) << "the gate's producer agent did not end within 10 s";
    if (ended) delete s_;  // otherwise leaked: the agent may still use it
  }

  void open() {
    std::lock_guard lock(s_->m);
    s_->open = true;
    s_->cv.notify_all();
  }

 private:
  struct state {
    std::mutex m;
    std::condition_variable cv;
    bool entered = false, open = false, done = false, released = false;
  };

  static state* of(std::uint64_t h) { return reinterpret_cast<state*>(h); }
  static poc_status block(std::uint64_t h) {
    state* s = of(h);
    std::unique_lock lock(s->m);
    s->entered = true;
    s->cv.notify_all();
    s->cv.wait_for(lock, bound, [&] { return s->open; });
    return POC_CLOSED;
  }
  static poc_status try_send(std::uint64_t h, const poc_message_view*) { return block(h); }
  static poc_status send(std::uint64_t h, const poc_message_view*, poc_send_complete_fn, void*,
                         poc_op_id*) {
    return block(h);
  }
  static poc_status cancel(std::uint64_t, poc_op_id) { return POC_OK; }
  static poc_status close(std::uint64_t) { return POC_OK; }
  static poc_status clone(std::uint64_t, poc_sender*) { return POC_INVALID; }
  static poc_status release(std::uint64_t h) {
    state* s = of(h);
    std::lock_guard lock(s->m);
    s->released = true;
    s->cv.notify_all();
    return POC_OK;
  }
  static void on_done(void* user, const poc_agent_report*) {
    auto* s = static_cast<state*>(user);
    std::lock_guard lock(s->m);
    s->done = true;
    s->cv.notify_all();
  }

  static inline const poc_sender_vtable vtable = {
      POC_ABI_VERSION, sizeof(poc_sender_vtable), &try_send, &send, &cancel, &close, &clone,
      &release};

  state* s_;
  bool entered_ = false;
};

/// Awaits one call of `fn` with {x} through poc::async_call on a private io_context thread.
poc::call_result call_and_await(const poc::async_fn& fn, std::uint64_t x) {
  auto io = std::make_unique<asio::io_context>();
  auto work = asio::make_work_guard(*io);
  std::thread t([&io] { io->run(); });
  auto done = asio::co_spawn(*io, poc::async_call(fn, poc::message{x, {}}), asio::use_future);
  const bool ready = done.wait_for(bound) == std::future_status::ready;
  work.reset();
  if (!ready) io->stop();
  t.join();
  if (!ready) {
    (void)io.release();  // a late wake may still post to it: keep it alive (this test failed)
    ADD_FAILURE() << "the awaited call did not complete within 10 s";
    return std::unexpected(poc::call_error{poc::errc::invalid, 0, "timeout"});
  }
  return done.get();
}

// ================================================================================================
// C++ calls the Rust square lent function
// ================================================================================================

TEST(RustSquareFn, Ready_NeedsNoRuntimeAndTheFirstPollIsOkWithNoWake) {
  poc_async_fn raw{nullptr, nullptr, nullptr};
  ASSERT_EQ(poc_rust_square_fn(nullptr, POC_SQUARE_READY, 0, &raw), POC_OK);
  poc::async_fn fn(raw);
  auto f = fn.call(7);
  ASSERT_TRUE(f.has_value());
  poll_probe p;
  EXPECT_EQ(poll_once(*f, p), POC_OK);
  EXPECT_EQ(p.delivers, 1);
  EXPECT_EQ(p.id, 49u);
  EXPECT_EQ(p.data, "");
  EXPECT_EQ(f->vtable->release(f->handle), POC_OK);

  auto boom = fn.call(max_x);  // the panic is caught inside the call's work: poll answers it
  ASSERT_TRUE(boom.has_value());
  poll_probe q;
  EXPECT_EQ(poll_once(*boom, q), POC_PANIC);
  EXPECT_EQ(q.delivers, 1);
  EXPECT_NE(q.data.find(max_x_text), std::string::npos) << q.data;
  EXPECT_EQ(boom->vtable->release(boom->handle), POC_OK);
  EXPECT_EQ(p.wake_count() + q.wake_count(), 0);
}

/// POSTED and TIMER: the first poll is PENDING (the worker is held), the wake comes exactly once
/// from the Rust worker, the next poll delivers.
void rust_pending_then_woken(std::uint32_t mode) {
  rust_rt r;
  poc::async_fn fn(r.square(mode, 1));
  poll_probe p;
  poc_future f{0, nullptr};
  {
    rust_worker_gate gate(r);
    auto started = fn.call(9);
    ASSERT_TRUE(started.has_value());
    f = *started;
    ASSERT_EQ(poll_once(f, p), POC_PENDING);
    EXPECT_EQ(p.wake_count(), 0);
  }  // opens the gate
  ASSERT_TRUE(p.wait_woken());
  poll_probe done;
  EXPECT_EQ(poll_once(f, done), POC_OK);
  EXPECT_EQ(done.delivers, 1);
  EXPECT_EQ(done.id, 81u);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
  ASSERT_EQ(poc_rust_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(p.wake_count(), 1);
  EXPECT_EQ(p.wakes_on_test_thread, 0) << "the wake must come from the Rust worker";
  EXPECT_EQ(done.wake_count(), 0);
}

TEST(RustSquareFn, Posted_PendingThenWokenOnceFromTheWorker) {
  rust_pending_then_woken(POC_SQUARE_POSTED);
}

TEST(RustSquareFn, Timer_PendingThenWokenOnceFromTheWorker) {
  rust_pending_then_woken(POC_SQUARE_TIMER);
}

TEST(RustSquareFn, Posted_CancelDuringWorkWakesOnceAndPollIsCancelled) {
  rust_rt r;
  poc::async_fn fn(r.square(POC_SQUARE_POSTED));
  poll_probe p, after;
  {
    rust_worker_gate gate(r);  // the task cannot run: the cancel comes "during" its work
    auto f = fn.call(4);
    ASSERT_TRUE(f.has_value());
    ASSERT_EQ(poll_once(*f, p), POC_PENDING);
    EXPECT_EQ(f->vtable->cancel(f->handle), POC_OK);
    ASSERT_TRUE(p.wait_woken());  // an owed wake is fired by cancel
    EXPECT_EQ(poll_once(*f, after), POC_CANCELLED);
    EXPECT_EQ(f->vtable->release(f->handle), POC_OK);
  }
  ASSERT_EQ(poc_rust_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(p.wake_count(), 1);
  EXPECT_EQ(after.wake_count() + after.delivers, 0);
}

TEST(RustSquareFn, InFlightCallsAndLaterCallsAnswerShutdown) {
  rust_rt r;
  poc::async_fn fn(r.square(POC_SQUARE_TIMER, never_ms));
  auto f = fn.call(4);
  ASSERT_TRUE(f.has_value());
  poll_probe p;
  ASSERT_EQ(poll_once(*f, p), POC_PENDING);
  ASSERT_EQ(poc_rust_runtime_shutdown(r.rt), POC_OK);
  ASSERT_TRUE(p.wait_woken());
  const auto d = drive(*f);
  EXPECT_EQ(d.status, POC_SHUTDOWN);
  EXPECT_EQ(d.delivers, 0);
  EXPECT_EQ(f->vtable->release(f->handle), POC_OK);
  auto late = fn.call(2);
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error(), poc::errc::shutdown);
  poc_rust_runtime_free(r.rt);
  r.rt = nullptr;  // the function outlives its runtime
  auto later = fn.call(2);
  ASSERT_FALSE(later.has_value());
  EXPECT_EQ(later.error(), poc::errc::shutdown);
}

TEST(RustSquareFn, RawAbiRejectsBadArguments) {
  rust_rt r;
  poc_async_fn out{nullptr, nullptr, nullptr};
  EXPECT_EQ(poc_rust_square_fn(r.rt, 3, 0, &out), POC_INVALID);  // unknown mode
  EXPECT_EQ(poc_rust_square_fn(nullptr, POC_SQUARE_POSTED, 0, &out), POC_INVALID);
  EXPECT_EQ(poc_rust_square_fn(nullptr, POC_SQUARE_TIMER, 0, &out), POC_INVALID);
  EXPECT_EQ(poc_rust_square_fn(r.rt, POC_SQUARE_READY, 0, nullptr), POC_INVALID);
  EXPECT_EQ(out.call, nullptr);
  ASSERT_EQ(poc_rust_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(poc_rust_square_fn(r.rt, POC_SQUARE_POSTED, 0, &out), POC_SHUTDOWN);
  EXPECT_EQ(out.call, nullptr);
}

class RustSquareModes : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(RustSquareModes, ValueErrorAndContainedPanic) {
  rust_rt r;
  poc::async_fn fn(r.square(GetParam(), 1));
  const poc::call_result v = call_and_await(fn, 12);
  ASSERT_TRUE(v.has_value()) << v.error().text;
  EXPECT_EQ(v->id, 144u);

  const poc::call_result e = call_and_await(fn, std::uint64_t{1} << 32);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, poc::errc::error);
  EXPECT_EQ(e.error().id, 400u);
  EXPECT_EQ(e.error().text, "overflow");

  const poc::call_result p = call_and_await(fn, max_x);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code, poc::errc::panic);
  EXPECT_NE(p.error().text.find(max_x_text), std::string::npos) << p.error().text;

  const poc::call_result later = call_and_await(fn, 3);  // the runtime keeps working
  ASSERT_TRUE(later.has_value()) << later.error().text;
  EXPECT_EQ(later->id, 9u);
}

TEST_P(RustSquareModes, CancelBeforeTheFirstPoll) {
  rust_rt r;
  poc::async_fn fn(r.square(GetParam(), never_ms));
  auto f = fn.call(5);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->vtable->cancel(f->handle), POC_OK);
  poll_probe p;
  EXPECT_EQ(poll_once(*f, p), POC_CANCELLED);
  EXPECT_EQ(f->vtable->release(f->handle), POC_OK);
  ASSERT_EQ(poc_rust_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(p.delivers + p.wake_count(), 0);
}

TEST_P(RustSquareModes, ReleaseWithoutAwaitingReleasesTheFunctionOnce) {
  rust_rt r;
  auto counters = std::make_shared<fn_counters>();
  {
    poc::async_fn fn(counting_fn::wrap(r.square(GetParam(), never_ms), counters));
    auto f = fn.call(5);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->vtable->release(f->handle), POC_OK);
    EXPECT_EQ(f->vtable->release(f->handle), POC_INVALID);  // once
  }
  EXPECT_EQ(counters->get(&fn_counters::calls), 1);
  EXPECT_EQ(counters->get(&fn_counters::future_polls), 0);
  EXPECT_EQ(counters->get(&fn_counters::future_releases), 1);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
  ASSERT_EQ(poc_rust_runtime_shutdown(r.rt), POC_OK);
}

INSTANTIATE_TEST_SUITE_P(AllModes, RustSquareModes,
                         ::testing::Values(POC_SQUARE_READY, POC_SQUARE_POSTED, POC_SQUARE_TIMER),
                         [](const ::testing::TestParamInfo<std::uint32_t>& i) {
                           return std::string(mode_name(i.param));
                         });

// ================================================================================================
// The C++ sum_calls coroutine over Rust functions
// ================================================================================================

poc_future cpp_sum_calls(cpp_rt& c, poc_async_fn f, std::uint64_t first, std::uint32_t count) {
  poc_future out{0, nullptr};
  EXPECT_EQ(poc_cpp_sum_calls(c.rt, f, first, count, &out), POC_OK);
  return out;
}

class CppSumCallsOverRust : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(CppSumCallsOverRust, SumsTheSquaresAndReleasesEverythingOnce) {
  cpp_rt c;
  rust_rt r;
  auto counters = std::make_shared<fn_counters>();
  poc_future f = cpp_sum_calls(c, counting_fn::wrap(r.square(GetParam(), 1), counters), 1, 4);
  const auto d = drive(f);
  ASSERT_EQ(d.status, POC_OK);
  EXPECT_EQ(d.id, 1u + 4 + 9 + 16);
  EXPECT_EQ(d.data, "summed 4 calls");
  EXPECT_EQ(counters->get(&fn_counters::calls), 4);
  EXPECT_EQ(counters->get(&fn_counters::future_releases), 4);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
}

TEST_P(CppSumCallsOverRust, ErrorAndPanicPassThroughWithThePrefix) {
  cpp_rt c;
  rust_rt r;
  poc_future e = cpp_sum_calls(c, r.square(GetParam(), 1), 0xFFFF'FFFFu, 3);
  const auto de = drive(e);
  ASSERT_EQ(de.status, POC_ERROR);
  EXPECT_EQ(de.id, 400u);
  EXPECT_EQ(de.data, "call 4294967296: overflow");
  EXPECT_EQ(e.vtable->release(e.handle), POC_OK);

  poc_future p = cpp_sum_calls(c, r.square(GetParam(), 1), max_x, 1);
  const auto dp = drive(p);
  ASSERT_EQ(dp.status, POC_PANIC);
  EXPECT_EQ(dp.data.rfind("call " + max_x_text + ": ", 0), 0u) << dp.data;
  EXPECT_NE(dp.data.find(max_x_text, 5 + max_x_text.size()), std::string::npos) << dp.data;
  EXPECT_EQ(p.vtable->release(p.handle), POC_OK);
}

INSTANTIATE_TEST_SUITE_P(AllModes, CppSumCallsOverRust,
                         ::testing::Values(POC_SQUARE_READY, POC_SQUARE_POSTED, POC_SQUARE_TIMER),
                         [](const ::testing::TestParamInfo<std::uint32_t>& i) {
                           return std::string(mode_name(i.param));
                         });

TEST(CppSumCallsOverRustFn, ARustCallThatCouldNotStartIsError502) {
  cpp_rt c;
  rust_rt r;
  auto counters = std::make_shared<fn_counters>();
  poc_async_fn f = counting_fn::wrap(r.square(POC_SQUARE_POSTED), counters);
  ASSERT_EQ(poc_rust_runtime_shutdown(r.rt), POC_OK);  // the Rust function now refuses calls
  poc_future out = cpp_sum_calls(c, f, 1, 3);
  const auto d = drive(out);
  ASSERT_EQ(d.status, POC_ERROR);
  EXPECT_EQ(d.id, 502u);
  EXPECT_EQ(d.data, "call 1: could not start (SHUTDOWN)");
  EXPECT_EQ(counters->get(&fn_counters::refused), 1);
  EXPECT_EQ(counters->get(&fn_counters::calls), 0);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
  EXPECT_EQ(out.vtable->release(out.handle), POC_OK);
}

TEST(CppSumCallsOverRustFn, CancelDuringARustCallCancelsThenReleasesIt) {
  cpp_rt c;
  rust_rt r;
  auto counters = std::make_shared<fn_counters>();
  poc_future outer =
      cpp_sum_calls(c, counting_fn::wrap(r.square(POC_SQUARE_TIMER, never_ms), counters), 1, 3);
  poll_probe first;
  ASSERT_EQ(poll_once(outer, first), POC_PENDING);
  ASSERT_TRUE(counters->wait_for(&fn_counters::future_polls, 1, "polls of call 1"));
  EXPECT_EQ(outer.vtable->cancel(outer.handle), POC_OK);
  EXPECT_EQ(first.wake_count(), 1);
  poll_probe after;
  EXPECT_EQ(poll_once(outer, after), POC_CANCELLED);
  ASSERT_TRUE(counters->wait_for(&fn_counters::fn_releases, 1, "releases of f"));
  EXPECT_EQ(counters->get(&fn_counters::calls), 1);
  EXPECT_EQ(counters->get(&fn_counters::future_cancels), 1);
  EXPECT_EQ(counters->get(&fn_counters::future_releases), 1);
  EXPECT_LT(counters->index_of("cancel 1"), counters->index_of("release 1"));
  EXPECT_EQ(outer.vtable->release(outer.handle), POC_OK);
  ASSERT_EQ(poc_cpp_runtime_shutdown(c.rt), POC_OK);
  ASSERT_EQ(poc_rust_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(first.wake_count(), 1);
  EXPECT_EQ(after.wake_count() + after.delivers, 0);
}

// ================================================================================================
// The Rust sum_calls over C++ functions, awaited from C++
// ================================================================================================

poc_future rust_sum_calls(poc_async_fn f, std::uint64_t first, std::uint32_t count) {
  poc_future out{0, nullptr};
  EXPECT_EQ(poc_rust_sum_calls(f, first, count, &out), POC_OK);
  return out;
}

class RustSumCallsOverCpp : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(RustSumCallsOverCpp, SumsTheSquaresAndReleasesEverythingOnce) {
  cpp_rt c;
  auto counters = std::make_shared<fn_counters>();
  poc_future f = rust_sum_calls(counting_fn::wrap(c.square(GetParam(), 1), counters), 1, 4);
  const auto d = drive(f);
  ASSERT_EQ(d.status, POC_OK);
  EXPECT_EQ(d.id, 1u + 4 + 9 + 16);
  EXPECT_EQ(d.data, "summed 4 calls");
  EXPECT_EQ(counters->get(&fn_counters::calls), 4);
  EXPECT_EQ(counters->get(&fn_counters::future_releases), 4);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
}

TEST_P(RustSumCallsOverCpp, ErrorAndTheCppExceptionPassThroughWithThePrefix) {
  cpp_rt c;
  poc_future e = rust_sum_calls(c.square(GetParam(), 1), 0xFFFF'FFFFu, 3);
  const auto de = drive(e);
  ASSERT_EQ(de.status, POC_ERROR);
  EXPECT_EQ(de.id, 400u);
  EXPECT_EQ(de.data, "call 4294967296: overflow");
  EXPECT_EQ(e.vtable->release(e.handle), POC_OK);

  poc_future p = rust_sum_calls(c.square(GetParam(), 1), max_x, 1);
  const auto dp = drive(p);
  ASSERT_EQ(dp.status, POC_PANIC);
  // The C++ std::domain_error's text, contained by the C++ exporter, prefixed by Rust.
  EXPECT_EQ(dp.data.rfind("call " + max_x_text + ": square(2^64 - 1)", 0), 0u) << dp.data;
  EXPECT_EQ(p.vtable->release(p.handle), POC_OK);
}

INSTANTIATE_TEST_SUITE_P(AllModes, RustSumCallsOverCpp,
                         ::testing::Values(POC_SQUARE_READY, POC_SQUARE_POSTED, POC_SQUARE_TIMER),
                         [](const ::testing::TestParamInfo<std::uint32_t>& i) {
                           return std::string(mode_name(i.param));
                         });

TEST(RustSumCallsOverCppFn, ACppCallThatCouldNotStartIsError502) {
  cpp_rt c;
  auto counters = std::make_shared<fn_counters>();
  poc_async_fn f = counting_fn::wrap(c.square(POC_SQUARE_TIMER), counters);
  ASSERT_EQ(poc_cpp_runtime_shutdown(c.rt), POC_OK);  // the C++ function now refuses calls
  poc_future out = rust_sum_calls(f, 7, 2);
  const auto d = drive(out);
  ASSERT_EQ(d.status, POC_ERROR);
  EXPECT_EQ(d.id, 502u);
  EXPECT_EQ(d.data, "call 7: could not start (SHUTDOWN)");
  EXPECT_EQ(counters->get(&fn_counters::refused), 1);
  EXPECT_EQ(out.vtable->release(out.handle), POC_OK);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
}

TEST(RustSumCallsOverCppFn, CancelDuringACppCallCancelsThenReleasesIt) {
  cpp_rt c;
  auto counters = std::make_shared<fn_counters>();
  poc_future outer =
      rust_sum_calls(counting_fn::wrap(c.square(POC_SQUARE_TIMER, never_ms), counters), 1, 3);
  poll_probe first;
  ASSERT_EQ(poll_once(outer, first), POC_PENDING);  // Rust polled call 1 on this thread
  EXPECT_EQ(counters->get(&fn_counters::future_polls), 1);
  EXPECT_EQ(outer.vtable->cancel(outer.handle), POC_OK);
  poll_probe after;
  EXPECT_EQ(poll_once(outer, after), POC_CANCELLED);
  EXPECT_EQ(outer.vtable->release(outer.handle), POC_OK);
  // The call in flight was cancelled, then released; `f` released once.
  ASSERT_TRUE(counters->wait_for(&fn_counters::future_releases, 1, "releases of call 1"));
  ASSERT_TRUE(counters->wait_for(&fn_counters::fn_releases, 1, "releases of f"));
  EXPECT_EQ(counters->get(&fn_counters::calls), 1);
  EXPECT_EQ(counters->get(&fn_counters::future_cancels), 1);
  EXPECT_LT(counters->index_of("cancel 1"), counters->index_of("release 1"));
  ASSERT_EQ(poc_cpp_runtime_shutdown(c.rt), POC_OK);  // the C++ timer was cancelled: no wait
  EXPECT_EQ(first.wake_count(), 1);
  EXPECT_EQ(after.wake_count() + after.delivers, 0);
}

TEST(RustSumCallsOverCppFn, ReleaseWithoutAwaitingReleasesTheFunctionOnce) {
  cpp_rt c;
  auto counters = std::make_shared<fn_counters>();
  poc_future outer = rust_sum_calls(counting_fn::wrap(c.square(POC_SQUARE_READY), counters), 1, 3);
  EXPECT_EQ(outer.vtable->release(outer.handle), POC_OK);
  ASSERT_TRUE(counters->wait_for(&fn_counters::fn_releases, 1, "releases of f"));
  EXPECT_EQ(counters->get(&fn_counters::calls), 0);  // never polled: no call started
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
}

TEST(RustSumCallsOverCppFn, RawAbiReleasesTheFunctionOnceOnRefusal) {
  {
    auto c = std::make_shared<fn_counters>();
    poc_async_fn f = counting_fn::wrap({nullptr, nullptr, nullptr}, c);
    f.call = nullptr;
    poc_future out{0, nullptr};
    EXPECT_EQ(poc_rust_sum_calls(f, 1, 1, &out), POC_INVALID);
    EXPECT_EQ(c->get(&fn_counters::fn_releases), 1) << "NULL f.call";
  }
  {
    auto c = std::make_shared<fn_counters>();
    EXPECT_EQ(poc_rust_sum_calls(counting_fn::wrap({nullptr, nullptr, nullptr}, c), 1, 1, nullptr),
              POC_INVALID);
    EXPECT_EQ(c->get(&fn_counters::fn_releases), 1) << "NULL out";
  }
}

}  // namespace
