// SPDX-License-Identifier: MIT
// Adaptive busy polling (DESIGN.md "Adaptive busy polling"), driven by the
// test clock: ContextOptions::busy_poll_clock = ClockType::test makes every
// budget and idle time a number the test moves, never a real sleep.
#include <aioloop/aioloop.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "test_support.h"

namespace aioloop::testing {
namespace {

constexpr int64_t kUs = 1000;
constexpr int64_t kMaxNs = 32768;

class BusyPollTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    const Backend backend = GetParam();
    if (!backend_compiled_in(backend)) GTEST_SKIP() << "not built in";
    try {
      ctx_ = Context::create({.backend = backend, .busy_poll_clock = ClockType::test});
    } catch (const Error& e) {
      GTEST_SKIP() << "kernel refused: " << e.what();
    }
  }

  // A pipe whose handler can be busy polled: its poll callback moves the
  // test clock by step_ns_ per call (time spent polling) and finds the
  // event once the clock reaches arrival_ns_, the moment the "device" has
  // work. With jump_in_final_poll_, the last poll after poll_end finds the
  // event by moving the clock to its arrival: the work "came in" right as
  // polling ended, and the loop does not block (no thread needed).
  void RegisterPolledPipe() {
    FdHandler h;
    h.read = [this] {
      if (pipe_.Drain() > 0) Handle();
    };
    h.poll = [this] {
      ++polls_;
      const int64_t now = ctx_->now(ClockType::test);
      if (arrival_ns_ >= 0 && now >= arrival_ns_) return true;
      if (arrival_ns_ >= 0 && jump_in_final_poll_ && !in_phase_ && begins_ > 0) {
        ctx_->advance_test_clock(arrival_ns_ - now);
        return true;
      }
      ctx_->advance_test_clock(step_ns_);
      return false;
    };
    h.poll_ready = [this] {
      ++poll_readies_;
      Handle();
    };
    h.poll_begin = [this] {
      EXPECT_FALSE(in_phase_) << "poll_begin twice without poll_end";
      in_phase_ = true;
      ++begins_;
    };
    h.poll_end = [this] {
      EXPECT_TRUE(in_phase_) << "poll_end without poll_begin";
      in_phase_ = false;
      ++ends_;
    };
    ASSERT_FALSE(ctx_->set_fd_handler(pipe_.read_fd, std::move(h)));
  }

  // The event is consumed once, whichever way it was found.
  void Handle() {
    arrival_ns_ = -1;
    pipe_.Drain();
    ++handled_;
  }

  // Blocking iterations until the event that arrives delay_ns after the
  // start has been handled. If busy polling does not find it first, the
  // loop blocks; a helper thread then moves the clock to the arrival (which
  // wakes the loop: its blocking time is exactly delay_ns) and fills the
  // pipe (for when busy polling is off). Whichever wake-up the loop sees
  // first, that iteration blocked for delay_ns; the event is then found at
  // once (block_ns 0 keeps the budget).
  void IterateWithEventAfter(int64_t delay_ns) {
    arrival_ns_ = ctx_->now(ClockType::test) + delay_ns;
    const int handled_before = handled_;
    const uint64_t waits_before = ctx_->stats().blocking_waits;
    std::atomic<bool> done{false};
    std::thread mover([&] {
      while (!done.load() && ctx_->stats().blocking_waits == waits_before)
        std::this_thread::yield();
      if (done.load()) return;  // busy polling found it: nothing to deliver
      const int64_t now = ctx_->now(ClockType::test);
      const int64_t arrival = arrival_ns_.load();
      if (arrival > now) ctx_->advance_test_clock(arrival - now);
      pipe_.Fill();
    });
    Watchdog watchdog(*ctx_);
    while (!watchdog.fired() && handled_ == handled_before) ctx_->poll(true);
    done.store(true);
    mover.join();
    ASSERT_FALSE(watchdog.fired());
    // The pipe may still hold the helper's byte if the poll callback found
    // the event first; the next event must not be mistaken for it.
    pipe_.Drain();
  }

  std::shared_ptr<Context> ctx_;
  Pipe pipe_;
  std::atomic<int64_t> arrival_ns_{-1};
  int64_t step_ns_ = 1 * kUs;
  bool jump_in_final_poll_ = false;
  int polls_ = 0, poll_readies_ = 0, begins_ = 0, ends_ = 0, handled_ = 0;
  bool in_phase_ = false;
};

