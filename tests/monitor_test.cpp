// SPDX-License-Identifier: MIT
// What each fd monitor must get right beyond the common conformance suites
// (issue 3, point 6), run once per monitor.
#include <aioloop/aioloop.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace aioloop::testing {
namespace {

class MonitorTest : public ContextTest {};

// "20,000 registered fds must work", "cost independent of idle fds": one
// active handler among 20,000 idle ones is dispatched, and only it.
TEST_P(MonitorTest, TwentyThousandIdleFdsAndOneActive) {
  constexpr int kWanted = 20000;
  constexpr int kHeadroom = 64;  // the test binary's own fds
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < kWanted + kHeadroom) {
    rlimit raised = limit;
    raised.rlim_cur = raised.rlim_max = std::max<rlim_t>(limit.rlim_max, kWanted + kHeadroom);
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
      // Not allowed to raise the hard limit (this machine caps it at
      // 20,000): use all of it that the binary does not need itself.
      raised.rlim_cur = raised.rlim_max = limit.rlim_max;
      setrlimit(RLIMIT_NOFILE, &raised);
    }
  }
  getrlimit(RLIMIT_NOFILE, &limit);
  const int kIdle = static_cast<int>(std::min<rlim_t>(kWanted, limit.rlim_cur - kHeadroom));
  if (kIdle < 10000) GTEST_SKIP() << "RLIMIT_NOFILE is only " << limit.rlim_cur;
  RecordProperty("idle_fds", kIdle);

  // Idle: copies of a pipe's read end that never gets data.
  Pipe idle;
  std::vector<int> fds;
  fds.reserve(kIdle);
  int idle_calls = 0;
  for (int i = 0; i < kIdle; ++i) {
    int fd = dup(idle.read_fd);
    ASSERT_GE(fd, 0) << "dup #" << i;
    fds.push_back(fd);
    FdHandler h;
    h.read = [&] { ++idle_calls; };
    ASSERT_FALSE(ctx().set_fd_handler(fd, std::move(h))) << "fd #" << i;
  }
  Pipe active;
  int active_calls = 0;
  FdHandler h;
  h.read = [&] {
    active.Drain();
    ++active_calls;
  };
  ASSERT_FALSE(ctx().set_fd_handler(active.read_fd, std::move(h)));
  for (int round = 0; round < 100; ++round) {
    active.Fill();
    Watchdog watchdog(ctx());
    while (!watchdog.fired() && active_calls == round) ctx().poll(true);
    ASSERT_FALSE(watchdog.fired());
  }
  EXPECT_EQ(active_calls, 100);
  EXPECT_EQ(idle_calls, 0);
  for (int fd : fds) {
    ctx().remove_fd_handler(fd);
    close(fd);
  }
  ctx().remove_fd_handler(active.read_fd);
}

// "a removal racing an in-flight completion never touches freed memory":
// the fd is made ready after the handler was removed, while (under
// io_uring) its poll request may still be in flight. ASan watches.
TEST_P(MonitorTest, HandlerRemovedWhileItsPollIsInFlight) {
  for (int i = 0; i < 200; ++i) {
    Pipe p;
    int calls = 0;
    FdHandler h;
    h.read = [&] { ++calls; };
    ASSERT_FALSE(ctx().set_fd_handler(p.read_fd, std::move(h)));
    ctx().poll(false);    // submits the request
    if (i % 2) p.Fill();  // half the time the completion is already posted
    ctx().remove_fd_handler(p.read_fd);
    p.Fill();
    ctx().poll(false);
    ctx().poll(false);
    EXPECT_EQ(calls, 0);
  }
}

