// SPDX-License-Identifier: MIT
// The bottom-half queue of one context: lock-free push from any thread,
// run in scheduling order by the home thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

namespace aioloop::detail {

class BhList;

// Flags of a bottom half (BhNode::flags).
enum BhFlag : unsigned {
  kBhPending = 1u << 0,    // on the queue (pushed, not yet taken off)
  kBhScheduled = 1u << 1,  // should run when taken off
  kBhIdle = 1u << 2,       // scheduled with schedule_idle(): no early wake-up
  kBhDeleted = 1u << 3,    // the owner deleted it: free when taken off
  kBhOneshot = 1u << 4,    // run_soon(): free after running
};

struct BhNode {
  BhNode(BhList* list_, std::function<void()>&& callback_, unsigned initial_flags)
      : list(list_), callback(std::move(callback_)), flags(initial_flags) {}

  BhList* list;
  std::function<void()> callback;
  std::atomic<unsigned> flags;
  // The queue link. Written by the pusher before the push publishes the
  // node, read by the home thread after taking it: never written while the
  // node is on the queue.
  BhNode* next = nullptr;
  // Home thread only: how many invocations of the callback are on the stack
  // (a nested poll() can run it again), and whether it was deleted then.
  int running = 0;
  bool delete_after_run = false;
  // Home thread only: the home thread owns the node (kBhPending is set and
  // the node is on a home list or being run, not on the remote stack), and
  // whether it is on a home list right now.
  bool home_owned = false;
  bool in_list = false;
};

class BhList {
 public:
  // notify(arg, from_home) is called after every schedule, to wake the
  // loop; in_home(arg) tells whether the caller is the home thread.
  BhList(void (*notify)(void*, bool), bool (*in_home)(const void*), void* arg)
      : notify_(notify), in_home_(in_home), arg_(arg) {}
  ~BhList();  // frees what is still queued without running it
  BhList(const BhList&) = delete;
  BhList& operator=(const BhList&) = delete;

  // Any thread.
  void schedule(BhNode* bh, unsigned extra_flags);
  static void cancel(BhNode* bh);
  void run_soon(std::function<void()>&& fn);

  // Home thread: delete a bottom half (deferred while queued or running).
  void destroy(BhNode* bh);

  // Home thread: 0 when a non-idle bottom half is due, kIdleTimeoutNs when
  // only idle ones are, -1 when none is.
  int64_t timeout_ns() const;

  // Home thread: runs the bottom halves scheduled before the call, in order
  // (plus those of outer, interrupted rounds). Returns whether any ran and
  // adds their number to *count.
  bool run(uint64_t* count) noexcept;

  static constexpr int64_t kIdleTimeoutNs = 10 * 1000 * 1000;

 private:
  // A FIFO batch taken off the queue by one run(). Batches of nested runs are
  // chained so an inner run also finishes the outer ones.
  struct Slice {
    BhNode* head = nullptr;
    Slice* next = nullptr;
  };

  void move_remote_to_local();
  void append_local(BhNode* bh);
  void release_or_requeue(BhNode* bh);
  static bool is_due(unsigned flags, bool* idle_only);

  // The lock-free stack other threads push onto (newest first).
  std::atomic<BhNode*> queue_{nullptr};
  // Home thread only: bottom halves in scheduling order, waiting for the
  // next run(). The home thread appends here without a compare-and-swap.
  BhNode* local_head_ = nullptr;
  BhNode* local_tail_ = nullptr;
  // Home thread: the slices of the runs in progress, oldest first.
  Slice* slices_ = nullptr;
  void (*notify_)(void*, bool);
  bool (*in_home_)(const void*);
  void* arg_;
};

}  // namespace aioloop::detail
