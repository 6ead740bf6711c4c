// SPDX-License-Identifier: MIT
// Fd handlers on pipes and socket pairs: read, write, hang-up and error
// delivery, replacement, removal from callbacks, and nested iterations.
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "test_support.h"

namespace aioloop::testing {
namespace {

using FdHandlerTest = ContextTest;

FdHandler WriteHandler(std::function<void()> write) {
  FdHandler handler;
  handler.write = std::move(write);
  return handler;
}

// DESIGN "Fd handler": the `read` callback runs when the fd is readable, in
// an iteration; an idle fd causes no progress.
TEST_P(FdHandlerTest, ReadCallbackRunsWhenThePipeIsReadable) {
  Pipe pipe;
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([&] {
                                      ++reads;
                                      EXPECT_EQ(pipe.Drain(), 1u);
                                    })));
  EXPECT_FALSE(ctx().poll(false)) << "nothing written yet";
  EXPECT_EQ(reads, 0);
  pipe.Fill();
  EXPECT_EQ(reads, 0) << "dispatch happens only inside an iteration";
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  EXPECT_FALSE(ctx().poll(false)) << "drained: no more events";
  EXPECT_EQ(reads, 1);
}

// DESIGN "Fd monitors" (io_uring): handlers keep level-triggered semantics —
// an fd left readable is reported again in every iteration, once each.
TEST_P(FdHandlerTest, HandlersAreLevelTriggered) {
  Pipe pipe;
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([&] { ++reads; })));
  pipe.Fill();
  for (int i = 1; i <= 3; ++i) {
    EXPECT_TRUE(ctx().poll(false));
    EXPECT_EQ(reads, i) << "exactly one dispatch per iteration";
  }
  pipe.Drain();
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 3);
}

// A handler that makes its own fd ready again (WORKLOADS W4's self-ping) is
// dispatched once per iteration; when it stops, the fd is drained and
// nothing more is reported. Under multishot io_uring the new event is
// already in the completion queue and replaces the level check.
TEST_P(FdHandlerTest, SelfPingingHandlerRunsOncePerIteration) {
  const int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  int reads = 0;
  bool ping = true;
  ASSERT_FALSE(ctx().set_fd_handler(
      efd, ReadHandler([&] {
        ++reads;
        uint64_t value = 0;
        EXPECT_EQ(read(efd, &value, sizeof value), static_cast<ssize_t>(sizeof value));
        value = 1;
        if (ping) {
          EXPECT_EQ(write(efd, &value, sizeof value), static_cast<ssize_t>(sizeof value));
        }
      })));
  const uint64_t one = 1;
  ASSERT_EQ(write(efd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  for (int i = 1; i <= 100; ++i) {
    ASSERT_TRUE(ctx().poll(true));
    ASSERT_EQ(reads, i) << "exactly one dispatch per iteration";
  }
  ping = false;
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 101);
  EXPECT_FALSE(ctx().poll(false)) << "drained: no more events";
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 101);
  ctx().remove_fd_handler(efd);
  close(efd);
}

