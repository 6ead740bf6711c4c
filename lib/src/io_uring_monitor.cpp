// SPDX-License-Identifier: MIT
// The io_uring fd monitor (liburing).
//
// Each watched fd has one multishot IORING_OP_POLL_ADD request. Multishot
// poll is edge-triggered: the kernel posts a completion when the fd's wait
// queue is woken, not while the fd stays ready. Our handlers are promised
// level-triggered behaviour, so an fd whose handler left it readable must be
// reported again although nothing woke it. We keep that promise with a level
// check: after a handler's event has been collected, the next submission
// carries a one-shot POLL_ADD of the fd, which completes inside that very
// system call if the fd is still ready (and fails with EBADF if the number
// was closed, which a multishot request holding the file would never tell).
// The check is skipped when a newer event for the fd, covering the events
// the handler waits for, is already in the completion queue when we are
// about to submit: that event is dispatched in turn and checked after its
// own run. So a handler that makes its own fd ready again (or any fd that
// keeps being woken) costs no system call at all per event: the completion
// was posted on the way out of the handler's write(). W4 (a self-pinging
// eventfd) drops from three system calls per iteration to two.
//
// Why not re-arm the multishot request with a poll update instead: an
// update finds a ready fd but reports it through task work, and the fuzzer
// caught that completion arriving after the submitting system call had
// returned (a zero-timeout iteration then missed a ready fd). A one-shot
// request that finds its fd ready completes inline, every time.
//
// When the fd is not ready, the check stays armed beside the multishot
// request and the next wake-up completes both: two wake-up callbacks, two
// pieces of task work and two completions for one event. That is the usual
// life of a quiet fd, one that becomes ready because someone else wrote to
// it and whose handler drains it (W3: a round trip cost 1.21x L3 against
// 1.14-1.18x with one-shot requests, L3 paired). So an fd whose wake-up
// completed both requests is quiet: its multishot request is cancelled and
// it is watched by one one-shot request at a time, armed after its handler
// has run (which makes that request its level check, as below). Every
// kQuietProbeEvery-th arm of a quiet fd is a multishot request and a check
// again: an fd that has become busy (its handler makes it ready again) keeps
// multishot, because its checks are skipped and nothing completes twice.
//
// "After it has run" is exact: the context counts the walks of its ready
// list, and a handler's check is due once a walk has begun since its last
// event was collected. (A callback of that walk may poll() nested and so
// check a handler the walk has not reached yet: the check finds the fd
// ready and reports it again, which changes nothing.)
//
// Kernels without IORING_FEAT_CQE_SKIP (before 5.17), or
// AIOLOOP_IO_URING_POLL=oneshot, treat every fd as quiet for good: one-shot
// requests only, each re-armed at the first submission after its handler
// has run.
//
// Requests are tagged (fd << 32 | arm number), never with a pointer. Each
// arm gets a new number, so a completion whose tag is not the fd's current
// one belongs to a removed, replaced or cancelled request and is dropped: a
// removal racing an in-flight completion can never touch freed memory, and
// nothing has to be kept alive for the kernel. Tag 0 marks requests whose
// completions we ignore (cancels); bit 31 of the arm number marks level
// checks (one-shot requests under the handler's tag).
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
// wait (ours, or GLib's poll() on the ring fd) is still woken as before, and
// task work raised by our own system calls runs on their way out.
#include <errno.h>
#include <liburing.h>
#include <poll.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "direct_embed.h"
#include "error_util.h"
#include "fd_monitor.h"
#include "hot_embed.h"
#include "i18n.h"
#include "time_util.h"

