// SPDX-License-Identifier: MIT
// The public Timer handle over a TimerNode (timer_list.cpp has the heap).
#include <aioloop/timer.h>

#include <limits>
#include <utility>

#include "context_impl.h"

namespace aioloop {

using detail::ContextImpl;
using detail::TimerNode;

namespace {

int64_t scaled(int64_t value, int64_t scale) {
  // Saturate instead of overflowing: a deadline past INT64_MAX ns is "never".
  if (value > std::numeric_limits<int64_t>::max() / scale)
    return std::numeric_limits<int64_t>::max();
  if (value < std::numeric_limits<int64_t>::min() / scale)
    return std::numeric_limits<int64_t>::min();
  return value * scale;
}

}  // namespace

Timer::Timer(Context& context, ClockType clock, Scale scale, std::function<void()> callback)
    : context_(context.shared_from_this()) {
  auto& impl = ContextImpl::of(context);
  detail::TimerList* list = clock == ClockType::test ? &impl.test_timers_ : &impl.realtime_timers_;
  node_ = new TimerNode(list, static_cast<int64_t>(scale), std::move(callback));
}

Timer& Timer::operator=(Timer&& other) noexcept {
  if (this != &other) {
    reset();
    node_ = other.node_;
    context_ = std::move(other.context_);
    other.node_ = nullptr;
  }
  return *this;
}

void Timer::mod(int64_t expire_time) {
  mod_ns(scaled(expire_time, node_->scale));
}

void Timer::mod_ns(int64_t expire_time_ns) {
  ContextImpl::of(*context_).assert_home();
  node_->list->arm(node_, expire_time_ns);
}

void Timer::mod_anticipate(int64_t expire_time) {
  int64_t ns = scaled(expire_time, node_->scale);
  if (pending() && node_->expire_ns <= ns) return;
  mod_ns(ns);
}

void Timer::del() {
  ContextImpl::of(*context_).assert_home();
  node_->list->disarm(node_);
}

bool Timer::pending() const {
  return node_ && node_->heap_index != TimerNode::kNotInHeap;
}

int64_t Timer::expire_time_ns() const {
  return pending() ? node_->expire_ns : -1;
}

void Timer::reset() {
  if (!node_) return;
  ContextImpl::of(*context_).assert_home();
  TimerNode* node = std::exchange(node_, nullptr);
  node->list->destroy(node);
  context_.reset();
}

}  // namespace aioloop
