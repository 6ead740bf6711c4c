// SPDX-License-Identifier: MIT
// The reference model's bookkeeping and checks (see reference_model.h for
// the promises they enforce).
#include "reference_model.h"

#include <cinttypes>

#include "fuzz_check.h"

namespace aioloop::fuzz {

// --- iterations

void ReferenceModel::poll_begins(int64_t real_now_ns) {
  Frame frame;
  frame.id = ++polls_started_;
  frame.callbacks_at_start = callbacks_run_;
  frame.external_disables_at_start = external_disables_;
  // The iteration accepts every notification made before it started.
  notify_pending_ = false;
  for (int slot = 0; slot < kTimerSlots; ++slot) {
    const TimerState& t = timers_[slot];
    if (t.armed && t.deadline_ns <= clock_now(t.clock, real_now_ns)) {
      frame.due_timers.emplace_back(slot, t.arm_generation);
    }
  }
  for (int slot = 0; slot < kHandlerSlots; ++slot) {
    const HandlerState& h = handlers_[slot];
    if (h.uid != 0 && fd_ready(slot) && !suspended(slot) && h.poll_ready_running == 0) {
      frame.due_handlers.push_back({slot, h.uid, h.main_runs + h.poll_ready_runs});
    }
  }
  frames_.push_back(std::move(frame));
}

void ReferenceModel::poll_ends(bool progress) {
  const Frame frame = std::move(frames_.back());
  frames_.pop_back();
  const bool ran = callbacks_run_ > frame.callbacks_at_start;
  FUZZ_CHECK(progress == ran,
             "poll() returned %s although %s user callback ran in iteration %" PRIu64,
             progress ? "true" : "false", ran ? "a" : "no", frame.id);
  // Once the program has let go of the context, what is still queued may
  // be dropped unrun: only the safety checks apply.
  if (!dropped_) check_liveness(frame);
  if (dropped_ && frames_.empty()) destroyed_ = true;
}

void ReferenceModel::outer_iteration_abandoned() {
  FUZZ_CHECK(in_iteration(), "the driver abandoned a prepare outside an iteration");
  // Later frames and schedules get larger ids; the running frames keep
  // theirs, so what they promise is unchanged.
  ++polls_started_;
}

void ReferenceModel::check_liveness(const Frame& frame) const {
  for (int slot = 0; slot < kBhSlots; ++slot) {
    const BhState& b = bhs_[slot];
    FUZZ_CHECK(!(b.uid != 0 && b.pending && b.sched_poll < frame.id),
               "bottom half %" PRIu64 " (slot %d), scheduled before iteration %" PRIu64
               " began, has not run when it returned",
               b.uid, slot, frame.id);
  }
  for (const auto& [uid, one_shot] : one_shots_) {
    FUZZ_CHECK(one_shot.sched_poll >= frame.id,
               "run_soon() function %" PRIu64 ", queued before iteration %" PRIu64
               " began, has not run when it returned",
               uid, frame.id);
  }
  for (const auto& [slot, generation] : frame.due_timers) {
    const TimerState& t = timers_[slot];
    FUZZ_CHECK(!(t.armed && t.arm_generation == generation),
               "timer %" PRIu64 " (slot %d) was due when iteration %" PRIu64
               " began and has not fired when it returned",
               t.uid, slot, frame.id);
  }
  const bool external_touched = external_disables_ != frame.external_disables_at_start;
  for (const DueHandler& due : frame.due_handlers) {
    const HandlerState& h = handlers_[due.slot];
    if (h.uid != due.uid) continue;  // removed or replaced meanwhile
    if (h.traits.external && external_touched) continue;
    FUZZ_CHECK(h.main_runs + h.poll_ready_runs > due.attention,
               "handler %" PRIu64 " (slot %d) had a ready fd when iteration %" PRIu64
               " began and was not dispatched",
               h.uid, due.slot, frame.id);
  }
}

bool ReferenceModel::blocking_poll_returns(int64_t real_now_ns) const {
  if (notify_pending_ || !one_shots_.empty()) return true;
  for (const BhState& b : bhs_) {
    if (b.uid != 0 && b.pending && !b.idle) return true;
  }
  for (const TimerState& t : timers_) {
    if (t.armed && t.deadline_ns <= clock_now(t.clock, real_now_ns)) return true;
  }
  for (int slot = 0; slot < kHandlerSlots; ++slot) {
    if (handlers_[slot].uid != 0 && fd_ready(slot) && !suspended(slot)) return true;
  }
  return false;
}

void ReferenceModel::context_dropped() {
  dropped_ = true;
  if (frames_.empty()) destroyed_ = true;
}

void ReferenceModel::callback_runs(const char* what) {
  FUZZ_CHECK(!destroyed_, "%s ran after the context was destroyed", what);
  FUZZ_CHECK(in_iteration(), "%s ran outside an iteration", what);
  ++callbacks_run_;
}

int64_t ReferenceModel::clock_now(TimerClock clock, int64_t real_now_ns) const {
  return clock == TimerClock::test ? test_now_ns_ : real_now_ns;
}

// --- bottom halves

uint64_t ReferenceModel::bh_created(int slot) {
  bhs_[slot] = BhState{};
  bhs_[slot].uid = next_uid_++;
  return bhs_[slot].uid;
}

void ReferenceModel::bh_scheduled(int slot, bool idle) {
  BhState& b = bhs_[slot];
  // schedule_idle() may or may not notify; only count what surely does.
  if (!idle) notify_pending_ = true;
  if (!b.pending) {
    b.pending = true;
    b.key = next_key_++;
    b.sched_poll = polls_started_;
    b.order_known = !b.maybe_queued;
    if (!b.maybe_queued) b.queued_sched_poll = polls_started_;
    b.earliest_sched_poll = b.queued_sched_poll;
  }
  // Idempotent until it runs: an earlier schedule keeps its place; the
  // last call decides whether it is idle.
  b.idle = idle;
}

void ReferenceModel::bh_cancelled(int slot) {
  BhState& b = bhs_[slot];
  if (!b.pending) return;
  b.pending = false;
  b.maybe_queued = true;
}

void ReferenceModel::bh_deleted(int slot) {
  bhs_[slot] = BhState{};
}

void ReferenceModel::check_bh_may_run(const char* what, uint64_t key, uint64_t earliest_sched_poll,
                                      bool order_known, const void* self) const {
  const uint64_t frame = frames_.back().id;
  FUZZ_CHECK(earliest_sched_poll < frame,
             "%s scheduled during iteration %" PRIu64 " ran in that same round", what, frame);
  if (!order_known) return;
  // Bottom halves run in scheduling order: nothing scheduled earlier and
  // due in this iteration may still be waiting.
  for (int slot = 0; slot < kBhSlots; ++slot) {
    const BhState& b = bhs_[slot];
    if (&b == self || b.uid == 0 || !b.pending || !b.order_known) continue;
    FUZZ_CHECK(!(b.sched_poll < frame && b.key < key),
               "%s ran before bottom half %" PRIu64 " (slot %d), which was scheduled first", what,
               b.uid, slot);
  }
  for (const auto& [uid, one_shot] : one_shots_) {
    if (&one_shot == self) continue;
    FUZZ_CHECK(!(one_shot.sched_poll < frame && one_shot.key < key),
               "%s ran before run_soon() function %" PRIu64 ", which was queued first", what, uid);
  }
}

void ReferenceModel::bh_runs(int slot, uint64_t uid) {
  callback_runs("a bottom half");
  BhState& b = bhs_[slot];
  FUZZ_CHECK(b.uid == uid, "bottom half %" PRIu64 " ran after it was deleted", uid);
  FUZZ_CHECK(b.pending, "bottom half %" PRIu64 " ran without a schedule (or after cancel())", uid);
  check_bh_may_run("bottom half", b.key, b.earliest_sched_poll, b.order_known, &b);
  ++bottom_halves_run_;
  b.pending = false;
  b.maybe_queued = false;
  b.order_known = true;
}

uint64_t ReferenceModel::one_shot_scheduled() {
  notify_pending_ = true;
  const uint64_t uid = next_uid_++;
  one_shots_[uid] = OneShot{next_key_++, polls_started_};
  return uid;
}

void ReferenceModel::one_shot_runs(uint64_t uid) {
  callback_runs("a run_soon() function");
  auto it = one_shots_.find(uid);
  FUZZ_CHECK(it != one_shots_.end(), "run_soon() function %" PRIu64 " ran twice", uid);
  check_bh_may_run("run_soon() function", it->second.key, it->second.sched_poll, true, &it->second);
  one_shots_.erase(it);
  ++bottom_halves_run_;
}

// --- timers

uint64_t ReferenceModel::timer_created(int slot, TimerClock clock) {
  timers_[slot] = TimerState{};
  timers_[slot].uid = next_uid_++;
  timers_[slot].clock = clock;
  return timers_[slot].uid;
}

void ReferenceModel::timer_armed(int slot, int64_t deadline_ns) {
  TimerState& t = timers_[slot];
  t.armed = true;
  t.deadline_ns = deadline_ns;
  t.arm_generation = next_uid_++;
}

void ReferenceModel::timer_disarmed(int slot) {
  TimerState& t = timers_[slot];
  t.armed = false;
  t.arm_generation = next_uid_++;
}

void ReferenceModel::timer_deleted(int slot) {
  timers_[slot] = TimerState{};
}

void ReferenceModel::timer_fires(int slot, uint64_t uid, int64_t real_now_ns) {
  callback_runs("a timer");
  TimerState& t = timers_[slot];
  FUZZ_CHECK(t.uid == uid, "timer %" PRIu64 " fired after it was deleted", uid);
  FUZZ_CHECK(t.armed, "timer %" PRIu64 " fired while not armed (after del(), or twice)", uid);
  const int64_t now = clock_now(t.clock, real_now_ns);
  FUZZ_CHECK(now >= t.deadline_ns,
             "timer %" PRIu64 " fired %" PRId64 " ns before its deadline %" PRId64, uid,
             t.deadline_ns - now, t.deadline_ns);
  t.armed = false;
  ++timers_fired_;
}

// --- pipes and handlers

void ReferenceModel::pipe_written(int pipe, int bytes) {
  pipes_[pipe].bytes += bytes;
  handlers_[2 * pipe].ready_since_dispatch = true;
}

bool ReferenceModel::fd_ready(int slot) const {
  const PipeState& p = pipes_[slot / 2];
  // A read end is ready with data or at hang-up; the write end stays
  // writable (the fuzzer never fills a pipe, nor closes a watched end).
  return slot % 2 == 0 ? (p.bytes > 0 || p.hung_up) : !p.hung_up;
}

bool ReferenceModel::suspended(int slot) const {
  return handlers_[slot].traits.external && external_count_ > 0;
}

uint64_t ReferenceModel::handler_registered(int slot, HandlerTraits traits) {
  HandlerState& h = handlers_[slot];
  h = HandlerState{};
  h.uid = next_uid_++;
  h.traits = traits;
  h.polls_at_registration = polls_started_;
  h.ready_since_dispatch = fd_ready(slot);
  return h.uid;
}

void ReferenceModel::handler_removed(int slot) {
  handlers_[slot] = HandlerState{};
}

void ReferenceModel::handler_main_runs(int slot, uint64_t uid) {
  callback_runs("an fd handler");
  HandlerState& h = handlers_[slot];
  FUZZ_CHECK(h.uid == uid, "handler %" PRIu64 " ran after it was removed or replaced", uid);
  FUZZ_CHECK(!suspended(slot), "external handler %" PRIu64 " ran while suspended", uid);
  FUZZ_CHECK(h.ready_since_dispatch || fd_ready(slot),
             "handler %" PRIu64
             " (slot %d) ran although its fd was not ready since its "
             "previous dispatch",
             uid, slot);
  ++h.main_runs;
  FUZZ_CHECK(h.main_runs <= polls_started_ - h.polls_at_registration,
             "handler %" PRIu64 " ran %" PRIu64 " times in %" PRIu64
             " iterations since its registration",
             uid, h.main_runs, polls_started_ - h.polls_at_registration);
  h.ready_since_dispatch = fd_ready(slot);
}

bool ReferenceModel::handler_polled(int slot, uint64_t uid) {
  FUZZ_CHECK(!destroyed_, "a poll callback ran after the context was destroyed");
  FUZZ_CHECK(in_iteration(), "a poll callback ran outside an iteration");
  HandlerState& h = handlers_[slot];
  FUZZ_CHECK(h.uid == uid, "handler %" PRIu64 " was polled after it was removed or replaced", uid);
  FUZZ_CHECK(!suspended(slot), "external handler %" PRIu64 " was polled while suspended", uid);
  const bool ready = fd_ready(slot);
  if (ready) h.poll_found_work = true;
  return ready;
}

void ReferenceModel::handler_poll_ready_runs(int slot, uint64_t uid) {
  callback_runs("a poll_ready callback");
  HandlerState& h = handlers_[slot];
  FUZZ_CHECK(h.uid == uid, "poll_ready of handler %" PRIu64 " ran after it was removed", uid);
  FUZZ_CHECK(!suspended(slot), "poll_ready of external handler %" PRIu64 " ran while suspended",
             uid);
  FUZZ_CHECK(h.poll_found_work, "poll_ready of handler %" PRIu64 " ran but poll found no work",
             uid);
  h.poll_found_work = false;
  ++h.poll_ready_runs;
  ++h.poll_ready_running;
  FUZZ_CHECK(h.poll_ready_runs <= polls_started_ - h.polls_at_registration,
             "poll_ready of handler %" PRIu64 " ran more than once per iteration", uid);
}

void ReferenceModel::handler_poll_ready_returns(int slot, uint64_t uid) {
  HandlerState& h = handlers_[slot];
  if (h.uid == uid) --h.poll_ready_running;  // else removed meanwhile
}

void ReferenceModel::handler_poll_begins(int slot, uint64_t uid) {
  FUZZ_CHECK(!destroyed_, "poll_begin ran after the context was destroyed");
  HandlerState& h = handlers_[slot];
  // poll_begin may come while the handler is being registered, before the
  // model has it: only pairing is checked for another uid.
  if (h.uid != uid) return;
  FUZZ_CHECK(!h.in_poll_phase, "poll_begin of handler %" PRIu64 " twice without poll_end", uid);
  h.in_poll_phase = true;
}

void ReferenceModel::handler_poll_ends(int slot, uint64_t uid) {
  FUZZ_CHECK(!destroyed_, "poll_end ran after the context was destroyed");
  HandlerState& h = handlers_[slot];
  if (h.uid != uid) return;
  FUZZ_CHECK(h.in_poll_phase, "poll_end of handler %" PRIu64 " without poll_begin", uid);
  h.in_poll_phase = false;
}

void ReferenceModel::external_disabled() {
  ++external_count_;
  ++external_disables_;
}

}  // namespace aioloop::fuzz
