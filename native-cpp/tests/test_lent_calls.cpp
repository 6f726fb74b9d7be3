// Lent functions, C++ calling C++ (bridge.h poc_async_fn; poc/async_fn.hpp): the C++ "square"
// lent function (poc_cpp_square_fn) in its three modes, poc::async_fn and poc::lend, sum_calls as
// a C++20 coroutine (poc_cpp_sum_calls), and the exporter's containment of exceptions thrown in
// completion handlers (poc_cpp_delayed_square(2^64 - 1)).
//
// Rules: every wait is bounded and fails with a message; no sleeps are used to synchronise. A
// "PENDING" first poll is forced by blocking the runtime's only thread behind a gate (nothing
// posted to it runs before the gate opens), or by a delay no test waits for (cancel, release and
// shutdown end it). Calls, wakes, delivers, future polls/cancels/releases and function releases
// are counted (lent_test_support.hpp: poll_probe, counting_fn).
#include "async_test_support.hpp"
#include "c_runtime.hpp"
#include "future_export.hpp"
#include "lent_test_support.hpp"
#include "runtime_core.hpp"

#include <poc/async_fn.hpp>
#include <poc/bridge.h>
#include <poc/detail/stop_service.hpp>
#include <poc/error.hpp>
#include <poc/future.hpp>
#include <poc/message.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

using namespace std::chrono_literals;
using poc::test::bound;
using poc::test::counting_fn;
using poc::test::drive;
using poc::test::fn_counters;
using poc::test::poll_once;
using poc::test::poll_probe;

constexpr std::uint32_t never_ms = 3'600'000;  // an hour: only cancel/release/shutdown end it
constexpr std::uint64_t max_x = ~std::uint64_t{0};
const std::string domain_text(poc::detail::square_domain_error);

