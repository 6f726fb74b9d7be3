// The Asio import adapter (poc/port.hpp) over a scriptable fake exporter (fake_port.hpp) that
// forces each ordering the contract allows, and over the C++ runtime's own channels.
//
// Rules: every wait is bounded and fails with a message; no sleeps are used to synchronise;
// completions are counted and asserted to happen exactly once.
#include "async_test_support.hpp"
#include "fake_port.hpp"

#include <poc/bridge.h>
#include <poc/detail/stop_registry.hpp>
#include <poc/error.hpp>
#include <poc/future.hpp>
#include <poc/message.hpp>
#include <poc/port.hpp>
#include <poc/runtime.hpp>

#include <asio/bind_allocator.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

namespace {

using namespace std::chrono_literals;
using poc::test::fake_port;

using namespace poc::test;

poc::message make_msg(std::uint64_t id, std::size_t len = 16) {
  poc::message m(id, std::vector<std::uint8_t>(len));
  poc::fill_pattern(id, m.payload);
  return m;
}

// Runs `io` until `pred()` holds (bounded).
template <typename Pred>
::testing::AssertionResult run_until(asio::io_context& io, Pred pred) {
  io.restart();
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (io.stopped()) io.restart();
    io.run_one_for(10ms);
    if (std::chrono::steady_clock::now() > deadline)
      return ::testing::AssertionFailure() << "condition not reached within 10 s";
  }
  return ::testing::AssertionSuccess();
}


// Leaves `msgs` in rx's stash (in that order) the way contract rule 5 describes: receives whose
// cancel is requested (the fake only records it) and which the exporter then completes, in
// issue order, with POC_OK and a message. Runs `io` until their handlers ran; each must get
// operation_aborted and no message.
::testing::AssertionResult stash_via_cancel(fake_port& fake, asio::io_context& io,
                                            poc::port_receiver& rx,
                                            const std::vector<poc::message>& msgs) {
  if (fake.pending_count() != 0) return ::testing::AssertionFailure() << "ops already pending";
  const std::size_t n = msgs.size();
  std::vector<asio::cancellation_signal> signals(n);
  std::vector<int> calls(n, 0);
  std::vector<std::error_code> results(n);
  std::vector<poc::message> got(n, poc::message(1, {1}));
  for (std::size_t i = 0; i < n; ++i)
    rx.async_receive(asio::bind_cancellation_slot(signals[i].slot(),
                                                  [&, i](std::error_code ec, poc::message g) {
                                                    ++calls[i];
                                                    results[i] = ec;
                                                    got[i] = std::move(g);
                                                  }));
  auto ids = fake.wait_pending(n);
  if (!ids || ids->size() != n)
    return ::testing::AssertionFailure() << "the receives did not reach the exporter";
  for (auto& s : signals) s.emit(asio::cancellation_type::terminal);
  std::thread foreign([&] {
    for (std::size_t i = 0; i < n; ++i) fake.complete((*ids)[i], POC_OK, &msgs[i]);
  });
  foreign.join();
  auto ran = run_to_completion(io);
  if (!ran) return ran;
  for (std::size_t i = 0; i < n; ++i) {
    if (calls[i] != 1)
      return ::testing::AssertionFailure() << "handler ran " << calls[i] << " times";
    if (results[i] != asio::error::operation_aborted)
      return ::testing::AssertionFailure() << "handler got " << results[i].message();
    if (got[i] != poc::message()) return ::testing::AssertionFailure() << "handler got a message";
  }
  return ::testing::AssertionSuccess();
}

// Sum of the contract checksums of messages 0..n-1 as make_msg(i, len) builds them.
std::uint64_t expected_checksum(std::uint64_t n, std::size_t len) {
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < n; ++i) sum += poc::checksum(make_msg(i, len));
  return sum;
}

// What a consumer that receives with a timeout saw: messages in order, once each.
struct timeout_loop_result {
  std::uint64_t received = 0;  // messages taken
  std::uint64_t in_order = 0;  // of which had the next expected id and pattern
  std::uint64_t checksum = 0;  // wrapping sum of their checksums
  std::uint64_t timeouts = 0;  // rounds the timer won
  std::uint64_t stashed = 0;   // of which left a message in the stash (the race happened)
  std::uint64_t loser_had_message = 0;  // parallel_group: the cancelled receive still carried one
};

// One consumer round: `rx.async_receive(...) || timer(0)` (awaitable operators). Returns the
// message if the receive won.
asio::awaitable<std::optional<poc::message>> receive_or_timeout(poc::port_receiver& rx,
                                                                  asio::steady_timer& timer) {
  using namespace asio::experimental::awaitable_operators;
  timer.expires_after(std::chrono::nanoseconds(0));
  auto r = co_await (rx.async_receive(asio::use_awaitable) ||
                     timer.async_wait(asio::use_awaitable));
  if (r.index() == 0) co_return std::move(std::get<0>(r));
  co_return std::nullopt;
}

