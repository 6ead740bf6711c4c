// SPDX-License-Identifier: MIT
// The event loop: fd handlers, bottom halves, timers and cross-thread notify.
#pragma once

#include <aioloop/backend.h>
#include <aioloop/clock.h>
#include <aioloop/export.h>
#include <aioloop/fd_handler.h>
#include <aioloop/stats.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <system_error>

namespace aioloop {

class EventNotifier;

// One fd an outer loop must watch on behalf of a context (see
// Context::embed_fds()). events uses the poll(2) bits (POLLIN, POLLOUT).
struct EmbedFd {
  int fd;
  short events;
};

struct ContextOptions {
  // Which fd monitor to use. With automatic, AIOLOOP_BACKEND in the
  // environment may force one; a forced backend the kernel refuses is an
  // error (Error thrown by Context::create()), never a silent fallback.
  Backend backend = Backend::automatic;
  // The clock busy polling measures its budget and idle times on. Tests set
  // ClockType::test to drive the adaptive rules without real time.
  ClockType busy_poll_clock = ClockType::realtime;
};

// A context is the event loop. It is reference counted (create() returns a
// shared_ptr; BottomHalf and Timer handles keep their context alive) and has
// a home thread: the thread that created it, or the last one that called
// make_current_thread_home(). notify(), run_soon(), BottomHalf::schedule(),
// BottomHalf::cancel(), advance_test_clock(), now() and stats() may be called
// from any thread; everything else belongs to the home thread (checked by
// assertions in builds without NDEBUG).
//
// fork(): a context belongs to the process that created it. Its eventfd,
// epoll instance and io_uring are shared with a fork()ed child, where using
// them would steal or silence the parent's events, so in a child poll(),
// remove_fd_handler(), remove_event_notifier(), disable_external() and
// enable_external() throw Error with ECHILD, and set_fd_handler() and
// set_event_notifier() return ECHILD. Destroying the context in the child is
// safe and leaves the parent's registrations alone. A child that wants a loop
// creates a new context. Not checked: notify() and BottomHalf::schedule() in
// the child (at worst a spurious wake-up of the parent), and the embedding
// calls (no exception may cross an outer loop's C frames), so a GMainContext
// hosting the context must not be iterated in the child either.
class AIOLOOP_EXPORT Context : public std::enable_shared_from_this<Context> {
 public:
  // Creates the context, its eventfd notifier and its fd monitor. Throws
  // Error when a kernel object cannot be created or the forced backend is
  // refused. Costs a few system calls.
  static std::shared_ptr<Context> create(const ContextOptions& options = {});

  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // One iteration (see README "The iteration"): run scheduled bottom halves,
  // dispatch ready fd handlers and expired timers. With blocking, first waits
  // until at least one of them is due or notify() is called. Returns true
  // when a user callback ran; the context's own notifier never counts, so
  // after a bare notify() poll(true) returns false. Home thread; may be
  // called from inside any callback (nested iteration). Callbacks must not
  // throw: they run in noexcept frames (the same code runs under GLib's C
  // frames), so an escaping exception calls std::terminate() and no state
  // is left half-updated. Costs no system call
  // when a bottom half is due and every handler has a poll callback;
  // otherwise one wait in the fd monitor. Signals do not end the wait early.
  // Throws Error (ECHILD) in a fork()ed child (see above).
  //
  // Dropping the last reference to the context from inside one of its
  // callbacks is safe: destruction is deferred until the outermost poll()
  // returns, so the caller must not touch the context after that poll().
  bool poll(bool blocking);

  // Makes a blocked or busy-polling poll() in the home thread return soon.
  // Any thread. Writes the eventfd (one system call) only when the loop has
  // announced a blocking wait; otherwise costs a store and a fence.
  void notify();

