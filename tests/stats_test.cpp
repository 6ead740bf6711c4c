// SPDX-License-Identifier: MIT
// Statistics: each counter moves exactly when its event happens.
#include <atomic>
#include <thread>

#include "test_support.h"

namespace aioloop::testing {
namespace {

using StatsTest = ContextTest;

// DESIGN "Observability": per-context statistics start at zero and name the
// backend in use.
TEST_P(StatsTest, FreshContextCountsNothing) {
  const Stats s = ctx().stats();
  EXPECT_EQ(s.iterations, 0u);
  EXPECT_EQ(s.blocking_waits, 0u);
  EXPECT_EQ(s.busy_poll_attempts, 0u);
  EXPECT_EQ(s.busy_poll_hits, 0u);
  EXPECT_EQ(s.bhs_run, 0u);
  EXPECT_EQ(s.handlers_dispatched, 0u);
  EXPECT_EQ(s.timers_fired, 0u);
  EXPECT_EQ(s.eventfd_writes, 0u);
  EXPECT_EQ(s.invalid_fds, 0u);
  EXPECT_EQ(s.monitor_completions, 0u);
  EXPECT_EQ(s.poll_ns, 0) << "busy polling is off by default";
  EXPECT_EQ(s.backend, GetParam());
  EXPECT_EQ(ctx().backend(), GetParam());
}

// DESIGN "Observability": "iterations" — one per poll() call, nested ones
// included; a non-blocking poll() is not a blocking wait.
TEST_P(StatsTest, IterationsCountEveryPollCall) {
  for (int i = 0; i < 3; ++i) ctx().poll(false);
  EXPECT_EQ(ctx().stats().iterations, 3u);
  EXPECT_EQ(ctx().stats().blocking_waits, 0u);
  ctx().run_soon([&] { ctx().poll(false); });
  ctx().poll(false);
  EXPECT_EQ(ctx().stats().iterations, 5u) << "the nested poll() counts too";
}

// DESIGN "Observability": "BHs run" counts bottom-half callbacks, one-shots
// included, and not cancelled ones.
TEST_P(StatsTest, BhsRunCountsCallbacks) {
  BottomHalf a(ctx(), [] {});
  BottomHalf b(ctx(), [] {});
  BottomHalf cancelled(ctx(), [] {});
  a.schedule();
  b.schedule();
  cancelled.schedule();
  cancelled.cancel();
  ctx().run_soon([] {});
  ctx().poll(false);
  EXPECT_EQ(ctx().stats().bhs_run, 3u);
  a.schedule();
  ctx().poll(false);
  EXPECT_EQ(ctx().stats().bhs_run, 4u);
  ctx().poll(false);
  EXPECT_EQ(ctx().stats().bhs_run, 4u);
}

// DESIGN "Observability": "handlers dispatched" counts user handlers run
// (each handler here has one callback, so handlers and callbacks agree).
TEST_P(StatsTest, HandlersDispatchedCountsUserHandlers) {
  Pipe first;
  Pipe second;
  FdHandler h1;
  h1.read = [&] { first.Drain(); };
  FdHandler h2;
  h2.read = [&] { second.Drain(); };
  ASSERT_FALSE(ctx().set_fd_handler(first.read_fd, std::move(h1)));
  ASSERT_FALSE(ctx().set_fd_handler(second.read_fd, std::move(h2)));
  ctx().poll(false);
  EXPECT_EQ(ctx().stats().handlers_dispatched, 0u);
  first.Fill();
  second.Fill();
  ctx().poll(false);
  EXPECT_EQ(ctx().stats().handlers_dispatched, 2u);
  first.Fill();
  ctx().poll(false);
  EXPECT_EQ(ctx().stats().handlers_dispatched, 3u);
  ctx().remove_fd_handler(first.read_fd);
  ctx().remove_fd_handler(second.read_fd);
}

// "monitor completions": the io_uring completions reaped, at least one per
// event; poll and epoll have none.
TEST_P(StatsTest, MonitorCompletionsCountIoUringCompletions) {
  Pipe pipe;
  FdHandler handler;
  handler.read = [&] { pipe.Drain(); };
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, std::move(handler)));
  ctx().poll(false);
  const uint64_t before = ctx().stats().monitor_completions;
  for (int i = 0; i < 10; ++i) {
    pipe.Fill();
    ctx().poll(false);
  }
  EXPECT_EQ(ctx().stats().handlers_dispatched, 10u);
  const uint64_t completions = ctx().stats().monitor_completions - before;
  if (GetParam() == Backend::io_uring) {
    EXPECT_GE(completions, 10u);
  } else {
    EXPECT_EQ(completions, 0u);
  }
  ctx().remove_fd_handler(pipe.read_fd);
}