// The same round with experimental::make_parallel_group(...).async_wait(wait_for_one(), ...):
// the loser's result is visible here, so the test can check that a cancelled receive never
// carries a message (a composition would discard it).
asio::awaitable<std::optional<poc::message>> receive_or_timeout_group(poc::port_receiver& rx,
                                                                        asio::steady_timer& timer,
                                                                        timeout_loop_result& res) {
  timer.expires_after(std::chrono::nanoseconds(0));
  auto [order, rx_ec, msg, timer_ec] =
      co_await asio::experimental::make_parallel_group(rx.async_receive(asio::experimental::deferred),
                                                       timer.async_wait(asio::experimental::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  (void)timer_ec;
  if (order[0] == 0) {
    if (rx_ec) throw std::system_error(rx_ec, "receive");
    co_return std::move(msg);
  }
  if (!rx_ec || msg != poc::message()) ++res.loser_had_message;
  co_return std::nullopt;
}

// Receives `n` messages (ids 0..n-1 of make_msg(i, len)) with the timeout pattern, in a loop.
asio::awaitable<timeout_loop_result> timeout_loop(poc::port_receiver& rx, std::uint64_t n,
                                                  std::size_t len, bool use_group) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timeout_loop_result res;
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (res.received < n && std::chrono::steady_clock::now() < deadline) {
    // (No co_await inside ?: — GCC 12 destroys such a temporary twice.)
    std::optional<poc::message> m;
    if (use_group)
      m = co_await receive_or_timeout_group(rx, timer, res);
    else
      m = co_await receive_or_timeout(rx, timer);
    if (!m) {
      ++res.timeouts;
      res.stashed += rx.stashed() != 0;
      continue;
    }
    res.in_order += (*m == make_msg(res.received, len));
    res.checksum += poc::checksum(*m);
    ++res.received;
  }
  co_return res;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Fast path, immediate errors, plain callbacks
// ---------------------------------------------------------------------------------------------

TEST(ImportAdapter, SendFastPathIsPostedNotInvokedInline) {
  fake_port fake;
  fake.send_mode = fake_port::mode::ok;
  asio::io_context io;
  poc::port_sender tx(io.get_executor(), fake.sender());

  int calls = 0;
  bool on_io_thread = false;
  std::error_code result = poc::errc::panic;
  tx.async_send(make_msg(7), [&](std::error_code ec) {
    ++calls;
    result = ec;
    on_io_thread = io.get_executor().running_in_this_thread();
  });
  EXPECT_EQ(calls, 0) << "the handler ran inside the initiating function";
  EXPECT_EQ(fake.send_calls, 1);
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(result);
  EXPECT_TRUE(on_io_thread);
  ASSERT_EQ(fake.sent().size(), 1u);
  EXPECT_EQ(fake.sent()[0], make_msg(7));
}

TEST(ImportAdapter, ReceiveFastPathDeliversACopy) {
  fake_port fake;
  fake.recv_mode = fake_port::mode::ok;
  fake.push(make_msg(42, 100));
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());

  int calls = 0;
  poc::message got;
  std::error_code result = poc::errc::panic;
  rx.async_receive([&](std::error_code ec, poc::message m) {
    ++calls;
    result = ec;
    got = std::move(m);
  });
  EXPECT_EQ(calls, 0) << "the handler ran inside the initiating function";
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(result);
  // The fake overwrote its buffer after deliver returned: equality proves the adapter copied.
  EXPECT_EQ(got, make_msg(42, 100));
}

TEST(ImportAdapter, ImmediateErrorsMapToErrorCodes) {
  fake_port fake;
  fake.send_mode = fake_port::mode::fail;
  fake.recv_mode = fake_port::mode::fail;
  asio::io_context io;
  poc::port_sender tx(io.get_executor(), fake.sender());
  poc::port_receiver rx(io.get_executor(), fake.receiver());

  const poc_status statuses[] = {POC_CLOSED, POC_SHUTDOWN, POC_INVALID, POC_PANIC};
  for (poc_status s : statuses) {
    fake.fail_status = s;
    int send_calls = 0, recv_calls = 0;
    std::error_code send_ec, recv_ec;
    poc::message recv_msg(1, {1});
    tx.async_send(make_msg(1), [&](std::error_code ec) {
      ++send_calls;
      send_ec = ec;
    });
    rx.async_receive([&](std::error_code ec, poc::message m) {
      ++recv_calls;
      recv_ec = ec;
      recv_msg = std::move(m);
    });
    EXPECT_EQ(send_calls + recv_calls, 0);
    ASSERT_TRUE(run_to_completion(io));
    EXPECT_EQ(send_calls, 1);
    EXPECT_EQ(recv_calls, 1);
    EXPECT_EQ(send_ec, poc::to_error_code(s)) << poc_status_str(s);
    EXPECT_EQ(recv_ec, poc::to_error_code(s)) << poc_status_str(s);
    EXPECT_EQ(poc::to_status(recv_ec), s);
    EXPECT_EQ(recv_msg, poc::message()) << "a failed receive carries an empty message";
  }
}

TEST(ImportAdapter, EmptyObjectsCompleteWithInvalid) {
  asio::io_context io;
  poc::port_sender tx(io.get_executor());
  poc::port_receiver rx(io.get_executor());
  EXPECT_FALSE(tx.has_port());
  int calls = 0;
  tx.async_send(make_msg(1), [&](std::error_code ec) {
    ++calls;
    EXPECT_EQ(ec, poc::errc::invalid);
  });
  rx.async_receive([&](std::error_code ec, poc::message) {
    ++calls;
    EXPECT_EQ(ec, poc::errc::invalid);
  });
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(tx.try_send(make_msg(1)), std::unexpected(poc::errc::invalid));
  EXPECT_EQ(rx.try_receive().error(), poc::errc::invalid);
  EXPECT_EQ(tx.close(), std::unexpected(poc::errc::invalid));
  EXPECT_EQ(tx.release(), std::unexpected(poc::errc::invalid));
}

TEST(ImportAdapter, RejectsPortsWithABadVtable) {
  asio::io_context io;
  EXPECT_FALSE(poc::is_usable(poc_sender{1, nullptr}));
  EXPECT_THROW(poc::port_sender(io.get_executor(), poc_sender{1, nullptr}), std::system_error);
  fake_port fake;
  poc_receiver_vtable wrong = *fake.receiver().vtable;
  wrong.abi_version = POC_ABI_VERSION + 1;
  EXPECT_FALSE(poc::is_usable(poc_receiver{fake.handle(), &wrong}));
  try {
    poc::port_receiver rx(io.get_executor(), poc_receiver{fake.handle(), &wrong});
    FAIL() << "a vtable of another ABI version was accepted";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), poc::errc::invalid);
  }
  poc_receiver_vtable small = *fake.receiver().vtable;
  small.size = sizeof(poc_receiver_vtable) - 8;
  EXPECT_FALSE(poc::is_usable(poc_receiver{fake.handle(), &small}));
  // The right version and size with a NULL function is a bad vtable too (found by fuzz/).
  poc_receiver_vtable no_recv = *fake.receiver().vtable;
  no_recv.recv = nullptr;
  EXPECT_FALSE(poc::is_usable(poc_receiver{fake.handle(), &no_recv}));
  EXPECT_THROW(poc::port_receiver(io.get_executor(), poc_receiver{fake.handle(), &no_recv}),
               std::system_error);
  poc_sender_vtable no_clone = *fake.sender().vtable;
  no_clone.clone = nullptr;
  EXPECT_FALSE(poc::is_usable(poc_sender{fake.handle(), &no_clone}));
  EXPECT_THROW(poc::port_sender(io.get_executor(), poc_sender{fake.handle(), &no_clone}),
               std::system_error);
  constexpr auto answer_ok = +[](std::uint64_t) -> poc_status { return POC_OK; };
  const poc_future_vtable no_poll{POC_ABI_VERSION, sizeof(poc_future_vtable), nullptr, answer_ok,
                                  answer_ok};
  EXPECT_FALSE(poc::is_usable(poc_future{1, &no_poll}));
  EXPECT_EQ(fake.release_calls, 0) << "a rejected port must not be taken (nor released)";
}

TEST(ImportAdapter, WorksWithAConcreteExecutorType) {
  fake_port fake;
  fake.recv_mode = fake_port::mode::ok;
  fake.push(make_msg(6));
  asio::io_context io;
  using strand_receiver = poc::basic_port_receiver<asio::strand<asio::io_context::executor_type>>;
  auto strand = asio::make_strand(io);
  strand_receiver rx(strand, fake.receiver());
  int calls = 0;
  rx.async_receive([&](std::error_code ec, poc::message m) {  // no associated executor: the strand
    ++calls;
    EXPECT_FALSE(ec);
    EXPECT_EQ(m, make_msg(6));
    EXPECT_TRUE(strand.running_in_this_thread());
  });
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(poc::to_status(std::error_code(asio::error::operation_aborted)), POC_CANCELLED);
  EXPECT_EQ(poc::to_status(poc::errc::closed), POC_CLOSED);
  EXPECT_EQ(poc::to_status(std::error_code()), POC_OK);
}

// ---------------------------------------------------------------------------------------------
// PENDING completions: executor, work, early completion
// ---------------------------------------------------------------------------------------------

TEST(ImportAdapter, PendingCompletedFromAForeignThreadRunsOnTheHandlersStrand) {
  fake_port fake;
  asio::io_context io;
  auto strand = asio::make_strand(io);
  poc::port_receiver rx(io.get_executor(), fake.receiver());

  int calls = 0;
  bool on_strand = false;
  std::thread::id handler_thread;
  poc::message got;
  rx.async_receive(asio::bind_executor(strand, [&](std::error_code ec, poc::message m) {
    ++calls;
    EXPECT_FALSE(ec);
    got = std::move(m);
    on_strand = strand.running_in_this_thread();
    handler_thread = std::this_thread::get_id();
  }));
  auto ids = fake.wait_pending(1);
  ASSERT_TRUE(ids) << "the receive did not reach the exporter";
  const poc::message sent = make_msg(9, 33);
  std::thread::id foreign_id;
  std::thread foreign([&] {
    foreign_id = std::this_thread::get_id();
    fake.complete(ids->front(), POC_OK, &sent);
  });
  // The op holds work on the io_context: run() cannot return before the handler ran.
  ASSERT_TRUE(run_to_completion(io));
  foreign.join();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(on_strand) << "the handler did not run on its associated strand";
  EXPECT_EQ(handler_thread, std::this_thread::get_id());
  EXPECT_NE(handler_thread, foreign_id);
  EXPECT_EQ(got, sent);
}

// A new-style executor over an io_context that counts its own outstanding work (its copies made
// with outstanding_work.tracked, which also hold work on the io_context) and records every copy
// destroyed on the `foreign` thread once that count is 0: from then on the io_context may run
// dry, stop and be destroyed, so such a copy (a strand's, say, whose destructor locks the strand
// service) would touch a destroyed context.
struct work_probe {
  std::atomic<int> work{0};
  std::atomic<int> late_destructions{0};
  std::atomic<std::thread::id> foreign{};
};

class probe_executor {
 public:
  probe_executor(asio::io_context::executor_type inner, std::shared_ptr<work_probe> probe,
                 bool tracked = false) noexcept
      : inner_(inner), probe_(std::move(probe)) {
    if (tracked) track();
  }
  probe_executor(const probe_executor& o) noexcept : inner_(o.inner_), probe_(o.probe_) {
    if (o.work_) track();
  }
  // Moved from, it is empty (as Asio's strands and any_io_executor are): nothing left to destroy.
  probe_executor(probe_executor&& o) noexcept
      : inner_(o.inner_), probe_(std::move(o.probe_)), work_(std::move(o.work_)) {
    o.work_.reset();
  }
  probe_executor& operator=(const probe_executor& o) noexcept {
    if (this != &o) {
      if (probe_ != nullptr) untrack();
      inner_ = o.inner_;
      probe_ = o.probe_;
      if (o.work_) track();
    }
    return *this;
  }
  ~probe_executor() {
    if (probe_ == nullptr) return;  // moved from
    if (std::this_thread::get_id() == probe_->foreign.load() && probe_->work.load() == 0)
      ++probe_->late_destructions;
    untrack();
  }