// An fd changes character as a program runs: quiet (written by someone else,
// drained by its handler), busy (its handler makes it ready again), left
// ready (its handler does not drain it). Level-triggered dispatch holds in
// every phase and across the changes. Under multishot io_uring a quiet fd is
// moved to one-shot requests and now and then back to multishot (every 64
// events), so the phases are long enough to cross several such moves.
TEST_P(FdHandlerTest, LevelTriggeredWhetherTheFdIsQuietBusyOrLeftReady) {
  const int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  enum class Phase { quiet, busy, left_ready } phase = Phase::quiet;
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(
      efd, ReadHandler([&] {
        ++reads;
        if (phase == Phase::left_ready) return;
        uint64_t value = 0;
        EXPECT_EQ(read(efd, &value, sizeof value), static_cast<ssize_t>(sizeof value));
        value = 1;
        if (phase == Phase::busy) {
          EXPECT_EQ(write(efd, &value, sizeof value), static_cast<ssize_t>(sizeof value));
        }
      })));
  const uint64_t one = 1;
  auto quiet_rounds = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      const int before = reads;
      ASSERT_FALSE(ctx().poll(false)) << "drained: nothing to report (round " << i << ")";
      ASSERT_EQ(write(efd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
      ASSERT_TRUE(ctx().poll(true));
      ASSERT_EQ(reads, before + 1) << "round " << i;
    }
  };
  // io_uring: about one completion per event. Watching a quiet fd with a
  // multishot request and a level check would complete both per event.
  auto expect_one_completion_per_event = [&](uint64_t since, int events, const char* phase_name) {
    if (ctx().backend() != aioloop::Backend::io_uring) return;
    const uint64_t completions = ctx().stats().monitor_completions - since;
    EXPECT_LE(completions, static_cast<uint64_t>(events + events / 8)) << phase_name;
  };
  quiet_rounds(40);  // settles
  uint64_t since = ctx().stats().monitor_completions;
  quiet_rounds(200);
  expect_one_completion_per_event(since, 200, "quiet");

  phase = Phase::busy;
  ASSERT_EQ(write(efd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  for (int i = 0; i < 100; ++i) {  // long enough to go back to multishot
    ASSERT_TRUE(ctx().poll(true));
  }
  since = ctx().stats().monitor_completions;
  for (int i = 0; i < 200; ++i) {
    const int before = reads;
    ASSERT_TRUE(ctx().poll(true));
    ASSERT_EQ(reads, before + 1) << "one dispatch per iteration (round " << i << ")";
  }
  expect_one_completion_per_event(since, 200, "busy");

  phase = Phase::left_ready;
  for (int i = 0; i < 200; ++i) {
    const int before = reads;
    ASSERT_TRUE(ctx().poll(false)) << "still ready, reported again (round " << i << ")";
    ASSERT_EQ(reads, before + 1);
  }

  phase = Phase::quiet;
  ASSERT_TRUE(ctx().poll(false));  // drains it
  quiet_rounds(200);
  ctx().remove_fd_handler(efd);
  close(efd);
}

// DESIGN "Fd handler": the `write` callback runs when the fd is writable.
TEST_P(FdHandlerTest, WriteCallbackRunsWhenThePipeIsWritable) {
  Pipe pipe;
  int writes = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.write_fd, WriteHandler([&] { ++writes; })));
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(writes, 1);
  ctx().remove_fd_handler(pipe.write_fd);
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(writes, 1);
}

// DESIGN "Fd handler": `read` and `write` callbacks of one handler, on a
// socket pair that is both readable and writable: each runs once.
TEST_P(FdHandlerTest, ReadAndWriteOnASocketPair) {
  SocketPair sockets;
  int reads = 0;
  int writes = 0;
  FdHandler handler;
  handler.read = [&] {
    ++reads;
    EXPECT_EQ(SocketPair::Drain(sockets.a), 1u);
  };
  handler.write = [&] { ++writes; };
  ASSERT_FALSE(ctx().set_fd_handler(sockets.a, std::move(handler)));
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 0) << "nothing sent yet";
  EXPECT_EQ(writes, 1);
  SocketPair::Send(sockets.b);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(writes, 2);
}

// DESIGN "Fd handler": "Error and hang-up conditions are delivered to the
// read and the write callback" — hang-up of a pipe, to the read callback.
TEST_P(FdHandlerTest, PipeHangUpIsDeliveredToRead) {
  Pipe pipe;
  int reads = 0;
  ssize_t last_read = -2;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([&] {
                                      ++reads;
                                      char byte;
                                      last_read = ::read(pipe.read_fd, &byte, 1);
                                      ctx().remove_fd_handler(
                                          pipe.read_fd);  // EOF stays readable forever
                                    })));
  EXPECT_FALSE(ctx().poll(false));
  CloseFd(pipe.write_fd);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(last_read, 0) << "the callback saw end of file";
}

// DESIGN "Fd handler": hang-up is delivered to the write callback too, even
// for an fd that is never writable (the read end of a pipe).
TEST_P(FdHandlerTest, PipeHangUpIsDeliveredToWrite) {
  Pipe pipe;
  int writes = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, WriteHandler([&] { ++writes; })));
  EXPECT_FALSE(ctx().poll(false)) << "a pipe's read end is never writable";
  EXPECT_EQ(writes, 0);
  CloseFd(pipe.write_fd);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(writes, 1);
  ctx().remove_fd_handler(pipe.read_fd);
}

// DESIGN "Fd handler": error conditions are delivered to the read callback,
// even for an fd that is never readable (the write end of a pipe whose
// reader is gone reports POLLERR).
TEST_P(FdHandlerTest, PipeErrorIsDeliveredToRead) {
  Pipe pipe;
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.write_fd, ReadHandler([&] { ++reads; })));
  EXPECT_FALSE(ctx().poll(false)) << "a pipe's write end is never readable";
  EXPECT_EQ(reads, 0);
  CloseFd(pipe.read_fd);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  ctx().remove_fd_handler(pipe.write_fd);
}

