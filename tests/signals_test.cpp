// SPDX-License-Identifier: MIT
// Signals during every kind of wait (issue 7, point 5). A handler installed
// without SA_RESTART makes each interrupted system call fail with EINTR; the
// loop must retry it with what remains of its timeout, so a signal is never
// a spurious wake-up (DESIGN "Fd monitors": "`EINTR` is retried, not
// returned as a spurious wake-up"; fd_monitor.h: "Signals do not end the
// wait early").
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "test_support.h"

namespace aioloop::testing {
namespace {

using std::chrono::milliseconds;

std::atomic<int> g_signals_caught{0};

void CountSignal(int) {
  g_signals_caught.fetch_add(1, std::memory_order_relaxed);
}

// Installed once and never removed: a signal still in flight when a test
// ends must not meet SIGUSR1's default action (termination).
void InstallInterruptingHandler() {
  static const bool installed = [] {
    struct sigaction action {};
    action.sa_handler = CountSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: system calls fail with EINTR
    return ::sigaction(SIGUSR1, &action, nullptr) == 0;
  }();
  ASSERT_TRUE(installed);
}

// Sends SIGUSR1 to one thread every 200 us until destroyed. Signals sent
// while one is pending merge into one (and ThreadSanitizer defers handlers),
// so tests only check that some were caught.
class SignalStorm {
 public:
  explicit SignalStorm(pthread_t target)
      : target_(target), caught_before_(g_signals_caught.load()), thread_([this] { Run(); }) {}
  ~SignalStorm() { Stop(); }
  SignalStorm(const SignalStorm&) = delete;
  SignalStorm& operator=(const SignalStorm&) = delete;

  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  int caught() const { return g_signals_caught.load() - caught_before_; }

