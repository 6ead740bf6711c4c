// SPDX-License-Identifier: MIT
#include "bench_report.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "bench_results.h"

namespace bench {

namespace {

bool listed(const std::vector<std::string>& list, std::string_view item) {
  return list.empty() || std::find(list.begin(), list.end(), item) != list.end();
}

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
}

}  // namespace

bool Options::wants(std::string_view workload_id) const {
  return listed(only, workload_id);
}
bool Options::wants_backend(std::string_view backend) const {
  return listed(backends, backend);
}
bool Options::wants_impl(std::string_view impl) const {
  return listed(impls, impl);
}

Counts counts_for(const Options& options) {
  constexpr int64_t kSecond = 1000ll * 1000 * 1000;
  const std::vector<int> idle_fd_counts =
      options.params.empty() ? std::vector<int>{0, 64, 1024, 10000} : options.params;
  if (options.quick) {
    // Small enough that the whole program runs in a few seconds under the
    // normal test suite, large enough to exercise every path once.
    return Counts{.bh = 20000,
                  .xbh = 2000,
                  .xfd = 2000,
                  .idle_iters = 200,
                  .timers = 2000,
                  .timer_others = 2000,
                  .rearms = 20000,
                  .eventfd_pairs = 20000,
                  .spin_trips = 20000,
                  .wake_trips = 2000,
                  .idle_fd_counts = idle_fd_counts,
                  .budget_ns = kSecond};
  }
  return Counts{.bh = 2000000,
                .xbh = 200000,
                .xfd = 200000,
                .idle_iters = 100000,
                .timers = 100000,
                .timer_others = 100000,
                .rearms = 1000000,
                .eventfd_pairs = 2000000,
                .spin_trips = 2000000,
                .wake_trips = 200000,
                .idle_fd_counts = idle_fd_counts,
                .budget_ns = 15 * kSecond};
}

void note(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
}

int64_t warmup_count(int64_t count) {
  return std::max<int64_t>(count / 10, 100);
}

namespace {
bool lines_on_stdout = true;
}  // namespace

void print_lines(bool on) {
  lines_on_stdout = on;
}

void report(std::string_view workload, std::string_view impl, std::string_view mode, int64_t param,
            double ns_per_op, int64_t ops, double paired_l3_ns, double paired_peer_ns) {
  results().push_back(Result{std::string(workload), std::string(impl), std::string(mode), param,
                             ns_per_op, ops, paired_l3_ns, paired_peer_ns});
  if (!lines_on_stdout) return;
  std::string param_text = param < 0 ? std::string("-") : std::to_string(param);
  std::printf("workload=%.*s impl=%.*s mode=%.*s param=%s ns_per_op=%.2f ops=%lld\n",
              static_cast<int>(workload.size()), workload.data(), static_cast<int>(impl.size()),
              impl.data(), static_cast<int>(mode.size()), mode.data(), param_text.c_str(),
              ns_per_op, static_cast<long long>(ops));
  // One line at a time, so a reader following the output (or a run that is
  // interrupted) sees every finished measurement.
  std::fflush(stdout);
}

void report_timers(std::string_view impl, const Counts& counts,
                   const std::function<double(int64_t)>& arm_cancel_fire,
                   const std::function<double(int64_t, int64_t)>& rearm) {
  arm_cancel_fire(counts.timers);
  report("timers", impl, "arm_cancel", -1, arm_cancel_fire(counts.timers), counts.timers);
  report("timers", impl, "rearm", -1, rearm(counts.timer_others, counts.rearms), counts.rearms);
}

int64_t bounded_count(int64_t full, double warm_ns_per_op, int64_t budget_ns, int64_t min_count,
                      const std::string& what) {
  if (warm_ns_per_op <= 0 || warm_ns_per_op * static_cast<double>(full) <= budget_ns) return full;
  const auto fitting = static_cast<int64_t>(static_cast<double>(budget_ns) / warm_ns_per_op);
  const int64_t count = std::clamp<int64_t>(fitting, std::min(min_count, full), full);
  if (count == full) return full;
  note(
      "%s: %.0f ns per op in the warm-up; measuring %lld ops instead of %lld to stay within "
      "%.1f s (ns_per_op stays comparable)",
      what.c_str(), warm_ns_per_op, static_cast<long long>(count), static_cast<long long>(full),
      static_cast<double>(budget_ns) / 1e9);
  return count;
}

