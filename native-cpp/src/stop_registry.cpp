// The stop registry (poc/detail/stop_service.hpp): how poc::runtime::shutdown() reaches the
// agents and in-flight import ops running on its io_context without owning them.
#include <poc/detail/stop_registry.hpp>
#include <poc/detail/stop_service.hpp>

#include <asio/execution_context.hpp>

#include <vector>

namespace poc::detail {

asio::execution_context::id stop_service::id;

stop_service::stop_service(asio::execution_context& owner)
    : asio::execution_context::service(owner) {
  for (shard& s : shards_) s.head.prev_ = s.head.next_ = &s.head;
}

stop_service::~stop_service() = default;

bool stop_service::add(stop_entry& e) noexcept {
  shard& s = shard_of(e);
  std::lock_guard lock(s.mutex);
  e.next_ = &s.head;
  e.prev_ = s.head.prev_;
  s.head.prev_->next_ = &e;
  s.head.prev_ = &e;
  // Read under the shard lock: request_stop_all sets the flag before it takes any shard lock,
  // so either the snapshot of this shard contains `e`, or this load sees the flag (or both).
  return stopped_.load(std::memory_order_acquire);
}

void stop_service::remove(stop_entry& e) noexcept {
  shard& s = shard_of(e);
  std::lock_guard lock(s.mutex);
  e.prev_->next_ = e.next_;
  e.next_->prev_ = e.prev_;
  e.prev_ = e.next_ = nullptr;
}

void stop_service::request_stop_all() noexcept {
  stopped_.store(true, std::memory_order_release);
  // Copy the requests by value, then invoke them with no lock held: an invoked request may
  // complete its op inline, and the completion removes (frees) the entry through remove().
  std::vector<stop_request> requests;
  for (shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    for (stop_entry* e = s.head.next_; e != &s.head; e = e->next_) requests.push_back(e->request_);
  }
  for (const stop_request& r : requests) r();
}

void request_stop_all(asio::execution_context& ctx) noexcept {
  asio::use_service<stop_service>(ctx).request_stop_all();
}

}  // namespace poc::detail
