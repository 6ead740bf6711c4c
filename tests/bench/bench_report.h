// SPDX-License-Identifier: MIT
// What every benchmark file shares: options, counts, the WORKLOADS output
// line, clocks, the xorshift generator and idle FIFOs.
#pragma once

#include <aioloop/backend.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bench {

// The command line: --quick, --only=W1,L1, --backend=poll,epoll, --impl=glib.
struct Options {
  bool quick = false;
  std::vector<std::string> only;      // workload ids (W1..W5, L1..L3); empty means all
  std::vector<std::string> backends;  // aioloop backend names; empty means all
  std::vector<std::string> impls;     // aioloop, glib, libuv, limit; empty means all
  std::vector<int> params;            // W4 idle fd counts; empty means all

  bool wants(std::string_view workload_id) const;
  bool wants_backend(std::string_view backend) const;
  bool wants_impl(std::string_view impl) const;
};

// The operation counts of WORKLOADS.md, or small ones under --quick.
struct Counts {
  int64_t bh;                       // W1 callbacks
  int64_t xbh;                      // W2 round trips
  int64_t xfd;                      // W3 round trips
  int64_t idle_iters;               // W4 iterations
  int64_t timers;                   // W5 timers armed (half of them cancelled)
  int64_t timer_others;             // W5 rearm: timers armed beside the re-armed one
  int64_t rearms;                   // W5 rearm: re-arms
  int64_t eventfd_pairs;            // L1
  int64_t spin_trips;               // L2
  int64_t wake_trips;               // L3
  std::vector<int> idle_fd_counts;  // W4 params
  // The wall-time budget of one measured phase whose count may be reduced
  // (see bounded_count()): generous for full runs, small under --quick.
  int64_t budget_ns;
};
Counts counts_for(const Options& options);

// Warm-up runs are a tenth of the measured count (at least 100), so caches,
// branch predictors, allocator pools and CPU frequency settle first.
int64_t warmup_count(int64_t count);

// Records one measurement (see bench_results.h) and prints its WORKLOADS
// line on stdout, unless print_lines(false) was called (--json): param < 0
// prints "-".
// paired_l3_ns is the L3 measured between the measurement's chunks (see
// RoundTrips), 0 if none: it is kept for the summary and the JSON, and the
// WORKLOADS line stays as defined. paired_peer_ns likewise (Result).
void report(std::string_view workload, std::string_view impl, std::string_view mode, int64_t param,
            double ns_per_op, int64_t ops, double paired_l3_ns = 0, double paired_peer_ns = 0);
void print_lines(bool on);

// W5 for one implementation, the same way for all: a full-size warm-up round
// of arm_cancel_fire (it grows the heap to its final size, so the measured
// round pays for allocations, not for first-touch page faults of a fresh
// process, expensive in VMs), then the measured arm_cancel and rearm lines.
// arm_cancel_fire(timers) and rearm(others, rearms) return ns per operation.
void report_timers(std::string_view impl, const Counts& counts,
                   const std::function<double(int64_t)>& arm_cancel_fire,
                   const std::function<double(int64_t, int64_t)>& rearm);

// Diagnostics go to stderr, never stdout, so stdout stays machine-readable.
// A newline is added.
__attribute__((format(printf, 1, 2))) void note(const char* format, ...);

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Some loops cost O(number of fds) per iteration; at full counts a few of
// them would run for minutes. Given the per-operation cost seen during the
// warm-up, returns the full count or a smaller one that fits budget_ns (at
// least min_count), and says so on stderr. ns_per_op stays comparable
// because it is always wall time divided by the operations really done.
int64_t bounded_count(int64_t full, double warm_ns_per_op, int64_t budget_ns, int64_t min_count,
                      const std::string& what);

// A fixed-seed xorshift64 generator: every implementation draws the same
// deadline sequence.
class XorShift {
 public:
  uint64_t next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return state_;
  }
  // A deadline offset between 1 ms and 100 ms, in nanoseconds.
  int64_t deadline_offset_ns() {
    constexpr uint64_t kMin = 1000000;
    constexpr uint64_t kMax = 100000000;
    return static_cast<int64_t>(kMin + next() % (kMax - kMin + 1));
  }

 private:
  uint64_t state_ = 0x9e3779b97f4a7c15ull;
};

// The same offset in whole milliseconds, rounded up, for loops (GLib, libuv)
// whose timers take millisecond intervals.
inline unsigned offset_ms(int64_t offset_ns) {
  return static_cast<unsigned>((offset_ns + 999999) / 1000000);
}

