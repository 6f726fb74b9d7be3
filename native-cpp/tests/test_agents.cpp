// The C++ agents (bridge.h §"C++ runtime") through the C ABI: over C++ channels, over a foreign
// (fake) exporter, cancelled, and caught by runtime shutdown.
//
// Rules: every wait is bounded and fails with a message; no sleeps are used to synchronise;
// every `done` callback is counted and asserted to run exactly once.
#include "fake_port.hpp"

#include <poc/bridge.h>
#include <poc/error.hpp>
#include <poc/message.hpp>
#include <poc/port.hpp>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
constexpr auto bound = 10s;

// Collects the report of one agent; `calls` proves "exactly once".
struct done_box {
  std::mutex mutex;
  std::condition_variable cv;
  int calls = 0;
  poc_agent_report report{};
  std::thread::id thread;

  static void fn(void* user, const poc_agent_report* r) {
    auto* box = static_cast<done_box*>(user);
    std::lock_guard lock(box->mutex);
    ++box->calls;
    box->report = *r;
    box->thread = std::this_thread::get_id();
    box->cv.notify_all();
  }

  ::testing::AssertionResult wait() {
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, bound, [&] { return calls > 0; }))
      return ::testing::AssertionFailure() << "done was not called within 10 s";
    return ::testing::AssertionSuccess();
  }
  int count() {
    std::lock_guard lock(mutex);
    return calls;
  }
};

// A runtime owned through the C ABI, shut down and freed at the end of the test.
struct c_runtime {
  poc_cpp_runtime* rt = nullptr;
  explicit c_runtime(std::uint32_t threads = 2) {
    EXPECT_EQ(poc_cpp_runtime_new(threads, &rt), POC_OK);
  }
  ~c_runtime() { poc_cpp_runtime_free(rt); }
  c_runtime(const c_runtime&) = delete;
  c_runtime& operator=(const c_runtime&) = delete;

  std::pair<poc_sender, poc_receiver> channel(std::size_t capacity) {
    poc_sender tx{};
    poc_receiver rx{};
    EXPECT_EQ(poc_cpp_channel_new(rt, capacity, &tx, &rx), POC_OK);
    return {tx, rx};
  }
};

bool is_stop_status(poc_status s) { return s == POC_CANCELLED || s == POC_SHUTDOWN; }

}  // namespace

TEST(Agents, ProducerToConsumerOverACppChannel) {
  c_runtime r;
  auto [tx, rx] = r.channel(8);
  done_box producer, consumer;
  poc_agent_id pid = 0, cid = 0;
  ASSERT_EQ(poc_cpp_consumer_start(r.rt, rx, &done_box::fn, &consumer, &cid), POC_OK);
  ASSERT_EQ(poc_cpp_producer_start(r.rt, tx, 3, 1000, 64, &done_box::fn, &producer, &pid), POC_OK);
  EXPECT_NE(pid, 0u);
  EXPECT_NE(pid, cid) << "agent ids must be unique";
  ASSERT_TRUE(producer.wait());
  ASSERT_TRUE(consumer.wait());  // the producer released the only sender: CLOSED after draining
  EXPECT_EQ(producer.report.status, POC_OK);
  EXPECT_EQ(producer.report.messages, 1000u);
  EXPECT_EQ(consumer.report.status, POC_OK);
  EXPECT_EQ(consumer.report.messages, 1000u);
  EXPECT_EQ(consumer.report.checksum, producer.report.checksum);
  EXPECT_EQ(consumer.report.order_errors, 0u);
  EXPECT_EQ(producer.report.order_errors, 0u);
  EXPECT_NE(producer.thread, std::this_thread::get_id()) << "done must run on a runtime thread";
  EXPECT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(producer.count(), 1);
  EXPECT_EQ(consumer.count(), 1);
}

TEST(Agents, FanInFromSeveralProducersKeepsEachStreamInOrder) {
  constexpr int producers = 4;
  constexpr std::uint64_t per_producer = 500;
  c_runtime r(3);
  auto [tx, rx] = r.channel(4);
  done_box consumer;
  ASSERT_EQ(poc_cpp_consumer_start(r.rt, rx, &done_box::fn, &consumer, nullptr), POC_OK);
  std::vector<std::unique_ptr<done_box>> boxes;
  for (int i = 0; i < producers; ++i) {
    poc_sender port = tx;
    if (i + 1 < producers) {
      ASSERT_EQ(tx.vtable->clone(tx.handle, &port), POC_OK);
    }
    boxes.push_back(std::make_unique<done_box>());
    ASSERT_EQ(poc_cpp_producer_start(r.rt, port, static_cast<std::uint64_t>(i + 1), per_producer,
                                     static_cast<std::size_t>(i * 7), &done_box::fn,
                                     boxes.back().get(), nullptr),
              POC_OK);
  }
  std::uint64_t sum = 0;
  for (auto& b : boxes) {
    ASSERT_TRUE(b->wait());
    EXPECT_EQ(b->report.status, POC_OK);
    EXPECT_EQ(b->report.messages, per_producer);
    sum += b->report.checksum;
  }
  ASSERT_TRUE(consumer.wait()) << "the channel did not close when the last producer ended";
  EXPECT_EQ(consumer.report.status, POC_OK);
  EXPECT_EQ(consumer.report.messages, producers * per_producer);
  EXPECT_EQ(consumer.report.checksum, sum);
  EXPECT_EQ(consumer.report.order_errors, 0u);
}

