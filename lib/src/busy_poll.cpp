// SPDX-License-Identifier: MIT
// Adaptive busy polling.
//
// The poll set holds the handlers that have a poll callback and fired
// recently, plus the context's own notifier (whose poll callback reads
// notified_, so notify() ends busy polling without a system call). Before a
// blocking wait the loop runs the poll callbacks for up to poll_ns; poll_ns
// adapts to how long the loop actually ended up blocking (adapt_poll_ns).
// poll_begin/poll_end bracket a stretch of busy-poll mode, which lasts from
// the first busy poll until the loop decides to block.
#include <algorithm>

#include "context_impl.h"
#include "trace.h"

namespace aioloop::detail {

namespace {
constexpr int64_t kIdleCheckIntervalNs = 1000 * 1000 * 1000;
}

bool ContextImpl::busy_poll_eligible() const {
  // Under poll/epoll an fd without a poll callback is only seen by a wait:
  // busy polling would starve it. io_uring keeps watching meanwhile.
  return poll_max_ns_ > 0 && poll_ns_.load(std::memory_order_relaxed) > 0 &&
         (without_poll_ == 0 || monitor_->watches_while_polling()) && !monitor_->need_wait() &&
         !monitor_->has_unsubmitted();
}

// Runs the poll callbacks of the handlers list once; those that found work
// go on the ready list for their poll_ready. Returns whether a user handler
// found work; *hit also counts the context's notifier.
template <typename List>
static bool poll_round(ContextImpl& ctx, List& list, bool* hit, int64_t now_ns) {
  bool progress = false;
  ctx.begin_walk();
  list.for_each([&](HandlerNode* node) {
    if (node->deleted || node->polling_now || !node->cb.poll || ctx.suspended(node)) return;
    node->polling_now = true;
    const bool found = node->cb.poll();
    node->polling_now = false;
    if (!found) return;
    *hit = true;
    // The context's own notifier has nothing to dispatch: its hit only
    // ends polling (accept_notify() consumes the notification).
    if (node->internal) return;
    ctx.mark_ready(node, kPollReadyEvent);
    progress = true;
    node->last_progress_ns = now_ns;
  });
  ctx.end_walk();
  return progress;
}

bool ContextImpl::poll_handlers_once() {
  bool hit = false;
  return poll_round(*this, live_, &hit, poll_max_ns_ > 0 ? poll_clock_ns() : 0);
}

bool ContextImpl::busy_poll(int64_t* timeout_ns) {
  stat_busy_attempts_.add();
  const int64_t poll_ns = poll_ns_.load(std::memory_order_relaxed);
  const int64_t budget = *timeout_ns < 0 ? poll_ns : std::min(*timeout_ns, poll_ns);
  const int64_t start_ns = poll_clock_ns();
  int64_t now_ns = start_ns;
  bool hit = false;
  bool progress = false;
  AIOLOOP_TRACE(busy_poll_start, this, budget);
  if (!poll_started_ && poll_set_started(true)) hit = true;
  while (!hit) {
    progress |= poll_round(*this, poll_set_, &hit, now_ns);
    if (hit) break;
    if (monitor_->need_wait()) {
      // Completions arrived (io_uring). Take them: only an event ends
      // polling; a cancelled request's last completion, say, must not.
      monitor_->wait(0);
      if (!ready_.empty()) break;
    }
    // Hand queued requests (io_uring re-arms) to the kernel without leaving
    // busy polling; a no-op for the other monitors.
    monitor_->flush();
    now_ns = poll_clock_ns();
    if (now_ns - start_ns >= budget) break;
  }
  // Completions the monitor collected while we polled (io_uring watches
  // every fd meanwhile) are work that polling found, too.
  hit = hit || !ready_.empty() || monitor_->need_wait();
  if (hit) stat_busy_hits_.add();
  AIOLOOP_TRACE(busy_poll_stop, this, hit, now_ns - start_ns);
  if (hit) {
    *timeout_ns = 0;
  } else if (*timeout_ns > 0) {
    *timeout_ns = std::max<int64_t>(0, *timeout_ns - (now_ns - start_ns));
  }
  drop_idle_pollers(now_ns);
  return progress;
}

bool ContextImpl::poll_set_started(bool started) {
  if (started == poll_started_) return false;
  poll_started_ = started;
  bool hit = false;
  begin_walk();
  poll_set_.for_each([&](HandlerNode* node) {
    if (node->deleted) return;
    if (started) {
      if (!node->in_poll_phase && !suspended(node)) {
        node->in_poll_phase = true;
        if (node->cb.poll_begin) node->cb.poll_begin();
      }
      return;
    }
    if (node->in_poll_phase) {
      node->in_poll_phase = false;
      if (node->cb.poll_end) node->cb.poll_end();
    }
    // One last poll after poll_end: work that arrived after the final busy
    // check but before notifications were re-enabled is found here rather
    // than lost until the next event.
    if (!node->deleted && !node->polling_now && node->cb.poll && !suspended(node)) {
      node->polling_now = true;
      const bool found = node->cb.poll();
      node->polling_now = false;
      if (found) {
        hit = true;
        mark_ready(node, kPollReadyEvent);
      }
    }
  });
  end_walk();
  return hit;
}

void ContextImpl::poll_set_join(HandlerNode* node) {
  if (IntrusiveList<HandlerNode, PollSetTag>::linked(node)) return;
  poll_set_.push_back(node);
  ++poll_set_live_;
  if (poll_started_ && !node->in_poll_phase && !suspended(node)) {
    node->in_poll_phase = true;
    if (node->cb.poll_begin) node->cb.poll_begin();
  }
}

void ContextImpl::poll_set_leave(HandlerNode* node) {
  IntrusiveList<HandlerNode, PollSetTag>::unlink(node);
  --poll_set_live_;
  if (!node->in_poll_phase) return;
  node->in_poll_phase = false;
  if (node->cb.poll_end) node->cb.poll_end();
  if (!node->deleted && node->cb.poll && node->cb.poll()) mark_ready(node, kPollReadyEvent);
}

void ContextImpl::drop_idle_pollers(int64_t now_ns) {
  // Only the outermost iteration prunes: unlinking under another walker
  // would pull the list out from under it.
  if (walkers_ > 0 || now_ns - last_idle_check_ns_ < kIdleCheckIntervalNs) return;
  last_idle_check_ns_ = now_ns;
  begin_walk();
  poll_set_.for_each([&](HandlerNode* node) {
    if (node->internal || node->deleted) return;
    if (now_ns - node->last_progress_ns > kPollIdleNs) poll_set_leave(node);
  });
  end_walk();
}

void ContextImpl::adapt_poll_ns(int64_t block_ns) {
  if (poll_weight_shift_ > 0) {
    // Per-handler estimates: dispatch_ready() feeds block_ns to the
    // handlers that had events and sets poll_ns from them.
    last_block_ns_ = block_ns;
    return;
  }
  const int64_t old_ns = poll_ns_.load(std::memory_order_relaxed);
  int64_t ns = old_ns;
  if (block_ns <= ns) return;  // the budget covered the wait: keep it
  if (block_ns > poll_max_ns_) {
    // Waiting was longer than we would ever poll: poll less.
    ns = poll_shrink_ > 0 ? ns / poll_shrink_ : 0;
  } else if (ns < poll_max_ns_) {
    // A little more polling would have caught the event: grow.
    ns = ns == 0 ? kPollStartNs : ns * (poll_grow_ > 0 ? poll_grow_ : 2);
    ns = std::min(ns, poll_max_ns_);
  }
  poll_ns_.store(ns, std::memory_order_relaxed);
  trace_poll_ns_change(this, old_ns, ns);
}

}  // namespace aioloop::detail

namespace aioloop::detail {

int64_t ContextImpl::update_estimate(HandlerNode* node) {
  // Integer exponentially weighted average: est += (sample - est) / 2^k.
  const int64_t sample = last_block_ns_ <= poll_max_ns_ ? last_block_ns_ : 0;
  node->estimate_ns += (sample - node->estimate_ns) / (int64_t{1} << poll_weight_shift_);
  if (node->estimate_ns < 0) node->estimate_ns = 0;
  return node->estimate_ns;
}

}  // namespace aioloop::detail