/// A C++ runtime with one thread, freed at the end of the test.
struct cpp_rt {
  cpp_rt() { EXPECT_EQ(poc_cpp_runtime_new(1, &rt), POC_OK); }
  ~cpp_rt() { poc_cpp_runtime_free(rt); }
  [[nodiscard]] long core_refs() const { return rt->rt.core().use_count(); }
  poc_async_fn square(std::uint32_t mode, std::uint32_t delay_ms = 0) const {
    poc_async_fn f{nullptr, nullptr, nullptr};
    EXPECT_EQ(poc_cpp_square_fn(rt, mode, delay_ms, &f), POC_OK);
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

/// Runs an awaitable on a private io_context thread and waits (bounded) for its result.
poc::call_result await_on_thread(asio::awaitable<poc::call_result> a) {
  auto io = std::make_unique<asio::io_context>();
  auto work = asio::make_work_guard(*io);
  std::thread t([&io] { io->run(); });
  auto done = asio::co_spawn(*io, std::move(a), asio::use_future);
  const bool ready = done.wait_for(bound) == std::future_status::ready;
  work.reset();
  if (!ready) io->stop();  // do not hang in join: the failure is reported below
  t.join();
  if (!ready) {
    (void)io.release();  // a late wake may still post to it: keep it alive (this test failed)
    ADD_FAILURE() << "the awaited call did not complete within 10 s";
    return std::unexpected(poc::call_error{poc::errc::invalid, 0, "timeout"});
  }
  return done.get();
}

/// Starts one call of `fn` with {x} and awaits it with poc::async_call.
poc::call_result call_and_await(const poc::async_fn& fn, std::uint64_t x) {
  return await_on_thread(poc::async_call(fn, poc::message{x, {}}));
}

std::string text(const poc::message& m) { return std::string(poc::error_text(m)); }

const char* mode_name(std::uint32_t mode) {
  switch (mode) {
    case POC_SQUARE_READY: return "Ready";
    case POC_SQUARE_POSTED: return "Posted";
    case POC_SQUARE_TIMER: return "Timer";
    default: return "Unknown";
  }
}

// ================================================================================================
// The C++ square lent function
// ================================================================================================

TEST(CppSquareFn, Ready_FirstPollIsOkWithNoWakeAndNoIoContextHop) {
  cpp_rt r;
  io_gate gate(r);  // the runtime's only thread is blocked: a hop through it could not finish
  const std::size_t live = poc::detail::cpp_future_count();
  poc::async_fn fn(r.square(POC_SQUARE_READY));
  auto f = fn.call(7);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(poc::detail::cpp_future_count(), live + 1);
  poll_probe p;
  EXPECT_EQ(poll_once(*f, p), POC_OK);
  EXPECT_EQ(p.delivers, 1);
  EXPECT_EQ(p.delivered_status, POC_OK);
  EXPECT_EQ(p.id, 49u);
  EXPECT_EQ(p.data, "");
  poll_probe again;
  EXPECT_EQ(poll_once(*f, again), POC_INVALID);  // it finished
  EXPECT_EQ(f->vtable->release(f->handle), POC_OK);
  EXPECT_EQ(poc::detail::cpp_future_count(), live);
  gate.open();
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);  // joins: no late wake after this
  EXPECT_EQ(p.wake_count() + again.wake_count() + again.delivers, 0);
}

TEST(CppSquareFn, Ready_ErrorAndPanicAreAnsweredByTheFirstPoll) {
  cpp_rt r;
  io_gate gate(r);
  poc::async_fn fn(r.square(POC_SQUARE_READY));
  auto big = fn.call(std::uint64_t{1} << 32);
  ASSERT_TRUE(big.has_value());
  poll_probe p;
  EXPECT_EQ(poll_once(*big, p), POC_ERROR);
  EXPECT_EQ(p.delivers, 1);
  EXPECT_EQ(p.id, 400u);
  EXPECT_EQ(p.data, "overflow");
  EXPECT_EQ(big->vtable->release(big->handle), POC_OK);

  // The throw happens inside the call's work: the call itself succeeds, poll answers PANIC.
  auto boom = fn.call(max_x);
  ASSERT_TRUE(boom.has_value()) << "call failed with errc " << static_cast<int>(boom.error());
  poll_probe q;
  EXPECT_EQ(poll_once(*boom, q), POC_PANIC);
  EXPECT_EQ(q.delivers, 1);
  EXPECT_EQ(q.delivered_status, POC_PANIC);
  EXPECT_EQ(q.data, domain_text);
  EXPECT_EQ(boom->vtable->release(boom->handle), POC_OK);
  gate.open();
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(p.wake_count() + q.wake_count(), 0);
}

/// POSTED and TIMER: the first poll is PENDING (the runtime's thread is gated), the wake comes
/// exactly once from the runtime's thread, the next poll delivers.
void pending_then_woken(std::uint32_t mode) {
  cpp_rt r;
  io_gate gate(r);
  poc::async_fn fn(r.square(mode, 1));
  auto f = fn.call(9);
  ASSERT_TRUE(f.has_value());
  poll_probe p;
  ASSERT_EQ(poll_once(*f, p), POC_PENDING);
  EXPECT_EQ(p.wake_count(), 0);
  gate.open();
  ASSERT_TRUE(p.wait_woken());
  poll_probe done;
  EXPECT_EQ(poll_once(*f, done), POC_OK);
  EXPECT_EQ(done.delivers, 1);
  EXPECT_EQ(done.id, 81u);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(p.wake_count(), 1);
  EXPECT_EQ(p.wakes_on_test_thread, 0) << "the wake must come from the runtime's thread";
  EXPECT_EQ(done.wake_count(), 0);
  EXPECT_EQ(f->vtable->release(f->handle), POC_OK);
}

TEST(CppSquareFn, Posted_PendingThenWokenOnceFromTheRuntimeThread) {
  pending_then_woken(POC_SQUARE_POSTED);
}

TEST(CppSquareFn, Timer_PendingThenWokenOnceFromTheRuntimeThread) {
  pending_then_woken(POC_SQUARE_TIMER);
}

TEST(CppSquareFn, Posted_CancelDuringWorkWakesOnceAndPollIsCancelled) {
  cpp_rt r;
  io_gate gate(r);  // the posted work cannot run: the cancel comes "during" it
  poc::async_fn fn(r.square(POC_SQUARE_POSTED));
  auto f = fn.call(4);
  ASSERT_TRUE(f.has_value());
  poll_probe p;
  ASSERT_EQ(poll_once(*f, p), POC_PENDING);
  EXPECT_EQ(f->vtable->cancel(f->handle), POC_OK);
  EXPECT_EQ(p.wake_count(), 1);  // fired by cancel
  gate.open();  // the work now runs and completes: cancel still wins
  poll_probe after;
  EXPECT_EQ(poll_once(*f, after), POC_CANCELLED);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(p.wake_count(), 1);
  EXPECT_EQ(after.wake_count() + after.delivers, 0);
  EXPECT_EQ(f->vtable->release(f->handle), POC_OK);
}

TEST(CppSquareFn, Timer_CancelThroughTheAwaitersSlotStopsTheTimer) {
  cpp_rt r;
  poc::async_fn fn(r.square(POC_SQUARE_TIMER, never_ms));
  auto f = fn.call(4);
  ASSERT_TRUE(f.has_value());
  poc::test::background_io io;
  asio::cancellation_signal signal;
  std::promise<std::error_code> outcome;
  std::atomic<int> handlers{0};
  asio::post(io.io, [&] {
    poc::async_await(*f, io.io.get_executor(),
                     asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec,
                                                                     poc::message) {
                       ++handlers;
                       outcome.set_value(ec);
                     }));
    signal.emit(asio::cancellation_type::terminal);  // on the handler's executor, as Asio wants
  });
  auto ec = outcome.get_future();
  ASSERT_EQ(ec.wait_for(bound), std::future_status::ready) << "the cancelled call did not complete";
  EXPECT_EQ(ec.get(), asio::error::operation_aborted);
  EXPECT_EQ(handlers.load(), 1);
  // The timer was cancelled, not left to run for an hour: the runtime has no work left.
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
}

TEST(CppSquareFn, ShutdownWhilePendingWakesOnceAndPollIsShutdown) {
  cpp_rt r;
  poc::async_fn fn(r.square(POC_SQUARE_TIMER, never_ms));
  auto f = fn.call(4);
  ASSERT_TRUE(f.has_value());
  poll_probe p;
  ASSERT_EQ(poll_once(*f, p), POC_PENDING);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(p.wake_count(), 1);
  poll_probe after;
  EXPECT_EQ(poll_once(*f, after), POC_SHUTDOWN);
  EXPECT_EQ(after.delivers + after.wake_count(), 0);
  EXPECT_EQ(f->vtable->release(f->handle), POC_OK);
}

TEST(CppSquareFn, OutlivesItsRuntime_CallsAfterShutdownAreShutdown) {
  cpp_rt r;
  const long refs = r.core_refs();
  poc::async_fn fn(r.square(POC_SQUARE_READY));
  EXPECT_EQ(r.core_refs(), refs + 1) << "the function keeps the runtime's core alive";
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  poc_future untouched{0x1234, nullptr};
  const poc_message_view arg{2, nullptr, 0};
  EXPECT_EQ(fn.get().call(fn.get().context, &arg, &untouched), POC_SHUTDOWN);
  EXPECT_EQ(untouched.handle, 0x1234u);
  poc_cpp_runtime_free(r.rt);
  r.rt = nullptr;  // the function still works (answers SHUTDOWN) after the runtime is freed
  auto late = fn.call(2);
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error(), poc::errc::shutdown);
  fn.reset();  // frees the core: must not crash
}