// The first `count` of a process-wide pool of idle fds as WORKLOADS.md
// defines them: each a FIFO of its own opened O_RDONLY | O_NONBLOCK that never
// has a writer, so it is never readable and never hung up. The pool grows on
// demand and is shared by every implementation (creating 10,000 FIFOs per
// measurement costs more than the measurement). The FIFOs are unlinked as soon
// as they are open, so nothing is left in the file system even if the program
// dies; the fds live until the process exits.
std::span<const int> idle_fifo_fds(int count);

// L3's round trip, with no event loop: the calling thread and a helper
// thread hand `trips` round trips back and forth with blocking write() and
// read() on two eventfds. Returns the wall time of the trips alone.
int64_t wake_round_trips_ns(int64_t trips);

// Round-trip bookkeeping for the two-thread workloads, touched by thread A
// only. begin() is called when the first round trip starts; the clock
// starts once `warm` round trips are done and stops after `count` more. When
// the warm-up shows the measured phase would exceed budget_ns (a loaded
// machine makes busy-spinning threads wait for each other's time slices),
// count is reduced through bounded_count().
//
// With pair_with_l3 (round trips that block), the measured phase is cut into
// kPairedChunks pieces and thread A runs as many L3 round trips between
// them, its clock stopped meanwhile (the other thread is asleep in its loop).
// On this shared VM the cost of a wake-up moves by a third within minutes
// (16-25 us for L3), so an L3 measured at another moment makes a poor
// yardstick; the paired one went through the same moments.
class RoundTrips {
 public:
  static constexpr int64_t kPairedChunks = 8;

  RoundTrips(int64_t warm, int64_t count, int64_t budget_ns, std::string what,
             bool pair_with_l3 = false)
      : warm_(warm),
        count_(count),
        budget_ns_(budget_ns),
        what_(std::move(what)),
        pair_with_l3_(pair_with_l3) {}
  void begin() { begin_ns_ = now_ns(); }
  // Called when a round trip completes; returns whether to start another.
  bool complete();
  bool finished() const { return finished_; }
  int64_t count() const { return count_; }
  int64_t total() const { return warm_ + count_; }
  double ns_per_op() const { return static_cast<double>(end_ns_ - start_ns_) / count_; }
  // L3 per round trip as measured between the chunks; 0 without pairing.
  double paired_l3_ns() const {
    return paired_trips_ ? static_cast<double>(paired_ns_) / paired_trips_ : 0;
  }

 private:
  void run_paired_chunk();

  int64_t warm_;
  int64_t count_;
  int64_t budget_ns_;
  std::string what_;
  bool pair_with_l3_;
  int64_t chunk_ = 0;
  int64_t done_ = 0;
  int64_t begin_ns_ = 0;
  int64_t start_ns_ = 0;
  int64_t end_ns_ = 0;
  int64_t paired_ns_ = 0;
  int64_t paired_trips_ = 0;
  bool finished_ = false;
};

// report() for a two-thread workload: its paired L3, if any, goes with it.
void report_trips(std::string_view workload, std::string_view impl, std::string_view mode,
                  const RoundTrips& trips);

// A non-blocking eventfd, closed on destruction.
class EventFd {
 public:
  EventFd() : EventFd(false) {}
  explicit EventFd(bool blocking);
  ~EventFd();
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;
  int fd() const { return fd_; }
  void write_one() const;
  // Reads the counter; false when it was zero (EAGAIN).
  bool drain() const;

 private:
  int fd_ = -1;
};

// Raises RLIMIT_NOFILE's soft limit to the hard limit: W4 needs 10,000 fds.
void raise_fd_limit();

// The fd monitors to measure (bench_aioloop.cpp): in the build, not filtered
// out by --backend, and accepted by the running kernel.
std::vector<aioloop::Backend> usable_backends(const Options& options);

// The benchmark families, one per file.
void run_aioloop(const Options& options, const Counts& counts);
void run_gsource(const Options& options, const Counts& counts);
void run_glib(const Options& options, const Counts& counts);
void run_libuv(const Options& options, const Counts& counts);
void run_limits(const Options& options, const Counts& counts);
// bench_floors.cpp: W3's floor for one monitor, or for every wanted one.
void w3_floor(std::string_view monitor, const Counts& counts);
void run_w3_floors(const Options& options, const Counts& counts);
// W3's floor under GLib (bench_gsource_floor.cpp), reported as mode; does
// nothing without GLib.
void w3_gsource_floor(std::string_view mode, const Counts& counts);

}  // namespace bench
