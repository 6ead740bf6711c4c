// SPDX-License-Identifier: MIT
// The registry's record of one fd handler.
#pragma once

#include <aioloop/fd_handler.h>
#include <poll.h>

#include <cstdint>

#include "intrusive_list.h"

namespace aioloop::detail {

struct LiveTag {};       // on the registry's list of live handlers
struct ReadyTag {};      // on the context's ready list
struct GraveyardTag {};  // removed, waiting for the outermost walker to finish
struct PollSetTag {};    // in the busy-poll set

// revents bit (outside the poll(2) range) marking "the busy poll found work".
inline constexpr uint32_t kPollReadyEvent = 1u << 16;
inline constexpr uint32_t kReadEvents = POLLIN | POLLPRI | POLLHUP | POLLERR | POLLRDHUP;
inline constexpr uint32_t kWriteEvents = POLLOUT | POLLHUP | POLLERR;

// Nodes are created by the registry and freed when their last reference
// goes: the registry (or graveyard) holds one, and a monitor may hold more
// (an io_uring poll request in flight holds one until its last completion).
struct HandlerNode : ListLink<LiveTag>,
                     ListLink<ReadyTag>,
                     ListLink<GraveyardTag>,
                     ListLink<PollSetTag> {
  HandlerNode(int fd_, FdHandler&& callbacks_, bool internal_)
      : fd(fd_), cb(std::move(callbacks_)), internal(internal_) {
    interest = (cb.read ? POLLIN : 0) | (cb.write ? POLLOUT : 0);
  }

  int fd;
  FdHandler cb;
  // The context's own notifier: its callbacks never count as progress.
  bool internal;
  // POLLIN/POLLOUT according to which callbacks exist.
  uint32_t interest = 0;
  // Events collected by a wait or busy poll and not dispatched yet.
  uint32_t revents = 0;
  // Removed or replaced: never dispatched again.
  bool deleted = false;
  // The fd was found closed (POLLNVAL): no longer watched.
  bool invalid = false;
  // References: see above. Home thread only, so not atomic.
  int refs = 1;
  // How often its read and write callbacks have been called: a dispatch
  // whose callback polls nested can see its own events consumed meanwhile.
  uint32_t read_calls = 0;
  uint32_t write_calls = 0;

  // Monitor-private state (each monitor documents its use).
  uint64_t monitor_tag = 0;
  uint32_t monitor_events = 0;
  bool monitor_suspended = false;
  bool monitor_queued = false;     // io_uring: on the monitor's level-check list
  uint64_t monitor_round = 0;      // io_uring: dispatch_walks() when its last event came
  bool monitor_checking = false;   // io_uring: a level check is in the kernel
  uint64_t monitor_cq_mark = 0;    // io_uring: completions posted when its dispatch began
  bool monitor_quiet = false;      // io_uring: watched by one-shot requests (see the monitor)
  uint8_t monitor_quiet_arms = 0;  // io_uring: one-shot arms since it became quiet
  uint8_t monitor_wake_kinds = 0;  // io_uring: its requests completed in monitor_wake_pass
  bool monitor_fresh = false;      // io_uring: its multishot request has not completed yet
  uint64_t monitor_wake_pass = 0;  // io_uring: the reap that last completed one of them

  // Shown to an outer loop beside the monitor's fd (hot_embed.h).
  bool embed_hot = false;
  uint32_t embed_streak = 0;  // outer-loop rounds in a row with an event
  uint64_t embed_round = 0;   // the outer-loop round of its last event

  // Busy-poll state (busy_poll.cpp).
  bool polling_now = false;      // its poll/poll_ready runs: not re-entered
  int64_t last_progress_ns = 0;  // when it last had an event or poll hit
  int64_t estimate_ns = 0;       // weighted average of blocking time before its events
  bool in_poll_phase = false;    // poll_begin told, poll_end not yet
};

}  // namespace aioloop::detail
