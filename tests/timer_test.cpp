// SPDX-License-Identifier: MIT
// Timers: deadlines on the test clock, del, re-arm, callbacks that re-arm or
// delete timers, scales, and a real-clock timer ending a blocking wait.
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "test_support.h"

namespace aioloop::testing {
namespace {

using TimerTest = ContextTest;

// DESIGN "Timer": "A timer never fires before its deadline, and fires only
// inside an iteration."
TEST_P(TimerTest, FiresAtTheDeadlineAndNotBefore) {
  int fired = 0;
  Timer timer(ctx(), ClockType::test, Scale::ns, [&] { ++fired; });
  const int64_t deadline = ctx().now(ClockType::test) + 1000;
  timer.mod(deadline);
  EXPECT_TRUE(timer.pending());
  EXPECT_EQ(timer.expire_time_ns(), deadline);

  ctx().advance_test_clock(999);
  EXPECT_FALSE(ctx().poll(false)) << "one ns before the deadline";
  EXPECT_EQ(fired, 0);
  EXPECT_TRUE(timer.pending());

  ctx().advance_test_clock(1);
  EXPECT_TRUE(ctx().poll(false)) << "at the deadline";
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(timer.pending());
  EXPECT_EQ(timer.expire_time_ns(), -1);

  // One-shot: it does not fire again.
  ctx().advance_test_clock(1000000);
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(fired, 1);
}

// DESIGN "Timer": fires "only inside an iteration" — moving the clock past
// the deadline is not enough.
TEST_P(TimerTest, FiresOnlyInsideAnIteration) {
  int fired = 0;
  Timer test_timer(ctx(), ClockType::test, Scale::ns, [&] { ++fired; });
  Timer real_timer(ctx(), ClockType::realtime, Scale::ns, [&] { ++fired; });
  test_timer.mod(ctx().now(ClockType::test) + 10);
  real_timer.mod(ctx().now(ClockType::realtime) - 1);  // already due
  ctx().advance_test_clock(1000);
  EXPECT_EQ(fired, 0);
  EXPECT_TRUE(test_timer.pending());
  EXPECT_TRUE(real_timer.pending());
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(fired, 2);
}

// DESIGN "Timer": `del`.
TEST_P(TimerTest, DelDisarms) {
  int fired = 0;
  Timer timer(ctx(), ClockType::test, Scale::ns, [&] { ++fired; });
  timer.mod(ctx().now(ClockType::test) + 100);
  timer.del();
  EXPECT_FALSE(timer.pending());
  EXPECT_EQ(timer.expire_time_ns(), -1);
  ctx().advance_test_clock(1000);
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(fired, 0);
  timer.del();  // disarming a disarmed timer is a no-op
  EXPECT_FALSE(timer.pending());
}

// DESIGN "Timer": `mod` re-arms an armed timer, to an earlier deadline.
TEST_P(TimerTest, RearmEarlier) {
  int fired = 0;
  Timer timer(ctx(), ClockType::test, Scale::ns, [&] { ++fired; });
  const int64_t t0 = ctx().now(ClockType::test);
  timer.mod(t0 + 200);
  timer.mod(t0 + 50);
  EXPECT_EQ(timer.expire_time_ns(), t0 + 50);
  ctx().advance_test_clock(49);
  EXPECT_FALSE(ctx().poll(false));
  ctx().advance_test_clock(1);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(fired, 1);
  ctx().advance_test_clock(200);
  EXPECT_FALSE(ctx().poll(false)) << "the old deadline must be forgotten";
  EXPECT_EQ(fired, 1);
}

// DESIGN "Timer": `mod` re-arms an armed timer, to a later deadline.
TEST_P(TimerTest, RearmLater) {
  int fired = 0;
  Timer timer(ctx(), ClockType::test, Scale::ns, [&] { ++fired; });
  const int64_t t0 = ctx().now(ClockType::test);
  timer.mod(t0 + 50);
  timer.mod(t0 + 200);
  EXPECT_EQ(timer.expire_time_ns(), t0 + 200);
  ctx().advance_test_clock(100);
  EXPECT_FALSE(ctx().poll(false)) << "the old, earlier deadline must be forgotten";
  EXPECT_EQ(fired, 0);
  ctx().advance_test_clock(99);
  EXPECT_FALSE(ctx().poll(false));
  ctx().advance_test_clock(1);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(fired, 1);
}

// DESIGN "Timer": `mod_anticipate` only ever moves a deadline earlier.
TEST_P(TimerTest, ModAnticipateOnlyMovesEarlier) {
  int fired = 0;
  Timer timer(ctx(), ClockType::test, Scale::ns, [&] { ++fired; });
  const int64_t t0 = ctx().now(ClockType::test);
  timer.mod_anticipate(t0 + 100);  // not armed: arms it
  EXPECT_EQ(timer.expire_time_ns(), t0 + 100);
  timer.mod_anticipate(t0 + 300);  // later: ignored
  EXPECT_EQ(timer.expire_time_ns(), t0 + 100);
  timer.mod_anticipate(t0 + 40);  // earlier: taken
  EXPECT_EQ(timer.expire_time_ns(), t0 + 40);
  ctx().advance_test_clock(40);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(fired, 1);
}

// DESIGN "Timer": "scaled in ns/µs/ms".
TEST_P(TimerTest, ScalesConvertToNanoseconds) {
  int fired = 0;
  Timer ms(ctx(), ClockType::test, Scale::ms, [&] { ++fired; });
  Timer us(ctx(), ClockType::test, Scale::us, [&] { ++fired; });
  const int64_t t0 = ctx().now(ClockType::test);
  ASSERT_EQ(t0 % 1000000, 0) << "the test clock starts on a whole millisecond";
  ms.mod(t0 / 1000000 + 3);
  us.mod(t0 / 1000 + 7);
  EXPECT_EQ(ms.expire_time_ns(), t0 + 3000000);
  EXPECT_EQ(us.expire_time_ns(), t0 + 7000);
  ctx().advance_test_clock(6999);
  EXPECT_FALSE(ctx().poll(false));
  ctx().advance_test_clock(1);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(fired, 1);
  ctx().advance_test_clock(3000000 - 7001);
  EXPECT_FALSE(ctx().poll(false));
  ctx().advance_test_clock(1);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(fired, 2);
}

// DESIGN "Timer": due timers run earliest deadline first.
TEST_P(TimerTest, DueTimersFireInDeadlineOrder) {
  std::vector<int> order;
  Timer a(ctx(), ClockType::test, Scale::ns, [&] { order.push_back(1); });
  Timer b(ctx(), ClockType::test, Scale::ns, [&] { order.push_back(2); });
  Timer c(ctx(), ClockType::test, Scale::ns, [&] { order.push_back(3); });
  const int64_t t0 = ctx().now(ClockType::test);
  a.mod(t0 + 30);
  b.mod(t0 + 10);
  c.mod(t0 + 20);
  ctx().advance_test_clock(100);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(order, (std::vector<int>{2, 3, 1}));
}

// DESIGN "Timer": "Callbacks may re-arm or delete any timer" — here, their
// own: a periodic timer fires once per period.
TEST_P(TimerTest, CallbackRearmsItself) {
  int fired = 0;
  Timer timer;
  timer = Timer(ctx(), ClockType::test, Scale::ns, [&] {
    ++fired;
    if (fired < 3) timer.mod(ctx().now(ClockType::test) + 100);
  });
  timer.mod(ctx().now(ClockType::test) + 100);
  for (int period = 1; period <= 3; ++period) {
    ctx().advance_test_clock(99);
    EXPECT_FALSE(ctx().poll(false)) << "period " << period;
    ctx().advance_test_clock(1);
    EXPECT_TRUE(ctx().poll(false)) << "period " << period;
    EXPECT_EQ(fired, period);
  }
  EXPECT_FALSE(timer.pending());
  ctx().advance_test_clock(1000);
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(fired, 3);
}

// DESIGN "Timer": callbacks may re-arm their own timer; re-arming for a
// deadline that has already passed fires it in a later iteration, once per
// iteration, instead of trapping the loop in one pass.
TEST_P(TimerTest, CallbackRearmingForNowFiresOncePerIteration) {
  int fired = 0;
  Timer timer;
  timer = Timer(ctx(), ClockType::test, Scale::ns, [&] {
    ++fired;
    timer.mod(ctx().now(ClockType::test));
  });
  timer.mod(ctx().now(ClockType::test));
  for (int i = 1; i <= 3; ++i) {
    EXPECT_TRUE(ctx().poll(false));
    EXPECT_EQ(fired, i);
  }
  timer.del();
  EXPECT_FALSE(ctx().poll(false));
}

// DESIGN "Timer": "Callbacks may re-arm or delete any timer": a callback
// deletes another timer that is due in the same round; it must not fire.
TEST_P(TimerTest, CallbackDeletesAnotherTimerDueInTheSameRound) {
  int fired_a = 0;
  int fired_b = 0;
  Timer a;
  Timer b;
  a = Timer(ctx(), ClockType::test, Scale::ns, [&] {
    ++fired_a;
    b.del();
  });
  b = Timer(ctx(), ClockType::test, Scale::ns, [&] {
    ++fired_b;
    a.del();
  });
  const int64_t deadline = ctx().now(ClockType::test) + 10;
  a.mod(deadline);
  b.mod(deadline);
  ctx().advance_test_clock(10);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(fired_a + fired_b, 1) << "the second timer was deleted before its turn";
  EXPECT_FALSE(a.pending());
  EXPECT_FALSE(b.pending());
  ctx().advance_test_clock(1000);
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(fired_a + fired_b, 1);
}

// DESIGN "Timer": callbacks may delete any timer — the handle itself (reset),
// of another timer due the same round and of their own.
TEST_P(TimerTest, CallbackResetsAnotherTimerAndItself) {
  int fired = 0;
  auto token = std::make_shared<int>(1);
  Timer first;
  Timer second;
  first = Timer(ctx(), ClockType::test, Scale::ns, [&, token] {
    ++fired;
    second.reset();
    first.reset();
    EXPECT_EQ(*token, 1) << "the callback must outlive its own reset()";
  });
  second = Timer(ctx(), ClockType::test, Scale::ns, [&] { ++fired; });
  const int64_t t0 = ctx().now(ClockType::test);
  first.mod(t0 + 5);
  second.mod(t0 + 6);
  ctx().advance_test_clock(10);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(first);
  EXPECT_FALSE(second);
  EXPECT_EQ(token.use_count(), 1) << "the reset timer's callback must be freed";
}

// DESIGN "Timer": a callback may arm another timer; one already due fires in
// a later iteration, never lost.
TEST_P(TimerTest, CallbackArmsAnotherTimer) {
  int fired_b = 0;
  Timer b(ctx(), ClockType::test, Scale::ns, [&] { ++fired_b; });
  Timer a(ctx(), ClockType::test, Scale::ns, [&] { b.mod(ctx().now(ClockType::test) + 50); });
  a.mod(ctx().now(ClockType::test) + 10);
  ctx().advance_test_clock(10);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_TRUE(b.pending());
  ctx().advance_test_clock(49);
  EXPECT_FALSE(ctx().poll(false));
  ctx().advance_test_clock(1);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(fired_b, 1);
}

// Header (ClockType::test): "A blocking poll() never waits for a test-clock
// deadline: moving the clock wakes the loop."
TEST_P(TimerTest, AdvancingTheTestClockEndsABlockingPoll) {
  Watchdog watchdog(ctx());
  int fired = 0;
  Timer timer(ctx(), ClockType::test, Scale::ns, [&] { ++fired; });
  timer.mod(ctx().now(ClockType::test) + 100);
  ctx().advance_test_clock(100);
  EXPECT_TRUE(ctx().poll(true));
  EXPECT_FALSE(watchdog.fired());
  EXPECT_EQ(fired, 1);
}

// Header (ClockType::test, advance_test_clock): moving the clock from another
// thread wakes a loop that blocks with only a test-clock timer armed.
TEST_P(TimerTest, AdvancingTheTestClockFromAnotherThreadWakesTheLoop) {
  Watchdog watchdog(ctx());
  int fired = 0;
  Timer timer(ctx(), ClockType::test, Scale::ns, [&] { ++fired; });
  timer.mod(ctx().now(ClockType::test) + 100);
  const uint64_t waits_before = ctx().stats().blocking_waits;
  std::thread mover([&] {
    if (WaitUntilBlocked(ctx(), waits_before)) ctx().advance_test_clock(100);
  });
  int polls = 0;
  while (fired == 0 && !watchdog.fired()) {
    ctx().poll(true);
    ++polls;
  }
  mover.join();
  ASSERT_FALSE(watchdog.fired()) << "advance_test_clock() did not wake poll(true)";
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(polls, 1);
}

// DESIGN "The native iteration" step 2: the timeout is "the nearest timer
// deadline" — a real-clock timer ends a blocking poll(true), and DESIGN
// "Timer": never before its deadline.
TEST_P(TimerTest, RealClockTimerWakesABlockingPollNotEarly) {
  Watchdog watchdog(ctx());
  constexpr int64_t kDelayNs = 20 * 1000 * 1000;
  int fired = 0;
  int64_t fired_at = 0;
  Timer timer(ctx(), ClockType::realtime, Scale::ns, [&] {
    ++fired;
    fired_at = ctx().now(ClockType::realtime);
  });
  const int64_t deadline = ctx().now(ClockType::realtime) + kDelayNs;
  timer.mod(deadline);
  int polls = 0;
  bool progress = false;
  while (fired == 0 && !watchdog.fired()) {
    progress = ctx().poll(true);
    ++polls;
  }
  ASSERT_FALSE(watchdog.fired()) << "the timer never ended the blocking wait";
  EXPECT_EQ(fired, 1);
  EXPECT_TRUE(progress);
  EXPECT_EQ(polls, 1) << "poll(true) returned before the deadline without progress";
  EXPECT_GE(fired_at, deadline) << "fired " << (deadline - fired_at) << " ns early";
  // Generous: only catches a wait that went far past the deadline.
  EXPECT_LT(fired_at - deadline, int64_t{2} * kNsPerSecond);
}

// DESIGN "Timer": the same for a millisecond-scale timer, the common case
// that a monitor with millisecond waits would round the wrong way.
TEST_P(TimerTest, MillisecondTimerIsNotEarly) {
  Watchdog watchdog(ctx());
  int64_t fired_at = 0;
  Timer timer(ctx(), ClockType::realtime, Scale::ms,
              [&] { fired_at = ctx().now(ClockType::realtime); });
  // The wait to a whole-millisecond deadline is a fraction of a millisecond
  // longer than a whole number of them: a timeout rounded down would end early.
  const int64_t deadline_ms = ctx().now(ClockType::realtime) / 1000000 + 5;
  timer.mod(deadline_ms);
  int polls = 0;
  while (fired_at == 0 && !watchdog.fired()) {
    ctx().poll(true);
    ++polls;
  }
  ASSERT_FALSE(watchdog.fired());
  EXPECT_EQ(polls, 1);
  EXPECT_GE(fired_at, deadline_ms * 1000000);
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(TimerTest);

}  // namespace
}  // namespace aioloop::testing
