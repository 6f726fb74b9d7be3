// poc::runtime and poc_cpp_runtime_*: threads, shutdown (bridge.h rule 8), lifetime of ports
// beyond their runtime. Helpers: port_harness.hpp.
#include "port_harness.hpp"

#include <poc/bridge.h>
#include <poc/error.hpp>
#include <poc/runtime.hpp>

#include "runtime_core.hpp"  // src/: asio_uses_std_aligned_alloc

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using namespace poc_test;
using namespace std::chrono_literals;

// ---- build configuration ----------------------------------------------------------------------

// Regression (found by scripts/sanitize asan as alloc-dealloc-mismatch): Asio 1.22 chooses between
// std::aligned_alloc/std::free and ::operator new/delete for its handler memory from the include
// order of each translation unit. The library's sources included Asio before any standard header,
// this file did not: a handler allocated here was freed with the other function by a runtime
// thread. poc/detail/asio_config.hpp, included first by every Poc header that uses Asio, settles it.
TEST(Runtime, AsioAllocatesWithTheSameFunctionsInTheLibraryAndItsUsers) {
#if defined(ASIO_HAS_STD_ALIGNED_ALLOC)
  constexpr bool here = true;
#else
  constexpr bool here = false;
#endif
  EXPECT_EQ(poc::detail::asio_uses_std_aligned_alloc(), here);
}

// ---- creation ---------------------------------------------------------------------------------

TEST(Runtime, NewRejectsBadThreadCountsAndNullOut) {
  poc_cpp_runtime* rt = nullptr;
  EXPECT_EQ(poc_cpp_runtime_new(0, &rt), POC_INVALID);
  EXPECT_EQ(poc_cpp_runtime_new(65, &rt), POC_INVALID);
  EXPECT_EQ(poc_cpp_runtime_new(1, nullptr), POC_INVALID);
  EXPECT_EQ(rt, nullptr);
  ASSERT_EQ(poc_cpp_runtime_new(64, &rt), POC_OK);
  poc_cpp_runtime_free(rt);
  poc_cpp_runtime_free(nullptr);  // ignored

  try {
    poc::runtime bad(0);
    ADD_FAILURE() << "poc::runtime(0) must throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), poc::errc::invalid);
  }
}

TEST(Runtime, RunsHandlersOnTheRequestedNumberOfThreads) {
  // Four handlers that each wait until all four are running at once: only possible with four
  // threads. (With fewer, the bounded wait fails instead of hanging.)
  constexpr int threads = 4;
  poc::runtime rt(threads);
  counter arrived;
  std::atomic<int> all_met{0};
  std::array<std::thread::id, threads> ids{};
  for (int i = 0; i < threads; ++i) {
    asio::post(rt.context(), [&, i] {
      ids[static_cast<std::size_t>(i)] = std::this_thread::get_id();
      arrived.add();
      if (arrived.wait_for(threads)) all_met.fetch_add(1);
    });
  }
  EXPECT_EQ(rt.shutdown(), std::error_code{});  // runs until the handlers are done
  EXPECT_EQ(all_met, threads);
  for (int i = 0; i < threads; ++i)
    for (int j = i + 1; j < threads; ++j) EXPECT_NE(ids[static_cast<std::size_t>(i)], ids[static_cast<std::size_t>(j)]);
}

TEST(Runtime, CppMakeChannelReportsErrorsAsErrc) {
  poc::runtime rt(1);
  EXPECT_EQ(rt.make_channel(0).error(), poc::errc::invalid);
  auto ports = rt.make_channel(2, 16);
  ASSERT_TRUE(ports.has_value());
  const poc::message m(1, std::vector<std::uint8_t>(17));
  EXPECT_EQ(try_send(ports->sender, m), POC_INVALID);  // over the 16-byte limit
  EXPECT_FALSE(rt.stopping());
  EXPECT_EQ(rt.shutdown(), std::error_code{});
  EXPECT_TRUE(rt.stopping());
  EXPECT_EQ(rt.make_channel(1).error(), poc::errc::shutdown);
  EXPECT_EQ(ports->sender.vtable->release(ports->sender.handle), POC_OK);
  EXPECT_EQ(ports->receiver.vtable->release(ports->receiver.handle), POC_OK);
}

// ---- rule 8: shutdown -------------------------------------------------------------------------

class RuntimeShutdown : public runtime_fixture {};

