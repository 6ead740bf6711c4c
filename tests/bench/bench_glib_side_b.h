// SPDX-License-Identifier: MIT
// Thread B of a two-thread GLib workload (GLib's own W2 and W3, and W3's
// floor under GLib): B iterates its own GMainContext until told to stop.
#pragma once

#include <glib.h>

#include <atomic>
#include <thread>

namespace bench {

// Runs thread B's context until stop is set. GLib contexts may be made in
// any thread; iterating one acquires it for the calling thread.
inline std::thread start_side_b(GMainContext* context, std::atomic<bool>& stop) {
  return std::thread([context, &stop] {
    while (!stop.load(std::memory_order_acquire)) g_main_context_iteration(context, TRUE);
  });
}

inline void stop_side_b(GMainContext* context, std::atomic<bool>& stop, std::thread& side_b) {
  stop.store(true, std::memory_order_release);
  // g_main_context_wakeup() always writes the context's wake-up fd, so B
  // cannot miss it whether it is inside an iteration or about to start one.
  g_main_context_wakeup(context);
  side_b.join();
}

}  // namespace bench
