// SPDX-License-Identifier: MIT
// The fuzzer's reference model: plain records of what the program did to a
// context (scheduled, cancelled, armed, wrote to a pipe, ...) and, from
// them, what the context must and must not run. Every check names the
// promise of DESIGN.md or of a public header it enforces. Where the
// contract leaves room (the two cases in parentheses below), the model
// accepts either outcome rather than the one the library happens to pick.
//
// Safety (checked when a callback runs):
//   - nothing runs outside an iteration, after its handle was deleted or its
//     handler removed or replaced, or after the context was destroyed;
//   - a bottom half runs once per schedule, never after cancel(), only in an
//     iteration that started after the schedule ("one scheduled while bottom
//     halves are running runs in a later round"), and in scheduling order
//     (cancel() then schedule() of a still-queued bottom half may revive
//     the first schedule's place and round);
//   - a timer fires only when armed and never before its deadline, and is no
//     longer pending in its own callback;
//   - a handler runs only for an fd that was ready at some moment since its
//     previous dispatch, never while suspended by disable_external(), and at
//     most once per iteration started since its registration;
//   - poll_ready runs only after poll found work; poll_begin/poll_end pair;
//   - stats() counts every iteration, bottom half and timer that ran.
// Liveness (checked when an iteration returns):
//   - every bottom half scheduled before the iteration started has run;
//   - every timer that was due when it started has fired;
//   - every handler whose fd was ready when it started (and not suspended)
//     has been dispatched, unless the program removed, replaced or
//     suspended it meanwhile, or the iteration is nested inside that
//     handler's own poll_ready (which the loop does not re-enter: the busy
//     poll that found the work is still being served);
//   - poll() returned true exactly when a user callback ran (a bottom half,
//     timer, read, write or poll_ready; poll, poll_begin and poll_end only
//     look or get told, and do not count).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace aioloop::fuzz {

inline constexpr int kBhSlots = 6;
inline constexpr int kTimerSlots = 6;
inline constexpr int kPipes = 3;
// Slot 2p watches pipe p's read end, slot 2p + 1 its write end.
inline constexpr int kHandlerSlots = 2 * kPipes;

enum class TimerClock { test, realtime };

struct HandlerTraits {
  bool external = false;
  // With a poll callback (truthful: reports whether the fd is ready) and a
  // poll_ready callback, so busy polling and poll rounds can serve it.
  bool with_poll = false;
};

class ReferenceModel {
 public:
  // --- iterations
  // Context::poll() is about to be called / has returned `progress`.
  // real_now_ns is CLOCK_MONOTONIC, for realtime timers.
  void poll_begins(int64_t real_now_ns);
  void poll_ends(bool progress);
  // An outer loop's prepare that the outer loop gave up before its check
  // (Context::embed_abandon()), inside a running iteration: an iteration of
  // the outer loop all the same, so a handler whose last busy poll found
  // work at that prepare may run poll_ready once more; but it accepts no
  // notification and promises nothing.
  void outer_iteration_abandoned();
  bool in_iteration() const { return !frames_.empty(); }
  // What Context::stats() must count.
  uint64_t iterations() const { return polls_started_; }
  uint64_t bottom_halves_run() const { return bottom_halves_run_; }
  uint64_t timers_fired() const { return timers_fired_; }
  int poll_depth() const { return static_cast<int>(frames_.size()); }
  // Whether poll(true) has something due and must return without waiting
  // for the world outside (a bare notify() counts).
  bool blocking_poll_returns(int64_t real_now_ns) const;
  // notify(), or something that notifies (a schedule, run_soon()).
  void notified() { notify_pending_ = true; }

  // --- the context's lifetime
  // The program released its last reference (inside a callback, the
  // context lives on until the outermost poll() returns).
  void context_dropped();
  bool dropped() const { return dropped_; }
  bool destroyed() const { return destroyed_; }

  // --- bottom halves: handles in slots, and one-shots by id
  uint64_t bh_created(int slot);
  bool bh_exists(int slot) const { return bhs_[slot].uid != 0; }
  void bh_scheduled(int slot, bool idle);
  void bh_cancelled(int slot);
  void bh_deleted(int slot);
  void bh_runs(int slot, uint64_t uid);
  uint64_t one_shot_scheduled();
  void one_shot_runs(uint64_t uid);

  // --- timers
  uint64_t timer_created(int slot, TimerClock clock);
  bool timer_exists(int slot) const { return timers_[slot].uid != 0; }
  TimerClock timer_clock(int slot) const { return timers_[slot].clock; }
  void timer_armed(int slot, int64_t deadline_ns);
  void timer_disarmed(int slot);
  void timer_deleted(int slot);
  void timer_fires(int slot, uint64_t uid, int64_t real_now_ns);
  bool timer_pending(int slot) const { return timers_[slot].armed; }
  int64_t timer_deadline(int slot) const { return timers_[slot].deadline_ns; }
  void test_clock_advanced(int64_t delta_ns) { test_now_ns_ += delta_ns; }
  int64_t test_now() const { return test_now_ns_; }