TEST_F(RuntimeShutdown, CompletesEveryPendingOpWithShutdown) {
  const channel full = make_channel(1);
  const poc_sender second = clone(full.tx);
  ASSERT_EQ(try_send(full.tx, make_message(0, 1)), POC_OK);
  std::array<send_record, 3> sends;
  ASSERT_EQ(send(full.tx, make_message(1, 1), sends[0]), POC_PENDING);
  ASSERT_EQ(send(second, make_message(2, 1), sends[1]), POC_PENDING);
  ASSERT_EQ(send(full.tx, make_message(3, 1), sends[2]), POC_PENDING);

  const channel empty = make_channel(4);
  std::array<recv_record, 3> recvs;
  for (recv_record& r : recvs) ASSERT_EQ(recv(empty.rx, r), POC_PENDING);

  ASSERT_EQ(poc_cpp_runtime_shutdown(rt_), POC_OK);
  // No waiting: shutdown returns after the completions it caused have run.
  for (const send_record& s : sends) {
    EXPECT_EQ(s.completions, 1);
    EXPECT_EQ(s.status, POC_SHUTDOWN);
  }
  for (const recv_record& r : recvs) {
    EXPECT_EQ(r.completions, 1);
    EXPECT_EQ(r.status, POC_SHUTDOWN);
    EXPECT_EQ(r.deliveries, 0);
  }
}

TEST_F(RuntimeShutdown, LaterCallsAnswerShutdownAndReleaseStaysValid) {
  const channel ch = make_channel(2);
  ASSERT_EQ(try_send(ch.tx, make_message(0, 1)), POC_OK);
  ASSERT_EQ(poc_cpp_runtime_shutdown(rt_), POC_OK);
  EXPECT_EQ(poc_cpp_runtime_shutdown(rt_), POC_OK);  // idempotent

  const poc::message m = make_message(1, 1);
  const poc_message_view v = m.view();
  send_record s;
  recv_record r;
  poc_sender out{};
  const auto* sv = ch.tx.vtable;
  const auto* rv = ch.rx.vtable;
  EXPECT_EQ(sv->try_send(ch.tx.handle, &v), POC_SHUTDOWN);
  EXPECT_EQ(sv->send(ch.tx.handle, &v, &send_record::on_complete, &s, &s.op), POC_SHUTDOWN);
  EXPECT_EQ(sv->cancel(ch.tx.handle, 1), POC_SHUTDOWN);
  EXPECT_EQ(sv->close(ch.tx.handle), POC_SHUTDOWN);
  EXPECT_EQ(sv->clone(ch.tx.handle, &out), POC_SHUTDOWN);
  EXPECT_EQ(rv->try_recv(ch.rx.handle, &recv_record::deliver, &r), POC_SHUTDOWN);
  EXPECT_EQ(rv->recv(ch.rx.handle, &recv_record::deliver, &recv_record::on_complete, &r, &r.op),
            POC_SHUTDOWN);
  EXPECT_EQ(rv->cancel(ch.rx.handle, 1), POC_SHUTDOWN);
  EXPECT_EQ(rv->close(ch.rx.handle), POC_SHUTDOWN);

  poc_sender tx{};
  poc_receiver rx{};
  EXPECT_EQ(poc_cpp_channel_new(rt_, 1, &tx, &rx), POC_SHUTDOWN);

  EXPECT_EQ(sv->release(ch.tx.handle), POC_OK);
  EXPECT_EQ(rv->release(ch.rx.handle), POC_OK);
  EXPECT_EQ(sv->release(ch.tx.handle), POC_INVALID);
  EXPECT_EQ(rv->release(ch.rx.handle), POC_INVALID);
  EXPECT_EQ(s.completions + r.completions + r.deliveries, 0);
}

TEST_F(RuntimeShutdown, ConcurrentShutdownCallsAllReturnOk) {
  const channel ch = make_channel(1);
  recv_record r;
  ASSERT_EQ(recv(ch.rx, r), POC_PENDING);
  std::array<poc_status, 4> results{};
  std::vector<std::thread> callers;
  for (poc_status& result : results)
    callers.emplace_back([this, &result] { result = poc_cpp_runtime_shutdown(rt_); });
  for (std::thread& t : callers) t.join();
  for (poc_status result : results) EXPECT_EQ(result, POC_OK);
  EXPECT_EQ(r.completions, 1);
  EXPECT_EQ(r.status, POC_SHUTDOWN);
}

