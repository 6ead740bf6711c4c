// SPDX-License-Identifier: MIT
// Busy fds shown to an outer loop (GLib) beside a monitor's own fd, by the
// epoll and io_uring monitors while they have too many handlers to show
// each one (DirectEmbedList). An outer loop that polls only the epoll or
// ring fd pays for every event twice: its poll() says "something", and
// check() must then ask the monitor what (epoll_wait(), or reaping a
// completion that a wake-up posted through task work). An fd with an event
// in kPromoteAfter outer-loop rounds in a row is taken out of the monitor's
// watch (EPOLL_CTL_DEL, or its io_uring requests cancelled) and shown
// beside the monitor's fd instead: its events then come with the outer
// poll() itself. kDemoteAfter rounds without an event give it back to the
// monitor. At most kMaxHot fds are hot; external handlers never are (their
// suspension works on the monitor's watch, and a suspended fd must not be
// shown). The monitor decides what "taken out" and "given back" mean; this
// class keeps the rounds, the list and the outer loop's view of it.
#pragma once

#include <errno.h>
#include <poll.h>

#include <span>
#include <vector>

#include "fd_monitor.h"

namespace aioloop::detail {

class HotEmbedList {
 public:
  static constexpr size_t kMaxHot = 4;
  static constexpr uint32_t kPromoteAfter = 4;
  static constexpr uint64_t kDemoteAfter = 64;

  // An outer-loop round begins (embed_check() while not in direct mode).
  void begin_round() { ++round_; }

  // The monitor collected an event for node in this round. Returns whether
  // node has had one in kPromoteAfter rounds in a row and may become hot.
  bool wants_promotion(HandlerNode* node) {
    node->embed_streak = node->embed_round + 1 == round_ ? node->embed_streak + 1 : 1;
    node->embed_round = round_;
    return node->embed_streak >= kPromoteAfter && hot_.size() < kMaxHot && !node->cb.external &&
           !node->embed_hot;
  }

  // node has left the monitor's watch: show it.
  void promote(HandlerNode* node) {
    node->embed_hot = true;
    hot_.push_back(node->fd);
    dirty_ = true;
  }

  // node is no longer shown (removed, replaced, closed, or given back).
  void drop(HandlerNode* node) {
    node->embed_hot = false;
    node->embed_streak = 0;
    for (size_t i = 0; i < hot_.size(); ++i) {
      if (hot_[i] != node->fd) continue;
      hot_.erase(hot_.begin() + static_cast<ptrdiff_t>(i));
      dirty_ = true;
      return;
    }
  }

  bool empty() const { return hot_.empty(); }

  // Whether shown() changed since it was last built.
  bool dirty() const { return dirty_; }

  // What the outer loop watches: the monitor's own fd, then the hot fds.
  std::span<const EmbedFd> shown(EmbedFd own, MonitorHost& host) {
    if (dirty_ || shown_.empty() || shown_[0].fd != own.fd) {
      shown_.assign(1, own);
      for (int fd : hot_) {
        const HandlerNode* node = host.handler_for_fd(fd);
        shown_.push_back(EmbedFd{fd, static_cast<short>(node->interest)});
      }
      dirty_ = false;
    }
    return shown_;
  }

  // The outer loop's revents for shown() as it was when the outer loop
  // took it (revents[0] is the monitor's own fd, the caller's business).
  // Marks the hot handlers ready; a closed one is marked invalid and
  // dropped. Drops the hot handlers idle for kDemoteAfter rounds and puts
  // them in *idle, for the caller to give back to the monitor.
  void report(MonitorHost& host, std::span<const short> revents, std::vector<HandlerNode*>* idle) {
    std::vector<short> own;
    if (revents.size() < shown_.size() && shown_.size() > 1) {
      // The outer loop did not poll (an empty span): poll the hot fds here.
      std::vector<pollfd> fds;
      for (size_t i = 1; i < shown_.size(); ++i) fds.push_back({shown_[i].fd, shown_[i].events, 0});
      own.assign(shown_.size(), 0);
      int ready = 0;
      do {  // a signal can interrupt even a zero-timeout poll()
        ready = ::poll(fds.data(), fds.size(), 0);
      } while (ready < 0 && errno == EINTR);
      if (ready > 0) {
        for (size_t i = 1; i < shown_.size(); ++i) own[i] = fds[i - 1].revents;
      }
      revents = own;
    }
    for (size_t i = 1; i < revents.size() && i < shown_.size(); ++i) {
      if (!revents[i]) continue;
      HandlerNode* node = host.handler_for_fd(shown_[i].fd);
      // Handlers may have changed since the outer loop took the list.
      if (!node || !node->embed_hot) continue;
      if (revents[i] & POLLNVAL) {
        // Closed: as in direct mode, the handler stays registered, unwatched.
        drop(node);
        host.mark_invalid(node);
        continue;
      }
      node->embed_round = round_;
      host.mark_ready(node, static_cast<uint32_t>(static_cast<unsigned short>(revents[i])));
    }
    idle->clear();
    for (int fd : hot_) {
      HandlerNode* node = host.handler_for_fd(fd);
      if (node && round_ - node->embed_round >= kDemoteAfter) idle->push_back(node);
    }
    for (HandlerNode* node : *idle) drop(node);
  }

  // Drops every hot handler and returns them, for the caller to give back
  // to the monitor (or not: direct mode arms every fd when it ends).
  std::vector<HandlerNode*> take_all(MonitorHost& host) {
    if (hot_.empty()) return {};  // every native wait asks
    std::vector<HandlerNode*> out;
    for (int fd : hot_) {
      if (HandlerNode* node = host.handler_for_fd(fd)) out.push_back(node);
    }
    for (HandlerNode* node : out) drop(node);
    hot_.clear();  // fds without a handler any more
    dirty_ = true;
    return out;
  }

 private:
  std::vector<int> hot_;
  std::vector<EmbedFd> shown_;
  uint64_t round_ = 0;
  bool dirty_ = false;
};

}  // namespace aioloop::detail
