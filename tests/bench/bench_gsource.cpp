// SPDX-License-Identifier: MIT
// aioloop driven by GLib (impl=aioloop, mode=gsource-<backend>): W1-W4 doing
// exactly the work of bench_aioloop.cpp, but every loop is a GMainContext of
// its own, iterated with g_main_context_iteration(), with the context's
// GSource attached to it instead of calls to Context::poll(). GLib's own
// equivalents are in bench_glib.cpp, driven the same way, so the difference
// between the two is what wrapping a context in a GSource costs.
#include "bench_idle_handlers.h"
#include "bench_report.h"

#if AIOLOOP_BENCH_HAVE_GLIB

#include <aioloop/aioloop.h>
#include <aioloop/glib.h>
#include <glib.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_glib_idle.h"

namespace bench {

namespace {

using aioloop::Backend;
using aioloop::BottomHalf;
using aioloop::Context;

std::string mode_name(Backend backend) {
  return "gsource-" + std::string(aioloop::backend_name(backend));
}

// A context made in the calling thread (so that thread is its home, as the
// GSource requires of the thread iterating the GMainContext) and a new
// GMainContext with the context's source attached. Destroy it in the same
// thread, after everything that must run in the context's home thread (bottom
// half handles, handler removal) is done.
class GLibLoop {
 public:
  explicit GLibLoop(Backend backend)
      : context_(Context::create({.backend = backend})), main_context_(g_main_context_new()) {
    source_id_ = aioloop::glib::attach(context_, main_context_);
  }
  ~GLibLoop() {
    // g_source_remove() would look the id up in the global default context,
    // not in ours.
    if (GSource* source = g_main_context_find_source_by_id(main_context_, source_id_)) {
      g_source_destroy(source);
    }
    g_main_context_unref(main_context_);
  }
  GLibLoop(const GLibLoop&) = delete;
  GLibLoop& operator=(const GLibLoop&) = delete;

  Context& context() { return *context_; }
  GMainContext* main_context() { return main_context_; }
  void iterate() { g_main_context_iteration(main_context_, TRUE); }

