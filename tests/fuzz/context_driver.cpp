// SPDX-License-Identifier: MIT
// The operations of the context fuzzer and the callbacks it registers.
#include "context_driver.h"

#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "fuzz_check.h"

namespace aioloop::fuzz {

namespace {

// At most this many iterations on the stack (a poll() inside a callback
// nests one), and callbacks nested this deep only report to the model.
constexpr int kMaxPollDepth = 4;
constexpr int kMaxCallbackDepth = 4;
// Keeps pipes far from full, so a write end is always writable.
constexpr int kMaxPipeBytes = 4096;

enum Op : unsigned {
  kNewBh,
  kSchedule,
  kScheduleIdle,
  kCancel,
  kDeleteBh,
  kRunSoon,
  kNewTimer,
  kModTimer,
  kModAnticipate,
  kDelTimer,
  kDeleteTimer,
  kAdvanceClock,
  kWrite,
  kDrain,
  kSetHandler,
  kRemoveHandler,
  kDisableExternal,
  kEnableExternal,
  kNotify,
  kPoll,
  kPollBlocking,
  kHangUp,
  kReopen,
  kPollParams,
  kOpCount,
};
// For AIOLOOP_FUZZ_TRACE.
constexpr const char* kOpNames[] = {
    "new_bh",    "schedule", "schedule_idle",  "cancel",  "delete_bh",   "run_soon",
    "new_timer", "mod",      "mod_anticipate", "del",     "reset",       "advance_clock",
    "write",     "drain",    "set_handler",    "remove",  "disable_ext", "enable_ext",
    "notify",    "poll",     "poll(true)",     "hang_up", "reopen",      "poll_params",
};
static_assert(std::size(kOpNames) == kOpCount);
// Op bytes decode modulo this; the codes past kOpCount are polls too, so
// about a quarter of all operations are iterations (half of them blocking
// when something is due). 0xff alone drops the context.
constexpr unsigned kOpSpace = 32;
constexpr uint8_t kDropContextByte = 0xff;

// Counts the callbacks the context holds: every registered lambda carries
// one, so after the context is destroyed the count must be back at zero.
class Token {
 public:
  Token() { ++live_; }
  Token(const Token&) { ++live_; }
  Token& operator=(const Token&) = default;
  ~Token() { --live_; }
  static int live() { return live_; }

 private:
  static inline int live_ = 0;
};

// AIOLOOP_FUZZ_TRACE=1 prints every operation and callback, to read what
// a crashing input did.
bool tracing() {
  static const bool on = std::getenv("AIOLOOP_FUZZ_TRACE") != nullptr;
  return on;
}

#define FUZZ_TRACE(...)                               \
  do {                                                \
    if (tracing()) std::fprintf(stderr, __VA_ARGS__); \
  } while (0)

int64_t real_now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNsPerSecond + ts.tv_nsec;
}

constexpr int64_t kClockSteps[] = {0,       1,       999,          1000,
                                   1000000, 7000000, kNsPerSecond, 8 * kNsPerSecond};
constexpr Scale kScales[] = {Scale::ns, Scale::us, Scale::ms};

}  // namespace

ContextDriver::~ContextDriver() {
  // The context is gone by now (run() drops it), and with it the handlers.
  for (PipeFds& p : idle_pipes_) {
    close(p.read_fd);
    close(p.write_fd);
  }
  if (outer_wake_.read_fd >= 0) {
    close(outer_wake_.read_fd);
    close(outer_wake_.write_fd);
  }
  for (PipeFds& p : pipes_) {
    if (p.read_fd >= 0) close(p.read_fd);
    if (p.write_fd >= 0) close(p.write_fd);
  }
}