TEST(CppSquareFn, RawAbiRejectsBadArguments) {
  cpp_rt r;
  poc_async_fn out{nullptr, nullptr, nullptr};
  EXPECT_EQ(poc_cpp_square_fn(r.rt, 3, 0, &out), POC_INVALID);  // unknown mode
  EXPECT_EQ(poc_cpp_square_fn(r.rt, 0xFFFF'FFFFu, 0, &out), POC_INVALID);
  EXPECT_EQ(poc_cpp_square_fn(nullptr, POC_SQUARE_READY, 0, &out), POC_INVALID);
  EXPECT_EQ(poc_cpp_square_fn(r.rt, POC_SQUARE_READY, 0, nullptr), POC_INVALID);
  EXPECT_EQ(out.call, nullptr);
  EXPECT_EQ(out.release, nullptr);

  const std::size_t live = poc::detail::cpp_future_count();
  for (std::uint32_t mode : {POC_SQUARE_READY, POC_SQUARE_POSTED, POC_SQUARE_TIMER}) {
    poc::async_fn fn(r.square(mode));
    const poc_async_fn& raw = fn.get();
    poc_future f{0, nullptr};
    const poc_message_view arg{3, nullptr, 0};
    EXPECT_EQ(raw.call(raw.context, nullptr, &f), POC_INVALID) << mode_name(mode);
    EXPECT_EQ(raw.call(raw.context, &arg, nullptr), POC_INVALID) << mode_name(mode);
    EXPECT_EQ(f.vtable, nullptr);
  }
  EXPECT_EQ(poc::detail::cpp_future_count(), live);

  // A malformed view (NULL data with a length) is a bad argument in every mode, as for the Rust
  // square and poc::lend (found by fuzz/: the C++ square answered OK); also while stopping.
  for (std::uint32_t mode : {POC_SQUARE_READY, POC_SQUARE_POSTED, POC_SQUARE_TIMER}) {
    poc::async_fn fn(r.square(mode));
    const poc_async_fn& raw = fn.get();
    poc_future f{0, nullptr};
    const poc_message_view bad{3, nullptr, 5};
    EXPECT_EQ(raw.call(raw.context, &bad, &f), POC_INVALID) << mode_name(mode);
    EXPECT_EQ(f.vtable, nullptr);
  }
  EXPECT_EQ(poc::detail::cpp_future_count(), live);

  poc::async_fn kept(r.square(POC_SQUARE_READY));
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(poc_cpp_square_fn(r.rt, POC_SQUARE_READY, 0, &out), POC_SHUTDOWN);
  EXPECT_EQ(out.call, nullptr);
  poc_future f{0, nullptr};
  const poc_message_view bad{3, nullptr, 5};
  EXPECT_EQ(kept.get().call(kept.get().context, &bad, &f), POC_INVALID);  // not SHUTDOWN
}

// --- the same checks in every mode -------------------------------------------------------------

class CppSquareModes : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(CppSquareModes, ValueThroughAsyncCall) {
  cpp_rt r;
  poc::async_fn fn(r.square(GetParam(), 1));
  const poc::call_result v = call_and_await(fn, 12);
  ASSERT_TRUE(v.has_value()) << v.error().text;
  EXPECT_EQ(v->id, 144u);
  EXPECT_TRUE(v->payload.empty());
  const poc::call_result top = call_and_await(fn, 0xFFFF'FFFFu);  // the largest x that fits
  ASSERT_TRUE(top.has_value()) << top.error().text;
  EXPECT_EQ(top->id, 0xFFFF'FFFE'0000'0001u);
}

TEST_P(CppSquareModes, OverflowIsErrc400) {
  cpp_rt r;
  poc::async_fn fn(r.square(GetParam(), 1));
  const poc::call_result e = call_and_await(fn, std::uint64_t{1} << 32);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, poc::errc::error);
  EXPECT_EQ(e.error().id, 400u);
  EXPECT_EQ(e.error().text, "overflow");
}

TEST_P(CppSquareModes, PanicIsContainedAndTheRuntimeKeepsWorking) {
  cpp_rt r;
  poc::async_fn fn(r.square(GetParam(), 1));
  const poc::call_result e = call_and_await(fn, max_x);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, poc::errc::panic);
  EXPECT_EQ(e.error().text, domain_text);
  const poc::call_result later = call_and_await(fn, 3);
  ASSERT_TRUE(later.has_value()) << later.error().text;
  EXPECT_EQ(later->id, 9u);
}

TEST_P(CppSquareModes, CancelBeforeTheFirstPoll) {
  cpp_rt r;
  poc::async_fn fn(r.square(GetParam(), never_ms));
  auto f = fn.call(5);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->vtable->cancel(f->handle), POC_OK);
  poll_probe p;
  EXPECT_EQ(poll_once(*f, p), POC_CANCELLED);
  EXPECT_EQ(f->vtable->release(f->handle), POC_OK);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);  // a TIMER call's timer was cancelled
  EXPECT_EQ(p.delivers + p.wake_count(), 0);
}

