// SPDX-License-Identifier: MIT
// W1's cheapest GLib equivalent (impl=glib mode=continue): an idle source
// whose callback returns G_SOURCE_CONTINUE, on a GMainContext of its own,
// iterated with g_main_context_iteration(). bench_glib.cpp reports it on its
// own; bench_gsource.cpp runs it between the chunks of aioloop's W1 under
// GLib, so the two are compared at the same moments (Result::paired_peer_ns).
#pragma once

#include <glib.h>

#include <cstdint>

namespace bench {

class GIdleChain {
 public:
  GIdleChain() : context_(g_main_context_new()) {}
  ~GIdleChain() { g_main_context_unref(context_); }
  GIdleChain(const GIdleChain&) = delete;
  GIdleChain& operator=(const GIdleChain&) = delete;

  // Runs `callbacks` callbacks of a new idle source, which removes itself
  // with the last one. Returns the wall time in nanoseconds.
  int64_t run(int64_t callbacks);

 private:
  GMainContext* context_;
  int64_t runs_ = 0;
  int64_t target_ = 0;
};

}  // namespace bench
