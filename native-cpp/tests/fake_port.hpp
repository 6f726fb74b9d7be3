// A scriptable exporter for import-adapter tests: a port whose vtable the test controls, so that
// every ordering the contract allows (OK now, an error now, PENDING completed later from another
// thread, completed before send/recv returned, cancel completing inline on the cancelling thread)
// can be forced deterministically. It keeps the contract's exactly-once rule itself: a pending op
// is taken out of its table under the lock and completed outside it, by whoever takes it first.
#pragma once

#include <poc/bridge.h>
#include <poc/message.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace poc::test {

class fake_port {
 public:
  /// What send/recv do.
  enum class mode {
    ok,               // complete now: return POC_OK (recv delivers the next queued message)
    fail,             // return fail_status, callback not called
    pending,          // return POC_PENDING; the test completes the op later
    inline_complete,  // run the completion callback on the calling thread, then return PENDING
    thread_complete,  // run the completion on another thread, join it, then return PENDING
  };

  std::atomic<mode> send_mode{mode::pending};
  std::atomic<mode> recv_mode{mode::pending};
  std::atomic<poc_status> fail_status{POC_CLOSED};
  /// Status of inline/thread completions (recv with POC_OK delivers the next queued message).
  std::atomic<poc_status> early_status{POC_OK};
  /// When true, cancel completes a still-pending op with POC_CANCELLED on the calling thread.
  std::atomic<bool> cancel_completes{false};
  /// When true, cancel of a still-pending recv completes it on the calling thread with POC_OK and
  /// the next queued message — the message won the race with the cancel — or with POC_CANCELLED
  /// when none is queued. Takes precedence over cancel_completes for recvs.
  std::atomic<bool> cancel_delivers{false};
  /// Status try_send returns (POC_OK accepts the message).
  std::atomic<poc_status> try_send_status{POC_OK};

  std::atomic<int> send_calls{0}, recv_calls{0}, cancel_calls{0}, close_calls{0},
      release_calls{0}, clone_calls{0}, try_send_calls{0}, try_recv_calls{0};
  /// Completions that delivered POC_OK / POC_CANCELLED / anything else.
  std::atomic<int> completed_ok{0}, completed_cancelled{0}, completed_other{0};

  poc_sender sender() noexcept { return poc_sender{handle(), &sender_vtable_}; }
  poc_receiver receiver() noexcept { return poc_receiver{handle(), &receiver_vtable_}; }
  std::uint64_t handle() const noexcept { return reinterpret_cast<std::uintptr_t>(this); }

  /// Queue a message for recv/try_recv fast paths and early completions.
  void push(message m) {
    std::lock_guard lock(mutex_);
    to_deliver_.push_back(std::move(m));
  }
  /// Messages accepted by send/try_send (fast path or completed OK).
  std::vector<message> sent() {
    std::lock_guard lock(mutex_);
    return sent_;
  }
  std::vector<poc_op_id> cancelled_ids() {
    std::lock_guard lock(mutex_);
    return cancelled_ids_;
  }

