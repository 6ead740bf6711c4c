// SPDX-License-Identifier: MIT
// GLib's own equivalents (impl=glib), measured with GLib's public API the way
// a GLib program would use it, each loop on a GMainContext of its own.
#include "bench_report.h"

#if AIOLOOP_BENCH_HAVE_GLIB

#include <glib-unix.h>
#include <glib.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "bench_glib_idle.h"
#include "bench_glib_side_b.h"

namespace bench {

namespace {

// The closest GLib has to a bottom half: a source with no prepare or check
// of its own, made ready by g_source_set_ready_time(source, 0) from any
// thread. As GLib's documentation asks, dispatch resets the ready time (to
// -1, "not by time") before calling the callback, which re-arms it if it
// wants another run.
struct ReadySource {
  GSource base;
  void (*callback)(void*);
  void* data;
};

gboolean ready_dispatch(GSource* source, GSourceFunc, gpointer) {
  auto* self = reinterpret_cast<ReadySource*>(source);
  g_source_set_ready_time(source, -1);
  self->callback(self->data);
  return G_SOURCE_CONTINUE;
}

GSourceFuncs ready_source_funcs = {nullptr, nullptr, ready_dispatch, nullptr, nullptr, nullptr};

GSource* new_ready_source(GMainContext* context, void (*callback)(void*), void* data) {
  GSource* source = g_source_new(&ready_source_funcs, sizeof(ReadySource));
  auto* self = reinterpret_cast<ReadySource*>(source);
  self->callback = callback;
  self->data = data;
  g_source_attach(source, context);
  return source;
}

void destroy_source(GSource* source) {
  g_source_destroy(source);
  g_source_unref(source);
}

// W1 mode=rearm: the ready-time source re-arms itself from its callback.
void bh_rearm(const Counts& counts) {
  struct State {
    GSource* source = nullptr;
    int64_t runs = 0;
    int64_t target = 0;
  } state;
  GMainContext* context = g_main_context_new();
  state.source = new_ready_source(
      context,
      [](void* data) {
        auto* s = static_cast<State*>(data);
        if (++s->runs < s->target) g_source_set_ready_time(s->source, 0);
      },
      &state);
  auto run = [&](int64_t callbacks) {
    state.runs = 0;
    state.target = callbacks;
    g_source_set_ready_time(state.source, 0);
    while (state.runs < state.target) g_main_context_iteration(context, TRUE);
  };
  run(warmup_count(counts.bh));
  const int64_t start = now_ns();
  run(counts.bh);
  const int64_t wall = now_ns() - start;
  destroy_source(state.source);
  g_main_context_unref(context);
  report("bh", "glib", "rearm", -1, static_cast<double>(wall) / counts.bh, counts.bh);
}

// W1 mode=continue (bench_glib_idle.h).
void bh_continue(const Counts& counts) {
  GIdleChain chain;
  chain.run(warmup_count(counts.bh));
  const int64_t wall = chain.run(counts.bh);
  report("bh", "glib", "continue", -1, static_cast<double>(wall) / counts.bh, counts.bh);
}

// W2: A's source makes B's ready, B's makes A's ready, each from its own
// thread: g_source_set_ready_time() on the other thread's source.
void cross_bh(const Counts& counts) {
  struct State {
    RoundTrips trips;
    GSource* source_a = nullptr;
    GSource* source_b = nullptr;
  } state{{warmup_count(counts.xbh), counts.xbh, counts.budget_ns, "glib W2", true}};
  GMainContext* context_a = g_main_context_new();
  GMainContext* context_b = g_main_context_new();
  state.source_a = new_ready_source(
      context_a,
      [](void* data) {
        auto* s = static_cast<State*>(data);
        if (s->trips.complete()) g_source_set_ready_time(s->source_b, 0);
      },
      &state);
  state.source_b = new_ready_source(
      context_b,
      [](void* data) { g_source_set_ready_time(static_cast<State*>(data)->source_a, 0); }, &state);
  std::atomic<bool> stop{false};
  std::thread side_b = start_side_b(context_b, stop);
  state.trips.begin();
  g_source_set_ready_time(state.source_b, 0);
  while (!state.trips.finished()) g_main_context_iteration(context_a, TRUE);
  stop_side_b(context_b, stop, side_b);
  destroy_source(state.source_a);
  destroy_source(state.source_b);
  g_main_context_unref(context_a);
  g_main_context_unref(context_b);
  report_trips("xbh", "glib", "block", state.trips);
}

// An fd source (what g_unix_fd_add() makes, but on the given context).
GSource* add_fd_source(GMainContext* context, int fd, GUnixFDSourceFunc callback, void* data) {
  GSource* source = g_unix_fd_source_new(fd, G_IO_IN);
  g_source_set_callback(source, G_SOURCE_FUNC(callback), data, nullptr);
  g_source_attach(source, context);
  return source;
}

// GMainContext waits in poll(2), its only fd monitor: the fd workloads of
// GLib report mode=poll.
//
// W3: each thread's context watches its own eventfd; A's callback reads A's
// and writes B's, B's reads B's and writes A's.
void cross_fd(const Counts& counts) {
  struct State {
    RoundTrips trips;
    EventFd efd_a;
    EventFd efd_b;
  } state{{warmup_count(counts.xfd), counts.xfd, counts.budget_ns, "glib W3", true}, {}, {}};
  GMainContext* context_a = g_main_context_new();
  GMainContext* context_b = g_main_context_new();
  GSource* source_a = add_fd_source(
      context_a, state.efd_a.fd(),
      [](gint, GIOCondition, gpointer data) -> gboolean {
        auto* s = static_cast<State*>(data);
        if (s->efd_a.drain() && s->trips.complete()) s->efd_b.write_one();
        return G_SOURCE_CONTINUE;
      },
      &state);
  GSource* source_b = add_fd_source(
      context_b, state.efd_b.fd(),
      [](gint, GIOCondition, gpointer data) -> gboolean {
        auto* s = static_cast<State*>(data);
        if (s->efd_b.drain()) s->efd_a.write_one();
        return G_SOURCE_CONTINUE;
      },
      &state);
  std::atomic<bool> stop{false};
  std::thread side_b = start_side_b(context_b, stop);
  state.trips.begin();
  state.efd_b.write_one();
  while (!state.trips.finished()) g_main_context_iteration(context_a, TRUE);
  stop_side_b(context_b, stop, side_b);
  destroy_source(source_a);
  destroy_source(source_b);
  g_main_context_unref(context_a);
  g_main_context_unref(context_b);
  report_trips("xfd", "glib", "poll", state.trips);
}

// W4: one fd source per idle FIFO, plus the self-pinging eventfd.
void idle_fds(int idle_count, const Counts& counts) {
  const std::span<const int> fifos = idle_fifo_fds(idle_count);
  struct State {
    EventFd efd;
    int64_t iterations = 0;
    int64_t idle_calls = 0;
  } state;
  GMainContext* context = g_main_context_new();
  std::vector<GSource*> sources;
  sources.reserve(fifos.size() + 1);
  for (int fd : fifos) {
    sources.push_back(add_fd_source(
        context, fd,
        [](gint, GIOCondition, gpointer data) -> gboolean {
          ++static_cast<State*>(data)->idle_calls;
          return G_SOURCE_CONTINUE;
        },
        &state));
  }
  sources.push_back(add_fd_source(
      context, state.efd.fd(),
      [](gint, GIOCondition, gpointer data) -> gboolean {
        auto* s = static_cast<State*>(data);
        s->efd.drain();
        ++s->iterations;
        s->efd.write_one();
        return G_SOURCE_CONTINUE;
      },
      &state));
  state.efd.write_one();
  auto run = [&](int64_t count) {
    const int64_t target = state.iterations + count;
    while (state.iterations < target) g_main_context_iteration(context, TRUE);
  };

  const int64_t warm = std::min<int64_t>(warmup_count(counts.idle_iters), 1000);
  const int64_t warm_start = now_ns();
  run(warm);
  const double warm_ns = static_cast<double>(now_ns() - warm_start) / static_cast<double>(warm);
  const int64_t count = bounded_count(counts.idle_iters, warm_ns, counts.budget_ns, 500,
                                      "glib W4 " + std::to_string(idle_count));
  const int64_t start = now_ns();
  run(count);
  const int64_t wall = now_ns() - start;
  report("idlefds", "glib", "poll", idle_count, static_cast<double>(wall) / count, count);

  if (state.idle_calls != 0) {
    note("glib W4: %lld calls on idle fds", static_cast<long long>(state.idle_calls));
  }
  for (GSource* source : sources) destroy_source(source);
  g_main_context_unref(context);
}

// A g_timeout source on the given context. This is g_timeout_add_full()
// spelled out, because g_timeout_add_full() always uses the global default
// context; the reference is dropped as it does, so the context owns the
// source and the returned pointer stays valid until the source is destroyed.
GSource* add_timeout(GMainContext* context, unsigned interval_ms, GSourceFunc callback,
                     void* data) {
  GSource* source = g_timeout_source_new(interval_ms);
  g_source_set_callback(source, callback, data, nullptr);
  g_source_attach(source, context);
  g_source_unref(source);
  return source;
}

// W5 arm_cancel: arm `timers` timeouts 1..100 ms ahead, destroy every other
// one, sleep past the last deadline (not timed), then time the iterations
// that fire the rest.
double arm_cancel_fire(int64_t timers) {
  GMainContext* context = g_main_context_new();
  XorShift random;
  std::vector<unsigned> intervals(static_cast<size_t>(timers));
  for (unsigned& interval : intervals) interval = offset_ms(random.deadline_offset_ns());
  // Zero-filled before the clock starts, so the timed loop does not pay for
  // page faults in the benchmark's own array.
  std::vector<GSource*> sources(intervals.size());
  int64_t fired = 0;
  const GSourceFunc on_timeout = [](gpointer data) -> gboolean {
    ++*static_cast<int64_t*>(data);
    return G_SOURCE_REMOVE;
  };

  const int64_t arm_start = now_ns();
  for (size_t i = 0; i < intervals.size(); ++i) {
    sources[i] = add_timeout(context, intervals[i], on_timeout, &fired);
  }
  for (size_t i = 1; i < sources.size(); i += 2) g_source_destroy(sources[i]);
  const int64_t arm_ns = now_ns() - arm_start;

  gint64 last_deadline_us = 0;
  for (size_t i = 0; i < sources.size(); i += 2) {
    last_deadline_us = std::max(last_deadline_us, g_source_get_ready_time(sources[i]));
  }
  while (g_get_monotonic_time() <= last_deadline_us) {
    g_usleep(static_cast<gulong>(last_deadline_us + 1000 - g_get_monotonic_time()));
  }

  const int64_t expected = (timers + 1) / 2;
  const int64_t fire_start = now_ns();
  while (fired < expected) g_main_context_iteration(context, TRUE);
  const int64_t fire_ns = now_ns() - fire_start;
  note("%s W5 arm_cancel, %lld timers: arm+cancel %.1f ns per timer, fire %.1f ns per fired timer",
       "glib", static_cast<long long>(timers),
       static_cast<double>(arm_ns) / static_cast<double>(timers),
       static_cast<double>(fire_ns) / static_cast<double>(expected));
  g_main_context_unref(context);
  return static_cast<double>(arm_ns + fire_ns) / static_cast<double>(timers);
}

// W5 rearm. GLib has no call that moves a g_timeout source to a new
// deadline: a program that re-arms a timeout destroys the old source and adds
// a new one with the new interval (g_source_remove() + g_timeout_add()), so
// that pair is what one "re-arm" costs here. Both are O(1) in GLib; what GLib
// pays for many armed timeouts is a walk over all of them in every iteration,
// which this mode does not measure (WORKLOADS times the re-arm alone).
double rearm(int64_t others, int64_t rearms) {
  GMainContext* context = g_main_context_new();
  XorShift random;
  const GSourceFunc never = [](gpointer) -> gboolean { return G_SOURCE_REMOVE; };
  for (int64_t i = 0; i < others; ++i) {
    add_timeout(context, offset_ms(random.deadline_offset_ns()), never, nullptr);
  }
  GSource* timer = add_timeout(context, offset_ms(random.deadline_offset_ns()), never, nullptr);
  auto run = [&](int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      g_source_destroy(timer);
      timer = add_timeout(context, offset_ms(random.deadline_offset_ns()), never, nullptr);
    }
  };
  run(warmup_count(rearms));
  const int64_t start = now_ns();
  run(rearms);
  const double ns = static_cast<double>(now_ns() - start) / static_cast<double>(rearms);
  // Unreferencing the context destroys every source still attached.
  g_main_context_unref(context);
  return ns;
}

}  // namespace

