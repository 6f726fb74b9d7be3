// The C++ exporter through the raw C ABI: poc_cpp_channel_new and the sender/receiver vtables.
// Each test names the bridge.h rule it checks. Helpers: port_harness.hpp.
#include "port_harness.hpp"

#include <poc/bridge.h>
#include <poc/message.hpp>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace {

using namespace poc_test;

class Exporter : public runtime_fixture {};

/// A two-party barrier that spins instead of sleeping, so that both parties leave it within
/// nanoseconds of each other. (std::barrier wakes its sleeping party microseconds late, so one
/// side of a race would nearly always win.) Bounded: false after wait_timeout.
class spin_barrier {
 public:
  [[nodiscard]] bool arrive_and_wait() {
    const unsigned generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == 1) {  // the second to arrive
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      return true;
    }
    const auto deadline = std::chrono::steady_clock::now() + wait_timeout;
    for (unsigned spins = 1; generation_.load(std::memory_order_acquire) == generation; ++spins) {
      if (spins % 4096 == 0) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::yield();  // only matters when the two parties share a core
      }
    }
    return true;
  }

 private:
  std::atomic<unsigned> arrived_{0};
  std::atomic<unsigned> generation_{0};
};

/// Busy work of a length that varies with the iteration, done by one side of a race or the
/// other, so that both orders of the racing calls actually occur. Nothing depends on how long
/// it takes: it only shuffles who gets to the channel's mutex first.
void jitter(int iteration, int side) {
  if (iteration % 2 != side) return;
  static std::atomic<unsigned> sink{0};
  const int spins = (iteration * 7919) % 4096;
  for (int k = 0; k < spins; ++k) sink.fetch_add(1, std::memory_order_relaxed);
}

// ---- creation ---------------------------------------------------------------------------------

TEST_F(Exporter, VtablesCarryAbiVersionAndSize) {
  const channel ch = make_channel(1);
  ASSERT_NE(ch.tx.vtable, nullptr);
  ASSERT_NE(ch.rx.vtable, nullptr);
  EXPECT_EQ(ch.tx.vtable->abi_version, POC_ABI_VERSION);
  EXPECT_EQ(ch.tx.vtable->size, sizeof(poc_sender_vtable));
  EXPECT_EQ(ch.rx.vtable->abi_version, POC_ABI_VERSION);
  EXPECT_EQ(ch.rx.vtable->size, sizeof(poc_receiver_vtable));
  EXPECT_NE(ch.tx.handle, 0u);
  EXPECT_NE(ch.rx.handle, 0u);
  EXPECT_NE(ch.tx.handle, ch.rx.handle);
  // Every port of the exporter shares the same static vtables.
  const channel other = make_channel(1);
  EXPECT_EQ(other.tx.vtable, ch.tx.vtable);
  EXPECT_EQ(other.rx.vtable, ch.rx.vtable);
}

TEST_F(Exporter, ZeroCapacityAndNullArgumentsAreInvalid) {
  poc_sender tx{};
  poc_receiver rx{};
  EXPECT_EQ(poc_cpp_channel_new(rt_, 0, &tx, &rx), POC_INVALID);
  EXPECT_EQ(poc_cpp_channel_new_ex(rt_, 0, 64, &tx, &rx), POC_INVALID);
  EXPECT_EQ(poc_cpp_channel_new(nullptr, 1, &tx, &rx), POC_INVALID);
  EXPECT_EQ(poc_cpp_channel_new(rt_, 1, nullptr, &rx), POC_INVALID);
  EXPECT_EQ(poc_cpp_channel_new(rt_, 1, &tx, nullptr), POC_INVALID);
  EXPECT_EQ(tx.handle, 0u);  // nothing was written
  EXPECT_EQ(rx.handle, 0u);
}

// ---- rule 2: fast paths -----------------------------------------------------------------------

TEST_F(Exporter, FastPathsReturnOkWithoutCallingTheCompletion) {
  const channel ch = make_channel(2);
  const poc::message m1 = make_message(1, 3), m2 = make_message(2, 0), m3 = make_message(3, 5);

  recv_record empty;
  EXPECT_EQ(try_recv(ch.rx, empty), POC_EMPTY);
  EXPECT_EQ(empty.deliveries, 0);

  EXPECT_EQ(try_send(ch.tx, m1), POC_OK);
  send_record s2;
  EXPECT_EQ(send(ch.tx, m2, s2), POC_OK);
  EXPECT_EQ(try_send(ch.tx, m3), POC_FULL);

  recv_record r1, r2, r3;
  EXPECT_EQ(try_recv(ch.rx, r1), POC_OK);  // deliver ran synchronously, before the return
  EXPECT_EQ(r1.deliveries, 1);
  EXPECT_EQ(r1.status, POC_OK);
  EXPECT_EQ(r1.msg, m1);
  EXPECT_EQ(recv(ch.rx, r2), POC_OK);
  EXPECT_EQ(r2.deliveries, 1);
  EXPECT_EQ(r2.msg, m2);
  EXPECT_EQ(try_recv(ch.rx, r3), POC_EMPTY);

  quiesce();  // every completion the runtime would ever run has run now
  EXPECT_EQ(s2.completions, 0);
  EXPECT_EQ(r2.completions, 0);
  EXPECT_EQ(r1.deliveries + r2.deliveries + r3.deliveries, 2);
}