TEST(Agents, EchoPingPongWithATaskOnAnotherIoContext) {
  c_runtime r;
  auto [to_echo_tx, to_echo_rx] = r.channel(1);
  auto [from_echo_tx, from_echo_rx] = r.channel(1);
  done_box echo;
  ASSERT_EQ(poc_cpp_echo_start(r.rt, to_echo_rx, from_echo_tx, &done_box::fn, &echo, nullptr),
            POC_OK);

  // The pinging task runs on the test's own io_context and imports the ports with poc/port.hpp.
  asio::io_context io;
  poc::port_sender ping(io.get_executor(), to_echo_tx);
  poc::port_receiver pong(io.get_executor(), from_echo_rx);
  constexpr int rounds = 200;
  std::uint64_t sent_sum = 0;
  auto fut = asio::co_spawn(
      io,
      [&]() -> asio::awaitable<int> {
        int ok = 0;
        for (int i = 0; i < rounds; ++i) {
          poc::message m(poc::make_id(9, static_cast<std::uint64_t>(i)), std::vector<std::uint8_t>(20));
          poc::fill_pattern(m.id, m.payload);
          sent_sum += poc::checksum(m);
          co_await ping.async_send(m, asio::use_awaitable);
          poc::message back = co_await pong.async_receive(asio::use_awaitable);
          ok += back == m;
        }
        (void)ping.release();  // closes the echo's input: it ends with OK
        auto [ec, last] = co_await pong.async_receive(asio::experimental::as_tuple(asio::use_awaitable));
        EXPECT_EQ(ec, poc::errc::closed) << "the echo did not release its sender";
        co_return ok;
      },
      asio::use_future);
  io.run_for(bound);
  ASSERT_EQ(fut.wait_for(0s), std::future_status::ready) << "ping-pong did not finish in 10 s";
  EXPECT_EQ(fut.get(), rounds);
  ASSERT_TRUE(echo.wait());
  EXPECT_EQ(echo.report.status, POC_OK);
  EXPECT_EQ(echo.report.messages, static_cast<std::uint64_t>(rounds));
  EXPECT_EQ(echo.report.checksum, sent_sum);
  EXPECT_EQ(echo.count(), 1);
}

TEST(Agents, ProducerEchoConsumerPipeline) {
  c_runtime r;
  auto [a_tx, a_rx] = r.channel(2);
  auto [b_tx, b_rx] = r.channel(2);
  done_box producer, echo, consumer;
  ASSERT_EQ(poc_cpp_consumer_start(r.rt, b_rx, &done_box::fn, &consumer, nullptr), POC_OK);
  ASSERT_EQ(poc_cpp_echo_start(r.rt, a_rx, b_tx, &done_box::fn, &echo, nullptr), POC_OK);
  ASSERT_EQ(poc_cpp_producer_start(r.rt, a_tx, 1, 2000, 16, &done_box::fn, &producer, nullptr),
            POC_OK);
  ASSERT_TRUE(producer.wait());
  ASSERT_TRUE(echo.wait());
  ASSERT_TRUE(consumer.wait());
  EXPECT_EQ(echo.report.status, POC_OK);
  EXPECT_EQ(echo.report.messages, 2000u);
  EXPECT_EQ(consumer.report.status, POC_OK);
  EXPECT_EQ(consumer.report.messages, 2000u);
  EXPECT_EQ(consumer.report.checksum, producer.report.checksum);
  EXPECT_EQ(echo.report.checksum, producer.report.checksum);
  EXPECT_EQ(consumer.report.order_errors, 0u);
}

