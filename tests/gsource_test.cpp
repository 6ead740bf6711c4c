// SPDX-License-Identifier: MIT
// The GSource of a context (DESIGN.md "The GSource", issue 5): the core
// scenarios driven by g_main_context_iteration() instead of poll(), mixing
// with g_idle / g_timeout / fd sources, nesting, several contexts on one
// GMainContext, attach refusal, teardown, an I/O thread hosting a
// GMainContext, and the C API. Every test iterates its own GMainContext,
// never the global default, so the tests stay independent of each other.
#include <aioloop/aioloop-glib.h>
#include <aioloop/glib.h>
#include <glib-unix.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace aioloop::testing {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kNsPerMs = 1000000;

// Lets a std::function be a GSource callback; the source owns the function.
void SetCallback(GSource* source, std::function<gboolean()> fn) {
  g_source_set_callback(
      source,
      +[](gpointer data) -> gboolean { return (*static_cast<std::function<gboolean()>*>(data))(); },
      new std::function<gboolean()>(std::move(fn)),
      +[](gpointer data) { delete static_cast<std::function<gboolean()>*>(data); });
}

// Owns one reference to an attached GSource and destroys it when it goes, so
// an assertion that returns early never leaves a source behind.
class ScopedSource {
 public:
  ScopedSource() = default;
  ScopedSource(GSource* source, GMainContext* main_context, int priority,
               std::function<gboolean()> fn)
      : source_(source) {
    SetCallback(source_, std::move(fn));
    g_source_set_priority(source_, priority);
    g_source_attach(source_, main_context);
  }
  ~ScopedSource() { Reset(); }
  ScopedSource(const ScopedSource&) = delete;
  ScopedSource& operator=(const ScopedSource&) = delete;

  void Reset() {
    if (source_) {
      g_source_destroy(source_);
      g_source_unref(source_);
      source_ = nullptr;
    }
  }
  GSource* get() const { return source_; }

 private:
  GSource* source_ = nullptr;
};

ScopedSource* NewIdle(GMainContext* mc, int priority, std::function<gboolean()> fn) {
  return new ScopedSource(g_idle_source_new(), mc, priority, std::move(fn));
}

// A watchdog that does not rely on the code under test: a plain GLib
// timeout in the same GMainContext. When it fires, a blocked
// g_main_context_iteration() returns and the test's loop sees fired().
class GWatchdog {
 public:
  GWatchdog(GMainContext* mc, std::chrono::milliseconds limit)
      : source_(g_timeout_source_new(static_cast<guint>(limit.count())), mc, G_PRIORITY_HIGH,
                [this] {
                  fired_ = true;
                  return G_SOURCE_REMOVE;
                }) {}
  bool fired() const { return fired_; }

 private:
  bool fired_ = false;
  ScopedSource source_;
};

// Every test runs once per fd monitor, with the context attached to a fresh
// GMainContext of its own.
class GSourceTest : public ContextTest {
 protected:
  void SetUp() override {
    ContextTest::SetUp();
    if (IsSkipped()) return;
    main_ = g_main_context_new();
    source_ = glib::create_source(ctx_);
    g_source_attach(source_, main_);
  }

  void TearDown() override {
    DetachSource();
    if (main_) g_main_context_unref(main_);
  }

  void DetachSource() {
    if (source_) {
      g_source_destroy(source_);
      g_source_unref(source_);
      source_ = nullptr;
    }
  }

  bool Iterate(bool may_block = false) { return g_main_context_iteration(main_, may_block); }

  // Iterates (blocking) until done() or the GLib watchdog fires; returns
  // whether done() became true.
  bool IterateUntil(const std::function<bool()>& done,
                    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    GWatchdog watchdog(main_, limit);
    while (!done()) {
      if (watchdog.fired()) return false;
      Iterate(true);
    }
    return true;
  }

  // One iteration by hand (prepare, query, check, dispatch); returns how
  // many fds GLib polled in it.
  int PolledFds() {
    EXPECT_TRUE(g_main_context_acquire(main_));
    gint max_priority = 0;
    g_main_context_prepare(main_, &max_priority);
    std::vector<GPollFD> fds(256);
    gint timeout = 0;
    gint n = g_main_context_query(main_, max_priority, &timeout, fds.data(),
                                  static_cast<gint>(fds.size()));
    g_main_context_check(main_, max_priority, fds.data(), std::min<gint>(n, 256));
    g_main_context_dispatch(main_);
    g_main_context_release(main_);
    return n;
  }

  GMainContext* main_ = nullptr;
  GSource* source_ = nullptr;
};

// ---------------------------------------------------------------------------
// The core scenarios, driven by g_main_context_iteration().

// Issue 5 §1: "default priority G_PRIORITY_DEFAULT and settable, recursable".
TEST_P(GSourceTest, DefaultPriorityAndRecursable) {
  EXPECT_EQ(g_source_get_priority(source_), G_PRIORITY_DEFAULT);
  EXPECT_TRUE(g_source_get_can_recurse(source_));
  g_source_set_priority(source_, G_PRIORITY_LOW);
  EXPECT_EQ(g_source_get_priority(source_), G_PRIORITY_LOW);
}

// DESIGN "The GSource": prepare "returns true if work is already due" and
// check "returns true if a BH is scheduled, a handler is ready or a timer
// has expired" — and nothing else: an idle context must not keep GLib
// spinning.
TEST_P(GSourceTest, IdleContextIsNotDispatched) {
  // The first iterations may reap internal completions (io_uring re-arms).
  for (int i = 0; i < 3; ++i) Iterate();
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(Iterate()) << "iteration " << i << " dispatched with no work due";
  }
}

// Issue 5 §6: BH schedule under g_main_context_iteration runs once.
TEST_P(GSourceTest, BottomHalfRunsOncePerSchedule) {
  int runs = 0;
  BottomHalf bh(ctx(), [&] { ++runs; });
  bh.schedule();
  bh.schedule();
  EXPECT_EQ(runs, 0);
  EXPECT_TRUE(Iterate());
  EXPECT_EQ(runs, 1);
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(runs, 1);
}

// DESIGN "Bottom half": an idle bottom half runs "when the context is
// otherwise idle, at the latest after 10 ms" — under GLib too (see
// MonitorTest.IdleBottomHalfRunsInABarePollLoop for check()'s part).
TEST_P(GSourceTest, IdleBottomHalfRunsWhenGLibsWaitEnds) {
  int runs = 0;
  BottomHalf idle(ctx(), [&] { ++runs; });
  // Scheduled from a callback: the home thread needs no notification, so
  // nothing but check() can tell GLib about it.
  BottomHalf starter(ctx(), [&] { idle.schedule_idle(); });
  starter.schedule();
  EXPECT_TRUE(Iterate());
  EXPECT_EQ(runs, 0) << "a bottom half scheduled during the pass runs in a later one";
  EXPECT_TRUE(IterateUntil([&] { return runs == 1; }, 2s));
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(runs, 1);
}

// DESIGN "Bottom half": "A BH scheduled while BHs are running runs in a
// later round" — under GLib, once per GLib iteration.
TEST_P(GSourceTest, SelfReschedulingBottomHalfRunsOncePerIteration) {
  int runs = 0;
  BottomHalf bh;
  bh = BottomHalf(ctx(), [&] {
    ++runs;
    bh.schedule();
  });
  bh.schedule();
  for (int i = 1; i <= 10; ++i) {
    EXPECT_TRUE(Iterate());
    EXPECT_EQ(runs, i);
  }
  bh.cancel();
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(runs, 10);
}

