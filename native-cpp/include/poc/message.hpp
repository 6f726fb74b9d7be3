// poc/message.hpp — the C++ owned message type and the helpers every agent and test shares.
//
// Thread safety: a message is a value type; distinct objects may be used from distinct threads.
#pragma once

#include <poc/bridge.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace poc {

/// An owned message: what a C++ importer gets when it copies a borrowed poc_message_view.
struct message {
  std::uint64_t id = 0;
  std::vector<std::uint8_t> payload;

  message() = default;
  message(std::uint64_t id_, std::vector<std::uint8_t> payload_)
      : id(id_), payload(std::move(payload_)) {}

  /// Copies the bytes of a borrowed view (valid only for the call that carries it).
  static message from_view(const poc_message_view& v) {
    return message(v.id, std::vector<std::uint8_t>(v.data, v.data + v.len));
  }

  /// A view borrowing this message's bytes; valid while the message is alive and unchanged.
  [[nodiscard]] poc_message_view view() const noexcept {
    return poc_message_view{id, payload.empty() ? nullptr : payload.data(), payload.size()};
  }

  friend bool operator==(const message&, const message&) = default;
};

/// Bits of an agent message id that hold the sequence number; the rest hold the stream.
inline constexpr unsigned stream_shift = 48;
inline constexpr std::uint64_t seq_mask = (std::uint64_t{1} << stream_shift) - 1;

/// Id of message `seq` of producer stream `stream`: (stream << 48) | seq.
constexpr std::uint64_t make_id(std::uint64_t stream, std::uint64_t seq) noexcept {
  return (stream << stream_shift) | (seq & seq_mask);
}
constexpr std::uint64_t stream_of(std::uint64_t id) noexcept { return id >> stream_shift; }
constexpr std::uint64_t seq_of(std::uint64_t id) noexcept { return id & seq_mask; }

/// splitmix64 finaliser, the mixing step of the checksum (docs/contract.md).
constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
  std::uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// The contract's message checksum; equal to poc_message_checksum(&v).
std::uint64_t checksum(const poc_message_view& v) noexcept;
inline std::uint64_t checksum(const message& m) noexcept { return checksum(m.view()); }

/// Producer payload pattern: byte i is (uint8_t)(id + i).
void fill_pattern(std::uint64_t id, std::span<std::uint8_t> out) noexcept;
/// True when `bytes` follows the producer pattern for `id`.
bool check_pattern(std::uint64_t id, std::span<const std::uint8_t> bytes) noexcept;

}  // namespace poc
