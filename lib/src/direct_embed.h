// SPDX-License-Identifier: MIT
// The handlers' own fds, as shown to an outer loop (GLib) by the epoll and
// io_uring monitors while a context has few handlers: the outer loop's
// revents are then the events, and check() needs no system call of its own.
// Above kDirectEmbedMax handlers those monitors show their one epoll or ring
// fd instead, whose cost does not grow with the number of fds.
#pragma once

#include <vector>

#include "fd_monitor.h"

namespace aioloop::detail {

class DirectEmbedList {
 public:
  // Each fd shown directly costs the outer poll() one file lookup and one
  // poll callback (tens of ns); the epoll or ring fd costs one poll callback
  // plus, for every event, a system call to learn what is ready (about
  // 1.2 us here). The context's own notifier counts as one of the eight,
  // shown or not (Context::set_embed_wakeup).
  static constexpr size_t kMaxHandlers = 8;

  // FdMonitor::update() succeeded: keeps the count of handlers with events
  // to watch, which decides whether the list is used at all.
  void handler_changed(const HandlerNode* old_node, const HandlerNode* new_node) {
    if (old_node && old_node->interest != 0) --watched_;
    if (new_node && new_node->interest != 0) ++watched_;
  }

  // Whether there are few enough handlers to show them directly.
  bool fits() const { return watched_ <= kMaxHandlers; }

  // The watched handlers: not closed, with events to watch, not suspended.
  void rebuild(MonitorHost& host) {
    fds_.clear();
    host_ = &host;
    host.for_each_live(&DirectEmbedList::add, this);
  }

  std::span<const EmbedFd> fds() const { return fds_; }

  // revents[i] is what the outer loop saw on fds()[i]. Marks those handlers
  // ready; returns true when one was found closed (the list is then stale).
  // The handlers may have changed since the outer loop took the list (GLib
  // runs other sources in between), so each fd is looked up afresh.
  bool report(MonitorHost& host, std::span<const short> revents) const {
    bool closed = false;
    for (size_t i = 0; i < revents.size() && i < fds_.size(); ++i) {
      if (!revents[i]) continue;
      HandlerNode* node = host.handler_for_fd(fds_[i].fd);
      if (!node || node->interest == 0) continue;
      if (node->cb.external && host.external_disabled()) continue;
      if (revents[i] & POLLNVAL) {
        host.mark_invalid(node);
        closed = true;
        continue;
      }
      host.mark_ready(node, static_cast<uint32_t>(static_cast<unsigned short>(revents[i])));
    }
    return closed;
  }

 private:
  static void add(HandlerNode* node, void* self_ptr) {
    auto* self = static_cast<DirectEmbedList*>(self_ptr);
    if (node->invalid || node->interest == 0) return;
    if (node->cb.external && self->host_->external_disabled()) return;
    if (self->host_->embed_hides(node)) return;
    self->fds_.push_back(EmbedFd{node->fd, static_cast<short>(node->interest)});
  }

  std::vector<EmbedFd> fds_;
  MonitorHost* host_ = nullptr;
  size_t watched_ = 0;
};

}  // namespace aioloop::detail