// DESIGN "Bottom half": cancel withdraws a schedule that has not run.
TEST_P(GSourceTest, CancelledBottomHalfDoesNotRun) {
  int runs = 0;
  BottomHalf bh(ctx(), [&] { ++runs; });
  bh.schedule();
  bh.cancel();
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(runs, 0);
}

// DESIGN "Bottom half": delete before it runs.
TEST_P(GSourceTest, DeletedBottomHalfDoesNotRun) {
  int runs = 0;
  BottomHalf bh(ctx(), [&] { ++runs; });
  bh.schedule();
  bh.reset();
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(runs, 0);
}

// DESIGN "Bottom half": "delete (safe from inside its own callback)".
TEST_P(GSourceTest, BottomHalfDeletesItselfFromItsCallback) {
  int runs = 0;
  auto sentinel = std::make_shared<int>(0);
  BottomHalf bh;
  bh = BottomHalf(ctx(), [&, sentinel] {
    ++runs;
    bh.schedule();  // scheduled, then deleted: must not run again
    bh.reset();
  });
  bh.schedule();
  EXPECT_TRUE(Iterate());
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(bh);
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(sentinel.use_count(), 1) << "the callback was not destroyed";
}

// DESIGN "Event notifier": set -> the read callback runs once, the notifier
// is cleared; set from the callback -> once per iteration.
TEST_P(GSourceTest, EventNotifierOncePerSet) {
  EventNotifier notifier;
  int runs = 0;
  ASSERT_FALSE(ctx().set_event_notifier(notifier, [&] {
    ++runs;
    if (runs < 5) {
      ASSERT_FALSE(notifier.set());
    }
  }));
  for (int i = 0; i < 2; ++i) Iterate();
  EXPECT_EQ(runs, 0);
  ASSERT_FALSE(notifier.set());
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(IterateUntil([&] { return runs >= i; }, 2s)) << "notifier set " << i;
    EXPECT_EQ(runs, i);
  }
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(runs, 5) << "a cleared notifier must not run again";
  EXPECT_FALSE(notifier.test_and_clear());
  ctx().remove_event_notifier(notifier);
}

// DESIGN "Fd handler": read/write callbacks on a pipe, under GLib.
TEST_P(GSourceTest, FdHandlerOnPipe) {
  Pipe pipe;
  int reads = 0;
  size_t bytes = 0;
  int writes = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, {.read = [&] {
                                      ++reads;
                                      bytes += pipe.Drain();
                                    }}));
  ASSERT_FALSE(ctx().set_fd_handler(pipe.write_fd, {.write = [&] {
                                      ++writes;
                                      ctx().remove_fd_handler(pipe.write_fd);
                                    }}));
  EXPECT_TRUE(IterateUntil([&] { return writes == 1; }, 2s)) << "an empty pipe is writable";
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(reads, 0);
  EXPECT_EQ(writes, 1);

  pipe.Fill();
  pipe.Fill();
  EXPECT_TRUE(IterateUntil([&] { return reads >= 1; }, 2s));
  EXPECT_EQ(bytes, 2u);
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(reads, 1) << "a drained pipe must not be dispatched again";

  // A wake-up by the fd itself while GLib blocks.
  std::thread writer([&] {
    std::this_thread::sleep_for(20ms);
    pipe.Fill();
  });
  EXPECT_TRUE(IterateUntil([&] { return reads >= 2; }, 5s));
  writer.join();
  ctx().remove_fd_handler(pipe.read_fd);
}

// DESIGN "The GSource": "A timer must never fire early; under GLib it may
// fire late by at most about 1 ms" (prepare rounds the timeout up to ms).
// Deadlines with sub-ms remainders catch a timeout rounded down; the
// iteration count catches a loop that spins instead of blocking.
TEST_P(GSourceTest, RealtimeTimersNeverFireEarly) {
  const std::vector<int64_t> offsets_us = {300, 1300, 2700, 5500, 11100, 20050};
  std::vector<int64_t> deadline(offsets_us.size()), fired_at(offsets_us.size(), -1);
  std::vector<Timer> timers;
  timers.reserve(offsets_us.size());
  const int64_t start = ctx().now(ClockType::realtime);
  for (size_t i = 0; i < offsets_us.size(); ++i) {
    timers.emplace_back(ctx(), ClockType::realtime, Scale::ns,
                        [&, i] { fired_at[i] = ctx().now(ClockType::realtime); });
    deadline[i] = start + offsets_us[i] * 1000;
    timers.back().mod(deadline[i]);
  }
  int iterations = 0;
  EXPECT_TRUE(IterateUntil([&] {
    ++iterations;
    return std::all_of(fired_at.begin(), fired_at.end(), [](int64_t t) { return t >= 0; });
  }));
  int64_t min_late = INT64_MAX;
  for (size_t i = 0; i < offsets_us.size(); ++i) {
    ASSERT_GE(fired_at[i], 0) << "timer " << i << " never fired";
    const int64_t late = fired_at[i] - deadline[i];
    EXPECT_GE(late, 0) << "timer " << i << " fired " << -late << " ns early";
    EXPECT_LT(late, 100 * kNsPerMs) << "timer " << i << " fired far too late";
    min_late = std::min(min_late, late);
  }
  // A systematic delay (e.g. rounding to 10 ms) shows in the best case too.
  EXPECT_LT(min_late, 3 * kNsPerMs);
  EXPECT_LT(iterations, 200) << "GLib spun instead of blocking until the deadlines";
}

// DESIGN "Timer": the test clock; timers fire in the next iteration once the
// clock reaches their deadline, and moving it from another thread wakes a
// blocked GLib iteration.
TEST_P(GSourceTest, TestClockTimerFiresAfterAdvance) {
  int fired = 0;
  Timer timer(ctx(), ClockType::test, Scale::ms, [&] { ++fired; });
  timer.mod(ctx().now(ClockType::test) / kNsPerMs + 1000);
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(fired, 0);
  ctx().advance_test_clock(999 * kNsPerMs);
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(fired, 0) << "fired before its deadline on the test clock";
  ctx().advance_test_clock(1 * kNsPerMs);
  Iterate();
  EXPECT_EQ(fired, 1);

  timer.mod(ctx().now(ClockType::test) / kNsPerMs + 50);
  std::thread mover([&] {
    std::this_thread::sleep_for(20ms);
    ctx().advance_test_clock(50 * kNsPerMs);
  });
  EXPECT_TRUE(IterateUntil([&] { return fired == 2; }, 5s))
      << "advance_test_clock() from another thread did not wake GLib";
  mover.join();
}

