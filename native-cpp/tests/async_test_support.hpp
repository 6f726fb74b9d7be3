// Helpers shared by the Asio adapter tests (test_import.cpp, test_future.cpp): bounded waits,
// background io_context threads and a counting allocator for the handler-allocator checks.
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <thread>
#include <vector>

namespace poc::test {

using namespace std::chrono_literals;

/// Upper bound of every wait in these tests; reaching it is a failure.
inline constexpr auto bound = 10s;

/// Runs `io` until it has no more work (bounded).
inline ::testing::AssertionResult run_to_completion(asio::io_context& io) {
  io.restart();
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!io.stopped()) {
    io.run_for(100ms);
    if (std::chrono::steady_clock::now() > deadline)
      return ::testing::AssertionFailure() << "io_context still had work after 10 s";
  }
  return ::testing::AssertionSuccess();
}

/// Waits (bounded) until `f` is ready.
template <typename T>
::testing::AssertionResult ready(std::future<T>& f) {
  if (f.wait_for(bound) != std::future_status::ready)
    return ::testing::AssertionFailure() << "future not ready within 10 s";
  return ::testing::AssertionSuccess();
}

/// An io_context run by `n` background threads for the duration of a test.
struct background_io {
  explicit background_io(int n = 1) {
    for (int i = 0; i < n; ++i) threads.emplace_back([this] { io.run(); });
  }
  ~background_io() {
    guard.reset();
    for (auto& t : threads) t.join();
  }
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::vector<std::thread> threads;
};

/// Allocation accounting for the handler's associated allocator.
struct alloc_stats {
  std::atomic<int> allocs{0};
  std::atomic<int> deallocs{0};
};

/// An allocator that counts into an alloc_stats; associate it with a handler to check that an
/// op state uses the handler's allocator and is freed exactly once.
template <typename T>
struct counting_allocator {
  using value_type = T;
  alloc_stats* stats;
  explicit counting_allocator(alloc_stats* s) noexcept : stats(s) {}
  template <typename U>
  counting_allocator(const counting_allocator<U>& o) noexcept : stats(o.stats) {}
  T* allocate(std::size_t n) {
    ++stats->allocs;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    ++stats->deallocs;
    std::allocator<T>().deallocate(p, n);
  }
  template <typename U>
  bool operator==(const counting_allocator<U>& o) const noexcept {
    return stats == o.stats;
  }
};

}  // namespace poc::test
