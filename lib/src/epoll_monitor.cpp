// SPDX-License-Identifier: MIT
// The epoll fd monitor. A wait costs O(number of ready fds), whatever the
// number of registered ones.
//
// Events carry the fd, not the node: an event still queued for a removed
// handler finds no node (or its replacement) instead of a dangling pointer.
//
// External handlers are suspended lazily: disable_external() costs nothing;
// an external fd that fires while suspended is taken out of the epoll set
// (EPOLL_CTL_DEL, not a zero event mask: epoll reports HUP and ERR even for
// an empty mask, and a hung-up fd would make the loop spin) and put back
// when the suspension ends.
//
// Embedding. An outer loop (GLib) that polls the epoll fd learns only that
// something is ready; check() must then ask epoll_wait() what, a system
// call per event on top of the outer poll(), and polling an epoll fd costs
// the outer poll() more than polling an eventfd or a socket. So while a
// context has at most DirectEmbedList::kMaxHandlers watched handlers, the
// outer loop is shown their fds directly, as under the poll
// monitor, and its revents are the events: W3 through GLib then costs what
// GLib's own fd sources cost. The epoll set stays as it is meanwhile, so a
// native poll() (say, nested in a callback) still works, and above the
// threshold the outer loop is shown the epoll fd again, whose cost does
// not grow with the number of fds.
//
// Hot fds. Above the threshold, an fd that had an event in kPromoteAfter
// outer-loop rounds in a row leaves the epoll set and is shown to the outer
// loop beside the epoll fd (at most kMaxHot of them): its events then come
// with the outer poll() itself, and the epoll fd stays unreadable, so a busy
// fd among 10,000 idle ones costs check() no epoll_wait() (W4 under GLib:
// three system calls per iteration, as with two fds, instead of four). A
// hot fd without an event for kDemoteAfter rounds goes back into the set.
// Moving costs one epoll_ctl() each way. A native wait() puts every hot fd
// back first (it waits on the set alone), and so does a switch to direct
// mode. External handlers never become hot: their suspension works on the
// set (see suspend()), and a suspended fd must not be shown.
#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <vector>

#include "config.h"
#include "direct_embed.h"
#include "error_util.h"
#include "fd_monitor.h"
#include "i18n.h"
#include "time_util.h"

namespace aioloop::detail {

namespace {

// node->monitor_tag: kInSet while the fd is in the epoll set on the node's
// behalf, kHot while it is shown to the outer loop instead (see the top of
// the file). node->monitor_round: the outer-loop round of its last event;
// node->monitor_streak: how many rounds in a row had one.
constexpr uint64_t kInSet = 1;
constexpr uint64_t kHot = 2;
constexpr size_t kMaxHot = 4;
constexpr uint32_t kPromoteAfter = 4;
constexpr uint64_t kDemoteAfter = 64;

class EpollMonitor final : public FdMonitor {
 public:
  explicit EpollMonitor(MonitorHost& host) : host_(host) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      int err = errno;
      throw make_error(err, "%s", _("cannot create an epoll instance"));
    }
    epoll_fd_ = EmbedFd{epfd_, POLLIN};
  }
  ~EpollMonitor() override { close(epfd_); }

  Backend backend() const override { return Backend::epoll; }

  std::error_code update(HandlerNode* old_node, HandlerNode* new_node) override {
    if (old_node && old_node->monitor_tag == kHot) {
      // Not in the set: whatever comes next starts from scratch.
      drop_hot(old_node->fd);
      old_node->monitor_tag = 0;
    }
    std::error_code ec = update_set(old_node, new_node);
    if (!ec) {
      direct_list_.handler_changed(old_node, new_node);
      embed_dirty_ = true;
    }
    return ec;
  }

  std::error_code update_set(HandlerNode* old_node, HandlerNode* new_node) {
    const bool old_in = old_node && old_node->monitor_tag == kInSet;
    if (!new_node) {
      if (old_in) {
        // EBADF/ENOENT: the fd was closed already, which removed it.
        (void)epoll_ctl(epfd_, EPOLL_CTL_DEL, old_node->fd, nullptr);
        old_node->monitor_tag = 0;
      }
      return {};
    }
    const uint32_t events = new_node->interest;
    if (events == 0) {
      // A poll-only handler: nothing for the kernel to watch.
      if (old_in) (void)epoll_ctl(epfd_, EPOLL_CTL_DEL, new_node->fd, nullptr);
      if (old_node) old_node->monitor_tag = 0;
      return {};
    }
    // Always tell the kernel, even for unchanged events: the old fd may
    // have been closed (which dropped it from the set) and its number
    // reused for the file the new handler means.
    if (std::error_code ec = set_events(new_node->fd, events, old_in)) return ec;
    if (old_node) old_node->monitor_tag = 0;
    new_node->monitor_tag = kInSet;
    new_node->monitor_events = events;
    return {};
  }

