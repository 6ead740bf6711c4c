// SPDX-License-Identifier: MIT
// The io_uring fd monitor (liburing).
//
// Each watched fd has one one-shot IORING_OP_POLL_ADD request. When it
// completes, the handler goes on the ready list and a new request is queued
// at once; it reaches the kernel with the next submission, which happens
// after the handler has run, so an fd the handler drained is not reported
// again and one it left readable is: level-triggered, like poll(2).
// Multishot poll would save the re-arm but is edge-triggered, and an
// edge-triggered loop under level-triggered users loses wake-ups.
//
// Requests are tagged (fd << 32 | generation), never with a pointer. A
// completion whose tag does not match the fd's current registration belongs
// to a removed or replaced handler and is dropped, so a removal racing an
// in-flight completion can never touch freed memory, and nothing has to be
// kept alive for the kernel. Generation 0 marks our own cancel requests.
//
// Submission is batched into the wait: io_uring_submit_and_wait_timeout()
// submits the queued requests and waits with a nanosecond timeout in one
// system call (IORING_FEAT_EXT_ARG, Linux 5.11).
//
// A poll request completes through task work that runs in our thread. By
// default the kernel interrupts our thread with an IPI to run it at once,
// which is what a busy-polling loop pays for every event: on our 2-vCPU VM,
// where IPIs are expensive, W3 io_uring+busypoll took 28-45 us per round
// trip that way and 7 us without. With IORING_SETUP_COOP_TASKRUN (5.19) nothing
// interrupts a running thread; IORING_SETUP_TASKRUN_FLAG raises
// IORING_SQ_TASKRUN in shared memory instead, which need_wait() reads while
// polling and reap() answers by entering the kernel. A thread asleep in a
// wait (ours, or GLib's poll() on the ring fd) is still woken as before.
#include <errno.h>
#include <liburing.h>
#include <poll.h>

#include <vector>

#include "error_util.h"
#include "fd_monitor.h"
#include "i18n.h"
#include "time_util.h"

namespace aioloop::detail {

namespace {

constexpr unsigned kRingEntries = 256;
// Completions can outnumber submissions in flight only by the cancel
// requests; a large CQ keeps overflow rare, and IORING_FEAT_NODROP keeps it
// lossless when it happens (drained in reap()).
constexpr unsigned kCqEntries = 8192;

uint64_t tag(int fd, uint32_t generation) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(fd)) << 32) | generation;
}