  asio::io_context& query(asio::execution::context_t) const noexcept { return inner_.context(); }
  probe_executor require(asio::execution::blocking_t::never_t) const noexcept { return *this; }
  probe_executor require(asio::execution::outstanding_work_t::tracked_t) const noexcept {
    return probe_executor(inner_, probe_, true);
  }
  probe_executor require(asio::execution::outstanding_work_t::untracked_t) const noexcept {
    return probe_executor(inner_, probe_, false);
  }
  template <typename F>
  void execute(F&& f) const {
    asio::post(inner_, std::forward<F>(f));
  }
  friend bool operator==(const probe_executor& a, const probe_executor& b) noexcept {
    return a.inner_ == b.inner_ && a.probe_ == b.probe_;
  }
  friend bool operator!=(const probe_executor& a, const probe_executor& b) noexcept {
    return !(a == b);
  }

 private:
  using tracked_inner = std::decay_t<decltype(asio::prefer(
      std::declval<asio::io_context::executor_type>(), asio::execution::outstanding_work.tracked))>;
  void track() noexcept {
    ++probe_->work;
    work_.emplace(asio::prefer(inner_, asio::execution::outstanding_work.tracked));
  }
  void untrack() noexcept {
    if (!work_) return;
    work_.reset();
    --probe_->work;
  }

  asio::io_context::executor_type inner_;
  std::shared_ptr<work_probe> probe_;
  std::optional<tracked_inner> work_;
};

TEST(ImportAdapter, ACompletionFromAForeignThreadKeepsNoExecutorCopyPastItsWork) {
  // Found by fuzz/ (UBSan, then use-after-free): a C++ agent on runtime A receiving from runtime
  // B's port; A was freed while B's thread was still in the import op's completion. The op's
  // executor_work_guard released the work first and destroyed its copy of the handler's executor
  // (A's strand) after it: A's io_context ran dry and was destroyed in between.
  fake_port fake;
  asio::io_context io;
  auto probe = std::make_shared<work_probe>();
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  poc::port_sender tx(io.get_executor(), fake.sender());
  int calls = 0;
  rx.async_receive(asio::bind_executor(probe_executor(io.get_executor(), probe),
                                       [&](std::error_code ec, poc::message m) {
                                         ++calls;
                                         EXPECT_FALSE(ec);
                                         EXPECT_EQ(m, make_msg(4));
                                       }));
  tx.async_send(make_msg(5), asio::bind_executor(probe_executor(io.get_executor(), probe),
                                                 [&](std::error_code ec) {
                                                   ++calls;
                                                   EXPECT_FALSE(ec);
                                                 }));
  auto ids = fake.wait_pending(2);
  ASSERT_TRUE(ids) << "the ops did not reach the exporter";
  const poc::message sent = make_msg(4);
  std::thread foreign([&] {
    probe->foreign = std::this_thread::get_id();
    for (poc_op_id id : *ids) fake.complete(id, POC_OK, &sent);
  });
  foreign.join();  // both completions were submitted on the foreign thread; io has not run yet
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(probe->late_destructions.load(), 0)
      << "the completing thread destroyed a copy of the handler's executor after releasing the "
         "work that kept its context alive";
  EXPECT_EQ(probe->work.load(), 0);
}

TEST(ImportAdapter, HandlerBoundToASecondContextRunsThereAndKeepsItBusy) {
  fake_port fake;
  asio::io_context io1;  // the port's default executor: never run in this test
  asio::io_context io2;
  poc::port_sender tx(io1.get_executor(), fake.sender());

  int calls = 0;
  bool on_io2 = false;
  tx.async_send(make_msg(3), asio::bind_executor(io2, [&](std::error_code ec) {
    ++calls;
    EXPECT_FALSE(ec);
    on_io2 = io2.get_executor().running_in_this_thread();
  }));
  auto ids = fake.wait_pending(1);
  ASSERT_TRUE(ids);
  // The op registered with io2's stop registry, not io1's.
  poc::detail::request_stop_all(io1);
  EXPECT_EQ(fake.cancel_calls, 0);

  std::promise<void> io2_running;
  asio::post(io2, [&] { io2_running.set_value(); });
  std::thread foreign([&] {
    io2_running.get_future().wait();  // io2.run() is in progress: only the work guard keeps it
    fake.complete(ids->front(), POC_OK);
  });
  ASSERT_TRUE(run_to_completion(io2));
  foreign.join();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(on_io2);
}

TEST(ImportAdapter, CompletionBeforeSendReturnsOnTheSameThreadIsStillPosted) {
  fake_port fake;
  fake.send_mode = fake_port::mode::inline_complete;
  fake.recv_mode = fake_port::mode::inline_complete;
  fake.push(make_msg(5));
  asio::io_context io;
  poc::port_sender tx(io.get_executor(), fake.sender());
  poc::port_receiver rx(io.get_executor(), fake.receiver());

  int send_calls = 0, recv_calls = 0;
  tx.async_send(make_msg(4), [&](std::error_code ec) {
    ++send_calls;
    EXPECT_FALSE(ec);
  });
  rx.async_receive([&](std::error_code ec, poc::message m) {
    ++recv_calls;
    EXPECT_FALSE(ec);
    EXPECT_EQ(m, make_msg(5));
  });
  EXPECT_EQ(fake.completed_ok, 2) << "the fake should have completed both ops already";
  EXPECT_EQ(send_calls + recv_calls, 0) << "a handler ran inside the initiating function";
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(send_calls, 1);
  EXPECT_EQ(recv_calls, 1);
}

TEST(ImportAdapter, CompletionBeforeSendReturnsOnAnotherThread) {
  fake_port fake;
  fake.send_mode = fake_port::mode::thread_complete;
  fake.recv_mode = fake_port::mode::thread_complete;
  fake.early_status = POC_CLOSED;
  asio::io_context io;
  poc::port_sender tx(io.get_executor(), fake.sender());
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  int calls = 0;
  tx.async_send(make_msg(4), [&](std::error_code ec) {
    ++calls;
    EXPECT_EQ(ec, poc::errc::closed);
  });
  rx.async_receive([&](std::error_code ec, poc::message) {
    ++calls;
    EXPECT_EQ(ec, poc::errc::closed);
  });
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(calls, 2);
}

TEST(ImportAdapter, OpStateUsesTheHandlersAllocatorAndIsFreedOnce) {
  fake_port fake;
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  alloc_stats stats;
  int calls = 0;
  rx.async_receive(asio::bind_allocator(counting_allocator<void>(&stats),
                                        [&](std::error_code, poc::message) { ++calls; }));
  auto ids = fake.wait_pending(1);
  ASSERT_TRUE(ids);
  EXPECT_EQ(stats.allocs, 1) << "the op state was not allocated with the handler's allocator";
  EXPECT_EQ(stats.deallocs, 0);
  const poc::message m = make_msg(1);
  std::thread foreign([&] { fake.complete(ids->front(), POC_OK, &m); });
  ASSERT_TRUE(run_to_completion(io));
  foreign.join();
  EXPECT_EQ(calls, 1);
  EXPECT_GE(stats.allocs, 1);
  EXPECT_EQ(stats.allocs, stats.deallocs) << "leak or double free through the handler allocator";
}

// ---------------------------------------------------------------------------------------------
// Completion tokens
// ---------------------------------------------------------------------------------------------

TEST(ImportAdapter, UseAwaitableFromACoroutine) {
  fake_port fake;  // send: fast path; receive: PENDING completed from a foreign thread
  fake.send_mode = fake_port::mode::ok;
  asio::io_context io;
  poc::port_sender tx(io.get_executor(), fake.sender());
  poc::port_receiver rx(io.get_executor(), fake.receiver());

  int done = 0;
  std::exception_ptr failure;
  poc::message got;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await tx.async_send(make_msg(1), asio::use_awaitable);
        got = co_await rx.async_receive(asio::use_awaitable);
        try {
          co_await rx.async_receive(asio::use_awaitable);  // completes with CLOSED: throws
        } catch (const std::system_error& e) {
          EXPECT_EQ(e.code(), poc::errc::closed);
          ++done;
        }
      },
      [&](std::exception_ptr e) {
        failure = e;
        ++done;
      });
  const poc::message m = make_msg(2);
  std::thread foreign([&] {
    auto first = fake.wait_pending(1);
    if (!first) return;
    fake.complete(first->front(), POC_OK, &m);
    auto second = fake.wait_pending(1);
    if (second) fake.complete(second->front(), POC_CLOSED);
  });
  ASSERT_TRUE(run_to_completion(io));
  foreign.join();
  EXPECT_FALSE(failure);
  EXPECT_EQ(done, 2);
  EXPECT_EQ(got, m);
  EXPECT_EQ(fake.sent().size(), 1u);
}