// The same, but the handler is replaced (a new one registered for the fd):
// only the new one is ever called.
TEST_P(MonitorTest, ReplacementWhileRequestInFlightCallsOnlyTheNewHandler) {
  Pipe p;
  int old_calls = 0, new_calls = 0;
  FdHandler old_h;
  old_h.read = [&] { ++old_calls; };
  ASSERT_FALSE(ctx().set_fd_handler(p.read_fd, std::move(old_h)));
  ctx().poll(false);
  FdHandler new_h;
  new_h.read = [&] {
    p.Drain();
    ++new_calls;
  };
  new_h.write = [] {};  // different events: a new request under io_uring
  ASSERT_FALSE(ctx().set_fd_handler(p.read_fd, std::move(new_h)));
  p.Fill();
  Watchdog watchdog(ctx());
  while (!watchdog.fired() && new_calls == 0) ctx().poll(true);
  EXPECT_EQ(old_calls, 0);
  EXPECT_EQ(new_calls, 1);
  ctx().remove_fd_handler(p.read_fd);
}

// "replacing the handler of a ready fd inside its own callback": the old
// callback is never run again, the new one gets the next event.
TEST_P(MonitorTest, ReplaceOwnHandlerOfReadyFdInsideCallback) {
  Pipe p;
  int first = 0, second = 0;
  FdHandler replacement;
  replacement.read = [&] {
    p.Drain();
    ++second;
  };
  FdHandler h;
  h.read = [&] {
    ++first;
    p.Drain();
    EXPECT_FALSE(ctx().set_fd_handler(p.read_fd, replacement));
  };
  ASSERT_FALSE(ctx().set_fd_handler(p.read_fd, std::move(h)));
  p.Fill();
  Watchdog watchdog(ctx());
  while (!watchdog.fired() && first == 0) ctx().poll(true);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 0);
  p.Fill();
  while (!watchdog.fired() && second == 0) ctx().poll(true);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
  ctx().remove_fd_handler(p.read_fd);
}

// "An fd that is invalid, closed while registered ... never a crash, a hang"
// and the loop never spins on it: with a 30 ms timer pending, the loop takes
// only a handful of iterations to get there.
TEST_P(MonitorTest, FdClosedWhileRegisteredDoesNotSpin) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  int calls = 0;
  FdHandler h;
  h.read = [&] { ++calls; };
  ASSERT_FALSE(ctx().set_fd_handler(fds[0], std::move(h)));
  ctx().poll(false);
  close(fds[0]);
  close(fds[1]);
  bool fired = false;
  Timer t(ctx(), ClockType::realtime, Scale::ms, [&] { fired = true; });
  t.mod(ctx().now(ClockType::realtime) / 1000000 + 30);
  const uint64_t before = ctx().stats().iterations;
  Watchdog watchdog(ctx());
  while (!watchdog.fired() && !fired) ctx().poll(true);
  EXPECT_TRUE(fired);
  EXPECT_LE(ctx().stats().iterations - before, 5u);
  ctx().remove_fd_handler(fds[0]);
}

volatile sig_atomic_t g_signals = 0;
void CountSignal(int) {
  g_signals = g_signals + 1;
}

