// SPDX-License-Identifier: MIT
// The public BottomHalf handle over a BhNode (bh_list.cpp has the queue).
#include <aioloop/bottom_half.h>

#include <utility>

#include "context_impl.h"

namespace aioloop {

using detail::BhList;
using detail::BhNode;
using detail::ContextImpl;

BottomHalf::BottomHalf(Context& context, std::function<void()> callback)
    : node_(new BhNode(&ContextImpl::of(context).bhs_, std::move(callback), 0)),
      context_(context.shared_from_this()) {}

BottomHalf& BottomHalf::operator=(BottomHalf&& other) noexcept {
  if (this != &other) {
    reset();
    node_ = other.node_;
    context_ = std::move(other.context_);
    other.node_ = nullptr;
  }
  return *this;
}

void BottomHalf::schedule() {
  node_->list->schedule(node_, 0);
}

void BottomHalf::schedule_idle() {
  node_->list->schedule(node_, detail::kBhIdle);
}

void BottomHalf::cancel() {
  BhList::cancel(node_);
}

void BottomHalf::reset() {
  if (!node_) return;
  ContextImpl::of(*context_).assert_home();
  BhNode* node = std::exchange(node_, nullptr);
  node->list->destroy(node);
  context_.reset();  // may destroy the context (deferred if inside its poll())
}

}  // namespace aioloop