TEST(ImportAdapter, UseFuture) {
  fake_port fake;
  asio::io_context io;  // no thread runs it: use_future handlers need no executor
  poc::port_sender tx(io.get_executor(), fake.sender());
  poc::port_receiver rx(io.get_executor(), fake.receiver());

  std::future<void> sent = tx.async_send(make_msg(1), asio::use_future);
  std::future<poc::message> received = rx.async_receive(asio::use_future);
  auto ids = fake.wait_pending(2);
  ASSERT_TRUE(ids);
  const poc::message m = make_msg(8);
  std::thread foreign([&] {
    fake.complete((*ids)[0], POC_OK);
    fake.complete((*ids)[1], POC_OK, &m);
  });
  ASSERT_TRUE(ready(sent));
  ASSERT_TRUE(ready(received));
  foreign.join();
  EXPECT_NO_THROW(sent.get());
  EXPECT_EQ(received.get(), m);

  fake.recv_mode = fake_port::mode::fail;
  fake.fail_status = POC_SHUTDOWN;
  std::future<poc::message> failed = rx.async_receive(asio::use_future);
  ASSERT_TRUE(ready(failed));
  try {
    failed.get();
    FAIL() << "expected a system_error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), poc::errc::shutdown);
  }
}

TEST(ImportAdapter, DeferredStartsOnlyWhenInvoked) {
  fake_port fake;
  fake.send_mode = fake_port::mode::ok;
  asio::io_context io;
  poc::port_sender tx(io.get_executor(), fake.sender());
  auto op = tx.async_send(make_msg(11), asio::experimental::deferred);
  EXPECT_EQ(fake.send_calls, 0) << "a deferred operation started before it was invoked";
  int calls = 0;
  std::move(op)([&](std::error_code ec) {
    ++calls;
    EXPECT_FALSE(ec);
  });
  EXPECT_EQ(fake.send_calls, 1);
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(calls, 1);
}

TEST(ImportAdapter, AsTupleReportsErrorsWithoutThrowing) {
  fake_port fake;
  fake.recv_mode = fake_port::mode::fail;
  fake.fail_status = POC_CLOSED;
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  int done = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto [ec, m] = co_await rx.async_receive(asio::experimental::as_tuple(asio::use_awaitable));
        EXPECT_EQ(ec, poc::errc::closed);
        EXPECT_EQ(m, poc::message());
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
// try_send / try_receive / close / release / clone / moves
// ---------------------------------------------------------------------------------------------

TEST(ImportAdapter, TrySendAndTryReceive) {
  fake_port fake;
  asio::io_context io;
  poc::port_sender tx(io.get_executor(), fake.sender());
  poc::port_receiver rx(io.get_executor(), fake.receiver());

  EXPECT_TRUE(tx.try_send(make_msg(1)).has_value());
  fake.try_send_status = POC_FULL;
  EXPECT_EQ(tx.try_send(make_msg(2)), std::unexpected(poc::errc::full));
  fake.try_send_status = POC_CLOSED;
  EXPECT_EQ(tx.try_send(make_msg(3)), std::unexpected(poc::errc::closed));
  ASSERT_EQ(fake.sent().size(), 1u);
  EXPECT_EQ(fake.sent()[0], make_msg(1));

  EXPECT_EQ(rx.try_receive().error(), poc::errc::empty);
  fake.push(make_msg(4, 70));
  auto got = rx.try_receive();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, make_msg(4, 70));
  EXPECT_EQ(fake.try_send_calls, 3);
  EXPECT_EQ(fake.try_recv_calls, 2);
}

TEST(ImportAdapter, CloseReleaseDetachCloneAndMoves) {
  fake_port fake;
  asio::io_context io;
  {
    poc::port_sender tx(io.get_executor(), fake.sender());
    EXPECT_TRUE(tx.close().has_value());
    EXPECT_EQ(fake.close_calls, 1);
    auto copy = tx.clone();
    ASSERT_TRUE(copy.has_value());
    EXPECT_EQ(fake.clone_calls, 1);
    poc::port_sender moved(std::move(tx));
    EXPECT_FALSE(tx.has_port());
    EXPECT_TRUE(moved.has_port());
    EXPECT_TRUE(moved.release().has_value());
    EXPECT_EQ(fake.release_calls, 1);
    EXPECT_EQ(moved.release(), std::unexpected(poc::errc::invalid)) << "released twice";
  }  // the clone is released by its destructor
  EXPECT_EQ(fake.release_calls, 2);
  {
    poc::port_receiver rx(io.get_executor(), fake.receiver());
    const poc_receiver raw = rx.detach();
    EXPECT_EQ(raw.handle, fake.handle());
    EXPECT_FALSE(rx.has_port());
  }
  EXPECT_EQ(fake.release_calls, 2) << "a detached port must not be released";
  {
    poc::port_receiver a(io.get_executor(), fake.receiver());
    poc::port_receiver b(io.get_executor(), fake.receiver());
    a = std::move(b);  // releases a's port
    EXPECT_EQ(fake.release_calls, 3);
  }
  EXPECT_EQ(fake.release_calls, 4);
}

// ---------------------------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------------------------

TEST(ImportAdapter, CancellationSlotAsksThePortToCancel) {
  fake_port fake;  // cancel only records; the test completes the op afterwards
  asio::io_context io;
  poc::port_sender tx(io.get_executor(), fake.sender());
  asio::cancellation_signal signal;
  int calls = 0;
  std::error_code result;
  tx.async_send(make_msg(1), asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec) {
                  ++calls;
                  result = ec;
                }));
  auto ids = fake.wait_pending(1);
  ASSERT_TRUE(ids);
  EXPECT_TRUE(signal.slot().has_handler());
  signal.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(fake.cancel_calls, 1);
  ASSERT_EQ(fake.cancelled_ids().size(), 1u);
  EXPECT_EQ(fake.cancelled_ids()[0], ids->front()) << "cancel named another op";
  std::thread foreign([&] { fake.complete(ids->front(), POC_CANCELLED); });
  ASSERT_TRUE(run_to_completion(io));
  foreign.join();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result, asio::error::operation_aborted);
  EXPECT_FALSE(signal.slot().has_handler()) << "the slot was not cleared on completion";
  signal.emit(asio::cancellation_type::terminal);  // nothing installed: no cancel call
  EXPECT_EQ(fake.cancel_calls, 1);
}

TEST(ImportAdapter, CancelCompletingInlineDoesNotRunTheHandlerInsideEmit) {
  fake_port fake;
  fake.cancel_completes = true;  // the exporter completes the op on the cancelling thread
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  asio::cancellation_signal signal;
  int calls = 0;
  std::error_code result;
  rx.async_receive(asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, poc::message) {
    ++calls;
    result = ec;
  }));
  ASSERT_TRUE(fake.wait_pending(1));
  // emit from a handler running on io, so that a dispatch would be allowed to run inline
  asio::post(io, [&] {
    signal.emit(asio::cancellation_type::total);
    EXPECT_EQ(fake.completed_cancelled, 1);
    EXPECT_EQ(calls, 0) << "the handler ran inside emit()";
  });
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result, asio::error::operation_aborted);
  EXPECT_FALSE(signal.slot().has_handler());
}