  void wait(int64_t timeout_ns) override {
    cool_all();  // the set alone is waited on
    collect(timeout_ns);
  }

  // Waits on the epoll set and marks the ready handlers.
  void collect(int64_t timeout_ns) {
    int n = 0;
    wait_through_signals(timeout_ns, [&](int64_t remaining_ns) {
      n = wait_once(remaining_ns);
      return n < 0 && errno == EINTR;
    });
    for (int i = 0; i < n; ++i) {
      const int fd = events_[i].data.fd;
      HandlerNode* node = host_.handler_for_fd(fd);
      if (!node || node->monitor_tag != kInSet) continue;
      if (node->cb.external && host_.external_disabled()) {
        suspend(node);
        continue;
      }
      host_.mark_ready(node, events_[i].events);
      if (embedded_round_) note_event(node);
    }
    if (n == static_cast<int>(events_.size()) && events_.size() < kMaxEvents) {
      // Full: let the next wait take more at once.
      events_.resize(events_.size() * 2);
    }
  }

  std::span<const EmbedFd> embed_fds() override {
    if (embed_dirty_) rebuild_embed();
    return direct_ ? direct_list_.fds() : std::span<const EmbedFd>(shown_);
  }

  uint64_t embed_generation() override {
    if (embed_dirty_) rebuild_embed();
    return embed_generation_;
  }

  void embed_check(std::span<const short> revents) override {
    if (!direct_) {
      ++round_;
      embedded_round_ = true;
      // The epoll fd is readable when any fd in the set is ready; collect
      // them without blocking.
      if (revents.empty() || revents[0] != 0) collect(0);
      embedded_round_ = false;
      report_hot(revents);
      return;
    }
    // A closed fd also left the epoll set.
    if (direct_list_.report(host_, revents)) embed_dirty_ = true;
  }

  void external_changed() override {
    embed_dirty_ = true;                    // suspended external fds are not shown directly
    if (host_.external_disabled()) return;  // suspension is lazy
    for (int fd : suspended_) {
      HandlerNode* node = host_.handler_for_fd(fd);
      if (!node || !node->monitor_suspended) continue;
      node->monitor_suspended = false;
      if (set_events(fd, node->monitor_events, false)) node->monitor_tag = 0;
    }
    suspended_.clear();
  }

 private:
  static constexpr size_t kMaxEvents = 1024;