// Issue 5 §3: "BHs scheduled from other threads wake
// g_main_context_iteration(TRUE)". Many rounds, each scheduled as soon as
// the home thread starts blocking, to hit the announce/notify race windows.
TEST_P(GSourceTest, CrossThreadBottomHalfWakesBlockedIteration) {
  constexpr int kRounds = 200;
  std::atomic<int> runs{0};
  std::atomic<int> wanted{0};
  std::atomic<bool> quit{false};
  BottomHalf bh(ctx(), [&] { runs.fetch_add(1, std::memory_order_release); });
  std::thread scheduler([&] {
    int seen = 0;
    while (!quit.load(std::memory_order_acquire)) {
      const int w = wanted.load(std::memory_order_acquire);
      if (w == seen) {
        std::this_thread::yield();
        continue;
      }
      seen = w;
      if (seen % 4 == 0) std::this_thread::sleep_for(200us);  // let GLib block first
      bh.schedule();
    }
  });
  GWatchdog watchdog(main_, 10s);
  for (int round = 1; round <= kRounds && !watchdog.fired(); ++round) {
    wanted.store(round, std::memory_order_release);
    while (runs.load(std::memory_order_acquire) < round && !watchdog.fired()) Iterate(true);
  }
  quit.store(true, std::memory_order_release);
  scheduler.join();
  EXPECT_FALSE(watchdog.fired()) << "lost wake-up after " << runs.load() << " rounds";
  EXPECT_EQ(runs.load(), kRounds);
}

// DESIGN "The GSource": check "returns true if a BH is scheduled, a handler
// is ready or a timer has expired" — so whatever ends GLib's blocking wait is
// dispatched in that same g_main_context_iteration(TRUE), not one later.
TEST_P(GSourceTest, WakeUpIsDispatchedInTheIterationItEnds) {
  for (int i = 0; i < 3; ++i) Iterate();  // settle start-up notifications
  auto one_blocking_iteration = [&](const std::function<void()>& from_other_thread) {
    GWatchdog watchdog(main_, 5s);
    std::thread other([&] {
      std::this_thread::sleep_for(20ms);  // usually GLib is blocked by then
      from_other_thread();
    });
    Iterate(true);
    other.join();
    EXPECT_FALSE(watchdog.fired());
  };

  Pipe pipe;
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, {.read = [&] {
                                      ++reads;
                                      pipe.Drain();
                                    }}));
  Iterate();
  one_blocking_iteration([&] { pipe.Fill(); });
  EXPECT_EQ(reads, 1) << "fd readiness";
  ctx().remove_fd_handler(pipe.read_fd);
  for (int i = 0; i < 3; ++i) Iterate();

  std::atomic<int> bh_runs{0};
  BottomHalf bh(ctx(), [&] { bh_runs.fetch_add(1); });
  one_blocking_iteration([&] { bh.schedule(); });
  EXPECT_EQ(bh_runs.load(), 1) << "cross-thread bottom half";

  int timer_runs = 0;
  Timer timer(ctx(), ClockType::realtime, Scale::us, [&] { ++timer_runs; });
  timer.mod(ctx().now(ClockType::realtime) / 1000 + 5500);
  {
    GWatchdog watchdog(main_, 5s);
    Iterate(true);
    EXPECT_FALSE(watchdog.fired());
  }
  EXPECT_EQ(timer_runs, 1) << "timer deadline";
}

// Context::run_soon() from another thread (a one-shot BH) under GLib.
TEST_P(GSourceTest, RunSoonFromAnotherThread) {
  std::atomic<bool> ran{false};
  std::thread::id ran_in;
  std::thread other([&] {
    std::this_thread::sleep_for(10ms);
    ctx().run_soon([&] {
      ran_in = std::this_thread::get_id();
      ran.store(true);
    });
  });
  EXPECT_TRUE(IterateUntil([&] { return ran.load(); }, 5s));
  other.join();
  EXPECT_EQ(ran_in, std::this_thread::get_id());
}

// ---------------------------------------------------------------------------
// Mixing with other GLib sources.

// DESIGN "The GSource": "it never starves g_idle sources ... at the same or
// higher priority" — continuous BH traffic and a g_idle both progress.
TEST_P(GSourceTest, GIdleRunsBesideContinuousBottomHalves) {
  constexpr int kIterations = 200;
  int bh_runs = 0;
  int idle_runs = 0;
  BottomHalf bh;
  bh = BottomHalf(ctx(), [&] {
    ++bh_runs;
    bh.schedule();
  });
  bh.schedule();
  std::unique_ptr<ScopedSource> idle(NewIdle(main_, G_PRIORITY_DEFAULT, [&] {
    ++idle_runs;
    return G_SOURCE_CONTINUE;
  }));
  for (int i = 0; i < kIterations; ++i) Iterate();
  EXPECT_GT(idle_runs, kIterations / 3);
  EXPECT_GT(bh_runs, kIterations / 3);
  bh.cancel();
}

// DESIGN "The GSource": "... and is never starved by them" — BHs, fds and
// timers keep running while a g_idle at the same priority is always ready
// (GLib then polls with a zero timeout and calls our check).
TEST_P(GSourceTest, BottomHalvesFdsAndTimersRunBesideAlwaysReadyIdle) {
  int idle_runs = 0;
  std::unique_ptr<ScopedSource> idle(NewIdle(main_, G_PRIORITY_DEFAULT, [&] {
    ++idle_runs;
    return G_SOURCE_CONTINUE;
  }));
  int bh_runs = 0;
  BottomHalf bh;
  bh = BottomHalf(ctx(), [&] {
    ++bh_runs;
    bh.schedule();
  });
  bh.schedule();
  Pipe pipe;
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, {.read = [&] {
                                      ++reads;
                                      pipe.Drain();
                                      pipe.Fill();  // ready again next time
                                    }}));
  pipe.Fill();
  int timer_runs = 0;
  Timer timer(ctx(), ClockType::realtime, Scale::ms, [&] { ++timer_runs; });
  timer.mod(ctx().now(ClockType::realtime) / kNsPerMs + 5);

  constexpr int kIterations = 200;
  for (int i = 0; i < kIterations; ++i) Iterate();
  EXPECT_GT(idle_runs, kIterations / 3);
  EXPECT_GT(bh_runs, kIterations / 3);
  EXPECT_GT(reads, kIterations / 3);
  const auto give_up = std::chrono::steady_clock::now() + 2s;
  while (timer_runs == 0 && std::chrono::steady_clock::now() < give_up) Iterate();
  EXPECT_EQ(timer_runs, 1) << "a due timer starved behind an always-ready g_idle";
  bh.cancel();
  ctx().remove_fd_handler(pipe.read_fd);
}

