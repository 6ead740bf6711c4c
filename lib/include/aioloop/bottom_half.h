// SPDX-License-Identifier: MIT
// Bottom halves: deferred callbacks bound to a context.
#pragma once

#include <aioloop/export.h>

#include <functional>
#include <memory>

namespace aioloop {

class Context;
namespace detail {
struct BhNode;
}

// A callback that runs in its context's home thread, once per schedule(),
// in the iteration after it was scheduled. Bottom halves run in the order
// they were scheduled; one scheduled while bottom halves are running runs in
// the next round, so a self-rescheduling bottom half runs exactly once per
// iteration and never starves fds and timers. The handle owns the bottom
// half and keeps the context alive; it is movable, not copyable.
class AIOLOOP_EXPORT BottomHalf {
 public:
  BottomHalf() = default;
  // Home thread or any thread before the bottom half is first scheduled.
  // Costs one allocation.
  BottomHalf(Context& context, std::function<void()> callback);
  ~BottomHalf() { reset(); }
  BottomHalf(BottomHalf&& other) noexcept
      : node_(other.node_), context_(std::move(other.context_)) {
    other.node_ = nullptr;
  }
  BottomHalf& operator=(BottomHalf&& other) noexcept;
  BottomHalf(const BottomHalf&) = delete;
  BottomHalf& operator=(const BottomHalf&) = delete;

  // Makes the callback run in a later iteration and wakes the context.
  // Idempotent until it runs. Any thread; lock-free: one atomic OR, one
  // compare-and-swap push and notify() (no system call unless the loop is
  // blocked in a wait).
  void schedule();

  // Like schedule(), but the loop is not woken early for it: it runs in the
  // next iteration, which happens within 10 ms. Any thread.
  void schedule_idle();

  // Withdraws a schedule that has not run yet. Any thread; one atomic AND.
  void cancel();

  // Deletes the bottom half: it will not run again. Safe from inside its own
  // callback (the callback is destroyed after it returns). Home thread.
  void reset();

  // Whether the handle owns a bottom half.
  explicit operator bool() const { return node_ != nullptr; }

 private:
  detail::BhNode* node_ = nullptr;
  std::shared_ptr<Context> context_;
};

}  // namespace aioloop