  std::error_code set_events(int fd, uint32_t events, bool in_set) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    int op = in_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(epfd_, op, fd, &ev) == 0) return {};
    // MOD/ENOENT: the fd was closed and its number reused; ADD/EEXIST: the
    // set still has the fd from a registration we dropped (e.g. a
    // suspended handler that was replaced). Either way, the other op.
    if ((op == EPOLL_CTL_MOD && errno == ENOENT) || (op == EPOLL_CTL_ADD && errno == EEXIST)) {
      op = op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
      if (epoll_ctl(epfd_, op, fd, &ev) == 0) return {};
    }
    // EPERM: a regular file or directory, which epoll cannot watch.
    return errno_code(errno);
  }

  void rebuild_embed() {
    direct_ = direct_list_.fits();
    if (direct_) {
      cool_all();  // the set must be whole for a native wait
      direct_list_.rebuild(host_);
    } else {
      shown_.assign(1, epoll_fd_);
      for (int fd : hot_) {
        const HandlerNode* node = host_.handler_for_fd(fd);
        shown_.push_back(EmbedFd{fd, static_cast<short>(node->monitor_events)});
      }
    }
    embed_dirty_ = false;  // after cool_all(), which sets it
    ++embed_generation_;
  }

  // An event collected in an outer-loop round: a handler with one in
  // kPromoteAfter rounds in a row becomes hot, if there is room.
  void note_event(HandlerNode* node) {
    node->monitor_streak = node->monitor_round + 1 == round_ ? node->monitor_streak + 1 : 1;
    node->monitor_round = round_;
    if (node->monitor_streak < kPromoteAfter || hot_.size() >= kMaxHot) return;
    if (node->cb.external) return;  // suspension works on the set (see suspend())
    if (epoll_ctl(epfd_, EPOLL_CTL_DEL, node->fd, nullptr) != 0) return;
    node->monitor_tag = kHot;
    hot_.push_back(node->fd);
    embed_dirty_ = true;
  }

  // The outer loop's revents for the hot fds it was shown (shown_[1...]).
  // A hot fd idle for kDemoteAfter rounds goes back into the set.
  void report_hot(std::span<const short> revents) {
    std::vector<short> own;
    if (revents.size() < shown_.size() && shown_.size() > 1) {
      // The outer loop did not poll (an empty span): poll the hot fds here.
      std::vector<pollfd> fds;
      for (size_t i = 1; i < shown_.size(); ++i) fds.push_back({shown_[i].fd, shown_[i].events, 0});
      own.assign(shown_.size(), 0);
      if (::poll(fds.data(), fds.size(), 0) > 0) {
        for (size_t i = 1; i < shown_.size(); ++i) own[i] = fds[i - 1].revents;
      }
      revents = own;
    }
    for (size_t i = 1; i < revents.size() && i < shown_.size(); ++i) {
      if (!revents[i]) continue;
      HandlerNode* node = host_.handler_for_fd(shown_[i].fd);
      // Handlers may have changed since the outer loop took the list.
      if (!node || node->monitor_tag != kHot) continue;
      if (revents[i] & POLLNVAL) {
        // Closed: as in direct mode, the handler stays registered, unwatched.
        drop_hot(node->fd);
        node->monitor_tag = 0;
        host_.mark_invalid(node);
        continue;
      }
      node->monitor_round = round_;
      host_.mark_ready(node, static_cast<uint32_t>(static_cast<unsigned short>(revents[i])));
    }
    for (size_t i = 0; i < hot_.size();) {
      HandlerNode* node = host_.handler_for_fd(hot_[i]);
      if (node && round_ - node->monitor_round < kDemoteAfter) {
        ++i;
        continue;
      }
      cool(i);
    }
  }

  // Puts hot_[i] back into the epoll set.
  void cool(size_t i) {
    HandlerNode* node = host_.handler_for_fd(hot_[i]);
    hot_.erase(hot_.begin() + static_cast<ptrdiff_t>(i));
    embed_dirty_ = true;
    if (!node) return;
    node->monitor_streak = 0;
    if (set_events(node->fd, node->monitor_events, false)) {
      node->monitor_tag = 0;  // closed meanwhile (EBADF): nothing left to watch
      host_.mark_invalid(node);
    } else {
      node->monitor_tag = kInSet;
    }
  }

  void cool_all() {
    while (!hot_.empty()) cool(hot_.size() - 1);
  }

  void drop_hot(int fd) {
    for (size_t i = 0; i < hot_.size(); ++i) {
      if (hot_[i] != fd) continue;
      hot_.erase(hot_.begin() + static_cast<ptrdiff_t>(i));
      embed_dirty_ = true;
      return;
    }
  }

  void suspend(HandlerNode* node) {
    (void)epoll_ctl(epfd_, EPOLL_CTL_DEL, node->fd, nullptr);
    node->monitor_suspended = true;
    suspended_.push_back(node->fd);
  }

  int wait_once(int64_t timeout_ns) {
#if AIOLOOP_HAVE_EPOLL_PWAIT2
    if (have_pwait2_) {
      timespec ts;
      int n = epoll_pwait2(epfd_, events_.data(), static_cast<int>(events_.size()),
                           to_timespec_or_null(timeout_ns, &ts), nullptr);
      if (n >= 0 || errno != ENOSYS) return n;
      have_pwait2_ = false;  // kernels before 5.11
    }
#endif
    // Millisecond fallback.
    return epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()),
                      to_timeout_ms_rounded_up(timeout_ns));
  }

  MonitorHost& host_;
  int epfd_ = -1;
  // What the outer loop watches: the epoll fd and the hot fds (shown_), or
  // (direct_) the handlers' fds.
  EmbedFd epoll_fd_{};
  std::vector<EmbedFd> shown_;
  std::vector<int> hot_;
  uint64_t round_ = 0;           // outer-loop rounds (embed_check() calls, not direct)
  bool embedded_round_ = false;  // collect() runs for embed_check()
  DirectEmbedList direct_list_;
  uint64_t embed_generation_ = 0;
  bool embed_dirty_ = true;
  bool direct_ = false;
  std::vector<epoll_event> events_ = std::vector<epoll_event>(64);
  std::vector<int> suspended_;
  bool have_pwait2_ = true;
};

}  // namespace

std::unique_ptr<FdMonitor> make_epoll_monitor(MonitorHost& host) {
  return std::make_unique<EpollMonitor>(host);
}

}  // namespace aioloop::detail