// Issue 5 §6: "g_timeout sources interleaved with our timers" — both fire,
// in deadline order within a millisecond's tolerance.
TEST_P(GSourceTest, GTimeoutsInterleaveWithTimers) {
  struct Event {
    int id;
    std::chrono::steady_clock::time_point at;
  };
  std::vector<Event> events;
  auto record = [&](int id) { events.push_back({id, std::chrono::steady_clock::now()}); };
  // Ours at 10, 30, 50 ms (ids 10, 30, 50); GLib's at 20, 40 ms.
  const int64_t start = ctx().now(ClockType::realtime);
  std::vector<Timer> timers;
  std::vector<int64_t> fired_late;
  for (int ms : {10, 30, 50}) {
    timers.emplace_back(ctx(), ClockType::realtime, Scale::ns, [&, ms] {
      record(ms);
      fired_late.push_back(ctx().now(ClockType::realtime) - (start + ms * kNsPerMs));
    });
    timers.back().mod(start + ms * kNsPerMs);
  }
  std::vector<std::unique_ptr<ScopedSource>> timeouts;
  for (int ms : {20, 40}) {
    timeouts.emplace_back(new ScopedSource(g_timeout_source_new(static_cast<guint>(ms)), main_,
                                           G_PRIORITY_DEFAULT, [&, ms] {
                                             record(ms);
                                             return G_SOURCE_REMOVE;
                                           }));
  }
  EXPECT_TRUE(IterateUntil([&] { return events.size() == 5; }, 5s));
  ASSERT_EQ(events.size(), 5u);
  for (int64_t late : fired_late) {
    EXPECT_GE(late, 0) << "one of our timers fired early";
    EXPECT_LT(late, 100 * kNsPerMs);
  }
  // Sorted by deadline, each event happened no later than 2 ms after the
  // next one (same iteration under load is fine; a whole period is not).
  std::vector<Event> by_deadline = events;
  std::sort(by_deadline.begin(), by_deadline.end(),
            [](const Event& a, const Event& b) { return a.id < b.id; });
  for (size_t i = 0; i + 1 < by_deadline.size(); ++i) {
    EXPECT_LE(by_deadline[i].at, by_deadline[i + 1].at + 2ms)
        << "deadline " << by_deadline[i].id << " ms ran well after deadline "
        << by_deadline[i + 1].id << " ms";
  }
}

// DESIGN "The GSource": "The source can recurse (a callback may run a nested
// GMainLoop)"; the nested loop dispatches our BHs, fds and timers and other
// sources, and returns; the outer loop keeps working afterwards.
TEST_P(GSourceTest, NestedMainLoopFromOurCallback) {
  bool nested_bh = false, nested_fd = false, nested_idle = false, nested_timer = false;
  bool gave_up = false;
  bool returned = false;
  Pipe pipe;
  GMainLoop* loop = g_main_loop_new(main_, FALSE);
  auto maybe_quit = [&] {
    if (nested_bh && nested_fd && nested_idle && nested_timer) g_main_loop_quit(loop);
  };
  BottomHalf inner(ctx(), [&] {
    nested_bh = true;
    maybe_quit();
  });
  Timer timer(ctx(), ClockType::realtime, Scale::ms, [&] {
    nested_timer = true;
    maybe_quit();
  });
  BottomHalf outer(ctx(), [&] {
    inner.schedule();
    timer.mod(ctx().now(ClockType::realtime) / kNsPerMs + 5);
    ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, {.read = [&] {
                                        pipe.Drain();
                                        nested_fd = true;
                                        maybe_quit();
                                      }}));
    pipe.Fill();
    ScopedSource idle(g_idle_source_new(), main_, G_PRIORITY_DEFAULT, [&] {
      nested_idle = true;
      maybe_quit();
      return G_SOURCE_REMOVE;
    });
    ScopedSource limit(g_timeout_source_new(5000), main_, G_PRIORITY_HIGH, [&] {
      gave_up = true;
      g_main_loop_quit(loop);
      return G_SOURCE_REMOVE;
    });
    g_main_loop_run(loop);
    returned = true;
  });
  outer.schedule();
  EXPECT_TRUE(IterateUntil([&] { return returned; }, 10s));
  EXPECT_FALSE(gave_up) << "the nested loop did not see all the work";
  EXPECT_TRUE(nested_bh);
  EXPECT_TRUE(nested_fd);
  EXPECT_TRUE(nested_idle);
  EXPECT_TRUE(nested_timer);
  // The source is not left "in call" by the recursion.
  int after = 0;
  BottomHalf later(ctx(), [&] { ++after; });
  later.schedule();
  EXPECT_TRUE(IterateUntil([&] { return after == 1; }, 2s));
  ctx().remove_fd_handler(pipe.read_fd);
  g_main_loop_unref(loop);
}

// Issue 5 §6: "several contexts attached to one GMainContext" all progress,
// and a cross-thread BH for any of them wakes the shared loop.
TEST_P(GSourceTest, SeveralContextsOnOneMainContext) {
  constexpr int kContexts = 3;
  std::vector<std::shared_ptr<Context>> contexts;
  std::vector<GSource*> sources;
  for (int i = 0; i < kContexts; ++i) {
    contexts.push_back(Context::create({.backend = GetParam()}));
    sources.push_back(glib::create_source(contexts.back()));
    g_source_attach(sources.back(), main_);
  }
  std::vector<int> bh_runs(kContexts), reads(kContexts);
  std::vector<std::unique_ptr<BottomHalf>> bhs;
  std::vector<std::unique_ptr<Pipe>> pipes;
  for (int i = 0; i < kContexts; ++i) {
    Context& c = *contexts[i];
    bhs.push_back(std::make_unique<BottomHalf>());
    BottomHalf* bh = bhs.back().get();
    *bh = BottomHalf(c, [&bh_runs, bh, i] {
      ++bh_runs[i];
      if (bh_runs[i] < 20) bh->schedule();
    });
    bh->schedule();
    pipes.push_back(std::make_unique<Pipe>());
    Pipe* p = pipes.back().get();
    ASSERT_FALSE(c.set_fd_handler(p->read_fd, {.read = [&reads, p, i] {
                                    ++reads[i];
                                    p->Drain();
                                  }}));
    p->Fill();
  }
  for (int n = 0; n < 30; ++n) Iterate();
  for (int i = 0; i < kContexts; ++i) {
    EXPECT_EQ(bh_runs[i], 20) << "context " << i;
    EXPECT_EQ(reads[i], 1) << "context " << i;
  }
  std::atomic<bool> woke{false};
  BottomHalf last(*contexts[kContexts - 1], [&] { woke.store(true); });
  std::thread other([&] {
    std::this_thread::sleep_for(20ms);
    last.schedule();
  });
  EXPECT_TRUE(IterateUntil([&] { return woke.load(); }, 5s));
  other.join();
  last.reset();
  for (int i = 0; i < kContexts; ++i) {
    contexts[i]->remove_fd_handler(pipes[i]->read_fd);
    bhs[i].reset();
    g_source_destroy(sources[i]);
    g_source_unref(sources[i]);
  }
}

// Issue 5 §1: "A context attached to a second GMainContext while attached
// to one is refused with a clear error" (Error, EBUSY; the C API returns
// NULL with a GError). After the first source is gone, attaching works.
TEST_P(GSourceTest, SecondSourceIsRefused) {
  GMainContext* other = g_main_context_new();
  try {
    glib::attach(ctx_, other);
    ADD_FAILURE() << "a second attach was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code().value(), EBUSY);
    EXPECT_STRNE(e.what(), "");
  }
  EXPECT_THROW(glib::create_source(ctx_), Error);
  DetachSource();
  guint id = 0;
  EXPECT_NO_THROW(id = glib::attach(ctx_, other));
  if (id != 0) g_source_destroy(g_main_context_find_source_by_id(other, id));
  g_main_context_unref(other);
}

