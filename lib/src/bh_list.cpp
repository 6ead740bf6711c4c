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
#include "bh_list.h"

#include <cassert>

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
  // acq_rel: release publishes what the caller wrote before scheduling to
  // the home thread, which takes the flags with an acquire fetch_and.
  unsigned old = bh->flags.fetch_or(kBhPending | kBhScheduled | extra_flags,
                                    std::memory_order_acq_rel);
  if (!(old & kBhPending) && in_home_(arg_)) {
    // We own the queueing, and only the home thread reads the local FIFO.
    move_remote_to_local();
    append_local(bh);
  } else if (!(old & kBhPending)) {
    // We own the push: nobody else touches bh->next until the home thread
    // has taken the node off the queue and cleared kBhPending.
    BhNode* head = queue_.load(std::memory_order_relaxed);
    do {
      bh->next = head;
    } while (!queue_.compare_exchange_weak(head, bh, std::memory_order_release,
                                           std::memory_order_relaxed));
  }
  if (!(extra_flags & kBhIdle) || !(old & kBhPending)) {
    // notify() orders the push above before its own store of `notified`
    // (see notify.cpp), so a loop that sees the notification sees the node.
    notify_(arg_);
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
  if (bh->running) {
    // Deleting from inside its own callback: the std::function is running,
    // so it must survive until run() regains control.
    bh->delete_after_run = true;
    return;
  }
  unsigned old = bh->flags.fetch_or(kBhDeleted, std::memory_order_acq_rel);
  if (!(old & kBhPending)) delete bh;
  // Otherwise it is queued: run() frees it when it takes it off.
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
    // Unlink before clearing kBhPending: from that moment another thread may
    // push the node again and rewrite bh->next.
    s->head = bh->next;
    // acquire pairs with the release in schedule(): the scheduler's writes
    // are visible to the callback.
    unsigned flags =
        bh->flags.fetch_and(~(kBhPending | kBhScheduled | kBhIdle), std::memory_order_acq_rel);
    if ((flags & (kBhScheduled | kBhDeleted)) == kBhScheduled) {
      bh->running = true;
      bh->callback();  // noexcept context: a throwing callback terminates
      bh->running = false;
      progress = true;
      ++*count;
      if (flags & kBhOneshot) {
        delete bh;
      } else if (bh->delete_after_run) {
        bh->delete_after_run = false;
        destroy(bh);
      }
    } else if (flags & (kBhDeleted | kBhOneshot)) {
      delete bh;
    }
  }
  return progress;
}

}  // namespace aioloop::detail
