// SPDX-License-Identifier: MIT
// The poll fd monitor: ppoll(2) over an array that is rebuilt only when the
// set of handlers (or the external suspension) changes. Each wait costs
// O(number of watched fds) in the kernel and in the scan of the results;
// epoll and io_uring avoid that.
#include <errno.h>
#include <poll.h>
#include <sys/resource.h>

#include <vector>

#include "error_util.h"
#include "fd_monitor.h"
#include "time_util.h"

namespace aioloop::detail {

namespace {

class PollMonitor final : public FdMonitor {
 public:
  explicit PollMonitor(MonitorHost& host) : host_(host) {}

  Backend backend() const override { return Backend::poll; }

  std::error_code update(HandlerNode* old_node, HandlerNode* new_node) override {
    if (new_node && !old_node) {
      // ppoll() refuses more entries than RLIMIT_NOFILE (EINVAL), and the
      // loop could then never wait again: refuse the registration that
      // would go beyond the limit instead, with the errno of the limit.
      rlimit limit;
      if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && registered_ + 1 > limit.rlim_cur) {
        return errno_code(EMFILE);
      }
      ++registered_;
    } else if (old_node && !new_node) {
      --registered_;
    }
    dirty_ = true;
    return {};
  }

  void external_changed() override { dirty_ = true; }

  void wait(int64_t timeout_ns) override {
    if (dirty_) rebuild();
    int n = 0;
    wait_through_signals(timeout_ns, [&](int64_t remaining_ns) {
      timespec ts;
      n = ppoll(fds_.data(), fds_.size(), to_timespec_or_null(remaining_ns, &ts), nullptr);
      return n < 0 && errno == EINTR;
    });
    if (n <= 0) return;
    for (size_t i = 0; i < fds_.size() && n > 0; ++i) {
      if (!fds_[i].revents) continue;
      --n;
      report(nodes_[i], fds_[i].revents);
    }
  }

  std::span<const EmbedFd> embed_fds() override {
    if (dirty_) rebuild();
    return embed_;
  }

  uint64_t embed_generation() override {
    if (dirty_) rebuild();
    return generation_;
  }

  void embed_invalidate() override { dirty_ = true; }

  void embed_check(std::span<const short> revents) override {
    // The handlers may have changed since the outer loop took the array
    // (GLib runs other sources in between), so look each fd up afresh
    // instead of trusting nodes_.
    for (size_t i = 0; i < revents.size() && i < embed_.size(); ++i) {
      if (!revents[i]) continue;
      if (HandlerNode* node = host_.handler_for_fd(embed_[i].fd)) report(node, revents[i]);
    }
  }

 private:
  void report(HandlerNode* node, short revents) {
    if (revents & POLLNVAL) {
      // The fd was closed under us. Watching it again would return at once
      // forever, so drop it from the array until the handler changes.
      host_.mark_invalid(node);
      dirty_ = true;
      return;
    }
    host_.mark_ready(node, static_cast<uint32_t>(static_cast<unsigned short>(revents)));
  }

  void rebuild() {
    fds_.clear();
    nodes_.clear();
    embed_.clear();
    ++generation_;
    skip_external_ = host_.external_disabled();
    host_.for_each_live(&PollMonitor::add_if_watched, this);
    dirty_ = false;
  }

  static void add_if_watched(HandlerNode* node, void* self_ptr) {
    auto* self = static_cast<PollMonitor*>(self_ptr);
    if (node->invalid || node->interest == 0) return;
    if (node->cb.external && self->skip_external_) return;
    self->fds_.push_back(pollfd{node->fd, static_cast<short>(node->interest), 0});
    self->nodes_.push_back(node);
    if (self->host_.embed_hides(node)) return;
    self->embed_.push_back(EmbedFd{node->fd, static_cast<short>(node->interest)});
  }

  MonitorHost& host_;
  std::vector<pollfd> fds_;
  std::vector<HandlerNode*> nodes_;
  std::vector<EmbedFd> embed_;
  uint64_t generation_ = 0;
  size_t registered_ = 0;  // handlers, watched or not: each may be watched
  bool dirty_ = true;
  bool skip_external_ = false;
};

}  // namespace

std::unique_ptr<FdMonitor> make_poll_monitor(MonitorHost& host) {
  return std::make_unique<PollMonitor>(host);
}

}  // namespace aioloop::detail
