// SPDX-License-Identifier: MIT
// The internal interface every fd monitor implements (poll, epoll, io_uring).
// The iteration code talks only to this interface; no monitor is named there.
#pragma once

#include <aioloop/backend.h>
#include <aioloop/context.h>

#include <cstdint>
#include <memory>
#include <span>
#include <system_error>

#include "handler_node.h"

namespace aioloop::detail {

// What a monitor needs from its context.
class MonitorHost {
 public:
  // Adds events to node and puts it on the ready list (once).
  virtual void mark_ready(HandlerNode* node, uint32_t revents) = 0;
  // The fd of node was found closed: stop counting on it, count it in stats.
  virtual void mark_invalid(HandlerNode* node) = 0;
  // Whether external handlers are suspended now.
  virtual bool external_disabled() const = 0;
  // The registered handler of fd, or null.
  virtual HandlerNode* handler_for_fd(int fd) const = 0;
  // Calls fn for every live (registered, not deleted) handler.
  virtual void for_each_live(void (*fn)(HandlerNode*, void*), void* arg) = 0;
  // Drops a reference a monitor held on node (may free it).
  virtual void unref(HandlerNode* node) = 0;
  // Counts the walks of the ready list that have begun (never 0): a handler
  // put on the ready list when this read n has been dispatched (or dropped)
  // once it reads more than n.
  virtual uint64_t dispatch_walks() const = 0;
  // Counts n completions the monitor reaped (io_uring), for Stats.
  virtual void count_completions(uint64_t n) = 0;
  // Whether an outer loop need not watch node's fd: the context's own
  // notifier while the outer loop is woken through its own wake-up
  // (Context::set_embed_wakeup). Embed lists leave such a node out.
  virtual bool embed_hides(const HandlerNode* node) const = 0;

 protected:
  ~MonitorHost() = default;
};

class FdMonitor {
 public:
  virtual ~FdMonitor() = default;

  virtual Backend backend() const = 0;

  // The handler of one fd changes: old_node is replaced by new_node (either
  // may be null; both have the same fd). Called after the registry changed.
  // Returns an error when the kernel refuses new_node's fd; the context then
  // undoes the registration.
  virtual std::error_code update(HandlerNode* old_node, HandlerNode* new_node) = 0;

  // Waits at most timeout_ns (-1 forever, 0 not at all) and reports ready
  // handlers through the host. Signals do not end the wait early.
  virtual void wait(int64_t timeout_ns) = 0;

  // True when wait() would find events at once: completions already in
  // memory (io_uring). The loop then does not block.
  virtual bool need_wait() const { return false; }

  // True when requests are queued that the kernel has not seen yet
  // (io_uring): a zero-timeout iteration must still call wait() or flush().
  virtual bool has_unsubmitted() const { return false; }

  // True when the monitor keeps watching every fd while the loop busy polls
  // without calling wait() (io_uring: the kernel posts completions into
  // shared memory), so handlers without a poll callback cannot starve.
  virtual bool watches_while_polling() const { return false; }

  // Hands requests to the kernel without waiting (io_uring), so that a busy
  // polling loop does not have to leave polling to submit.
  virtual void flush() {}

  // An outer loop is about to wait (embedding): like flush(), but a monitor
  // may first take what the kernel already reported.
  virtual void embed_prepare() { flush(); }

  // node's callbacks are about to run for the events reported so far.
  virtual void dispatching(HandlerNode*) {}

  // external_disabled() changed (0 <-> non-zero nesting count).
  virtual void external_changed() {}

  // Embedding: the fds an outer loop watches for this monitor, a number
  // that changes whenever that list changes, and the outer loop's results
  // (revents[i] for embed_fds()[i]; possibly empty) turned into ready
  // handlers without blocking.
  virtual std::span<const EmbedFd> embed_fds() = 0;
  virtual uint64_t embed_generation() { return 0; }
  // What embed_hides() says has changed: the next embed_fds() and
  // embed_generation() build the list afresh.
  virtual void embed_invalidate() = 0;
  virtual void embed_check(std::span<const short> revents) = 0;
};

// Factories, one per monitor file. They throw Error when the kernel refuses.
std::unique_ptr<FdMonitor> make_poll_monitor(MonitorHost& host);
std::unique_ptr<FdMonitor> make_epoll_monitor(MonitorHost& host);
std::unique_ptr<FdMonitor> make_io_uring_monitor(MonitorHost& host);

// AIOLOOP_IO_URING_POLL=oneshot|multishot (unset: multishot where the
// kernel has it): which poll requests the io_uring monitor uses. Throws
// Error (EINVAL) for any other value.
bool io_uring_multishot_wanted();

}  // namespace aioloop::detail
