// SPDX-License-Identifier: MIT
// Context creation, destruction, and the public entry points (which forward
// to the concept files: iteration, registry, notify, busy polling).
#include <aioloop/context.h>
#include <aioloop/event_notifier.h>
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

#include "context_impl.h"
#include "error_util.h"
#include "i18n.h"
#include "time_util.h"

namespace aioloop {

// Destroying a context from inside one of its own callbacks (the last
// reference dropped there) is deferred until the outermost poll() returns.
struct ContextDeleter {
  void operator()(Context* context) const {
    auto* impl = &detail::ContextImpl::of(*context);
    if (impl->depth_ > 0) {
      impl->destroy_pending_ = true;
      return;
    }
    delete impl;
  }
};

namespace detail {

std::unique_ptr<FdMonitor> make_monitor(Backend requested, MonitorHost& host);

std::atomic<uint64_t> g_fork_generation{0};

namespace {

// Runs in the child right after fork(), while it has a single thread.
void note_fork_in_child() {
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
}

// Once per process, before the first context exists: a context created
// earlier could not tell a child from its parent. A child inherits the
// registration, so nested forks are seen as well.
uint64_t fork_generation_watched() {
  static std::once_flag registered;
  std::call_once(registered, [] { pthread_atfork(nullptr, nullptr, note_fork_in_child); });
  return g_fork_generation.load(std::memory_order_relaxed);
}

}  // namespace

void ContextImpl::throw_used_after_fork() {
  // ECHILD, as sd-event reports the same misuse: the object belongs to
  // another process (the parent), and no errno says that more directly.
  // EOWNERDEAD would suggest a robust mutex whose owner died.
  throw make_error(ECHILD, "%s",
                   _("this context was created before fork() and belongs to the parent "
                     "process; create a new context in the child"));
}

ContextImpl::ContextImpl(const ContextOptions& options)
    : home_(std::this_thread::get_id()),
      fork_generation_(fork_generation_watched()),
      bhs_([](void* self,
              bool from_home) { static_cast<ContextImpl*>(self)->notify_from(from_home); },
           [](const void* self) {
             return static_cast<const ContextImpl*>(self)->in_home_thread_impl();
           },
           this),
      busy_poll_clock_(options.busy_poll_clock) {
  monitor_ = make_monitor(options.backend, *this);
  backend_ = monitor_->backend();

  FdHandler own;
  own.read = [this] { notifier_.test_and_clear(); };
  own.poll = [this] { return notification_pending(); };
  own.poll_ready = [] {};
  if (std::error_code ec = set_handler(notifier_.fd(), std::move(own), true)) {
    throw make_error(ec.value(), "%s", _("cannot watch the context's eventfd"));
  }
  // The notifier joined the poll set like any pollable handler and, being
  // internal, never leaves it: notify() must end busy polling.
}

ContextImpl::~ContextImpl() {
  while (ready_.pop_front()) {
  }
  destroying_ = true;
  // In a fork()ed child the epoll instance and the io_uring are the
  // parent's too: unregistering there would silence the parent's handlers.
  // Closing the child's copies of the fds (the monitor's destructor) is
  // harmless.
  const bool kernel_objects_shared = forked();
  for (size_t fd = 0; fd < by_fd_.size(); ++fd) {
    if (HandlerNode* node = by_fd_[fd]) {
      by_fd_[fd] = nullptr;
      if (!kernel_objects_shared) (void)monitor_->update(node, nullptr);
      retire(node);
    }
  }
  monitor_.reset();  // releases the references it held on nodes
  walkers_ = 1;
  end_walk();
}

int64_t ContextImpl::poll_clock_ns() const {
  return now(busy_poll_clock_);
}

}  // namespace detail

using detail::ContextImpl;

std::shared_ptr<Context> Context::create(const ContextOptions& options) {
  return std::shared_ptr<Context>(new ContextImpl(options), ContextDeleter{});
}

bool Context::poll(bool blocking) {
  auto& self = ContextImpl::of(*this);
  self.check_not_forked();
  return self.poll_impl(blocking);
}

void Context::notify() {
  ContextImpl::of(*this).notify_impl();
}

std::error_code Context::set_fd_handler(int fd, FdHandler handler) {
  auto& self = ContextImpl::of(*this);
  if (self.forked()) return detail::errno_code(ECHILD);
  return self.set_handler(fd, std::move(handler), false);
}

void Context::remove_fd_handler(int fd) {
  auto& self = ContextImpl::of(*this);
  self.check_not_forked();
  self.remove_handler(fd);
}

void Context::disable_external() {
  auto& self = ContextImpl::of(*this);
  self.assert_home();
  self.check_not_forked();
  if (self.external_disable_count_++ == 0) self.monitor_->external_changed();
}

void Context::enable_external() {
  auto& self = ContextImpl::of(*this);
  self.assert_home();
  self.check_not_forked();
  assert(self.external_disable_count_ > 0 && "enable_external() without disable_external()");
  if (self.external_disable_count_ == 0) return;
  if (--self.external_disable_count_ == 0) self.monitor_->external_changed();
}

bool Context::external_disabled() const {
  return ContextImpl::of(*this).external_disable_count_ > 0;
}

std::error_code Context::set_event_notifier(EventNotifier& notifier, std::function<void()> read,
                                            std::function<bool()> poll,
                                            std::function<void()> poll_ready) {
  FdHandler handler;
  if (read) {
    // Clear first: a callback that sets its notifier again runs again in
    // the next iteration, exactly once per iteration.
    handler.read = [&notifier, read = std::move(read)] {
      notifier.test_and_clear();
      read();
    };
  }
  handler.poll = std::move(poll);
  handler.poll_ready = std::move(poll_ready);
  return set_fd_handler(notifier.fd(), std::move(handler));
}

void Context::remove_event_notifier(EventNotifier& notifier) {
  remove_fd_handler(notifier.fd());
}

void Context::run_soon(std::function<void()> fn) {
  ContextImpl::of(*this).bhs_.run_soon(std::move(fn));
}

void Context::set_poll_params(int64_t max_ns, int64_t grow, int64_t shrink) {
  auto& self = ContextImpl::of(*this);
  self.assert_home();
  self.poll_max_ns_ = std::max<int64_t>(0, max_ns);
  self.poll_grow_ = std::max<int64_t>(0, grow);
  self.poll_shrink_ = std::max<int64_t>(0, shrink);
  int64_t ns = self.poll_ns_.load(std::memory_order_relaxed);
  self.poll_ns_.store(std::min(ns, self.poll_max_ns_), std::memory_order_relaxed);
}

void Context::set_poll_weight(unsigned weight_shift) {
  auto& self = ContextImpl::of(*this);
  self.assert_home();
  self.poll_weight_shift_ = std::min(weight_shift, 16u);
}

int64_t Context::now(ClockType clock) const {
  if (clock == ClockType::test) {
    return ContextImpl::of(*this).test_clock_ns_.load(std::memory_order_relaxed);
  }
  return detail::monotonic_ns();
}

void Context::advance_test_clock(int64_t delta_ns) {
  auto& self = ContextImpl::of(*this);
  self.test_clock_ns_.fetch_add(delta_ns, std::memory_order_relaxed);
  // From the home thread nothing is blocked, and the next timeout
  // computation reads the clock anyway; not notifying lets a test move the
  // clock from inside a busy-poll callback without ending busy polling.
  if (!self.in_home_thread_impl()) self.notify_from(false);
}

Backend Context::backend() const {
  return ContextImpl::of(*this).backend_;
}

Stats Context::stats() const {
  const auto& self = ContextImpl::of(*this);
  Stats s;
  s.iterations = self.stat_iterations_.get();
  s.blocking_waits = self.stat_blocking_waits_.get();
  s.busy_poll_attempts = self.stat_busy_attempts_.get();
  s.busy_poll_hits = self.stat_busy_hits_.get();
  s.bhs_run = self.stat_bhs_run_.get();
  s.handlers_dispatched = self.stat_dispatched_.get();
  s.timers_fired = self.stat_timers_fired_.get();
  s.eventfd_writes = self.stat_eventfd_writes_.load(std::memory_order_relaxed);
  s.invalid_fds = self.stat_invalid_fds_.get();
  s.monitor_completions = self.stat_monitor_completions_.get();
  s.poll_ns = self.poll_ns_.load(std::memory_order_relaxed);
  s.backend = self.backend_;
  return s;
}

bool Context::in_home_thread() const {
  return ContextImpl::of(*this).in_home_thread_impl();
}

void Context::make_current_thread_home() {
  ContextImpl::of(*this).home_.store(std::this_thread::get_id(), std::memory_order_relaxed);
}

}  // namespace aioloop