  // --- pipes
  void pipe_written(int pipe, int bytes);
  void pipe_drained(int pipe) { pipes_[pipe].bytes = 0; }
  int pipe_bytes(int pipe) const { return pipes_[pipe].bytes; }
  void pipe_hung_up(int pipe) { pipes_[pipe].hung_up = true; }
  bool pipe_hung_up_now(int pipe) const { return pipes_[pipe].hung_up; }
  void pipe_reopened(int pipe) { pipes_[pipe] = PipeState{}; }

  // --- fd handlers and external suspension
  uint64_t handler_registered(int slot, HandlerTraits traits);
  bool handler_exists(int slot) const { return handlers_[slot].uid != 0; }
  void handler_removed(int slot);
  // read (slot of a read end) or write (slot of a write end)
  void handler_main_runs(int slot, uint64_t uid);
  // The poll callback: checks it may run, returns whether the fd is ready.
  bool handler_polled(int slot, uint64_t uid);
  void handler_poll_ready_runs(int slot, uint64_t uid);
  void handler_poll_ready_returns(int slot, uint64_t uid);
  void handler_poll_begins(int slot, uint64_t uid);
  void handler_poll_ends(int slot, uint64_t uid);
  void external_disabled();
  void external_enabled() { --external_count_; }
  int external_count() const { return external_count_; }

 private:
  struct BhState {
    uint64_t uid = 0;  // 0: the slot holds no bottom half
    bool pending = false;
    bool idle = false;
    // Scheduling sequence number of the schedule that queued it.
    uint64_t key = 0;
    // polls_started_ when it was scheduled: it must have run when the next
    // iteration returns, and may run only in an iteration started after
    // earliest_sched_poll.
    uint64_t sched_poll = 0;
    uint64_t earliest_sched_poll = 0;
    // A cancelled bottom half may keep its place in the queue: schedule()
    // before the loop has taken it off revives the earlier schedule, with
    // its place and round (as in the reference design). Until it has run,
    // its order and round are known only within those bounds.
    bool order_known = true;
    bool maybe_queued = false;
    uint64_t queued_sched_poll = 0;  // the round of the schedule that queued it
  };
  struct OneShot {
    uint64_t key = 0;
    uint64_t sched_poll = 0;
  };
  struct TimerState {
    uint64_t uid = 0;
    TimerClock clock = TimerClock::test;
    bool armed = false;
    int64_t deadline_ns = 0;
    uint64_t arm_generation = 0;  // changes on every mod and del
  };
  struct PipeState {
    int bytes = 0;
    bool hung_up = false;  // the write end was closed
  };
  struct HandlerState {
    uint64_t uid = 0;
    HandlerTraits traits;
    uint64_t polls_at_registration = 0;
    uint64_t main_runs = 0;
    uint64_t poll_ready_runs = 0;
    // The fd was ready at some moment since the previous dispatch began.
    bool ready_since_dispatch = false;
    bool poll_found_work = false;
    int poll_ready_running = 0;  // invocations of poll_ready on the stack
    bool in_poll_phase = false;
  };
  struct DueHandler {
    int slot;
    uint64_t uid;
    uint64_t attention;  // main_runs + poll_ready_runs when the frame began
  };
  struct Frame {
    uint64_t id = 0;
    uint64_t callbacks_at_start = 0;
    uint64_t external_disables_at_start = 0;
    std::vector<std::pair<int, uint64_t>> due_timers;  // slot, arm generation
    std::vector<DueHandler> due_handlers;
  };

  // Every user callback that counts as progress for poll()'s result.
  void callback_runs(const char* what);
  void check_bh_may_run(const char* what, uint64_t key, uint64_t earliest_sched_poll,
                        bool order_known, const void* self) const;
  bool fd_ready(int slot) const;
  bool suspended(int slot) const;
  int64_t clock_now(TimerClock clock, int64_t real_now_ns) const;
  void check_liveness(const Frame& frame) const;

  std::vector<Frame> frames_;
  uint64_t polls_started_ = 0;
  uint64_t callbacks_run_ = 0;
  uint64_t bottom_halves_run_ = 0;  // run_soon() functions included
  uint64_t timers_fired_ = 0;
  bool notify_pending_ = false;
  bool dropped_ = false;
  bool destroyed_ = false;

  BhState bhs_[kBhSlots];
  std::map<uint64_t, OneShot> one_shots_;
  uint64_t next_uid_ = 1;
  uint64_t next_key_ = 1;

  TimerState timers_[kTimerSlots];
  int64_t test_now_ns_ = 0;

  PipeState pipes_[kPipes];
  HandlerState handlers_[kHandlerSlots];
  int external_count_ = 0;
  uint64_t external_disables_ = 0;
};

}  // namespace aioloop::fuzz
