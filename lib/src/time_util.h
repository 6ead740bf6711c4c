// SPDX-License-Identifier: MIT
// Monotonic time in ns and conversions for the wait system calls.
#pragma once

#include <time.h>

#include <cstdint>

namespace aioloop::detail {

inline int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline timespec to_timespec(int64_t ns) {
  return timespec{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
}

}  // namespace aioloop::detail
