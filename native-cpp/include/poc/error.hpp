// poc/error.hpp — poc statuses as std::error_code, for the Asio import adapter and std::expected.
//
// A completed op reports std::error_code{} for POC_OK. POC_CANCELLED is reported as
// asio::error::operation_aborted (ECANCELED in the system category), the code every Asio user
// already checks for; every other status maps to poc::errc in poc::category().
#pragma once

#include <poc/bridge.h>

#include <cerrno>
#include <system_error>

namespace poc {

/// The non-OK statuses of bridge.h as an error enum (values equal the POC_* constants).
enum class errc : int {
  pending = POC_PENDING,
  full = POC_FULL,
  empty = POC_EMPTY,
  closed = POC_CLOSED,
  cancelled = POC_CANCELLED,
  shutdown = POC_SHUTDOWN,
  error = POC_ERROR,
  invalid = POC_INVALID,
  panic = POC_PANIC,
};

/// The "poc" error category; message() is poc_status_str plus a sentence.
const std::error_category& category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return std::error_code(static_cast<int>(e), category());
}

/// POC_OK → {}, POC_CANCELLED → operation_aborted (ECANCELED, system category), else poc::errc.
inline std::error_code to_error_code(poc_status s) noexcept {
  if (s == POC_OK) return {};
  if (s == POC_CANCELLED) return std::error_code(ECANCELED, std::system_category());
  return make_error_code(static_cast<errc>(s));
}

}  // namespace poc

template <>
struct std::is_error_code_enum<poc::errc> : std::true_type {};