TEST_F(RuntimeShutdown, FromOneOfItsOwnThreadsIsInvalid) {
  struct attempt {
    poc_cpp_runtime* rt;
    std::atomic<poc_status> result{-1};
    counter done{};
    static void on_complete(void* user, poc_status, const poc_message_view*) {
      auto* self = static_cast<attempt*>(user);
      self->result = poc_cpp_runtime_shutdown(self->rt);  // on a runtime thread
      self->done.add();
    }
  };
  const channel ch = make_channel(1);
  attempt a{.rt = rt_};
  poc_op_id op = 0;
  ASSERT_EQ(ch.rx.vtable->recv(ch.rx.handle, &recv_record::deliver, &attempt::on_complete, &a, &op),
            POC_PENDING);
  ASSERT_EQ(try_send(ch.tx, make_message(1, 1)), POC_OK);
  ASSERT_TRUE(a.done.wait_for(1));
  EXPECT_EQ(a.result, POC_INVALID);
  EXPECT_EQ(try_send(ch.tx, make_message(2, 1)), POC_OK) << "the refused shutdown changed nothing";
  EXPECT_EQ(poc_cpp_runtime_shutdown(rt_), POC_OK);

  poc::runtime cpp(1);  // the same through the C++ API
  std::error_code from_inside;
  counter ran;
  asio::post(cpp.context(), [&] {
    from_inside = cpp.shutdown();
    ran.add();
  });
  ASSERT_TRUE(ran.wait_for(1));
  EXPECT_EQ(from_inside, poc::errc::invalid);
}

TEST_F(RuntimeShutdown, DoesNotTouchAnotherRuntimesChannels) {
  poc_cpp_runtime* other = nullptr;
  ASSERT_EQ(poc_cpp_runtime_new(1, &other), POC_OK);
  channel theirs;
  ASSERT_EQ(poc_cpp_channel_new(other, 1, &theirs.tx, &theirs.rx), POC_OK);
  recv_record r;
  ASSERT_EQ(recv(theirs.rx, r), POC_PENDING);

  ASSERT_EQ(poc_cpp_runtime_shutdown(rt_), POC_OK);
  EXPECT_EQ(r.completions, 0);
  ASSERT_EQ(try_send(theirs.tx, make_message(5, 5)), POC_OK);
  ASSERT_TRUE(r.wait());
  EXPECT_EQ(r.status, POC_OK);
  EXPECT_EQ(r.msg.id, 5u);

  EXPECT_EQ(theirs.tx.vtable->release(theirs.tx.handle), POC_OK);
  EXPECT_EQ(theirs.rx.vtable->release(theirs.rx.handle), POC_OK);
  poc_cpp_runtime_free(other);
}

/// Work that never finishes (here: a work guard nobody resets) must not make shutdown hang: it
/// gives up after the configured bound, stops the io_context and says so on stderr.
TEST(Runtime, ShutdownIsBoundedWhenWorkNeverFinishes) {
  poc::runtime rt(2);
  rt.set_shutdown_timeout(100ms);
  auto stuck = asio::make_work_guard(rt.context());
  testing::internal::CaptureStderr();
  const std::error_code ec = rt.shutdown();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(ec, std::error_code{});
  EXPECT_NE(err.find("work still pending"), std::string::npos) << err;
  stuck.reset();
}

// ---- lifetime ---------------------------------------------------------------------------------

TEST(Runtime, FreeWithPortsStillHeldThenReleasingThemIsSafe) {
  poc_cpp_runtime* rt = nullptr;
  ASSERT_EQ(poc_cpp_runtime_new(2, &rt), POC_OK);
  channel ch;
  ASSERT_EQ(poc_cpp_channel_new(rt, 2, &ch.tx, &ch.rx), POC_OK);
  poc_sender second{};
  ASSERT_EQ(ch.tx.vtable->clone(ch.tx.handle, &second), POC_OK);
  ASSERT_EQ(try_send(ch.tx, make_message(1, 100)), POC_OK);
  recv_record pending;
  channel idle;
  ASSERT_EQ(poc_cpp_channel_new(rt, 1, &idle.tx, &idle.rx), POC_OK);
  ASSERT_EQ(recv(idle.rx, pending), POC_PENDING);

  poc_cpp_runtime_free(rt);  // shuts down; the channels outlive the runtime object
  EXPECT_EQ(pending.completions, 1);
  EXPECT_EQ(pending.status, POC_SHUTDOWN);

  EXPECT_EQ(try_send(second, make_message(2, 1)), POC_SHUTDOWN);
  recv_record r;
  EXPECT_EQ(try_recv(ch.rx, r), POC_SHUTDOWN);
  // Released in an awkward order: a sender, the receiver (while a sender lives), the last sender.
  EXPECT_EQ(ch.tx.vtable->release(ch.tx.handle), POC_OK);
  EXPECT_EQ(ch.rx.vtable->release(ch.rx.handle), POC_OK);
  EXPECT_EQ(second.vtable->release(second.handle), POC_OK);
  EXPECT_EQ(idle.rx.vtable->release(idle.rx.handle), POC_OK);
  EXPECT_EQ(idle.tx.vtable->release(idle.tx.handle), POC_OK);
  EXPECT_EQ(second.vtable->release(second.handle), POC_INVALID);
}