// DESIGN "The GSource": "finalize releases the context"; issue 5 §6:
// "destroying the source with BHs scheduled and handlers registered leaks
// nothing" (ASan in CI). Pending work is destroyed, never run.
TEST_P(GSourceTest, DestroyingTheSourceReleasesEverything) {
  auto sentinel = std::make_shared<int>(0);
  std::weak_ptr<Context> weak;
  Pipe pipe;
  bool ran = false;
  {
    auto context = Context::create({.backend = GetParam()});
    weak = context;
    GSource* source = glib::create_source(context);
    g_source_attach(source, main_);
    ASSERT_FALSE(context->set_fd_handler(pipe.read_fd, {.read = [&ran, sentinel] { ran = true; }}));
    Iterate();  // the source has prepared: its fds are in the GMainContext
    context->run_soon([&ran, sentinel] { ran = true; });
    pipe.Fill();
    Timer timer(*context, ClockType::realtime, Scale::ms, [&ran, sentinel] { ran = true; });
    timer.mod(0);
    context.reset();  // from now on only the source and the timer handle own it
    g_source_destroy(source);
    g_source_unref(source);
    EXPECT_FALSE(weak.expired()) << "the Timer handle still owns the context";
  }
  EXPECT_TRUE(weak.expired()) << "the context outlived its source and handles";
  EXPECT_EQ(sentinel.use_count(), 1) << "pending callbacks were not destroyed";
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_FALSE(ran);
}

// The same when the GMainContext itself goes away with the source attached
// (the usual shutdown order of a GLib program).
TEST_P(GSourceTest, UnrefOfTheMainContextReleasesTheContext) {
  auto sentinel = std::make_shared<int>(0);
  std::weak_ptr<Context> weak;
  GMainContext* mc = g_main_context_new();
  Pipe pipe;
  {
    auto context = Context::create({.backend = GetParam()});
    weak = context;
    glib::attach(context, mc);
    ASSERT_FALSE(context->set_fd_handler(pipe.read_fd, {.read = [sentinel] {}}));
    g_main_context_iteration(mc, FALSE);
    BottomHalf bh(*context, [sentinel] {});
    bh.schedule();
    context->run_soon([sentinel] {});
  }
  EXPECT_FALSE(weak.expired()) << "the attached source owns the context";
  g_main_context_unref(mc);
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(sentinel.use_count(), 1);
}

// The context is woken through GLib's own wake-up fd while attached
// (Context::set_embed_wakeup), without referencing the GMainContext: the
// wake-up is withdrawn when GLib destroys the source, before it frees the
// GMainContext. Other threads schedule bottom halves all along while
// GMainContexts come and go; ASan and TSan see any call into a freed one.
TEST_P(GSourceTest, MainContextsFreedWhileOtherThreadsSchedule) {
  DetachSource();
  std::atomic<bool> quit{false};
  std::atomic<int> runs{0};
  BottomHalf bh(ctx(), [&] { runs.fetch_add(1, std::memory_order_relaxed); });
  std::vector<std::thread> schedulers;
  for (int t = 0; t < 2; ++t) {
    schedulers.emplace_back([&] {
      while (!quit.load(std::memory_order_acquire)) {
        bh.schedule();
        std::this_thread::sleep_for(50us);
      }
    });
  }
  for (int round = 0; round < 40; ++round) {
    GMainContext* mc = g_main_context_new();
    const guint id = glib::attach(ctx_, mc);
    const int wanted = runs.load() + 3;
    GWatchdog watchdog(mc, 10s);
    while (runs.load() < wanted && !watchdog.fired()) g_main_context_iteration(mc, TRUE);
    EXPECT_FALSE(watchdog.fired()) << "round " << round;
    // Either the GMainContext destroys the source, or the source goes first.
    if (round % 2 == 1) g_source_destroy(g_main_context_find_source_by_id(mc, id));
    g_main_context_unref(mc);
  }
  quit.store(true, std::memory_order_release);
  for (std::thread& t : schedulers) t.join();
  // Native polling wakes through the eventfd again.
  std::thread other([&] {
    std::this_thread::sleep_for(20ms);
    bh.schedule();
  });
  const int before = runs.load();
  Watchdog watchdog(ctx());
  while (runs.load() == before && !watchdog.fired()) ctx().poll(true);
  other.join();
  EXPECT_FALSE(watchdog.fired());
}

// Several threads wake a blocked GLib at once through its wake-up fd (the
// lock around it is shared, so they do not wait for each other): each
// schedules its own bottom half and waits until it has run, many times.
TEST_P(GSourceTest, ManyThreadsWakeABlockedGLib) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  std::atomic<int> runs[kThreads] = {};
  std::vector<std::unique_ptr<BottomHalf>> bhs;
  for (int t = 0; t < kThreads; ++t) {
    bhs.push_back(std::make_unique<BottomHalf>(
        ctx(), [&runs, t] { runs[t].fetch_add(1, std::memory_order_release); }));
  }
  std::atomic<bool> quit{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 1; round <= kRounds && !quit.load(std::memory_order_acquire); ++round) {
        bhs[t]->schedule();
        while (runs[t].load(std::memory_order_acquire) < round &&
               !quit.load(std::memory_order_acquire)) {
          std::this_thread::yield();
        }
      }
    });
  }
  auto all_done = [&] {
    for (auto& r : runs) {
      if (r.load(std::memory_order_acquire) < kRounds) return false;
    }
    return true;
  };
  const bool done = IterateUntil(all_done, 20s);
  quit.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();
  EXPECT_TRUE(done) << "a wake-up was lost";
}

// GLib may prepare our source and never check it (a higher-priority source
// became ready during the poll), and that source's callback may destroy
// ours. The announcement GLib left behind must not outlive the source: a
// context polled natively afterwards would otherwise pay an eventfd write
// for every notify(), even a bottom half scheduled from its own callback.
TEST_P(GSourceTest, DestroyedBetweenPrepareAndCheckLeavesNoAnnouncement) {
  Pipe high_pipe;
  GSource* high_fd = g_unix_fd_source_new(high_pipe.read_fd, G_IO_IN);
  struct Destroyer {
    GSource** ours;
    int runs = 0;
  } destroyer{&source_};
  g_source_set_callback(high_fd, G_SOURCE_FUNC(+[](gint, GIOCondition, gpointer data) -> gboolean {
                          auto* d = static_cast<Destroyer*>(data);
                          ++d->runs;
                          if (*d->ours) {
                            g_source_destroy(*d->ours);
                            g_source_unref(*d->ours);
                            *d->ours = nullptr;
                          }
                          return G_SOURCE_CONTINUE;
                        }),
                        &destroyer, nullptr);
  g_source_set_priority(high_fd, G_PRIORITY_HIGH);
  g_source_attach(high_fd, main_);
  Iterate();  // settle: both prepared and checked, nothing ready
  // Readable during the next poll only: GLib prepared us (nothing due),
  // then finds the higher-priority fd ready and skips our check.
  std::thread writer([&] {
    std::this_thread::sleep_for(20ms);
    high_pipe.Fill();
  });
  GWatchdog watchdog(main_, 5s);
  while (destroyer.runs == 0 && !watchdog.fired()) Iterate(true);
  writer.join();
  ASSERT_EQ(source_, nullptr);
  g_source_destroy(high_fd);
  g_source_unref(high_fd);

  int64_t runs = 0;
  BottomHalf bh(ctx(), [&] {
    if (++runs < 100) bh.schedule();
  });
  const uint64_t writes = ctx().stats().eventfd_writes;
  bh.schedule();
  while (runs < 100) ctx().poll(false);
  EXPECT_EQ(ctx().stats().eventfd_writes, writes)
      << "a notify() without any wait announced wrote the eventfd";
}

