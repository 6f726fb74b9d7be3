// Helpers for the lent-function tests (test_lent_calls.cpp: C++ -> C++, test_cpp_lends_rust.cpp:
// C++ -> Rust): raw polls that count wakes and delivers, a bounded poll/wake driver, and
// counting_fn — a poc_async_fn written here that forwards to a real lent function (or answers
// scripted calls itself) and counts its calls, its own release and, per call, the polls, cancels
// and releases of the future it hands out (a proxy over the callee's future).
//
// Rules: every wait is bounded (poc::test::bound) and fails with a message; nothing sleeps to
// synchronise.
#pragma once

#include "async_test_support.hpp"

#include <poc/bridge.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace poc::test {

// ---------------------------------------------------------------------------------------------
// Raw polls
// ---------------------------------------------------------------------------------------------

/// The `user` of raw polls: counts wakes (and whether they ran on the polling thread) and keeps
/// what deliver handed over.
struct poll_probe {
  std::mutex m;
  std::condition_variable cv;
  int wakes = 0;
  int wakes_on_test_thread = 0;
  int delivers = 0;
  poc_status delivered_status = POC_INVALID;
  std::uint64_t id = 0;
  std::string data;
  std::thread::id test_thread = std::this_thread::get_id();

  static void on_wake(void* user) {
    auto* p = static_cast<poll_probe*>(user);
    std::lock_guard lock(p->m);
    ++p->wakes;
    if (std::this_thread::get_id() == p->test_thread) ++p->wakes_on_test_thread;
    p->cv.notify_all();
  }
  static void on_deliver(void* user, poc_status s, const poc_message_view* v) {
    auto* p = static_cast<poll_probe*>(user);
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

inline poc_status poll_once(const poc_future& f, poll_probe& p) {
  return f.vtable->poll(f.handle, &poll_probe::on_wake, &poll_probe::on_deliver, &p);
}

/// What drive() saw.
struct drive_result {
  poc_status status = POC_PENDING;  // the final answer (PENDING: not finished within the bound)
  int polls = 0;
  int wakes = 0;                  // total over every PENDING poll (exactly one each)
  int wakes_on_test_thread = 0;   // of those, how many ran on the polling thread
  int delivers = 0;               // of the final poll
  std::uint64_t id = 0;
  std::string data;
};

/// Polls `f` from this thread until it finishes, waiting (bounded) for the wake owed by each
/// PENDING answer before polling again. Checks one wake per PENDING.
inline drive_result drive(const poc_future& f) {
  drive_result r;
  for (int i = 0; i < 1000; ++i) {
    auto p = std::make_unique<poll_probe>();
    const poc_status s = poll_once(f, *p);
    ++r.polls;
    if (s != POC_PENDING) {
      std::lock_guard lock(p->m);
      r.status = s;
      r.delivers = p->delivers;
      r.id = p->id;
      r.data = p->data;
      EXPECT_EQ(p->wakes, 0) << "a poll that finished also woke";
      return r;
    }
    if (!p->wait_woken()) {
      ADD_FAILURE() << "PENDING was not followed by a wake within 10 s";
      (void)p.release();  // the owed wake may still come (e.g. at shutdown): keep its target alive
      return r;
    }
    std::lock_guard lock(p->m);
    EXPECT_EQ(p->wakes, 1);
    r.wakes += p->wakes;
    r.wakes_on_test_thread += p->wakes_on_test_thread;
  }
  ADD_FAILURE() << "not finished after 1000 polls";
  return r;
}

// ---------------------------------------------------------------------------------------------
// counting_fn
// ---------------------------------------------------------------------------------------------

/// What counting_fn saw, shared with the test.
struct fn_counters {
  std::mutex m;
  std::condition_variable cv;
  int calls = 0;            // calls that started (a future was handed out)
  int refused = 0;          // calls answered with a status (scripted or by the inner function)
  int fn_releases = 0;      // release(context) of the function itself
  int future_polls = 0;
  int future_cancels = 0;
  int future_releases = 0;
  std::vector<std::string> events;  // "call 3", "poll 3", "cancel 3", "release 3", "fn release"

  void record(const std::string& e, int fn_counters::*counter) {
    std::lock_guard lock(m);
    events.push_back(e);
    ++(this->*counter);
    cv.notify_all();
  }
  int get(int fn_counters::*counter) {
    std::lock_guard lock(m);
    return this->*counter;
  }
  /// Waits (bounded) until `counter` reaches `n`.
  ::testing::AssertionResult wait_for(int fn_counters::*counter, int n, const char* what) {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, bound, [&] { return this->*counter >= n; }))
      return ::testing::AssertionFailure()
             << what << " reached " << this->*counter << ", not " << n << ", within 10 s";
    return ::testing::AssertionSuccess();
  }
  /// Position of the first event `e` (or -1).
  long index_of(const std::string& e) {
    std::lock_guard lock(m);
    auto it = std::find(events.begin(), events.end(), e);
    return it == events.end() ? -1 : static_cast<long>(it - events.begin());
  }
  long count_of(const std::string& e) {
    std::lock_guard lock(m);
    return static_cast<long>(std::count(events.begin(), events.end(), e));
  }
};

