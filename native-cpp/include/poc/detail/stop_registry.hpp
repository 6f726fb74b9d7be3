// poc/detail/stop_registry.hpp — lets poc::runtime::shutdown() reach everything that runs on its
// io_context without owning it: agents and in-flight import ops register here while they are
// alive, and shutdown asks each of them to stop (they then complete exactly once as usual).
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <asio/execution_context.hpp>

namespace poc::detail {

/// Asks every agent and in-flight import op registered on `ctx` to stop (a cancel request).
/// Never blocks and never waits for them to finish; callable from any thread.
void request_stop_all(asio::execution_context& ctx) noexcept;

}  // namespace poc::detail
