// Test helpers for driving exported ports through the raw C ABI (bridge.h): bounded waits,
// callback records that count completions, thin vtable wrappers, and a runtime fixture.
//
// Rules the tests follow: every wait is bounded (wait_timeout) and fails with a message instead
// of hanging; nothing sleeps to synchronise; no assertion depends on timing. A record counts
// every call of its callbacks, so "exactly once" is asserted as completions == 1 (or as
// completions == the number of POC_PENDING returns).
#pragma once

#include <poc/bridge.h>
#include <poc/message.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

namespace poc_test {

/// Bound of every wait in the tests: far above anything a healthy run needs.
inline constexpr std::chrono::seconds wait_timeout{20};

/// A counter that can be awaited with a bound.
///
/// Thread safety: all members may be called concurrently. add() notifies under the lock, so the
/// waiter may destroy the counter as soon as its wait returns.
class counter {
 public:
  void add(int n = 1) {
    std::lock_guard lock(mutex_);
    value_ += n;
    cv_.notify_all();
  }
  [[nodiscard]] int value() const {
    std::lock_guard lock(mutex_);
    return value_;
  }
  /// True once value() >= target; false if that did not happen within `timeout`.
  [[nodiscard]] bool wait_for(int target, std::chrono::milliseconds timeout = wait_timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return value_ >= target; });
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  int value_ = 0;
};

/// What happened to one send: pass it as `user` with send_record::on_complete.
struct send_record {
  std::atomic<int> completions{0};
  std::atomic<poc_status> status{-1};
  poc_op_id op = 0;       // written by send()
  poc_op_id op_seen = 0;  // `op` as the completion saw it (rule 3: written before completion)
  counter done;

  static void on_complete(void* user, poc_status s) {
    auto* self = static_cast<send_record*>(user);
    self->op_seen = self->op;
    self->status.store(s);
    self->completions.fetch_add(1);
    self->done.add();
  }
  /// Waits (bounded) for the completion; false on timeout.
  [[nodiscard]] bool wait() { return done.wait_for(1); }
};

/// What happened to one receive: its deliver calls (fast path) and its completions.
struct recv_record {
  std::atomic<int> deliveries{0};
  std::atomic<int> completions{0};
  std::atomic<poc_status> status{-1};
  poc::message msg;  // written before `done` is signalled
  bool has_msg = false;
  poc_op_id op = 0;
  counter done;

  static void deliver(void* user, poc_status s, const poc_message_view* v) {
    auto* self = static_cast<recv_record*>(user);
    self->take(s, v);
    self->deliveries.fetch_add(1);
    self->done.add();
  }
  static void on_complete(void* user, poc_status s, const poc_message_view* v) {
    auto* self = static_cast<recv_record*>(user);
    self->take(s, v);
    self->completions.fetch_add(1);
    self->done.add();
  }
  [[nodiscard]] bool wait() { return done.wait_for(1); }

 private:
  void take(poc_status s, const poc_message_view* v) {
    if (v != nullptr) {
      msg = poc::message::from_view(*v);
      has_msg = true;
    }
    status.store(s);
  }
};

/// A message with the agents' payload pattern.
inline poc::message make_message(std::uint64_t id, std::size_t len) {
  poc::message m(id, std::vector<std::uint8_t>(len));
  poc::fill_pattern(id, m.payload);
  return m;
}

// ---- vtable wrappers ---------------------------------------------------------------------------

inline poc_status try_send(const poc_sender& tx, const poc::message& m) {
  const poc_message_view v = m.view();
  return tx.vtable->try_send(tx.handle, &v);
}
inline poc_status send(const poc_sender& tx, const poc::message& m, send_record& r) {
  const poc_message_view v = m.view();
  return tx.vtable->send(tx.handle, &v, &send_record::on_complete, &r, &r.op);
}
inline poc_status try_recv(const poc_receiver& rx, recv_record& r) {
  return rx.vtable->try_recv(rx.handle, &recv_record::deliver, &r);
}
inline poc_status recv(const poc_receiver& rx, recv_record& r) {
  return rx.vtable->recv(rx.handle, &recv_record::deliver, &recv_record::on_complete, &r, &r.op);
}

/// Both ports of one channel.
struct channel {
  poc_sender tx{};
  poc_receiver rx{};
};

/// A fresh C++ runtime per test; ports made with make_channel()/clone() are released in TearDown
/// (a second release of a port the test already released just answers POC_INVALID).
class runtime_fixture : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(poc_cpp_runtime_new(threads_, &rt_), POC_OK); }

  void TearDown() override {
    for (const poc_sender& tx : senders_) tx.vtable->release(tx.handle);
    for (const poc_receiver& rx : receivers_) rx.vtable->release(rx.handle);
    poc_cpp_runtime_free(rt_);
  }

  channel make_channel(std::size_t capacity, std::size_t max_payload = 0) {
    channel ch;
    const poc_status s = poc_cpp_channel_new_ex(rt_, capacity, max_payload, &ch.tx, &ch.rx);
    EXPECT_EQ(s, POC_OK) << poc_status_str(s);
    if (s == POC_OK) {
      senders_.push_back(ch.tx);
      receivers_.push_back(ch.rx);
    }
    return ch;
  }

  poc_sender clone(const poc_sender& tx) {
    poc_sender out{};
    const poc_status s = tx.vtable->clone(tx.handle, &out);
    EXPECT_EQ(s, POC_OK) << poc_status_str(s);
    if (s == POC_OK) senders_.push_back(out);
    return out;
  }

  /// Shuts the runtime down. Every completion the runtime posted has run when this returns, so
  /// a test can then assert that a callback was *not* called.
  void quiesce() { ASSERT_EQ(poc_cpp_runtime_shutdown(rt_), POC_OK); }

  std::uint32_t threads_ = 2;
  poc_cpp_runtime* rt_ = nullptr;

 private:
  std::vector<poc_sender> senders_;
  std::vector<poc_receiver> receivers_;
};