/// A poc_async_fn that forwards to `inner` and counts. Scripted arguments are answered by the
/// wrapper itself: `refuse` makes `call` answer that status (no call starts); `answer` hands out
/// a future whose first poll answers that status (with no value).
class counting_fn {
 public:
  struct script {
    std::map<std::uint64_t, poc_status> refuse;
    std::map<std::uint64_t, poc_status> answer;
  };

  /// Takes `inner` over (released when the wrapper is released; may be empty: {NULL, NULL, NULL}).
  static poc_async_fn wrap(poc_async_fn inner, std::shared_ptr<fn_counters> counters,
                           script s = {}) {
    auto* ctx = new context{inner, std::move(counters), std::move(s)};
    return poc_async_fn{&call, &release, ctx};
  }

 private:
  struct context {
    poc_async_fn inner;
    std::shared_ptr<fn_counters> counters;
    script s;
  };

  struct proxy {
    std::uint64_t x = 0;
    poc_future inner{0, nullptr};  // vtable NULL: a scripted future
    poc_status answer = POC_OK;
    bool answered = false;
    std::shared_ptr<fn_counters> counters;
  };

  static std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::uint64_t, proxy>& registry() {
    static std::map<std::uint64_t, proxy> r;
    return r;
  }
  static std::uint64_t add(proxy p) {
    static std::uint64_t next = 0;
    std::lock_guard lock(registry_mutex());
    registry()[++next] = std::move(p);
    return next;
  }
  static bool find(std::uint64_t h, proxy& out, bool erase = false) {
    std::lock_guard lock(registry_mutex());
    auto it = registry().find(h);
    if (it == registry().end()) return false;
    out = it->second;
    if (erase) registry().erase(it);
    return true;
  }

  static poc_status call(void* c, const poc_message_view* arg, poc_future* out) {
    auto* ctx = static_cast<context*>(c);
    if (arg == nullptr || out == nullptr) return POC_INVALID;
    const std::uint64_t x = arg->id;
    if (auto it = ctx->s.refuse.find(x); it != ctx->s.refuse.end()) {
      ctx->counters->record("refused " + std::to_string(x), &fn_counters::refused);
      return it->second;
    }
    proxy p;
    p.x = x;
    p.counters = ctx->counters;
    if (auto it = ctx->s.answer.find(x); it != ctx->s.answer.end()) {
      p.answer = it->second;
    } else {
      if (ctx->inner.call == nullptr) return POC_INVALID;
      const poc_status s = ctx->inner.call(ctx->inner.context, arg, &p.inner);
      if (s != POC_OK) {
        ctx->counters->record("refused " + std::to_string(x), &fn_counters::refused);
        return s;
      }
    }
    *out = poc_future{add(std::move(p)), &vtable};
    ctx->counters->record("call " + std::to_string(x), &fn_counters::calls);
    return POC_OK;
  }

  static void release(void* c) {
    auto* ctx = static_cast<context*>(c);
    if (ctx->inner.release != nullptr) ctx->inner.release(ctx->inner.context);
    auto counters = ctx->counters;
    delete ctx;
    counters->record("fn release", &fn_counters::fn_releases);
  }

  static poc_status poll(std::uint64_t h, poc_wake_fn wake, poc_recv_complete_fn deliver,
                         void* user) {
    proxy p;
    if (!find(h, p)) return POC_INVALID;
    p.counters->record("poll " + std::to_string(p.x), &fn_counters::future_polls);
    if (p.inner.vtable != nullptr) return p.inner.vtable->poll(p.inner.handle, wake, deliver, user);
    std::lock_guard lock(registry_mutex());
    auto it = registry().find(h);
    if (it == registry().end() || it->second.answered) return POC_INVALID;
    it->second.answered = true;
    return it->second.answer;
  }

  static poc_status cancel(std::uint64_t h) {
    proxy p;
    if (!find(h, p)) return POC_INVALID;
    p.counters->record("cancel " + std::to_string(p.x), &fn_counters::future_cancels);
    return p.inner.vtable != nullptr ? p.inner.vtable->cancel(p.inner.handle) : POC_OK;
  }

  static poc_status release_future(std::uint64_t h) {
    proxy p;
    if (!find(h, p, true)) return POC_INVALID;
    const poc_status s =
        p.inner.vtable != nullptr ? p.inner.vtable->release(p.inner.handle) : POC_OK;
    p.counters->record("release " + std::to_string(p.x), &fn_counters::future_releases);
    return s;
  }

  static inline const poc_future_vtable vtable = {POC_ABI_VERSION, sizeof(poc_future_vtable),
                                                  &poll, &cancel, &release_future};
};

}  // namespace poc::test