 private:
  void Run() {
    while (!stop_.load()) {
      ::pthread_kill(target_, SIGUSR1);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  pthread_t target_;
  int caught_before_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class SignalsTest : public ContextTest {
 protected:
  void SetUp() override {
    ContextTest::SetUp();
    InstallInterruptingHandler();
  }
};

// A timed wait (the nearest timer 50 ms away) interrupted every 200 us
// still ends at the timer: one poll() call, not one per signal.
TEST_P(SignalsTest, TimedWaitLastsUntilTheTimerThroughSignals) {
  Watchdog watchdog(ctx());
  int fired = 0;
  Timer timer(ctx(), ClockType::realtime, Scale::ms, [&] { ++fired; });
  const auto start = std::chrono::steady_clock::now();
  timer.mod(ctx().now(ClockType::realtime) / 1000000 + 50);
  SignalStorm storm(::pthread_self());
  int polls = 0;
  while (fired == 0 && !watchdog.fired()) {
    ctx().poll(true);
    ++polls;
  }
  storm.Stop();
  ASSERT_FALSE(watchdog.fired());
  EXPECT_EQ(polls, 1) << "a signal ended the wait early";
  EXPECT_GE(ElapsedMs(start), 49);
  EXPECT_GT(storm.caught(), 0) << "the storm did not reach the waiting thread";
}

// A wait without a timeout ends only for real work: a bottom half scheduled
// from another thread after 30 ms of signals.
TEST_P(SignalsTest, UnboundedWaitEndsOnlyForWorkThroughSignals) {
  Watchdog watchdog(ctx());
  int runs = 0;
  BottomHalf bh(ctx(), [&] { ++runs; });
  SignalStorm storm(::pthread_self());
  std::thread scheduler([&] {
    std::this_thread::sleep_for(milliseconds(30));
    bh.schedule();
  });
  const bool progress = ctx().poll(true);
  scheduler.join();
  storm.Stop();
  ASSERT_FALSE(watchdog.fired());
  EXPECT_TRUE(progress) << "a signal ended the wait before the bottom half was scheduled";
  EXPECT_EQ(runs, 1);
  EXPECT_GT(storm.caught(), 0);
}

// The same for an EventNotifier set from another thread.
TEST_P(SignalsTest, EventNotifierWaitEndsOnlyWhenSetThroughSignals) {
  Watchdog watchdog(ctx());
  EventNotifier notifier;
  int reads = 0;
  ASSERT_FALSE(ctx().set_event_notifier(notifier, [&] { ++reads; }));
  SignalStorm storm(::pthread_self());
  std::thread setter([&] {
    std::this_thread::sleep_for(milliseconds(30));
    (void)notifier.set();
  });
  const bool progress = ctx().poll(true);
  setter.join();
  storm.Stop();
  ASSERT_FALSE(watchdog.fired());
  EXPECT_TRUE(progress) << "a signal ended the wait before the notifier was set";
  EXPECT_EQ(reads, 1);
  EXPECT_GT(storm.caught(), 0);
  ctx().remove_event_notifier(notifier);
}

// Busy polling and the blocking wait after it, under signals: no poll()
// call returns without having run a callback (a signal is not an event),
// and busy polling did run (its budget grows because each event comes
// within max_ns).
TEST_P(SignalsTest, BusyPollingWaitEndsOnlyForWorkThroughSignals) {
  Watchdog watchdog(ctx());
  EventNotifier notifier;
  std::atomic<bool> posted{false};
  int handled = 0;
  // The busy-poll check sees `posted`; whichever callback takes it counts
  // the event, so an eventfd set after a busy-poll hit is not counted twice.
  auto take = [&] {
    notifier.test_and_clear();
    if (posted.exchange(false)) ++handled;
  };
  ASSERT_FALSE(ctx().set_event_notifier(
      notifier, take, [&] { return posted.load(); }, take));
  ctx().set_poll_params(5 * 1000 * 1000, 0, 0);
  SignalStorm storm(::pthread_self());
  constexpr int kRounds = 30;
  int empty_polls = 0;
  for (int round = 0; round < kRounds && !watchdog.fired(); ++round) {
    std::thread poster([&] {
      std::this_thread::sleep_for(milliseconds(2));
      posted.store(true);
      (void)notifier.set();
    });
    while (handled <= round && !watchdog.fired()) {
      if (!ctx().poll(true)) ++empty_polls;
    }
    poster.join();
  }
  storm.Stop();
  ASSERT_FALSE(watchdog.fired());
  EXPECT_EQ(empty_polls, 0) << "signals ended waits without work";
  EXPECT_EQ(handled, kRounds);
  EXPECT_GT(ctx().stats().busy_poll_attempts, 0u);
  EXPECT_GT(storm.caught(), 0);
  ctx().remove_event_notifier(notifier);
}

// IoThread::run_and_wait() blocks its caller on a future: signals to the
// caller must not end that wait early, and signals to the I/O thread must
// not spin its loop (each would otherwise cost an iteration).
TEST(IoThreadSignalsTest, RunAndWaitAndTheIoThreadLoopSurviveSignals) {
  InstallInterruptingHandler();
  IoThreadOptions options;
  options.poll_max_ns = 0;  // block at once: the signals hit the wait itself
  IoThread io(options);
  pthread_t io_thread{};
  ASSERT_TRUE(io.run_and_wait([&] { io_thread = ::pthread_self(); }));

  {
    SignalStorm at_caller(::pthread_self());
    bool finished = false;
    EXPECT_TRUE(io.run_and_wait([&] {
      std::this_thread::sleep_for(milliseconds(30));
      finished = true;
    }));
    EXPECT_TRUE(finished) << "run_and_wait() returned before the function did";
    at_caller.Stop();
    EXPECT_GT(at_caller.caught(), 0);
  }

  const uint64_t iterations_before = io.context().stats().iterations;
  SignalStorm at_io_thread(io_thread);
  std::this_thread::sleep_for(milliseconds(50));
  at_io_thread.Stop();
  int runs = 0;
  EXPECT_TRUE(io.run_and_wait([&] { ++runs; }));
  EXPECT_EQ(runs, 1);
  EXPECT_GT(at_io_thread.caught(), 0);
  // The run_and_wait() above costs an iteration or two; signals cost none.
  EXPECT_LE(io.context().stats().iterations - iterations_before, 4u)
      << "signals woke the I/O thread's loop";
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(SignalsTest);

}  // namespace
}  // namespace aioloop::testing
