// SPDX-License-Identifier: MIT
// Multi-thread stress (issue 4 point 5, issue 7 point 2): bottom halves
// hopping between I/O threads, schedule/cancel races, notify() storms during
// blocking and busy-polling waits, and handlers churning while other threads
// keep waking the loop. Every test counts each unit of work, so that nothing
// may be lost and nothing may run twice, and runs under a watchdog or a
// deadline, so that a lost wake-up fails instead of hanging.
//
// Bounded in time and count: AIOLOOP_STRESS_HOPS sets the size (default
// 100000, a few seconds for the whole binary: the normal suite's quick
// setting); the 'stress' suite runs the same binary with a larger value.
#include <aioloop/aioloop.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "test_support.h"

namespace aioloop::testing {
namespace {

using std::chrono::steady_clock;

constexpr int64_t kQuickHops = 100000;

int64_t HopsFromEnvironment() {
  const char* value = std::getenv("AIOLOOP_STRESS_HOPS");
  const int64_t hops = value ? std::atoll(value) : kQuickHops;
  return hops > 0 ? hops : kQuickHops;
}

// A count for a test whose quick setting is `quick`, scaled like the hops.
int64_t Scaled(int64_t quick) {
  return std::max<int64_t>(1, quick * HopsFromEnvironment() / kQuickHops);
}

// Generous: the sizes above take a few seconds at most, even under TSan.
steady_clock::time_point GiveUpTime() {
  return steady_clock::now() + std::chrono::seconds(60 + Scaled(1) * 2);
}

IoThreadOptions WithBusyPolling(bool busy_poll) {
  IoThreadOptions options;
  options.poll_max_ns = busy_poll ? 32768 : 0;
  return options;
}

std::string BusyPollName(const ::testing::TestParamInfo<bool>& info) {
  return info.param ? "busypoll" : "block";
}

// --- Two I/O threads bouncing bottom halves under a notify() storm

class BounceStress : public ::testing::TestWithParam<bool> {};

// Tokens travel A -> B -> A ... each hop is one bottom half scheduled from
// the other thread. A BottomHalf is idempotent, and a token is only ever in
// one place, so every schedule must produce exactly one run.
TEST_P(BounceStress, NoHopLostNoneRunTwice) {
  const bool busy_poll = GetParam();
  constexpr int kTokens = 64;
  const int64_t hops_per_token = HopsFromEnvironment() / kTokens;

  IoThread a(WithBusyPolling(busy_poll)), b(WithBusyPolling(busy_poll));

  struct Token {
    BottomHalf on_a, on_b;
    std::atomic<int64_t> hops{0};
    std::atomic<int> in_flight{0};  // must stay 0 or 1
  };
  std::vector<std::unique_ptr<Token>> tokens;
  std::atomic<int> finished{0};
  std::atomic<bool> doubled{false};
  for (int i = 0; i < kTokens; ++i) {
    auto token = std::make_unique<Token>();
    Token* t = token.get();
    auto hop = [t, hops_per_token, &finished, &doubled](BottomHalf* next) {
      if (t->in_flight.fetch_sub(1) != 1) doubled = true;
      if (t->hops.fetch_add(1) + 1 == hops_per_token) {
        finished.fetch_add(1);
        return;
      }
      t->in_flight.fetch_add(1);
      next->schedule();
    };
    t->on_a = BottomHalf(a.context(), [t, hop] { hop(&t->on_b); });
    t->on_b = BottomHalf(b.context(), [t, hop] { hop(&t->on_a); });
    tokens.push_back(std::move(token));
  }

  std::atomic<bool> stop_storm{false};
  std::thread storm([&] {
    while (!stop_storm.load(std::memory_order_relaxed)) {
      a.context().notify();
      b.context().notify();
      std::this_thread::yield();
    }
  });

  const auto start = steady_clock::now();
  for (auto& t : tokens) {
    t->in_flight = 1;
    t->on_a.schedule();
  }
  const auto give_up = GiveUpTime();
  while (finished.load() < kTokens && steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double seconds = std::chrono::duration<double>(steady_clock::now() - start).count();
  stop_storm = true;
  storm.join();
  a.stop();
  b.stop();

  EXPECT_EQ(finished.load(), kTokens) << "a hop was lost (wake-up missed?)";
  EXPECT_FALSE(doubled.load()) << "a bottom half ran twice for one schedule";
  int64_t total = 0;
  for (auto& t : tokens) {
    EXPECT_EQ(t->hops.load(), hops_per_token);
    total += t->hops.load();
  }
  EXPECT_EQ(total, hops_per_token * kTokens);
  const Stats sa = a.context().stats(), sb = b.context().stats();
  std::fprintf(stderr,
               "busy_poll=%d hops=%lld in %.2f s; eventfd writes a=%llu b=%llu, busy hits "
               "a=%llu b=%llu\n",
               busy_poll, static_cast<long long>(total), seconds,
               static_cast<unsigned long long>(sa.eventfd_writes),
               static_cast<unsigned long long>(sb.eventfd_writes),
               static_cast<unsigned long long>(sa.busy_poll_hits),
               static_cast<unsigned long long>(sb.busy_poll_hits));
  tokens.clear();  // after stop(): this thread is the contexts' home now
}

INSTANTIATE_TEST_SUITE_P(BusyPolling, BounceStress, ::testing::Values(false, true), BusyPollName);

// --- Five I/O threads, one-shot hops between random contexts

// Issue 7: "five I/O threads hopping one-shot BHs between random contexts
// so each hop is counted exactly once". Each token carries the index of its
// next hop: a hop that ran twice, was lost, or ran out of order shows as an
// index mismatch, and every hop must run in the home thread of the context
// it was sent to. Three threads busy poll, two block.
TEST(HopStress, OneShotsHopBetweenFiveThreadsExactlyOnce) {
  constexpr int kThreads = 5;
  constexpr int kTokens = 40;
  const int64_t hops_per_token = std::max<int64_t>(1, HopsFromEnvironment() / kTokens);

  std::vector<std::unique_ptr<IoThread>> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.push_back(std::make_unique<IoThread>(WithBusyPolling(i % 2 == 0)));
  }

  struct Token {
    int64_t next_hop = 0;  // written only by the hop in flight
    std::minstd_rand rng;
  };
  struct Shared {
    std::vector<std::unique_ptr<IoThread>>* threads;
    int64_t hops_per_token;
    std::atomic<int64_t> hops{0};
    std::atomic<int64_t> mismatches{0};
    std::atomic<int64_t> wrong_thread{0};
    std::atomic<int> finished{0};
    std::array<std::atomic<int64_t>, kThreads> per_thread{};
  } shared{&threads, hops_per_token};

  // One hop: runs in thread `at`, expecting to be hop number `index`.
  struct Hop {
    static void Send(Shared* s, Token* t, int64_t index) {
      const int at = static_cast<int>(t->rng() % kThreads);
      (*s->threads)[at]->run([s, t, index, at] { Run(s, t, index, at); });
    }
    static void Run(Shared* s, Token* t, int64_t index, int at) {
      if (!(*s->threads)[at]->context().in_home_thread()) s->wrong_thread.fetch_add(1);
      if (t->next_hop != index) s->mismatches.fetch_add(1);
      t->next_hop = index + 1;
      s->hops.fetch_add(1, std::memory_order_relaxed);
      s->per_thread[at].fetch_add(1, std::memory_order_relaxed);
      if (index + 1 == s->hops_per_token) {
        s->finished.fetch_add(1);
        return;
      }
      Send(s, t, index + 1);
    }
  };

  std::vector<std::unique_ptr<Token>> tokens;
  for (int i = 0; i < kTokens; ++i) {
    tokens.push_back(std::make_unique<Token>());
    tokens.back()->rng.seed(static_cast<unsigned>(i + 1));
  }
  const auto start = steady_clock::now();
  for (auto& t : tokens) Hop::Send(&shared, t.get(), 0);
  const auto give_up = GiveUpTime();
  while (shared.finished.load() < kTokens && steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double seconds = std::chrono::duration<double>(steady_clock::now() - start).count();
  for (auto& thread : threads) thread->stop();

  EXPECT_EQ(shared.finished.load(), kTokens) << "a hop was lost (wake-up missed?)";
  EXPECT_EQ(shared.hops.load(), hops_per_token * kTokens);
  EXPECT_EQ(shared.mismatches.load(), 0) << "a hop ran twice or out of order";
  EXPECT_EQ(shared.wrong_thread.load(), 0) << "a hop ran outside its context's home thread";
  int64_t sum = 0;
  for (auto& n : shared.per_thread) {
    EXPECT_GT(n.load(), 0) << "a thread was never chosen";
    sum += n.load();
  }
  EXPECT_EQ(sum, shared.hops.load());
  std::fprintf(stderr, "five threads: %lld one-shot hops in %.2f s\n",
               static_cast<long long>(shared.hops.load()), seconds);
}

// --- Cross-thread schedule and cancel races

class ScheduleCancelStress : public ::testing::TestWithParam<bool> {};

// Header (BottomHalf): schedule() makes the callback run "once per
// schedule()", cancel() "withdraws a schedule that has not run yet", and
// bottom halves run in scheduling order. Another thread schedules, and half
// of the time cancels after a random delay, so the cancel lands before,
// during or after the run. A one-shot queued behind it is the barrier:
// by the time it has run, an uncancelled schedule has run exactly once, a
// cancelled one at most once, and nothing of the round may run later.
TEST_P(ScheduleCancelStress, UncancelledRunsOnceCancelledAtMostOnce) {
  IoThread io(WithBusyPolling(GetParam()));
  // run_and_wait() below would wait for ever after a lost wake-up; the
  // watchdog's notify() ends that, and the test fails.
  Watchdog watchdog(io.context(), std::chrono::seconds(60 + Scaled(1)));
  const int64_t rounds = Scaled(5000);
  std::atomic<int64_t> round{0};
  std::vector<std::atomic<int>> runs(static_cast<size_t>(rounds));
  BottomHalf bh(io.context(), [&] { runs[static_cast<size_t>(round.load())].fetch_add(1); });

  std::minstd_rand rng(7);
  std::vector<bool> cancelled(static_cast<size_t>(rounds));
  int64_t cancelled_but_ran = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    round.store(r);
    const bool cancel = rng() % 2 == 0;
    cancelled[static_cast<size_t>(r)] = cancel;
    bh.schedule();
    if (cancel) {
      for (unsigned spin = rng() % 2000; spin > 0; --spin)
        std::atomic_signal_fence(std::memory_order_seq_cst);
      bh.cancel();
    }
    ASSERT_TRUE(io.run_and_wait([] {})) << "the I/O thread stopped";
    ASSERT_FALSE(watchdog.fired()) << "round " << r << ": a wake-up was lost";
    const int ran = runs[static_cast<size_t>(r)].load();
    if (!cancel) {
      ASSERT_EQ(ran, 1) << "round " << r << ": an uncancelled schedule ran " << ran << " times";
    } else {
      ASSERT_LE(ran, 1) << "round " << r << ": a cancelled schedule ran twice";
      cancelled_but_ran += ran;
    }
  }

  // Whether a racing cancel() comes in time depends on the scheduler (with
  // busy polling the loop often runs the schedule first), so that cancel()
  // withdraws at all is checked without a race: the loop is held inside
  // another callback while a schedule is made and cancelled.
  std::atomic<int> held_runs{0};
  BottomHalf held(io.context(), [&] { held_runs.fetch_add(1); });
  for (int64_t i = 0; i < Scaled(100); ++i) {
    std::atomic<bool> inside{false}, release{false};
    io.run([&] {
      inside.store(true);
      while (!release.load()) std::this_thread::yield();
    });
    while (!inside.load()) std::this_thread::yield();
    held.schedule();
    held.cancel();
    release.store(true);
    ASSERT_TRUE(io.run_and_wait([] {})) << "the I/O thread stopped";
  }
  EXPECT_EQ(held_runs.load(), 0) << "cancel() did not withdraw a schedule the loop had not run";
  io.stop();
  // Nothing of an earlier round ran after its barrier (it would have been
  // counted in a later round, making that one 2, or a cancelled one 1 too
  // often; the first already fails above) and nothing runs after the last.
  int64_t total = 0;
  for (auto& n : runs) total += n.load();
  int64_t uncancelled = std::count(cancelled.begin(), cancelled.end(), false);
  EXPECT_EQ(total, uncancelled + cancelled_but_ran);
  std::fprintf(stderr, "%lld rounds, %lld cancelled, %lld of those ran anyway (cancel too late)\n",
               static_cast<long long>(rounds), static_cast<long long>(rounds - uncancelled),
               static_cast<long long>(cancelled_but_ran));
}

INSTANTIATE_TEST_SUITE_P(BusyPolling, ScheduleCancelStress, ::testing::Values(false, true),
                         BusyPollName);

// Several threads schedule the same bottom half at once, each after adding
// to a counter of requests; the callback takes all requests present. A
// schedule is idempotent until the bottom half runs, so runs may be fewer
// than schedules, but every request must be taken: the last schedule after
// a request always leads to a run that sees it.
TEST_P(ScheduleCancelStress, ConcurrentSchedulesLoseNoRequest) {
  IoThread io(WithBusyPolling(GetParam()));
  constexpr int kProducers = 4;
  const int64_t per_producer = Scaled(20000);
  std::atomic<int64_t> requested{0};
  std::atomic<int64_t> taken{0};
  std::atomic<int64_t> runs{0};
  BottomHalf bh(io.context(), [&] {
    runs.fetch_add(1, std::memory_order_relaxed);
    taken.fetch_add(requested.exchange(0));
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&] {
      for (int64_t i = 0; i < per_producer; ++i) {
        requested.fetch_add(1);
        bh.schedule();
      }
    });
  }
  for (auto& t : producers) t.join();
  const int64_t total = per_producer * kProducers;
  const auto give_up = GiveUpTime();
  while (taken.load() < total && steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  io.stop();
  EXPECT_EQ(taken.load(), total) << "a request was never seen: a schedule was lost";
  EXPECT_EQ(requested.load(), 0);
  EXPECT_LE(runs.load(), total);
  std::fprintf(stderr, "%lld schedules from %d threads coalesced into %lld runs\n",
               static_cast<long long>(total), kProducers, static_cast<long long>(runs.load()));
}

// --- notify() storms during blocking and busy-polling waits

using NotifyStormStress = ContextTest;

// Issue 7: "notify() storms during blocking and busy-polling waits". Two
// threads notify in bursts (so the loop also gets to block between them)
// while a third plays ping-pong with the loop: it schedules a bottom half
// only once the previous one ran, so each schedule must give exactly one
// run. A storm must neither hide a schedule (lost wake-up: the watchdog
// fires) nor leave the loop spinning after it ends.
TEST_P(NotifyStormStress, PingPongSurvivesNotifyStorms) {
  for (const bool busy_poll : {false, true}) {
    SCOPED_TRACE(busy_poll ? "busy polling" : "blocking");
    ctx().set_poll_params(busy_poll ? 65536 : 0, 0, 0);
    Watchdog watchdog(ctx(), std::chrono::seconds(30 + Scaled(3)));
    const int64_t pings = Scaled(3000);
    std::atomic<int64_t> pongs{0};
    std::atomic<bool> doubled{false};
    std::atomic<bool> in_flight{false};
    BottomHalf bh(ctx(), [&] {
      if (!in_flight.exchange(false)) doubled = true;
      pongs.fetch_add(1);
    });
    std::atomic<bool> stop{false};
    auto storm = [&](unsigned seed) {
      std::minstd_rand rng(seed);
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 64; ++i) ctx().notify();
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
      }
    };
    std::thread storm1(storm, 1), storm2(storm, 2);
    // The storm also hides lost wake-ups (its next notify() ends the wait),
    // so the ping-pong goes on without it for a while: a storm that left
    // the protocol in a bad state shows there.
    const int64_t pings_in_storm = pings - pings / 4;
    std::thread pinger([&] {
      for (int64_t i = 0; i < pings && !watchdog.fired(); ++i) {
        if (i == pings_in_storm) {
          stop = true;
          storm1.join();
          storm2.join();
        }
        while (in_flight.load() && !watchdog.fired()) std::this_thread::yield();
        in_flight.store(true);
        bh.schedule();
      }
    });
    while (pongs.load() < pings && !watchdog.fired()) ctx().poll(true);
    pinger.join();
    if (storm1.joinable()) {
      stop = true;
      storm1.join();
      storm2.join();
    }
    ASSERT_FALSE(watchdog.fired()) << "a schedule was lost";
    EXPECT_EQ(pongs.load(), pings);
    EXPECT_FALSE(doubled.load()) << "a bottom half ran twice for one schedule";