TEST(Agents, TimerSendsMaxCountMayonMessages) {
  c_runtime r;
  auto [tx, rx] = r.channel(16);
  done_box timer;
  ASSERT_EQ(poc_cpp_timer_start(r.rt, tx, 1, 5, &done_box::fn, &timer, nullptr), POC_OK);
  ASSERT_TRUE(timer.wait());
  EXPECT_EQ(timer.report.status, POC_OK);
  EXPECT_EQ(timer.report.messages, 5u);

  asio::io_context io;
  poc::port_receiver in(io.get_executor(), rx);
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < 5; ++i) {
    auto m = in.try_receive();
    ASSERT_TRUE(m.has_value()) << "message " << i;
    EXPECT_EQ(m->id, i);
    EXPECT_EQ(std::string(m->payload.begin(), m->payload.end()), "From Cpp async task!!");
    sum += poc::checksum(*m);
  }
  EXPECT_EQ(in.try_receive().error(), poc::errc::closed) << "the timer did not release its sender";
  EXPECT_EQ(timer.report.checksum, sum);
  EXPECT_EQ(timer.count(), 1);
}

TEST(Agents, TimerCancelledThroughAgentCancel) {
  c_runtime r;
  auto [tx, rx] = r.channel(1024);
  done_box timer;
  poc_agent_id id = 0;
  ASSERT_EQ(poc_cpp_timer_start(r.rt, tx, 1, 0, &done_box::fn, &timer, &id), POC_OK);
  // Wait (bounded) for three ticks through the adapter, then cancel.
  asio::io_context io;
  poc::port_receiver in(io.get_executor(), rx);
  for (int i = 0; i < 3; ++i) {
    auto f = in.async_receive(asio::use_future);
    ASSERT_EQ(f.wait_for(bound), std::future_status::ready) << "tick " << i;
    EXPECT_EQ(f.get().id, static_cast<std::uint64_t>(i));
  }
  EXPECT_EQ(poc_cpp_agent_cancel(r.rt, id), POC_OK);
  ASSERT_TRUE(timer.wait());
  EXPECT_EQ(timer.report.status, POC_CANCELLED);
  EXPECT_GE(timer.report.messages, 3u);
  EXPECT_EQ(poc_cpp_agent_cancel(r.rt, id), POC_OK) << "cancel of an ended agent is a no-op";
  EXPECT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(timer.count(), 1);
}

TEST(Agents, ArgumentErrorsTakeNoPortsAndCallNoDone) {
  c_runtime r;
  auto [tx, rx] = r.channel(1);
  done_box box;
  EXPECT_EQ(poc_cpp_agent_cancel(nullptr, 1), POC_INVALID);
  EXPECT_EQ(poc_cpp_agent_cancel(r.rt, 0xFFFF'FFFF'FFFFull), POC_OK) << "unknown id";
  EXPECT_EQ(poc_cpp_producer_start(nullptr, tx, 0, 1, 0, &done_box::fn, &box, nullptr), POC_INVALID);
  EXPECT_EQ(poc_cpp_producer_start(r.rt, tx, 0, 1, 0, nullptr, &box, nullptr), POC_INVALID);
  EXPECT_EQ(poc_cpp_consumer_start(r.rt, poc_receiver{rx.handle, nullptr}, &done_box::fn, &box,
                                   nullptr),
            POC_INVALID);
  EXPECT_EQ(poc_cpp_echo_start(r.rt, rx, poc_sender{tx.handle, nullptr}, &done_box::fn, &box,
                               nullptr),
            POC_INVALID);
  EXPECT_EQ(poc_cpp_timer_start(r.rt, poc_sender{}, 1, 1, &done_box::fn, &box, nullptr),
            POC_INVALID);
  // The ports were not taken: still ours to use and release exactly once.
  poc_message_view v{1, nullptr, 0};
  EXPECT_EQ(tx.vtable->try_send(tx.handle, &v), POC_OK);
  EXPECT_EQ(tx.vtable->release(tx.handle), POC_OK);
  EXPECT_EQ(rx.vtable->release(rx.handle), POC_OK);
  EXPECT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(box.count(), 0);
}

TEST(Agents, WorkAgainstAForeignExporterAndCancelReachesIt) {
  poc::test::fake_port fake;  // every send stays PENDING until completed or cancelled
  fake.cancel_completes = true;
  c_runtime r;
  done_box producer;
  poc_agent_id id = 0;
  ASSERT_EQ(poc_cpp_producer_start(r.rt, fake.sender(), 5, 10, 8, &done_box::fn, &producer, &id),
            POC_OK);
  // Complete two sends from this (foreign) thread, then cancel while the third is pending.
  for (int i = 0; i < 2; ++i) {
    auto ids = fake.wait_pending(1);
    ASSERT_TRUE(ids) << "send " << i << " never reached the exporter";
    fake.complete(ids->front(), POC_OK);
  }
  ASSERT_TRUE(fake.wait_pending(1));
  EXPECT_EQ(poc_cpp_agent_cancel(r.rt, id), POC_OK);
  ASSERT_TRUE(producer.wait());
  EXPECT_EQ(producer.report.status, POC_CANCELLED);
  EXPECT_EQ(producer.report.messages, 2u);
  EXPECT_GE(fake.cancel_calls, 1);
  const auto sent = fake.sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].id, poc::make_id(5, 1));
  EXPECT_EQ(fake.release_calls, 1) << "the agent did not release its port";
  EXPECT_EQ(poc_cpp_runtime_shutdown(r.rt), POC_OK);
  EXPECT_EQ(producer.count(), 1);
}