// "if block_ns > poll_ns and room to grow, grow (poll_ns *= grow, default x2,
// starting at 4 us), capped at max_ns"; "if block_ns <= poll_ns keep".
TEST_P(BusyPollTest, GrowsFromZeroToMaxWhenEventsArriveWithinTheBudget) {
  ctx_->set_poll_params(kMaxNs, 0, 0);
  RegisterPolledPipe();
  EXPECT_EQ(ctx_->stats().poll_ns, 0);
  const int64_t expected[] = {4096, 8192, 16384, 32768, 32768};
  for (int64_t want : expected) {
    IterateWithEventAfter(30 * kUs);
    EXPECT_EQ(ctx_->stats().poll_ns, want);
  }
  // Once the budget covers the arrival time, busy polling finds the event.
  EXPECT_GT(poll_readies_, 0);
  EXPECT_GT(ctx_->stats().busy_poll_hits, 0u);
}

// "if block_ns > max_ns shrink (poll_ns /= shrink, or 0 when shrink is 0)".
TEST_P(BusyPollTest, ShrinksToZeroWhenWaitsExceedTheMaximum) {
  ctx_->set_poll_params(kMaxNs, 0, 0);
  RegisterPolledPipe();
  for (int i = 0; i < 4; ++i) IterateWithEventAfter(30 * kUs);
  ASSERT_EQ(ctx_->stats().poll_ns, kMaxNs);
  IterateWithEventAfter(1000 * kUs);
  EXPECT_EQ(ctx_->stats().poll_ns, 0);
}

TEST_P(BusyPollTest, ShrinkDividesWhenGiven) {
  ctx_->set_poll_params(kMaxNs, 4, 2);
  RegisterPolledPipe();
  IterateWithEventAfter(30 * kUs);  // 0 -> 4096 (start value)
  IterateWithEventAfter(30 * kUs);  // x4
  EXPECT_EQ(ctx_->stats().poll_ns, 16384);
  IterateWithEventAfter(1000 * kUs);
  EXPECT_EQ(ctx_->stats().poll_ns, 8192);
}

// "poll_begin is told before and poll_end after (with one last poll after
// poll_end)": the callbacks pair exactly, and the loop never blocks while a
// handler is in poll mode.
TEST_P(BusyPollTest, PollBeginAndEndPairExactly) {
  ctx_->set_poll_params(kMaxNs, 0, 0);
  RegisterPolledPipe();
  for (int i = 0; i < 6; ++i) IterateWithEventAfter(30 * kUs);
  IterateWithEventAfter(1000 * kUs);  // shrinks to 0: polling stops
  IterateWithEventAfter(1000 * kUs);
  EXPECT_GE(begins_, 1);
  EXPECT_EQ(begins_, ends_);
  EXPECT_FALSE(in_phase_);
}

// "with the poll and epoll monitors, busy polling only runs when every
// registered handler has a poll callback (otherwise an fd could starve);
// with io_uring the monitor's need-wait check keeps it safe".
TEST_P(BusyPollTest, HandlerWithoutPollCallbackDisablesBusyPollingUnderPollAndEpoll) {
  ctx_->set_poll_params(kMaxNs, 0, 0);
  RegisterPolledPipe();
  for (int i = 0; i < 3; ++i) IterateWithEventAfter(30 * kUs);
  ASSERT_GT(ctx_->stats().poll_ns, 0);

  Pipe plain;
  int plain_reads = 0;
  FdHandler h;
  h.read = [&] {
    plain.Drain();
    ++plain_reads;
  };
  ASSERT_FALSE(ctx_->set_fd_handler(plain.read_fd, std::move(h)));
  const uint64_t attempts = ctx_->stats().busy_poll_attempts;
  for (int i = 0; i < 3; ++i) IterateWithEventAfter(30 * kUs);
  if (GetParam() == Backend::io_uring) {
    EXPECT_GT(ctx_->stats().busy_poll_attempts, attempts);
  } else {
    EXPECT_EQ(ctx_->stats().busy_poll_attempts, attempts);
  }
  // Either way the plain handler is never starved.
  plain.Fill();
  Watchdog watchdog(*ctx_);
  while (!watchdog.fired() && plain_reads == 0) ctx_->poll(true);
  EXPECT_EQ(plain_reads, 1);
  ctx_->remove_fd_handler(plain.read_fd);
}