// Contract rule 5 / Cancel step 4. (This test used to assert the old Asio behaviour — the
// cancelled handler got the message; now the message waits in the stash for the next receive.)
TEST(ImportAdapter, CancelledReceiveThatWonTheRaceKeepsItsMessageForTheNextReceive) {
  fake_port fake;  // cancel does not complete: the message arrives anyway
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  asio::cancellation_signal signal;
  int calls = 0;
  std::error_code result = poc::errc::panic;
  poc::message got(1, {1});
  rx.async_receive(asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, poc::message m) {
    ++calls;
    result = ec;
    got = std::move(m);
  }));
  auto ids = fake.wait_pending(1);
  ASSERT_TRUE(ids);
  signal.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(fake.cancel_calls, 1);
  const poc::message m = make_msg(77);
  std::thread foreign([&] { fake.complete(ids->front(), POC_OK, &m); });
  ASSERT_TRUE(run_to_completion(io));
  foreign.join();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(fake.completed_ok, 1) << "the exporter did complete the receive with the message";
  EXPECT_EQ(result, asio::error::operation_aborted) << "the handler's operation was cancelled";
  EXPECT_EQ(got, poc::message()) << "a cancelled handler must not carry the message";
  EXPECT_FALSE(signal.slot().has_handler()) << "the slot was not cleared on completion";

  // The next receive gets that exact message, from the stash: the port is not called, and the
  // handler still does not run inside the initiating function.
  int next_calls = 0;
  std::error_code next_ec = poc::errc::panic;
  poc::message next;
  rx.async_receive([&](std::error_code ec, poc::message mm) {
    ++next_calls;
    next_ec = ec;
    next = std::move(mm);
  });
  EXPECT_EQ(next_calls, 0) << "the handler ran inside the initiating function";
  EXPECT_EQ(fake.recv_calls, 1) << "the port was called although the stash held a message";
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(next_calls, 1);
  EXPECT_FALSE(next_ec);
  EXPECT_EQ(next, m) << "a message was lost to a cancel";
  // The stash is empty again: the following receive goes to the port.
  std::error_code last_ec;
  rx.async_receive([&](std::error_code ec, poc::message) { last_ec = ec; });
  EXPECT_EQ(fake.recv_calls, 2);
  auto last = fake.wait_pending(1);
  ASSERT_TRUE(last);
  ASSERT_EQ(last->size(), 1u);
  ASSERT_TRUE(fake.complete(last->front(), POC_CLOSED));
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(last_ec, poc::errc::closed);
}

TEST(ImportAdapter, CancelledReceiveThatWonTheRaceKeepsItsMessageForTryReceive) {
  fake_port fake;
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  const poc::message m = make_msg(78, 40);
  ASSERT_TRUE(stash_via_cancel(fake, io, rx, {m}));
  auto got = rx.try_receive();
  ASSERT_TRUE(got.has_value()) << "a message was lost to a cancel";
  EXPECT_EQ(*got, m);
  EXPECT_EQ(fake.try_recv_calls, 0) << "try_receive called the port although the stash held one";
  EXPECT_EQ(rx.try_receive().error(), poc::errc::empty) << "the stash gave the message twice";
  EXPECT_EQ(fake.try_recv_calls, 1);
}

// The cancel is requested after the exporter completed the receive but before its handler ran
// (the completion is queued on the handler's executor): the handler's operation is still the one
// cancelled, so the message goes to the stash. This is the window in which `||` loses messages
// if the adapter decides in the C callback.
TEST(ImportAdapter, CancelRequestedWhileTheCompletionIsQueuedKeepsTheMessage) {
  fake_port fake;
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  asio::cancellation_signal signal;
  int calls = 0;
  std::error_code result;
  rx.async_receive(asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, poc::message m) {
    ++calls;
    result = ec;
    EXPECT_EQ(m, poc::message());
  }));
  auto ids = fake.wait_pending(1);
  ASSERT_TRUE(ids);
  const poc::message m = make_msg(79);
  std::thread foreign([&] { fake.complete(ids->front(), POC_OK, &m); });
  foreign.join();  // completed; the handler is queued on io, which is not running
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(signal.slot().has_handler());
  signal.emit(asio::cancellation_type::terminal);  // a stale cancel reaches the port: harmless
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result, asio::error::operation_aborted);
  auto got = rx.try_receive();
  ASSERT_TRUE(got.has_value()) << "a message was lost to a cancel";
  EXPECT_EQ(*got, m);
}

// recv returned OK at once (fast path): the result is posted, and a cancel emitted before the
// handler runs keeps the message too — without asking the port to cancel a finished op.
TEST(ImportAdapter, CancelledFastPathReceiveKeepsItsMessage) {
  fake_port fake;
  fake.recv_mode = fake_port::mode::ok;
  const poc::message m = make_msg(80, 24);
  fake.push(m);
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  asio::cancellation_signal signal;
  int calls = 0;
  std::error_code result;
  rx.async_receive(asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, poc::message g) {
    ++calls;
    result = ec;
    EXPECT_EQ(g, poc::message());
  }));
  EXPECT_EQ(fake.recv_calls, 1);
  EXPECT_EQ(calls, 0);
  signal.emit(asio::cancellation_type::total);
  EXPECT_EQ(fake.cancel_calls, 0) << "cancel of an op that already completed reached the port";
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result, asio::error::operation_aborted);
  auto next = rx.async_receive(asio::use_future);
  ASSERT_TRUE(ready(next));
  EXPECT_EQ(next.get(), m) << "a message was lost to a cancel";
  EXPECT_EQ(fake.recv_calls, 1) << "served from the stash, not the port";
}

// Several kept messages come out oldest first; a stash-served receive that is itself cancelled
// before its handler runs puts its message back in its place, even when two of them are
// cancelled and their handlers run in either order.
TEST(ImportAdapter, StashServesOldestFirstAndCancelledStashReceivesPutMessagesBack) {
  fake_port fake;
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  const poc::message m1 = make_msg(1), m2 = make_msg(2), m3 = make_msg(3);
  ASSERT_TRUE(stash_via_cancel(fake, io, rx, {m1, m2, m3}));
  EXPECT_EQ(fake.recv_calls, 3);

  // The receive that takes m1 completes on io2, the one that takes m2 on io: running io first
  // makes m2 go back before m1.
  asio::io_context io2;
  for (bool reverse : {false, true}) {
    SCOPED_TRACE(reverse ? "m2 put back first" : "m1 put back first");
    asio::cancellation_signal sa, sb;
    std::vector<std::error_code> results;
    auto record = [&](std::error_code ec, poc::message g) {
      results.push_back(ec);
      EXPECT_EQ(g, poc::message()) << "a cancelled handler carried a message";
    };
    rx.async_receive(asio::bind_cancellation_slot(sa.slot(), asio::bind_executor(io2, record)));
    rx.async_receive(asio::bind_cancellation_slot(sb.slot(), record));
    EXPECT_EQ(fake.recv_calls, 3) << "served from the stash, not the port";
    EXPECT_TRUE(results.empty()) << "a handler ran inside the initiating function";
    sb.emit(asio::cancellation_type::terminal);
    sa.emit(asio::cancellation_type::terminal);
    if (reverse) {
      ASSERT_TRUE(run_to_completion(io));
      ASSERT_TRUE(run_to_completion(io2));
    } else {
      ASSERT_TRUE(run_to_completion(io2));
      ASSERT_TRUE(run_to_completion(io));
    }
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[0], asio::error::operation_aborted);
    EXPECT_EQ(results[1], asio::error::operation_aborted);
  }
  // Still m1, m2, m3, in that order, each once.
  for (const poc::message* want : {&m1, &m2}) {
    auto f = rx.async_receive(asio::use_future);
    ASSERT_TRUE(ready(f));
    EXPECT_EQ(f.get(), *want);
  }
  auto last = rx.try_receive();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, m3);
  EXPECT_EQ(rx.try_receive().error(), poc::errc::empty);
  EXPECT_EQ(fake.recv_calls, 3);
}

// The stash is shared with in-flight receives: moving the receiver keeps it (the moved-to object
// serves the kept message); destroying the receiver while a cancelled receive is in flight is
// safe (the op keeps the stash alive; what it keeps is dropped with it).
TEST(ImportAdapter, StashFollowsAMovedReceiverAndOutlivesADestroyedOne) {
  fake_port fake;
  asio::io_context io;
  {
    poc::port_receiver rx1(io.get_executor(), fake.receiver());
    asio::cancellation_signal signal;
    std::error_code result;
    rx1.async_receive(asio::bind_cancellation_slot(
        signal.slot(), [&](std::error_code ec, poc::message) { result = ec; }));
    auto ids = fake.wait_pending(1);
    ASSERT_TRUE(ids);
    poc::port_receiver rx2(std::move(rx1));
    signal.emit(asio::cancellation_type::terminal);
    const poc::message m = make_msg(81);
    std::thread foreign([&] { fake.complete(ids->front(), POC_OK, &m); });
    foreign.join();
    ASSERT_TRUE(run_to_completion(io));
    EXPECT_EQ(result, asio::error::operation_aborted);
    EXPECT_EQ(rx1.try_receive().error(), poc::errc::invalid);
    auto got = rx2.try_receive();
    ASSERT_TRUE(got.has_value()) << "the stash did not move with the receiver";
    EXPECT_EQ(*got, m);
  }
  {
    auto rx = std::make_unique<poc::port_receiver>(io.get_executor(), fake.receiver());
    asio::cancellation_signal signal;
    int calls = 0;
    std::error_code result;
    rx->async_receive(asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, poc::message g) {
      ++calls;
      result = ec;
      EXPECT_EQ(g, poc::message());
    }));
    auto ids = fake.wait_pending(1);
    ASSERT_TRUE(ids);
    signal.emit(asio::cancellation_type::terminal);
    const int released = fake.release_calls;
    rx.reset();  // releases the port (the fake leaves the op pending), drops the receiver
    EXPECT_EQ(fake.release_calls, released + 1);
    const poc::message m = make_msg(82);
    std::thread foreign([&] { fake.complete(ids->front(), POC_OK, &m); });
    foreign.join();
    ASSERT_TRUE(run_to_completion(io));
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(result, asio::error::operation_aborted);
  }
}