// "signals delivered during a blocking wait (no spurious progress, no lost
// event)": poll(true) keeps waiting through signals and returns once, with
// progress, for the event.
TEST_P(MonitorTest, SignalsDuringABlockingWaitAreNotEvents) {
  struct sigaction sa {};
  sa.sa_handler = CountSignal;  // no SA_RESTART: the wait sees EINTR
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  g_signals = 0;

  Pipe p;
  int calls = 0;
  FdHandler h;
  h.read = [&] {
    p.Drain();
    ++calls;
  };
  ASSERT_FALSE(ctx().set_fd_handler(p.read_fd, std::move(h)));
  ctx().poll(false);
  const pthread_t home = pthread_self();
  const uint64_t waits = ctx().stats().blocking_waits;
  std::thread signaller([&] {
    if (!WaitUntilBlocked(ctx(), waits)) return;
    for (int i = 0; i < 20; ++i) {
      pthread_kill(home, SIGUSR1);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    p.Fill();
  });
  const bool progress = ctx().poll(true);
  signaller.join();
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_GE(g_signals, 1);
  EXPECT_TRUE(progress) << "a signal ended the wait as if it were an event";
  EXPECT_EQ(calls, 1);
  ctx().remove_fd_handler(p.read_fd);
}

// One iteration of a bare outer poll() loop driving the context through
// the embedding hooks. An unbounded wait lasts at most unbounded_ms (-1:
// really unbounded).
void OuterPollIteration(Context& ctx, int unbounded_ms) {
  const int64_t timeout_ns = ctx.embed_prepare();
  std::vector<pollfd> fds;
  for (const EmbedFd& f : ctx.embed_fds()) fds.push_back({f.fd, f.events, 0});
  const int ms = timeout_ns < 0 ? unbounded_ms : static_cast<int>((timeout_ns + 999999) / 1000000);
  ::poll(fds.data(), fds.size(), ms);
  std::vector<short> revents;
  for (const pollfd& f : fds) revents.push_back(f.revents);
  if (ctx.embed_check(revents)) ctx.embed_dispatch();
}

// Issue 3, point 5: "test them [the embedding hooks] from a bare outer
// poll() loop". With one handler, every monitor shows its fd and the
// notifier's (see FewAndManyHandlersEmbedded for the epoll or ring fd).
TEST_P(MonitorTest, EmbeddedInABarePollLoop) {
  auto outer_iteration = [&] { OuterPollIteration(ctx(), -1); };
  Watchdog watchdog(ctx());

  // A bottom half scheduled from another thread wakes the outer wait.
  std::atomic<bool> ran{false};
  BottomHalf bh(ctx(), [&] { ran = true; });
  std::thread other([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    bh.schedule();
  });
  while (!watchdog.fired() && !ran) outer_iteration();
  other.join();
  EXPECT_TRUE(ran.load());

  // Fd handlers, including one added while embedded.
  Pipe p;
  int reads = 0;
  FdHandler h;
  h.read = [&] {
    p.Drain();
    ++reads;
  };
  ASSERT_FALSE(ctx().set_fd_handler(p.read_fd, std::move(h)));
  p.Fill();
  while (!watchdog.fired() && reads == 0) outer_iteration();
  EXPECT_EQ(reads, 1);
  // One per handler, + the notifier: under epoll and io_uring too, while
  // there are few handlers (see FewAndManyHandlersEmbedded).
  EXPECT_EQ(ctx().embed_fds().size(), 2u);

  // A timer, never early.
  int64_t fired_at = -1;
  Timer t(ctx(), ClockType::realtime, Scale::ns,
          [&] { fired_at = ctx().now(ClockType::realtime); });
  const int64_t deadline = ctx().now(ClockType::realtime) + 5 * 1000 * 1000;
  t.mod(deadline);
  while (!watchdog.fired() && fired_at < 0) outer_iteration();
  EXPECT_GE(fired_at, deadline);
  EXPECT_FALSE(watchdog.fired());
  ctx().remove_fd_handler(p.read_fd);
}

// DESIGN "The GSource": check returns true "if a BH is scheduled", idle
// ones included. Found by the fuzzer's embedded iterations: prepare said
// work was due (the idle bottom half's schedule had left a notification),
// check said nothing was, and an outer loop that dispatches only after a
// true check never ran it.
TEST_P(MonitorTest, IdleBottomHalfRunsInABarePollLoop) {
  int runs = 0;
  BottomHalf idle(ctx(), [&] { ++runs; });
  BottomHalf starter(ctx(), [&] { idle.schedule_idle(); });
  starter.schedule();
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(runs, 0) << "a bottom half scheduled during the pass runs in a later one";
  OuterPollIteration(ctx(), 1000);
  EXPECT_EQ(runs, 1);
}

// Under epoll and io_uring, above 8 handlers, an fd with events in 4
// outer-loop rounds in a row leaves the monitor's watch and is shown beside
// the epoll or ring fd, so its events come with the outer poll() and the
// monitor's fd stays quiet; 64 idle rounds, a native poll(), removing the
// handler or closing the fd each put things back, and no event is lost or
// reported twice on the way.
TEST_P(MonitorTest, BusyFdIsShownBesideTheMonitorsFd) {
  if (GetParam() == Backend::poll) GTEST_SKIP() << "poll shows every fd";
  Context& loop = ctx();
  std::vector<std::unique_ptr<Pipe>> idle;
  for (int i = 0; i < 12; ++i) {
    idle.push_back(std::make_unique<Pipe>());
    ASSERT_FALSE(loop.set_fd_handler(idle.back()->read_fd, ReadHandler([] {})));
  }
  auto busy = std::make_unique<Pipe>();
  int reads = 0;
  auto watch_busy = [&] {
    FdHandler h;
    h.read = [&] {
      ++reads;
      busy->Drain();
    };
    ASSERT_FALSE(loop.set_fd_handler(busy->read_fd, std::move(h)));
  };
  watch_busy();
  auto shown = [&](int fd) {
    for (const EmbedFd& f : loop.embed_fds()) {
      if (f.fd == fd) return true;
    }
    return false;
  };
  // One round with an event: exactly one dispatch.
  auto busy_round = [&] {
    const int before = reads;
    busy->Fill();
    OuterPollIteration(loop, 1000);
    ASSERT_EQ(reads, before + 1);
  };
  // Busy rounds until the fd is shown: 4 under epoll, where each round
  // collects one event; a round or two more under io_uring, whose first
  // round also reports the registration's own poll.
  auto heat_up = [&] {
    for (int i = 0; i < 8 && !shown(busy->read_fd); ++i) busy_round();
    ASSERT_TRUE(shown(busy->read_fd));
    ASSERT_EQ(loop.embed_fds().size(), 2u);
  };
  ASSERT_EQ(loop.embed_fds().size(), 1u) << "the monitor's fd alone";
  for (int i = 0; i < 3; ++i) busy_round();
  ASSERT_FALSE(shown(busy->read_fd)) << "hot after 3 rounds";
  heat_up();
  for (int i = 0; i < 80; ++i) {  // longer than the 64 idle rounds that demote
    busy->Fill();
    // Not watched by the monitor: its data does not make the monitor's fd
    // readable.
    pollfd own{loop.embed_fds()[0].fd, POLLIN, 0};
    EXPECT_EQ(::poll(&own, 1, 0), 0) << "round " << i;
    const int before = reads;
    OuterPollIteration(loop, 1000);
    ASSERT_EQ(reads, before + 1);
  }
  EXPECT_TRUE(shown(busy->read_fd)) << "busy all along, still hot";

  // Idle for 64 rounds: back into the set, and its next event comes from it.
  for (int i = 0; i < 64; ++i) OuterPollIteration(loop, 0);
  EXPECT_EQ(loop.embed_fds().size(), 1u);
  busy_round();

  // A native poll() waits on the set alone.
  heat_up();
  busy->Fill();
  EXPECT_TRUE(loop.poll(false));
  EXPECT_FALSE(shown(busy->read_fd));
  busy_round();

  // Removed while hot, then watched again.
  heat_up();
  loop.remove_fd_handler(busy->read_fd);
  EXPECT_EQ(loop.embed_fds().size(), 1u);
  watch_busy();
  busy_round();

  // Closed while hot: the outer poll() says POLLNVAL; the handler is
  // counted invalid and nothing spins.
  heat_up();
  const int closed_fd = busy->read_fd;
  close(closed_fd);
  busy->read_fd = -1;
  OuterPollIteration(loop, 0);
  EXPECT_EQ(loop.stats().invalid_fds, 1u);
  EXPECT_FALSE(shown(closed_fd));
  const int before = reads;
  for (int i = 0; i < 3; ++i) OuterPollIteration(loop, 0);
  EXPECT_EQ(reads, before);
  loop.remove_fd_handler(closed_fd);
  for (auto& p : idle) loop.remove_fd_handler(p->read_fd);
}

// Under epoll and io_uring an outer loop is shown the handlers' fds while
// there are at most 8 watched handlers (the notifier counts), and the one
// epoll or ring fd beyond that; under poll always the handlers' fds. Events
// arrive on both sides of the switch, both ways, and a native poll() in
// between (which re-arms io_uring's requests) changes nothing.
TEST_P(MonitorTest, FewAndManyHandlersEmbedded) {
  auto outer_iteration = [&] { OuterPollIteration(ctx(), 1000); };
  constexpr int kPipes = 12;
  std::vector<std::unique_ptr<Pipe>> pipes;
  std::vector<int> reads(kPipes, 0);
  for (int i = 0; i < kPipes; ++i) {
    pipes.push_back(std::make_unique<Pipe>());
    FdHandler h;
    h.read = [&, i] {
      ++reads[i];
      pipes[i]->Drain();
    };
    ASSERT_FALSE(ctx().set_fd_handler(pipes[i]->read_fd, std::move(h)));
    const size_t shown = ctx().embed_fds().size();
    if (GetParam() == Backend::poll || i + 2 <= 8) {
      EXPECT_EQ(shown, static_cast<size_t>(i + 2)) << i + 1 << " handlers";
    } else {
      EXPECT_EQ(shown, 1u) << i + 1 << " handlers";
    }
  }
  Watchdog watchdog(ctx());
  pipes[9]->Fill();
  while (!watchdog.fired() && reads[9] == 0) outer_iteration();
  for (int i = 2; i < kPipes; ++i) ctx().remove_fd_handler(pipes[i]->read_fd);
  EXPECT_EQ(ctx().embed_fds().size(), 3u);
  pipes[1]->Fill();
  while (!watchdog.fired() && reads[1] == 0) outer_iteration();
  // A native poll() while embedded with few handlers, then embedded again.
  pipes[0]->Fill();
  while (!watchdog.fired() && reads[0] == 0) ctx().poll(true);
  pipes[0]->Fill();
  while (!watchdog.fired() && reads[0] == 1) outer_iteration();
  for (int i = 0; i < 3; ++i) outer_iteration();
  EXPECT_FALSE(watchdog.fired());
  EXPECT_EQ(reads, (std::vector<int>{2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}));
  for (int i = 0; i < 2; ++i) ctx().remove_fd_handler(pipes[i]->read_fd);
}

// The fds in an epoll set, from /proc/self/fdinfo (one "tfd:" line each).
int EpollSetSize(int epoll_fd) {
  std::FILE* info = std::fopen(("/proc/self/fdinfo/" + std::to_string(epoll_fd)).c_str(), "r");
  if (!info) {
    ADD_FAILURE() << "no fdinfo for " << epoll_fd;
    return -1;
  }
  int count = 0;
  char line[256];
  while (std::fgets(line, sizeof line, info)) {
    if (std::strncmp(line, "tfd:", 4) == 0) ++count;
  }
  std::fclose(info);
  return count;
}

// Under epoll, fds shown to an outer loop directly are out of the epoll set:
// in it, every write that makes one ready would also run the epoll
// instance's wake-up callback, for nothing (W3 under GLib paid ~0.05x L3).
// Registrations while direct are still checked by the kernel, a native
// wait puts every fd back, and events keep coming through both.
TEST_P(MonitorTest, EpollSetIsEmptyWhileFdsAreShownDirectly) {
  if (GetParam() != Backend::epoll) GTEST_SKIP() << "an epoll matter";
  Context& loop = ctx();
  std::vector<std::unique_ptr<Pipe>> pipes;
  int reads = 0;
  auto watch = [&](const Pipe& p) {
    FdHandler h;
    h.read = [&] {
      ++reads;
      p.Drain();
    };
    return loop.set_fd_handler(p.read_fd, std::move(h));
  };
  for (int i = 0; i < 12; ++i) {
    pipes.push_back(std::make_unique<Pipe>());
    ASSERT_FALSE(watch(*pipes.back()));
  }
  ASSERT_EQ(loop.embed_fds().size(), 1u);
  const int epoll_fd = loop.embed_fds()[0].fd;
  EXPECT_EQ(EpollSetSize(epoll_fd), 13);  // + the notifier

  for (int i = 2; i < 12; ++i) loop.remove_fd_handler(pipes[i]->read_fd);
  EXPECT_EQ(loop.embed_fds().size(), 3u);
  EXPECT_EQ(EpollSetSize(epoll_fd), 0);
  pipes[0]->Fill();
  OuterPollIteration(loop, 1000);
  EXPECT_EQ(reads, 1);

  // A new handler is shown, not kept in the set; the kernel still refuses
  // what it cannot watch.
  ASSERT_FALSE(watch(*pipes[2]));
  EXPECT_EQ(loop.embed_fds().size(), 4u);
  EXPECT_EQ(EpollSetSize(epoll_fd), 0);
  char path[] = "/tmp/aioloop-regular-XXXXXX";
  const int file = ::mkstemp(path);
  ASSERT_GE(file, 0);
  ::unlink(path);
  EXPECT_EQ(loop.set_fd_handler(file, ReadHandler([] {})), std::errc::operation_not_permitted);
  ::close(file);

  // A native wait watches the set alone: every fd is back for it.
  pipes[2]->Fill();
  EXPECT_TRUE(loop.poll(true));
  EXPECT_EQ(reads, 2);
  EXPECT_EQ(EpollSetSize(epoll_fd), 4);
  // And the next outer-loop round takes them out again.
  pipes[1]->Fill();
  OuterPollIteration(loop, 1000);
  EXPECT_EQ(reads, 3);
  EXPECT_EQ(EpollSetSize(epoll_fd), 0);
  for (int i = 0; i < 3; ++i) loop.remove_fd_handler(pipes[i]->read_fd);
}

// Prepare may be repeated without check (GLib does it); the announcement is
// one flag, so one check withdraws it: afterwards a notify() from another
// thread writes no eventfd.
TEST_P(MonitorTest, EmbedPrepareWithoutCheckIsTolerated) {
  ctx().embed_prepare();
  ctx().embed_prepare();
  ctx().embed_prepare();
  ctx().embed_check({});
  ctx().embed_dispatch();
  const uint64_t writes = ctx().stats().eventfd_writes;
  std::thread([&] { ctx().notify(); }).join();
  EXPECT_EQ(ctx().stats().eventfd_writes, writes);
}

// embed_abandon(): an outer loop that gives up its wait between prepare and
// check (from another thread here) leaves no announcement behind, so
// neither the home thread's notify() nor, once the home thread has run an
// iteration, another thread's writes the eventfd. An abandon that arrives
// before a later prepare does not withdraw that prepare's announcement.
TEST_P(MonitorTest, AbandonedEmbedWaitLeavesNoAnnouncement) {
  // Settle: io_uring's first embedded prepare has completions to take.
  for (int i = 0; i < 3; ++i) {
    ctx().embed_prepare();
    ctx().embed_check({});
    ctx().embed_dispatch();
  }
  ASSERT_NE(ctx().embed_prepare(), 0);
  std::thread([&] { ctx().embed_abandon(); }).join();
  const uint64_t writes = ctx().stats().eventfd_writes;
  ctx().notify();
  EXPECT_EQ(ctx().stats().eventfd_writes, writes) << "the home thread's notify()";
  ctx().poll(false);
  std::thread([&] { ctx().notify(); }).join();
  EXPECT_EQ(ctx().stats().eventfd_writes, writes) << "another thread's notify()";
  ctx().poll(false);

  std::thread([&] { ctx().embed_abandon(); }).join();
  ASSERT_NE(ctx().embed_prepare(), 0);
  // The outer loop may still block: both must wake it.
  ctx().notify();
  std::thread([&] { ctx().notify(); }).join();
  EXPECT_EQ(ctx().stats().eventfd_writes, writes + 2) << "the new wait was withdrawn";
  ctx().embed_check({});
  ctx().embed_dispatch();
}

// A prepare that finds work due (W1 under GLib: a bottom half that
// re-schedules itself) returns 0 without announcing a wait: the outer loop
// will not block, so a notify() from another thread until check needs no
// eventfd write. A prepare that may block announces, and the same notify()
// writes it.
TEST_P(MonitorTest, EmbedPrepareWithWorkDueAnnouncesNoWait) {
  int runs = 0;
  BottomHalf bh(ctx(), [&] { ++runs; });
  bh.schedule();
  EXPECT_EQ(ctx().embed_prepare(), 0);
  const uint64_t writes = ctx().stats().eventfd_writes;
  std::thread([&] { ctx().notify(); }).join();
  EXPECT_EQ(ctx().stats().eventfd_writes, writes);
  EXPECT_TRUE(ctx().embed_check({}));
  ctx().embed_dispatch();
  EXPECT_EQ(runs, 1);

  EXPECT_NE(ctx().embed_prepare(), 0);
  std::thread([&] { ctx().notify(); }).join();
  EXPECT_EQ(ctx().stats().eventfd_writes, writes + 1);
  ctx().embed_check({});
  ctx().embed_dispatch();
}

// Context::set_embed_wakeup(): an outer loop with a wake-up of its own (a
// pipe here, GLib's wake-up fd under GLib) is shown no eventfd of the
// context and is woken through its own; a native poll() nested in a
// callback the outer loop dispatches is still woken through the eventfd;
// clearing the wake-up shows the eventfd again.
TEST_P(MonitorTest, OuterLoopsOwnWakeUpReplacesTheEventfd) {
  struct OuterWake {
    Pipe pipe;
    std::atomic<int> calls{0};
  } outer;
  auto wake = +[](void* arg) {
    auto* o = static_cast<OuterWake*>(arg);
    o->calls.fetch_add(1, std::memory_order_relaxed);
    o->pipe.Fill();
  };
  Watchdog watchdog(ctx());
  const uint64_t generation = ctx().embed_fds_generation();
  ctx().set_embed_wakeup(wake, &outer);
  EXPECT_NE(ctx().embed_fds_generation(), generation);
  EXPECT_EQ(ctx().embed_fds().size(), 0u) << "the eventfd is still shown";

  // One outer iteration: the context's fds and the outer loop's own pipe.
  auto outer_iteration = [&] {
    const int64_t timeout_ns = ctx().embed_prepare();
    std::vector<pollfd> fds{{outer.pipe.read_fd, POLLIN, 0}};
    for (const EmbedFd& f : ctx().embed_fds()) fds.push_back({f.fd, f.events, 0});
    // Unbounded when the context says so: a lost wake-up hangs the test
    // until the watchdog fires.
    ::poll(fds.data(), fds.size(),
           timeout_ns < 0 ? -1 : static_cast<int>((timeout_ns + 999999) / 1000000));
    outer.pipe.Drain();
    std::vector<short> revents;
    for (size_t i = 1; i < fds.size(); ++i) revents.push_back(fds[i].revents);
    if (ctx().embed_check(revents)) ctx().embed_dispatch();
  };
  auto from_other_thread = [](BottomHalf& bh) {
    return std::thread([&bh] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      bh.schedule();
    });
  };

  // Usually the outer loop is blocked when the bottom half comes; a round
  // in which it was not needs no wake-up, so try a few.
  std::atomic<int> remote_runs{0};
  BottomHalf remote(ctx(), [&] { remote_runs.fetch_add(1); });
  for (int round = 1; round <= 5 && outer.calls.load() == 0; ++round) {
    std::thread other = from_other_thread(remote);
    while (!watchdog.fired() && remote_runs.load() < round) outer_iteration();
    other.join();
  }
  EXPECT_GE(outer.calls.load(), 1) << "the outer loop was not woken through its own wake-up";

  // A native poll() nested in a callback of the outer loop's dispatch.
  const uint64_t writes = ctx().stats().eventfd_writes;
  const int calls = outer.calls.load();
  const int runs_before_nesting = remote_runs.load();
  bool nested_done = false;
  BottomHalf nesting(ctx(), [&] {
    std::thread inner = from_other_thread(remote);
    while (!watchdog.fired() && remote_runs.load() == runs_before_nesting) ctx().poll(true);
    inner.join();
    nested_done = true;
  });
  nesting.schedule();
  while (!watchdog.fired() && !nested_done) outer_iteration();
  EXPECT_EQ(remote_runs.load(), runs_before_nesting + 1);
  EXPECT_EQ(outer.calls.load(), calls) << "a native wait was woken through the outer loop";
  EXPECT_LE(ctx().stats().eventfd_writes, writes + 1);

  // Cleared: the eventfd is shown again and wakes the outer loop.
  ctx().set_embed_wakeup(nullptr, nullptr);
  EXPECT_EQ(ctx().embed_fds().size(), 1u);
  std::thread other = from_other_thread(remote);
  while (!watchdog.fired() && remote_runs.load() == runs_before_nesting + 1) outer_iteration();
  other.join();
  EXPECT_EQ(remote_runs.load(), runs_before_nesting + 2);
  EXPECT_EQ(outer.calls.load(), calls);
  EXPECT_FALSE(watchdog.fired());
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(MonitorTest);

// "forced by option or AIOLOOP_BACKEND=poll|epoll|io_uring (an unknown value
// is a clear error)".
TEST(BackendChoiceTest, EnvironmentVariableForcesTheBackend) {
  const char* saved = std::getenv("AIOLOOP_BACKEND");
  std::string saved_value = saved ? saved : "";
  for (Backend b : {Backend::poll, Backend::epoll, Backend::io_uring}) {
    if (!backend_compiled_in(b)) continue;
    setenv("AIOLOOP_BACKEND", std::string(backend_name(b)).c_str(), 1);
    try {
      EXPECT_EQ(Context::create()->backend(), b);
    } catch (const Error& e) {
      // A forced backend the kernel refuses is an error, never a fallback.
      EXPECT_EQ(b, Backend::io_uring) << e.what();
    }
  }
  setenv("AIOLOOP_BACKEND", "kqueue", 1);
  EXPECT_THROW(Context::create(), Error);
  // An explicit option wins over the environment.
  setenv("AIOLOOP_BACKEND", "epoll", 1);
  EXPECT_EQ(Context::create({.backend = Backend::poll})->backend(), Backend::poll);
  if (saved) {
    setenv("AIOLOOP_BACKEND", saved_value.c_str(), 1);
  } else {
    unsetenv("AIOLOOP_BACKEND");
  }
}

// "Backend::automatic picks io_uring, else epoll, else poll".
TEST(BackendChoiceTest, AutomaticPrefersIoUringThenEpoll) {
  const char* saved = std::getenv("AIOLOOP_BACKEND");
  std::string saved_value = saved ? saved : "";
  unsetenv("AIOLOOP_BACKEND");
  Backend expected = Backend::poll;
  for (Backend b : {Backend::epoll, Backend::io_uring}) {
    if (!backend_compiled_in(b)) continue;
    try {
      Context::create({.backend = b});
      expected = b;
    } catch (const Error&) {
    }
  }
  EXPECT_EQ(Context::create()->backend(), expected);
  EXPECT_EQ(Context::create()->stats().backend, expected);
  if (saved) setenv("AIOLOOP_BACKEND", saved_value.c_str(), 1);
}

// Under epoll a regular file is refused by the kernel: "a clear error value
// at registration, not a silent loss".
TEST(EpollMonitorTest, RegularFileIsRefusedWithEperm) {
  if (!backend_compiled_in(Backend::epoll)) GTEST_SKIP();
  auto ctx = Context::create({.backend = Backend::epoll});
  char path[] = "/tmp/aioloop-regular-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  FdHandler h;
  h.read = [] {};
  std::error_code ec = ctx->set_fd_handler(fd, std::move(h));
  EXPECT_EQ(ec, std::errc::operation_not_permitted);
  // The refused handler is not half-registered: removing it is a no-op and
  // the loop still works.
  ctx->remove_fd_handler(fd);
  EXPECT_FALSE(ctx->poll(false));
  close(fd);
}

}  // namespace
}  // namespace aioloop::testing
