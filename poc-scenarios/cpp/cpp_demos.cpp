// poc-cpp-demos — the C++-only scenarios, one command each (scripts/run lists them).
//
//   cpp-pipeline  Three producer agents (streams 0, 1, 2) send into one C++ concurrent_channel of
//                 capacity 1 through cloned sender ports; a consumer agent drains it until CLOSED.
//                 Checks: every message arrives once (count), per-stream order, payload pattern,
//                 and the consumer's checksum equals the sum of the producers' checksums.
//   cpp-timer     The mayon timer task: an Asio steady_timer sends {count, "From Cpp async task!!"}
//                 every 10 ms into a C++ channel; a C++20 coroutine receives 3 messages through the
//                 Asio import adapter (poc::port_receiver, use_awaitable), prints them, prints
//                 "All messages received", and cancels the timer. Checks: ids 0, 1, 2 in order,
//                 the payload text, and that the timer ended CANCELLED exactly once.
//
// Usage: poc-cpp-demos SCENARIO [--messages N] [--payload BYTES] [--capacity C]
// Exit code 0 when every invariant held, 1 when one broke, 2 for bad arguments.
#include <poc/bridge.h>
#include <poc/message.hpp>
#include <poc/port.hpp>
#include <poc/runtime.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct options {
  std::uint64_t messages = 10000;
  std::size_t payload = 64;
  std::size_t capacity = 1;
};

/// Collects agent reports; wait() is bounded so that a broken bridge fails instead of hanging.
class reports {
 public:
  static void on_done(void* user, const poc_agent_report* r) {
    auto* self = static_cast<reports*>(user);
    std::lock_guard lock(self->mutex_);
    self->done_.push_back(*r);
    self->cv_.notify_all();
  }
  bool wait(std::size_t n, std::chrono::seconds limit) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, limit, [&] { return done_.size() >= n; });
  }
  std::vector<poc_agent_report> take() {
    std::lock_guard lock(mutex_);
    return done_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<poc_agent_report> done_;
};