TEST(Agents, RefuseAPortWhoseVtableHasANullFunction) {
  // bridge.h: a bad port vtable is POC_INVALID and the ports are not taken. Found by fuzz/: a
  // vtable with the right version and size but a NULL function was accepted, and the agent then
  // called through NULL on a runtime thread.
  c_runtime r(1);
  auto [tx, rx] = r.channel(1);
  poc_sender_vtable no_send = *tx.vtable;
  no_send.send = nullptr;
  poc_sender_vtable no_release = *tx.vtable;
  no_release.release = nullptr;
  poc_receiver_vtable no_recv = *rx.vtable;
  no_recv.recv = nullptr;
  done_box d;
  for (const poc_sender_vtable* vt : {&no_send, &no_release}) {
    EXPECT_EQ(poc_cpp_producer_start(r.rt, poc_sender{tx.handle, vt}, 1, 3, 4, &done_box::fn, &d, nullptr),
              POC_INVALID);
    EXPECT_EQ(poc_cpp_timer_start(r.rt, poc_sender{tx.handle, vt}, 1, 1, &done_box::fn, &d, nullptr),
              POC_INVALID);
    EXPECT_EQ(poc_cpp_echo_start(r.rt, rx, poc_sender{tx.handle, vt}, &done_box::fn, &d, nullptr),
              POC_INVALID);
  }
  EXPECT_EQ(poc_cpp_consumer_start(r.rt, poc_receiver{rx.handle, &no_recv}, &done_box::fn, &d, nullptr),
            POC_INVALID);
  EXPECT_EQ(poc_cpp_echo_start(r.rt, poc_receiver{rx.handle, &no_recv}, tx, &done_box::fn, &d, nullptr),
            POC_INVALID);
  EXPECT_EQ(d.count(), 0);
  EXPECT_EQ(tx.vtable->release(tx.handle), POC_OK) << "the port was taken";
  EXPECT_EQ(rx.vtable->release(rx.handle), POC_OK) << "the port was taken";
}

TEST(Agents, ShutdownStopsBlockedAgentsAndReturns) {
  poc::test::fake_port fake;  // a foreign op that only a cancel completes
  fake.cancel_completes = true;
  auto r = std::make_unique<c_runtime>(2);
  auto [full_tx, full_rx] = r->channel(1);    // nobody receives: the producer blocks on send
  auto [empty_tx, empty_rx] = r->channel(1);  // nobody sends: the consumer blocks on receive
  done_box producer, consumer, timer, foreign;
  ASSERT_EQ(poc_cpp_producer_start(r->rt, full_tx, 1, 100, 4, &done_box::fn, &producer, nullptr),
            POC_OK);
  ASSERT_EQ(poc_cpp_consumer_start(r->rt, empty_rx, &done_box::fn, &consumer, nullptr), POC_OK);
  ASSERT_EQ(poc_cpp_timer_start(r->rt, empty_tx, 3'600'000, 0, &done_box::fn, &timer, nullptr),
            POC_OK);
  ASSERT_EQ(poc_cpp_consumer_start(r->rt, fake.receiver(), &done_box::fn, &foreign, nullptr),
            POC_OK);
  ASSERT_TRUE(fake.wait_pending(1)) << "the foreign receive never started";

  EXPECT_EQ(poc_cpp_runtime_shutdown(r->rt), POC_OK);  // returns: every agent completed
  for (done_box* b : {&producer, &consumer, &timer, &foreign}) {
    ASSERT_TRUE(b->wait());
    EXPECT_TRUE(is_stop_status(b->report.status)) << poc_status_str(b->report.status);
    EXPECT_EQ(b->count(), 1);
  }
  EXPECT_EQ(fake.release_calls, 1);
  // Later starts answer SHUTDOWN and leave the port with the caller.
  poc_agent_id id = 0;
  EXPECT_EQ(poc_cpp_consumer_start(r->rt, full_rx, &done_box::fn, &consumer, &id), POC_SHUTDOWN);
  EXPECT_EQ(full_rx.vtable->release(full_rx.handle), POC_OK) << "the port was taken";
  r.reset();
  EXPECT_EQ(consumer.count(), 1);
}