namespace aioloop::detail {

namespace {

constexpr unsigned kRingEntries = 256;
// A multishot request can post many completions between two reaps; a large
// CQ keeps overflow rare, and IORING_FEAT_NODROP keeps it lossless when it
// happens (drained in reap(); a multishot request the overflow ended is
// armed again).
constexpr unsigned kCqEntries = 8192;
// Marks a level check's one-shot request (see the top of the file).
constexpr uint32_t kLevelCheckBit = 1u << 31;
// How often a quiet fd tries multishot again (see the top of the file): a
// quiet fd pays one extra request and one cancel per this many events, an
// fd that became busy pays at most this many wait system calls.
constexpr uint8_t kQuietProbeEvery = 64;

uint64_t tag(int fd, uint32_t arm) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(fd)) << 32) | arm;
}

}  // namespace

bool io_uring_multishot_wanted() {
  const char* env = std::getenv("AIOLOOP_IO_URING_POLL");
  if (!env || !*env || std::strcmp(env, "multishot") == 0) return true;
  if (std::strcmp(env, "oneshot") == 0) return false;
  throw make_error(EINVAL, _("AIOLOOP_IO_URING_POLL=%s is not one of oneshot, multishot"), env);
}

namespace {

class IoUringMonitor final : public FdMonitor {
 public:
  explicit IoUringMonitor(MonitorHost& host) : host_(host) {
    const bool want_multishot = io_uring_multishot_wanted();
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
                         io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL);
    if (probe) io_uring_free_probe(probe);
    if (!poll_ok) {
      io_uring_queue_exit(&ring_);
      throw make_error(ENOTSUP, "%s", _("this kernel's io_uring cannot poll file descriptors"));
    }
    // Multishot poll came in 5.13, skipped completions (for cancels) in
    // 5.17: the feature bit stands for both.
    multishot_ = want_multishot && (params.features & IORING_FEAT_CQE_SKIP);
    ring_fd_ = EmbedFd{ring_.ring_fd, POLLIN};
  }

  ~IoUringMonitor() override { io_uring_queue_exit(&ring_); }

  Backend backend() const override { return Backend::io_uring; }

  // Not while an outer loop watches fds directly (all of them, or the hot
  // ones): those have no requests armed.
  bool watches_while_polling() const override { return !direct_ && hot_.empty(); }

  bool need_wait() const override {
    return io_uring_cq_ready(&ring_) > 0 || io_uring_cq_has_overflow(&ring_) || task_work_pending();
  }

  bool has_unsubmitted() const override {
    return io_uring_sq_ready(&ring_) > 0 || !backlog_.empty() || !level_checks_.empty();
  }

  void flush() override {
    leave_direct();
    cool_all();
    begin_submission(false);
    submit_queued();
  }

  std::error_code update(HandlerNode* old_node, HandlerNode* new_node) override {
    // A replacement always gets a request of its own, even for unchanged
    // events: the request in flight holds the file the old fd referred to,
    // and the number may now name another one.
    if (old_node && old_node->monitor_tag != 0) {
      disarm_node(old_node);
      old_node->monitor_tag = 0;
    }
    if (old_node && old_node->embed_hot) hot_.drop(old_node);
    direct_list_.handler_changed(old_node, new_node);
    if (new_node && new_node->interest != 0) {
      if (direct_) {
        new_node->monitor_tag = next_arm_number();  // armed when direct mode ends
      } else {
        watch(new_node);
      }
    }
    embed_dirty_ = true;
    return {};
  }

  std::span<const EmbedFd> embed_fds() override {
    if (embed_dirty_ || hot_.dirty()) rebuild_embed();
    return direct_ ? direct_list_.fds() : hot_.shown(ring_fd_, host_);
  }

  uint64_t embed_generation() override {
    if (embed_dirty_ || hot_.dirty()) rebuild_embed();
    return embed_generation_;
  }

  void embed_invalidate() override { embed_dirty_ = true; }

  // An outer loop is about to poll the ring fd: events the last dispatch
  // made (already in the CQ) spare their level checks, as in wait().
  void embed_prepare() override {
    if (embed_dirty_ || hot_.dirty()) rebuild_embed();
    if (!direct_) {
      // Events taken here count for the outer loop's round as well: a fd
      // that makes itself ready again is mostly seen here, not in check().
      embedded_round_ = true;
      begin_submission(true);
      embedded_round_ = false;
    }
    submit_queued();
  }

