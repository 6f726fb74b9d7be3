// Statuses, the ABI version and the message checksum: the parts of bridge.h that belong to no
// runtime in particular.
#include <poc/bridge.h>
#include <poc/error.hpp>
#include <poc/message.hpp>

#include <cstring>
#include <string>

namespace poc {

std::uint64_t checksum(const poc_message_view& v) noexcept {
  std::uint64_t sum = splitmix64(v.id) + splitmix64(static_cast<std::uint64_t>(v.len));
  const std::uint8_t* p = v.data;
  std::size_t n = v.len;
  if (p == nullptr) return sum;
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);  // little-endian on every target Poc builds for
    sum += w;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    sum += w;
  }
  return sum;
}

void fill_pattern(std::uint64_t id, std::span<std::uint8_t> out) noexcept {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::uint8_t>(id + i);
}

bool check_pattern(std::uint64_t id, std::span<const std::uint8_t> bytes) noexcept {
  for (std::size_t i = 0; i < bytes.size(); ++i)
    if (bytes[i] != static_cast<std::uint8_t>(id + i)) return false;
  return true;
}

namespace {
class poc_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "poc"; }
  std::string message(int v) const override {
    switch (v) {
      case POC_FULL: return "FULL: the channel is at capacity";
      case POC_EMPTY: return "EMPTY: no message is queued";
      case POC_CLOSED: return "CLOSED: the channel is closed";
      case POC_CANCELLED: return "CANCELLED: the operation was cancelled";
      case POC_SHUTDOWN: return "SHUTDOWN: the owning runtime is shutting down";
      case POC_ERROR: return "ERROR: the async call failed";
      case POC_INVALID: return "INVALID: bad handle, null pointer, oversized payload or wrong state";
      case POC_PANIC: return "PANIC: the callee failed and the failure was contained";
      default: return poc_status_str(v);
    }
  }
};
}  // namespace

const std::error_category& category() noexcept {
  static const poc_category instance;
  return instance;
}

}  // namespace poc

extern "C" {

const char* poc_status_str(poc_status status) {
  switch (status) {
    case POC_OK: return "OK";
    case POC_PENDING: return "PENDING";
    case POC_FULL: return "FULL";
    case POC_EMPTY: return "EMPTY";
    case POC_CLOSED: return "CLOSED";
    case POC_CANCELLED: return "CANCELLED";
    case POC_SHUTDOWN: return "SHUTDOWN";
    case POC_ERROR: return "ERROR";
    case POC_INVALID: return "INVALID";
    case POC_PANIC: return "PANIC";
    default: return "UNKNOWN";
  }
}

uint32_t poc_abi_version(void) { return POC_ABI_VERSION; }

uint64_t poc_message_checksum(const poc_message_view* msg) {
  return msg == nullptr ? 0 : poc::checksum(*msg);
}

}  // extern "C"
