// Placeholder until the import adapter / agents work lands: nothing registers yet.
#include <poc/detail/stop_registry.hpp>

namespace poc::detail {
void request_stop_all(asio::execution_context&) noexcept {}
}  // namespace poc::detail