 private:
  std::shared_ptr<Context> context_;
  GMainContext* main_context_;
  guint source_id_ = 0;
};

// W1: one bottom half that schedules itself from its own callback. The
// measured callbacks are cut into as many pieces as RoundTrips cuts a
// blocking measurement, and GLib's g_idle
// (bench_glib_idle.h) runs as many callbacks after each in the same thread:
// an iteration of GLib costs about 1.4 us here and drifts by a tenth and
// more within a minute, as much as the difference being measured, so GLib's
// figure from another moment of the run makes a poor yardstick.
void bh_chain(Backend backend, const Counts& counts) {
  GLibLoop loop(backend);
  GIdleChain idle;
  int64_t runs = 0;
  int64_t target = 0;
  BottomHalf bh;
  bh = BottomHalf(loop.context(), [&] {
    if (++runs < target) bh.schedule();
  });
  auto run = [&](int64_t callbacks) {
    runs = 0;
    target = callbacks;
    const int64_t start = now_ns();
    bh.schedule();
    while (runs < target) loop.iterate();
    return now_ns() - start;
  };
  run(warmup_count(counts.bh));
  idle.run(warmup_count(counts.bh));
  constexpr int64_t kChunks = RoundTrips::kPairedChunks;
  const int64_t chunk = std::max<int64_t>(counts.bh / kChunks, 1);
  int64_t wall = 0;
  int64_t idle_wall = 0;
  for (int64_t i = 0; i < kChunks; ++i) {
    wall += run(chunk);
    idle_wall += idle.run(chunk);
  }
  const int64_t ops = chunk * kChunks;
  report("bh", "aioloop", mode_name(backend), -1, static_cast<double>(wall) / ops, ops, 0,
         static_cast<double>(idle_wall) / ops);
}

// Thread B of W2 and W3: its own context and GMainContext, set up by `setup`
// (which returns what must live as long as the loop runs and be destroyed in
// B's thread), iterated until A says stop. The two barriers order setup
// before the first round trip, and the last cross-thread access before
// anything is torn down.
template <typename Setup>
std::thread start_side_b(Backend backend, std::barrier<>& sync, std::atomic<bool>& stop,
                         GMainContext*& main_out, Setup setup) {
  return std::thread([=, &sync, &stop, &main_out] {
    GLibLoop loop(backend);
    auto keep_alive = setup(loop.context());
    main_out = loop.main_context();
    sync.arrive_and_wait();
    while (!stop.load(std::memory_order_acquire)) loop.iterate();
    sync.arrive_and_wait();
  });
}

void stop_side_b(std::atomic<bool>& stop, GMainContext* main_b) {
  stop.store(true, std::memory_order_release);
  // g_main_context_wakeup() always writes GLib's wake-up fd, so B sees the
  // flag whether it is blocked in poll() or about to be.
  g_main_context_wakeup(main_b);
}

// W2: A's bottom half schedules B's, B's schedules A's.
void cross_bh(Backend backend, const Counts& counts) {
  RoundTrips trips(warmup_count(counts.xbh), counts.xbh, counts.budget_ns,
                   "aioloop W2 " + mode_name(backend), /*pair_with_l3=*/true);
  std::barrier<> sync(2);
  std::atomic<bool> stop{false};
  GMainContext* main_b = nullptr;
  BottomHalf* bh_a = nullptr;
  BottomHalf* bh_b = nullptr;

  std::thread side_b = start_side_b(backend, sync, stop, main_b, [&](Context& ctx) {
    auto bh = std::make_unique<BottomHalf>(ctx, [&] { bh_a->schedule(); });
    bh_b = bh.get();
    return bh;
  });

  GLibLoop loop(backend);
  BottomHalf bh(loop.context(), [&] {
    if (trips.complete()) bh_b->schedule();
  });
  bh_a = &bh;
  sync.arrive_and_wait();
  trips.begin();
  bh_b->schedule();
  while (!trips.finished()) loop.iterate();
  stop_side_b(stop, main_b);
  sync.arrive_and_wait();
  side_b.join();

  report_trips("xbh", "aioloop", mode_name(backend), trips);
}

// W3: A's read handler reads A's eventfd and writes B's; B does the same back.
// Busy polling is off under GLib, so the handlers have only a read callback.
void cross_fd(Backend backend, const Counts& counts) {
  RoundTrips trips(warmup_count(counts.xfd), counts.xfd, counts.budget_ns,
                   "aioloop W3 " + mode_name(backend), /*pair_with_l3=*/true);
  std::barrier<> sync(2);
  std::atomic<bool> stop{false};
  GMainContext* main_b = nullptr;
  EventFd efd_a;
  EventFd efd_b;

  std::thread side_b = start_side_b(backend, sync, stop, main_b, [&](Context& ctx) {
    check(ctx.set_fd_handler(efd_b.fd(), {.read =
                                              [&] {
                                                if (efd_b.drain()) efd_a.write_one();
                                              }}),
          "set_fd_handler");
    // Removes the handler in B's thread, before B's context goes away.
    auto remove = [&ctx, fd = efd_b.fd()](void*) { ctx.remove_fd_handler(fd); };
    return std::unique_ptr<void, decltype(remove)>(&ctx, remove);
  });

  GLibLoop loop(backend);
  check(loop.context().set_fd_handler(efd_a.fd(), {.read =
                                                       [&] {
                                                         if (efd_a.drain() && trips.complete())
                                                           efd_b.write_one();
                                                       }}),
        "set_fd_handler");
  sync.arrive_and_wait();
  trips.begin();
  efd_b.write_one();
  while (!trips.finished()) loop.iterate();
  stop_side_b(stop, main_b);
  sync.arrive_and_wait();
  side_b.join();
  loop.context().remove_fd_handler(efd_a.fd());

  report_trips("xfd", "aioloop", mode_name(backend), trips);
}

// W4 (bench_idle_handlers.h), driven by g_main_context_iteration.
void idle_fds(Backend backend, int idle_count, const Counts& counts) {
  GLibLoop loop(backend);
  IdleFdHandlers handlers(loop.context(), idle_fifo_fds(idle_count));
  auto run = [&](int64_t count) {
    const int64_t target = handlers.iterations() + count;
    while (handlers.iterations() < target) loop.iterate();
  };

  // Under the poll monitor an iteration with 10,000 fds takes tens of
  // milliseconds (GLib's per-fd bookkeeping), so the warm-up also stops after
  // a tenth of the budget, and the measured count may drop to kMinCount:
  // even that many iterations take longer than a fixed count of cheap ones.
  constexpr int64_t kMinCount = 20;
  const int64_t warm_limit = std::min<int64_t>(warmup_count(counts.idle_iters), 2000);
  const int64_t warm_start = now_ns();
  int64_t warm = 0;
  while (warm < warm_limit && now_ns() - warm_start < counts.budget_ns / 10) {
    run(1);
    ++warm;
  }
  const double warm_ns = static_cast<double>(now_ns() - warm_start) / static_cast<double>(warm);
  const std::string mode = mode_name(backend);
  const int64_t count = bounded_count(counts.idle_iters, warm_ns, counts.budget_ns, kMinCount,
                                      "aioloop W4 " + mode + " " + std::to_string(idle_count));
  const int64_t start = now_ns();
  run(count);
  const int64_t wall = now_ns() - start;
  report("idlefds", "aioloop", mode, idle_count, static_cast<double>(wall) / count, count);

  if (handlers.idle_calls() != 0) {
    note("aioloop W4 %s: %lld calls on idle fds", mode.c_str(),
         static_cast<long long>(handlers.idle_calls()));
  }
}

}  // namespace

void run_gsource(const Options& options, const Counts& counts) {
  if (!options.wants("W1") && !options.wants("W2") && !options.wants("W3") &&
      !options.wants("W4")) {
    return;
  }
  const std::vector<Backend> backends = usable_backends(options);
  for (Backend backend : backends) {
    if (options.wants("W1")) bh_chain(backend, counts);
  }
  for (Backend backend : backends) {
    if (options.wants("W2")) cross_bh(backend, counts);
  }
  for (Backend backend : backends) {
    if (!options.wants("W3")) break;
    cross_fd(backend, counts);
    if (options.wants_impl("limit")) w3_gsource_floor(mode_name(backend), counts);
  }
  for (Backend backend : backends) {
    if (!options.wants("W4")) break;
    for (int idle_count : counts.idle_fd_counts) idle_fds(backend, idle_count, counts);
  }
}

}  // namespace bench

#else  // !AIOLOOP_BENCH_HAVE_GLIB

namespace bench {

void run_gsource(const Options&, const Counts&) {
  note("aioloop gsource: not built with GLib; skipped");
}

}  // namespace bench

#endif