// Closing from the receiving side drops queued messages (rule 7): the stash's as well, and one
// that a cancelled receive still in flight brings back after the close.
TEST(ImportAdapter, CloseDropsTheStashLikeQueuedMessages) {
  fake_port fake;  // its close only counts: what try_receive sees afterwards comes from the stash
                   // or from the fake's (empty) queue
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  asio::cancellation_signal sa, sb;
  std::error_code ra = poc::errc::panic, rb = poc::errc::panic;
  rx.async_receive(
      asio::bind_cancellation_slot(sa.slot(), [&](std::error_code ec, poc::message) { ra = ec; }));
  rx.async_receive(
      asio::bind_cancellation_slot(sb.slot(), [&](std::error_code ec, poc::message) { rb = ec; }));
  auto ids = fake.wait_pending(2);
  ASSERT_TRUE(ids);
  sa.emit(asio::cancellation_type::terminal);
  sb.emit(asio::cancellation_type::terminal);
  // The first cancelled receive keeps its message; the second is still pending at the port.
  const poc::message kept = make_msg(1), late = make_msg(2);
  std::thread first([&] { fake.complete((*ids)[0], POC_OK, &kept); });
  first.join();
  ASSERT_TRUE(run_until(io, [&] { return ra != poc::errc::panic; }));
  EXPECT_EQ(ra, asio::error::operation_aborted);
  EXPECT_EQ(rx.stashed(), 1u);
  ASSERT_TRUE(rx.close().has_value());
  EXPECT_EQ(fake.close_calls, 1);
  EXPECT_EQ(rx.stashed(), 0u) << "close kept the stash";
  std::thread second([&] { fake.complete((*ids)[1], POC_OK, &late); });
  second.join();
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(rb, asio::error::operation_aborted);
  EXPECT_EQ(rx.stashed(), 0u) << "a message was kept after close";
  EXPECT_EQ(rx.try_receive().error(), poc::errc::empty);
  EXPECT_EQ(fake.try_recv_calls, 1);
}

// `co_await (rx.async_receive(use_awaitable) || timer(0).async_wait(use_awaitable))` in a loop,
// over an exporter that only ever hands out a message when the receive is cancelled: every
// message goes through "cancel requested, completed with a message anyway", and the loop must
// still get each once and in order.
TEST(ImportAdapter, OrTimeoutLoopKeepsEveryMessageThatWonTheRaceWithTheCancel) {
  constexpr std::uint64_t n = 2000;
  constexpr std::size_t len = 12;
  fake_port fake;
  fake.cancel_delivers = true;
  for (std::uint64_t i = 0; i < n; ++i) fake.push(make_msg(i, len));
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  auto fut = asio::co_spawn(io, timeout_loop(rx, n, len, false), asio::use_future);
  ASSERT_TRUE(run_to_completion(io));
  ASSERT_TRUE(ready(fut));
  const timeout_loop_result res = fut.get();
  EXPECT_EQ(res.received, n);
  EXPECT_EQ(res.in_order, n) << "messages lost, duplicated or out of order";
  EXPECT_EQ(res.checksum, expected_checksum(n, len));
  EXPECT_EQ(fake.completed_ok, static_cast<int>(n)) << "each message left the port once";
  EXPECT_GE(fake.cancel_calls, static_cast<int>(n)) << "every message raced a cancel";
  EXPECT_GE(res.timeouts, n);
  EXPECT_EQ(rx.try_receive().error(), poc::errc::empty) << "a message was left behind";
}

// The same with experimental::make_parallel_group(...).async_wait(wait_for_one(), ...): the losing
// (cancelled) receive never carries a message.
TEST(ImportAdapter, ParallelGroupWaitForOneKeepsEveryMessageThatWonTheRaceWithTheCancel) {
  constexpr std::uint64_t n = 2000;
  constexpr std::size_t len = 12;
  fake_port fake;
  fake.cancel_delivers = true;
  for (std::uint64_t i = 0; i < n; ++i) fake.push(make_msg(i, len));
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  auto fut = asio::co_spawn(io, timeout_loop(rx, n, len, true), asio::use_future);
  ASSERT_TRUE(run_to_completion(io));
  ASSERT_TRUE(ready(fut));
  const timeout_loop_result res = fut.get();
  EXPECT_EQ(res.received, n);
  EXPECT_EQ(res.in_order, n) << "messages lost, duplicated or out of order";
  EXPECT_EQ(res.checksum, expected_checksum(n, len));
  EXPECT_EQ(res.loser_had_message, 0u) << "a cancelled receive carried a message";
  EXPECT_EQ(fake.completed_ok, static_cast<int>(n));
  EXPECT_GE(res.timeouts, n);
  EXPECT_EQ(rx.try_receive().error(), poc::errc::empty);
}

TEST(ImportAdapter, CoroutineCancellationReachesThePort) {
  fake_port fake;
  fake.cancel_completes = true;
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  asio::cancellation_signal signal;
  int done = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto [ec, m] = co_await rx.async_receive(asio::experimental::as_tuple(asio::use_awaitable));
        EXPECT_EQ(ec, asio::error::operation_aborted);
        ++done;
      },
      asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
        EXPECT_FALSE(e);
        ++done;
      }));
  ASSERT_TRUE(run_until(io, [&] { return fake.pending_count() == 1; }));
  asio::post(io, [&] { signal.emit(asio::cancellation_type::terminal); });
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(done, 2);
  EXPECT_EQ(fake.cancel_calls, 1);
}

// Many iterations of "the exporter completes with a message" racing "the task cancels".
TEST(ImportAdapter, CancelVersusCompleteRaceCompletesExactlyOnceAndLosesNothing) {
  constexpr int iterations = 5000;
  fake_port fake;
  fake.cancel_completes = true;
  background_io bg;
  poc::port_receiver rx(bg.io.get_executor(), fake.receiver());

  std::atomic<int> invocations{0}, delivered{0}, aborted{0}, recovered{0}, wrong{0};
  for (int i = 0; i < iterations; ++i) {
    auto signal = std::make_shared<asio::cancellation_signal>();
    std::promise<void> done;
    auto fut = done.get_future();
    auto calls = std::make_shared<std::atomic<int>>(0);
    const poc::message m = make_msg(static_cast<std::uint64_t>(i), 8);
    asio::post(bg.io, [&, signal, calls] {
      rx.async_receive(asio::bind_cancellation_slot(
          signal->slot(), [&, calls, signal](std::error_code ec, poc::message got) {
            if (calls->fetch_add(1) != 0) ++wrong;  // twice
            ++invocations;
            if (!ec) {
              ++delivered;
              if (got != m) ++wrong;
            } else if (ec == asio::error::operation_aborted) {
              ++aborted;
            } else {
              ++wrong;
            }
            done.set_value();
          }));
    });
    auto ids = fake.wait_pending(1);
    ASSERT_TRUE(ids) << "iteration " << i;
    asio::post(bg.io, [signal] { signal->emit(asio::cancellation_type::terminal); });
    fake.complete(ids->front(), POC_OK, &m);  // races with the emit above
    ASSERT_TRUE(ready(fut)) << "iteration " << i << ": the handler never ran";
    // A message that lost to the cancel waits in the stash (the fake's own queue is empty, so
    // try_receive finds nothing else); a receive cancelled at the port left nothing behind.
    auto left = rx.try_receive();
    if (left.has_value()) {
      ++recovered;
      if (*left != m) ++wrong;
    } else if (left.error() != poc::errc::empty) {
      ++wrong;
    }
  }
  EXPECT_EQ(invocations, iterations);
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(delivered + aborted, iterations);
  // (This used to assert delivered == completed_ok: the cancelled handler got the message. Now
  // it gets operation_aborted and the message is kept for the next receive — contract rule 5.)
  EXPECT_EQ(delivered + recovered, fake.completed_ok)
      << "a message delivered by the exporter was lost";
  EXPECT_EQ(aborted, fake.completed_cancelled + recovered);
}

