// SPDX-License-Identifier: MIT
// Per-context counters, readable from any thread.
#pragma once

#include <aioloop/backend.h>

#include <cstdint>

namespace aioloop {

// A snapshot of a context's counters (Context::stats()). Each field is read
// atomically on its own; the snapshot as a whole is not one instant.
//
// monitor_completions counts what the io_uring monitor took from its
// completion queue, stale completions included (always 0 under poll and
// epoll): about one per fd event; many more mean requests that report the
// same readiness twice.
struct Stats {
  uint64_t iterations = 0;               // calls of poll() and GSource dispatches
  uint64_t blocking_waits = 0;           // waits in the fd monitor with a timeout != 0
  uint64_t busy_poll_attempts = 0;       // busy-poll phases started
  uint64_t busy_poll_hits = 0;           // busy-poll phases that found work
  uint64_t bhs_run = 0;                  // bottom-half callbacks run
  uint64_t handlers_dispatched = 0;      // handler dispatches (read, write, poll_ready: one)
  uint64_t timers_fired = 0;             // timer callbacks run
  uint64_t eventfd_writes = 0;           // notify() calls that had to wake a wait (a system call:
                                         // the eventfd, or the outer loop's own wake-up)
  uint64_t invalid_fds = 0;              // handlers dropped from the watch set: fd closed
  uint64_t monitor_completions = 0;      // io_uring completions reaped (see below)
  int64_t poll_ns = 0;                   // current busy-poll budget
  Backend backend = Backend::automatic;  // the monitor in use (never automatic)
};

}  // namespace aioloop
