// SPDX-License-Identifier: MIT
// One iteration of the native loop: Context::poll(blocking).
//
//   1. timeout: 0 if a bottom half is due or events are waiting; else the
//      nearest timer; 10 ms if only idle bottom halves wait; else forever.
//   2. busy poll while that is allowed and useful (busy_poll.cpp).
//   3. if still about to block: announce (notify_me_), fence, and give up
//      blocking if a notify() arrived meanwhile (notify.cpp).
//   4. wait in the fd monitor; it puts ready handlers on the ready list.
//   5. withdraw the announcement, accept the notification.
//   6. adapt the busy-poll budget.
//   7. run bottom halves, dispatch the ready list (freeing handlers removed
//      meanwhile once the outermost walk ends), run expired timers.
#include <algorithm>

#include "context_impl.h"
#include "trace.h"

namespace aioloop::detail {

namespace {

// Callbacks run so far (bottom halves, fd handlers, timers), for the
// iteration_start and iteration_end trace points: a tracer subtracts the
// two. Reporting totals keeps the iteration free of tracing state.
uint64_t callbacks_run(const ContextImpl& ctx) {
  return ctx.stat_bhs_run_.get() + ctx.stat_dispatched_.get() + ctx.stat_timers_fired_.get();
}

}  // namespace

int64_t ContextImpl::timeout_given(int64_t bh_timeout) const {
  int64_t timeout = bh_timeout;
  if (timeout == 0 || !ready_.empty()) return 0;
  if (!realtime_timers_.empty()) {
    int64_t delta = realtime_timers_.earliest() - now(ClockType::realtime);
    if (delta <= 0) return 0;
    timeout = timeout < 0 ? delta : std::min(timeout, delta);
  }
  // The test clock stands still while we block, so only a deadline already
  // reached matters; advance_test_clock() notifies for the others.
  if (!test_timers_.empty() &&
      test_timers_.earliest() <= test_clock_ns_.load(std::memory_order_relaxed)) {
    return 0;
  }
  return timeout;
}

bool ContextImpl::poll_impl(bool blocking) {
  assert_home();
  // An outer loop that gave up its wait (the GSource destroyed between
  // GLib's prepare and check) must not leave notify() writing the eventfd
  // while nothing waits for it.
  drop_abandoned_announcement();
  enter_iteration();
  // Guarded: three loads and two adds are a measurable part of a bottom
  // half's round (W1), so they are done only while a tracer listens.
  if (AIOLOOP_TRACE_ENABLED(iteration_start)) {
    AIOLOOP_TRACE(iteration_start, this, blocking, callbacks_run(*this));
  }

  int64_t timeout = blocking ? compute_timeout() : 0;
  const bool adapt = poll_max_ns_ > 0 && timeout != 0;
  const int64_t start_ns = adapt ? poll_clock_ns() : 0;

  bool progress = false;
  // Whether every watched fd's handler was just polled, so that a
  // zero-timeout wait would tell nothing new.
  bool polled_everything = false;
  if (timeout != 0 && poll_max_ns_ > 0 && poll_ns_.load(std::memory_order_relaxed) > 0) {
    // About to busy poll: hand queued requests (io_uring re-arms) to the
    // kernel now, so they do not force a wait. Only here: a blocking wait
    // submits them in the same system call anyway.
    monitor_->flush();
  }
  if (timeout != 0 && ready_.empty() && monitor_->need_wait()) {
    // Completions already in memory (io_uring): take them first. Only
    // events among them are a reason not to busy poll or block; a cancelled
    // request's last completion is not.
    monitor_->wait(0);
  }
  if (timeout != 0 && busy_poll_eligible()) {
    progress = busy_poll(&timeout);
    polled_everything = without_poll_ == 0 && poll_set_live_ == pollable_live_;
  } else if (timeout == 0 && without_poll_ == 0 && !monitor_->need_wait() &&
             !monitor_->has_unsubmitted()) {
    // Every handler is pollable: a round of poll callbacks stands in for a
    // zero-timeout wait, so this iteration needs no system call at all.
    progress = poll_handlers_once();
    polled_everything = true;
  }

  if (timeout != 0 && poll_started_) {
    // Leaving busy-poll mode: poll_end, then one last poll, which closes the
    // window between a device's last check and re-enabled notifications.
    if (poll_set_started(false)) timeout = 0;
  }
  // Events already collected, or completions still arriving: nothing to
  // block for.
  if (timeout != 0 && (!ready_.empty() || monitor_->need_wait())) timeout = 0;

  bool announced = false;
  if (timeout != 0) {
    announce_blocking_wait();
    announced = true;
    if (notification_pending()) timeout = 0;
  }
  if (timeout != 0 || !can_skip_wait(polled_everything)) {
    if (timeout != 0) stat_blocking_waits_.add();
    AIOLOOP_TRACE(wait_begin, this, timeout);
    monitor_->wait(timeout);
    AIOLOOP_TRACE(wait_end, this);
  }
  if (announced) withdraw_announcement();
  accept_notify();

  if (adapt) adapt_poll_ns(poll_clock_ns() - start_ns);

  progress |= dispatch();

  if (AIOLOOP_TRACE_ENABLED(iteration_end)) {
    // timeout is still what the wait was given: not 0 means it blocked.
    AIOLOOP_TRACE(iteration_end, this, timeout != 0, callbacks_run(*this), progress);
  }
  leave_iteration();
  return progress;
}

bool ContextImpl::can_skip_wait(bool polled_everything) const {
  // A zero-timeout wait is only skipped when no fd can be ready unseen:
  // every handler was just polled (a pollable handler outside the poll set
  // would otherwise starve while busy polling keeps finding work), or the
  // monitor keeps watching on its own and has nothing queued or completed.
  return (polled_everything || monitor_->watches_while_polling()) && !monitor_->need_wait() &&
         !monitor_->has_unsubmitted();
}

bool ContextImpl::dispatch() noexcept {
  uint64_t ran = 0;
  bool progress = bhs_.run(&ran);
  if (ran) stat_bhs_run_.add(ran);
  // Tested here rather than inside: the calls' prologues alone are a tenth
  // of what wrapping costs a GLib iteration in W1 (bench_gsource.cpp).
  if (!ready_.empty()) progress |= dispatch_ready();
  if (!realtime_timers_.empty() || !test_timers_.empty()) progress |= run_timers();
  return progress;
}

bool ContextImpl::dispatch_ready() noexcept {
  ++dispatch_walks_;
  bool progress = false;
  const bool track_pollers = poll_max_ns_ > 0;
  const int64_t now_ns = track_pollers ? poll_clock_ns() : 0;
  // Per-handler estimates: the largest among the handlers with events.
  const bool estimating = track_pollers && poll_weight_shift_ > 0 && last_block_ns_ >= 0;
  int64_t largest_estimate = -1;
  begin_walk();
  // pop_front each time: a nested poll() from a callback dispatches the rest
  // of this list itself, and nothing is dispatched twice.
  while (HandlerNode* node = ready_.pop_front()) {
    const uint32_t events = node->revents;
    node->revents = 0;
    // A callback may poll() nested, and that iteration may find this fd
    // ready again and run this handler's read or write callback itself:
    // then the events taken here are spent (the fd may be drained by now),
    // and running that callback again would report readiness twice.
    const uint32_t read_calls = node->read_calls;
    const uint32_t write_calls = node->write_calls;
    // A suspended external handler's event is dropped, not kept: every
    // monitor reports a still-ready fd again once it is resumed.
    if (suspended(node)) continue;
    monitor_->dispatching(node);
    AIOLOOP_TRACE(fd_dispatch, this, node->fd, events);
    bool ran = false;
    if ((events & kPollReadyEvent) && node->cb.poll_ready && !node->polling_now) {
      node->polling_now = true;  // a nested iteration must not re-enter it
      node->cb.poll_ready();
      node->polling_now = false;
      ran = true;
    }
    // Each callback may remove the handler or suspend external handlers
    // (disable_external()), so look again before the next one.
    if (!node->deleted && !suspended(node) && (events & kReadEvents) && node->cb.read &&
        node->read_calls == read_calls) {
      ++node->read_calls;
      node->cb.read();
      ran = true;
    }
    if (!node->deleted && !suspended(node) && (events & kWriteEvents) && node->cb.write &&
        node->write_calls == write_calls) {
      ++node->write_calls;
      node->cb.write();
      ran = true;
    }
    if (ran && !node->internal) {
      progress = true;
      stat_dispatched_.add();
    }
    if (track_pollers && !node->deleted && node->cb.poll && (events & ~kPollReadyEvent)) {
      // The fd fired: it joins (or stays in) the busy-poll set.
      node->last_progress_ns = now_ns;
      poll_set_join(node);
    }
    if (estimating && !node->deleted && !node->internal && node->cb.poll) {
      largest_estimate = std::max(largest_estimate, update_estimate(node));
    }
  }
  end_walk();
  if (estimating) {
    last_block_ns_ = -1;
    if (largest_estimate >= 0) {
      const int64_t old_ns = poll_ns_.load(std::memory_order_relaxed);
      const int64_t ns = std::min(largest_estimate, poll_max_ns_);
      poll_ns_.store(ns, std::memory_order_relaxed);
      trace_poll_ns_change(this, old_ns, ns);
    }
  }
  return progress;
}

bool ContextImpl::run_timers() noexcept {
  bool progress = false;
  uint64_t fired = 0;
  if (!realtime_timers_.empty()) {
    // run() returns at once when nothing is due; one clock read serves both.
    progress |= realtime_timers_.run(now(ClockType::realtime), &fired, this);
  }
  if (!test_timers_.empty()) {
    progress |= test_timers_.run(test_clock_ns_.load(std::memory_order_relaxed), &fired, this);
  }
  if (fired) stat_timers_fired_.add(fired);
  return progress;
}

}  // namespace aioloop::detail