// ---- rule 3: exactly once, for every op kind --------------------------------------------------

TEST_F(Exporter, PendingSendCompletesExactlyOnceWhenRoomAppears) {
  const channel ch = make_channel(1);
  const poc::message m1 = make_message(1, 8), m2 = make_message(2, 8);
  ASSERT_EQ(try_send(ch.tx, m1), POC_OK);
  send_record s;
  ASSERT_EQ(send(ch.tx, m2, s), POC_PENDING);
  EXPECT_NE(s.op, 0u);

  recv_record r1;
  ASSERT_EQ(recv(ch.rx, r1), POC_OK);  // takes m1 and lets m2 in
  EXPECT_EQ(r1.msg, m1);
  ASSERT_TRUE(s.wait()) << "pending send never completed";
  EXPECT_EQ(s.status, POC_OK);
  EXPECT_EQ(s.op_seen, s.op) << "the op id must be written before the op can complete";

  recv_record r2;
  ASSERT_EQ(try_recv(ch.rx, r2), POC_OK);
  EXPECT_EQ(r2.msg, m2);
  quiesce();
  EXPECT_EQ(s.completions, 1);
  EXPECT_EQ(r1.completions + r2.completions, 0);
}

TEST_F(Exporter, PendingRecvCompletesExactlyOnceWhenAMessageArrives) {
  const channel ch = make_channel(1);
  recv_record r;
  ASSERT_EQ(recv(ch.rx, r), POC_PENDING);
  EXPECT_NE(r.op, 0u);
  const poc::message m = make_message(7, 100);
  ASSERT_EQ(try_send(ch.tx, m), POC_OK);  // handed straight to the waiting receive
  ASSERT_TRUE(r.wait()) << "pending recv never completed";
  EXPECT_EQ(r.status, POC_OK);
  EXPECT_EQ(r.msg, m);
  quiesce();
  EXPECT_EQ(r.completions, 1);
  EXPECT_EQ(r.deliveries, 0);
}

// ---- rule 5: cancellation ---------------------------------------------------------------------

