// SPDX-License-Identifier: MIT
// The handler registry: fd -> handler, replacement, removal, and deferred
// freeing while someone walks the handlers.
//
// A walker (ready-list dispatch, a busy-poll round) holds raw node pointers
// while user callbacks run, and those callbacks may remove any handler. So
// removal marks the node deleted, takes it off the ready list and out of the
// fd table at once (the fd can be registered again immediately), but the
// node's memory and its std::function objects live on until the outermost
// walker finishes (walkers_ back at 0). Nodes stay on nodes_/poll_set_ until
// then too, so a walker's saved "next" pointer is never freed under it.
#include <fcntl.h>

#include "context_impl.h"
#include "error_util.h"

namespace aioloop::detail {

std::error_code ContextImpl::set_handler(int fd, FdHandler&& handler, bool internal) {
  assert_home();
  if (fd < 0) return errno_code(EBADF);
  if (handler.empty()) {
    remove_handler(fd);
    return {};
  }
  // One system call per registration buys a clear EBADF instead of a
  // monitor that reports a closed fd later (or never, under epoll).
  if (fcntl(fd, F_GETFD) < 0) return errno_code(errno);

  if (static_cast<size_t>(fd) >= by_fd_.size()) by_fd_.resize(static_cast<size_t>(fd) + 1, nullptr);
  HandlerNode* old = by_fd_[fd];
  auto* node = new HandlerNode(fd, std::move(handler), internal);
  by_fd_[fd] = node;
  live_.push_back(node);
  if (!node->cb.poll) ++without_poll_;

  if (std::error_code ec = monitor_->update(old, node)) {
    by_fd_[fd] = old;
    IntrusiveList<HandlerNode, LiveTag>::unlink(node);
    if (!node->cb.poll) --without_poll_;
    delete node;
    return ec;
  }
  if (old) retire(old);
  if (node->cb.poll) {
    // A new pollable handler starts in the poll set; it leaves after 7 s
    // without progress (busy_poll.cpp).
    ++pollable_live_;
    node->last_progress_ns = poll_clock_ns();
    poll_set_join(node);
  }
  return {};
}

void ContextImpl::remove_handler(int fd) {
  assert_home();
  HandlerNode* node = handler_for(fd);
  if (!node) return;
  by_fd_[fd] = nullptr;
  (void)monitor_->update(node, nullptr);
  retire(node);
}

void ContextImpl::retire(HandlerNode* node) {
  node->deleted = true;
  node->revents = 0;
  IntrusiveList<HandlerNode, ReadyTag>::unlink(node);
  if (!node->cb.poll) --without_poll_;
  if (node->cb.poll) --pollable_live_;
  // The node stays linked (a walker may hold its neighbours) but no longer
  // counts as polled.
  if (IntrusiveList<HandlerNode, PollSetTag>::linked(node)) --poll_set_live_;
  if (node->in_poll_phase && !destroying_) {
    // Keep poll_begin/poll_end paired even for a handler removed while the
    // context busy polls. No final poll: the handler is gone.
    node->in_poll_phase = false;
    if (node->cb.poll_end) node->cb.poll_end();
  }
  unref(node);  // the registry's reference
}

void ContextImpl::unref(HandlerNode* node) {
  if (--node->refs > 0) return;
  if (walkers_ > 0) {
    graveyard_.push_back(node);
    return;
  }
  free_node(node);
}

void ContextImpl::free_node(HandlerNode* node) {
  IntrusiveList<HandlerNode, LiveTag>::unlink(node);
  IntrusiveList<HandlerNode, PollSetTag>::unlink(node);
  delete node;
}

void ContextImpl::end_walk() {
  if (--walkers_ > 0) return;
  while (HandlerNode* node = graveyard_.pop_front()) free_node(node);
}

void ContextImpl::for_each_live(void (*fn)(HandlerNode*, void*), void* arg) {
  live_.for_each([&](HandlerNode* node) {
    if (!node->deleted) fn(node, arg);
  });
}

void ContextImpl::mark_ready(HandlerNode* node, uint32_t revents) {
  if (node->deleted) return;
  node->revents |= revents;
  if (!IntrusiveList<HandlerNode, ReadyTag>::linked(node)) ready_.push_back(node);
}

void ContextImpl::mark_invalid(HandlerNode* node) {
  if (node->invalid) return;
  node->invalid = true;
  stat_invalid_fds_.add();
}

}  // namespace aioloop::detail
