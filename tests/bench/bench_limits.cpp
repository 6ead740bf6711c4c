// SPDX-License-Identifier: MIT
// The machine's limits (impl=limit), with no event loop at all: what an
// eventfd round costs (L1), how fast two cores can hand a cache line back and
// forth (L2), and what a kernel wake-up of a blocked thread costs (L3).
#include <atomic>
#include <cstdint>
#include <thread>

#include "bench_report.h"

namespace bench {

namespace {

// L1: write(eventfd, 1) + read(eventfd), one thread.
void eventfd_pairs(const Counts& counts) {
  EventFd efd;
  auto run = [&](int64_t pairs) {
    for (int64_t i = 0; i < pairs; ++i) {
      efd.write_one();
      efd.drain();
    }
  };
  run(warmup_count(counts.eventfd_pairs));
  const int64_t start = now_ns();
  run(counts.eventfd_pairs);
  const int64_t wall = now_ns() - start;
  report("eventfd", "limit", "-", -1, static_cast<double>(wall) / counts.eventfd_pairs,
         counts.eventfd_pairs);
}

// One flag per cache line, so the only traffic is the hand-over itself.
struct alignas(64) Flag {
  std::atomic<int64_t> value{0};
};

// L2: thread A publishes round i in B's flag and spins until B echoes it in
// A's flag. Busy spinning, no system call: one round trip is two cache-line
// transfers between the cores. A negative value tells B to stop.
void spin_trips(const Counts& counts) {
  Flag to_a;
  Flag to_b;
  std::thread echo([&] {
    int64_t seen = 0;
    for (;;) {
      int64_t value;
      while ((value = to_b.value.load(std::memory_order_acquire)) == seen) {
      }
      if (value < 0) break;
      seen = value;
      to_a.value.store(value, std::memory_order_release);
    }
  });
  RoundTrips trips(warmup_count(counts.spin_trips), counts.spin_trips, counts.budget_ns,
                   "limit L2");
  trips.begin();
  int64_t round = 0;
  do {
    to_b.value.store(++round, std::memory_order_release);
    while (to_a.value.load(std::memory_order_acquire) != round) {
    }
  } while (trips.complete());
  to_b.value.store(-1, std::memory_order_release);
  echo.join();
  report("spin", "limit", "-", -1, trips.ns_per_op(), trips.count());
}

// L3: the same ping-pong with blocking read()/write() on two eventfds: every
// hand-over puts one thread to sleep and wakes the other.
void wake_trips(const Counts& counts) {
  wake_round_trips_ns(warmup_count(counts.wake_trips));
  const int64_t wall = wake_round_trips_ns(counts.wake_trips);
  report("wake", "limit", "-", -1, static_cast<double>(wall) / counts.wake_trips,
         counts.wake_trips);
}

}  // namespace

void run_limits(const Options& options, const Counts& counts) {
  if (options.wants("L1")) eventfd_pairs(counts);
  if (options.wants("L2")) spin_trips(counts);
  if (options.wants("L3")) wake_trips(counts);
  // With aioloop measured, each floor ran right after its W3.
  if (options.wants("W3") && !options.wants_impl("aioloop")) run_w3_floors(options, counts);
}

}  // namespace bench
