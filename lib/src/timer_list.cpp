// SPDX-License-Identifier: MIT
// Timers. A 4-ary heap keeps arm, re-arm and cancel at O(log n) with shallow
// trees (log4 of 100,000 is about 8) and four children per cache line pair;
// QEMU's sorted list costs O(n) per arm. Each node knows its heap index, so
// cancel and re-arm need no search.
#include "timer_list.h"

#include <cassert>

#include "trace.h"

namespace aioloop::detail {

TimerList::~TimerList() {
  for (Entry& e : heap_) {
    e.node->heap_index = TimerNode::kNotInHeap;
    e.node->expire_ns = -1;
  }
}

void TimerList::sift_up(uint32_t index, Entry e) {
  while (index > 0) {
    uint32_t parent = (index - 1) / kArity;
    if (!before(e, heap_[parent])) break;
    place(index, heap_[parent]);
    index = parent;
  }
  place(index, e);
}

void TimerList::sift_down(uint32_t index, Entry e) {
  const uint32_t size = static_cast<uint32_t>(heap_.size());
  for (;;) {
    uint32_t first = index * kArity + 1;
    if (first >= size) break;
    // The children's children are the next cache lines this walk needs: in
    // a heap of tens of thousands of timers they are rarely cached, and
    // fetching them while we compare saves most of a miss per level.
    const uint32_t grandchildren = first * kArity + 1;
    if (grandchildren < size) __builtin_prefetch(&heap_[grandchildren]);
    uint32_t last = first + kArity < size ? first + kArity : size;
    uint32_t best = first;
    for (uint32_t c = first + 1; c < last; ++c) {
      if (before(heap_[c], heap_[best])) best = c;
    }
    if (!before(heap_[best], e)) break;
    place(index, heap_[best]);
    index = best;
  }
  place(index, e);
}

void TimerList::arm(TimerNode* t, int64_t expire_ns) {
  t->expire_ns = expire_ns;
  t->arm_seq = next_seq_++;
  Entry e{expire_ns, t};
  if (t->heap_index == TimerNode::kNotInHeap) {
    heap_.push_back(e);
    sift_up(static_cast<uint32_t>(heap_.size() - 1), e);
    return;
  }
  // Re-arm in place: the entry moves up or down from where it is.
  uint32_t index = t->heap_index;
  if (index > 0 && before(e, heap_[(index - 1) / kArity])) {
    sift_up(index, e);
  } else {
    sift_down(index, e);
  }
}

void TimerList::remove_at(uint32_t index) {
  heap_[index].node->heap_index = TimerNode::kNotInHeap;
  Entry last = heap_.back();
  heap_.pop_back();
  if (index == heap_.size()) return;
  if (index > 0 && before(last, heap_[(index - 1) / kArity])) {
    sift_up(index, last);
  } else {
    sift_down(index, last);
  }
}

void TimerList::disarm(TimerNode* t) {
  if (t->heap_index != TimerNode::kNotInHeap) remove_at(t->heap_index);
  t->expire_ns = -1;
}

void TimerList::destroy(TimerNode* t) {
  disarm(t);
  if (t->running > 0) {
    t->delete_after_run = true;  // its std::function is on the stack
  } else {
    delete t;
  }
}

bool TimerList::run(int64_t now_ns, uint64_t* count, const void* context) noexcept {
  if (heap_.empty() || heap_[0].expire_ns > now_ns) return false;
  // Timers armed from here on (arm_seq >= this_pass) wait for the next pass.
  // A nested pass (a callback running poll()) takes its own bound, so it
  // does fire what the outer pass armed before it started.
  const uint64_t this_pass = next_seq_;
  // The next timer to fire: the earliest due one armed before this pass.
  // Usually the heap's top. But a callback may have armed a timer that is
  // due already; it sits on top until the next pass, and older due timers
  // must still fire now (else a callback that keeps arming a timer in the
  // past would starve them). Then look below it: no child is earlier than
  // its parent, so the walk descends only through this pass's arms.
  auto next_due = [&]() -> uint32_t {
    if (heap_.empty() || heap_[0].expire_ns > now_ns) return TimerNode::kNotInHeap;
    if (heap_[0].node->arm_seq < this_pass) return 0;
    uint32_t best = TimerNode::kNotInHeap;
    std::vector<uint32_t> walk{0};
    while (!walk.empty()) {
      const uint32_t i = walk.back();
      walk.pop_back();
      if (heap_[i].node->arm_seq < this_pass) {
        if (best == TimerNode::kNotInHeap || before(heap_[i], heap_[best])) best = i;
        continue;
      }
      const uint32_t first = i * kArity + 1;
      for (uint32_t c = first; c < first + kArity && c < heap_.size(); ++c) {
        if (heap_[c].expire_ns <= now_ns) walk.push_back(c);
      }
    }
    return best;
  };
  bool progress = false;
  for (uint32_t index; (index = next_due()) != TimerNode::kNotInHeap;) {
    TimerNode* t = heap_[index].node;
    remove_at(index);
    AIOLOOP_TRACE(timer_fire, context, t, t->expire_ns);
    t->expire_ns = -1;
    ++t->running;
    t->callback();  // noexcept context: a throwing callback terminates
    --t->running;
    progress = true;
    ++*count;
    if (t->delete_after_run && t->running == 0) delete t;
  }
  return progress;
}

}  // namespace aioloop::detail