// A native poll() in one of our callbacks, dispatched by GLib, waits on the
// context's eventfd, which GLib was not shown: a bottom half scheduled from
// another thread must wake that wait, not GLib's.
TEST_P(GSourceTest, NativePollNestedInOurCallbackIsWokenFromAnotherThread) {
  std::atomic<int> remote_runs{0};
  BottomHalf remote(ctx(), [&] { remote_runs.fetch_add(1); });
  bool nested_done = false;
  Watchdog watchdog(ctx());
  BottomHalf nesting(ctx(), [&] {
    std::thread other([&] {
      std::this_thread::sleep_for(20ms);
      remote.schedule();
    });
    while (remote_runs.load() == 0 && !watchdog.fired()) ctx().poll(true);
    other.join();
    nested_done = true;
  });
  nesting.schedule();
  EXPECT_TRUE(IterateUntil([&] { return nested_done; }, 5s));
  EXPECT_FALSE(watchdog.fired()) << "the nested native wait was not woken";
  EXPECT_EQ(remote_runs.load(), 1);
}

// GLib drops a source's callback when somebody replaces it (our source
// never calls one): the wake-up is withdrawn then too, GLib is shown the
// eventfd again, and cross-thread bottom halves still wake it.
TEST_P(GSourceTest, ReplacedCallbackStillLetsOtherThreadsWakeGLib) {
  EXPECT_EQ(PolledFds(), 1);
  g_source_set_callback(
      source_, +[](gpointer) -> gboolean { return G_SOURCE_CONTINUE; }, nullptr, nullptr);
  EXPECT_EQ(PolledFds(), 2) << "the context's eventfd is not shown again";
  std::atomic<int> runs{0};
  BottomHalf bh(ctx(), [&] { runs.fetch_add(1); });
  for (int round = 1; round <= 3; ++round) {
    std::thread other([&] {
      std::this_thread::sleep_for(20ms);
      bh.schedule();
    });
    EXPECT_TRUE(IterateUntil([&] { return runs.load() == round; }, 5s));
    other.join();
  }
}

// Issue 5 §2: "Handlers added, replaced and removed while the main loop
// runs work under all three" monitors (under poll the GLib fd set follows
// the handlers).
TEST_P(GSourceTest, HandlersChangeWhileTheLoopRuns) {
  Pipe a, b;
  std::vector<std::string> log;
  std::function<void()> b2 = [&] {
    log.push_back("b2");
    b.Drain();
  };
  std::function<void()> b1 = [&] {
    log.push_back("b1");
    b.Drain();
    // Replace b's handler from inside it.
    ASSERT_FALSE(ctx().set_fd_handler(b.read_fd, {.read = b2}));
  };
  std::function<void()> on_a = [&] {
    log.push_back("a");
    a.Drain();
    // Add b from a's callback, remove a itself.
    ASSERT_FALSE(ctx().set_fd_handler(b.read_fd, {.read = b1}));
    ctx().remove_fd_handler(a.read_fd);
  };
  a.Fill();
  ASSERT_FALSE(ctx().set_fd_handler(a.read_fd, {.read = on_a}));
  ASSERT_TRUE(IterateUntil([&] { return log.size() == 1; }, 2s));
  b.Fill();
  ASSERT_TRUE(IterateUntil([&] { return log.size() == 2; }, 2s));
  a.Fill();  // a is no longer watched
  b.Fill();
  ASSERT_TRUE(IterateUntil([&] { return log.size() == 3; }, 2s));
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b1", "b2"}));

  // Removed from another source's callback while its fd is still readable;
  // then the fd is closed and its number reused by a new pipe.
  b.Fill();
  std::unique_ptr<ScopedSource> idle(NewIdle(main_, G_PRIORITY_DEFAULT, [&] {
    ctx().remove_fd_handler(b.read_fd);
    CloseFd(b.read_fd);
    return G_SOURCE_REMOVE;
  }));
  for (int i = 0; i < 3; ++i) Iterate();
  const size_t before = log.size();
  Pipe c;
  int c_reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(c.read_fd, {.read = [&] {
                                      ++c_reads;
                                      c.Drain();
                                    }}));
  c.Fill();
  EXPECT_TRUE(IterateUntil([&] { return c_reads == 1; }, 2s));
  EXPECT_LE(log.size(), before + 1) << "b ran after its removal";
  // No spinning on a stale, closed or removed fd.
  for (int i = 0; i < 3; ++i) Iterate();
  int dispatched = 0;
  for (int i = 0; i < 5; ++i) dispatched += Iterate() ? 1 : 0;
  EXPECT_EQ(dispatched, 0);
  ctx().remove_fd_handler(c.read_fd);
  ctx().remove_fd_handler(a.read_fd);
}

// DESIGN "The GSource": "GLib may call prepare again without check (e.g.
// when a higher-priority source is ready); prepare/check must tolerate it".
// A higher-priority fd source that GLib finds ready only after polling
// makes GLib skip our check; a higher-priority idle skips our prepare.
// Once it goes, our BHs, fds and timers run, and a cross-thread BH still
// wakes a blocked iteration (the announcement was not lost or doubled).
TEST_P(GSourceTest, PrepareWithoutCheckIsTolerated) {
  Pipe high_pipe;
  high_pipe.Fill();  // never drained: always ready
  int high_runs = 0;
  GSource* high_fd = g_unix_fd_source_new(high_pipe.read_fd, G_IO_IN);
  g_source_set_callback(high_fd, G_SOURCE_FUNC(+[](gint, GIOCondition, gpointer data) -> gboolean {
                          ++*static_cast<int*>(data);
                          return G_SOURCE_CONTINUE;
                        }),
                        &high_runs, nullptr);
  g_source_set_priority(high_fd, G_PRIORITY_HIGH);
  g_source_attach(high_fd, main_);

  int bh_runs = 0;
  BottomHalf bh(ctx(), [&] { ++bh_runs; });
  Pipe pipe;
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, {.read = [&] {
                                      ++reads;
                                      pipe.Drain();
                                    }}));
  int timer_runs = 0;
  Timer timer(ctx(), ClockType::realtime, Scale::ms, [&] { ++timer_runs; });
  std::atomic<int> remote_runs{0};
  BottomHalf remote(ctx(), [&] { remote_runs.fetch_add(1); });

  for (int i = 0; i < 20; ++i) {
    if (i == 5) {
      bh.schedule();
      pipe.Fill();
      timer.mod(ctx().now(ClockType::realtime) / kNsPerMs + 1);
      std::thread([&] { remote.schedule(); }).join();
    }
    Iterate();
  }
  EXPECT_GT(high_runs, 10);

  // A higher-priority idle: GLib stops preparing us at all.
  g_source_destroy(high_fd);
  g_source_unref(high_fd);
  std::unique_ptr<ScopedSource> high_idle(
      NewIdle(main_, G_PRIORITY_HIGH, [] { return G_SOURCE_CONTINUE; }));
  for (int i = 0; i < 10; ++i) Iterate();
  high_idle.reset();

  EXPECT_TRUE(IterateUntil(
      [&] { return bh_runs == 1 && reads == 1 && timer_runs == 1 && remote_runs.load() == 1; }, 2s))
      << "bh " << bh_runs << " fd " << reads << " timer " << timer_runs << " remote "
      << remote_runs.load();

  std::thread other([&] {
    std::this_thread::sleep_for(20ms);
    remote.schedule();
  });
  EXPECT_TRUE(IterateUntil([&] { return remote_runs.load() == 2; }, 5s))
      << "a cross-thread BH no longer wakes GLib after prepare without check";
  other.join();
  ctx().remove_fd_handler(pipe.read_fd);
}