TEST_P(CppSquareModes, ReleaseWithoutAwaitingFreesEverything) {
  cpp_rt r;
  const long refs = r.core_refs();
  const std::size_t live = poc::detail::cpp_future_count();
  auto counters = std::make_shared<fn_counters>();
  {
    io_gate gate(r);
    poc::async_fn fn(counting_fn::wrap(r.square(GetParam(), never_ms), counters));
    EXPECT_EQ(r.core_refs(), refs + 1) << "the function keeps the runtime's core alive";
    auto f = fn.call(5);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(poc::detail::cpp_future_count(), live + 1);
    EXPECT_EQ(f->vtable->release(f->handle), POC_OK);
    EXPECT_EQ(poc::detail::cpp_future_count(), live);
    EXPECT_EQ(counters->get(&fn_counters::fn_releases), 0);
  }  // fn released here, then the gate opens
  EXPECT_EQ(counters->get(&fn_counters::calls), 1);
  EXPECT_EQ(counters->get(&fn_counters::future_polls), 0);
  EXPECT_EQ(counters->get(&fn_counters::future_releases), 1);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  // Nothing the function or its call made still holds the runtime (only the runtime object).
  EXPECT_EQ(r.core_refs(), 1);
}

INSTANTIATE_TEST_SUITE_P(AllModes, CppSquareModes,
                         ::testing::Values(POC_SQUARE_READY, POC_SQUARE_POSTED, POC_SQUARE_TIMER),
                         [](const ::testing::TestParamInfo<std::uint32_t>& i) {
                           return std::string(mode_name(i.param));
                         });

// ================================================================================================
// The exporter contains exceptions thrown in completion handlers
// ================================================================================================

TEST(DelayedSquare, ThrowInTheTimerHandlerIsPanicWithTheExceptionText) {
  cpp_rt r;
  poc_future f{0, nullptr};
  ASSERT_EQ(poc_cpp_delayed_square(r.rt, max_x, 0, &f), POC_OK);
  const auto d = drive(f);  // bounded: an exception lost in io_context::run would hang it
  ASSERT_EQ(d.status, POC_PANIC);
  EXPECT_EQ(d.delivers, 1);
  EXPECT_EQ(d.data, domain_text);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
  // The runtime (its only thread included) keeps working.
  poc_future g{0, nullptr};
  ASSERT_EQ(poc_cpp_delayed_square(r.rt, 6, 0, &g), POC_OK);
  const auto e = drive(g);
  ASSERT_EQ(e.status, POC_OK);
  EXPECT_EQ(e.id, 36u);
  EXPECT_EQ(g.vtable->release(g.handle), POC_OK);
}

/// An operation that shutdown stops through something else it awaits (here: a stop entry of
/// the test's that completes it with POC_CANCELLED), possibly before the future's own stop
/// request runs, still answers POC_SHUTDOWN.
TEST(CppFutureExporter, AnOperationCancelledByTheShutdownAnswersShutdown) {
  struct held_op {
    std::promise<poc::detail::future_completer> started;
    std::optional<poc::detail::future_completer> done;
    poc::detail::stop_entry entry;
    static void on_stop(const void* target, std::uint64_t, std::uint64_t) noexcept {
      const auto* self = static_cast<const held_op*>(target);
      (*self->done)({POC_CANCELLED, 0, {}});
    }
  };
  cpp_rt r;
  auto& stops = asio::use_service<poc::detail::stop_service>(r.rt->rt.context());
  constexpr int n = 16;  // the order of the stop requests depends on addresses: try many
  std::vector<std::unique_ptr<held_op>> ops;
  std::vector<poc_future> futures;
  for (int i = 0; i < n; ++i) {
    auto op = std::make_unique<held_op>();
    poc_future f{0, nullptr};
    ASSERT_EQ(poc::detail::export_cpp_future(
                  r.rt->rt.core(),
                  [p = op.get()](const poc::detail::future_strand&, asio::cancellation_slot,
                                 poc::detail::future_completer done) {
                    p->started.set_value(std::move(done));
                  },
                  &f),
              POC_OK);
    auto started = op->started.get_future();
    ASSERT_EQ(started.wait_for(bound), std::future_status::ready) << "the operation did not start";
    op->done.emplace(started.get());
    op->entry.request_ = poc::detail::stop_request{&held_op::on_stop, op.get(), 0, 0};
    ASSERT_FALSE(stops.add(op->entry));
    ops.push_back(std::move(op));
    futures.push_back(f);
  }
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  for (auto& op : ops) stops.remove(op->entry);
  for (const poc_future& f : futures) {
    poll_probe p;
    EXPECT_EQ(poll_once(f, p), POC_SHUTDOWN);
    EXPECT_EQ(p.delivers + p.wake_count(), 0);
    EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
  }
}

// ================================================================================================
// poc::async_fn and poc::lend
// ================================================================================================

static_assert(!std::is_copy_constructible_v<poc::async_fn>);
static_assert(!std::is_copy_assignable_v<poc::async_fn>);
static_assert(std::is_nothrow_move_constructible_v<poc::async_fn>);
static_assert(std::is_nothrow_move_assignable_v<poc::async_fn>);

