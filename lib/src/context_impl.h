// SPDX-License-Identifier: MIT
// The context's internal state. One concept per .cpp: registry
// (handler_registry.cpp), iteration (iteration.cpp), notify (notify.cpp),
// busy polling (busy_poll.cpp), monitor choice (backend.cpp).
#pragma once

#include <aioloop/context.h>
#include <aioloop/event_notifier.h>

#include <atomic>
#include <cassert>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "bh_list.h"
#include "fd_monitor.h"
#include "handler_node.h"
#include "timer_list.h"

namespace aioloop::detail {

// A counter written by the home thread only and read from any thread: a
// relaxed load and store (no locked instruction) is enough for one writer.
class StatCounter {
 public:
  void add(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Bumped in every child process by a pthread_atfork() handler (context.cpp).
// A context remembers the value it was created under; a different value
// means this process is a fork()ed copy of the one that made it.
extern std::atomic<uint64_t> g_fork_generation;

class ContextImpl final : public Context, public MonitorHost {
 public:
  explicit ContextImpl(const ContextOptions& options);
  ~ContextImpl();

  static ContextImpl& of(Context& c) { return static_cast<ContextImpl&>(c); }
  static const ContextImpl& of(const Context& c) { return static_cast<const ContextImpl&>(c); }

  void assert_home() const {
    assert(in_home_thread_impl() && "aioloop: call from outside the home thread");
  }
  bool in_home_thread_impl() const {
    return std::this_thread::get_id() == home_.load(std::memory_order_relaxed);
  }

  // Whether this process is a fork()ed child of the one that created the
  // context: its eventfd, epoll instance and io_uring are shared with the
  // parent, so touching them would change the parent's loop. One relaxed
  // load; the counter only changes in a child before it runs anything else.
  bool forked() const {
    return g_fork_generation.load(std::memory_order_relaxed) != fork_generation_;
  }
  // Throws Error(ECHILD) when forked(). Out of line: the hot paths only pay
  // for the comparison.
  void check_not_forked() const {
    if (forked()) [[unlikely]] {
      throw_used_after_fork();
    }
  }
  [[noreturn, gnu::cold]] static void throw_used_after_fork();

  // --- iteration (iteration.cpp)
  bool poll_impl(bool blocking);
  // Brackets every iteration (native or embedded): a context whose last
  // reference a callback dropped is destroyed by the outermost leave. After
  // leave_iteration() returns, the caller must not touch the context.
  void enter_iteration() {
    ++depth_;
    stat_iterations_.add();
  }
  void leave_iteration() {
    if (--depth_ == 0 && destroy_pending_) delete this;
  }
  int64_t compute_timeout() const { return timeout_given(bhs_.timeout_ns()); }
  // The same, given what the bottom halves alone ask (BhList::timeout_ns()),
  // for a caller that has looked at them already.
  int64_t timeout_given(int64_t bh_timeout) const;
  bool can_skip_wait(bool polled_everything) const;
  bool dispatch() noexcept;
  bool dispatch_ready() noexcept;  // with the ready list not empty
  bool run_timers() noexcept;

  // --- notify (notify.cpp)
  void notify_impl() { notify_from(in_home_thread_impl()); }
  // from_home: whether the caller is the home thread (a bottom half's
  // schedule() has just asked; asking again costs a call).
  void notify_from(bool from_home);
  void announce_blocking_wait();
  void withdraw_announcement();
  void accept_notify();
  // --- the outer loop's own wake-up (embed_wakeup.cpp)
  bool wake_outer_loop();
  void sync_outer_wake();

  // --- registry (handler_registry.cpp)
  std::error_code set_handler(int fd, FdHandler&& handler, bool internal);
  void remove_handler(int fd);
  HandlerNode* handler_for(int fd) const {
    return fd >= 0 && static_cast<size_t>(fd) < by_fd_.size() ? by_fd_[fd] : nullptr;
  }
  void begin_walk() { ++walkers_; }
  void end_walk();
  void retire(HandlerNode* node);
  void free_node(HandlerNode* node);

  // --- busy polling (busy_poll.cpp)
  bool busy_poll_eligible() const;
  bool busy_poll(int64_t* timeout_ns);
  bool poll_handlers_once();
  bool poll_set_started(bool started);
  void poll_set_join(HandlerNode* node);
  void poll_set_leave(HandlerNode* node);
  void adapt_poll_ns(int64_t block_ns);
  int64_t update_estimate(HandlerNode* node);
  void drop_idle_pollers(int64_t now_ns);
  int64_t poll_clock_ns() const;

  // --- MonitorHost
  void mark_ready(HandlerNode* node, uint32_t revents) override;
  void mark_invalid(HandlerNode* node) override;
  bool external_disabled() const override { return external_disable_count_ > 0; }
  void for_each_live(void (*fn)(HandlerNode*, void*), void* arg) override;
  HandlerNode* handler_for_fd(int fd) const override { return handler_for(fd); }
  void unref(HandlerNode* node) override;
  uint64_t dispatch_walks() const override { return dispatch_walks_; }
  void count_completions(uint64_t n) override { stat_monitor_completions_.add(n); }
  bool embed_hides(const HandlerNode* node) const override {
    return node->internal && outer_wake_hides_notifier_;
  }

  // Whether the handler must be left alone now (suspended external).
  bool suspended(const HandlerNode* node) const {
    return node->cb.external && external_disable_count_ > 0;
  }

  // --- state
  std::atomic<std::thread::id> home_;
  const uint64_t fork_generation_;

  // notify protocol (notify.cpp explains the ordering).
  std::atomic<unsigned> notify_me_{0};
  std::atomic<bool> notified_{false};
  // notify() from the home thread with no wait announced: home thread only,
  // no ordering needed (see notify.cpp), so accepting it needs no fence.
  bool notified_locally_ = false;
  bool notification_pending() const {
    return notified_locally_ || notified_.load(std::memory_order_relaxed);
  }
  // The outer loop gave up its announcement without embed_check()
  // (Context::embed_abandon(), any thread): bit 0 of notify_me_ is stale.
  // Only the home thread writes notify_me_, so it drops the bit itself, at
  // its next notify(), poll() or embed_prepare(). No ordering is needed:
  // the outer loop no longer waits for this context, and whenever the home
  // thread runs, no wait of this thread is in progress.
  std::atomic<bool> announcement_abandoned_{false};
  // Returns notify_me_ as it is now.
  unsigned drop_abandoned_announcement() {
    unsigned waiting = notify_me_.load(std::memory_order_relaxed);
    if (announcement_abandoned_.load(std::memory_order_relaxed) &&
        announcement_abandoned_.exchange(false, std::memory_order_relaxed)) {
      waiting &= ~1u;
      notify_me_.store(waiting, std::memory_order_relaxed);
    }
    return waiting;
  }
  EventNotifier notifier_;

  // The outer loop's own wake-up (Context::set_embed_wakeup; embed_wakeup.cpp
  // explains the locking). wake and arg are read under the lock shared and
  // written under it exclusively; the generation counts the changes, so the
  // home thread learns of one with a relaxed load per embed_fds_generation().
  std::shared_mutex outer_wake_mutex_;
  void (*outer_wake_)(void*) = nullptr;
  void* outer_wake_arg_ = nullptr;
  std::atomic<bool> outer_wake_set_{false};
  std::atomic<uint64_t> outer_wake_generation_{0};
  // Home thread only: the generation the monitor's embed list reflects, and
  // whether that list leaves the notifier out.
  uint64_t outer_wake_seen_ = 0;
  bool outer_wake_hides_notifier_ = false;

  BhList bhs_;
  TimerList realtime_timers_;
  TimerList test_timers_;
  std::atomic<int64_t> test_clock_ns_{0};

  std::unique_ptr<FdMonitor> monitor_;
  Backend backend_ = Backend::poll;

  // Registry: handler by fd, the live ones in a list for whole-set work.
  std::vector<HandlerNode*> by_fd_;
  IntrusiveList<HandlerNode, LiveTag> live_;
  IntrusiveList<HandlerNode, GraveyardTag> graveyard_;
  IntrusiveList<HandlerNode, ReadyTag> ready_;
  // Walks of a non-empty ready list started so far, plus one (0 means
  // "before any walk" to a monitor).
  uint64_t dispatch_walks_ = 1;
  int walkers_ = 0;
  // Live handlers (internal one included) without a poll callback: with the
  // poll and epoll monitors they forbid busy polling and skipping the wait.
  size_t without_poll_ = 0;
  // Live handlers with a poll callback, and how many of them (not deleted)
  // are in the poll set: a busy-poll round has looked at every fd only when
  // the two are equal.
  size_t pollable_live_ = 0;
  size_t poll_set_live_ = 0;
  int external_disable_count_ = 0;

  // Busy polling.
  IntrusiveList<HandlerNode, PollSetTag> poll_set_;
  bool poll_started_ = false;
  int64_t poll_max_ns_ = 0;
  int64_t poll_grow_ = 0;
  int64_t poll_shrink_ = 0;
  std::atomic<int64_t> poll_ns_{0};
  int64_t last_idle_check_ns_ = 0;
  // Per-handler estimates (set_poll_weight): 0 = grow/shrink rule.
  unsigned poll_weight_shift_ = 0;
  int64_t last_block_ns_ = -1;  // this iteration's blocking time, -1 if none

  // The clock busy polling measures time on (the test clock in tests).
  ClockType busy_poll_clock_ = ClockType::realtime;

  // Re-entrancy and deferred destruction.
  int depth_ = 0;
  bool destroy_pending_ = false;
  bool destroying_ = false;  // ~ContextImpl: no user callbacks any more

  // Statistics.
  StatCounter stat_iterations_, stat_blocking_waits_, stat_busy_attempts_, stat_busy_hits_,
      stat_bhs_run_, stat_dispatched_, stat_timers_fired_, stat_invalid_fds_,
      stat_monitor_completions_;
  // Written by notify() from any thread: a real atomic add.
  std::atomic<uint64_t> stat_eventfd_writes_{0};

  // Constants of the design.
  static constexpr int64_t kPollStartNs = 4096;                     // first grow from 0
  static constexpr int64_t kPollIdleNs = 7LL * 1000 * 1000 * 1000;  // leave the poll set
};

}  // namespace aioloop::detail