// DESIGN "Observability": "timers fired".
TEST_P(StatsTest, TimersFiredCountsCallbacks) {
  Timer a(ctx(), ClockType::test, Scale::ns, [] {});
  Timer b(ctx(), ClockType::test, Scale::ns, [] {});
  Timer never(ctx(), ClockType::test, Scale::ns, [] {});
  a.mod(10);
  b.mod(20);
  never.mod(30);
  never.del();
  ctx().advance_test_clock(15);
  ctx().poll(false);
  EXPECT_EQ(ctx().stats().timers_fired, 1u);
  ctx().advance_test_clock(100);
  ctx().poll(false);
  EXPECT_EQ(ctx().stats().timers_fired, 2u);
}

// DESIGN "Adaptive busy polling": "the eventfd is written only when the loop
// has announced a blocking wait" — notify(), schedule() and clock moves
// while the loop is not waiting cost no write, not even from another thread.
TEST_P(StatsTest, NoEventfdWriteWhileTheLoopIsNotWaiting) {
  BottomHalf bh(ctx(), [] {});
  ctx().notify();
  bh.schedule();
  ctx().advance_test_clock(1);
  std::thread other([&] {
    ctx().notify();
    bh.schedule();
    ctx().run_soon([] {});
  });
  other.join();
  EXPECT_EQ(ctx().stats().eventfd_writes, 0u);
  EXPECT_TRUE(ctx().poll(true));  // due work: must not block
  EXPECT_EQ(ctx().stats().eventfd_writes, 0u);
  EXPECT_EQ(ctx().stats().bhs_run, 2u);
}

// DESIGN "Adaptive busy polling" (the eventfd is written when the loop has
// announced a blocking wait) and "Observability": one cross-thread notify()
// of a waiting loop is one eventfd write, one blocking wait, and no user
// handler dispatch (the internal notifier never counts).
TEST_P(StatsTest, CrossThreadWakeUpOfAWaitingLoopWritesTheEventfdOnce) {
  Watchdog watchdog(ctx());
  const uint64_t waits_before = ctx().stats().blocking_waits;
  std::thread notifier([&] {
    if (WaitUntilBlocked(ctx(), waits_before)) ctx().notify();
  });
  EXPECT_FALSE(ctx().poll(true));
  notifier.join();
  ASSERT_FALSE(watchdog.fired());
  const Stats s = ctx().stats();
  EXPECT_EQ(s.eventfd_writes, 1u);
  EXPECT_EQ(s.blocking_waits, 1u);
  EXPECT_EQ(s.iterations, 1u);
  EXPECT_EQ(s.handlers_dispatched, 0u) << "the context's own notifier is not a user handler";
}

// DESIGN "Observability": "blocking waits" counts waits with a timeout != 0.
TEST_P(StatsTest, BlockingWaitsCountsOnlyRealWaits) {
  Watchdog watchdog(ctx());
  BottomHalf bh(ctx(), [] {});
  bh.schedule();
  ctx().poll(true);  // a due bottom half: timeout 0, not a blocking wait
  EXPECT_EQ(ctx().stats().blocking_waits, 0u);
  int fired = 0;
  Timer timer(ctx(), ClockType::realtime, Scale::ns, [&] { ++fired; });
  timer.mod(ctx().now(ClockType::realtime) + 5 * 1000 * 1000);
  while (fired == 0 && !watchdog.fired()) ctx().poll(true);
  ASSERT_FALSE(watchdog.fired());
  EXPECT_EQ(ctx().stats().blocking_waits, 1u);
  EXPECT_EQ(ctx().stats().timers_fired, 1u);
}

// DESIGN "Threads": "reading statistics [is] safe from any thread" — a
// reader thread sees the iteration count grow monotonically while the home
// thread runs the loop.
TEST_P(StatsTest, ReadableFromAnotherThreadWhileTheLoopRuns) {
  std::atomic<bool> stop{false};
  std::atomic<bool> monotonic{true};
  std::thread reader([&] {
    uint64_t last = 0;
    while (!stop.load()) {
      const uint64_t now = ctx().stats().iterations;
      if (now < last) monotonic.store(false);
      last = now;
    }
  });
  for (int i = 0; i < 2000; ++i) ctx().poll(false);
  stop.store(true);
  reader.join();
  EXPECT_TRUE(monotonic.load());
  EXPECT_EQ(ctx().stats().iterations, 2000u);
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(StatsTest);

}  // namespace
}  // namespace aioloop::testing