  /// Waits (bounded) until at least `n` ops are pending; returns their ids in issue order.
  std::optional<std::vector<poc_op_id>> wait_pending(std::size_t n,
                                                     std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, timeout, [&] { return pending_.size() >= n; })) return std::nullopt;
    std::vector<poc_op_id> ids;
    for (auto& [id, op] : pending_) ids.push_back(id);
    return ids;
  }
  std::size_t pending_count() {
    std::lock_guard lock(mutex_);
    return pending_.size();
  }

  /// Completes pending op `id` with `status` (and `msg` for a recv with POC_OK) on this thread.
  /// Returns false if the op is not pending any more (someone else completed it).
  bool complete(poc_op_id id, poc_status status, const message* msg = nullptr) {
    pending_op op;
    {
      std::lock_guard lock(mutex_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return false;
      op = it->second;
      pending_.erase(it);
      if (op.send_cb != nullptr && status == POC_OK) sent_.push_back(op.msg);
    }
    run(op, status, msg);
    return true;
  }

 private:
  struct pending_op {
    poc_send_complete_fn send_cb = nullptr;
    poc_recv_complete_fn recv_cb = nullptr;
    void* user = nullptr;
    message msg;  // send: the copied message
  };

  void run(const pending_op& op, poc_status status, const message* msg) {
    count(status);
    if (op.send_cb != nullptr) {
      op.send_cb(op.user, status);
    } else if (status == POC_OK && msg != nullptr) {
      // Deliver from a scratch buffer that is overwritten afterwards: the importer must copy.
      std::vector<std::uint8_t> scratch = msg->payload;
      poc_message_view v{msg->id, scratch.empty() ? nullptr : scratch.data(), scratch.size()};
      op.recv_cb(op.user, POC_OK, &v);
      for (auto& b : scratch) b = 0xEE;
    } else {
      op.recv_cb(op.user, status, nullptr);
    }
  }

  void count(poc_status s) {
    if (s == POC_OK) ++completed_ok;
    else if (s == POC_CANCELLED) ++completed_cancelled;
    else ++completed_other;
  }

  message pop_or_default() {
    std::lock_guard lock(mutex_);
    if (to_deliver_.empty()) return message(0xDEAD, {});
    message m = std::move(to_deliver_.front());
    to_deliver_.pop_front();
    return m;
  }

  static fake_port& self(std::uint64_t h) { return *reinterpret_cast<fake_port*>(h); }

  poc_status start(pending_op op, mode md, poc_op_id* out) {
    poc_op_id id;
    {
      std::lock_guard lock(mutex_);
      id = next_op_++;
      *out = id;  // written before the op can complete
      if (md == mode::pending) {
        pending_.emplace(id, std::move(op));
        cv_.notify_all();
        return POC_PENDING;
      }
    }
    const poc_status st = early_status.load();
    message m = (op.recv_cb != nullptr && st == POC_OK) ? pop_or_default() : message{};
    if (op.send_cb != nullptr && st == POC_OK) {
      std::lock_guard lock(mutex_);
      sent_.push_back(op.msg);
    }
    if (md == mode::inline_complete) {
      run(op, st, &m);
    } else {
      std::thread t([&] { run(op, st, &m); });
      t.join();
    }
    return POC_PENDING;
  }

  // --- sender vtable ---
  static poc_status s_try_send(std::uint64_t h, const poc_message_view* m) {
    fake_port& f = self(h);
    ++f.try_send_calls;
    const poc_status s = f.try_send_status.load();
    if (s == POC_OK) {
      std::lock_guard lock(f.mutex_);
      f.sent_.push_back(message::from_view(*m));
    }
    return s;
  }
  static poc_status s_send(std::uint64_t h, const poc_message_view* m, poc_send_complete_fn cb,
                           void* user, poc_op_id* op) {
    fake_port& f = self(h);
    ++f.send_calls;
    const mode md = f.send_mode.load();
    if (md == mode::fail) return f.fail_status.load();
    if (md == mode::ok) {
      std::lock_guard lock(f.mutex_);
      f.sent_.push_back(message::from_view(*m));
      return POC_OK;
    }
    pending_op p;
    p.send_cb = cb;
    p.user = user;
    p.msg = message::from_view(*m);
    return f.start(std::move(p), md, op);
  }
  static poc_status s_cancel(std::uint64_t h, poc_op_id id) {
    fake_port& f = self(h);
    ++f.cancel_calls;
    {
      std::lock_guard lock(f.mutex_);
      f.cancelled_ids_.push_back(id);
    }
    if (f.cancel_delivers.load() && f.complete_recv_with_next(id)) return POC_OK;
    if (f.cancel_completes.load()) f.complete(id, POC_CANCELLED);
    return POC_OK;
  }

  // cancel_delivers: completes pending recv `id` with the next queued message (or CANCELLED).
  // False if `id` is not a pending recv.
  bool complete_recv_with_next(poc_op_id id) {
    pending_op op;
    std::optional<message> m;
    {
      std::lock_guard lock(mutex_);
      auto it = pending_.find(id);
      if (it == pending_.end() || it->second.recv_cb == nullptr) return false;
      op = it->second;
      pending_.erase(it);
      if (!to_deliver_.empty()) {
        m = std::move(to_deliver_.front());
        to_deliver_.pop_front();
      }
    }
    if (m)
      run(op, POC_OK, &*m);
    else
      run(op, POC_CANCELLED, nullptr);
    return true;
  }
  static poc_status s_close(std::uint64_t h) {
    ++self(h).close_calls;
    return POC_OK;
  }
  static poc_status s_clone(std::uint64_t h, poc_sender* out) {
    fake_port& f = self(h);
    ++f.clone_calls;
    *out = f.sender();
    return POC_OK;
  }
  static poc_status s_release(std::uint64_t h) {
    ++self(h).release_calls;
    return POC_OK;
  }

  // --- receiver vtable ---
  static poc_status r_try_recv(std::uint64_t h, poc_recv_complete_fn deliver, void* user) {
    fake_port& f = self(h);
    ++f.try_recv_calls;
    std::optional<message> m;
    {
      std::lock_guard lock(f.mutex_);
      if (!f.to_deliver_.empty()) {
        m = std::move(f.to_deliver_.front());
        f.to_deliver_.pop_front();
      }
    }
    if (!m) return POC_EMPTY;
    poc_message_view v = m->view();
    deliver(user, POC_OK, &v);
    return POC_OK;
  }
  static poc_status r_recv(std::uint64_t h, poc_recv_complete_fn deliver, poc_recv_complete_fn cb,
                           void* user, poc_op_id* op) {
    fake_port& f = self(h);
    ++f.recv_calls;
    const mode md = f.recv_mode.load();
    if (md == mode::fail) return f.fail_status.load();
    if (md == mode::ok) {
      message m = f.pop_or_default();
      std::vector<std::uint8_t> scratch = m.payload;
      poc_message_view v{m.id, scratch.empty() ? nullptr : scratch.data(), scratch.size()};
      deliver(user, POC_OK, &v);
      for (auto& b : scratch) b = 0xEE;  // the importer must have copied
      return POC_OK;
    }
    pending_op p;
    p.recv_cb = cb;
    p.user = user;
    return f.start(std::move(p), md, op);
  }
  static poc_status r_cancel(std::uint64_t h, poc_op_id id) { return s_cancel(h, id); }
  static poc_status r_close(std::uint64_t h) { return s_close(h); }
  static poc_status r_release(std::uint64_t h) { return s_release(h); }

  static constexpr poc_sender_vtable sender_vtable_{POC_ABI_VERSION, sizeof(poc_sender_vtable),
                                                    &s_try_send, &s_send, &s_cancel, &s_close,
                                                    &s_clone, &s_release};
  static constexpr poc_receiver_vtable receiver_vtable_{
      POC_ABI_VERSION, sizeof(poc_receiver_vtable), &r_try_recv, &r_recv, &r_cancel, &r_close,
      &r_release};

  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<poc_op_id, pending_op> pending_;
  std::deque<message> to_deliver_;
  std::vector<message> sent_;
  std::vector<poc_op_id> cancelled_ids_;
  poc_op_id next_op_ = 1;
};

}  // namespace poc::test