  void embed_check(std::span<const short> revents) override {
    if (!direct_) {
      // The ring fd is readable while completions wait in the CQ; they are
      // in shared memory, so collecting them needs no system call.
      hot_.begin_round();
      embedded_round_ = true;
      reap();
      embedded_round_ = false;
      hot_.report(host_, revents, &idle_);
      for (HandlerNode* node : idle_) cool(node);
      return;
    }
    // Only the last completions of cancelled requests can be there.
    if (need_wait()) reap();
    if (direct_list_.report(host_, revents)) embed_dirty_ = true;
  }

  // A completion posted before this moment reports readiness the callbacks
  // about to run will see (or consume): it is not news after them. Without
  // this, data written and read between a reap and the dispatch would make
  // the next iteration run the handler for nothing. 64-bit positions: the
  // kernel's 32-bit CQ indices wrap.
  void dispatching(HandlerNode* node) override {
    const unsigned tail = io_uring_smp_load_acquire(ring_.cq.ktail);
    node->monitor_cq_mark = cq_consumed_ + (tail - *ring_.cq.khead);
    if (!node->monitor_queued && node->monitor_tag != 0 && !node->embed_hot) {
      // Dispatched without an event of ours (a busy poll found work): the
      // fd's level is still checked after the callbacks.
      want_level_check(node, false);
      node->monitor_round = host_.dispatch_walks() - 1;
    }
  }

  void external_changed() override {
    embed_dirty_ = true;                    // suspended external fds are not shown directly
    if (host_.external_disabled()) return;  // suspension is lazy (see complete)
    for (int fd : suspended_) {
      HandlerNode* node = host_.handler_for_fd(fd);
      if (!node || !node->monitor_suspended) continue;
      node->monitor_suspended = false;
      if (!direct_) watch(node);
    }
    suspended_.clear();
  }

