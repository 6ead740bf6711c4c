// SPDX-License-Identifier: MIT
// aioloop's native loop (impl=aioloop, mode=<backend>[+busypoll]): W1-W5 for
// every fd monitor this build has and the kernel accepts.
#include <aioloop/aioloop.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_idle_handlers.h"
#include "bench_report.h"

namespace bench {

namespace {

using aioloop::Backend;
using aioloop::BottomHalf;
using aioloop::ClockType;
using aioloop::Context;
using aioloop::FdHandler;

// The busy-poll settings of WORKLOADS.md (QEMU's poll_max_ns=32768, grow 0,
// shrink 0: start at the default, never grow past it, drop to 0 on a miss).
constexpr int64_t kBusyPollMaxNs = 32768;

std::shared_ptr<Context> make_context(Backend backend) {
  return Context::create({.backend = backend});
}

std::string mode_name(Backend backend, bool busypoll) {
  std::string mode(aioloop::backend_name(backend));
  if (busypoll) mode += "+busypoll";
  return mode;
}

// W1: one bottom half that schedules itself from its own callback.
void bh_chain(Backend backend, const Counts& counts) {
  auto ctx = make_context(backend);
  int64_t runs = 0;
  int64_t target = 0;
  BottomHalf bh;
  bh = BottomHalf(*ctx, [&] {
    if (++runs < target) bh.schedule();
  });
  auto run = [&](int64_t callbacks) {
    runs = 0;
    target = callbacks;
    bh.schedule();
    while (runs < target) ctx->poll(true);
  };
  run(warmup_count(counts.bh));
  const int64_t start = now_ns();
  run(counts.bh);
  const int64_t wall = now_ns() - start;
  report("bh", "aioloop", mode_name(backend, false), -1, static_cast<double>(wall) / counts.bh,
         counts.bh);
}

// Thread B of W2 and W3: a context of its own, set up by `setup` (which
// returns what must live as long as the loop runs), polled until A says stop.
// The two barriers order setup before the first round trip, and the last
// cross-thread access before anything is torn down.
template <typename Setup>
std::thread start_side_b(Backend backend, bool busypoll, std::barrier<>& sync,
                         std::atomic<bool>& stop, Context*& ctx_out, Setup setup) {
  return std::thread([=, &sync, &stop, &ctx_out] {
    auto ctx = make_context(backend);
    if (busypoll) ctx->set_poll_params(kBusyPollMaxNs, 0, 0);
    auto keep_alive = setup(*ctx);
    ctx_out = ctx.get();
    sync.arrive_and_wait();
    while (!stop.load(std::memory_order_acquire)) ctx->poll(true);
    sync.arrive_and_wait();
  });
}

void stop_side_b(std::atomic<bool>& stop, Context* ctx_b) {
  stop.store(true, std::memory_order_release);
  // notify() makes B's blocked or busy-polling poll() return, so it sees
  // the flag: the same wake-up guarantee the workload itself relies on.
  ctx_b->notify();
}

void busypoll_note(const char* workload, Backend backend, const aioloop::Stats& a,
                   const aioloop::Stats& b, int64_t trips) {
  const uint64_t writes = a.eventfd_writes + b.eventfd_writes;
  note(
      "aioloop %s %s+busypoll: %llu eventfd writes in %lld round trips (%.3f per 100); "
      "busy-poll hits %llu of %llu attempts; %llu blocking waits; poll_ns now %lld/%lld",
      workload, std::string(aioloop::backend_name(backend)).c_str(),
      static_cast<unsigned long long>(writes), static_cast<long long>(trips),
      100.0 * static_cast<double>(writes) / static_cast<double>(trips),
      static_cast<unsigned long long>(a.busy_poll_hits + b.busy_poll_hits),
      static_cast<unsigned long long>(a.busy_poll_attempts + b.busy_poll_attempts),
      static_cast<unsigned long long>(a.blocking_waits + b.blocking_waits),
      static_cast<long long>(a.poll_ns), static_cast<long long>(b.poll_ns));
}

// W2: A's bottom half schedules B's, B's schedules A's.
void cross_bh(Backend backend, bool busypoll, const Counts& counts) {
  RoundTrips trips(warmup_count(counts.xbh), counts.xbh, counts.budget_ns,
                   "aioloop W2 " + mode_name(backend, busypoll), /*pair_with_l3=*/!busypoll);
  std::barrier<> sync(2);
  std::atomic<bool> stop{false};
  Context* ctx_b = nullptr;
  BottomHalf* bh_a = nullptr;
  BottomHalf* bh_b = nullptr;

  std::thread side_b = start_side_b(backend, busypoll, sync, stop, ctx_b, [&](Context& ctx) {
    auto bh = std::make_unique<BottomHalf>(ctx, [&] { bh_a->schedule(); });
    bh_b = bh.get();
    return bh;
  });

  auto ctx = make_context(backend);
  if (busypoll) ctx->set_poll_params(kBusyPollMaxNs, 0, 0);
  BottomHalf bh(*ctx, [&] {
    if (trips.complete()) bh_b->schedule();
  });
  bh_a = &bh;
  sync.arrive_and_wait();
  trips.begin();
  bh_b->schedule();
  while (!trips.finished()) ctx->poll(true);
  const aioloop::Stats stats_a = ctx->stats();
  const aioloop::Stats stats_b = ctx_b->stats();
  stop_side_b(stop, ctx_b);
  sync.arrive_and_wait();
  side_b.join();

  report_trips("xbh", "aioloop", mode_name(backend, busypoll), trips);
  if (busypoll) busypoll_note("W2", backend, stats_a, stats_b, trips.total());
}

// The handler W3 registers on each side. Without busy polling only `read`
// matters. Under busy polling an eventfd has no shared memory to look at, so
// its poll callback tries a non-blocking read: a system call, but no sleep
// and no wake-up, which is exactly what busy polling is meant to save.
FdHandler eventfd_handler(const EventFd& efd, bool busypoll, std::function<void()> on_event) {
  FdHandler handler;
  handler.read = [&efd, on_event] {
    if (efd.drain()) on_event();
  };
  if (busypoll) {
    auto pending = std::make_shared<bool>(false);
    handler.poll = [&efd, pending] { return *pending || (*pending = efd.drain()); };
    handler.poll_ready = [pending, on_event] {
      if (!*pending) return;
      *pending = false;
      on_event();
    };
  }
  return handler;
}

// W3: A's read handler reads A's eventfd and writes B's; B does the same back.
void cross_fd(Backend backend, bool busypoll, const Counts& counts) {
  RoundTrips trips(warmup_count(counts.xfd), counts.xfd, counts.budget_ns,
                   "aioloop W3 " + mode_name(backend, busypoll), /*pair_with_l3=*/!busypoll);
  std::barrier<> sync(2);
  std::atomic<bool> stop{false};
  Context* ctx_b = nullptr;
  EventFd efd_a;
  EventFd efd_b;

  std::thread side_b = start_side_b(backend, busypoll, sync, stop, ctx_b, [&](Context& ctx) {
    check(ctx.set_fd_handler(efd_b.fd(),
                             eventfd_handler(efd_b, busypoll, [&] { efd_a.write_one(); })),
          "set_fd_handler");
    // Removes the handler in B's thread, before B's context goes away.
    auto remove = [&ctx, fd = efd_b.fd()](void*) { ctx.remove_fd_handler(fd); };
    return std::unique_ptr<void, decltype(remove)>(&ctx, remove);
  });

  auto ctx = make_context(backend);
  if (busypoll) ctx->set_poll_params(kBusyPollMaxNs, 0, 0);
  check(ctx->set_fd_handler(efd_a.fd(), eventfd_handler(efd_a, busypoll,
                                                        [&] {
                                                          if (trips.complete()) efd_b.write_one();
                                                        })),
        "set_fd_handler");
  sync.arrive_and_wait();
  trips.begin();
  efd_b.write_one();
  while (!trips.finished()) ctx->poll(true);
  const aioloop::Stats stats_a = ctx->stats();
  const aioloop::Stats stats_b = ctx_b->stats();
  stop_side_b(stop, ctx_b);
  sync.arrive_and_wait();
  side_b.join();
  ctx->remove_fd_handler(efd_a.fd());

  report_trips("xfd", "aioloop", mode_name(backend, busypoll), trips);
  if (busypoll) busypoll_note("W3", backend, stats_a, stats_b, trips.total());
}

// W4 (bench_idle_handlers.h), driven by poll(true).
void idle_fds(Backend backend, int idle_count, const Counts& counts) {
  auto ctx = make_context(backend);
  IdleFdHandlers handlers(*ctx, idle_fifo_fds(idle_count));
  auto run = [&](int64_t count) {
    const int64_t target = handlers.iterations() + count;
    while (handlers.iterations() < target) ctx->poll(true);
  };

  const int64_t warm = std::min<int64_t>(warmup_count(counts.idle_iters), 2000);
  const int64_t warm_start = now_ns();
  run(warm);
  const double warm_ns = static_cast<double>(now_ns() - warm_start) / static_cast<double>(warm);
  const std::string mode = mode_name(backend, false);
  const int64_t count = bounded_count(counts.idle_iters, warm_ns, counts.budget_ns, 1000,
                                      "aioloop W4 " + mode + " " + std::to_string(idle_count));
  const int64_t start = now_ns();
  run(count);
  const int64_t wall = now_ns() - start;
  report("idlefds", "aioloop", mode, idle_count, static_cast<double>(wall) / count, count);

  if (handlers.idle_calls() != 0)
    note("aioloop W4: %lld calls on idle fds", static_cast<long long>(handlers.idle_calls()));
}

// W5 arm_cancel: arm `timers` timers 1..100 ms ahead (creating each timer
// counts), cancel every other one, sleep past the last deadline (not timed),
// then time the loop passes that fire the rest.
double arm_cancel_fire(Backend backend, int64_t timers) {
  auto ctx = make_context(backend);
  XorShift random;
  std::vector<int64_t> offsets(static_cast<size_t>(timers));
  for (int64_t& offset : offsets) offset = random.deadline_offset_ns();
  // Empty handles, constructed (so their memory is touched) before the
  // clock starts: the timed loop pays for creating timers, not for page
  // faults in the benchmark's own array.
  std::vector<aioloop::Timer> armed(offsets.size());
  int64_t fired = 0;

  const int64_t arm_start = now_ns();
  for (size_t i = 0; i < offsets.size(); ++i) {
    armed[i] = aioloop::Timer(*ctx, ClockType::realtime, aioloop::Scale::ns, [&fired] { ++fired; });
    armed[i].mod(ctx->now(ClockType::realtime) + offsets[i]);
  }
  for (size_t i = 1; i < armed.size(); i += 2) armed[i].del();
  const int64_t arm_ns = now_ns() - arm_start;

  int64_t last_deadline = 0;
  for (size_t i = 0; i < armed.size(); i += 2) {
    last_deadline = std::max(last_deadline, armed[i].expire_time_ns());
  }
  while (ctx->now(ClockType::realtime) <= last_deadline) {
    std::this_thread::sleep_for(
        std::chrono::nanoseconds(last_deadline + 1000000 - ctx->now(ClockType::realtime)));
  }

  const int64_t expected = (timers + 1) / 2;
  const int64_t fire_start = now_ns();
  while (fired < expected) ctx->poll(true);
  const int64_t fire_ns = now_ns() - fire_start;
  note("%s W5 arm_cancel, %lld timers: arm+cancel %.1f ns per timer, fire %.1f ns per fired timer",
       "aioloop", static_cast<long long>(timers),
       static_cast<double>(arm_ns) / static_cast<double>(timers),
       static_cast<double>(fire_ns) / static_cast<double>(expected));
  return static_cast<double>(arm_ns + fire_ns) / static_cast<double>(timers);
}

// W5 rearm: one timer moved to a new deadline 1..100 ms ahead `rearms` times
// while `others` timers stay armed.
double rearm(Backend backend, int64_t others, int64_t rearms) {
  auto ctx = make_context(backend);
  XorShift random;
  std::vector<aioloop::Timer> armed;
  armed.reserve(static_cast<size_t>(others));
  for (int64_t i = 0; i < others; ++i) {
    armed.emplace_back(*ctx, ClockType::realtime, aioloop::Scale::ns, [] {});
    armed.back().mod(ctx->now(ClockType::realtime) + random.deadline_offset_ns());
  }
  aioloop::Timer timer(*ctx, ClockType::realtime, aioloop::Scale::ns, [] {});
  auto run = [&](int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      timer.mod(ctx->now(ClockType::realtime) + random.deadline_offset_ns());
    }
  };
  run(warmup_count(rearms));
  const int64_t start = now_ns();
  run(rearms);
  return static_cast<double>(now_ns() - start) / static_cast<double>(rearms);
}

void timers(Backend backend, const Counts& counts) {
  note("aioloop W5 runs on the %s monitor", std::string(aioloop::backend_name(backend)).c_str());
  report_timers(
      "aioloop", counts, [&](int64_t timers) { return arm_cancel_fire(backend, timers); },
      [&](int64_t others, int64_t rearms) { return rearm(backend, others, rearms); });
}

}  // namespace