int failures = 0;
void check(bool ok, const std::string& what) {
  std::printf("  [%s] %s\n", ok ? " ok " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

int cpp_pipeline(const options& o) {
  std::printf("cpp-pipeline: 3 producers x %llu messages (%zu-byte payloads) -> C++ channel "
              "(capacity %zu) -> 1 consumer\n",
              static_cast<unsigned long long>(o.messages), o.payload, o.capacity);
  poc_cpp_runtime* rt = nullptr;
  if (poc_cpp_runtime_new(2, &rt) != POC_OK) return check(false, "runtime starts"), 1;

  poc_sender tx{};
  poc_receiver rx{};
  poc_status st = poc_cpp_channel_new(rt, o.capacity, &tx, &rx);
  check(st == POC_OK, std::string("channel created: ") + poc_status_str(st));
  if (st != POC_OK) return poc_cpp_runtime_free(rt), 1;

  // Clone the sender for each producer before any producer starts: a producer releases its
  // port when it ends, and releasing the last sender closes the channel.
  std::vector<poc_sender> senders{tx};
  for (int i = 0; i < 2; ++i) {
    poc_sender clone{};
    st = tx.vtable->clone(tx.handle, &clone);
    check(st == POC_OK, std::string("sender cloned: ") + poc_status_str(st));
    if (st == POC_OK) senders.push_back(clone);
  }

  reports producers, consumer;
  const auto t0 = std::chrono::steady_clock::now();
  st = poc_cpp_consumer_start(rt, rx, &reports::on_done, &consumer, nullptr);
  check(st == POC_OK, "consumer started");
  for (std::uint64_t stream = 0; stream < senders.size(); ++stream) {
    st = poc_cpp_producer_start(rt, senders[stream], stream, o.messages, o.payload,
                                &reports::on_done, &producers, nullptr);
    check(st == POC_OK, "producer " + std::to_string(stream) + " started");
  }

  const bool prod_ok = producers.wait(3, 120s);
  const bool cons_ok = consumer.wait(1, 120s);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  check(prod_ok && cons_ok, "all agents finished within 120 s");

  std::uint64_t sent = 0, sent_sum = 0;
  for (const auto& r : producers.take()) {
    check(r.status == POC_OK, std::string("producer ended ") + poc_status_str(r.status));
    sent += r.messages;
    sent_sum += r.checksum;
  }
  for (const auto& r : consumer.take()) {
    std::printf("  consumer: %llu messages, checksum %016llx, %llu order errors, ended %s\n",
                static_cast<unsigned long long>(r.messages),
                static_cast<unsigned long long>(r.checksum),
                static_cast<unsigned long long>(r.order_errors), poc_status_str(r.status));
    check(r.status == POC_OK, "consumer saw CLOSED after draining");
    check(r.messages == 3 * o.messages && sent == 3 * o.messages,
          "count: " + std::to_string(r.messages) + " received of " + std::to_string(sent) +
              " sent, none dropped");
    check(r.order_errors == 0, "per-stream order and payloads intact");
    check(r.checksum == sent_sum, "consumer checksum == sum of producer checksums");
  }
  std::printf("  %.0f messages/s through a capacity-%zu channel\n", 3.0 * o.messages / secs,
              o.capacity);
  poc_cpp_runtime_free(rt);
  return failures == 0 ? 0 : 1;
}

int cpp_timer(const options&) {
  std::printf("cpp-timer: mayon's Asio timer task -> C++ channel -> C++ coroutine (3 messages)\n");
  poc_cpp_runtime* rt = nullptr;
  if (poc_cpp_runtime_new(1, &rt) != POC_OK) return check(false, "runtime starts"), 1;
  poc_sender tx{};
  poc_receiver rx{};
  if (poc_cpp_channel_new(rt, 4, &tx, &rx) != POC_OK) {
    check(false, "channel created");
    poc_cpp_runtime_free(rt);
    return 1;
  }

  reports timer;
  poc_agent_id timer_id = 0;
  poc_status st = poc_cpp_timer_start(rt, tx, 10, 0, &reports::on_done, &timer, &timer_id);
  check(st == POC_OK, "timer task started on the Poc runtime (every 10 ms)");

  // The receiving side is this program's own io_context, run by the main thread: the import
  // adapter completes each receive on the executor of the awaiting coroutine.
  std::vector<poc::message> got;
  std::string error;
  {
    asio::io_context io;
    poc::port_receiver receiver(io.get_executor(), rx);
    auto receive_three = [&]() -> asio::awaitable<void> {
      for (int i = 0; i < 3; ++i) {
        poc::message m = co_await receiver.async_receive(asio::use_awaitable);
        std::printf("  Received: count=%llu msg=\"%.*s\"\n", static_cast<unsigned long long>(m.id),
                    static_cast<int>(m.payload.size()),
                    reinterpret_cast<const char*>(m.payload.data()));
        got.push_back(std::move(m));
      }
    };
    asio::co_spawn(io, receive_three(), [&](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        error = x.what();
      }
    });
    io.run_for(30s);  // returns as soon as the coroutine is done; bounded if the bridge is broken
  }
  check(error.empty(), error.empty() ? std::string("receives completed without error")
                                    : "receive failed: " + error);
  check(got.size() == 3, "3 messages within 30 s");
  if (got.size() == 3) std::printf("  All messages received\n");

  poc_cpp_agent_cancel(rt, timer_id);
  check(timer.wait(1, 30s), "timer task ended after cancel");
  const auto r = timer.take();
  check(r.size() == 1 && r[0].status == POC_CANCELLED, "timer ended CANCELLED, exactly once");
  for (std::size_t i = 0; i < got.size(); ++i) {
    check(got[i].id == i, "message " + std::to_string(i) + " has count " + std::to_string(i));
    check(std::string_view(reinterpret_cast<const char*>(got[i].payload.data()),
                           got[i].payload.size()) == "From Cpp async task!!",
          "message " + std::to_string(i) + " says \"From Cpp async task!!\"");
  }
  poc_cpp_runtime_free(rt);
  return failures == 0 ? 0 : 1;
}

bool parse_number(const char* s, std::uint64_t& out) {
  char* end = nullptr;
  out = std::strtoull(s, &end, 10);
  return end != s && *end == '\0';
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s cpp-pipeline|cpp-timer [--messages N] [--payload B] "
                         "[--capacity C]\n", argv[0]);
    return 2;
  }
  options o;
  for (int i = 2; i < argc; ++i) {
    std::uint64_t v = 0;
    std::string_view a = argv[i];
    if (i + 1 >= argc || !parse_number(argv[i + 1], v)) {
      std::fprintf(stderr, "bad or missing value for %s\n", argv[i]);
      return 2;
    }
    if (a == "--messages") o.messages = v;
    else if (a == "--payload") o.payload = v;
    else if (a == "--capacity" && v > 0) o.capacity = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
    ++i;
  }
  const std::string_view name = argv[1];
  int rc = 2;
  if (name == "cpp-pipeline") rc = cpp_pipeline(o);
  else if (name == "cpp-timer") rc = cpp_timer(o);
  else std::fprintf(stderr, "unknown scenario %s\n", argv[1]);
  if (rc != 2) std::printf("%s: %s\n", argv[1], rc == 0 ? "PASS" : "FAIL");
  return rc;
}
