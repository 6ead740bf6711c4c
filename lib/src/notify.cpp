// SPDX-License-Identifier: MIT
// Cross-thread notification: make the home thread's poll() return soon,
// writing the eventfd only when the loop has announced a blocking wait.
//
// The protocol has two flags:
//   notify_me_  written by the home thread only: non-zero while the loop may
//               block (+2 for each native poll() waiting, bit 0 for the GSource
//               between prepare and check).
//   notified_   set by notify(), cleared by the home thread when it accepts
//               the notification (after the wait, before dispatching).
//
// The two sides, each with a sequentially consistent fence in the middle:
//   notify():   notified_ = true   ; fence ; if (notify_me_) write(eventfd)
//   the loop:   notify_me_ += 2    ; fence ; if (notified_) do not block
// This is the store-buffering pattern: with both fences at least one side
// sees the other's store. Either notify() sees the announcement and writes
// the eventfd, which ends the wait; or the loop sees notified_ and does not
// block. A wake-up cannot be lost.
//
// Why the loop may compute its timeout *before* announcing (and busy poll in
// between without announcing, so a notify() during busy polling costs no
// system call): everything that can shorten the timeout from another thread
// (a bottom-half schedule, a test-clock move) calls notify() after making its
// change, and the loop re-reads notified_ after the fence. A change the
// timeout computation missed is therefore either seen through notified_ or
// announced through the eventfd.
//
// Accepting: the loop clears notified_, then a fence, then reads the
// bottom-half queue. notify() publishes its queue push before its store of
// notified_ (release) and fences after it. If the loop's clear comes after
// notify()'s store in notified_'s modification order, the fences are ordered
// the same way (C++20 [atomics.fences]), so the loop's later queue read sees
// the push. If the clear comes first, notified_ stays set and the next
// iteration does not block. Either way the bottom half runs.
#include "context_impl.h"

namespace aioloop::detail {

void ContextImpl::notify_from(bool from_home) {
  if (from_home) {
    unsigned waiting = notify_me_.load(std::memory_order_relaxed);
    // An outer loop's announcement: if it gave up its wait, the bit is
    // stale and not worth a system call.
    if (waiting & 1u) waiting = drop_abandoned_announcement();
    if (waiting == 0) {
      // Only the home thread writes notify_me_, so from the home thread
      // this load is exact: no wait is announced, nobody is blocked, and
      // there is no other thread's store to order against. A
      // home-thread-only flag is enough for the next iteration not to
      // block, and accepting it needs no fence (a bottom half re-scheduled
      // from its callback costs none).
      notified_locally_ = true;
      return;
    }
  }
  notified_.store(true, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const unsigned waiting = notify_me_.load(std::memory_order_relaxed);
  if (waiting != 0) {
    // Any thread may get here, so this counter uses a locked add: it is the
    // slow path anyway (a system call follows).
    stat_eventfd_writes_.fetch_add(1, std::memory_order_relaxed);
    // Only the outer loop announced: its own wake-up, if it has one
    // (embed_wakeup.cpp says why 1 is the test).
    if (waiting == 1 && wake_outer_loop()) return;
    (void)notifier_.set();
  }
}

void ContextImpl::announce_blocking_wait() {
  // Only the home thread writes notify_me_, so load + store is an exact
  // increment; the fence orders it before the read of notified_ that
  // follows in the caller.
  notify_me_.store(notify_me_.load(std::memory_order_relaxed) + 2, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void ContextImpl::withdraw_announcement() {
  // release: the wait is over before notify() may skip the eventfd write.
  notify_me_.store(notify_me_.load(std::memory_order_relaxed) - 2, std::memory_order_release);
}

void ContextImpl::accept_notify() {
  notified_locally_ = false;
  if (!notified_.load(std::memory_order_relaxed)) {
    // Nothing to accept. A notify() racing with this load is not lost: it
    // leaves notified_ set for the next iteration, and its queue push is
    // read by this iteration or the next.
    return;
  }
  notified_.store(false, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace aioloop::detail
