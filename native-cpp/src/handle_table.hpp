// The generation-checked table that turns the 64-bit handles of bridge.h into live objects.
//
// A port crosses the ABI as {handle, vtable}; the vtable is static, so the handle is the only
// thing that names the port. Handles are resolved here, never dereferenced: a stale, released,
// forged or foreign handle simply fails to resolve (bridge.h: POC_INVALID, never memory
// corruption).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

namespace poc::detail {

/// What a handle names. The kind is part of the handle's value *and* of the slot, so a receiver
/// handle given to a sender vtable is rejected before the table is even consulted.
enum class handle_kind : std::uint8_t {
  sender = 1,
  receiver = 2,
  future = 3,  // tag 0xC3: a future exported by C++ (future_export.cpp)
};

/// A table of live objects addressed by 64-bit handles.
///
/// Handle layout (0 is never valid):
///
///     bits 63..56  tag         0xC0 | kind    ("C++ exporter"; a Rust or C# handle fails here)
///     bits 55..32  generation  1 .. 2^24-1    (bumped when the slot is released)
///     bits 31..0   index + 1   1 .. 2^32-1
///
/// A handle resolves only while its slot holds an object of the same kind and generation. When
/// a slot's generation would wrap it is retired instead of reused, so a stale handle can never
/// alias a later object.
///
/// The table holds one std::shared_ptr per live handle; resolve() hands out a copy, so an object
/// stays alive for the duration of a call even if another thread releases the handle meanwhile.
///
/// Thread safety: every member may be called concurrently from any thread. One mutex guards
/// the table; it is held only for the few instructions of a lookup and never while calling out.
/// (Performance work will replace it — e.g. with per-slot sequence locks — without changing the
/// interface.)
template <typename T>
class handle_table {
 public:
  /// Stores `value` under a new handle of `kind`. Throws std::bad_alloc when the table cannot grow.
  std::uint64_t insert(handle_kind kind, std::shared_ptr<T> value) {
    std::lock_guard lock(mutex_);
    std::uint32_t index;
    if (free_head_ != no_slot) {
      index = free_head_;
      free_head_ = slots_[index].next_free;
    } else {
      if (slots_.size() >= max_slots) throw std::bad_alloc();
      slots_.emplace_back();
      index = static_cast<std::uint32_t>(slots_.size() - 1);
    }
    slot& s = slots_[index];
    s.value = std::move(value);
    s.kind = kind;
    return encode(kind, s.generation, index);
  }

  /// The object named by `handle`, or null if the handle is not a live handle of `kind`.
  [[nodiscard]] std::shared_ptr<T> resolve(std::uint64_t handle, handle_kind kind) const noexcept {
    std::lock_guard lock(mutex_);
    const slot* s = find(handle, kind);
    return s != nullptr ? s->value : nullptr;
  }

  /// Removes `handle` and returns what it named (null if it was not a live handle of `kind`).
  /// After this, the handle — and every copy of it — resolves to nothing.
  std::shared_ptr<T> erase(std::uint64_t handle, handle_kind kind) noexcept {
    std::shared_ptr<T> out;
    std::lock_guard lock(mutex_);
    slot* s = find(handle, kind);
    if (s == nullptr) return out;
    out = std::move(s->value);
    s->value = nullptr;
    if (++s->generation <= max_generation) {
      s->next_free = free_head_;
      free_head_ = index_of(handle);
    }  // else: retired for good (see the class comment)
    return out;  // the object may be destroyed by the caller, outside the table's lock
  }

  /// Number of live handles (for tests and diagnostics).
  [[nodiscard]] std::size_t size() const noexcept {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const slot& s : slots_) n += s.value != nullptr ? 1 : 0;
    return n;
  }

 private:
  static constexpr std::uint32_t no_slot = std::numeric_limits<std::uint32_t>::max();
  static constexpr std::size_t max_slots = no_slot - 1;  // index + 1 must fit in 32 bits
  static constexpr std::uint32_t max_generation = (1u << 24) - 1;
  static constexpr std::uint64_t tag_base = 0xC0;

  struct slot {
    std::shared_ptr<T> value;  // null while the slot is free
    std::uint32_t generation = 1;
    std::uint32_t next_free = no_slot;
    handle_kind kind = handle_kind::sender;
  };

  static constexpr std::uint64_t encode(handle_kind kind, std::uint32_t generation,
                                        std::uint32_t index) noexcept {
    return ((tag_base | static_cast<std::uint64_t>(kind)) << 56) |
           (static_cast<std::uint64_t>(generation) << 32) | (static_cast<std::uint64_t>(index) + 1);
  }
  static constexpr std::uint32_t index_of(std::uint64_t handle) noexcept {
    return static_cast<std::uint32_t>(handle) - 1;
  }

  // Requires mutex_. Null unless `handle` is well formed and names a live slot of `kind`.
  const slot* find(std::uint64_t handle, handle_kind kind) const noexcept {
    if ((handle >> 56) != (tag_base | static_cast<std::uint64_t>(kind))) return nullptr;
    if (static_cast<std::uint32_t>(handle) == 0) return nullptr;
    const std::uint32_t index = index_of(handle);
    if (index >= slots_.size()) return nullptr;
    const slot& s = slots_[index];
    const auto generation = static_cast<std::uint32_t>(handle >> 32) & max_generation;
    if (s.value == nullptr || s.generation != generation || s.kind != kind) return nullptr;
    return &s;
  }
  slot* find(std::uint64_t handle, handle_kind kind) noexcept {
    return const_cast<slot*>(std::as_const(*this).find(handle, kind));
  }

  mutable std::mutex mutex_;
  std::vector<slot> slots_;
  std::uint32_t free_head_ = no_slot;
};

}  // namespace poc::detail