std::span<const int> idle_fifo_fds(int count) {
  static std::vector<int> pool;
  if (static_cast<size_t>(count) <= pool.size()) return {pool.data(), static_cast<size_t>(count)};
  const char* tmp = std::getenv("TMPDIR");
  std::string dir_template = std::string(tmp && *tmp ? tmp : "/tmp") + "/aioloop-bench-XXXXXX";
  if (!mkdtemp(dir_template.data())) fail("mkdtemp");
  pool.reserve(static_cast<size_t>(count));
  while (pool.size() < static_cast<size_t>(count)) {
    const std::string path = dir_template + "/fifo" + std::to_string(pool.size());
    if (mkfifo(path.c_str(), 0600) != 0) fail("mkfifo");
    // O_NONBLOCK lets a read-only open of a FIFO succeed without a writer.
    const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    const int saved_errno = errno;
    unlink(path.c_str());
    if (fd < 0) {
      errno = saved_errno;
      fail("open(fifo)");
    }
    pool.push_back(fd);
  }
  rmdir(dir_template.c_str());
  return {pool.data(), static_cast<size_t>(count)};
}

int64_t wake_round_trips_ns(int64_t trips) {
  EventFd to_a(/*blocking=*/true);
  EventFd to_b(/*blocking=*/true);
  std::thread echo([&] {
    for (int64_t i = 0; i < trips; ++i) {
      to_b.drain();
      to_a.write_one();
    }
  });
  const int64_t start = now_ns();
  for (int64_t i = 0; i < trips; ++i) {
    to_b.write_one();
    to_a.drain();
  }
  const int64_t wall = now_ns() - start;
  echo.join();
  return wall;
}

bool RoundTrips::complete() {
  ++done_;
  if (done_ == warm_) {
    start_ns_ = now_ns();
    const double warm_ns = static_cast<double>(start_ns_ - begin_ns_) / static_cast<double>(warm_);
    count_ = bounded_count(count_, warm_ns, budget_ns_, std::min<int64_t>(count_, 1000), what_);
    chunk_ = std::max<int64_t>(count_ / kPairedChunks, 1);
    // The first chunk of L3 goes before the first measured trip, so that
    // both measurements start and end at the same moments.
    if (pair_with_l3_) run_paired_chunk();
  }
  if (done_ < warm_ + count_) {
    if (pair_with_l3_ && done_ > warm_ && (done_ - warm_) % chunk_ == 0) run_paired_chunk();
    return true;
  }
  end_ns_ = now_ns();
  finished_ = true;
  return false;
}

void RoundTrips::run_paired_chunk() {
  const int64_t paused = now_ns();
  paired_ns_ += wake_round_trips_ns(chunk_);
  paired_trips_ += chunk_;
  start_ns_ += now_ns() - paused;  // the pause is not part of this measurement
}

void report_trips(std::string_view workload, std::string_view impl, std::string_view mode,
                  const RoundTrips& trips) {
  report(workload, impl, mode, -1, trips.ns_per_op(), trips.count(), trips.paired_l3_ns());
}

EventFd::EventFd(bool blocking) {
  fd_ = eventfd(0, EFD_CLOEXEC | (blocking ? 0 : EFD_NONBLOCK));
  if (fd_ < 0) fail("eventfd");
}

EventFd::~EventFd() {
  close(fd_);
}

void EventFd::write_one() const {
  const uint64_t one = 1;
  if (write(fd_, &one, sizeof one) != sizeof one) fail("write(eventfd)");
}

bool EventFd::drain() const {
  uint64_t value = 0;
  return read(fd_, &value, sizeof value) == sizeof value;
}

void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur == limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    note("setrlimit(RLIMIT_NOFILE): %s", std::strerror(errno));
  }
}

}  // namespace bench
