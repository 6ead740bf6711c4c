// SPDX-License-Identifier: MIT
// W4's handlers on an aioloop context, shared by the native and the GSource
// benchmark: N idle FIFOs registered for reading, plus an eventfd whose read
// handler reads it and writes it again, so every iteration finds exactly one
// ready fd. The two differ only in how they drive an iteration.
#pragma once

#include <aioloop/context.h>

#include <cstdint>
#include <span>
#include <system_error>

#include "bench_report.h"

namespace bench {

// Throws (the benchmark stops with a message) when a registration failed.
void check(std::error_code error, const char* what);

class IdleFdHandlers {
 public:
  // Registers the handlers and makes the eventfd readable once.
  IdleFdHandlers(aioloop::Context& ctx, std::span<const int> idle_fds);
  // Removes them; in the context's home thread.
  ~IdleFdHandlers();
  IdleFdHandlers(const IdleFdHandlers&) = delete;
  IdleFdHandlers& operator=(const IdleFdHandlers&) = delete;

  // Self-ping callbacks so far: one per iteration.
  int64_t iterations() const { return iterations_; }
  // Calls on idle fds: must stay 0.
  int64_t idle_calls() const { return idle_calls_; }

 private:
  aioloop::Context& ctx_;
  std::span<const int> idle_fds_;
  EventFd efd_;
  int64_t iterations_ = 0;
  int64_t idle_calls_ = 0;
};

}  // namespace bench
