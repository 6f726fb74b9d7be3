// Containment at the C ABI boundary (bridge.h rule 9): nothing thrown in C++ crosses into the
// caller's runtime; it becomes POC_PANIC.
#pragma once

#include <poc/bridge.h>

#include <new>
#include <utility>

namespace poc::detail {

/// Runs `f` (which returns poc_status) and turns any exception into POC_PANIC.
template <typename F>
poc_status ffi_guard(F&& f) noexcept {
  try {
    return std::forward<F>(f)();
  } catch (...) {
    return POC_PANIC;
  }
}

}  // namespace poc::detail