    // After the storm: at most one iteration accepts a late notification,
    // then the loop blocks until the timer. The late one may be the
    // eventfd write of the last notify(), landing after its flag was
    // already accepted; poll(false) does not see it when every handler was
    // polled instead of waiting (no system call), so the first blocking
    // poll may take it: one early return at most, never a spinning loop.
    ctx().poll(false);
    EXPECT_LE(BlockingPollsUntilTimer(ctx(), watchdog), 2)
        << "the storm left the loop waking up without cause";
  }
}

// --- Handlers added and removed while another thread keeps waking the loop

using HandlerChurnStress = ContextTest;

// Issue 7: "handlers added and removed while another thread keeps waking
// the loop". A writer thread streams numbered bytes into eight pipes; a
// second thread keeps scheduling a bottom half that removes, replaces or
// re-adds a random pipe's handler, and notifies in between; the handlers
// themselves churn other pipes' handlers too. Every byte must be read once
// and in order (handlers are level-triggered: a pipe without a handler
// keeps its bytes), and no callback of a removed or replaced handler may
// run.
TEST_P(HandlerChurnStress, EveryByteReadOnceAcrossRemovalsAndReplacements) {
  constexpr int kPipes = 8;
  Watchdog watchdog(ctx(), std::chrono::seconds(30 + Scaled(1)));
  const int64_t bytes_per_pipe = Scaled(6000);
  std::array<Pipe, kPipes> pipes;
  std::array<uint64_t, kPipes> generation{};  // of the registered handler; 0: none
  std::array<int64_t, kPipes> received{};
  int64_t stale_calls = 0, out_of_order = 0;
  uint64_t next_generation = 1;
  std::minstd_rand rng(3);

  std::function<void(int)> churn;
  auto install = [&](int i) {
    const uint64_t g = next_generation++;
    generation[i] = g;
    FdHandler handler;
    handler.read = [&, i, g] {
      if (generation[i] != g) ++stale_calls;
      unsigned char buffer[64];
      ssize_t n = ::read(pipes[i].read_fd, buffer, sizeof buffer);
      for (ssize_t k = 0; k < n; ++k) {
        if (buffer[k] != static_cast<unsigned char>(received[i] & 0xff)) ++out_of_order;
        ++received[i];
      }
      if (rng() % 8 == 0) churn(static_cast<int>(rng() % kPipes));
    };
    ASSERT_FALSE(ctx().set_fd_handler(pipes[i].read_fd, std::move(handler)));
  };
  churn = [&](int i) {
    if (generation[i] != 0 && rng() % 2 == 0) {
      ctx().remove_fd_handler(pipes[i].read_fd);
      generation[i] = 0;
    } else {
      install(i);  // adds, or replaces the registered one
    }
  };
  for (int i = 0; i < kPipes; ++i) install(i);
  BottomHalf churner(ctx(), [&] { churn(static_cast<int>(rng() % kPipes)); });

  std::atomic<bool> writing_done{false};
  std::thread writer([&] {
    std::array<int64_t, kPipes> sent{};
    int64_t remaining = bytes_per_pipe * kPipes;
    while (remaining > 0 && !watchdog.fired()) {
      bool wrote = false;
      for (int i = 0; i < kPipes; ++i) {
        if (sent[i] == bytes_per_pipe) continue;
        const auto byte = static_cast<unsigned char>(sent[i] & 0xff);
        if (::write(pipes[i].write_fd, &byte, 1) == 1) {
          ++sent[i];
          --remaining;
          wrote = true;
        }
      }
      if (!wrote) std::this_thread::yield();  // every pipe full
    }
    writing_done = true;
    ctx().notify();  // the loop may be blocked with every unread pipe unwatched
  });
  std::thread waker([&] {
    while (!writing_done.load() && !watchdog.fired()) {
      churner.schedule();
      ctx().notify();
      std::this_thread::yield();
    }
  });

  auto total = [&] {
    int64_t sum = 0;
    for (int64_t n : received) sum += n;
    return sum;
  };
  while (!writing_done.load() && !watchdog.fired()) ctx().poll(true);
  writer.join();
  waker.join();
  // Whatever is still in the pipes is read once every pipe has a handler.
  for (int i = 0; i < kPipes; ++i) {
    if (generation[i] == 0) install(i);
  }
  churn = [](int) {};
  while (total() < bytes_per_pipe * kPipes && !watchdog.fired()) ctx().poll(true);

  ASSERT_FALSE(watchdog.fired()) << "bytes left unread: a handler stopped being watched";
  for (int i = 0; i < kPipes; ++i) EXPECT_EQ(received[i], bytes_per_pipe) << "pipe " << i;
  EXPECT_EQ(stale_calls, 0) << "a removed or replaced handler was called";
  EXPECT_EQ(out_of_order, 0);
  for (int i = 0; i < kPipes; ++i) ctx().remove_fd_handler(pipes[i].read_fd);
  std::fprintf(stderr, "%s: %lld bytes through %llu handler registrations\n",
               std::string(backend_name(GetParam())).c_str(), static_cast<long long>(total()),
               static_cast<unsigned long long>(next_generation - 1));
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(NotifyStormStress);
AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(HandlerChurnStress);

}  // namespace
}  // namespace aioloop::testing