TEST_F(Exporter, CancelledSendCompletesExactlyOnceAndEnqueuesNothing) {
  const channel ch = make_channel(1);
  const poc::message m1 = make_message(1, 4), m2 = make_message(2, 4);
  ASSERT_EQ(try_send(ch.tx, m1), POC_OK);
  send_record s;
  ASSERT_EQ(send(ch.tx, m2, s), POC_PENDING);
  EXPECT_EQ(ch.tx.vtable->cancel(ch.tx.handle, s.op), POC_OK);
  ASSERT_TRUE(s.wait());
  EXPECT_EQ(s.status, POC_CANCELLED);

  // Cancel is a request: a finished, unknown or zero op id is fine.
  EXPECT_EQ(ch.tx.vtable->cancel(ch.tx.handle, s.op), POC_OK);
  EXPECT_EQ(ch.tx.vtable->cancel(ch.tx.handle, 0xDEAD'BEEFu), POC_OK);
  EXPECT_EQ(ch.tx.vtable->cancel(ch.tx.handle, 0), POC_OK);

  recv_record r1, r2;
  ASSERT_EQ(try_recv(ch.rx, r1), POC_OK);
  EXPECT_EQ(r1.msg, m1);
  EXPECT_EQ(try_recv(ch.rx, r2), POC_EMPTY) << "a cancelled send must not enqueue";
  quiesce();
  EXPECT_EQ(s.completions, 1);
}

TEST_F(Exporter, CancelledRecvCompletesExactlyOnceAndDequeuesNothing) {
  const channel ch = make_channel(1);
  recv_record r;
  ASSERT_EQ(recv(ch.rx, r), POC_PENDING);
  EXPECT_EQ(ch.rx.vtable->cancel(ch.rx.handle, r.op), POC_OK);
  ASSERT_TRUE(r.wait());
  EXPECT_EQ(r.status, POC_CANCELLED);
  EXPECT_FALSE(r.has_msg);

  const poc::message m = make_message(9, 9);
  ASSERT_EQ(try_send(ch.tx, m), POC_OK);
  recv_record next;
  ASSERT_EQ(try_recv(ch.rx, next), POC_OK) << "the message must stay for the next receive";
  EXPECT_EQ(next.msg, m);
  EXPECT_EQ(ch.rx.vtable->cancel(ch.rx.handle, r.op), POC_OK);
  quiesce();
  EXPECT_EQ(r.completions, 1);
}

TEST_F(Exporter, CancelOnlyReachesOpsOfTheCallingPort) {
  const channel ch = make_channel(1);
  recv_record r;
  ASSERT_EQ(recv(ch.rx, r), POC_PENDING);
  // Op ids name ops of one port: the sender cannot cancel the receiver's op.
  EXPECT_EQ(ch.tx.vtable->cancel(ch.tx.handle, r.op), POC_OK);
  const poc::message m = make_message(1, 1);
  ASSERT_EQ(try_send(ch.tx, m), POC_OK);
  ASSERT_TRUE(r.wait());
  EXPECT_EQ(r.status, POC_OK);
  EXPECT_EQ(r.msg, m);
}

/// A pending recv is cancelled while a send races it, thousands of times. Whatever wins, the
/// recv completes exactly once and the message is never lost: either the recv got it, or it is
/// still queued for the next receive.
TEST_F(Exporter, CancelRacingAMessageNeverLosesIt) {
  constexpr int iterations = 3000;
  const channel ch = make_channel(1);
  spin_barrier sync;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> current{0};
  std::atomic<int> send_failures{0};

  std::thread sender([&] {
    for (;;) {
      if (!sync.arrive_and_wait() || stop) return;  // go
      const auto i = current.load();
      jitter(static_cast<int>(i), 1);
      if (try_send(ch.tx, make_message(i, 16)) != POC_OK) send_failures.fetch_add(1);
      if (!sync.arrive_and_wait()) return;  // done
    }
  });

  int won = 0, cancelled = 0;
  // One iteration. The checks come after both barriers, so a failing iteration returns with
  // the sender thread parked at "go", where the shutdown code below finds it.
  auto iteration = [&](int i) {
    recv_record r;
    const poc_status st = recv(ch.rx, r);
    current = static_cast<std::uint64_t>(i);
    ASSERT_TRUE(sync.arrive_and_wait()) << "sender thread gone, iteration " << i;
    jitter(i, 0);
    if (st == POC_PENDING) {
      EXPECT_EQ(ch.rx.vtable->cancel(ch.rx.handle, r.op), POC_OK);
    }
    ASSERT_TRUE(sync.arrive_and_wait()) << "sender thread stuck, iteration " << i;

    ASSERT_EQ(st, POC_PENDING) << "iteration " << i;
    ASSERT_TRUE(r.wait()) << "recv never completed, iteration " << i;
    if (r.status == POC_OK) {
      ++won;
      EXPECT_EQ(r.msg.id, static_cast<std::uint64_t>(i));
    } else {
      ASSERT_EQ(r.status, POC_CANCELLED) << "iteration " << i;
      ++cancelled;
      recv_record left;
      ASSERT_EQ(try_recv(ch.rx, left), POC_OK) << "message lost to a cancel, iteration " << i;
      EXPECT_EQ(left.msg.id, static_cast<std::uint64_t>(i));
    }
    recv_record none;
    EXPECT_EQ(try_recv(ch.rx, none), POC_EMPTY) << "iteration " << i;
    EXPECT_EQ(r.completions + r.deliveries, 1) << "iteration " << i;
  };
  for (int i = 0; i < iterations && !HasFailure(); ++i) iteration(i);
  stop = true;
  (void)sync.arrive_and_wait();  // releases the sender from "go" (or times out if it is gone)
  sender.join();

  EXPECT_EQ(send_failures, 0);
  EXPECT_EQ(won + cancelled, iterations);  // messages in == messages out
  std::printf("[          ] recv won the race %d times, cancel won %d times\n", won, cancelled);
}

/// The mirror image: a pending send is cancelled while a receive makes room for it. The send
/// completes exactly once; OK means its message is queued, CANCELLED means it is not.
TEST_F(Exporter, CancelRacingRoomNeverDuplicatesOrLosesASend) {
  constexpr int iterations = 3000;
  const channel ch = make_channel(1);
  spin_barrier sync;
  std::atomic<bool> stop{false};
  std::atomic<int> receive_failures{0};
  std::atomic<int> current{0};

  std::thread receiver([&] {
    for (;;) {
      if (!sync.arrive_and_wait() || stop) return;
      jitter(current.load(), 1);
      recv_record r;  // takes the filler; a waiting send moves into the buffer
      if (try_recv(ch.rx, r) != POC_OK || r.msg.id != 0) receive_failures.fetch_add(1);
      if (!sync.arrive_and_wait()) return;
    }
  });

  int won = 0, cancelled = 0;
  auto iteration = [&](int i) {  // checks after both barriers, as in the test above
    send_record s;
    const poc_status fill = try_send(ch.tx, make_message(0, 4));
    const poc_status st =
        fill == POC_OK ? send(ch.tx, make_message(static_cast<std::uint64_t>(i), 4), s) : fill;
    current = i;
    ASSERT_TRUE(sync.arrive_and_wait()) << "receiver thread gone, iteration " << i;
    jitter(i, 0);
    if (st == POC_PENDING) {
      EXPECT_EQ(ch.tx.vtable->cancel(ch.tx.handle, s.op), POC_OK);
    }
    ASSERT_TRUE(sync.arrive_and_wait()) << "receiver thread stuck, iteration " << i;

    ASSERT_EQ(fill, POC_OK) << "iteration " << i;
    ASSERT_EQ(st, POC_PENDING) << "iteration " << i;
    ASSERT_TRUE(s.wait()) << "send never completed, iteration " << i;
    recv_record left;
    const poc_status rs = try_recv(ch.rx, left);
    if (s.status == POC_OK) {
      ++won;
      ASSERT_EQ(rs, POC_OK) << "a send that reported OK lost its message, iteration " << i;
      EXPECT_EQ(left.msg.id, static_cast<std::uint64_t>(i));
    } else {
      ASSERT_EQ(s.status, POC_CANCELLED) << "iteration " << i;
      ++cancelled;
      EXPECT_EQ(rs, POC_EMPTY) << "a cancelled send enqueued its message, iteration " << i;
    }
    EXPECT_EQ(s.completions, 1) << "iteration " << i;
  };
  for (int i = 1; i <= iterations && !HasFailure(); ++i) iteration(i);
  stop = true;
  (void)sync.arrive_and_wait();
  receiver.join();

  EXPECT_EQ(receive_failures, 0);
  EXPECT_EQ(won + cancelled, iterations);
  std::printf("[          ] send won the race %d times, cancel won %d times\n", won, cancelled);
}

// ---- rule 6: order ----------------------------------------------------------------------------

TEST_F(Exporter, MessagesFromOneAwaitingSenderArriveInOrder) {
  const channel ch = make_channel(4);
  send_pump pump(ch.tx, /*stream=*/3, /*count=*/2000, /*max_len=*/40);
  recv_chain chain(ch.rx);
  chain.start();
  pump.start();
  ASSERT_TRUE(pump.done.wait_for(1)) << "sender stuck after " << pump.sent << " messages";
  ASSERT_EQ(pump.final_status, POC_OK);
  ASSERT_EQ(ch.tx.vtable->release(ch.tx.handle), POC_OK);  // last sender: closes the channel
  ASSERT_TRUE(chain.done.wait_for(1)) << "receiver stuck after " << chain.received << " messages";
  EXPECT_EQ(chain.final_status, POC_CLOSED);
  EXPECT_EQ(chain.received, 2000u);
  EXPECT_EQ(chain.order_errors, 0u);
  EXPECT_EQ(chain.checksum, pump.checksum);
  EXPECT_EQ(pump.completions, pump.pending_returns);
  EXPECT_EQ(chain.completions, chain.pending_returns);
}

TEST_F(Exporter, ConcurrentRecvsAreServedInIssueOrder) {
  const channel ch = make_channel(1);
  std::array<recv_record, 6> records;
  for (recv_record& r : records) ASSERT_EQ(recv(ch.rx, r), POC_PENDING);
  for (std::uint64_t i = 0; i < records.size(); ++i) ASSERT_EQ(try_send(ch.tx, make_message(i, 2)), POC_OK);
  for (std::uint64_t i = 0; i < records.size(); ++i) {
    ASSERT_TRUE(records[i].wait()) << "recv " << i;
    EXPECT_EQ(records[i].status, POC_OK);
    EXPECT_EQ(records[i].msg.id, i) << "recv " << i << " was not served in issue order";
  }
  quiesce();
  for (const recv_record& r : records) EXPECT_EQ(r.completions, 1);
}

/// Capacity 1 and 10 000 messages: the sender is held back by every single message, nothing is
/// dropped, order and checksum survive. The sending side re-issues sends from completion
/// callbacks; the receiving side is a plain thread that waits for each pending recv.
TEST_F(Exporter, BackpressureWithCapacityOneDropsNothing) {
  constexpr std::uint64_t count = 10'000;
  const channel ch = make_channel(1);
  send_pump pump(ch.tx, /*stream=*/1, count, /*max_len=*/64);
  // Started before anyone receives: message 0 fills the channel, message 1 must wait.
  pump.start();
  ASSERT_EQ(pump.pending_returns, 1);
  ASSERT_EQ(pump.sent, 1u);

  std::uint64_t received = 0, checksum = 0, order_errors = 0;
  int pending_returns = 0, completions = 0;
  poc_status last = POC_OK;
  std::thread receiver([&] {
    for (;;) {
      recv_record r;
      const poc_status s = recv(ch.rx, r);
      if (s == POC_PENDING) {
        ++pending_returns;
        if (!r.wait()) {
          last = -1;
          return;
        }
      } else if (s != POC_OK) {
        last = s;
        return;
      }
      completions += r.completions;
      if (r.status != POC_OK) {
        last = r.status;
        return;
      }
      if (r.msg.id != poc::make_id(1, received) || !poc::check_pattern(r.msg.id, r.msg.payload))
        ++order_errors;
      checksum += poc::checksum(r.msg);
      ++received;
    }
  });

  const bool sent_all = pump.done.wait_for(1);
  if (sent_all) {
    EXPECT_EQ(ch.tx.vtable->release(ch.tx.handle), POC_OK);  // ends the receiver
  }
  receiver.join();  // bounded: each of its waits is
  ASSERT_TRUE(sent_all) << "sender stuck after " << pump.sent << " messages";

  EXPECT_EQ(pump.final_status, POC_OK);
  EXPECT_EQ(last, POC_CLOSED);
  EXPECT_EQ(received, count);
  EXPECT_EQ(order_errors, 0u);
  EXPECT_EQ(checksum, pump.checksum);
  EXPECT_EQ(pump.completions, pump.pending_returns);
  EXPECT_EQ(completions, pending_returns);
}

// ---- rule 7: close ----------------------------------------------------------------------------

TEST_F(Exporter, SenderCloseLetsTheReceiverDrainThenReportsClosed) {
  const channel ch = make_channel(4);
  for (std::uint64_t i = 0; i < 3; ++i) ASSERT_EQ(try_send(ch.tx, make_message(i, 1)), POC_OK);
  EXPECT_EQ(ch.tx.vtable->close(ch.tx.handle), POC_OK);
  EXPECT_EQ(ch.tx.vtable->close(ch.tx.handle), POC_OK);  // idempotent
  EXPECT_EQ(try_send(ch.tx, make_message(9, 1)), POC_CLOSED);
  send_record late;
  EXPECT_EQ(send(ch.tx, make_message(9, 1), late), POC_CLOSED);

  for (std::uint64_t i = 0; i < 3; ++i) {
    recv_record r;
    ASSERT_EQ(recv(ch.rx, r), POC_OK);
    EXPECT_EQ(r.msg.id, i);
  }
  recv_record r1, r2;
  EXPECT_EQ(try_recv(ch.rx, r1), POC_CLOSED);
  EXPECT_EQ(recv(ch.rx, r2), POC_CLOSED);
  quiesce();
  EXPECT_EQ(late.completions, 0);
  EXPECT_EQ(r1.deliveries + r2.deliveries + r2.completions, 0);
}

TEST_F(Exporter, SenderCloseCompletesPendingSendsAndRecvsWithClosed) {
  const channel full = make_channel(1);
  const poc_sender other = clone(full.tx);
  ASSERT_EQ(try_send(full.tx, make_message(0, 1)), POC_OK);
  send_record a, b, c;
  ASSERT_EQ(send(full.tx, make_message(1, 1), a), POC_PENDING);
  ASSERT_EQ(send(other, make_message(2, 1), b), POC_PENDING);
  ASSERT_EQ(send(full.tx, make_message(3, 1), c), POC_PENDING);

  const channel empty = make_channel(1);
  recv_record r;
  ASSERT_EQ(recv(empty.rx, r), POC_PENDING);

  EXPECT_EQ(other.vtable->close(other.handle), POC_OK);  // any sender closes for all
  EXPECT_EQ(empty.tx.vtable->close(empty.tx.handle), POC_OK);
  for (send_record* s : {&a, &b, &c}) {
    ASSERT_TRUE(s->wait());
    EXPECT_EQ(s->status, POC_CLOSED);
  }
  ASSERT_TRUE(r.wait());
  EXPECT_EQ(r.status, POC_CLOSED);

  recv_record first, after;
  ASSERT_EQ(try_recv(full.rx, first), POC_OK);  // what was queued before close is drained
  EXPECT_EQ(first.msg.id, 0u);
  EXPECT_EQ(try_recv(full.rx, after), POC_CLOSED);
  quiesce();
  for (send_record* s : {&a, &b, &c}) EXPECT_EQ(s->completions, 1);
  EXPECT_EQ(r.completions, 1);
}

TEST_F(Exporter, ReleasingTheLastSenderClosesTheChannel) {
  const channel ch = make_channel(4);
  const poc_sender second = clone(ch.tx);
  ASSERT_EQ(try_send(ch.tx, make_message(1, 1)), POC_OK);
  ASSERT_EQ(ch.tx.vtable->release(ch.tx.handle), POC_OK);
  ASSERT_EQ(try_send(second, make_message(2, 1)), POC_OK) << "one sender is still alive";

  recv_record a, b, waiting;
  ASSERT_EQ(recv(ch.rx, a), POC_OK);
  ASSERT_EQ(recv(ch.rx, b), POC_OK);
  ASSERT_EQ(recv(ch.rx, waiting), POC_PENDING);
  ASSERT_EQ(second.vtable->release(second.handle), POC_OK);
  ASSERT_TRUE(waiting.wait());
  EXPECT_EQ(waiting.status, POC_CLOSED);
  recv_record after;
  EXPECT_EQ(try_recv(ch.rx, after), POC_CLOSED);
  EXPECT_EQ(a.msg.id, 1u);
  EXPECT_EQ(b.msg.id, 2u);
}

TEST_F(Exporter, ReleasingASenderCancelsOnlyItsOwnPendingSends) {
  const channel ch = make_channel(1);
  const poc_sender second = clone(ch.tx);
  ASSERT_EQ(try_send(ch.tx, make_message(0, 1)), POC_OK);
  send_record mine, theirs;
  ASSERT_EQ(send(ch.tx, make_message(1, 1), mine), POC_PENDING);
  ASSERT_EQ(send(second, make_message(2, 1), theirs), POC_PENDING);

  ASSERT_EQ(ch.tx.vtable->release(ch.tx.handle), POC_OK);
  ASSERT_TRUE(mine.wait());
  EXPECT_EQ(mine.status, POC_CANCELLED);

  recv_record r0, r2;
  ASSERT_EQ(recv(ch.rx, r0), POC_OK);  // makes room for the other sender's message
  EXPECT_EQ(r0.msg.id, 0u);
  ASSERT_TRUE(theirs.wait());
  EXPECT_EQ(theirs.status, POC_OK);
  ASSERT_EQ(recv(ch.rx, r2), POC_OK);
  EXPECT_EQ(r2.msg.id, 2u);
  quiesce();
  EXPECT_EQ(mine.completions, 1);
  EXPECT_EQ(theirs.completions, 1);
}

TEST_F(Exporter, ReceiverCloseFailsPendingAndLaterSendsAndPendingRecvs) {
  const channel full = make_channel(1);
  ASSERT_EQ(try_send(full.tx, make_message(0, 1)), POC_OK);
  send_record a, b;
  ASSERT_EQ(send(full.tx, make_message(1, 1), a), POC_PENDING);
  ASSERT_EQ(send(full.tx, make_message(2, 1), b), POC_PENDING);
  EXPECT_EQ(full.rx.vtable->close(full.rx.handle), POC_OK);
  EXPECT_EQ(full.rx.vtable->close(full.rx.handle), POC_OK);  // idempotent
  for (send_record* s : {&a, &b}) {
    ASSERT_TRUE(s->wait());
    EXPECT_EQ(s->status, POC_CLOSED);
  }
  send_record late;
  EXPECT_EQ(try_send(full.tx, make_message(3, 1)), POC_CLOSED);
  EXPECT_EQ(send(full.tx, make_message(3, 1), late), POC_CLOSED);
  recv_record dropped, dropped2;
  EXPECT_EQ(try_recv(full.rx, dropped), POC_CLOSED) << "queued messages are dropped";
  EXPECT_EQ(recv(full.rx, dropped2), POC_CLOSED);

  const channel empty = make_channel(1);
  recv_record r1, r2;
  ASSERT_EQ(recv(empty.rx, r1), POC_PENDING);
  ASSERT_EQ(recv(empty.rx, r2), POC_PENDING);
  EXPECT_EQ(empty.rx.vtable->close(empty.rx.handle), POC_OK);
  for (recv_record* r : {&r1, &r2}) {
    ASSERT_TRUE(r->wait());
    EXPECT_EQ(r->status, POC_CLOSED);
  }
  quiesce();
  EXPECT_EQ(a.completions + b.completions, 2);
  EXPECT_EQ(late.completions, 0);
  EXPECT_EQ(r1.completions + r2.completions, 2);
}

TEST_F(Exporter, ReceiverReleaseFailsPendingAndLaterSends) {
  const channel ch = make_channel(1);
  ASSERT_EQ(try_send(ch.tx, make_message(0, 1)), POC_OK);
  send_record s;
  ASSERT_EQ(send(ch.tx, make_message(1, 1), s), POC_PENDING);
  ASSERT_EQ(ch.rx.vtable->release(ch.rx.handle), POC_OK);
  ASSERT_TRUE(s.wait());
  EXPECT_EQ(s.status, POC_CLOSED);
  EXPECT_EQ(try_send(ch.tx, make_message(2, 1)), POC_CLOSED);
  quiesce();
  EXPECT_EQ(s.completions, 1);
}

// ---- handles ----------------------------------------------------------------------------------

/// Calls every function of both vtables with `handle`; each must answer POC_INVALID and call
/// nothing.
void expect_every_function_rejects(std::uint64_t handle, const poc_sender_vtable* sv,
                                   const poc_receiver_vtable* rv, const char* what) {
  SCOPED_TRACE(what);
  const poc::message m = make_message(1, 4);
  const poc_message_view v = m.view();
  send_record s;
  recv_record r;
  poc_sender clone_out{};
  EXPECT_EQ(sv->try_send(handle, &v), POC_INVALID);
  EXPECT_EQ(sv->send(handle, &v, &send_record::on_complete, &s, &s.op), POC_INVALID);
  EXPECT_EQ(sv->cancel(handle, 1), POC_INVALID);
  EXPECT_EQ(sv->close(handle), POC_INVALID);
  EXPECT_EQ(sv->clone(handle, &clone_out), POC_INVALID);
  EXPECT_EQ(sv->release(handle), POC_INVALID);
  EXPECT_EQ(rv->try_recv(handle, &recv_record::deliver, &r), POC_INVALID);
  EXPECT_EQ(rv->recv(handle, &recv_record::deliver, &recv_record::on_complete, &r, &r.op), POC_INVALID);
  EXPECT_EQ(rv->cancel(handle, 1), POC_INVALID);
  EXPECT_EQ(rv->close(handle), POC_INVALID);
  EXPECT_EQ(rv->release(handle), POC_INVALID);
  EXPECT_EQ(s.completions, 0);
  EXPECT_EQ(r.deliveries + r.completions, 0);
  EXPECT_EQ(clone_out.handle, 0u);
}

TEST_F(Exporter, ForgedStaleAndReleasedHandlesAreInvalid) {
  const channel ch = make_channel(2);
  const poc_sender_vtable* sv = ch.tx.vtable;
  const poc_receiver_vtable* rv = ch.rx.vtable;

  expect_every_function_rejects(0, sv, rv, "zero");
  expect_every_function_rejects(~std::uint64_t{0}, sv, rv, "all ones");
  expect_every_function_rejects(ch.tx.handle + 1000, sv, rv, "sender index out of range");
  expect_every_function_rejects(ch.tx.handle ^ (std::uint64_t{1} << 33), sv, rv, "wrong generation");
  expect_every_function_rejects(ch.tx.handle & 0xFFFF'FFFFu, sv, rv, "index without tag");
  expect_every_function_rejects(42, sv, rv, "small integer (another runtime's style of handle)");

  // Released: the handle and every copy of it are dead, even after its slot is reused.
  poc_sender temp{};
  ASSERT_EQ(sv->clone(ch.tx.handle, &temp), POC_OK);
  ASSERT_EQ(sv->release(temp.handle), POC_OK);
  expect_every_function_rejects(temp.handle, sv, rv, "released sender");
  poc_sender reuse = clone(ch.tx);
  EXPECT_NE(reuse.handle, temp.handle);
  EXPECT_EQ(try_send(reuse, make_message(1, 1)), POC_OK);
  expect_every_function_rejects(temp.handle, sv, rv, "released sender after slot reuse");

  // The live ports still work after all of that.
  EXPECT_EQ(try_send(ch.tx, make_message(2, 1)), POC_OK);
  recv_record r;
  EXPECT_EQ(try_recv(ch.rx, r), POC_OK);
}

TEST_F(Exporter, WrongKindHandlesAreInvalid) {
  const channel ch = make_channel(2);
  const poc::message m = make_message(1, 4);
  const poc_message_view v = m.view();
  send_record s;
  recv_record r;
  poc_sender out{};
  // A receiver handle given to the sender vtable, and the other way round.
  EXPECT_EQ(ch.tx.vtable->try_send(ch.rx.handle, &v), POC_INVALID);
  EXPECT_EQ(ch.tx.vtable->send(ch.rx.handle, &v, &send_record::on_complete, &s, &s.op), POC_INVALID);
  EXPECT_EQ(ch.tx.vtable->cancel(ch.rx.handle, 1), POC_INVALID);
  EXPECT_EQ(ch.tx.vtable->close(ch.rx.handle), POC_INVALID);
  EXPECT_EQ(ch.tx.vtable->clone(ch.rx.handle, &out), POC_INVALID);
  EXPECT_EQ(ch.tx.vtable->release(ch.rx.handle), POC_INVALID);
  EXPECT_EQ(ch.rx.vtable->try_recv(ch.tx.handle, &recv_record::deliver, &r), POC_INVALID);
  EXPECT_EQ(ch.rx.vtable->recv(ch.tx.handle, &recv_record::deliver, &recv_record::on_complete, &r, &r.op),
            POC_INVALID);
  EXPECT_EQ(ch.rx.vtable->cancel(ch.tx.handle, 1), POC_INVALID);
  EXPECT_EQ(ch.rx.vtable->close(ch.tx.handle), POC_INVALID);
  EXPECT_EQ(ch.rx.vtable->release(ch.tx.handle), POC_INVALID);
  // Nothing happened to the channel.
  EXPECT_EQ(try_send(ch.tx, m), POC_OK);
  EXPECT_EQ(try_recv(ch.rx, r), POC_OK);
  EXPECT_EQ(r.msg, m);
}

TEST_F(Exporter, DoubleReleaseIsInvalid) {
  const channel ch = make_channel(1);
  const poc_sender second = clone(ch.tx);
  EXPECT_EQ(second.vtable->release(second.handle), POC_OK);
  EXPECT_EQ(second.vtable->release(second.handle), POC_INVALID);
  EXPECT_EQ(ch.tx.vtable->release(ch.tx.handle), POC_OK);
  EXPECT_EQ(ch.tx.vtable->release(ch.tx.handle), POC_INVALID);
  EXPECT_EQ(ch.rx.vtable->release(ch.rx.handle), POC_OK);
  EXPECT_EQ(ch.rx.vtable->release(ch.rx.handle), POC_INVALID);
}

// ---- arguments --------------------------------------------------------------------------------

TEST_F(Exporter, OversizedPayloadIsInvalid) {
  const channel ch = make_channel(1);
  std::vector<std::uint8_t> big(POC_DEFAULT_MAX_PAYLOAD + 1);
  poc_message_view v{1, big.data(), big.size()};
  send_record s;
  EXPECT_EQ(ch.tx.vtable->try_send(ch.tx.handle, &v), POC_INVALID);
  EXPECT_EQ(ch.tx.vtable->send(ch.tx.handle, &v, &send_record::on_complete, &s, &s.op), POC_INVALID);
  v.len = POC_DEFAULT_MAX_PAYLOAD;  // exactly the limit is fine
  EXPECT_EQ(ch.tx.vtable->try_send(ch.tx.handle, &v), POC_OK);
  recv_record r;
  ASSERT_EQ(try_recv(ch.rx, r), POC_OK);
  EXPECT_EQ(r.msg.payload.size(), POC_DEFAULT_MAX_PAYLOAD);

  const channel small = make_channel(1, /*max_payload=*/8);
  EXPECT_EQ(try_send(small.tx, make_message(1, 9)), POC_INVALID);
  EXPECT_EQ(send(small.tx, make_message(1, 9), s), POC_INVALID);
  EXPECT_EQ(try_send(small.tx, make_message(1, 8)), POC_OK);
  quiesce();
  EXPECT_EQ(s.completions, 0);
}

TEST_F(Exporter, NullPointersAreInvalid) {
  const channel ch = make_channel(1);
  const poc::message m = make_message(1, 4);
  const poc_message_view v = m.view();
  const poc_message_view no_data{1, nullptr, 4};
  const poc_message_view empty{1, nullptr, 0};  // NULL data is fine when len is 0
  send_record s;
  recv_record r;
  const auto* sv = ch.tx.vtable;
  const auto* rv = ch.rx.vtable;

  EXPECT_EQ(sv->try_send(ch.tx.handle, nullptr), POC_INVALID);
  EXPECT_EQ(sv->try_send(ch.tx.handle, &no_data), POC_INVALID);
  EXPECT_EQ(sv->send(ch.tx.handle, nullptr, &send_record::on_complete, &s, &s.op), POC_INVALID);
  EXPECT_EQ(sv->send(ch.tx.handle, &v, nullptr, &s, &s.op), POC_INVALID);
  EXPECT_EQ(sv->send(ch.tx.handle, &v, &send_record::on_complete, &s, nullptr), POC_INVALID);
  EXPECT_EQ(sv->clone(ch.tx.handle, nullptr), POC_INVALID);
  EXPECT_EQ(rv->try_recv(ch.rx.handle, nullptr, &r), POC_INVALID);
  EXPECT_EQ(rv->recv(ch.rx.handle, nullptr, &recv_record::on_complete, &r, &r.op), POC_INVALID);
  EXPECT_EQ(rv->recv(ch.rx.handle, &recv_record::deliver, nullptr, &r, &r.op), POC_INVALID);
  EXPECT_EQ(rv->recv(ch.rx.handle, &recv_record::deliver, &recv_record::on_complete, &r, nullptr),
            POC_INVALID);

  EXPECT_EQ(sv->try_send(ch.tx.handle, &empty), POC_OK);
  ASSERT_EQ(try_recv(ch.rx, r), POC_OK);
  EXPECT_EQ(r.msg.id, 1u);
  EXPECT_TRUE(r.msg.payload.empty());
  quiesce();
  EXPECT_EQ(s.completions, 0);
  EXPECT_EQ(r.completions, 0);
}

// ---- rule 4: re-entrancy ----------------------------------------------------------------------

/// The receive side issues each next recv from inside the completion of the previous one, the
/// send side each next send from inside the previous send's completion; both on runtime threads.
TEST_F(Exporter, CompletionsMayReenterThePort) {
  const channel ch = make_channel(1);
  recv_chain chain(ch.rx);
  send_pump pump(ch.tx, /*stream=*/2, /*count=*/500, /*max_len=*/8);
  chain.start();
  pump.start();
  ASSERT_TRUE(pump.done.wait_for(1)) << "sender stuck after " << pump.sent;
  ASSERT_EQ(pump.final_status, POC_OK);
  ASSERT_EQ(ch.tx.vtable->close(ch.tx.handle), POC_OK);
  ASSERT_TRUE(chain.done.wait_for(1)) << "receiver stuck after " << chain.received;
  EXPECT_EQ(chain.final_status, POC_CLOSED);
  EXPECT_EQ(chain.received, 500u);
  EXPECT_EQ(chain.order_errors, 0u);
  EXPECT_EQ(chain.checksum, pump.checksum);
  EXPECT_EQ(chain.completions, chain.pending_returns);
  EXPECT_EQ(pump.completions, pump.pending_returns);
}

/// A completion that closes and releases the very port its op belonged to, and a deliver
/// function that calls back into the receiver while try_recv is still on the stack.
TEST_F(Exporter, CallbacksMayCloseReleaseAndRecurseIntoTheSamePort) {
  struct closer {
    poc_sender tx;
    std::atomic<poc_status> close_status{-1}, release_status{-1}, send_status{-1};
    counter done{};
    static void on_complete(void* user, poc_status s) {
      auto* self = static_cast<closer*>(user);
      self->send_status = s;
      self->close_status = self->tx.vtable->close(self->tx.handle);
      self->release_status = self->tx.vtable->release(self->tx.handle);
      self->done.add();
    }
  };
  const channel ch = make_channel(1);
  closer c{.tx = clone(ch.tx)};
  ASSERT_EQ(try_send(ch.tx, make_message(0, 1)), POC_OK);
  const poc::message m = make_message(1, 1);
  const poc_message_view v = m.view();
  poc_op_id op = 0;
  ASSERT_EQ(c.tx.vtable->send(c.tx.handle, &v, &closer::on_complete, &c, &op), POC_PENDING);

  struct nested {
    poc_receiver rx;
    std::vector<std::uint64_t> ids{};
    std::vector<poc_status> inner{};
    static void deliver(void* user, poc_status, const poc_message_view* v) {
      auto* self = static_cast<nested*>(user);
      self->ids.push_back(v->id);
      if (self->ids.size() == 1)  // recurse once, while the outer try_recv is on the stack
        self->inner.push_back(self->rx.vtable->try_recv(self->rx.handle, &deliver, self));
    }
  };
  nested n{.rx = ch.rx};
  ASSERT_EQ(ch.rx.vtable->try_recv(ch.rx.handle, &nested::deliver, &n), POC_OK);
  ASSERT_TRUE(c.done.wait_for(1));
  EXPECT_EQ(c.send_status, POC_OK);
  EXPECT_EQ(c.close_status, POC_OK);
  EXPECT_EQ(c.release_status, POC_OK);
  // Taking message 0 moved the waiting message 1 into the buffer at once (only its completion
  // is posted), so the nested try_recv, running inside the outer deliver, finds message 1.
  ASSERT_EQ(n.inner.size(), 1u);
  EXPECT_EQ(n.inner[0], POC_OK) << poc_status_str(n.inner[0]);
  EXPECT_EQ(n.ids, (std::vector<std::uint64_t>{0, 1}));
}

}  // namespace