  void wait(int64_t timeout_ns) override {
    leave_direct();
    cool_all();  // a native wait watches every fd itself
    if (begin_submission(true)) timeout_ns = 0;
    if (timeout_ns == 0) {
      submit_queued();
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
        if (io_uring_cq_ready(&ring_) > 0) {
          // Completions that tell the loop nothing (a cancelled request's
          // last one, an event of a suspended handler) do not end the wait.
          const uint64_t before = news_;
          reap();
          if (news_ != before || remaining_ns == 0) return false;
          queue_level_checks();  // checks to make again go with the retry
          return true;
        }
        // io_uring_enter() returns how many requests it submitted even when
        // a signal then cut its wait short, so a non-negative result with
        // no completion is an interruption too, unless the time is up.
        return ret == -EINTR || (ret >= 0 && remaining_ns != 0);
      });
    }
    reap();
  }

 private:
  // Direct embedding. An outer loop (GLib) that polls the ring fd is woken
  // by a completion, which the kernel posts through task work in our
  // thread, and prepare() must submit level checks: about two system calls
  // per event on top of the outer poll(). While a context has at most
  // DirectEmbedList::kMaxHandlers watched handlers, the outer loop
  // is shown their fds instead, like the poll monitor does, and its revents
  // are the events. No request stays armed meanwhile: an armed one would
  // interrupt the outer poll() to run its task work. A native wait() ends
  // direct mode (every handler is armed again, which polls it); the next
  // embed_fds() may start it again.

  void rebuild_embed() {
    if (direct_list_.fits()) {
      // Direct mode disarms every fd anyway, and leaving it arms them all.
      hot_.take_all(host_);
      enter_direct();
      direct_list_.rebuild(host_);
    } else {
      leave_direct();
    }
    hot_.shown(ring_fd_, host_);  // takes in the hot fds' changes
    embed_dirty_ = false;         // after leave_direct(), which sets it
    ++embed_generation_;
  }

  // Hot fds (hot_embed.h): with more handlers than direct mode shows, a busy
  // fd's requests are cancelled and the outer loop polls it beside the ring
  // fd. Its events then cost no wake-up of ours: no task work, no
  // completion, no reap; the ring fd stays unreadable. W4 under GLib with
  // 10,000 idle fds then costs what it costs with two fds.
  void heat(HandlerNode* node) {
    disarm(node, this);
    hot_.promote(node);
  }

  // Watches a fd hot_ has dropped with requests again.
  void cool(HandlerNode* node) {
    if (node->monitor_tag != 0 && !node->invalid && !node->monitor_suspended) watch(node);
  }

  void cool_all() {
    for (HandlerNode* node : hot_.take_all(host_)) cool(node);
  }

  void enter_direct() {
    if (direct_) return;
    direct_ = true;
    host_.for_each_live(&IoUringMonitor::disarm, this);
    level_checks_.clear();  // disarm() cleared their flags
  }

  static void disarm(HandlerNode* node, void* self_ptr) {
    auto* self = static_cast<IoUringMonitor*>(self_ptr);
    node->monitor_queued = false;
    if (node->monitor_tag == 0) return;  // nothing to watch
    self->disarm_node(node);
    node->monitor_tag = self->next_arm_number();  // its completions are stale now
  }

  void leave_direct() {
    if (!direct_) return;
    direct_ = false;
    embed_dirty_ = true;  // the outer loop must be shown the ring fd
    host_.for_each_live(&IoUringMonitor::rearm, this);
  }

  static void rearm(HandlerNode* node, void* self_ptr) {
    auto* self = static_cast<IoUringMonitor*>(self_ptr);
    if (node->monitor_tag == 0 || node->monitor_events != 0 || node->invalid) return;
    if (node->embed_hot) return;          // the outer loop polls it
    if (node->monitor_suspended) return;  // armed when the suspension ends
    self->watch(node);
  }

  // A submission point: the level checks that are due (and the re-arms of
  // one-shot requests, which are level checks too) go into the queue. With
  // take_posted, completions already posted are taken first: an event newer
  // than the one a handler just ran for makes that handler's check
  // unnecessary. An event taken now queues its fd's check (or re-arm) for
  // after its handler has run, never before: a request sent before would
  // find the fd ready, complete at once and cost a second completion.
  // Returns whether it took an event: the wait that follows must not block.
  bool begin_submission(bool take_posted) {
    const uint64_t before = news_;
    if (take_posted) collect();
    queue_level_checks();
    return news_ != before;
  }

  uint32_t next_arm_number() {
    arm_number_ = (arm_number_ + 1) & ~kLevelCheckBit;
    if (arm_number_ == 0) arm_number_ = 1;  // 0 is reserved for ignored completions
    return arm_number_;
  }

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

  // Requests that found no room in the submission queue, in order.
  enum class Op : uint8_t { arm, cancel, level_check };
  struct Pending {
    Op op;
    int fd;
    uint32_t arm_number;
  };

  // Hands queued requests to the kernel, if there are any (no system call
  // otherwise).
  void submit_queued() {
    if (io_uring_sq_ready(&ring_) > 0 || !backlog_.empty()) submit();
  }

  void submit() {
    io_uring_submit(&ring_);
    size_t done = 0;
    for (; done < backlog_.size(); ++done) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (!sqe) break;
      const Pending& p = backlog_[done];
      HandlerNode* node = host_.handler_for_fd(p.fd);
      const bool current = node && node->monitor_tag == p.arm_number && node->monitor_events != 0;
      if (p.op == Op::cancel) {
        prep_cancel(sqe, p.fd, p.arm_number);
      } else if (p.op == Op::arm && current) {
        prep_poll(sqe, node);
      } else if (p.op == Op::level_check && node && node->monitor_tag == p.arm_number &&
                 node->monitor_checking) {
        prep_level_check(sqe, node);
      } else {
        io_uring_prep_nop(sqe);  // overtaken by a removal or replacement
        io_uring_sqe_set_data64(sqe, 0);
      }
    }
    backlog_.erase(backlog_.begin(), backlog_.begin() + static_cast<ptrdiff_t>(done));
    if (io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
  }

  void prep_poll(io_uring_sqe* sqe, HandlerNode* node) {
    if (multishot_ && !node->monitor_quiet) {
      io_uring_prep_poll_multishot(sqe, node->fd, node->interest);
    } else {
      io_uring_prep_poll_add(sqe, node->fd, node->interest);
    }
    io_uring_sqe_set_data64(sqe, tag(node->fd, static_cast<uint32_t>(node->monitor_tag)));
  }

  // A one-shot poll of the fd by its number: a ready fd completes it
  // inside the submitting system call, a closed one fails with EBADF.
  void prep_level_check(io_uring_sqe* sqe, HandlerNode* node) {
    io_uring_prep_poll_add(sqe, node->fd, node->interest);
    io_uring_sqe_set_data64(
        sqe, tag(node->fd, static_cast<uint32_t>(node->monitor_tag) | kLevelCheckBit));
    node->monitor_checking = true;
  }

  void level_check(HandlerNode* node) {
    if (node->monitor_checking) return;  // the pending one reports the next event
    if (io_uring_sqe* sqe = get_sqe()) {
      prep_level_check(sqe, node);
    } else {
      node->monitor_checking = true;
      backlog_.push_back({Op::level_check, node->fd, static_cast<uint32_t>(node->monitor_tag)});
    }
  }

  // A new multishot request and a level check: the request only reports
  // wake-ups to come, the check an fd that is ready already.
  void arm_and_check(HandlerNode* node) {
    arm(node);
    level_check(node);
  }

  // Starts watching node's fd.
  void watch(HandlerNode* node) {
    if (multishot_ && !node->monitor_quiet) {
      arm_and_check(node);
    } else {
      arm(node);
    }
  }

  // Its request has ended (a quiet fd's one-shot request, or one the kernel
  // cancelled) and its handler has run: watch it again. A quiet fd tries
  // multishot again now and then (see the top of the file).
  void rewatch(HandlerNode* node) {
    if (multishot_ && node->monitor_quiet && ++node->monitor_quiet_arms >= kQuietProbeEvery) {
      node->monitor_quiet = false;
      node->monitor_quiet_arms = 0;
    }
    watch(node);
  }

  // Whether the wake-up this completion came from completed both node's
  // multishot request and its level check: the completions of one wake-up
  // arrive in one reap. Not the first completion of a new multishot
  // request: like a check, it may report the level the fd had when it was
  // armed (a probe of a busy fd finds it ready twice, and it must stay busy).
  bool completed_twice(HandlerNode* node, bool check) {
    if (!check && node->monitor_fresh) {
      node->monitor_fresh = false;
      return false;
    }
    if (node->monitor_wake_pass != reap_pass_) {
      node->monitor_wake_pass = reap_pass_;
      node->monitor_wake_kinds = 0;
    }
    node->monitor_wake_kinds |= check ? 2 : 1;
    return node->monitor_wake_kinds == 3;
  }

  // Watches node's fd with one-shot requests from now on: both of its
  // requests are cancelled, and a new tag makes whatever they still post
  // stale. The caller's want_level_check() arms the first one-shot request
  // after the handler has run.
  void become_quiet(HandlerNode* node) {
    disarm_node(node);
    node->monitor_tag = next_arm_number();
    node->monitor_quiet = true;
    node->monitor_quiet_arms = 0;
  }

  // Cancels what node has in the kernel; its completions become stale.
  void disarm_node(HandlerNode* node) {
    if (node->monitor_events != 0) cancel(node->fd, node->monitor_tag);
    if (node->monitor_checking) {
      cancel(node->fd, static_cast<uint32_t>(node->monitor_tag) | kLevelCheckBit);
    }
    node->monitor_events = 0;
    node->monitor_checking = false;
  }

  // IORING_OP_ASYNC_CANCEL, not POLL_REMOVE: a removal fails (EALREADY)
  // while a wake-up of the request is being processed, and a multishot
  // request that survives its cancellation would post stale completions
  // for ever (we measured hundreds per event in W3). A cancel marks the
  // request so that whoever owns it at the moment ends it.
  void prep_cancel(io_uring_sqe* sqe, int fd, uint32_t arm_number) {
    io_uring_prep_cancel64(sqe, tag(fd, arm_number), 0);
    if (multishot_) io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS);
    io_uring_sqe_set_data64(sqe, 0);
  }

  void arm(HandlerNode* node) {
    if (node->monitor_checking) {
      // A pending check under the old tag would never be matched again.
      cancel(node->fd, static_cast<uint32_t>(node->monitor_tag) | kLevelCheckBit);
      node->monitor_checking = false;
    }
    node->monitor_tag = next_arm_number();
    node->monitor_events = node->interest;
    node->monitor_fresh = true;
    if (io_uring_sqe* sqe = get_sqe()) {
      prep_poll(sqe, node);
    } else {
      backlog_.push_back({Op::arm, node->fd, static_cast<uint32_t>(node->monitor_tag)});
    }
  }

  void cancel(int fd, uint64_t arm_number) {
    const auto number = static_cast<uint32_t>(arm_number);
    if (io_uring_sqe* sqe = get_sqe()) {
      prep_cancel(sqe, fd, number);
    } else {
      // A request nobody cancels would hold its file until the ring goes.
      backlog_.push_back({Op::cancel, fd, number});
    }
  }

  // The fd's handler got an event in this round: check its level after it
  // has run, unless a newer event comes first. An event postpones a check
  // that is due only if it reported every event the handler waits for: a
  // socket's "readable" says nothing about whether it is still writable.
  void want_level_check(HandlerNode* node, bool covers_interest = true) {
    if (node->monitor_queued) {
      if (covers_interest) node->monitor_round = host_.dispatch_walks();
      return;
    }
    node->monitor_round = host_.dispatch_walks();
    node->monitor_queued = true;
    level_checks_.push_back(node->fd);
  }

  // Queues the level checks that are due: those whose handler has run
  // since its last event was collected.
  void queue_level_checks() {
    const uint64_t walks = host_.dispatch_walks();
    size_t kept = 0;
    for (int fd : level_checks_) {
      HandlerNode* node = host_.handler_for_fd(fd);
      if (!node || !node->monitor_queued) continue;  // removed, replaced, or seen twice
      if (node->monitor_round >= walks) {
        level_checks_[kept++] = fd;  // its newest event has not been dispatched yet
        continue;
      }
      node->monitor_queued = false;
      if (node->monitor_tag == 0 || node->monitor_suspended || node->invalid) continue;
      if (node->embed_hot) continue;  // the outer loop polls it
      if (node->monitor_events == 0) {
        rewatch(node);  // its request ended
      } else {
        level_check(node);
      }
    }
    level_checks_.resize(kept);
  }

  // Completions the kernel has but cannot post until our thread enters it
  // (COOP_TASKRUN, see the top of the file).
  bool task_work_pending() const {
    return IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN;
  }

  // Takes the completions already in the CQ, without entering the kernel.
  void collect() {
    reaping_ = true;
    ++reap_pass_;
    const unsigned head = *ring_.cq.khead;
    const unsigned tail = io_uring_smp_load_acquire(ring_.cq.ktail);
    for (unsigned i = head; i != tail; ++i) {
      const io_uring_cqe& cqe = ring_.cq.cqes[io_uring_cqe_index(&ring_, i, ring_.cq.ring_mask)];
      if (complete(cqe, cq_consumed_ + (i - head))) ++news_;
    }
    cq_consumed_ += tail - head;
    if (tail != head) host_.count_completions(tail - head);
    io_uring_cq_advance(&ring_, tail - head);
    reaping_ = false;
  }

  void reap() {
    if (task_work_pending()) io_uring_get_events(&ring_);
    for (;;) {
      // Only what is there now: the kernel may keep adding completions.
      collect();
      // With the CQ full the kernel parks further completions (NODROP);
      // they are moved into the ring once there is room and we ask.
      if (!io_uring_cq_has_overflow(&ring_)) break;
      io_uring_get_events(&ring_);
    }
  }

  // Returns whether the completion is news for the loop: an event or a
  // closed fd.
  bool complete(const io_uring_cqe& cqe, uint64_t position) {
    const auto number = static_cast<uint32_t>(cqe.user_data);
    if (number == 0) return false;  // a cancel request's own completion
    const int fd = static_cast<int>(cqe.user_data >> 32);
    HandlerNode* node = host_.handler_for_fd(fd);
    const bool check = number & kLevelCheckBit;
    if (!node || node->monitor_tag != (number & ~kLevelCheckBit)) return false;  // stale
    const bool more = !check && (cqe.flags & IORING_CQE_F_MORE);
    if (check) {
      node->monitor_checking = false;
    } else if (!more) {
      node->monitor_events = 0;
    }
    const int res = cqe.res;
    if (res < 0) {
      if (res == -ECANCELED) {
        // Ended by the kernel, not by us (ours carry stale tags): watch
        // again at the next submission.
        want_level_check(node, false);
        node->monitor_round = 0;
        return false;
      }
      // EBADF: the fd was closed (a request holds the file, the check finds
      // the number closed). Watching it again would fail for ever; the
      // handler stays registered, unwatched.
      disarm_node(node);
      host_.mark_invalid(node);
      return true;
    }
    if (node->cb.external && host_.external_disabled()) {
      // Not watched while suspended: a ready external fd cannot spin us.
      // Whatever is still in the kernel is cancelled under a tag no
      // completion will match.
      disarm_node(node);
      node->monitor_tag = next_arm_number();
      node->monitor_suspended = true;
      suspended_.push_back(fd);
      return false;
    }
    if (position < node->monitor_cq_mark) {
      // Posted before the handler's last dispatch began: that dispatch and
      // the level check after it cover this readiness.
      if (!more && !check) want_level_check(node, false);  // the request ended
      return false;
    }
    if (multishot_ && !node->monitor_quiet && completed_twice(node, check)) become_quiet(node);
    host_.mark_ready(node, static_cast<uint32_t>(res));
    want_level_check(node, (static_cast<uint32_t>(res) & node->interest) == node->interest);
    if (embedded_round_ && hot_.wants_promotion(node)) heat(node);
    return true;
  }

  MonitorHost& host_;
  io_uring ring_{};
  bool multishot_ = false;
  uint32_t arm_number_ = 0;
  uint64_t news_ = 0;         // completions complete() found to be news
  uint64_t cq_consumed_ = 0;  // completions taken from the CQ so far
  uint64_t reap_pass_ = 0;    // calls of collect()
  bool reaping_ = false;
  // What the outer loop watches: the ring fd, or (direct_) the handlers' fds.
  EmbedFd ring_fd_{};
  DirectEmbedList direct_list_;
  HotEmbedList hot_;
  std::vector<HandlerNode*> idle_;  // hot fds to watch again, from hot_.report()
  bool embedded_round_ = false;     // reap() runs for embed_check()
  uint64_t embed_generation_ = 0;
  bool embed_dirty_ = true;
  bool direct_ = false;
  std::vector<Pending> backlog_;
  std::vector<int> level_checks_;
  std::vector<int> suspended_;
};

}  // namespace

std::unique_ptr<FdMonitor> make_io_uring_monitor(MonitorHost& host) {
  return std::make_unique<IoUringMonitor>(host);
}

}  // namespace aioloop::detail
