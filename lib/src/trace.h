// SPDX-License-Identifier: MIT
// USDT trace points, provider "aioloop", for bpftrace, perf and SystemTap:
//
//   bpftrace -l 'usdt:/path/to/libaioloop.so.0:aioloop:*'
//
// Every probe's first argument is the context (its address), so that a
// tracer can keep per-context figures. Times are nanoseconds.
//
//   iteration_start(ctx, blocking, callbacks)
//                                        Context::poll() begins; blocking is
//                                        its argument (0 or 1); callbacks: the
//                                        context's total so far of bottom
//                                        halves, fd handler dispatches and
//                                        timers run
//   iteration_end(ctx, blocked, callbacks, progress)
//                                        it ends; blocked: it waited in the
//                                        kernel with a timeout other than 0;
//                                        callbacks: the same total (minus the
//                                        start's: what this iteration ran);
//                                        progress: its return value
//   wait_begin(ctx, timeout_ns)          the fd monitor waits; -1 is forever
//   wait_end(ctx)                        the wait returned
//   busy_poll_start(ctx, budget_ns)      a busy-poll stretch begins
//   busy_poll_stop(ctx, hit, spent_ns)   it ends; hit: a poll callback (or a
//                                        notify()) found work
//   busy_poll_grow(ctx, old_ns, new_ns)  the busy-poll budget grew
//   busy_poll_shrink(ctx, old_ns, new_ns)  the budget shrank
//   bh_run(ctx, bh)                      a bottom half's callback is called
//   fd_dispatch(ctx, fd, revents)        an fd handler is dispatched (revents:
//                                        poll(2) bits; 0x10000 = found by its
//                                        poll callback)
//   timer_fire(ctx, timer, deadline_ns)  a timer's callback is called
//
// A probe costs one no-op instruction where it sits, plus whatever it takes
// to have its arguments at hand. iteration_start and iteration_end, whose
// totals need loads, are guarded by their semaphores: until a tracer
// attaches, each costs a compare and a branch. Nested iterations (a callback
// calling poll()) nest their start/end pairs. Under a GSource the iteration
// probes stay silent (GLib runs the iteration); the others fire.
//
// Without the `tracing` build option, or without sys/sdt.h, every macro here
// compiles to nothing and evaluates nothing.
#pragma once

#include <cstdint>

#include "config.h"

#if AIOLOOP_HAVE_SDT

// Semaphores for every probe in a file that includes this header: sys/sdt.h
// records them in the probe notes, and tracers count themselves in.
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

#define AIOLOOP_TRACE_SEMAPHORE(name) aioloop_##name##_semaphore

extern "C" {
// Defined in trace.cpp, one per probe, incremented by attached tracers.
// Hidden, so that reading one is a single PC-relative access instead of a
// load of its address from the GOT first.
#define AIOLOOP_DECLARE_TRACE_SEMAPHORE(name)                                             \
  extern unsigned short AIOLOOP_TRACE_SEMAPHORE(name) __attribute__((section(".probes"))) \
  __attribute__((visibility("hidden")))
AIOLOOP_DECLARE_TRACE_SEMAPHORE(iteration_start);
AIOLOOP_DECLARE_TRACE_SEMAPHORE(iteration_end);
AIOLOOP_DECLARE_TRACE_SEMAPHORE(wait_begin);
AIOLOOP_DECLARE_TRACE_SEMAPHORE(wait_end);
AIOLOOP_DECLARE_TRACE_SEMAPHORE(busy_poll_start);
AIOLOOP_DECLARE_TRACE_SEMAPHORE(busy_poll_stop);
AIOLOOP_DECLARE_TRACE_SEMAPHORE(busy_poll_grow);
AIOLOOP_DECLARE_TRACE_SEMAPHORE(busy_poll_shrink);
AIOLOOP_DECLARE_TRACE_SEMAPHORE(bh_run);
AIOLOOP_DECLARE_TRACE_SEMAPHORE(fd_dispatch);
AIOLOOP_DECLARE_TRACE_SEMAPHORE(timer_fire);
#undef AIOLOOP_DECLARE_TRACE_SEMAPHORE
}

// Fires probe `name` with one to six arguments (integers or pointers):
// STAP_PROBE<n> for n arguments.
#define AIOLOOP_TRACE(name, ...) \
  AIOLOOP_TRACE_CAT(STAP_PROBE, AIOLOOP_TRACE_NARG(__VA_ARGS__))(aioloop, name, __VA_ARGS__)
#define AIOLOOP_TRACE_NARG(...) AIOLOOP_TRACE_NARG_(__VA_ARGS__, 6, 5, 4, 3, 2, 1, 0)
#define AIOLOOP_TRACE_NARG_(a1, a2, a3, a4, a5, a6, n, ...) n
#define AIOLOOP_TRACE_CAT(a, b) AIOLOOP_TRACE_CAT_(a, b)
#define AIOLOOP_TRACE_CAT_(a, b) a##b

// Whether a tracer is attached to probe `name`: for probes whose arguments
// cost work to compute. A plain read is enough: every use sits between calls
// the compiler cannot see through, so it never keeps an old value long.
#define AIOLOOP_TRACE_ENABLED(name) __builtin_expect(AIOLOOP_TRACE_SEMAPHORE(name) != 0, 0)

#else

namespace aioloop::detail {
// Keeps arguments "used" for the compiler without evaluating them.
template <typename... Args>
inline void trace_unused(const Args&...) {}
}  // namespace aioloop::detail

#define AIOLOOP_TRACE(name, ...)                             \
  do {                                                       \
    if (false) ::aioloop::detail::trace_unused(__VA_ARGS__); \
  } while (false)
#define AIOLOOP_TRACE_ENABLED(name) false

#endif

namespace aioloop::detail {

// busy_poll_grow or busy_poll_shrink, whichever a change of the busy-poll
// budget is (both the grow/shrink rule and per-handler estimates set it).
inline void trace_poll_ns_change(const void* context, int64_t old_ns, int64_t new_ns) {
  if (new_ns > old_ns) {
    AIOLOOP_TRACE(busy_poll_grow, context, old_ns, new_ns);
  } else if (new_ns < old_ns) {
    AIOLOOP_TRACE(busy_poll_shrink, context, old_ns, new_ns);
  }
}

}  // namespace aioloop::detail
