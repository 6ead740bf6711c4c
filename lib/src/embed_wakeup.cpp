// SPDX-License-Identifier: MIT
// The outer loop's own wake-up: an outer loop that can be woken by a call
// (GLib: g_main_context_wakeup()) need not watch the context's eventfd.
// notify() then calls that wake-up when only the outer loop announced a
// wait, and the embed lists leave the eventfd out: every outer poll() has
// one fd fewer to look up, while a cross-thread notification still costs
// one eventfd write (the outer loop's) and one read (the outer loop's).
//
// Which wait to wake: notify_me_ is 1 when only the outer loop announced
// (embed_prepare), and 2 or more while a native poll() waits, possibly
// nested in a callback the outer loop dispatches. Only the innermost of
// those can be blocked (they all run in the home thread), and with a native
// wait announced it is the native one, which watches the eventfd: so the
// eventfd is written whenever notify_me_ != 1. A notify() that read 1 just
// before a nested native poll() announced is not lost: by the fences of
// notify.cpp that poll() then sees notified_ and does not block.
//
// Locking: wake and arg change under outer_wake_mutex_ held exclusively,
// and notify() calls wake holding it shared, so once set_embed_wakeup()
// returns no notify() still calls the old wake, and the caller may release
// arg (GLib may then free the GMainContext). Shared, because notify()s from
// several threads must not queue behind each other's system call (a plain
// mutex would put them to sleep in the kernel, two more system calls each).
// The lock is taken only on notify()'s slow path, which makes a system call
// anyway.
#include "context_impl.h"

namespace aioloop {

using detail::ContextImpl;

void Context::set_embed_wakeup(void (*wake)(void*), void* arg) {
  auto& self = ContextImpl::of(*this);
  std::unique_lock<std::shared_mutex> lock(self.outer_wake_mutex_);
  self.outer_wake_ = wake;
  self.outer_wake_arg_ = wake ? arg : nullptr;
  self.outer_wake_set_.store(wake != nullptr, std::memory_order_relaxed);
  // release: a home thread that reads the new generation reads the new
  // outer_wake_set_ too.
  self.outer_wake_generation_.fetch_add(1, std::memory_order_release);
}

namespace detail {

bool ContextImpl::wake_outer_loop() {
  if (!outer_wake_set_.load(std::memory_order_relaxed)) return false;
  std::shared_lock<std::shared_mutex> lock(outer_wake_mutex_);
  if (!outer_wake_) return false;
  outer_wake_(outer_wake_arg_);
  return true;
}

void ContextImpl::sync_outer_wake() {
  const uint64_t generation = outer_wake_generation_.load(std::memory_order_acquire);
  if (generation == outer_wake_seen_) return;
  outer_wake_seen_ = generation;
  outer_wake_hides_notifier_ = outer_wake_set_.load(std::memory_order_relaxed);
  monitor_->embed_invalidate();
}

}  // namespace detail
}  // namespace aioloop