  // Registers, replaces or (with an empty handler) removes the handler of
  // fd. Returns EBADF for an fd that is negative or not open, and the
  // monitor's error when the kernel refuses the fd (e.g. EPERM for a regular
  // file under epoll). Returns EMFILE under poll when the number of
  // handlers would exceed RLIMIT_NOFILE, which ppoll() cannot watch. Home
  // thread. Costs O(1) plus the monitor's update (one system call under
  // epoll; batched under io_uring; none under poll).
  //
  // Remove the handler before closing its fd. A closed fd's handler is
  // dropped from the watch set, but under epoll a file that is still open
  // elsewhere (a dup(), a fork()ed child, SCM_RIGHTS) stays in the kernel's
  // interest list, and its events keep arriving under the old number, even
  // once the number names another fd (epoll(7)).
  std::error_code set_fd_handler(int fd, FdHandler handler);

  // Removes the handler of fd; a no-op when there is none. After it returns
  // no callback of the handler runs again, even if an event for it was
  // already collected. Safe from inside that handler's own callbacks (the
  // callbacks are freed when the outermost dispatch returns). Home thread.
  void remove_fd_handler(int fd);

  // Suspends (and, once the count is back at zero, resumes) every handler
  // registered with external = true: not dispatched, not busy polled, and not
  // watched, so a ready external fd never makes the loop spin. Calls nest.
  // Home thread. O(number of external handlers) under poll; O(1) otherwise.
  void disable_external();
  void enable_external();
  bool external_disabled() const;

  // Registers notifier.fd() with a read callback that clears the notifier
  // before calling read. With a poll callback the notifier may be busy
  // polled. Same errors and threads as set_fd_handler().
  std::error_code set_event_notifier(EventNotifier& notifier, std::function<void()> read,
                                     std::function<bool()> poll = {},
                                     std::function<void()> poll_ready = {});
  void remove_event_notifier(EventNotifier& notifier);

  // Runs fn once in the home thread, in a later iteration, in scheduling
  // order with bottom halves (a one-shot bottom half). Any thread; costs one
  // allocation and notify(). If the context is destroyed first, fn is
  // destroyed without being called.
  void run_soon(std::function<void()> fn);

  // Adaptive busy polling: before blocking, poll the handlers that have a
  // poll callback for up to poll_ns, adapting poll_ns between 0 and max_ns
  // (grow: multiply, 0 means the default of 2; shrink: divide, 0 means drop
  // to 0). max_ns == 0 disables busy polling (the default). Home thread.
  void set_poll_params(int64_t max_ns, int64_t grow, int64_t shrink);

  // Per-handler estimates instead of the grow/shrink rule (off, 0, by
  // default). With weight_shift = k > 0, every handler with a poll callback
  // keeps a weighted average of how long the loop blocked before its events
  // arrived: each new sample counts 1/2^k (k = 3: the last ~8 events
  // dominate), and a wait longer than max_ns counts as 0, since polling that
  // long would not have paid. After an iteration in which handlers had
  // events, poll_ns becomes the largest estimate among them, capped at
  // max_ns: a fast source sharing a context with a slow one keeps polling
  // short for both. Home thread.
  void set_poll_weight(unsigned weight_shift);

  // The clock's current time in ns. Any thread.
  int64_t now(ClockType clock) const;

  // Moves the test clock forward by delta_ns; from another thread, also
  // wakes the loop. Timers on the test clock fire in the next iteration once
  // their deadline is reached. Any thread.
  void advance_test_clock(int64_t delta_ns);

  // The fd monitor in use (never automatic). Any thread.
  Backend backend() const;

  // A snapshot of the counters. Any thread; costs a few relaxed loads.
  Stats stats() const;

  // --- Embedding: driving the context from another loop (GLib, a bare
  // poll() loop) in three phases instead of poll(). All home thread. Busy
  // polling is off while embedded: the outer loop decides when to block.
  //
  //   int64_t t = ctx->embed_prepare();        // may block for t ns (-1: forever)
  //   auto fds = ctx->embed_fds();              // watch these while blocking
  //   ... outer wait, collecting revents[i] for fds[i] ...
  //   if (ctx->embed_check(revents)) ctx->embed_dispatch();

