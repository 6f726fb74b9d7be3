// poc/runtime.hpp — the C++ runtime: an asio::io_context, the threads that run it, and the
// channels it exports as C-ABI ports. `poc_cpp_runtime_*` in bridge.h wrap this class.
//
// Thread safety: every member may be called from any thread, except shutdown() and the
// destructor, which must not run on one of the runtime's own threads.
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <poc/bridge.h>
#include <poc/error.hpp>

#include <asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <expected>
#include <memory>

namespace poc {

namespace detail {
struct runtime_core;  // io_context, threads, registry of exported channels (src/runtime.cpp)
}

/// Both ends of a channel exported as ports. Each port is owned: release it exactly once.
struct channel_ports {
  poc_sender sender;
  poc_receiver receiver;
};

/// Owns an io_context run by N threads. Shutdown (explicit or in the destructor) cancels the
/// agents and in-flight imports running on it, completes pending ops on its ports with
/// POC_SHUTDOWN, and joins the threads.
class runtime {
 public:
  using executor_type = asio::io_context::executor_type;

  /// Starts `threads` threads (1..64). Throws std::system_error(errc::invalid) otherwise.
  explicit runtime(unsigned threads = 1);
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  [[nodiscard]] executor_type get_executor() noexcept;
  [[nodiscard]] asio::io_context& context() noexcept;

  /// True once shutdown() has begun.
  [[nodiscard]] bool stopping() const noexcept;

  /// See poc_cpp_runtime_shutdown. Idempotent. Returns errc::invalid when called on one of the
  /// runtime's own threads.
  std::error_code shutdown() noexcept;

  /// How long shutdown() waits for outstanding work (pending completions, agents, imports) before
  /// it stops the io_context anyway and reports it on stderr. Default 10 s.
  void set_shutdown_timeout(std::chrono::milliseconds timeout) noexcept;

  /// Exports a bounded concurrent_channel (capacity >= 1) as a sender and a receiver port.
  std::expected<channel_ports, errc> make_channel(std::size_t capacity,
                                                  std::size_t max_payload = POC_DEFAULT_MAX_PAYLOAD);

  /// Internal state shared with the ports it exported (they outlive the runtime object).
  [[nodiscard]] const std::shared_ptr<detail::runtime_core>& core() const noexcept { return core_; }

 private:
  std::shared_ptr<detail::runtime_core> core_;
};

}  // namespace poc
