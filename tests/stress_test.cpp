// SPDX-License-Identifier: MIT
// Multi-thread stress (issue 4, point 5): two I/O threads bounce bottom
// halves while a third thread storms both with notify(). Every hop is
// counted; nothing may be lost, nothing may run twice. Bounded: the hop
// count comes from AIOLOOP_STRESS_HOPS (default one million), and a
// watchdog turns a lost wake-up into a failure instead of a hang.
#include <aioloop/aioloop.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

namespace aioloop::testing {
namespace {

int64_t HopsFromEnvironment() {
  const char* value = std::getenv("AIOLOOP_STRESS_HOPS");
  return value ? std::atoll(value) : 1000000;
}

class BounceStress : public ::testing::TestWithParam<bool> {};

// Tokens travel A -> B -> A ... each hop is one bottom half scheduled from
// the other thread. A BottomHalf is idempotent, and a token is only ever in
// one place, so every schedule must produce exactly one run.
TEST_P(BounceStress, NoHopLostNoneRunTwice) {
  const bool busy_poll = GetParam();
  const int64_t total_hops = HopsFromEnvironment();
  constexpr int kTokens = 64;
  const int64_t hops_per_token = total_hops / kTokens;

  IoThreadOptions options;
  options.poll_max_ns = busy_poll ? 32768 : 0;
  IoThread a(options), b(options);

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

  const auto start = std::chrono::steady_clock::now();
  for (auto& t : tokens) {
    t->in_flight = 1;
    t->on_a.schedule();
  }
  const auto give_up = start + std::chrono::seconds(60);
  while (finished.load() < kTokens && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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

INSTANTIATE_TEST_SUITE_P(BusyPolling, BounceStress, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("busypoll") : std::string("block");
                         });

}  // namespace
}  // namespace aioloop::testing
