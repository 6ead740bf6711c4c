// SPDX-License-Identifier: MIT
// notify(): ends a blocking poll() from the home thread or any other, never
// counts as progress, and leaves no stale wake-up behind.
#include <atomic>
#include <chrono>
#include <thread>

#include "test_support.h"

namespace aioloop::testing {
namespace {

using NotifyTest = ContextTest;

// DESIGN "The native iteration": "after a bare `notify()`, `poll(true)`
// returns false" — promptly, and without counting the internal notifier as
// progress.
TEST_P(NotifyTest, BareNotifyMakesBlockingPollReturnFalsePromptly) {
  Watchdog watchdog(ctx());
  ctx().notify();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(ctx().poll(true));
  EXPECT_FALSE(watchdog.fired()) << "poll(true) blocked after notify()";
  EXPECT_LT(ElapsedMs(start), 1000);
}

// DESIGN "Notify": "`notify()` from any thread makes a blocked ... loop
// return promptly", and a notification is not progress.
TEST_P(NotifyTest, NotifyFromAnotherThreadWakesABlockedPoll) {
  Watchdog watchdog(ctx());
  const uint64_t waits_before = ctx().stats().blocking_waits;
  std::atomic<bool> notified{false};
  std::thread notifier([&] {
    if (WaitUntilBlocked(ctx(), waits_before)) {
      notified.store(true);
      ctx().notify();
    }
  });
  const bool progress = ctx().poll(true);
  notifier.join();
  ASSERT_FALSE(watchdog.fired()) << "notify() from another thread did not wake poll(true)";
  EXPECT_TRUE(notified.load());
  EXPECT_FALSE(progress) << "a notification alone is not progress";
}

// DESIGN "Notify" and "The native iteration" step 5 (accept the
// notification): after a wake-up the next blocking poll() blocks again until
// real work is due — the eventfd is cleared, no stale wake-up spins the loop.
TEST_P(NotifyTest, AcceptedNotificationLeavesNoStaleWakeUp) {
  Watchdog watchdog(ctx());
  const uint64_t waits_before = ctx().stats().blocking_waits;
  std::thread notifier([&] {
    if (WaitUntilBlocked(ctx(), waits_before)) {
      // Several notifications coalesce into one wake-up.
      ctx().notify();
      ctx().notify();
      ctx().notify();
    }
  });
  EXPECT_FALSE(ctx().poll(true));
  notifier.join();
  ASSERT_FALSE(watchdog.fired());
  // A notify() that lands after the loop accepted the first one legitimately
  // leaves `notified` set (notify.cpp: the next iteration does not block);
  // one non-blocking iteration accepts it. What must not remain is a
  // readable eventfd, which would end every later wait at once.
  ctx().poll(false);

  int fired = 0;
  Timer timer(ctx(), ClockType::realtime, Scale::ns, [&] { ++fired; });
  const int64_t deadline = ctx().now(ClockType::realtime) + 20 * 1000 * 1000;
  timer.mod(deadline);
  int polls = 0;
  while (fired == 0 && !watchdog.fired()) {
    ctx().poll(true);
    ++polls;
  }
  ASSERT_FALSE(watchdog.fired());
  EXPECT_EQ(polls, 1) << "a stale notification ended the next wait early";
}

// DESIGN "Notify": notifications from several threads at once all end up
// accepted; the loop neither hangs nor keeps spinning afterwards.
TEST_P(NotifyTest, ConcurrentNotifiersFromManyThreads) {
  Watchdog watchdog(ctx());
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::atomic<int> done{0};
  std::atomic<int> bh_runs{0};
  BottomHalf bh(ctx(), [&] { bh_runs.fetch_add(1); });
  std::thread threads[kThreads];
  for (auto& t : threads) {
    t = std::thread([&] {
      for (int i = 0; i < kRounds; ++i) ctx().notify();
      // The last act of each thread is a schedule: the loop must see it.
      if (done.fetch_add(1) + 1 == kThreads) bh.schedule();
    });
  }
  while (bh_runs.load() == 0 && !watchdog.fired()) ctx().poll(true);
  for (auto& t : threads) t.join();
  ASSERT_FALSE(watchdog.fired()) << "a wake-up was lost";
  EXPECT_EQ(bh_runs.load(), 1);
}

// Header (notify): "Writes the eventfd (one system call) only when the loop
// has announced a blocking wait" — a notify() from the home thread outside
// poll() costs no write, and poll(false) after it makes no progress.
TEST_P(NotifyTest, NotifyOutsidePollWritesNoEventfd) {
  ctx().notify();
  ctx().notify();
  EXPECT_EQ(ctx().stats().eventfd_writes, 0u);
  EXPECT_FALSE(ctx().poll(false));
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(NotifyTest);

}  // namespace
}  // namespace aioloop::testing