void ContextDriver::run() {
  const int live_before = Token::live();
  constexpr Backend kBackends[] = {Backend::poll, Backend::epoll, Backend::io_uring};
  // The first byte picks the fd monitor and the clock busy polling runs
  // on. On the test clock nothing moves between the start of an iteration
  // and its wait, so the busy-poll budget never grows from 0; on the real
  // clock it does (a wait of a few microseconds is enough), and busy polling
  // ends within at most 1 ms (the largest budget set below).
  const uint8_t setup = in_.byte();
  // (setup / 6) % 2: non-blocking iterations go through the embedding hooks
  // (every regression input predating them has it clear); (setup / 12) % 2:
  // with 9 idle handlers besides; (setup / 24) % 4 == 3: the outer loop has
  // its own wake-up, so the embed lists leave the context's eventfd out,
  // and gives up every third prepare (again clear in every older
  // regression input).
  ContextOptions options;
  options.backend = kBackends[setup % 3];
  options.busy_poll_clock = (setup / 3) % 2 == 0 ? ClockType::test : ClockType::realtime;
  embedded_ = (setup / 6) % 2 == 1;
  try {
    ctx_ = Context::create(options);
  } catch (const Error&) {
    // This build or kernel lacks the monitor: fuzz the one that is always there.
    options.backend = Backend::poll;
    ctx_ = Context::create(options);
  }
  context_ = ctx_.get();
  for (int p = 0; p < kPipes; ++p) open_pipe(p);
  if (embedded_ && (setup / 12) % 2 == 1) add_idle_handlers();
  if (embedded_ && (setup / 24) % 4 == 3) use_outer_wakeup();

  while (!in_.exhausted() && !model_.dropped()) step();
  if (!model_.dropped()) drop_context();

  FUZZ_CHECK(model_.destroyed(), "the context outlived its last reference");
  FUZZ_CHECK(Token::live() == live_before,
             "%d callbacks were neither run nor destroyed with the context",
             Token::live() - live_before);
}

void ContextDriver::step() {
  if (model_.dropped()) return;
  const uint8_t code = in_.byte();
  if (code == kDropContextByte) {
    FUZZ_TRACE("%*sdrop_context\n", 2 * callback_depth_, "");
    drop_context();
    return;
  }
  const unsigned op = code % kOpSpace;
  FUZZ_TRACE("%*s%s\n", 2 * callback_depth_, "", op < kOpCount ? kOpNames[op] : "poll");
  switch (op) {
    case kNewBh:
      new_bh(in_.below(kBhSlots));
      break;
    case kSchedule:
    case kScheduleIdle: {
      const int slot = in_.below(kBhSlots);
      if (!model_.bh_exists(slot)) break;
      if (op == kSchedule) {
        bhs_[slot].schedule();
      } else {
        bhs_[slot].schedule_idle();
      }
      model_.bh_scheduled(slot, op == kScheduleIdle);
      break;
    }
    case kCancel: {
      const int slot = in_.below(kBhSlots);
      if (!model_.bh_exists(slot)) break;
      bhs_[slot].cancel();
      model_.bh_cancelled(slot);
      break;
    }
    case kDeleteBh: {
      const int slot = in_.below(kBhSlots);
      bhs_[slot].reset();
      model_.bh_deleted(slot);
      break;
    }
    case kRunSoon:
      run_soon();
      break;
    case kNewTimer:
      new_timer(in_.below(kTimerSlots));
      break;
    case kModTimer:
    case kModAnticipate:
      mod_timer(in_.below(kTimerSlots), op == kModAnticipate);
      break;
    case kDelTimer: {
      const int slot = in_.below(kTimerSlots);
      if (!model_.timer_exists(slot)) break;
      timers_[slot].del();
      model_.timer_disarmed(slot);
      break;
    }
    case kDeleteTimer: {
      const int slot = in_.below(kTimerSlots);
      timers_[slot].reset();
      model_.timer_deleted(slot);
      break;
    }
    case kAdvanceClock: {
      const int64_t delta = kClockSteps[in_.below(std::size(kClockSteps))];
      context_->advance_test_clock(delta);
      model_.test_clock_advanced(delta);
      break;
    }
    case kWrite:
      write_pipe(in_.below(kPipes));
      break;
    case kDrain:
      drain_pipe(in_.below(kPipes));
      break;
    case kSetHandler:
      set_handler(in_.below(kHandlerSlots));
      break;
    case kRemoveHandler:
      remove_handler(in_.below(kHandlerSlots));
      break;
    case kDisableExternal:
      context_->disable_external();
      model_.external_disabled();
      break;
    case kEnableExternal:
      if (model_.external_count() == 0) break;  // unbalanced: a usage error
      context_->enable_external();
      model_.external_enabled();
      break;
    case kNotify:
      context_->notify();
      model_.notified();
      break;
    case kPollBlocking:
      poll(true);
      break;
    case kHangUp:
      hang_up(in_.below(kPipes));
      break;
    case kReopen:
      reopen(in_.below(kPipes));
      break;
    case kPollParams:
      set_poll_params();
      break;
    default:  // kPoll and the spare codes
      if (embedded_ && op % 2 == 1) {
        embedded_iteration();
      } else {
        poll(op % 2 == 0);
      }
      break;
  }
  if (!model_.dropped()) check_observers();
}

