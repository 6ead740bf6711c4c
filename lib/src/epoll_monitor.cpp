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
// GLib's own fd sources cost. Their fds leave the epoll set meanwhile: an fd
// in an epoll set runs the instance's wake-up callback (a lock, the ready
// list) inside every write() that makes it ready, for nothing while the
// outer loop polls the fd itself; in W3 under GLib that was 0.04-0.05x of
// the kernel's wake-up cost (1.16x L3 against 1.09-1.12x without it). A
// registration while direct still goes through EPOLL_CTL_ADD, which is
// where the kernel refuses an fd it cannot watch, and leaves at the next
// rebuild. A native wait() (say, nested in a callback) puts every fd back
// first; the next outer-loop round takes them out again. Above the
// threshold the outer loop is shown the epoll fd again, whose cost does not
// grow with the number of fds.
//
// Hot fds (hot_embed.h). Above the threshold, a busy fd leaves the epoll
// set (one epoll_ctl() each way) and is shown beside the epoll fd, which
// then stays unreadable: W4 under GLib with 10,000 idle fds costs no
// epoll_wait() per event (three system calls per iteration, as with two
// fds, instead of four). A native wait() puts every hot fd back first (it
// waits on the set alone), and so does a switch to direct mode.
#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <vector>

#include "config.h"
#include "direct_embed.h"
#include "error_util.h"
#include "fd_monitor.h"
#include "hot_embed.h"
#include "i18n.h"
#include "time_util.h"

namespace aioloop::detail {

namespace {

// node->monitor_tag: 1 while the fd is in the epoll set on the node's behalf
// (not while it is hot or shown directly: then the outer loop polls it).
constexpr uint64_t kInSet = 1;

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
    // A hot fd is not in the set: whatever comes next starts from scratch.
    if (old_node && old_node->embed_hot) hot_.drop(old_node);
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
    leave_direct();  // the set alone is waited on
    cool_all();
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
      if (embedded_round_ && hot_.wants_promotion(node)) heat(node);
    }
    if (n == static_cast<int>(events_.size()) && events_.size() < kMaxEvents) {
      // Full: let the next wait take more at once.
      events_.resize(events_.size() * 2);
    }
  }

  std::span<const EmbedFd> embed_fds() override {
    if (embed_dirty_ || hot_.dirty()) rebuild_embed();
    return direct_ ? direct_list_.fds() : hot_.shown(epoll_fd_, host_);
  }

  uint64_t embed_generation() override {
    if (embed_dirty_ || hot_.dirty()) rebuild_embed();
    return embed_generation_;
  }

  void embed_invalidate() override { embed_dirty_ = true; }

  void embed_check(std::span<const short> revents) override {
    if (!direct_) {
      hot_.begin_round();
      embedded_round_ = true;
      // The epoll fd is readable when any fd in the set is ready; collect
      // them without blocking.
      if (revents.empty() || revents[0] != 0) collect(0);
      embedded_round_ = false;
      hot_.report(host_, revents, &idle_);
      for (HandlerNode* node : idle_) rejoin(node);
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
      if (direct_) continue;  // back in the set when direct mode ends
      // Its tag is 0 if direct mode began and ended during the suspension.
      node->monitor_tag = set_events(fd, node->monitor_events, false) ? 0 : kInSet;
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
    if (direct_list_.fits()) {
      // Hot fds are out of the set already and shown directly like any other.
      hot_.take_all(host_);
      direct_ = true;
      // Also the fds registered since the last rebuild.
      host_.for_each_live(&EpollMonitor::leave_set, this);
      direct_list_.rebuild(host_);
    } else {
      leave_direct();
    }
    hot_.shown(epoll_fd_, host_);  // takes in the hot fds' changes
    embed_dirty_ = false;
    ++embed_generation_;
  }

  static void leave_set(HandlerNode* node, void* self_ptr) {
    if (node->monitor_tag != kInSet) return;
    auto* self = static_cast<EpollMonitor*>(self_ptr);
    // A suspended fd is out already (ENOENT); a closed one too (EBADF).
    (void)epoll_ctl(self->epfd_, EPOLL_CTL_DEL, node->fd, nullptr);
    node->monitor_tag = 0;
  }

  // Puts the directly shown fds back into the set (a native wait, or more
  // handlers than direct mode shows).
  void leave_direct() {
    if (!direct_) return;
    direct_ = false;
    embed_dirty_ = true;  // the outer loop must be shown the epoll fd, or the list again
    host_.for_each_live(&EpollMonitor::rejoin_set, this);
  }

  static void rejoin_set(HandlerNode* node, void* self_ptr) {
    if (node->monitor_tag == kInSet || node->interest == 0 || node->invalid) return;
    if (node->monitor_suspended) return;  // back when the suspension ends
    static_cast<EpollMonitor*>(self_ptr)->rejoin(node);
  }

  // Takes a busy fd out of the set, for the outer loop to poll it.
  void heat(HandlerNode* node) {
    if (epoll_ctl(epfd_, EPOLL_CTL_DEL, node->fd, nullptr) != 0) return;
    node->monitor_tag = 0;
    hot_.promote(node);
  }

  // Puts a fd that left the set (hot, or shown directly) back into it, with
  // the events update_set() gave it.
  void rejoin(HandlerNode* node) {
    if (set_events(node->fd, node->monitor_events, false)) {
      host_.mark_invalid(node);  // closed meanwhile (EBADF): nothing left to watch
    } else {
      node->monitor_tag = kInSet;
    }
  }

  void cool_all() {
    for (HandlerNode* node : hot_.take_all(host_)) rejoin(node);
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
  // (direct_) the handlers' fds, which are then out of the set.
  EmbedFd epoll_fd_{};
  HotEmbedList hot_;
  std::vector<HandlerNode*> idle_;  // hot fds to give back, from hot_.report()
  bool embedded_round_ = false;     // collect() runs for embed_check()
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
