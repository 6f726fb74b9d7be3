// poc/error.hpp — poc statuses as std::error_code, for the Asio import adapter and std::expected.
//
// A completed op reports std::error_code{} for POC_OK. POC_CANCELLED is reported as
// asio::error::operation_aborted itself, the code every Asio user already checks for (standalone
// Asio 1.22 keeps it in its own "asio.system" category, so a plain ECANCELED in
// std::system_category() would not compare equal to it); every other status maps to poc::errc
// in poc::category().
#pragma once

#include <poc/detail/asio_config.hpp>  // before any Asio header (see there)

#include <poc/bridge.h>

#include <asio/error.hpp>

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

/// POC_OK → {}, POC_CANCELLED → asio::error::operation_aborted, anything else → poc::errc.
inline std::error_code to_error_code(poc_status s) noexcept {
  if (s == POC_OK) return {};
  if (s == POC_CANCELLED) return asio::error::operation_aborted;
  return make_error_code(static_cast<errc>(s));
}

/// The inverse of to_error_code: success → POC_OK, asio::error::operation_aborted or
/// std::errc::operation_canceled → POC_CANCELLED, a poc::errc → its value, anything else →
/// POC_PANIC.
inline poc_status to_status(const std::error_code& ec) noexcept {
  if (!ec) return POC_OK;
  if (ec.category() == category()) return static_cast<poc_status>(ec.value());
  if (ec == asio::error::operation_aborted || ec == std::errc::operation_canceled)
    return POC_CANCELLED;
  return POC_PANIC;
}

}  // namespace poc

template <>
struct std::is_error_code_enum<poc::errc> : std::true_type {};