// Completion racing the initiation itself: the callback runs on a foreign thread while the
// initiating thread installs the slot handler and registers the op.
TEST(ImportAdapter, CompletionRacingInitiationCompletesExactlyOnce) {
  constexpr int iterations = 2000;
  fake_port fake;
  fake.send_mode = fake_port::mode::pending;
  background_io bg;
  poc::port_sender tx(bg.io.get_executor(), fake.sender());
  std::atomic<int> invocations{0};
  std::atomic<bool> stop{false};
  std::thread completer([&] {
    while (!stop.load()) {
      auto ids = fake.wait_pending(1, std::chrono::milliseconds(50));
      if (ids)
        for (auto id : *ids) fake.complete(id, POC_OK);
    }
  });
  asio::cancellation_signal signal;  // connected slot: exercises the slot-install path
  std::promise<void> all;
  auto fut = all.get_future();
  std::function<void(int)> next = [&](int i) {
    if (i == iterations) {
      all.set_value();
      return;
    }
    tx.async_send(make_msg(static_cast<std::uint64_t>(i)),
                  asio::bind_cancellation_slot(signal.slot(), [&, i](std::error_code ec) {
                    EXPECT_FALSE(ec);
                    ++invocations;
                    next(i + 1);
                  }));
  };
  asio::post(bg.io, [&] { next(0); });
  const bool ok = ready(fut);
  stop = true;
  completer.join();
  ASSERT_TRUE(ok);
  EXPECT_EQ(invocations, iterations);
  EXPECT_EQ(fake.completed_ok, iterations);
}

// ---------------------------------------------------------------------------------------------
// Stop registry (runtime shutdown)
// ---------------------------------------------------------------------------------------------

TEST(ImportAdapter, RequestStopAllCancelsInFlightOps) {
  fake_port fake;
  fake.cancel_completes = true;
  asio::io_context io;
  poc::port_sender tx(io.get_executor(), fake.sender());
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  int aborted = 0, calls = 0;
  for (int i = 0; i < 5; ++i) {
    tx.async_send(make_msg(1), [&](std::error_code ec) {
      ++calls;
      aborted += ec == asio::error::operation_aborted;
    });
    rx.async_receive([&](std::error_code ec, poc::message) {
      ++calls;
      aborted += ec == asio::error::operation_aborted;
    });
  }
  ASSERT_TRUE(fake.wait_pending(10));
  std::thread stopper([&] { poc::detail::request_stop_all(io); });
  stopper.join();
  EXPECT_EQ(fake.cancel_calls, 10);
  ASSERT_TRUE(run_to_completion(io)) << "in-flight ops kept the context busy after stop";
  EXPECT_EQ(calls, 10);
  EXPECT_EQ(aborted, 10);
}

TEST(ImportAdapter, OpsStartedAfterRequestStopAllAreCancelledAtOnce) {
  fake_port fake;
  fake.cancel_completes = true;
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  poc::detail::request_stop_all(io);
  int calls = 0;
  rx.async_receive([&](std::error_code ec, poc::message) {
    ++calls;
    EXPECT_EQ(ec, asio::error::operation_aborted);
  });
  EXPECT_EQ(fake.cancel_calls, 1);
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_EQ(calls, 1);
}

TEST(ImportAdapter, RequestStopAllRacingCompletionsCompletesEachOpOnce) {
  constexpr int rounds = 200;
  constexpr int ops = 32;
  for (int round = 0; round < rounds; ++round) {
    fake_port fake;
    fake.cancel_completes = true;
    asio::io_context io;
    poc::port_receiver rx(io.get_executor(), fake.receiver());
    std::vector<int> calls(ops, 0);
    for (int i = 0; i < ops; ++i)
      rx.async_receive([&, i](std::error_code ec, poc::message) {
        ++calls[i];
        EXPECT_TRUE(!ec || ec == asio::error::operation_aborted) << ec.message();
      });
    auto ids = fake.wait_pending(ops);
    ASSERT_TRUE(ids);
    const poc::message m = make_msg(1);
    std::thread completer([&] {
      for (auto id : *ids) fake.complete(id, POC_OK, &m);
    });
    std::thread stopper([&] { poc::detail::request_stop_all(io); });
    completer.join();
    stopper.join();
    ASSERT_TRUE(run_to_completion(io)) << "round " << round;
    for (int i = 0; i < ops; ++i) ASSERT_EQ(calls[i], 1) << "round " << round << " op " << i;
    ASSERT_EQ(fake.completed_ok + fake.completed_cancelled, ops);
  }
}

// ---------------------------------------------------------------------------------------------
// Exceptions thrown by handlers
// ---------------------------------------------------------------------------------------------

TEST(ImportAdapter, ThrowingHandlerLeavesRunAndTheOtherOpsStillComplete) {
  fake_port fake;
  asio::io_context io;
  poc::port_receiver rx(io.get_executor(), fake.receiver());
  int calls = 0;
  rx.async_receive([&](std::error_code, poc::message) {
    ++calls;
    throw std::runtime_error("handler failure");
  });
  rx.async_receive([&](std::error_code, poc::message) { ++calls; });
  auto ids = fake.wait_pending(2);
  ASSERT_TRUE(ids);
  std::thread foreign([&] {
    fake.complete((*ids)[0], POC_CLOSED);
    fake.complete((*ids)[1], POC_CLOSED);
  });
  foreign.join();
  EXPECT_THROW(io.run_for(bound), std::runtime_error);  // as with any Asio handler
  ASSERT_TRUE(run_to_completion(io));                   // the context keeps working
  EXPECT_EQ(calls, 2);
}

TEST(ImportAdapter, ThrowingHandlerRunInlineFromACallbackNeverUnwindsIntoTheExporter) {
  fake_port fake;
  asio::io_context io;
  poc::port_sender tx(io.get_executor(), fake.sender());
  int calls = 0;
  tx.async_send(make_msg(1), [&](std::error_code) {
    ++calls;
    throw std::runtime_error("handler failure");
  });
  auto ids = fake.wait_pending(1);
  ASSERT_TRUE(ids);
  bool exporter_returned = false;
  // The exporter completes from a handler on the same io_context: dispatch may run inline.
  asio::post(io, [&] {
    fake.complete(ids->front(), POC_OK);
    exporter_returned = true;
  });
  EXPECT_THROW(io.run_for(bound), std::runtime_error);
  ASSERT_TRUE(run_to_completion(io));
  EXPECT_TRUE(exporter_returned) << "the handler's exception unwound through the exporter";
  EXPECT_EQ(calls, 1);
}

// ---------------------------------------------------------------------------------------------
// Over the C++ runtime's own ports (poc::runtime::make_channel)
// ---------------------------------------------------------------------------------------------

TEST(ImportAdapterOverCppChannel, FifoFromACoroutine) {
  poc::runtime rt(2);
  auto ports = rt.make_channel(100);  // room for all: sends complete before the receives start
  ASSERT_TRUE(ports.has_value());
  poc::port_sender tx(rt.get_executor(), ports->sender);
  poc::port_receiver rx(rt.get_executor(), ports->receiver);
  auto fut = asio::co_spawn(
      rt.get_executor(),
      [&]() -> asio::awaitable<int> {
        for (std::uint64_t i = 0; i < 100; ++i) co_await tx.async_send(make_msg(i), asio::use_awaitable);
        int in_order = 0;
        for (std::uint64_t i = 0; i < 100; ++i)
          in_order += (co_await rx.async_receive(asio::use_awaitable)) == make_msg(i);
        co_return in_order;
      },
      asio::use_future);
  ASSERT_TRUE(ready(fut));
  EXPECT_EQ(fut.get(), 100);
}

TEST(ImportAdapterOverCppChannel, BackpressureWithCapacityOne) {
  constexpr std::uint64_t count = 10'000;
  poc::runtime rt(2);
  auto ports = rt.make_channel(1);
  ASSERT_TRUE(ports.has_value());
  poc::port_sender tx(rt.get_executor(), ports->sender);
  poc::port_receiver rx(rt.get_executor(), ports->receiver);
  auto producer = asio::co_spawn(
      rt.get_executor(),
      [&]() -> asio::awaitable<std::uint64_t> {
        std::uint64_t sent = 0;
        for (std::uint64_t i = 0; i < count; ++i) {
          co_await tx.async_send(make_msg(i, 24), asio::use_awaitable);
          ++sent;
        }
        (void)tx.release();  // the only sender: closes the channel
        co_return sent;
      },
      asio::use_future);
  auto consumer = asio::co_spawn(
      rt.get_executor(),
      [&]() -> asio::awaitable<std::uint64_t> {
        std::uint64_t in_order = 0;
        for (std::uint64_t expected = 0;; ++expected) {
          auto [ec, m] = co_await rx.async_receive(asio::experimental::as_tuple(asio::use_awaitable));
          if (ec) {
            EXPECT_EQ(ec, poc::errc::closed);
            break;
          }
          in_order += m == make_msg(expected, 24);
        }
        co_return in_order;
      },
      asio::use_future);
  ASSERT_TRUE(ready(producer));
  ASSERT_TRUE(ready(consumer));
  EXPECT_EQ(producer.get(), count);
  EXPECT_EQ(consumer.get(), count) << "messages lost, duplicated or out of order";
}

