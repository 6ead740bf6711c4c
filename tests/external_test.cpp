// SPDX-License-Identifier: MIT
// disable_external()/enable_external(): suspended handlers, resumption,
// nesting, and no spinning on a ready suspended fd.
#include "test_support.h"

namespace aioloop::testing {
namespace {

using ExternalTest = ContextTest;

FdHandler ExternalReader(std::function<void()> read) {
  FdHandler handler;
  handler.read = std::move(read);
  handler.external = true;
  return handler;
}

// DESIGN "Fd handler": `disable_external()` suspends every handler flagged
// external — "not dispatched" — and enable resumes it: the still-ready fd is
// dispatched again.
TEST_P(ExternalTest, SuspendedHandlerIsNotDispatchedAndResumesLater) {
  Pipe pipe;
  pipe.Fill();
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ExternalReader([&] {
                                      ++reads;
                                      pipe.Drain();
                                    })));
  ctx().disable_external();
  EXPECT_TRUE(ctx().external_disabled());
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 0);
  ctx().enable_external();
  EXPECT_FALSE(ctx().external_disabled());
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  ctx().remove_fd_handler(pipe.read_fd);
}

// DESIGN "Fd handler": only handlers flagged external are suspended.
TEST_P(ExternalTest, NonExternalHandlersKeepRunning) {
  Pipe external_pipe;
  Pipe internal_pipe;
  external_pipe.Fill();
  internal_pipe.Fill();
  int external_reads = 0;
  int internal_reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(external_pipe.read_fd, ExternalReader([&] {
                                      ++external_reads;
                                      external_pipe.Drain();
                                    })));
  FdHandler internal;
  internal.read = [&] {
    ++internal_reads;
    internal_pipe.Drain();
  };
  ASSERT_FALSE(ctx().set_fd_handler(internal_pipe.read_fd, std::move(internal)));
  ctx().disable_external();
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(internal_reads, 1);
  EXPECT_EQ(external_reads, 0);
  ctx().enable_external();
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(external_reads, 1);
  EXPECT_EQ(internal_reads, 1);
}

// DESIGN "Fd handler": "`disable_external()`/`enable_external()` (a nesting
// count)".
TEST_P(ExternalTest, DisableAndEnableNest) {
  Pipe pipe;
  pipe.Fill();
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ExternalReader([&] {
                                      ++reads;
                                      pipe.Drain();
                                    })));
  ctx().disable_external();
  ctx().disable_external();
  ctx().enable_external();
  EXPECT_TRUE(ctx().external_disabled()) << "one enable undoes only one of two disables";
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 0);
  ctx().enable_external();
  EXPECT_FALSE(ctx().external_disabled());
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  ctx().remove_fd_handler(pipe.read_fd);
}

// DESIGN "Fd handler": suspension happens "without making the loop spin on a
// ready external fd": a blocking poll() with a ready suspended fd waits for
// the next real deadline. disable_external() is O(1) under epoll and
// io_uring, so those monitors may learn of the suspension from the fd's first
// event: one early return is allowed, a second wait must block in full.
TEST_P(ExternalTest, ReadySuspendedFdDoesNotMakeTheLoopSpin) {
  Watchdog watchdog(ctx());
  Pipe pipe;
  pipe.Fill();
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ExternalReader([&] { ++reads; })));
  ctx().disable_external();
  int fired = 0;
  Timer timer(ctx(), ClockType::realtime, Scale::ns, [&] { ++fired; });
  for (int round = 0; round < 2; ++round) {
    const int64_t deadline = ctx().now(ClockType::realtime) + 20 * 1000 * 1000;
    timer.mod(deadline);
    int polls = 0;
    while (fired == round && !watchdog.fired()) {
      EXPECT_FALSE(ctx().poll(true) && fired == round) << "progress without a callback";
      ++polls;
    }
    ASSERT_FALSE(watchdog.fired());
    EXPECT_LE(polls, round == 0 ? 2 : 1) << "the suspended ready fd ended the wait early";
    EXPECT_GE(ctx().now(ClockType::realtime), deadline);
  }
  EXPECT_EQ(reads, 0);
  ctx().enable_external();
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  ctx().remove_fd_handler(pipe.read_fd);
}

// DESIGN "Fd handler": disable_external() from a callback takes effect at
// once: an external handler whose event was collected in the same iteration
// is not dispatched, and runs after enable_external().
TEST_P(ExternalTest, DisableFromACallbackStopsPendingExternalEvents) {
  Pipe pipes[2];
  int reads[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    ASSERT_FALSE(ctx().set_fd_handler(pipes[i].read_fd, ExternalReader([&, i] {
                                        ++reads[i];
                                        pipes[i].Drain();
                                        ctx().disable_external();
                                      })));
    pipes[i].Fill();
  }
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads[0] + reads[1], 1) << "a suspended handler was dispatched";
  ctx().enable_external();
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads[0], 1);
  EXPECT_EQ(reads[1], 1);
  ctx().enable_external();
  EXPECT_FALSE(ctx().external_disabled());
  EXPECT_FALSE(ctx().poll(false));
}

// DESIGN "Fd handler": a handler registered while external handlers are
// suspended is suspended too, and resumes with the others.
TEST_P(ExternalTest, HandlerRegisteredWhileDisabledStartsSuspended) {
  Pipe pipe;
  pipe.Fill();
  int reads = 0;
  ctx().disable_external();
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ExternalReader([&] {
                                      ++reads;
                                      pipe.Drain();
                                    })));
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 0);
  ctx().enable_external();
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  ctx().remove_fd_handler(pipe.read_fd);
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(ExternalTest);

}  // namespace
}  // namespace aioloop::testing