int64_t GIdleChain::run(int64_t callbacks) {
  runs_ = 0;
  target_ = callbacks;
  GSource* idle = g_idle_source_new();
  g_source_set_callback(
      idle,
      [](gpointer data) -> gboolean {
        auto* self = static_cast<GIdleChain*>(data);
        return ++self->runs_ < self->target_ ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
      },
      this, nullptr);
  const int64_t start = now_ns();
  g_source_attach(idle, context_);
  g_source_unref(idle);
  while (runs_ < target_) g_main_context_iteration(context_, TRUE);
  return now_ns() - start;
}

void run_glib(const Options& options, const Counts& counts) {
  if (options.wants("W1")) {
    bh_rearm(counts);
    bh_continue(counts);
  }
  if (options.wants("W2")) cross_bh(counts);
  if (options.wants("W3")) cross_fd(counts);
  if (options.wants("W4")) {
    for (int idle_count : counts.idle_fd_counts) idle_fds(idle_count, counts);
  }
  if (options.wants("W5")) report_timers("glib", counts, arm_cancel_fire, rearm);
}

}  // namespace bench

#else  // !AIOLOOP_BENCH_HAVE_GLIB

namespace bench {

void run_glib(const Options&, const Counts&) {
  note("glib: not built with GLib; skipped");
}

}  // namespace bench

#endif
