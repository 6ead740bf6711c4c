// SPDX-License-Identifier: MIT
// Timers on a context's clocks.
#pragma once

#include <aioloop/clock.h>
#include <aioloop/export.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace aioloop {

class Context;
namespace detail {
struct TimerNode;
}

// A one-shot timer: mod() arms it, it fires once inside an iteration of its
// context, never before its deadline. Callbacks may re-arm or delete any
// timer, their own included. Arm, re-arm and cancel cost O(log n) in the
// number of armed timers of the clock (a 4-ary heap). All members are home
// thread only. The handle keeps the context alive.
class AIOLOOP_EXPORT Timer {
 public:
  Timer() = default;
  // Costs one allocation.
  Timer(Context& context, ClockType clock, Scale scale, std::function<void()> callback);
  ~Timer() { reset(); }
  Timer(Timer&& other) noexcept : node_(other.node_), context_(std::move(other.context_)) {
    other.node_ = nullptr;
  }
  Timer& operator=(Timer&& other) noexcept;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Arms (or re-arms) the timer to fire at expire_time, an absolute time on
  // its clock in units of its scale (compare Context::now()).
  void mod(int64_t expire_time);
  // The same in nanoseconds, whatever the scale.
  void mod_ns(int64_t expire_time_ns);
  // Arms the timer for expire_time, but only moves an armed timer earlier.
  void mod_anticipate(int64_t expire_time);
  // Disarms the timer; a no-op if it is not armed.
  void del();
  // Whether the timer is armed and has not fired yet.
  bool pending() const;
  // The armed deadline in ns, or -1 if not pending.
  int64_t expire_time_ns() const;
  // Deletes the timer. Safe from inside its own callback.
  void reset();

  explicit operator bool() const { return node_ != nullptr; }

 private:
  detail::TimerNode* node_ = nullptr;
  std::shared_ptr<Context> context_;
};

}  // namespace aioloop