// DESIGN "Fd handler": error conditions are delivered to the write callback,
// also when the fd is not writable (a full pipe whose reader is gone).
TEST_P(FdHandlerTest, PipeErrorIsDeliveredToWrite) {
  Pipe pipe;
  const char chunk[4096] = {};
  while (::write(pipe.write_fd, chunk, sizeof chunk) > 0) {
  }
  int writes = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.write_fd, WriteHandler([&] { ++writes; })));
  EXPECT_FALSE(ctx().poll(false)) << "the pipe is full";
  EXPECT_EQ(writes, 0);
  CloseFd(pipe.read_fd);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(writes, 1);
  ctx().remove_fd_handler(pipe.write_fd);
}

// DESIGN "Fd handler": hang-up of a socket pair reaches the read callback,
// which then reads end of file.
TEST_P(FdHandlerTest, SocketPairHangUpIsDeliveredToRead) {
  SocketPair sockets;
  int reads = 0;
  ssize_t last_recv = -2;
  ASSERT_FALSE(ctx().set_fd_handler(sockets.a, ReadHandler([&] {
                                      ++reads;
                                      char byte;
                                      last_recv = ::recv(sockets.a, &byte, 1, 0);
                                      ctx().remove_fd_handler(sockets.a);
                                    })));
  EXPECT_FALSE(ctx().poll(false));
  CloseFd(sockets.b);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(last_recv, 0);
}

// DESIGN "Fd handler": "Setting a handler for an fd that has one replaces
// it" — the old callbacks never run again and are freed.
TEST_P(FdHandlerTest, SettingAHandlerTwiceReplacesIt) {
  Pipe pipe;
  int old_reads = 0;
  int new_reads = 0;
  auto token = std::make_shared<int>(0);
  ASSERT_FALSE(
      ctx().set_fd_handler(pipe.read_fd, ReadHandler([&old_reads, token] { ++old_reads; })));
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([&] {
                                      ++new_reads;
                                      pipe.Drain();
                                    })));
  EXPECT_EQ(token.use_count(), 1) << "the replaced handler must be freed";
  pipe.Fill();
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(old_reads, 0);
  EXPECT_EQ(new_reads, 1);
}

// DESIGN "Fd handler": replacement changes which events are watched: a
// handler replaced by a write-only one no longer gets read events.
TEST_P(FdHandlerTest, ReplacementChangesTheWatchedEvents) {
  SocketPair sockets;
  int reads = 0;
  int writes = 0;
  ASSERT_FALSE(ctx().set_fd_handler(sockets.a, WriteHandler([&] { ++writes; })));
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(writes, 1);
  ASSERT_FALSE(ctx().set_fd_handler(sockets.a, ReadHandler([&] { ++reads; })));
  EXPECT_FALSE(ctx().poll(false)) << "writable, but nobody watches for that any more";
  EXPECT_EQ(writes, 1);
  SocketPair::Send(sockets.b);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(writes, 1);
}

// DESIGN "The native iteration", re-entrancy: a callback may replace its own
// handler; "nothing after its removal": the old handler's other callback
// does not run for the same event, the new one runs in a later iteration.
TEST_P(FdHandlerTest, CallbackReplacesItsOwnHandler) {
  SocketPair sockets;
  SocketPair::Send(sockets.b);  // a: readable and writable
  int old_calls = 0;
  int new_reads = 0;
  auto replace = [&] {
    ++old_calls;
    ASSERT_FALSE(ctx().set_fd_handler(sockets.a, ReadHandler([&] {
                                        ++new_reads;
                                        SocketPair::Drain(sockets.a);
                                      })));
  };
  FdHandler handler;
  handler.read = replace;
  handler.write = replace;
  ASSERT_FALSE(ctx().set_fd_handler(sockets.a, std::move(handler)));
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(old_calls, 1) << "the replaced handler's second callback ran";
  ctx().poll(false);
  EXPECT_EQ(old_calls, 1);
  EXPECT_EQ(new_reads, 1);
  EXPECT_FALSE(ctx().poll(false));
}

