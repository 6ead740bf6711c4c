// SPDX-License-Identifier: MIT
// W3's floor per fd monitor (impl=limit workload=xfd mode=<monitor>): the
// system calls W3 cannot do without, in a bare loop with nothing around
// them. Each side waits for its own eventfd with the monitor's primitive
// (poll(), epoll_wait(), io_uring_enter() reaping a multishot poll request),
// reads it and writes the other side's: three system calls per hand-over
// where L3 needs two (a blocking read and a write). No event loop can go
// below this figure, so it shows what part of W3's distance from L3 is the
// loop's and what part is the kernel's price for the workload itself.
//
// Measured like the two-thread workloads, L3 paired between its chunks, so
// the ratio to L3 holds although the VM's wake-up cost drifts; and right
// after aioloop's own W3 on the same monitor when both are measured (the
// fixed cost of a system call weighs more when wake-ups are cheap, so the
// floor must see the same machine as the figure it bounds).
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

#include "bench_report.h"

#ifdef AIOLOOP_BENCH_HAVE_LIBURING
#include <liburing.h>
#endif

namespace bench {

namespace {

// Blocks until an eventfd is readable, the way one monitor would.
class Waiter {
 public:
  virtual ~Waiter() = default;
  virtual void wait() = 0;
};

class PollWaiter final : public Waiter {
 public:
  explicit PollWaiter(int fd) : fd_(fd) {}
  void wait() override {
    pollfd p{fd_, POLLIN, 0};
    while (poll(&p, 1, -1) < 0) {
    }
  }

 private:
  int fd_;
};

class EpollWaiter final : public Waiter {
 public:
  explicit EpollWaiter(int fd) : epfd_(epoll_create1(EPOLL_CLOEXEC)) {
    if (epfd_ < 0) throw std::runtime_error("epoll_create1");
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &event) != 0) throw std::runtime_error("epoll_ctl");
  }
  ~EpollWaiter() override { close(epfd_); }
  void wait() override {
    epoll_event event;
    while (epoll_wait(epfd_, &event, 1, -1) < 1) {
    }
  }

 private:
  int epfd_;
};

#ifdef AIOLOOP_BENCH_HAVE_LIBURING
// One multishot poll request (the cheapest way io_uring watches an fd: no
// re-arm per event), cooperative task work as the aioloop monitor sets up.
class IoUringWaiter final : public Waiter {
 public:
  explicit IoUringWaiter(int fd) {
    const unsigned flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    if (io_uring_queue_init(8, &ring_, flags) < 0) throw std::runtime_error("io_uring_queue_init");
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    io_uring_prep_poll_multishot(sqe, fd, POLLIN);
    io_uring_submit(&ring_);
  }
  ~IoUringWaiter() override { io_uring_queue_exit(&ring_); }
  void wait() override {
    io_uring_cqe* cqe = nullptr;
    while (io_uring_wait_cqe(&ring_, &cqe) < 0) {
    }
    if (cqe->res < 0 || !(cqe->flags & IORING_CQE_F_MORE)) {
      throw std::runtime_error(std::string("multishot poll ended: ") + std::strerror(-cqe->res));
    }
    io_uring_cqe_seen(&ring_, cqe);
  }

 private:
  io_uring ring_{};
};
#endif

std::unique_ptr<Waiter> make_waiter(std::string_view monitor, int fd) {
  if (monitor == "poll") return std::make_unique<PollWaiter>(fd);
  if (monitor == "epoll") return std::make_unique<EpollWaiter>(fd);
#ifdef AIOLOOP_BENCH_HAVE_LIBURING
  if (monitor == "io_uring") return std::make_unique<IoUringWaiter>(fd);
#endif
  return nullptr;
}

}  // namespace

void w3_floor(std::string_view monitor, const Counts& counts) {
  EventFd efd_a;
  EventFd efd_b;
  std::unique_ptr<Waiter> waiter_a;
  std::unique_ptr<Waiter> waiter_b;
  try {
    waiter_a = make_waiter(monitor, efd_a.fd());
    waiter_b = make_waiter(monitor, efd_b.fd());
  } catch (const std::exception& e) {
    note("limit W3 floor %.*s: %s; skipped", static_cast<int>(monitor.size()), monitor.data(),
         e.what());
    return;
  }
  if (!waiter_a || !waiter_b) return;

  RoundTrips trips(warmup_count(counts.xfd), counts.xfd, counts.budget_ns,
                   "limit W3 floor " + std::string(monitor), /*pair_with_l3=*/true);
  std::atomic<bool> stop{false};
  std::thread side_b([&] {
    for (;;) {
      waiter_b->wait();
      efd_b.drain();
      if (stop.load(std::memory_order_acquire)) break;
      efd_a.write_one();
    }
  });
  trips.begin();
  efd_b.write_one();
  for (;;) {
    waiter_a->wait();
    efd_a.drain();
    if (!trips.complete()) break;
    efd_b.write_one();
  }
  stop.store(true, std::memory_order_release);
  efd_b.write_one();
  side_b.join();
  report_trips("xfd", "limit", monitor, trips);
}

void run_w3_floors(const Options& options, const Counts& counts) {
  for (std::string_view monitor : {"poll", "epoll", "io_uring"}) {
    if (!options.wants_backend(monitor)) continue;
    w3_floor(monitor, counts);
    w3_gsource_floor("gsource-" + std::string(monitor), counts);
  }
}

}  // namespace bench