TEST(CppAsyncFn, OwnsTheFunctionAndReleasesItExactlyOnce) {
  auto counters = std::make_shared<fn_counters>();
  {
    poc::async_fn a(counting_fn::wrap({nullptr, nullptr, nullptr}, counters));
    EXPECT_TRUE(a);
    poc::async_fn b(std::move(a));
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    poc::async_fn c;
    EXPECT_FALSE(c);
    c = std::move(b);
    EXPECT_TRUE(c);
    EXPECT_EQ(counters->get(&fn_counters::fn_releases), 0);
    c = std::move(c);  // self-move: no release
    EXPECT_EQ(counters->get(&fn_counters::fn_releases), 0);
    c.reset();
    EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
    c.reset();
  }
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);

  // Assigning over a held function releases the old one.
  auto first = std::make_shared<fn_counters>();
  auto second = std::make_shared<fn_counters>();
  {
    poc::async_fn x(counting_fn::wrap({nullptr, nullptr, nullptr}, first));
    x = poc::async_fn(counting_fn::wrap({nullptr, nullptr, nullptr}, second));
    EXPECT_EQ(first->get(&fn_counters::fn_releases), 1);
    EXPECT_EQ(second->get(&fn_counters::fn_releases), 0);
  }
  EXPECT_EQ(second->get(&fn_counters::fn_releases), 1);

  // detach() hands the raw value over without releasing it.
  auto detached = std::make_shared<fn_counters>();
  poc_async_fn raw{nullptr, nullptr, nullptr};
  {
    poc::async_fn d(counting_fn::wrap({nullptr, nullptr, nullptr}, detached));
    raw = d.detach();
    EXPECT_FALSE(d);
  }
  EXPECT_EQ(detached->get(&fn_counters::fn_releases), 0);
  raw.release(raw.context);
  EXPECT_EQ(detached->get(&fn_counters::fn_releases), 1);
}

TEST(CppAsyncFn, ACallThatDoesNotStartIsAnErrc) {
  poc::async_fn empty;
  auto e = empty.call(1);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error(), poc::errc::invalid);

  auto counters = std::make_shared<fn_counters>();
  counting_fn::script s;
  s.refuse = {{1, POC_SHUTDOWN}, {2, POC_INVALID}, {3, POC_PANIC}, {4, POC_PENDING}};
  poc::async_fn fn(counting_fn::wrap({nullptr, nullptr, nullptr}, counters, s));
  EXPECT_EQ(fn.call(1).error(), poc::errc::shutdown);
  EXPECT_EQ(fn.call(2).error(), poc::errc::invalid);
  EXPECT_EQ(fn.call(3).error(), poc::errc::panic);
  EXPECT_EQ(fn.call(4).error(), poc::errc::panic);  // a status `call` must not answer
  EXPECT_EQ(counters->get(&fn_counters::refused), 4);
  EXPECT_EQ(counters->get(&fn_counters::calls), 0);

  // poc::async_call(fn, arg) reports it as the call's error.
  const poc::call_result r = call_and_await(fn, 1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, poc::errc::shutdown);
  EXPECT_EQ(counters->get(&fn_counters::refused), 5);
}

TEST(CppLend, ValuesErrorsAndExceptionsOfALentCoroutine) {
  cpp_rt r;
  const auto core = r.rt->rt.core();
  std::atomic<int> bodies_on_runtime_thread{0};
  auto body = [&, core](poc::message m) -> asio::awaitable<poc::call_result> {
    if (core->running_in_this_thread()) ++bodies_on_runtime_thread;
    asio::steady_timer t(co_await asio::this_coro::executor, 0ms);
    co_await t.async_wait(asio::use_awaitable);
    switch (m.id) {
      case 1: co_return poc::message{m.id + 100, {'h', 'i'}};
      case 2: co_return std::unexpected(poc::call_error{poc::errc::error, 418, "teapot"});
      case 3: throw std::runtime_error("boom in the lent body");
      case 4: co_return std::unexpected(poc::call_error{poc::errc::shutdown, 0, {}});
      case 5: co_return std::unexpected(poc::call_error{asio::error::operation_aborted, 0, {}});
      default: co_return std::unexpected(poc::call_error{poc::errc::closed, 7, {}});
    }
  };
  auto lent = poc::lend(r.rt->rt, body);
  ASSERT_TRUE(lent.has_value());
  const poc::async_fn& fn = *lent;

  const poc::call_result v = call_and_await(fn, 1);
  ASSERT_TRUE(v.has_value()) << v.error().text;
  EXPECT_EQ(v->id, 101u);
  EXPECT_EQ(text(*v), "hi");

  const poc::call_result e = call_and_await(fn, 2);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, poc::errc::error);
  EXPECT_EQ(e.error().id, 418u);
  EXPECT_EQ(e.error().text, "teapot");

  const poc::call_result p = call_and_await(fn, 3);  // escaped the coroutine: POC_PANIC
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code, poc::errc::panic);
  EXPECT_EQ(p.error().text, "boom in the lent body");

  const poc::call_result s = call_and_await(fn, 4);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, poc::errc::shutdown);

  const poc::call_result c = call_and_await(fn, 5);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, asio::error::operation_aborted);

  const poc::call_result o = call_and_await(fn, 6);  // any other code: PANIC with its message
  ASSERT_FALSE(o.has_value());
  EXPECT_EQ(o.error().code, poc::errc::panic);
  EXPECT_EQ(o.error().id, 7u);
  EXPECT_EQ(o.error().text, poc::make_error_code(poc::errc::closed).message());

  EXPECT_EQ(bodies_on_runtime_thread.load(), 6);
}

TEST(CppLend, CancelReachesTheLentCoroutine) {
  cpp_rt r;
  std::promise<std::error_code> body_saw;
  std::atomic<int> bodies{0};
  auto lent = poc::lend(r.rt->rt, [&](poc::message) -> asio::awaitable<poc::call_result> {
    ++bodies;
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(never_ms));
    auto [ec] = co_await t.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    body_saw.set_value(ec);
    co_return poc::message{};
  });
  ASSERT_TRUE(lent.has_value());
  auto f = lent->call(1);
  ASSERT_TRUE(f.has_value());
  poll_probe p;
  ASSERT_EQ(poll_once(*f, p), POC_PENDING);
  EXPECT_EQ(f->vtable->cancel(f->handle), POC_OK);
  EXPECT_EQ(p.wake_count(), 1);
  poll_probe after;
  EXPECT_EQ(poll_once(*f, after), POC_CANCELLED);
  auto saw = body_saw.get_future();
  ASSERT_EQ(saw.wait_for(bound), std::future_status::ready)
      << "the lent coroutine was not cancelled within 10 s";
  EXPECT_EQ(saw.get(), asio::error::operation_aborted);
  EXPECT_EQ(bodies.load(), 1);
  EXPECT_EQ(f->vtable->release(f->handle), POC_OK);
}