  // Hands queued requests to the kernel (io_uring) and returns how long the
  // outer loop may block, in ns: 0 when work is due, -1 for no limit. Unless
  // a notification is already pending, it first announces that the outer
  // loop may block (from now on a notify() from another thread writes the
  // eventfd, which is among embed_fds(), or calls the outer loop's own
  // wake-up: set_embed_wakeup()); after a 0 the outer loop must not
  // block. The announcement is one flag, so prepare may be repeated without
  // check. Costs a fence when it announces, and no system call except
  // io_uring's submission of queued requests.
  int64_t embed_prepare();

  // The fds the outer loop must watch: one per watched handler (the
  // context's own notifier included, unless set_embed_wakeup() is in use)
  // under poll, and under epoll and io_uring while there are at most 8;
  // beyond that, under epoll and io_uring, the epoll or ring fd followed
  // by at most 4 busy handlers' fds (an event in 4 outer rounds in a row;
  // 64 idle rounds end it), whatever the number of handlers. The handlers'
  // own fds spare check() a system call or a completion per event; while
  // they are shown, the monitor does not watch them itself (out of the
  // epoll set, no io_uring request), so an event costs the writer nothing
  // beyond waking the outer loop. Valid until the next call of a non-const
  // member; compare embed_fds_generation() to learn whether it changed. Calling poll()
  // while embedded is allowed; with at most 8 handlers under epoll and
  // io_uring it first hands every fd back to the monitor (one epoll_ctl()
  // or request each, once), and the next embed_fds() takes them again.
  std::span<const EmbedFd> embed_fds();
  uint64_t embed_fds_generation();

  // After the outer wait: revents[i] holds what the outer loop saw on
  // embed_fds()[i] (0 when nothing; the span may be empty when the outer
  // wait was skipped). Withdraws the announcement, accepts the
  // notification, collects ready handlers. Returns whether a bottom half
  // (an idle one too: the outer wait is over), a handler or a timer is due:
  // then call embed_dispatch().
  bool embed_check(std::span<const short> revents);

  // Runs the due bottom halves, ready handlers and expired timers once.
  // Returns whether a user callback ran.
  bool embed_dispatch();

  // Tells the context that the outer loop will not call embed_check() for
  // its last embed_prepare(): it stopped embedding the context in between
  // (GLib skips check when a higher-priority source is ready, and that
  // source's callback may destroy ours). Without it the announcement stays,
  // and every notify(), even one from the home thread, writes the eventfd
  // until the next embed_check(). Call it only once the outer loop no
  // longer waits for this context. Any thread; costs one atomic store, and
  // the home thread drops the announcement at its next notify(), poll() or
  // embed_prepare().
  void embed_abandon();

  // Lets an outer loop that has a wake-up of its own (GLib:
  // g_main_context_wakeup()) be woken through it. While wake is set, a
  // notify() that finds only the outer loop's announcement (embed_prepare)
  // calls wake(arg) instead of writing the context's eventfd, and
  // embed_fds() leaves that eventfd out, so every outer poll() looks at one
  // fd fewer. A native poll() waiting (nested in a callback, say) is still
  // woken through the eventfd. wake must make the outer wait end and be
  // safe to call from any thread; it runs under a lock the setter takes, so
  // it must not call back into this context. nullptr clears it: do that
  // only once the outer loop no longer waits for this context (after the
  // last embed_fds() it watches), since it shows the eventfd again only at
  // the next embed_fds(). Any thread; once it returns, no notify() is still
  // calling the previous wake, so its arg may be released. Costs a lock;
  // notify() takes the same lock, shared (notify()s from several threads do
  // not wait for each other), only when it wakes the outer loop.
  void set_embed_wakeup(void (*wake)(void*), void* arg);

  // Whether the calling thread is the home thread. Any thread.
  bool in_home_thread() const;

  // Makes the calling thread the home thread (e.g. an I/O thread adopting a
  // context made elsewhere). The previous home thread must no longer use it.
  void make_current_thread_home();

 protected:
  Context() = default;
  ~Context() = default;
  friend struct ContextDeleter;
};

}  // namespace aioloop