void ContextDriver::callback_actions() {
  if (callback_depth_ >= kMaxCallbackDepth) return;
  ++callback_depth_;
  for (unsigned n = in_.below(4); n > 0 && !model_.dropped(); --n) step();
  --callback_depth_;
}

// --- bottom halves

void ContextDriver::new_bh(int slot) {
  const uint64_t uid = model_.bh_created(slot);
  // Replacing the handle deletes the previous bottom half (even from inside
  // its own callback).
  bhs_[slot] = BottomHalf(*context_, [this, slot, uid, t = Token()] { on_bh(slot, uid); });
}

void ContextDriver::run_soon() {
  const uint64_t uid = model_.one_shot_scheduled();
  context_->run_soon([this, uid, t = Token()] { on_one_shot(uid); });
}

void ContextDriver::on_bh(int slot, uint64_t uid) {
  FUZZ_TRACE("%*s-> bottom half %d/%" PRIu64 "\n", 2 * callback_depth_, "", slot, uid);
  model_.bh_runs(slot, uid);
  callback_actions();
}

void ContextDriver::on_one_shot(uint64_t uid) {
  FUZZ_TRACE("%*s-> run_soon %" PRIu64 "\n", 2 * callback_depth_, "", uid);
  model_.one_shot_runs(uid);
  callback_actions();
}

// --- timers

void ContextDriver::new_timer(int slot) {
  // Mostly the test clock; realtime timers are armed in the past or an
  // hour ahead, so the fuzzer never waits for real time.
  const TimerClock clock = in_.below(4) == 0 ? TimerClock::realtime : TimerClock::test;
  const Scale scale = kScales[in_.below(std::size(kScales))];
  const uint64_t uid = model_.timer_created(slot, clock);
  FUZZ_TRACE("%*s  timer %d/%" PRIu64 ": %s clock, scale %" PRId64 "\n", 2 * callback_depth_, "",
             slot, uid, clock == TimerClock::test ? "test" : "real", static_cast<int64_t>(scale));
  timer_scales_[slot] = scale;
  timers_[slot] =
      Timer(*context_, clock == TimerClock::test ? ClockType::test : ClockType::realtime, scale,
            [this, slot, uid, t = Token()] { on_timer(slot, uid); });
}

int64_t ContextDriver::pick_expire_time(int slot, int64_t* deadline_ns) {
  const int64_t scale = static_cast<int64_t>(timer_scales_[slot]);
  int64_t value;
  if (model_.timer_clock(slot) == TimerClock::test) {
    // Around the test clock's now: a little in the past up to 13 units on.
    value = model_.test_now() / scale + static_cast<int64_t>(in_.below(16)) - 2;
  } else if (in_.flag()) {
    value = real_now_ns() / scale - 1;
  } else {
    value = (real_now_ns() + 3600 * kNsPerSecond) / scale;
  }
  *deadline_ns = value * scale;
  return value;
}

void ContextDriver::mod_timer(int slot, bool anticipate) {
  if (!model_.timer_exists(slot)) return;
  int64_t deadline = 0;
  const int64_t value = pick_expire_time(slot, &deadline);
  FUZZ_TRACE("%*s  timer %d: %s deadline %" PRId64 " (test clock %" PRId64 ")\n",
             2 * callback_depth_, "", slot, anticipate ? "anticipate" : "arm", deadline,
             model_.test_now());
  if (!anticipate) {
    timers_[slot].mod(value);
    model_.timer_armed(slot, deadline);
    return;
  }
  timers_[slot].mod_anticipate(value);
  // "Only moves an armed timer earlier."
  if (!model_.timer_pending(slot) || deadline < model_.timer_deadline(slot)) {
    model_.timer_armed(slot, deadline);
  }
}

void ContextDriver::on_timer(int slot, uint64_t uid) {
  FUZZ_TRACE("%*s-> timer %d/%" PRIu64 "\n", 2 * callback_depth_, "", slot, uid);
  model_.timer_fires(slot, uid, real_now_ns());
  FUZZ_CHECK(!timers_[slot].pending() && timers_[slot].expire_time_ns() == -1,
             "timer %" PRIu64 " is still pending in its own callback", uid);
  callback_actions();
}

