// SPDX-License-Identifier: MIT
// Bottom halves.
//
// schedule() is lock-free: set the flags, queue the node unless it is queued
// already, and notify. Other threads push onto a Treiber stack; the home
// thread takes the whole stack with one exchange and reverses it, which
// restores scheduling order, onto its local FIFO. The home thread itself
// appends to the local FIFO directly (no compare-and-swap: W1, a bottom half
// re-scheduling itself, is dominated by locked instructions), after first
// moving over whatever the stack holds, so a remote schedule it has seen
// stays ahead of its own.
//
// Each run() works on the batch it took (a "slice"); anything scheduled while
// the slice runs waits for the next run(), so a self-rescheduling bottom half
// runs once per iteration and cannot starve fd handlers and timers.
//
// Ownership: kBhPending set means "queued, or being run": nobody pushes the
// node again. Once the home thread has the node (home_owned), it keeps
// kBhPending set while the callback runs, and clears it (with a CAS) only if
// the node was not scheduled again meanwhile. A re-schedule from the home
// thread of a node it owns then only has to *set* bits, which a plain store
// can do (see schedule()); clearing bits is always an atomic read-modify-
// write, so no other thread's schedule() can be lost. A bottom half that
// re-schedules itself costs one locked instruction per run, not two.
#include "bh_list.h"

#include <cassert>

#include "trace.h"