class IoUringMonitor final : public FdMonitor {
 public:
  explicit IoUringMonitor(MonitorHost& host) : host_(host) {
    io_uring_params params{};
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    params.cq_entries = kCqEntries;
    int ret = io_uring_queue_init_params(kRingEntries, &ring_, &params);
    if (ret == -EINVAL) {
      // Before Linux 5.19: no cooperative task work; busy polling is slower.
      params = io_uring_params{};
      params.flags = IORING_SETUP_CQSIZE;
      params.cq_entries = kCqEntries;
      ret = io_uring_queue_init_params(kRingEntries, &ring_, &params);
    }
    if (ret < 0) {
      // ENOSYS: no io_uring in the kernel; EPERM: io_uring_disabled sysctl
      // or a seccomp filter; ENOMEM: RLIMIT_MEMLOCK on kernels before 5.12.
      throw make_error(-ret, "%s", _("cannot set up an io_uring"));
    }
    const unsigned needed = IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG;
    if ((params.features & needed) != needed) {
      io_uring_queue_exit(&ring_);
      throw make_error(ENOTSUP, "%s",
                       _("this kernel's io_uring lacks lossless completions or timed waits "
                         "(needs Linux 5.11 or later)"));
    }
    io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
    const bool poll_ok = probe && io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) &&
                         io_uring_opcode_supported(probe, IORING_OP_POLL_REMOVE);
    if (probe) io_uring_free_probe(probe);
    if (!poll_ok) {
      io_uring_queue_exit(&ring_);
      throw make_error(ENOTSUP, "%s", _("this kernel's io_uring cannot poll file descriptors"));
    }
  }

  ~IoUringMonitor() override { io_uring_queue_exit(&ring_); }

  Backend backend() const override { return Backend::io_uring; }

  bool watches_while_polling() const override { return true; }

  bool need_wait() const override {
    return io_uring_cq_ready(&ring_) > 0 || io_uring_cq_has_overflow(&ring_) || task_work_pending();
  }

  bool has_unsubmitted() const override {
    return io_uring_sq_ready(&ring_) > 0 || !backlog_.empty();
  }

  void flush() override {
    if (io_uring_sq_ready(&ring_) > 0 || !backlog_.empty()) submit();
  }

  std::error_code update(HandlerNode* old_node, HandlerNode* new_node) override {
    // A replacement always gets a request of its own, even for unchanged
    // events: the request in flight holds the file the old fd referred to,
    // and the number may now name another one.
    if (old_node && old_node->monitor_tag != 0) {
      if (old_node->monitor_events != 0) cancel(old_node);
      old_node->monitor_tag = 0;
    }
    if (new_node && new_node->interest != 0) {
      if (++generation_ == 0) ++generation_;  // 0 is reserved for cancels
      new_node->monitor_tag = generation_;
      arm(new_node);
    }
    return {};
  }

  std::span<const EmbedFd> embed_fds() override {
    embed_ = EmbedFd{ring_.ring_fd, POLLIN};
    return {&embed_, 1};
  }

  // The ring fd is readable while completions wait in the CQ; they are in
  // shared memory, so collecting them needs no system call.
  void embed_check(std::span<const short>) override { reap(); }

  void external_changed() override {
    if (host_.external_disabled()) return;  // suspension is lazy (see reap)
    for (int fd : suspended_) {
      HandlerNode* node = host_.handler_for_fd(fd);
      if (!node || !node->monitor_suspended) continue;
      node->monitor_suspended = false;
      arm(node);
    }
    suspended_.clear();
  }

  void wait(int64_t timeout_ns) override {
    if (timeout_ns == 0) {
      flush();
    } else {
      wait_through_signals(timeout_ns, [&](int64_t remaining_ns) {
        while (!backlog_.empty()) submit();
        int ret;
        if (remaining_ns < 0) {
          ret = io_uring_submit_and_wait(&ring_, 1);
        } else {
          io_uring_cqe* cqe = nullptr;
          __kernel_timespec ts{remaining_ns / 1000000000, remaining_ns % 1000000000};
          ret = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
        }
        if (io_uring_cq_ready(&ring_) > 0) return false;
        // io_uring_enter() returns how many requests it submitted even when
        // a signal then cut its wait short, so a non-negative result with
        // no completion is an interruption too, unless the time is up.
        return ret == -EINTR || (ret >= 0 && remaining_ns != 0);
      });
    }
    reap();
  }

 private:
  io_uring_sqe* get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe && !reaping_) {
      // The submission queue is full (many registrations at once): hand the
      // batch to the kernel to make room. Never while reaping: the re-arms
      // of fds that are still ready (their handlers have not run yet) would
      // complete at once and feed the loop that reaps them.
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void submit() {
    io_uring_submit(&ring_);
    // Requests that found no room earlier.
    while (!backlog_.empty()) {
      HandlerNode* node = host_.handler_for_fd(backlog_.back());
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (!sqe) break;
      backlog_.pop_back();
      if (node && node->monitor_tag != 0 && node->monitor_events == 0 && !node->monitor_suspended) {
        prep_poll(sqe, node);
      } else {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, 0);
      }
    }
    if (io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
  }

  void prep_poll(io_uring_sqe* sqe, HandlerNode* node) {
    io_uring_prep_poll_add(sqe, node->fd, node->interest);
    io_uring_sqe_set_data64(sqe, tag(node->fd, static_cast<uint32_t>(node->monitor_tag)));
    node->monitor_events = node->interest;
  }

  void arm(HandlerNode* node) {
    if (io_uring_sqe* sqe = get_sqe()) {
      prep_poll(sqe, node);
    } else {
      backlog_.push_back(node->fd);  // the kernel refused to take the batch
    }
  }

  void cancel(HandlerNode* node) {
    io_uring_sqe* sqe = get_sqe();
    if (!sqe) return;  // its completion will be dropped as stale anyway
    io_uring_prep_poll_remove(sqe, tag(node->fd, static_cast<uint32_t>(node->monitor_tag)));
    io_uring_sqe_set_data64(sqe, 0);
    node->monitor_events = 0;
  }

  // Completions the kernel has but cannot post until our thread enters it
  // (COOP_TASKRUN, see the top of the file).
  bool task_work_pending() const {
    return IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN;
  }

  void reap() {
    if (task_work_pending()) io_uring_get_events(&ring_);
    reaping_ = true;
    for (;;) {
      // Only what is there now: the kernel may keep adding completions.
      const unsigned head = *ring_.cq.khead;
      const unsigned tail = io_uring_smp_load_acquire(ring_.cq.ktail);
      for (unsigned i = head; i != tail; ++i) {
        const io_uring_cqe& cqe = ring_.cq.cqes[io_uring_cqe_index(&ring_, i, ring_.cq.ring_mask)];
        complete(cqe.user_data, cqe.res);
      }
      io_uring_cq_advance(&ring_, tail - head);
      // With the CQ full the kernel parks further completions (NODROP);
      // they are moved into the ring once there is room and we ask.
      if (!io_uring_cq_has_overflow(&ring_)) break;
      io_uring_get_events(&ring_);
    }
    reaping_ = false;
  }

  void complete(uint64_t user_data, int res) {
    const uint32_t generation = static_cast<uint32_t>(user_data);
    if (generation == 0) return;  // a cancel request's own completion
    const int fd = static_cast<int>(user_data >> 32);
    HandlerNode* node = host_.handler_for_fd(fd);
    if (!node || node->monitor_tag != generation) return;  // stale
    node->monitor_events = 0;
    if (res < 0) {
      // EBADF: the fd was closed before the request reached the kernel.
      // Re-arming would fail forever; the handler stays registered, unwatched.
      if (res != -ECANCELED) host_.mark_invalid(node);
      return;
    }
    if (node->cb.external && host_.external_disabled()) {
      // Not re-armed while suspended: a ready external fd cannot spin us.
      node->monitor_suspended = true;
      suspended_.push_back(fd);
      return;
    }
    host_.mark_ready(node, static_cast<uint32_t>(res));
    arm(node);
  }

  MonitorHost& host_;
  io_uring ring_{};
  uint32_t generation_ = 0;
  bool reaping_ = false;
  EmbedFd embed_{};
  std::vector<int> backlog_;
  std::vector<int> suspended_;
};

}  // namespace

std::unique_ptr<FdMonitor> make_io_uring_monitor(MonitorHost& host) {
  return std::make_unique<IoUringMonitor>(host);
}

}  // namespace aioloop::detail