// The monitors to measure: in the build, not filtered out, and accepted by
// the running kernel (io_uring may be refused by seccomp or a sysctl).
std::vector<Backend> usable_backends(const Options& options) {
  std::vector<Backend> usable;
  for (Backend backend : {Backend::poll, Backend::epoll, Backend::io_uring}) {
    const std::string name(aioloop::backend_name(backend));
    if (!options.wants_backend(name)) continue;
    if (!aioloop::backend_compiled_in(backend)) {
      note("aioloop: backend %s is not compiled in; skipped", name.c_str());
      continue;
    }
    try {
      make_context(backend);
    } catch (const aioloop::Error& e) {
      note("aioloop: backend %s refused (%s); skipped", name.c_str(), e.what());
      continue;
    }
    usable.push_back(backend);
  }
  return usable;
}

void run_aioloop(const Options& options, const Counts& counts) {
  const std::vector<Backend> backends = usable_backends(options);
  if (backends.empty()) {
    note("aioloop: no usable backend; nothing measured");
    return;
  }
  for (Backend backend : backends) {
    if (options.wants("W1")) bh_chain(backend, counts);
  }
  for (Backend backend : backends) {
    if (!options.wants("W2")) break;
    cross_bh(backend, false, counts);
    cross_bh(backend, true, counts);
  }
  for (Backend backend : backends) {
    if (!options.wants("W3")) break;
    cross_fd(backend, false, counts);
    if (options.wants_impl("limit")) w3_floor(aioloop::backend_name(backend), counts);
    cross_fd(backend, true, counts);
  }
  for (Backend backend : backends) {
    if (!options.wants("W4")) break;
    for (int idle_count : counts.idle_fd_counts) idle_fds(backend, idle_count, counts);
  }
  // Timers do not depend on the fd monitor and W5's modes do not name one:
  // measure once, on the monitor automatic selection would pick among those
  // allowed (the last of the list: io_uring, else epoll, else poll).
  if (options.wants("W5")) timers(backends.back(), counts);
}

}  // namespace bench
