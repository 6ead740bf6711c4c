// SPDX-License-Identifier: MIT
// Monotonic time in ns and the timeout conversions of the wait system calls.
#pragma once

#include <time.h>

#include <climits>
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

// The timespec argument of ppoll/epoll_pwait2: null for no limit (ns < 0).
inline timespec* to_timespec_or_null(int64_t ns, timespec* storage) {
  if (ns < 0) return nullptr;
  *storage = to_timespec(ns);
  return storage;
}

// A millisecond timeout for poll-style calls: -1 for no limit, rounded up
// so that a timer never fires early, clamped to what an int holds.
inline int to_timeout_ms_rounded_up(int64_t ns) {
  if (ns < 0) return -1;
  const int64_t ms = ns / 1000000 + (ns % 1000000 != 0);
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

// Calls wait_once(timeout_ns) again for as long as it returns true ("a
// signal interrupted me"), each time with what remains of the timeout (-1
// stays -1; an expired one becomes 0, a last look without blocking). A
// signal is not an event: returning early would be a spurious wake-up.
template <typename WaitOnce>
void wait_through_signals(int64_t timeout_ns, WaitOnce&& wait_once) {
  const int64_t deadline = timeout_ns > 0 ? monotonic_ns() + timeout_ns : 0;
  while (wait_once(timeout_ns)) {
    if (timeout_ns > 0) {
      timeout_ns = deadline - monotonic_ns();
      if (timeout_ns < 0) timeout_ns = 0;
    }
  }
}

}  // namespace aioloop::detail