// DESIGN "The native iteration": a callback may remove its own handler; it
// is never called again although its fd stays ready, and (header) its
// callbacks stay alive until the dispatch returns.
TEST_P(FdHandlerTest, CallbackRemovesItsOwnHandler) {
  Pipe pipe;
  pipe.Fill();
  int reads = 0;
  auto token = std::make_shared<int>(5);
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([&, token] {
                                      ++reads;
                                      ctx().remove_fd_handler(pipe.read_fd);
                                      EXPECT_EQ(*token, 5)
                                          << "the running callback was freed by its own removal";
                                    })));
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(token.use_count(), 1) << "freed once the dispatch returned";
  EXPECT_FALSE(ctx().poll(false)) << "the fd is still readable but has no handler";
  EXPECT_EQ(reads, 1);
}

// DESIGN "The native iteration": a callback may remove another handler whose
// event was already collected in the same iteration; "Nothing is dispatched
// ... after its removal."
TEST_P(FdHandlerTest, CallbackRemovesAnotherReadyHandler) {
  Pipe first;
  Pipe second;
  first.Fill();
  second.Fill();
  int first_reads = 0;
  int second_reads = 0;
  // Whichever runs first removes the other: the monitors may order the
  // ready list differently.
  ASSERT_FALSE(ctx().set_fd_handler(first.read_fd, ReadHandler([&] {
                                      ++first_reads;
                                      first.Drain();
                                      ctx().remove_fd_handler(second.read_fd);
                                    })));
  ASSERT_FALSE(ctx().set_fd_handler(second.read_fd, ReadHandler([&] {
                                      ++second_reads;
                                      second.Drain();
                                      ctx().remove_fd_handler(first.read_fd);
                                    })));
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(first_reads + second_reads, 1) << "the removed handler was dispatched";
  const bool first_survived = first_reads == 1;
  first.Fill();
  second.Fill();
  EXPECT_TRUE(ctx().poll(false)) << "the survivor is still registered";
  EXPECT_EQ(first_reads, first_survived ? 2 : 0);
  EXPECT_EQ(second_reads, first_survived ? 0 : 2);
  ctx().remove_fd_handler(first.read_fd);
  ctx().remove_fd_handler(second.read_fd);
}

// DESIGN "The native iteration": a callback may replace another handler
// whose event was already collected; the replaced one never runs, the new one
// gets the fd's events in a later iteration.
TEST_P(FdHandlerTest, CallbackReplacesAnotherReadyHandler) {
  Pipe pipes[2];
  int old_reads = 0;
  int new_reads[2] = {0, 0};
  // Each old handler replaces the other's: whichever the monitor dispatches
  // first, the second old handler must not run.
  for (int i = 0; i < 2; ++i) {
    const int other = 1 - i;
    ASSERT_FALSE(ctx().set_fd_handler(pipes[i].read_fd, ReadHandler([&, i, other] {
                                        ++old_reads;
                                        pipes[i].Drain();
                                        ASSERT_FALSE(ctx().set_fd_handler(pipes[other].read_fd,
                                                                          ReadHandler([&, other] {
                                                                            ++new_reads[other];
                                                                            pipes[other].Drain();
                                                                          })));
                                      })));
    pipes[i].Fill();
  }
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(old_reads, 1) << "the replaced handler ran after its replacement";
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(old_reads, 1);
  EXPECT_EQ(new_reads[0] + new_reads[1], 1) << "the replacement missed the pending data";
  EXPECT_FALSE(ctx().poll(false));
}

// DESIGN "The native iteration", re-entrancy: a callback may call poll()
// again; the nested iteration dispatches the other ready handlers, and
// "Nothing is dispatched twice".
TEST_P(FdHandlerTest, NestedPollDispatchesOtherReadyHandlersOnce) {
  Pipe pipes[2];
  int reads[2] = {0, 0};
  int depth = 0;
  int nested_dispatches = 0;
  bool nested_progress = false;
  bool nested_done = false;
  for (int i = 0; i < 2; ++i) {
    ASSERT_FALSE(ctx().set_fd_handler(pipes[i].read_fd, ReadHandler([&, i] {
                                        ++reads[i];
                                        pipes[i].Drain();
                                        if (depth > 0) ++nested_dispatches;
                                        if (!nested_done) {
                                          nested_done = true;
                                          ++depth;
                                          nested_progress = ctx().poll(false);
                                          --depth;
                                        }
                                      })));
    pipes[i].Fill();
  }
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_TRUE(nested_done);
  EXPECT_TRUE(nested_progress) << "the nested poll() dispatched the other handler";
  EXPECT_EQ(nested_dispatches, 1);
  EXPECT_EQ(reads[0], 1);
  EXPECT_EQ(reads[1], 1);
  EXPECT_FALSE(ctx().poll(false));
}