/// Sends `count` numbered messages of stream `stream` through `tx`, awaiting each send: the
/// completion callback issues the next send (re-entering the port from a runtime thread).
///
/// Thread safety: start() once; then only the callbacks touch the state, one at a time (each
/// send is issued after the previous one completed). Read results after done.wait_for(1).
class send_pump {
 public:
  send_pump(poc_sender tx, std::uint64_t stream, std::uint64_t count, std::size_t max_len)
      : tx_(tx), stream_(stream), count_(count), max_len_(max_len) {}

  void start() { run(); }

  counter done;
  std::atomic<int> pending_returns{0};
  std::atomic<int> completions{0};
  std::atomic<poc_status> final_status{-1};
  std::uint64_t checksum = 0;  // of every message that was accepted
  std::uint64_t sent = 0;

 private:
  void run() {
    while (sent < count_) {
      const poc::message m = make_message(poc::make_id(stream_, sent), sent % (max_len_ + 1));
      const poc_message_view v = m.view();
      // Everything the completion reads is written before send(): after POC_PENDING the
      // completion may run (and the test may see `done`) before send() has even returned.
      pending_ = poc::checksum(m);
      pending_returns.fetch_add(1);
      const poc_status s = tx_.vtable->send(tx_.handle, &v, &on_complete, this, &op_);
      if (s == POC_PENDING) return;  // touch nothing after this
      pending_returns.fetch_sub(1);
      if (s != POC_OK) return finish(s);
      checksum += pending_;
      ++sent;
    }
    finish(POC_OK);
  }

  static void on_complete(void* user, poc_status s) {
    auto* self = static_cast<send_pump*>(user);
    self->completions.fetch_add(1);
    if (s != POC_OK) return self->finish(s);
    self->checksum += self->pending_;
    ++self->sent;
    self->run();
  }

  void finish(poc_status s) {
    final_status.store(s);
    done.add();
  }

  poc_sender tx_;
  std::uint64_t stream_;
  std::uint64_t count_;
  std::size_t max_len_;
  poc_op_id op_ = 0;
  std::uint64_t pending_ = 0;  // checksum of the message whose send is pending
};

/// Receives until the channel reports something other than a message (POC_CLOSED when the
/// senders are gone), checking per-stream order and payloads and summing checksums. Each
/// completion issues the next recv from inside the callback (re-entering the port from a runtime
/// thread); fast-path deliveries loop in place.
///
/// Thread safety: as send_pump. Read results after done.wait_for(1).
class recv_chain {
 public:
  explicit recv_chain(poc_receiver rx) : rx_(rx) {}

  void start() { run(); }

  counter done;
  std::atomic<int> pending_returns{0};
  std::atomic<int> completions{0};
  std::atomic<poc_status> final_status{-1};
  std::uint64_t received = 0;
  std::uint64_t checksum = 0;
  std::uint64_t order_errors = 0;

 private:
  void run() {
    for (;;) {
      pending_returns.fetch_add(1);  // before recv(): see send_pump::run
      const poc_status s = rx_.vtable->recv(rx_.handle, &deliver, &on_complete, this, &op_);
      if (s == POC_PENDING) return;  // touch nothing after this
      pending_returns.fetch_sub(1);
      if (s != POC_OK) return finish(s);
    }
  }

  static void deliver(void* user, poc_status, const poc_message_view* v) {
    static_cast<recv_chain*>(user)->accept(*v);
  }

  static void on_complete(void* user, poc_status s, const poc_message_view* v) {
    auto* self = static_cast<recv_chain*>(user);
    self->completions.fetch_add(1);
    if (s != POC_OK) return self->finish(s);
    self->accept(*v);
    self->run();
  }

  void accept(const poc_message_view& v) {
    ++received;
    checksum += poc::checksum(v);
    std::uint64_t& expected = next_seq_[poc::stream_of(v.id)];
    if (poc::seq_of(v.id) != expected || !poc::check_pattern(v.id, {v.data, v.len})) ++order_errors;
    expected = poc::seq_of(v.id) + 1;
  }

  void finish(poc_status s) {
    final_status.store(s);
    done.add();
  }

  poc_receiver rx_;
  poc_op_id op_ = 0;
  std::map<std::uint64_t, std::uint64_t> next_seq_;  // stream -> next expected seq
};

}  // namespace poc_test