void ContextDriver::check_observers() {
  for (int slot = 0; slot < kTimerSlots; ++slot) {
    if (!model_.timer_exists(slot)) continue;
    const bool pending = model_.timer_pending(slot);
    FUZZ_CHECK(timers_[slot].pending() == pending, "timer slot %d: pending() is %d, expected %d",
               slot, timers_[slot].pending(), pending);
    const int64_t expire = pending ? model_.timer_deadline(slot) : -1;
    FUZZ_CHECK(timers_[slot].expire_time_ns() == expire,
               "timer slot %d: expire_time_ns() is %" PRId64 ", expected %" PRId64, slot,
               timers_[slot].expire_time_ns(), expire);
  }
  FUZZ_CHECK(context_->external_disabled() == (model_.external_count() > 0),
             "external_disabled() disagrees with %d disable_external() calls outstanding",
             model_.external_count());
  // The counters are brought up to date when an iteration's bottom-half
  // and timer passes end: exact between iterations only.
  if (model_.in_iteration()) return;
  const Stats stats = context_->stats();
  // One thread: nothing notifies while a wait is announced (a native wait
  // blocks at once; the outer loop's wait runs no callback), so no notify()
  // may find one, and none writes an eventfd or calls the outer wake-up.
  FUZZ_CHECK(stats.eventfd_writes == 0,
             "%" PRIu64 " notify() calls found a wait announced with nobody waiting",
             stats.eventfd_writes);
  FUZZ_CHECK(stats.iterations + undispatched_ == model_.iterations() &&
                 stats.bhs_run == model_.bottom_halves_run() &&
                 stats.timers_fired == model_.timers_fired(),
             "stats() counts %" PRIu64 " iterations, %" PRIu64 " bottom halves, %" PRIu64
             " timers; %" PRIu64 ", %" PRIu64 ", %" PRIu64 " ran",
             stats.iterations, stats.bhs_run, stats.timers_fired, model_.iterations(),
             model_.bottom_halves_run(), model_.timers_fired());
  // Every notify() here comes from the home thread while no wait is
  // announced ("otherwise costs a store and a fence"), and no watched fd is
  // ever closed.
  FUZZ_CHECK(stats.eventfd_writes == 0, "notify() from the home thread wrote the eventfd");
  FUZZ_CHECK(stats.invalid_fds == 0, "%" PRIu64 " open fds were taken for closed ones",
             stats.invalid_fds);
}

// --- pipes and handlers

