// SPDX-License-Identifier: MIT
// EventNotifier and its registration as a handler.
#include <atomic>
#include <thread>

#include "test_support.h"

namespace aioloop::testing {
namespace {

// DESIGN "Event notifier": "an eventfd wrapper (`set`, `test_and_clear`,
// `fd`)".
TEST(EventNotifierTest, SetAndTestAndClear) {
  EventNotifier notifier;
  EXPECT_GE(notifier.fd(), 0);
  EXPECT_FALSE(notifier.test_and_clear());
  EXPECT_FALSE(notifier.set());
  EXPECT_FALSE(notifier.set()) << "setting a set notifier is harmless";
  EXPECT_TRUE(notifier.test_and_clear());
  EXPECT_FALSE(notifier.test_and_clear()) << "one clear resets it";
}

// Header (EventNotifier(bool initially_set)).
TEST(EventNotifierTest, InitiallySet) {
  EventNotifier notifier(true);
  EXPECT_TRUE(notifier.test_and_clear());
  EXPECT_FALSE(notifier.test_and_clear());
}

using EventNotifierContextTest = ContextTest;

// DESIGN "Event notifier" (registration helper): a registered notifier that
// is never set causes no callback and no progress.
TEST_P(EventNotifierContextTest, RegisteredButNeverSetMakesNoProgress) {
  EventNotifier notifier;
  int reads = 0;
  ASSERT_FALSE(ctx().set_event_notifier(notifier, [&] { ++reads; }));
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 0);
  ctx().remove_event_notifier(notifier);
}

// DESIGN "Event notifier": set → exactly one callback per iteration (the
// helper clears the notifier before the callback).
TEST_P(EventNotifierContextTest, SetGivesExactlyOneCallback) {
  EventNotifier notifier;
  int reads = 0;
  ASSERT_FALSE(ctx().set_event_notifier(notifier, [&] { ++reads; }));
  EXPECT_FALSE(notifier.set());
  EXPECT_FALSE(notifier.set());
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  EXPECT_FALSE(ctx().poll(false)) << "the helper must have cleared the notifier";
  EXPECT_EQ(reads, 1);
  ctx().remove_event_notifier(notifier);
}

// DESIGN "Event notifier": a callback that sets its notifier again keeps the
// loop busy, one callback per iteration, until it stops.
TEST_P(EventNotifierContextTest, CallbackThatSetsItsNotifierAgainRunsOncePerIteration) {
  EventNotifier notifier;
  int reads = 0;
  ASSERT_FALSE(ctx().set_event_notifier(notifier, [&] {
    ++reads;
    if (reads < 4) {
      EXPECT_FALSE(notifier.set());
    }
  }));
  EXPECT_FALSE(notifier.set());
  for (int i = 1; i <= 4; ++i) {
    EXPECT_TRUE(ctx().poll(false)) << "iteration " << i;
    EXPECT_EQ(reads, i);
  }
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 4);
  ctx().remove_event_notifier(notifier);
}

// DESIGN "Event notifier": a second notifier's events never re-run the first.
TEST_P(EventNotifierContextTest, SecondNotifierDoesNotRunTheFirst) {
  EventNotifier first;
  EventNotifier second;
  int first_reads = 0;
  int second_reads = 0;
  ASSERT_FALSE(ctx().set_event_notifier(first, [&] { ++first_reads; }));
  ASSERT_FALSE(ctx().set_event_notifier(second, [&] { ++second_reads; }));
  EXPECT_FALSE(first.set());
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(first_reads, 1);
  EXPECT_EQ(second_reads, 0);
  for (int i = 1; i <= 3; ++i) {
    EXPECT_FALSE(second.set());
    EXPECT_TRUE(ctx().poll(false));
    EXPECT_EQ(second_reads, i);
    EXPECT_EQ(first_reads, 1) << "the second notifier re-ran the first";
  }
  ctx().remove_event_notifier(first);
  ctx().remove_event_notifier(second);
}

// DESIGN "Event notifier" and "Fd handler" removal: after removal, no more
// callbacks even though the notifier stays set.
TEST_P(EventNotifierContextTest, RemovedNotifierGetsNoCallbacks) {
  EventNotifier notifier;
  int reads = 0;
  ASSERT_FALSE(ctx().set_event_notifier(notifier, [&] { ++reads; }));
  EXPECT_FALSE(notifier.set());
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  ctx().remove_event_notifier(notifier);
  EXPECT_FALSE(notifier.set());
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  EXPECT_TRUE(notifier.test_and_clear()) << "nobody consumed the event";
}

// DESIGN "Event notifier": `set` from another thread wakes a loop blocked on
// the notifier (its fd is a real eventfd, watched by the monitor).
TEST_P(EventNotifierContextTest, SetFromAnotherThreadWakesABlockedPoll) {
  Watchdog watchdog(ctx());
  EventNotifier notifier;
  int reads = 0;
  ASSERT_FALSE(ctx().set_event_notifier(notifier, [&] { ++reads; }));
  const uint64_t waits_before = ctx().stats().blocking_waits;
  std::thread setter([&] {
    if (WaitUntilBlocked(ctx(), waits_before)) {
      EXPECT_FALSE(notifier.set());
    }
  });
  bool progress = false;
  while (reads == 0 && !watchdog.fired()) progress = ctx().poll(true);
  setter.join();
  ASSERT_FALSE(watchdog.fired());
  EXPECT_TRUE(progress);
  EXPECT_EQ(reads, 1);
  ctx().remove_event_notifier(notifier);
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(EventNotifierContextTest);

}  // namespace
}  // namespace aioloop::testing