// DESIGN "The native iteration": nested iterations also run bottom halves
// and timers that are due, and the outer iteration does not run them again.
TEST_P(FdHandlerTest, NestedPollFromAHandlerRunsDueWorkOnce) {
  Pipe pipe;
  pipe.Fill();
  int bh_runs = 0;
  int timer_runs = 0;
  BottomHalf bh(ctx(), [&] { ++bh_runs; });
  Timer timer(ctx(), ClockType::test, Scale::ns, [&] { ++timer_runs; });
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([&] {
                                      pipe.Drain();
                                      bh.schedule();
                                      timer.mod(ctx().now(ClockType::test));
                                      EXPECT_TRUE(ctx().poll(false));
                                      EXPECT_EQ(bh_runs, 1);
                                      EXPECT_EQ(timer_runs, 1);
                                    })));
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(bh_runs, 1);
  EXPECT_EQ(timer_runs, 1);
  EXPECT_FALSE(ctx().poll(false));
}

// DESIGN "Fd monitors" (the ready list): with many idle handlers, exactly
// the ready ones are dispatched, once each.
TEST_P(FdHandlerTest, OnlyReadyHandlersOfManyAreDispatched) {
  constexpr int kPipes = 64;
  std::vector<std::unique_ptr<Pipe>> pipes;
  std::vector<int> reads(kPipes, 0);
  for (int i = 0; i < kPipes; ++i) {
    pipes.push_back(std::make_unique<Pipe>());
    ASSERT_FALSE(ctx().set_fd_handler(pipes[i]->read_fd, ReadHandler([&, i] {
                                        ++reads[i];
                                        pipes[i]->Drain();
                                      })));
  }
  EXPECT_FALSE(ctx().poll(false));
  for (int i : {3, 17, 40, 63}) pipes[i]->Fill();
  EXPECT_TRUE(ctx().poll(false));
  for (int i = 0; i < kPipes; ++i) {
    const bool ready = i == 3 || i == 17 || i == 40 || i == 63;
    EXPECT_EQ(reads[i], ready ? 1 : 0) << "pipe " << i;
  }
  for (int i = 0; i < kPipes; ++i) ctx().remove_fd_handler(pipes[i]->read_fd);
}

// DESIGN "Fd handler": a handler added from a callback for an fd that is
// already ready gets its event in a later iteration, not lost.
TEST_P(FdHandlerTest, HandlerAddedFromACallbackIsDispatchedLater) {
  Pipe trigger;
  Pipe late;
  late.Fill();
  trigger.Fill();
  int late_reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(trigger.read_fd, ReadHandler([&] {
                                      trigger.Drain();
                                      ASSERT_FALSE(
                                          ctx().set_fd_handler(late.read_fd, ReadHandler([&] {
                                                                 ++late_reads;
                                                                 late.Drain();
                                                               })));
                                    })));
  EXPECT_TRUE(ctx().poll(false));
  ctx().poll(false);
  EXPECT_EQ(late_reads, 1);
  EXPECT_FALSE(ctx().poll(false));
}

// DESIGN "Errors and bad input" with "Fd handler" removal: the common
// connection-teardown pattern — remove the handler, then close the fd, from
// its own callback — leaves the loop quiet.
TEST_P(FdHandlerTest, RemoveThenCloseFromTheCallback) {
  SocketPair sockets;
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(sockets.a, ReadHandler([&] {
                                      ++reads;
                                      ctx().remove_fd_handler(sockets.a);
                                      CloseFd(sockets.a);
                                    })));
  CloseFd(sockets.b);
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
}

// DESIGN "Fd handler": "setting all callbacks empty removes it".
TEST_P(FdHandlerTest, EmptyHandlerRemoves) {
  Pipe pipe;
  pipe.Fill();
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([&] { ++reads; })));
  EXPECT_FALSE(ctx().set_fd_handler(pipe.read_fd, FdHandler{}));
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 0);
  // And it can be registered again afterwards.
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([&] { ++reads; })));
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  ctx().remove_fd_handler(pipe.read_fd);
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(FdHandlerTest);

}  // namespace
}  // namespace aioloop::testing