// "a handler that has not made progress for 7 s leaves the set (with a final
// poll after its poll_end), and rejoins the next time its fd fires".
TEST_P(BusyPollTest, IdleHandlerLeavesThePollSetAfterSevenSecondsAndRejoins) {
  ctx_->set_poll_params(kMaxNs, 0, 0);
  RegisterPolledPipe();
  for (int i = 0; i < 5; ++i) IterateWithEventAfter(30 * kUs);
  ASSERT_EQ(ctx_->stats().poll_ns, kMaxNs);

  // Eight seconds without progress; the next busy poll prunes the handler.
  // A BH from another thread ends each busy poll (the notifier is polled).
  ctx_->advance_test_clock(8LL * kNsPerSecond);
  const int ends_before = ends_;
  // The clock stands still from here: busy polling ends only through the
  // notifier, never by budget (which could shrink poll_ns to 0).
  step_ns_ = 0;
  auto bounce = [&] {
    bool ran = false;
    BottomHalf bh(*ctx_, [&] { ran = true; });
    const uint64_t attempts = ctx_->stats().busy_poll_attempts;
    std::thread t([&] {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (ctx_->stats().busy_poll_attempts == attempts &&
             std::chrono::steady_clock::now() < give_up) {
        std::this_thread::yield();
      }
      bh.schedule();
    });
    Watchdog watchdog(*ctx_);
    while (!ran && !watchdog.fired()) ctx_->poll(true);
    t.join();
    EXPECT_TRUE(ran);
  };
  bounce();
  EXPECT_EQ(ends_, ends_before + 1) << "leaving the poll set tells poll_end";
  const int polls_after_leaving = polls_;
  bounce();
  EXPECT_EQ(polls_, polls_after_leaving) << "an idle handler is no longer polled";

  // Its fd fires: it rejoins and is polled again. Under poll and epoll an
  // fd outside the poll set is only seen by a wait, and the frozen test
  // clock would keep the loop busy polling the notifier forever: a plain
  // handler (no poll callback) makes the loop wait instead. Under io_uring
  // the completion ends busy polling by itself.
  Pipe plain;
  FdHandler h;
  h.read = [&] { plain.Drain(); };
  ASSERT_FALSE(ctx_->set_fd_handler(plain.read_fd, std::move(h)));
  const int handled_before = handled_;
  pipe_.Fill();
  {
    Watchdog watchdog(*ctx_);
    while (!watchdog.fired() && handled_ == handled_before) ctx_->poll(true);
    ASSERT_FALSE(watchdog.fired());
  }
  ctx_->remove_fd_handler(plain.read_fd);
  bounce();
  EXPECT_GT(polls_, polls_after_leaving);
}

// "a notify() or cross-thread BH schedule from another thread costs no
// system call" while the loop busy polls.
TEST_P(BusyPollTest, CrossThreadBottomHalfDuringBusyPollingWritesNoEventfd) {
  ctx_->set_poll_params(1000 * kUs, 0, 0);
  // Grow the budget once (the loop has to block for that).
  RegisterPolledPipe();
  IterateWithEventAfter(10 * kUs);
  ASSERT_GT(ctx_->stats().poll_ns, 0);
  ctx_->remove_fd_handler(pipe_.read_fd);
  step_ns_ = 0;

  // The test clock stands still, so the loop busy polls until something
  // arrives: only the notifier's poll callback can end it.
  std::atomic<bool> ran{false};
  BottomHalf bh(*ctx_, [&] { ran = true; });
  const Stats before = ctx_->stats();
  std::thread other([&] {
    while (ctx_->stats().busy_poll_attempts == before.busy_poll_attempts) std::this_thread::yield();
    bh.schedule();
  });
  Watchdog watchdog(*ctx_, std::chrono::seconds(10));
  while (!ran && !watchdog.fired()) ctx_->poll(true);
  other.join();
  ASSERT_FALSE(watchdog.fired());
  const Stats after = ctx_->stats();
  EXPECT_EQ(after.eventfd_writes, before.eventfd_writes);
  EXPECT_EQ(after.blocking_waits, before.blocking_waits);
  EXPECT_GT(after.busy_poll_hits, before.busy_poll_hits);
}

