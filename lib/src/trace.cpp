// SPDX-License-Identifier: MIT
// The semaphores of the USDT trace points (trace.h). Tracers find them
// through the probe notes and increment them while attached; nothing else
// writes them.
#include "trace.h"

#if AIOLOOP_HAVE_SDT

extern "C" {
#define AIOLOOP_DEFINE_TRACE_SEMAPHORE(name) \
  unsigned short AIOLOOP_TRACE_SEMAPHORE(name) __attribute__((section(".probes"))) = 0
AIOLOOP_DEFINE_TRACE_SEMAPHORE(iteration_start);
AIOLOOP_DEFINE_TRACE_SEMAPHORE(iteration_end);
AIOLOOP_DEFINE_TRACE_SEMAPHORE(wait_begin);
AIOLOOP_DEFINE_TRACE_SEMAPHORE(wait_end);
AIOLOOP_DEFINE_TRACE_SEMAPHORE(busy_poll_start);
AIOLOOP_DEFINE_TRACE_SEMAPHORE(busy_poll_stop);
AIOLOOP_DEFINE_TRACE_SEMAPHORE(busy_poll_grow);
AIOLOOP_DEFINE_TRACE_SEMAPHORE(busy_poll_shrink);
AIOLOOP_DEFINE_TRACE_SEMAPHORE(bh_run);
AIOLOOP_DEFINE_TRACE_SEMAPHORE(fd_dispatch);
AIOLOOP_DEFINE_TRACE_SEMAPHORE(timer_fire);
#undef AIOLOOP_DEFINE_TRACE_SEMAPHORE
}

#endif