// DESIGN "Fd monitors": "under GLib the cost per iteration stays independent
// of the number of idle fds": under epoll and io_uring GLib polls one fd for
// the context, under poll one per handler.
TEST_P(GSourceTest, FdsShownToGLib) {
  const int before = PolledFds();
  // GLib's own wake-up fd alone: the context is woken through it
  // (Context::set_embed_wakeup), so its eventfd is not polled as well.
  EXPECT_EQ(before, 1) << "GLib polls the context's eventfd beside its own wake-up fd";
  std::vector<std::unique_ptr<Pipe>> pipes;
  for (int i = 0; i < 64; ++i) {
    pipes.push_back(std::make_unique<Pipe>());
    ASSERT_FALSE(ctx().set_fd_handler(pipes.back()->read_fd, {.read = [] {}}));
  }
  const int after = PolledFds();
  if (GetParam() == Backend::poll) {
    EXPECT_GE(after, before + 64);
  } else {
    // Past a few handlers, the epoll or ring fd stands for all of them.
    EXPECT_EQ(after, before + 1) << "GLib polls more fds as handlers are added";
  }
  for (auto& p : pipes) ctx().remove_fd_handler(p->read_fd);
  if (GetParam() == Backend::poll) {
    EXPECT_EQ(PolledFds(), before) << "removed handlers are still polled by GLib";
  }
}

// Pipes whose read handlers drain them and count their calls.
struct CountedPipes {
  explicit CountedPipes(int n) : reads(n, 0) {
    for (int i = 0; i < n; ++i) pipes.push_back(std::make_unique<Pipe>());
  }
  void Watch(Context& ctx, int i) {
    ASSERT_FALSE(ctx.set_fd_handler(pipes[i]->read_fd, {.read = [this, i] {
                                      ++reads[i];
                                      pipes[i]->Drain();
                                    }}));
  }
  std::vector<std::unique_ptr<Pipe>> pipes;
  std::vector<int> reads;
};

// Under epoll a context with few handlers shows GLib their fds directly
// (GLib's revents are the events, no epoll_wait() in check), and one with
// many shows the epoll fd. Handlers work on both sides of the switch, in
// both directions, and fds GLib saw but that were removed do not run.
TEST_P(GSourceTest, FewAndManyHandlersUnderGLib) {
  constexpr int kPipes = 24;
  CountedPipes counted(kPipes);
  auto& pipes = counted.pipes;
  auto& reads = counted.reads;
  auto add = [&](int i) { counted.Watch(ctx(), i); };
  for (int i = 0; i < 2; ++i) add(i);
  pipes[1]->Fill();
  ASSERT_TRUE(IterateUntil([&] { return reads[1] == 1; }, 2s)) << "few handlers";
  for (int i = 2; i < kPipes; ++i) add(i);
  pipes[17]->Fill();
  pipes[0]->Fill();
  ASSERT_TRUE(IterateUntil([&] { return reads[17] == 1 && reads[0] == 1; }, 2s)) << "many handlers";
  // Back to few: a ready fd that GLib was shown before is removed meanwhile.
  pipes[5]->Fill();
  for (int i = 3; i < kPipes; ++i) ctx().remove_fd_handler(pipes[i]->read_fd);
  pipes[2]->Fill();
  ASSERT_TRUE(IterateUntil([&] { return reads[2] == 1; }, 2s)) << "few again";
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(reads[5], 0) << "a removed handler ran";
  EXPECT_EQ(reads[1] + reads[17] + reads[0] + reads[2], 4) << "a drained fd ran twice";
  for (int i = 0; i < 3; ++i) ctx().remove_fd_handler(pipes[i]->read_fd);
}

// Many handlers, one of them busy: under epoll it soon leaves the epoll set
// and GLib polls it beside the epoll fd. Every write is read exactly once
// on the way in, while hot, when a second fd joins, after the busy one is
// replaced while hot, and when it goes idle and back.
TEST_P(GSourceTest, BusyFdAmongManyHandlersUnderGLib) {
  constexpr int kPipes = 16;
  CountedPipes counted(kPipes);
  auto& pipes = counted.pipes;
  auto& reads = counted.reads;
  auto add = [&](int i) { counted.Watch(ctx(), i); };
  for (int i = 0; i < kPipes; ++i) add(i);
  auto rounds = [&](std::initializer_list<int> busy, int count) {
    for (int r = 0; r < count; ++r) {
      std::vector<int> want = reads;
      for (int i : busy) {
        pipes[i]->Fill();
        ++want[i];
      }
      ASSERT_TRUE(IterateUntil([&] { return reads == want; }, 2s)) << "round " << r;
      Iterate(false);
      ASSERT_EQ(reads, want) << "round " << r << ": a drained fd ran again";
    }
  };
  rounds({3}, 20);
  rounds({3, 11}, 20);
  // Replaced while hot (epoll): the new handler is watched from scratch.
  ctx().remove_fd_handler(pipes[3]->read_fd);
  add(3);
  rounds({3}, 10);
  // Idle long enough to go back into the set, then busy again.
  for (int i = 0; i < 80; ++i) Iterate(false);
  rounds({3, 7}, 10);
  for (int i = 0; i < kPipes; ++i) ctx().remove_fd_handler(pipes[i]->read_fd);
}

// Issue 5 §5: the C++ convenience aioloop::glib::run() runs a GMainLoop with
// the context attached and detaches it again before returning.
TEST_P(GSourceTest, RunConvenienceAttachesAndDetaches) {
  DetachSource();
  GMainLoop* loop = g_main_loop_new(main_, FALSE);
  int runs = 0;
  BottomHalf bh(ctx(), [&] {
    ++runs;
    g_main_loop_quit(loop);
  });
  bh.schedule();
  GWatchdog watchdog(main_, 5s);
  glib::run(ctx_, loop);
  EXPECT_FALSE(watchdog.fired());
  EXPECT_EQ(runs, 1);
  // Detached: a new source may be created.
  GSource* again = nullptr;
  EXPECT_NO_THROW(again = glib::create_source(ctx_));
  if (again) g_source_unref(again);
  g_main_loop_unref(loop);
}

