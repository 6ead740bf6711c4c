// SPDX-License-Identifier: MIT
// The callbacks of one file-descriptor handler.
#pragma once

#include <functional>

namespace aioloop {

// Callbacks for one fd, registered with Context::set_fd_handler(). All of them
// run in the context's home thread, inside Context::poll() (or the GSource's
// dispatch). Every callback may add, replace or remove any handler, its own
// included, and may run a nested Context::poll().
//
// Level-triggered under every monitor: an fd a callback leaves readable
// (or writable) is reported again in the next iteration, once per
// iteration. Use non-blocking fds: as with any event loop, readiness can
// be gone by the time a callback runs (another reader, or under io_uring
// data that arrived during the previous callback and was read by it), so a
// read may find nothing (EAGAIN).
struct FdHandler {
  // The fd is readable, or in error or hang-up state.
  std::function<void()> read;
  // The fd is writable, or in error or hang-up state.
  std::function<void()> write;
  // Busy-poll check: look for work without a system call (e.g. a ring in
  // shared memory) and return true when progress was made. A handler with a
  // poll callback may be busy polled (see Context::set_poll_params()).
  std::function<bool()> poll;
  // Run when a busy poll of this handler found work (poll returned true).
  std::function<void()> poll_ready;
  // Told when busy polling of this context starts and stops, e.g. to switch
  // a device into notification-less mode and back. Paired while the handler
  // and its context live: removing or replacing the handler in a polling
  // phase calls poll_end, but destroying the context calls no callback at all
  // (its captures may already be gone), so a poll_begin may stay unanswered.
  std::function<void()> poll_begin;
  std::function<void()> poll_end;
  // Suspended by Context::disable_external(): not dispatched, not polled.
  bool external = false;

  // A handler whose callbacks are all empty is a removal.
  bool empty() const { return !read && !write && !poll && !poll_ready && !poll_begin && !poll_end; }
};

}  // namespace aioloop