namespace aioloop::detail {

BhList::~BhList() {
  // Nothing can schedule any more: every handle is gone (they keep the
  // context alive) and run_soon() callers must not outlive the context.
  // Queued one-shots are released without running; deleted nodes freed.
  move_remote_to_local();
  BhNode* bh = local_head_;
  while (bh) {
    BhNode* next = bh->next;
    delete bh;
    bh = next;
  }
}

void BhList::append_local(BhNode* bh) {
  bh->home_owned = true;
  bh->in_list = true;
  bh->next = nullptr;
  if (local_tail_) {
    local_tail_->next = bh;
  } else {
    local_head_ = bh;
  }
  local_tail_ = bh;
}

void BhList::move_remote_to_local() {
  if (queue_.load(std::memory_order_relaxed) == nullptr) return;
  // acquire pairs with the release push: the nodes' `next` fields are seen.
  BhNode* newest_first = queue_.exchange(nullptr, std::memory_order_acquire);
  BhNode* in_order = nullptr;
  BhNode* last = newest_first;
  while (newest_first) {
    BhNode* next = newest_first->next;
    newest_first->home_owned = true;
    newest_first->in_list = true;
    newest_first->next = in_order;
    in_order = newest_first;
    newest_first = next;
  }
  if (!in_order) return;
  if (local_tail_) {
    local_tail_->next = in_order;
  } else {
    local_head_ = in_order;
  }
  local_tail_ = last;
}

void BhList::schedule(BhNode* bh, unsigned extra_flags) {
  const bool idle = (extra_flags & kBhIdle) != 0;
  bool queued_now = false;
  const bool from_home = in_home_(arg_);
  if (from_home && bh->home_owned) {
    // The home thread owns the node, so kBhPending is set and stays set:
    // only kBhScheduled (and the idle bit) change. The other writers at this
    // moment can only be other threads' schedule() and cancel(). Their
    // schedule() sets bits this store sets too (kBhIdle aside: losing it
    // merely makes the bottom half urgent); losing their cancel() is the
    // same as that cancel() having come first. So a plain store is enough.
    unsigned flags = bh->flags.load(std::memory_order_relaxed) | kBhScheduled;
    flags = idle ? (flags | kBhIdle) : (flags & ~kBhIdle);
    bh->flags.store(flags, std::memory_order_release);
    if (!bh->in_list) {
      // Being run right now (it re-schedules itself): queue it here, so it
      // keeps its place in scheduling order.
      move_remote_to_local();
      append_local(bh);
    }
  } else {
    // acq_rel: release publishes what the caller wrote before scheduling to
    // the home thread, which takes the flags with an acquire fetch_and.
    const unsigned old =
        bh->flags.fetch_or(kBhPending | kBhScheduled | extra_flags, std::memory_order_acq_rel);
    if (!idle && (old & kBhIdle)) {
      // Was scheduled idle before: now it is urgent. Racing with the home
      // thread taking it only means it runs as a normal bottom half.
      bh->flags.fetch_and(~kBhIdle, std::memory_order_relaxed);
    }
    queued_now = !(old & kBhPending);
    if (queued_now && from_home) {
      // We own the queueing, and only the home thread reads the local FIFO.
      move_remote_to_local();
      append_local(bh);
    } else if (queued_now) {
      // We own the push: nobody else touches bh->next until the home thread
      // has taken the node off the queue and released kBhPending.
      BhNode* head = queue_.load(std::memory_order_relaxed);
      do {
        bh->next = head;
      } while (!queue_.compare_exchange_weak(head, bh, std::memory_order_release,
                                             std::memory_order_relaxed));
    }
  }
  if (!idle || queued_now) {
    // notify() orders the push above before its own store of `notified`
    // (see notify.cpp), so a loop that sees the notification sees the node.
    notify_(arg_, from_home);
  }
}

void BhList::cancel(BhNode* bh) {
  // The node stays queued; run() finds kBhScheduled clear and skips it.
  bh->flags.fetch_and(~(kBhScheduled | kBhIdle), std::memory_order_relaxed);
}

void BhList::run_soon(std::function<void()>&& fn) {
  auto* bh = new BhNode(this, std::move(fn), kBhOneshot);
  schedule(bh, 0);
}

void BhList::destroy(BhNode* bh) {
  if (bh->running > 0) {
    // Deleting from inside its own callback: the std::function is running,
    // so it must survive until run() regains control. If it re-scheduled
    // itself first, withdraw that: a nested poll() before the callback
    // returns would otherwise run the deleted bottom half again.
    bh->delete_after_run = true;
    cancel(bh);
    return;
  }
  const unsigned old = bh->flags.fetch_or(kBhDeleted, std::memory_order_acq_rel);
  if (!(old & kBhPending)) delete bh;
  // Otherwise it is queued (on the remote stack or a home list): run()
  // frees it when it takes it off.
}

void BhList::release_or_requeue(BhNode* bh) {
  unsigned flags = bh->flags.load(std::memory_order_relaxed);
  for (;;) {
    if (flags & kBhScheduled) {
      // Another thread scheduled it while it ran; its fetch_or saw
      // kBhPending and left the queueing to us.
      append_local(bh);
      return;
    }
    // acq_rel: from here on another thread may push the node again.
    if (bh->flags.compare_exchange_weak(flags, flags & ~kBhPending, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
      bh->home_owned = false;
      return;
    }
  }
}

bool BhList::is_due(unsigned flags, bool* idle_only) {
  if ((flags & (kBhScheduled | kBhDeleted)) != kBhScheduled) return false;
  if (flags & kBhIdle) {
    *idle_only = true;
    return false;
  }
  return true;
}

int64_t BhList::timeout_ns() const {
  bool idle = false;
  // Reading the stack while other threads push is safe: pushes only add at
  // the head, and only this thread removes nodes.
  for (BhNode* bh = local_head_; bh; bh = bh->next) {
    if (is_due(bh->flags.load(std::memory_order_relaxed), &idle)) return 0;
  }
  for (BhNode* bh = queue_.load(std::memory_order_acquire); bh; bh = bh->next) {
    if (is_due(bh->flags.load(std::memory_order_relaxed), &idle)) return 0;
  }
  for (Slice* s = slices_; s; s = s->next) {
    for (BhNode* bh = s->head; bh; bh = bh->next) {
      if (is_due(bh->flags.load(std::memory_order_relaxed), &idle)) return 0;
    }
  }
  return idle ? kIdleTimeoutNs : -1;
}

bool BhList::run(uint64_t* count) noexcept {
  move_remote_to_local();
  if (local_head_ == nullptr && slices_ == nullptr) return false;

  Slice slice{local_head_, nullptr};
  local_head_ = local_tail_ = nullptr;
  // Append our slice after the outer runs' slices: they were scheduled first.
  Slice** tail = &slices_;
  while (*tail) tail = &(*tail)->next;
  *tail = &slice;

  bool progress = false;
  while (Slice* s = slices_) {
    BhNode* bh = s->head;
    if (!bh) {
      // Finished (possibly an outer run's slice: its run() will find the
      // chain empty and return).
      slices_ = s->next;
      continue;
    }
    s->head = bh->next;
    bh->in_list = false;
    // Atomic: a schedule() from another thread racing with this must not be
    // lost. kBhPending stays set (see the top of this file). acquire pairs
    // with the release in schedule(): the scheduler's writes are visible to
    // the callback.
    const unsigned flags =
        bh->flags.fetch_and(~(kBhScheduled | kBhIdle), std::memory_order_acq_rel);
    if ((flags & (kBhScheduled | kBhDeleted)) == kBhScheduled) {
      ++bh->running;
      AIOLOOP_TRACE(bh_run, /*context=*/arg_, bh);
      bh->callback();  // noexcept context: a throwing callback terminates
      --bh->running;
      progress = true;
      ++*count;
    }
    if (flags & (kBhDeleted | kBhOneshot)) {
      delete bh;  // deleted while queued, or a one-shot that has had its turn
    } else if (bh->running > 0) {
      // An outer invocation of this callback is still on the stack (we are
      // in a nested poll()); it finishes the bookkeeping.
    } else if (bh->delete_after_run) {
      bh->delete_after_run = false;
      if (bh->in_list) {
        // It re-scheduled itself before deleting itself: it sits on the
        // local list, which frees it when it gets there.
        bh->flags.fetch_or(kBhDeleted, std::memory_order_relaxed);
      } else {
        delete bh;
      }
    } else if (!bh->in_list) {
      release_or_requeue(bh);
    }
  }
  return progress;
}

}  // namespace aioloop::detail
