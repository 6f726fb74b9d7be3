// Statuses, error codes and the message checksum shared by every runtime.
#include <poc/bridge.h>
#include <poc/error.hpp>
#include <poc/message.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <string>

TEST(Status, EveryStatusHasAName) {
  EXPECT_STREQ(poc_status_str(POC_OK), "OK");
  EXPECT_STREQ(poc_status_str(POC_PENDING), "PENDING");
  EXPECT_STREQ(poc_status_str(POC_FULL), "FULL");
  EXPECT_STREQ(poc_status_str(POC_EMPTY), "EMPTY");
  EXPECT_STREQ(poc_status_str(POC_CLOSED), "CLOSED");
  EXPECT_STREQ(poc_status_str(POC_CANCELLED), "CANCELLED");
  EXPECT_STREQ(poc_status_str(POC_SHUTDOWN), "SHUTDOWN");
  EXPECT_STREQ(poc_status_str(POC_ERROR), "ERROR");
  EXPECT_STREQ(poc_status_str(POC_INVALID), "INVALID");
  EXPECT_STREQ(poc_status_str(POC_PANIC), "PANIC");
  EXPECT_STREQ(poc_status_str(12345), "UNKNOWN");
  EXPECT_STREQ(poc_status_str(-1), "UNKNOWN");
  EXPECT_EQ(poc_abi_version(), POC_ABI_VERSION);
}

TEST(Status, ErrorCodesMapLikeAsioUsersExpect) {
  EXPECT_FALSE(poc::to_error_code(POC_OK));
  EXPECT_EQ(poc::to_error_code(POC_CANCELLED), asio::error::operation_aborted);
  EXPECT_EQ(poc::to_status(asio::error::operation_aborted), POC_CANCELLED);
  EXPECT_EQ(poc::to_status(std::make_error_code(std::errc::operation_canceled)), POC_CANCELLED);
  for (poc_status s = POC_FULL; s <= POC_PANIC; ++s) {
    if (s == POC_CANCELLED) continue;
    EXPECT_EQ(poc::to_status(poc::to_error_code(s)), s) << poc_status_str(s);
  }
  EXPECT_EQ(poc::to_status({}), POC_OK);
  EXPECT_EQ(poc::to_status(std::make_error_code(std::errc::io_error)), POC_PANIC);
  EXPECT_EQ(poc::to_error_code(POC_CLOSED), poc::errc::closed);
  EXPECT_EQ(poc::to_error_code(POC_SHUTDOWN).category(), poc::category());
  EXPECT_NE(poc::to_error_code(POC_INVALID).message().find("INVALID"), std::string::npos);
}

TEST(Checksum, MatchesTheDocumentedFormula) {
  // splitmix64(id) + splitmix64(len) + sum of LE words, last word zero-padded.
  const std::uint8_t bytes[11] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  poc_message_view v{42, bytes, sizeof bytes};
  std::uint64_t w0 = 0, w1 = 0;
  std::memcpy(&w0, bytes, 8);
  std::memcpy(&w1, bytes + 8, 3);
  EXPECT_EQ(poc_message_checksum(&v), poc::splitmix64(42) + poc::splitmix64(11) + w0 + w1);
  EXPECT_EQ(poc_message_checksum(nullptr), 0u);
  poc_message_view empty{7, nullptr, 0};
  EXPECT_EQ(poc_message_checksum(&empty), poc::splitmix64(7) + poc::splitmix64(0));
  // Known value, so that the Rust and C# implementations can assert the same number.
  EXPECT_EQ(poc::splitmix64(0), 0xE220A8397B1DCDAFull);
}

TEST(Checksum, DetectsPayloadAndIdChanges) {
  poc::message a(poc::make_id(3, 9), std::vector<std::uint8_t>(64));
  poc::fill_pattern(a.id, a.payload);
  EXPECT_TRUE(poc::check_pattern(a.id, a.payload));
  poc::message b = a;
  b.payload[17] ^= 1;
  EXPECT_FALSE(poc::check_pattern(b.id, b.payload));
  EXPECT_NE(poc::checksum(a), poc::checksum(b));
  poc::message c = a;
  c.id += 1;
  EXPECT_NE(poc::checksum(a), poc::checksum(c));
  EXPECT_EQ(poc::stream_of(a.id), 3u);
  EXPECT_EQ(poc::seq_of(a.id), 9u);
}
