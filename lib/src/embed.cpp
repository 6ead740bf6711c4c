// SPDX-License-Identifier: MIT
// Embedding: the iteration split into prepare / outer wait / check /
// dispatch, for an outer loop (the GSource, a bare poll() loop).
//
// The announcement is bit 0 of notify_me_ (native poll() adds 2), so
// prepare may run again without check (GLib does that when a
// higher-priority source is ready) and the announcement stays one bit. The
// ordering argument is the one in notify.cpp: announce, fence, then read the
// bottom-half queue and notified_.
#include "context_impl.h"

namespace aioloop {

using detail::ContextImpl;

int64_t Context::embed_prepare() {
  auto& self = ContextImpl::of(*this);
  self.assert_home();
  // The outer loop decides when to block: leave busy-poll mode properly.
  if (self.poll_started_) self.poll_set_started(false);
  self.monitor_->embed_prepare();
  // Consumed before announcing: a late embed_abandon() for an earlier wait
  // must not withdraw this one.
  self.drop_abandoned_announcement();
  // Work already due: the outer loop will not block, so there is nothing to
  // wake it from, and the announcement (a fence, and an eventfd write for
  // every notify() from another thread until check) waits for a prepare
  // that may block. GLib polls with a zero timeout after a prepare that
  // returned 0; a bare outer loop must do the same.
  if (self.notification_pending() || self.monitor_->need_wait()) return 0;
  self.notify_me_.store(self.notify_me_.load(std::memory_order_relaxed) | 1u,
                        std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // Notifications that came before the announcement was visible.
  if (self.notification_pending() || self.monitor_->need_wait()) return 0;
  return self.compute_timeout();
}

std::span<const EmbedFd> Context::embed_fds() {
  auto& self = ContextImpl::of(*this);
  self.assert_home();
  self.sync_outer_wake();
  return self.monitor_->embed_fds();
}

uint64_t Context::embed_fds_generation() {
  auto& self = ContextImpl::of(*this);
  self.assert_home();
  self.sync_outer_wake();
  return self.monitor_->embed_generation();
}

bool Context::embed_check(std::span<const short> revents) {
  auto& self = ContextImpl::of(*this);
  self.assert_home();
  // release: the outer wait is over before notify() may skip the eventfd.
  self.notify_me_.store(self.notify_me_.load(std::memory_order_relaxed) & ~1u,
                        std::memory_order_release);
  self.accept_notify();
  self.monitor_->embed_check(revents);
  // Any scheduled bottom half counts, idle ones included (DESIGN "The
  // GSource"): prepare gave the outer wait their 10 ms, and that wait is
  // over. Without them, a prepare that returned 0 for an idle bottom half's
  // notification was followed by a check that saw nothing due, and an
  // outer loop that dispatches only after a true check never ran it.
  const int64_t bh_timeout = self.bhs_.timeout_ns();
  return bh_timeout >= 0 || self.timeout_given(bh_timeout) == 0;
}

void Context::embed_abandon() {
  auto& self = ContextImpl::of(*this);
  // Any thread: the home thread drops the bit (context_impl.h says why it
  // must be the home thread and why no ordering is needed).
  self.announcement_abandoned_.store(true, std::memory_order_relaxed);
}

bool Context::embed_dispatch() {
  auto& self = ContextImpl::of(*this);
  self.assert_home();
  self.enter_iteration();
  const bool progress = self.dispatch();
  self.leave_iteration();
  return progress;
}

}  // namespace aioloop