// Issue 5 §5: the C entry points, from a small plain-C style program.
TEST_P(GSourceTest, CApi) {
  DetachSource();
  GError* error = nullptr;
  EXPECT_EQ(aioloop_context_new("no-such-backend", &error), nullptr);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->domain, AIOLOOP_ERROR);
  EXPECT_EQ(error->code, EINVAL);
  g_clear_error(&error);

  const std::string name(backend_name(GetParam()));
  AioloopContext* context = aioloop_context_new(name.c_str(), &error);
  if (!context) {
    std::string message = error ? error->message : "";
    g_clear_error(&error);
    GTEST_SKIP() << "the C API could not create a " << name << " context: " << message;
  }
  GSource* source = aioloop_context_create_source(context, &error);
  ASSERT_NE(source, nullptr) << (error ? error->message : "");
  g_source_attach(source, main_);

  EXPECT_EQ(aioloop_context_create_source(context, &error), nullptr);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->domain, AIOLOOP_ERROR);
  EXPECT_EQ(error->code, EBUSY);
  g_clear_error(&error);

  struct State {
    Pipe pipe;
    int reads = 0;
    std::atomic<int> soon{0};
  } state;
  EXPECT_TRUE(aioloop_context_set_fd_handler(
      context, state.pipe.read_fd,
      +[](gpointer data) {
        auto* s = static_cast<State*>(data);
        ++s->reads;
        s->pipe.Drain();
      },
      nullptr, &state, &error));
  EXPECT_FALSE(aioloop_context_set_fd_handler(
      context, -1, +[](gpointer) {}, nullptr, nullptr, &error));
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->code, EBADF);
  g_clear_error(&error);

  state.pipe.Fill();
  std::thread other([&] {
    aioloop_context_run_soon(
        context, +[](gpointer data) { static_cast<State*>(data)->soon.fetch_add(1); }, &state);
  });
  other.join();
  EXPECT_TRUE(IterateUntil([&] { return state.reads == 1 && state.soon.load() == 1; }, 5s));

  // Both callbacks NULL removes the handler.
  EXPECT_TRUE(aioloop_context_set_fd_handler(context, state.pipe.read_fd, nullptr, nullptr, nullptr,
                                             &error));
  state.pipe.Fill();
  for (int i = 0; i < 3; ++i) Iterate();
  EXPECT_EQ(state.reads, 1);

  // The source holds its own reference: unref the handle first.
  AioloopContext* extra = aioloop_context_ref(context);
  aioloop_context_unref(extra);
  aioloop_context_unref(context);
  g_source_destroy(source);
  g_source_unref(source);
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(GSourceTest);

// ---------------------------------------------------------------------------
// An I/O thread hosting a GMainContext (issue 5 §4).

class GlibIoThreadTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!backend_compiled_in(GetParam())) GTEST_SKIP() << "not built in";
    try {
      IoThreadOptions options;
      options.context.backend = GetParam();
      io_ = std::make_unique<IoThread>(options);
    } catch (const Error& e) {
      GTEST_SKIP() << "the kernel refused the monitor: " << e.what();
    }
  }
  // Stops the thread and returns how long that took.
  int64_t StopMs() {
    const auto start = std::chrono::steady_clock::now();
    io_->stop();
    return ElapsedMs(start);
  }

  std::unique_ptr<IoThread> io_;
};

// If the code under test loses a wake-up, the I/O thread sleeps in its
// GMainContext forever and run_and_wait() or stop() would hang the test.
// After a deadline this wakes that GMainContext directly (GLib's own
// wake-up, not ours) every millisecond and records that it had to, so the
// test fails instead of hanging.
class Rescuer {
 public:
  Rescuer(GMainContext* mc, std::chrono::milliseconds limit)
      : mc_(g_main_context_ref(mc)), thread_([this, limit] {
          const auto rescue_at = std::chrono::steady_clock::now() + limit;
          while (!done_.load()) {
            if (std::chrono::steady_clock::now() > rescue_at) {
              rescued_.store(true);
              g_main_context_wakeup(mc_);
            }
            std::this_thread::sleep_for(1ms);
          }
        }) {}
  ~Rescuer() {
    done_.store(true);
    thread_.join();
    g_main_context_unref(mc_);
  }
  Rescuer(const Rescuer&) = delete;
  Rescuer& operator=(const Rescuer&) = delete;
  bool rescued() const { return rescued_.load(); }

 private:
  GMainContext* mc_;
  std::atomic<bool> done_{false};
  std::atomic<bool> rescued_{false};
  std::thread thread_;
};

// Issue 5 §4 / DESIGN "Threads": "with glib-source/ it can also host a
// GMainContext in that thread": a g_idle and a g_timeout attached to it run
// in the I/O thread, run_and_wait still works, and stop joins cleanly.
TEST_P(GlibIoThreadTest, HostsGMainContext) {
  IoThread& io = *io_;
  GMainContext* mc = glib::host_main_context(io);
  ASSERT_NE(mc, nullptr);
  Rescuer rescuer(mc, 5s);

  std::atomic<bool> idle_done{false}, timeout_done{false};
  std::thread::id idle_thread, timeout_thread;
  GThread* idle_gthread = nullptr;
  GThread* io_gthread = nullptr;
  GSource* idle = g_idle_source_new();
  SetCallback(idle, [&] {
    idle_thread = std::this_thread::get_id();
    idle_gthread = g_thread_self();
    idle_done.store(true, std::memory_order_release);
    return G_SOURCE_REMOVE;
  });
  g_source_attach(idle, mc);  // GLib wakes the owning thread itself
  g_source_unref(idle);
  GSource* timeout = g_timeout_source_new(10);
  SetCallback(timeout, [&] {
    timeout_thread = std::this_thread::get_id();
    timeout_done.store(true, std::memory_order_release);
    return G_SOURCE_REMOVE;
  });
  g_source_attach(timeout, mc);
  g_source_unref(timeout);

  const auto give_up = std::chrono::steady_clock::now() + 5s;
  while (!(idle_done.load(std::memory_order_acquire) &&
           timeout_done.load(std::memory_order_acquire)) &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(idle_done.load());
  ASSERT_TRUE(timeout_done.load());
  EXPECT_EQ(idle_thread, io.thread_id());
  EXPECT_EQ(timeout_thread, io.thread_id());

  bool in_thread = false;
  GMainContext* thread_default = nullptr;
  EXPECT_TRUE(io.run_and_wait([&] {
    in_thread = std::this_thread::get_id() == io.thread_id();
    thread_default = g_main_context_get_thread_default();
    io_gthread = g_thread_self();
  }));
  EXPECT_TRUE(in_thread);
  EXPECT_EQ(thread_default, mc) << "the hosted GMainContext is the thread's default";
  EXPECT_EQ(idle_gthread, io_gthread);

  // The context's own work still runs there (a BH from this thread).
  std::atomic<bool> bh_done{false};
  io.run([&] { bh_done.store(std::this_thread::get_id() == io.thread_id()); });
  EXPECT_TRUE(io.run_and_wait([] {}));
  EXPECT_TRUE(bh_done.load());

  // A second source for the thread's context is refused.
  EXPECT_THROW(glib::host_main_context(io), Error);

  EXPECT_LT(StopMs(), 2000) << "stop() did not wake the GLib iteration";
  EXPECT_FALSE(rescuer.rescued()) << "a wake-up of the I/O thread was lost";
  EXPECT_FALSE(io.run_and_wait([] {})) << "run_and_wait after stop must refuse";
}

// Stopping an I/O thread that is blocked in its GMainContext with nothing to
// do, right after the switch: stop still joins (the switch and the stop both
// wake the thread).
TEST_P(GlibIoThreadTest, StopRightAfterSwitch) {
  GMainContext* mc = glib::host_main_context(*io_);
  Rescuer rescuer(mc, 3s);
  EXPECT_LT(StopMs(), 2000);
  EXPECT_FALSE(rescuer.rescued());
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(GlibIoThreadTest);

}  // namespace
}  // namespace aioloop::testing