void ContextDriver::open_pipe(int pipe) {
  int fds[2];
  FUZZ_CHECK(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2 failed");
  pipes_[pipe] = PipeFds{fds[0], fds[1]};
}

int ContextDriver::slot_fd(int slot) const {
  const PipeFds& p = pipes_[slot / 2];
  return slot % 2 == 0 ? p.read_fd : p.write_fd;
}

void ContextDriver::write_pipe(int pipe) {
  if (model_.pipe_hung_up_now(pipe) || model_.pipe_bytes(pipe) > kMaxPipeBytes) return;
  const char bytes[8] = {};
  const int n = 1 + static_cast<int>(in_.below(8));
  FUZZ_CHECK(write(pipes_[pipe].write_fd, bytes, n) == n, "write to pipe %d failed", pipe);
  model_.pipe_written(pipe, n);
}

void ContextDriver::drain_pipe(int pipe) {
  char buffer[512];
  int total = 0;
  for (;;) {
    const ssize_t n = read(pipes_[pipe].read_fd, buffer, sizeof buffer);
    if (n <= 0) break;
    total += static_cast<int>(n);
  }
  FUZZ_CHECK(total == model_.pipe_bytes(pipe), "pipe %d held %d bytes, the model says %d", pipe,
             total, model_.pipe_bytes(pipe));
  model_.pipe_drained(pipe);
}

void ContextDriver::set_handler(int slot) {
  const bool write_end = slot % 2 == 1;
  if (write_end && model_.pipe_hung_up_now(slot / 2)) return;  // that end is closed
  const uint8_t bits = in_.byte();
  HandlerTraits traits;
  traits.external = (bits & 1) != 0;
  traits.with_poll = (bits & 2) != 0;
  // Some poll callbacks move the test clock: busy polling measures its
  // budget on that clock, and this is how its time passes.
  const int64_t advance_ns = (bits & 4) ? kClockSteps[(bits >> 3) % std::size(kClockSteps)] : 0;
  // The model learns of the handler first: its poll_begin may run during
  // the registration.
  const uint64_t uid = model_.handler_registered(slot, traits);
  FdHandler handler;
  auto main = [this, slot, uid, t = Token()] { on_handler(slot, uid); };
  if (write_end) {
    handler.write = main;
  } else {
    handler.read = main;
  }
  if (traits.with_poll) {
    handler.poll = [this, slot, uid, advance_ns, t = Token()] {
      return on_poll(slot, uid, advance_ns);
    };
    handler.poll_ready = [this, slot, uid, t = Token()] { on_poll_ready(slot, uid); };
    handler.poll_begin = [this, slot, uid, t = Token()] {
      FUZZ_TRACE("%*s-> poll_begin %d/%" PRIu64 "\n", 2 * callback_depth_, "", slot, uid);
      model_.handler_poll_begins(slot, uid);
    };
    handler.poll_end = [this, slot, uid, t = Token()] {
      FUZZ_TRACE("%*s-> poll_end %d/%" PRIu64 "\n", 2 * callback_depth_, "", slot, uid);
      model_.handler_poll_ends(slot, uid);
    };
  }
  handler.external = traits.external;
  const std::error_code ec = context_->set_fd_handler(slot_fd(slot), std::move(handler));
  FUZZ_CHECK(!ec, "set_fd_handler on an open pipe failed: %s", ec.message().c_str());
}

void ContextDriver::remove_handler(int slot) {
  const int fd = slot_fd(slot);
  if (fd < 0) return;
  if (in_.flag()) {
    context_->remove_fd_handler(fd);
  } else {
    // A handler with no callbacks is a removal.
    const std::error_code ec = context_->set_fd_handler(fd, FdHandler{});
    FUZZ_CHECK(!ec, "removing by an empty handler failed: %s", ec.message().c_str());
  }
  model_.handler_removed(slot);
}

void ContextDriver::hang_up(int pipe) {
  if (model_.pipe_hung_up_now(pipe)) return;
  remove_handler(2 * pipe + 1);  // never close a watched fd
  close(pipes_[pipe].write_fd);
  pipes_[pipe].write_fd = -1;
  model_.pipe_hung_up(pipe);
}

void ContextDriver::reopen(int pipe) {
  // The new pipe usually gets the same fd numbers: a recycled fd must not
  // reach the old handlers.
  remove_handler(2 * pipe);
  remove_handler(2 * pipe + 1);
  close(pipes_[pipe].read_fd);
  if (pipes_[pipe].write_fd >= 0) close(pipes_[pipe].write_fd);
  open_pipe(pipe);
  model_.pipe_reopened(pipe);
}

void ContextDriver::on_handler(int slot, uint64_t uid) {
  FUZZ_TRACE("%*s-> handler %d/%" PRIu64 "\n", 2 * callback_depth_, "", slot, uid);
  model_.handler_main_runs(slot, uid);
  if (slot % 2 == 0 && in_.flag()) drain_pipe(slot / 2);
  callback_actions();
}

bool ContextDriver::on_poll(int slot, uint64_t uid, int64_t advance_ns) {
  FUZZ_TRACE("%*s-> poll %d/%" PRIu64 "\n", 2 * callback_depth_, "", slot, uid);
  const bool found = model_.handler_polled(slot, uid);
  if (advance_ns != 0 && !model_.dropped()) {
    context_->advance_test_clock(advance_ns);
    model_.test_clock_advanced(advance_ns);
  }
  return found;
}

void ContextDriver::on_poll_ready(int slot, uint64_t uid) {
  FUZZ_TRACE("%*s-> poll_ready %d/%" PRIu64 "\n", 2 * callback_depth_, "", slot, uid);
  model_.handler_poll_ready_runs(slot, uid);
  callback_actions();
  model_.handler_poll_ready_returns(slot, uid);
}

// --- iterations and lifetime

void ContextDriver::poll(bool want_blocking) {
  if (model_.poll_depth() >= kMaxPollDepth) return;
  const int64_t now = real_now_ns();
  // Block only when something is due: the fuzzer has no other thread to
  // wake the loop, so the model's promise is what ends the wait. A wrong
  // model or a lost wake-up shows as a hang (libFuzzer's -timeout).
  const bool blocking = want_blocking && model_.blocking_poll_returns(now);
  Context* context = context_;
  model_.poll_begins(now);
  const bool progress = context->poll(blocking);
  model_.poll_ends(progress);
}

void ContextDriver::embedded_iteration() {
  if (model_.poll_depth() >= kMaxPollDepth) return;
  Context* context = context_;
  // The same promises as poll(false): what was due when the iteration
  // began has run when it ends, and it reports whether a callback ran.
  model_.poll_begins(real_now_ns());
  context->embed_prepare();
  std::vector<pollfd> fds;
  // The outer loop's own wake-up fd comes first and is not the context's.
  const size_t own = outer_wake_.read_fd >= 0 ? 1 : 0;
  if (own) fds.push_back({outer_wake_.read_fd, POLLIN, 0});
  for (const EmbedFd& f : context->embed_fds()) fds.push_back({f.fd, f.events, 0});
  // libFuzzer's SIGALRM (its -timeout watchdog) can interrupt even a
  // zero-timeout poll(): EINTR is the outer loop's to retry, as GLib does.
  int ready = 0;
  do {
    ready = ::poll(fds.data(), fds.size(), 0);
  } while (ready < 0 && errno == EINTR);
  FUZZ_CHECK(ready >= 0, "the outer poll() failed: %s", std::strerror(errno));
  if (own && fds[0].revents) {
    char buf[64];
    while (::read(outer_wake_.read_fd, buf, sizeof buf) > 0) {
    }
  }
  std::vector<short> revents;
  for (size_t i = own; i < fds.size(); ++i) revents.push_back(fds[i].revents);
  FUZZ_TRACE("%*s  outer poll of %zu fds\n", 2 * callback_depth_, "", fds.size());
  bool progress = false;
  if (context->embed_check(revents)) {
    progress = context->embed_dispatch();
  } else {
    ++undispatched_;
  }
  // Still inside the model's iteration: leaving busy polling runs the
  // handlers' poll_end callbacks. A callback may have dropped the last
  // reference, and then the context is gone once the outermost dispatch
  // has returned.
  if (!model_.dropped() && outer_wake_.read_fd >= 0 && ++embedded_rounds_ % 3 == 0) {
    abandoned_prepare();
  }
  model_.poll_ends(progress);
}

void ContextDriver::abandoned_prepare() {
  // No callback runs here, so the model has nothing to promise; what
  // follows (a native poll(), bottom halves scheduled from callbacks) must
  // find no announcement left (check_observers(): no eventfd write ever).
  context_->embed_prepare();
  (void)context_->embed_fds();
  context_->embed_abandon();
  model_.outer_iteration_abandoned();
  ++undispatched_;
  FUZZ_TRACE("%*s  abandoned prepare\n", 2 * callback_depth_, "");
}

void ContextDriver::add_idle_handlers() {
  for (int i = 0; i < 9; ++i) {
    int fds[2];
    FUZZ_CHECK(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2 failed");
    idle_pipes_.push_back(PipeFds{fds[0], fds[1]});
    FdHandler handler;
    handler.read = [] { FUZZ_CHECK(false, "the handler of an fd nobody writes ran"); };
    FUZZ_CHECK(!context_->set_fd_handler(fds[0], std::move(handler)), "an idle pipe was refused");
  }
}

void ContextDriver::set_poll_params() {
  constexpr int64_t kMaxNs[] = {0, 4096, 65536, 1000000};
  const int64_t max_ns = kMaxNs[in_.below(std::size(kMaxNs))];
  const int64_t grow = in_.below(4);
  const int64_t shrink = in_.below(3);
  context_->set_poll_params(max_ns, grow, shrink);
  if (in_.below(4) == 0) context_->set_poll_weight(in_.below(4));
}

void ContextDriver::use_outer_wakeup() {
  int fds[2];
  FUZZ_CHECK(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2 failed");
  outer_wake_ = PipeFds{fds[0], fds[1]};
  // Called from any thread notify() runs in; the pipe outlives the context.
  context_->set_embed_wakeup(
      +[](void* write_fd) {
        const char byte = 'w';
        (void)!::write(*static_cast<int*>(write_fd), &byte, 1);
      },
      &outer_wake_.write_fd);
}

void ContextDriver::drop_context() {
  // Handles keep the context alive; registered handlers do not. Inside a
  // callback the context must survive until the outermost poll() returns.
  for (int slot = 0; slot < kBhSlots; ++slot) {
    bhs_[slot].reset();
    model_.bh_deleted(slot);
  }
  for (int slot = 0; slot < kTimerSlots; ++slot) {
    timers_[slot].reset();
    model_.timer_deleted(slot);
  }
  ctx_.reset();
  model_.context_dropped();
}

}  // namespace aioloop::fuzz
