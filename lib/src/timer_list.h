// SPDX-License-Identifier: MIT
// The armed timers of one clock of one context: a 4-ary min-heap.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace aioloop::detail {

class TimerList;

struct TimerNode {
  TimerNode(TimerList* list_, int64_t scale_, std::function<void()>&& callback_)
      : list(list_), scale(scale_), callback(std::move(callback_)) {}

  TimerList* list;
  int64_t scale;
  std::function<void()> callback;
  int64_t expire_ns = -1;  // -1 when not armed
  uint64_t arm_seq = 0;    // orders equal deadlines first-armed-first-fired
  uint32_t heap_index = kNotInHeap;
  int running = 0;  // invocations on the stack (nested poll() can fire it again)
  bool delete_after_run = false;

  static constexpr uint32_t kNotInHeap = UINT32_MAX;
};

class TimerList {
 public:
  TimerList() = default;
  ~TimerList();  // disarms what is armed (nodes belong to their handles)
  TimerList(const TimerList&) = delete;
  TimerList& operator=(const TimerList&) = delete;

  // O(log n). Arming an armed timer moves it.
  void arm(TimerNode* t, int64_t expire_ns);
  void disarm(TimerNode* t);
  void destroy(TimerNode* t);  // safe from t's own callback

  bool empty() const { return heap_.empty(); }
  // Deadline of the earliest armed timer; INT64_MAX when none.
  int64_t earliest() const { return heap_.empty() ? INT64_MAX : heap_[0].expire_ns; }

  // Fires, earliest first, every timer whose deadline is <= now_ns. A timer
  // armed by a callback of this pass waits for the next pass, even if it is
  // already due: a callback re-arming itself "now" cannot keep the loop here.
  // context identifies the owner in the timer_fire trace point (trace.h).
  bool run(int64_t now_ns, uint64_t* count, const void* context = nullptr) noexcept;

 private:
  struct Entry {
    int64_t expire_ns;
    TimerNode* node;
  };
  static bool before(const Entry& a, const Entry& b) {
    return a.expire_ns < b.expire_ns ||
           (a.expire_ns == b.expire_ns && a.node->arm_seq < b.node->arm_seq);
  }
  void place(uint32_t index, const Entry& e) {
    heap_[index] = e;
    e.node->heap_index = index;
  }
  void sift_up(uint32_t index, Entry e);
  void sift_down(uint32_t index, Entry e);
  void remove_at(uint32_t index);

  static constexpr uint32_t kArity = 4;
  std::vector<Entry> heap_;
  uint64_t next_seq_ = 0;
};

}  // namespace aioloop::detail
