// SPDX-License-Identifier: MIT
// The I/O thread runner (issue 4, point 4; DESIGN.md "Threads").
#include <aioloop/aioloop.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cstring>
#include <thread>

namespace aioloop::testing {
namespace {

// "owns a thread (named) and a context, runs poll(true) until stopped".
TEST(IoThreadTest, RunsFunctionsInItsOwnNamedThread) {
  IoThread io({.name = "aioloop-test"});
  std::thread::id where;
  char name[16] = {};
  ASSERT_TRUE(io.run_and_wait([&] {
    where = std::this_thread::get_id();
    pthread_getname_np(pthread_self(), name, sizeof name);
  }));
  EXPECT_EQ(where, io.thread_id());
  EXPECT_NE(where, std::this_thread::get_id());
  EXPECT_STREQ(name, "aioloop-test");
  EXPECT_FALSE(io.context().in_home_thread());
}

// "defaults to 32 us maximum busy polling": under cross-thread traffic the
// loop busy polls and its budget stays within 32 us.
TEST(IoThreadTest, BusyPollsByDefaultWithin32Microseconds) {
  IoThread io;
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(io.run_and_wait([] {}));
  const Stats s = io.context().stats();
  EXPECT_GT(s.busy_poll_attempts, 0u);
  EXPECT_LE(s.poll_ns, 32768);
}

// "run this in the thread" (one-shot BH): runs once each, in order.
TEST(IoThreadTest, RunQueuesOneShotsInOrder) {
  IoThread io;
  std::atomic<int> next{0};
  std::atomic<bool> in_order{true};
  for (int i = 0; i < 1000; ++i) {
    io.run([&, i] {
      if (next.fetch_add(1) != i) in_order = false;
    });
  }
  ASSERT_TRUE(io.run_and_wait([] {}));
  EXPECT_EQ(next.load(), 1000);
  EXPECT_TRUE(in_order.load());
}

// From the I/O thread itself, run_and_wait calls directly instead of
// deadlocking on itself.
TEST(IoThreadTest, RunAndWaitFromTheThreadItselfRunsInline) {
  IoThread io;
  int depth = 0;
  ASSERT_TRUE(io.run_and_wait([&] { EXPECT_TRUE(io.run_and_wait([&] { ++depth; })); }));
  EXPECT_EQ(depth, 1);
}

// "stops and joins cleanly with BHs still scheduled (they run or are
// released, never leaked, never run after the context is gone)".
TEST(IoThreadTest, StopWithWorkScheduledRunsOrReleasesIt) {
  struct Counted {
    explicit Counted(std::atomic<int>* live_) : live(live_) { ++*live; }
    Counted(const Counted& o) : live(o.live) { ++*live; }
    ~Counted() { --*live; }
    std::atomic<int>* live;
  };
  std::atomic<int> live{0};
  std::atomic<int> ran{0};
  {
    IoThread io;
    // Keep the thread busy so work piles up behind this.
    std::atomic<bool> release{false};
    io.run([&] {
      while (!release.load()) std::this_thread::yield();
    });
    for (int i = 0; i < 100; ++i) io.run([&, c = Counted(&live)] { ++ran; });
    // A self-rescheduling one-shot chain: stop must not spin on it.
    std::function<void()> chain;
    chain = [&] { io.run(chain); };
    io.run(chain);
    std::thread releaser([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      release = true;
    });
    io.stop();
    releaser.join();
    EXPECT_FALSE(io.running());
    // Work queued after stop is released, not run.
    io.run([&, c = Counted(&live)] { ++ran; });
    EXPECT_FALSE(io.run_and_wait([&] { ++ran; }));
  }
  EXPECT_EQ(ran.load(), 100);
  EXPECT_EQ(live.load(), 0) << "every queued closure was destroyed";
}

TEST(IoThreadTest, StopIsIdempotentAndDestructorJoins) {
  IoThread io;
  io.stop();
  io.stop();
  EXPECT_FALSE(io.running());
}

// Scaling out: one context per core, each in its own I/O thread, bouncing
// work between them.
TEST(IoThreadTest, TwoThreadsBounceWork) {
  IoThread a, b;
  std::atomic<int> hops{0};
  std::atomic<bool> finished{false};
  std::function<void(int)> hop = [&](int left) {
    ++hops;
    if (left == 0) {
      finished = true;
      return;
    }
    IoThread& next = (left % 2) ? a : b;
    next.run([&, left] { hop(left - 1); });
  };
  a.run([&] { hop(10000); });
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!finished.load() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(hops.load(), 10001);
}

}  // namespace
}  // namespace aioloop::testing