TEST(ImportAdapterOverCppChannel, CloseDrainsThenReportsClosed) {
  poc::runtime rt(1);
  auto ports = rt.make_channel(4);
  ASSERT_TRUE(ports.has_value());
  poc::port_sender tx(rt.get_executor(), ports->sender);
  poc::port_receiver rx(rt.get_executor(), ports->receiver);
  for (std::uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(tx.try_send(make_msg(i)).has_value());
  EXPECT_TRUE(tx.try_send(make_msg(3)).has_value());
  EXPECT_EQ(tx.try_send(make_msg(4)), std::unexpected(poc::errc::full));
  ASSERT_TRUE(tx.close().has_value());
  EXPECT_EQ(tx.try_send(make_msg(5)), std::unexpected(poc::errc::closed));
  for (std::uint64_t i = 0; i < 4; ++i) {
    auto f = rx.async_receive(asio::use_future);
    ASSERT_TRUE(ready(f));
    EXPECT_EQ(f.get(), make_msg(i));
  }
  auto closed = rx.async_receive(asio::use_future);
  ASSERT_TRUE(ready(closed));
  try {
    closed.get();
    FAIL() << "a closed, drained channel delivered a message";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), poc::errc::closed);
  }
  EXPECT_EQ(rx.try_receive().error(), poc::errc::closed);
}

TEST(ImportAdapterOverCppChannel, CancelledReceiveOnTheRuntimeCompletesOnce) {
  poc::runtime rt(2);
  auto ports = rt.make_channel(1);
  ASSERT_TRUE(ports.has_value());
  poc::port_sender tx(rt.get_executor(), ports->sender);
  poc::port_receiver rx(rt.get_executor(), ports->receiver);
  auto strand = asio::make_strand(rt.get_executor());
  asio::cancellation_signal signal;
  std::promise<std::pair<std::error_code, poc::message>> result;
  auto fut = result.get_future();
  std::atomic<int> calls{0};
  asio::post(strand, [&] {
    rx.async_receive(asio::bind_executor(
        strand, asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, poc::message m) {
          if (calls.fetch_add(1) == 0) result.set_value({ec, std::move(m)});
        })));
  });
  // Cancel (on the handler's strand) and send: either may win; nothing may be lost.
  asio::post(strand, [&] { signal.emit(asio::cancellation_type::terminal); });
  ASSERT_TRUE(tx.try_send(make_msg(1)).has_value());
  ASSERT_TRUE(ready(fut));
  auto [ec, m] = fut.get();
  if (!ec) {
    EXPECT_EQ(m, make_msg(1));
  } else {
    EXPECT_EQ(ec, asio::error::operation_aborted);
    auto left = rx.try_receive();
    ASSERT_TRUE(left.has_value()) << "the message was lost to a cancel";
    EXPECT_EQ(*left, make_msg(1));
  }
  EXPECT_EQ(rt.shutdown(), std::error_code());
  EXPECT_EQ(calls, 1);
}

// A producer sends n numbered messages through a real C++ channel (capacity 2, so sends wait for
// room and receives for messages) while the consumer, on a strand, receives with the timeout
// pattern in a loop: the timer (0 s) and the exporter's completion race at every round, on
// different threads. Every message arrives exactly once and in order.
static void timeout_loop_over_cpp_channel(bool use_group) {
  constexpr std::uint64_t n = 10000;
  constexpr std::size_t len = 20;
  poc::runtime rt(2);
  auto ports = rt.make_channel(2);
  ASSERT_TRUE(ports.has_value());
  const asio::any_io_executor strand = asio::make_strand(rt.get_executor());
  poc::port_sender tx(rt.get_executor(), ports->sender);
  // `||` runs the receive in a coroutine on the consumer's strand, so its handler runs there
  // whatever the receiver's executor. parallel_group runs a deferred operation's handler on the
  // operation's own executor — the receiver's — so the receiver gets the strand: cancellation is
  // emitted, and the handler runs, on one strand (as Asio requires of cancellation slots).
  poc::port_receiver rx(use_group ? strand : rt.get_executor(), ports->receiver);
  auto producer = asio::co_spawn(
      rt.get_executor(),
      [&]() -> asio::awaitable<std::uint64_t> {
        std::uint64_t sent = 0;
        for (std::uint64_t i = 0; i < n; ++i) {
          co_await tx.async_send(make_msg(i, len), asio::use_awaitable);
          ++sent;
          // Pacing, not synchronisation: a producer a little slower than the consumer leaves
          // the channel empty often, so that receives are pending at the port when the timer
          // fires and sends race with the cancels.
          for (std::uint64_t k = 0; k < i % 4; ++k) co_await asio::post(asio::use_awaitable);
        }
        (void)tx.release();  // the only sender: closes the channel
        co_return sent;
      },
      asio::use_future);
  auto consumer = asio::co_spawn(strand, timeout_loop(rx, n, len, use_group), asio::use_future);
  ASSERT_TRUE(ready(producer));
  ASSERT_TRUE(ready(consumer));
  EXPECT_EQ(producer.get(), n);
  const timeout_loop_result res = consumer.get();
  EXPECT_EQ(res.received, n);
  EXPECT_EQ(res.in_order, n) << "messages lost, duplicated or out of order";
  EXPECT_EQ(res.checksum, expected_checksum(n, len));
  EXPECT_EQ(res.loser_had_message, 0u) << "a cancelled receive carried a message";
  // Closed and drained, and nothing left in the stash.
  EXPECT_EQ(rx.try_receive().error(), poc::errc::closed);
  ::testing::Test::RecordProperty("timeouts", std::to_string(res.timeouts));
  ::testing::Test::RecordProperty("stashed", std::to_string(res.stashed));
  EXPECT_EQ(rt.shutdown(), std::error_code());
}

TEST(ImportAdapterOverCppChannel, OrTimeoutLoopReceivesEveryMessageOnceInOrder) {
  timeout_loop_over_cpp_channel(false);
}

TEST(ImportAdapterOverCppChannel, ParallelGroupTimeoutLoopReceivesEveryMessageOnceInOrder) {
  timeout_loop_over_cpp_channel(true);
}

TEST(ImportAdapterOverCppChannel, ThrowingHandlerDoesNotTakeTheRuntimeDown) {
  poc::runtime rt(1);
  auto ports = rt.make_channel(4);
  ASSERT_TRUE(ports.has_value());
  poc::port_sender tx(rt.get_executor(), ports->sender);
  poc::port_receiver rx(rt.get_executor(), ports->receiver);
  // The first handler throws out of the runtime thread's run(); the runtime reports it and
  // keeps running, so the second receive still completes.
  rx.async_receive([](std::error_code, poc::message) { throw std::runtime_error("handler failure"); });
  auto second = rx.async_receive(asio::use_future);
  ASSERT_TRUE(tx.try_send(make_msg(1)).has_value());
  ASSERT_TRUE(tx.try_send(make_msg(2)).has_value());
  ASSERT_TRUE(ready(second)) << "the runtime stopped after a handler threw";
  EXPECT_EQ(second.get(), make_msg(2));
}

TEST(ImportAdapterOverCppChannel, ShutdownCancelsInFlightImportsOfAForeignPort) {
  fake_port fake;  // a foreign exporter whose op only a cancel completes
  fake.cancel_completes = true;
  auto rt = std::make_unique<poc::runtime>(1);
  poc::port_receiver rx(rt->get_executor(), fake.receiver());
  std::promise<std::error_code> result;
  auto fut = result.get_future();
  rx.async_receive([&](std::error_code ec, poc::message) { result.set_value(ec); });
  ASSERT_TRUE(fake.wait_pending(1));
  EXPECT_EQ(rt->shutdown(), std::error_code()) << "shutdown did not return";
  ASSERT_TRUE(ready(fut)) << "the import op was not completed by shutdown";
  EXPECT_EQ(fut.get(), asio::error::operation_aborted);
  EXPECT_EQ(fake.cancel_calls, 1);
}