TEST(CppLend, RejectsAnEmptyBodyAndAStoppingRuntime) {
  cpp_rt r;
  auto none = poc::lend(r.rt->rt, nullptr);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error(), poc::errc::invalid);
  auto body = [](poc::message m) -> asio::awaitable<poc::call_result> { co_return m; };
  auto early = poc::lend(r.rt->rt, body);
  ASSERT_TRUE(early.has_value());
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  auto late = poc::lend(r.rt->rt, body);
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error(), poc::errc::shutdown);
  auto call = early->call(1);  // made before the shutdown: its calls now answer SHUTDOWN
  ASSERT_FALSE(call.has_value());
  EXPECT_EQ(call.error(), poc::errc::shutdown);
}

// ================================================================================================
// sum_calls (a C++20 coroutine on the runtime's io_context)
// ================================================================================================

/// poc_cpp_sum_calls(r, f, first, count) into a future (asserts POC_OK).
poc_future sum_calls(cpp_rt& r, poc_async_fn f, std::uint64_t first, std::uint32_t count) {
  poc_future out{0, nullptr};
  EXPECT_EQ(poc_cpp_sum_calls(r.rt, f, first, count, &out), POC_OK);
  return out;
}

class CppSumCallsModes : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(CppSumCallsModes, SumsTheSquaresAndReleasesEverythingOnce) {
  cpp_rt r;
  const std::size_t live = poc::detail::cpp_future_count();
  auto counters = std::make_shared<fn_counters>();
  poc_future f = sum_calls(r, counting_fn::wrap(r.square(GetParam(), 1), counters), 1, 4);
  const auto d = drive(f);
  ASSERT_EQ(d.status, POC_OK);
  EXPECT_EQ(d.delivers, 1);
  EXPECT_EQ(d.id, 1u + 4 + 9 + 16);
  EXPECT_EQ(d.data, "summed 4 calls");
  EXPECT_EQ(d.wakes_on_test_thread, 0);
  // By the time the outcome is visible, the coroutine released every call's future and `f`.
  EXPECT_EQ(counters->get(&fn_counters::calls), 4);
  EXPECT_EQ(counters->get(&fn_counters::future_releases), 4);
  EXPECT_EQ(counters->get(&fn_counters::future_cancels), 0);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
  EXPECT_EQ(poc::detail::cpp_future_count(), live);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
}

INSTANTIATE_TEST_SUITE_P(AllModes, CppSumCallsModes,
                         ::testing::Values(POC_SQUARE_READY, POC_SQUARE_POSTED, POC_SQUARE_TIMER),
                         [](const ::testing::TestParamInfo<std::uint32_t>& i) {
                           return std::string(mode_name(i.param));
                         });

TEST(CppSumCalls, NoCallsIsZero) {
  cpp_rt r;
  auto counters = std::make_shared<fn_counters>();
  poc_future f = sum_calls(r, counting_fn::wrap(r.square(POC_SQUARE_READY), counters), 5, 0);
  const auto d = drive(f);
  ASSERT_EQ(d.status, POC_OK);
  EXPECT_EQ(d.id, 0u);
  EXPECT_EQ(d.data, "summed 0 calls");
  EXPECT_EQ(counters->get(&fn_counters::calls), 0);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
}

TEST(CppSumCalls, TheSumAndTheArgumentsWrap) {
  cpp_rt r;
  std::mutex m;
  std::vector<std::uint64_t> args;
  auto lent = poc::lend(r.rt->rt, [&](poc::message a) -> asio::awaitable<poc::call_result> {
    {
      std::lock_guard lock(m);
      args.push_back(a.id);
    }
    co_return poc::message{std::uint64_t{1} << 63, {}};
  });
  ASSERT_TRUE(lent.has_value());
  poc_future f = sum_calls(r, lent->detach(), max_x - 1, 3);
  const auto d = drive(f);
  ASSERT_EQ(d.status, POC_OK);
  EXPECT_EQ(d.id, std::uint64_t{1} << 63);  // 3 * 2^63 mod 2^64
  EXPECT_EQ(d.data, "summed 3 calls");
  std::lock_guard lock(m);
  EXPECT_EQ(args, (std::vector<std::uint64_t>{max_x - 1, max_x, 0}));
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
}

