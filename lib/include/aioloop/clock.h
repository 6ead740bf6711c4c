// SPDX-License-Identifier: MIT
// Clocks and scales for timers.
#pragma once

#include <cstdint>

namespace aioloop {

enum class ClockType {
  // CLOCK_MONOTONIC: steady, never jumps, counts while the loop blocks.
  realtime,
  // A per-context clock that stands still until the program moves it with
  // Context::advance_test_clock(). Tests use it instead of sleeping. A blocking
  // poll() never waits for a test-clock deadline: moving the clock wakes the loop.
  test,
};

// Units of the expire times passed to Timer::mod(); values are nanoseconds.
enum class Scale : int64_t { ns = 1, us = 1000, ms = 1000000 };

inline constexpr int64_t kNsPerSecond = 1000000000;

}  // namespace aioloop