TEST(Runtime, DestroyedOnOneOfItsOwnThreadsDoesNotDeadlock) {
  auto* rt = new poc::runtime(2);
  counter destroyed;
  testing::internal::CaptureStderr();
  // The handler waits until asio::post has returned here: the io_context must outlive that call,
  // and the handler's `delete rt` may destroy it (scripts/sanitize tsan reported the post racing
  // ~io_context before the test waited).
  std::promise<void> posted;
  asio::post(rt->context(), [rt, &destroyed, was_posted = posted.get_future().share()] {
    EXPECT_EQ(was_posted.wait_for(10s), std::future_status::ready);
    delete rt;  // cannot join its own thread: shuts down and detaches instead
    destroyed.add();
  });
  posted.set_value();
  const bool ok = destroyed.wait_for(1);
  const std::string err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(ok);
  EXPECT_NE(err.find("own threads"), std::string::npos) << err;
}

// ---- several threads --------------------------------------------------------------------------

/// Four runtime threads, four senders (clones of one port) each re-issuing sends from their
/// completions, one receiver re-issuing recvs from its completions: every callback runs on some
/// runtime thread, concurrently with the others.
TEST(Runtime, SeveralThreadsCarryConcurrentStreamsWithoutLoss) {
  constexpr std::uint64_t streams = 4, per_stream = 3000;
  poc_cpp_runtime* rt = nullptr;
  ASSERT_EQ(poc_cpp_runtime_new(4, &rt), POC_OK);
  channel ch;
  ASSERT_EQ(poc_cpp_channel_new(rt, 2, &ch.tx, &ch.rx), POC_OK);

  std::vector<poc_sender> senders;
  std::vector<std::unique_ptr<send_pump>> pumps;
  for (std::uint64_t s = 0; s < streams; ++s) {
    poc_sender tx{};
    ASSERT_EQ(ch.tx.vtable->clone(ch.tx.handle, &tx), POC_OK);
    senders.push_back(tx);
    pumps.push_back(std::make_unique<send_pump>(tx, s + 1, per_stream, 32));
  }
  ASSERT_EQ(ch.tx.vtable->release(ch.tx.handle), POC_OK);  // the clones keep the channel open

  recv_chain chain(ch.rx);
  chain.start();
  for (auto& p : pumps) p->start();

  std::uint64_t sent_checksum = 0;
  for (std::size_t i = 0; i < pumps.size(); ++i) {
    send_pump& p = *pumps[i];
    ASSERT_TRUE(p.done.wait_for(1)) << "sender " << i << " stuck after " << p.sent;
    EXPECT_EQ(p.final_status, POC_OK);
    EXPECT_EQ(p.completions, p.pending_returns);
    sent_checksum += p.checksum;
  }
  for (const poc_sender& tx : senders) EXPECT_EQ(tx.vtable->release(tx.handle), POC_OK);
  ASSERT_TRUE(chain.done.wait_for(1)) << "receiver stuck after " << chain.received;
  EXPECT_EQ(chain.final_status, POC_CLOSED);  // the last sender's release closed the channel
  EXPECT_EQ(chain.received, streams * per_stream);
  EXPECT_EQ(chain.order_errors, 0u);
  EXPECT_EQ(chain.checksum, sent_checksum);
  EXPECT_EQ(chain.completions, chain.pending_returns);
  EXPECT_EQ(ch.rx.vtable->release(ch.rx.handle), POC_OK);
  poc_cpp_runtime_free(rt);
}

}  // namespace