TEST(CppSumCalls, AnErrorPassesThroughWithItsCodeAndThePrefix) {
  cpp_rt r;
  auto counters = std::make_shared<fn_counters>();
  poc_future f =
      sum_calls(r, counting_fn::wrap(r.square(POC_SQUARE_READY), counters), 0xFFFF'FFFFu, 3);
  const auto d = drive(f);
  ASSERT_EQ(d.status, POC_ERROR);
  EXPECT_EQ(d.delivers, 1);
  EXPECT_EQ(d.id, 400u);
  EXPECT_EQ(d.data, "call 4294967296: overflow");
  EXPECT_EQ(counters->get(&fn_counters::calls), 2);  // it stopped at the first failure
  EXPECT_EQ(counters->get(&fn_counters::future_releases), 2);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
}

TEST(CppSumCalls, APanicPassesThroughWithThePrefix) {
  cpp_rt r;
  auto counters = std::make_shared<fn_counters>();
  poc_future f = sum_calls(r, counting_fn::wrap(r.square(POC_SQUARE_POSTED), counters), max_x, 2);
  const auto d = drive(f);
  ASSERT_EQ(d.status, POC_PANIC);
  EXPECT_EQ(d.data, "call 18446744073709551615: " + domain_text);
  EXPECT_EQ(counters->get(&fn_counters::calls), 1);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
  // The runtime keeps working.
  poc_future g = sum_calls(r, r.square(POC_SQUARE_POSTED), 2, 2);
  const auto e = drive(g);
  ASSERT_EQ(e.status, POC_OK);
  EXPECT_EQ(e.id, 4u + 9);
  EXPECT_EQ(g.vtable->release(g.handle), POC_OK);
}

TEST(CppSumCalls, APanicOfALentCoroutinePassesThrough) {
  cpp_rt r;
  auto lent = poc::lend(r.rt->rt, [](poc::message a) -> asio::awaitable<poc::call_result> {
    if (a.id == 2) throw std::logic_error("no twos");
    co_return a;
  });
  ASSERT_TRUE(lent.has_value());
  poc_future f = sum_calls(r, lent->detach(), 1, 3);
  const auto d = drive(f);
  ASSERT_EQ(d.status, POC_PANIC);
  EXPECT_EQ(d.data, "call 2: no twos");
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
}

TEST(CppSumCalls, ShutdownPassesThrough) {
  cpp_rt r;
  auto counters = std::make_shared<fn_counters>();
  counting_fn::script s;
  s.answer = {{2, POC_SHUTDOWN}};
  poc_future f = sum_calls(r, counting_fn::wrap(r.square(POC_SQUARE_READY), counters, s), 1, 3);
  const auto d = drive(f);
  ASSERT_EQ(d.status, POC_SHUTDOWN);
  EXPECT_EQ(d.delivers, 0);
  EXPECT_EQ(counters->get(&fn_counters::calls), 2);
  EXPECT_EQ(counters->get(&fn_counters::future_releases), 2);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
}

TEST(CppSumCalls, ACallThatCouldNotStartIsError502) {
  cpp_rt r;
  auto counters = std::make_shared<fn_counters>();
  counting_fn::script s;
  s.refuse = {{2, POC_SHUTDOWN}};
  poc_future f = sum_calls(r, counting_fn::wrap(r.square(POC_SQUARE_READY), counters, s), 1, 3);
  const auto d = drive(f);
  ASSERT_EQ(d.status, POC_ERROR);
  EXPECT_EQ(d.id, 502u);
  EXPECT_EQ(d.data, "call 2: could not start (SHUTDOWN)");
  EXPECT_EQ(counters->get(&fn_counters::calls), 1);
  EXPECT_EQ(counters->get(&fn_counters::refused), 1);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
}

TEST(CppSumCalls, ACallAnsweringCancelledOrInvalidIsError502) {
  cpp_rt r;
  for (poc_status answer : {POC_CANCELLED, POC_INVALID}) {
    auto counters = std::make_shared<fn_counters>();
    counting_fn::script s;
    s.answer = {{1, answer}};
    poc_future f = sum_calls(r, counting_fn::wrap(r.square(POC_SQUARE_READY), counters, s), 1, 3);
    const auto d = drive(f);
    ASSERT_EQ(d.status, POC_ERROR) << poc_status_str(answer);
    EXPECT_EQ(d.id, 502u);
    EXPECT_EQ(d.data, std::string("call 1: answered ") + poc_status_str(answer));
    EXPECT_EQ(counters->get(&fn_counters::calls), 1);
    EXPECT_EQ(counters->get(&fn_counters::future_releases), 1);
    EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
    EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
  }
}

/// Starts sum_calls over a never-finishing call and waits (bounded) until that call is in flight
/// (its future was polled by the coroutine). Returns the outer future and its first PENDING probe.
struct in_flight_sum {
  explicit in_flight_sum(cpp_rt& r)
      : counters(std::make_shared<fn_counters>()),
        outer(sum_calls(r, counting_fn::wrap(r.square(POC_SQUARE_TIMER, never_ms), counters), 1,
                        3)) {
    EXPECT_EQ(poll_once(outer, first_poll), POC_PENDING);
    EXPECT_TRUE(counters->wait_for(&fn_counters::future_polls, 1, "polls of call 1"));
  }
  std::shared_ptr<fn_counters> counters;
  poc_future outer;
  poll_probe first_poll;
};

/// The call in flight was cancelled, then released; no other call started; `f` released once.
void expect_call_cancelled_then_released(fn_counters& c) {
  ASSERT_TRUE(c.wait_for(&fn_counters::fn_releases, 1, "releases of f"));
  EXPECT_EQ(c.get(&fn_counters::calls), 1);
  EXPECT_EQ(c.get(&fn_counters::future_cancels), 1);
  EXPECT_EQ(c.get(&fn_counters::future_releases), 1);
  EXPECT_GE(c.index_of("cancel 1"), 0);
  EXPECT_LT(c.index_of("cancel 1"), c.index_of("release 1"));
  EXPECT_EQ(c.get(&fn_counters::fn_releases), 1);
}

TEST(CppSumCalls, CancelDuringACallCancelsThenReleasesIt) {
  cpp_rt r;
  in_flight_sum s(r);
  EXPECT_EQ(s.outer.vtable->cancel(s.outer.handle), POC_OK);
  EXPECT_EQ(s.first_poll.wake_count(), 1);
  poll_probe after;
  EXPECT_EQ(poll_once(s.outer, after), POC_CANCELLED);
  expect_call_cancelled_then_released(*s.counters);
  EXPECT_EQ(s.outer.vtable->release(s.outer.handle), POC_OK);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(s.first_poll.wake_count(), 1);
  EXPECT_EQ(after.wake_count() + after.delivers, 0);
}

TEST(CppSumCalls, ReleaseDuringACallCancelsThenReleasesIt) {
  cpp_rt r;
  const std::size_t live = poc::detail::cpp_future_count();
  {
    in_flight_sum s(r);
    EXPECT_EQ(s.outer.vtable->release(s.outer.handle), POC_OK);
    EXPECT_EQ(s.first_poll.wake_count(), 1);
    expect_call_cancelled_then_released(*s.counters);
  }
  EXPECT_EQ(poc::detail::cpp_future_count(), live);
}

TEST(CppSumCalls, CancelBeforeTheFirstPoll) {
  cpp_rt r;
  auto counters = std::make_shared<fn_counters>();
  io_gate gate(r);  // the coroutine cannot start before the cancel
  poc_future f =
      sum_calls(r, counting_fn::wrap(r.square(POC_SQUARE_TIMER, never_ms), counters), 1, 3);
  EXPECT_EQ(f.vtable->cancel(f.handle), POC_OK);
  poll_probe p;
  EXPECT_EQ(poll_once(f, p), POC_CANCELLED);
  gate.open();
  ASSERT_TRUE(counters->wait_for(&fn_counters::fn_releases, 1, "releases of f"));
  // At most the first call started, and it was cancelled and released: none ran to its end.
  const int calls = counters->get(&fn_counters::calls);
  EXPECT_LE(calls, 1);
  EXPECT_EQ(counters->get(&fn_counters::future_cancels), calls);
  EXPECT_EQ(counters->get(&fn_counters::future_releases), calls);
  EXPECT_EQ(f.vtable->release(f.handle), POC_OK);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(p.wake_count() + p.delivers, 0);
  EXPECT_EQ(counters->get(&fn_counters::fn_releases), 1);
}

TEST(CppSumCalls, ShutdownDuringACallIsShutdown) {
  // Several sums at once: shutdown reaches their exported futures and the awaits of their calls
  // in an order that depends on addresses; every order must answer SHUTDOWN.
  cpp_rt r;
  std::vector<std::unique_ptr<in_flight_sum>> sums;
  for (int i = 0; i < 32; ++i) sums.push_back(std::make_unique<in_flight_sum>(r));
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  for (auto& s : sums) {
    EXPECT_EQ(s->first_poll.wake_count(), 1);
    poll_probe after;
    EXPECT_EQ(poll_once(s->outer, after), POC_SHUTDOWN) << after.data;
    EXPECT_EQ(after.delivers, 0);
    // Shutdown joined the runtime's thread: the coroutine has ended and released everything.
    EXPECT_EQ(s->counters->get(&fn_counters::calls), 1);
    EXPECT_EQ(s->counters->get(&fn_counters::future_releases), 1);
    EXPECT_EQ(s->counters->get(&fn_counters::fn_releases), 1);
    EXPECT_EQ(s->outer.vtable->release(s->outer.handle), POC_OK);
  }
}

TEST(CppSumCalls, RawAbiReleasesTheFunctionOnceOnEveryRefusal) {
  cpp_rt r;
  poc_future out{0, nullptr};
  {
    auto c = std::make_shared<fn_counters>();
    EXPECT_EQ(poc_cpp_sum_calls(nullptr, counting_fn::wrap({}, c), 1, 1, &out), POC_INVALID);
    EXPECT_EQ(c->get(&fn_counters::fn_releases), 1) << "NULL rt";
  }
  {
    auto c = std::make_shared<fn_counters>();
    EXPECT_EQ(poc_cpp_sum_calls(r.rt, counting_fn::wrap({}, c), 1, 1, nullptr), POC_INVALID);
    EXPECT_EQ(c->get(&fn_counters::fn_releases), 1) << "NULL out";
  }
  {
    auto c = std::make_shared<fn_counters>();
    poc_async_fn f = counting_fn::wrap({}, c);
    f.call = nullptr;
    EXPECT_EQ(poc_cpp_sum_calls(r.rt, f, 1, 1, &out), POC_INVALID);
    EXPECT_EQ(c->get(&fn_counters::fn_releases), 1) << "NULL f.call";
  }
  {
    auto c = std::make_shared<fn_counters>();
    poc_async_fn f = counting_fn::wrap({}, c);
    const auto release = f.release;
    f.release = nullptr;  // cannot be given back by sum_calls: the test does it
    EXPECT_EQ(poc_cpp_sum_calls(r.rt, f, 1, 1, &out), POC_INVALID);
    EXPECT_EQ(c->get(&fn_counters::fn_releases), 0) << "NULL f.release";
    release(f.context);
  }
  EXPECT_EQ(out.vtable, nullptr);
  ASSERT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  {
    auto c = std::make_shared<fn_counters>();
    EXPECT_EQ(poc_cpp_sum_calls(r.rt, counting_fn::wrap({}, c), 1, 1, &out), POC_SHUTDOWN);
    EXPECT_EQ(c->get(&fn_counters::fn_releases), 1) << "after shutdown";
    EXPECT_EQ(c->get(&fn_counters::calls) + c->get(&fn_counters::refused), 0);
  }
  EXPECT_EQ(out.vtable, nullptr);
}

}  // namespace