// Under io_uring busy polling stays on with handlers that have no poll
// callback, because the monitor sees their completions in shared memory: an
// fd written by another thread ends the polling phase as a hit, without a
// blocking wait (the test clock stands still, so nothing else ends it). How
// fast the completion shows up (the kernel's cooperative task work, see
// io_uring_monitor.cpp) is a benchmark figure, W3 io_uring+busypoll.
TEST_P(BusyPollTest, PlainHandlerWrittenFromAnotherThreadEndsBusyPollingUnderIoUring) {
  if (GetParam() != Backend::io_uring) GTEST_SKIP() << "busy polls plain fds only under io_uring";
  ctx_->set_poll_params(1000 * kUs, 0, 0);
  RegisterPolledPipe();
  IterateWithEventAfter(10 * kUs);
  ASSERT_GT(ctx_->stats().poll_ns, 0);
  ctx_->remove_fd_handler(pipe_.read_fd);

  Pipe plain;
  std::atomic<int> reads{0};
  FdHandler h;
  h.read = [&] {
    plain.Drain();
    ++reads;
  };
  ASSERT_FALSE(ctx_->set_fd_handler(plain.read_fd, std::move(h)));
  ctx_->poll(false);  // the handler's poll request reaches the kernel
  const Stats before = ctx_->stats();
  std::thread writer([&] {
    while (ctx_->stats().busy_poll_attempts == before.busy_poll_attempts) std::this_thread::yield();
    plain.Fill();
  });
  Watchdog watchdog(*ctx_, std::chrono::seconds(10));
  while (reads == 0 && !watchdog.fired()) ctx_->poll(true);
  writer.join();
  ASSERT_FALSE(watchdog.fired());
  const Stats after = ctx_->stats();
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(after.blocking_waits, before.blocking_waits);
  EXPECT_GT(after.busy_poll_hits, before.busy_poll_hits);
  ctx_->remove_fd_handler(plain.read_fd);
}

// Issue 4, point 3: "Nested iterations inside poll_ready must not re-enter
// the same handler's poll or poll_ready, and must terminate."
TEST_P(BusyPollTest, NestedIterationInsidePollReadyDoesNotReenterTheHandler) {
  ctx_->set_poll_params(kMaxNs, 0, 0);
  int depth = 0, max_depth = 0, polls_inside = 0, readies = 0;
  bool work = false;
  FdHandler h;
  h.read = [&] { pipe_.Drain(); };
  h.poll = [&] {
    if (depth > 0) ++polls_inside;
    return work;
  };
  h.poll_ready = [&] {
    ++readies;
    work = false;
    ++depth;
    max_depth = std::max(max_depth, depth);
    for (int i = 0; i < 3; ++i) ctx_->poll(false);
    --depth;
  };
  ASSERT_FALSE(ctx_->set_fd_handler(pipe_.read_fd, std::move(h)));
  // Every handler is pollable, so a zero-timeout iteration polls instead of
  // waiting: that is where poll_ready comes from here.
  BottomHalf keep_busy(*ctx_, [] {});
  ctx_->poll(false);  // io_uring: the new handler's request reaches the kernel
  for (int i = 0; i < 5; ++i) {
    work = true;
    keep_busy.schedule();
    ctx_->poll(true);
  }
  EXPECT_EQ(readies, 5);
  EXPECT_EQ(max_depth, 1);
  EXPECT_EQ(polls_inside, 0);
}

// DESIGN.md: per-handler estimates, "the context's budget follows the
// largest estimate among handlers that had events". Every event here is
// found by polling (within the budget, or by the last poll after poll_end),
// so each blocking time is exact.
TEST_P(BusyPollTest, PerHandlerEstimatesFollowTheWeightedAverage) {
  ctx_->set_poll_params(kMaxNs, 0, 0);
  RegisterPolledPipe();
  for (int i = 0; i < 4; ++i) IterateWithEventAfter(30 * kUs);
  ASSERT_EQ(ctx_->stats().poll_ns, kMaxNs);

  ctx_->set_poll_weight(1);  // each sample counts one half
  jump_in_final_poll_ = true;
  const uint64_t waits_before = ctx_->stats().blocking_waits;
  IterateWithEventAfter(16 * kUs);
  EXPECT_EQ(ctx_->stats().poll_ns, 8 * kUs);  // 0 + (16 - 0) / 2
  IterateWithEventAfter(4 * kUs);
  EXPECT_EQ(ctx_->stats().poll_ns, 6 * kUs);  // 8 + (4 - 8) / 2
  // Found by the last poll, 20 us in: longer than the 6 us budget.
  IterateWithEventAfter(20 * kUs);
  EXPECT_EQ(ctx_->stats().poll_ns, 13 * kUs);  // 6 + (20 - 6) / 2
  // A wait longer than max_ns counts as 0: polling would not have paid.
  IterateWithEventAfter(1000 * kUs);
  EXPECT_EQ(ctx_->stats().poll_ns, 6500);  // 13 + (0 - 13) / 2
  // All of it without blocking: the figures above are exact.
  EXPECT_EQ(ctx_->stats().blocking_waits, waits_before);
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(BusyPollTest);

}  // namespace
}  // namespace aioloop::testing
