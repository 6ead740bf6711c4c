// SPDX-License-Identifier: MIT
// Faults and bad input (issue 7, point 5): recycled fd numbers, more
// registered fds than RLIMIT_NOFILE allows, io_uring refused for lack of
// memory, callbacks that throw, and a context destroyed from inside its own
// callbacks. The plain bad-fd cases (negative, not open, closed while
// registered, reused after an iteration) live in errors_test.cpp, signals in
// signals_test.cpp, fork() in fork_test.cpp.
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "child_process.h"
#include "seccomp_refusal.h"
#include "test_support.h"

namespace aioloop::testing {
namespace {

using FaultsTest = ContextTest;

// --- Recycled fd numbers

// DESIGN "Errors and bad input": a closed fd whose number is reused gets a
// defined behaviour. Here the number is recycled by dup2() with no iteration
// in between, so no monitor had a chance to notice, and the old file lives
// on elsewhere (a dup, as after fork() or SCM_RIGHTS). Re-registering the
// number must watch the new file only: the old file's events reach nobody.
TEST_P(FaultsTest, NumberRecycledByDup2WatchesOnlyTheNewFile) {
  if (GetParam() == Backend::epoll) {
    // epoll(7): the interest list holds open file descriptions, and close()
    // removes one only when no fd refers to it any more; its events keep
    // carrying the old number, and no epoll_ctl() can reach it. context.h
    // (set_fd_handler) tells users to remove the handler before closing.
    GTEST_SKIP() << "epoll cannot forget a file that is still open elsewhere";
  }
  Pipe old_pipe, new_pipe;
  int stale_calls = 0;
  ASSERT_FALSE(ctx().set_fd_handler(old_pipe.read_fd, ReadHandler([&] { ++stale_calls; })));
  const int number = old_pipe.read_fd;
  int old_copy = ::dup(old_pipe.read_fd);  // keeps the old file open
  ASSERT_GE(old_copy, 0);
  ASSERT_EQ(::dup2(new_pipe.read_fd, number), number);

  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(number, ReadHandler([&] {
                                      ++reads;
                                      char byte;
                                      EXPECT_EQ(::read(number, &byte, 1), 1)
                                          << "called for an event of another file";
                                    })));
  old_pipe.Fill();  // the old file turns readable, and stays so
  for (int i = 0; i < 3; ++i) ctx().poll(false);
  EXPECT_EQ(reads, 0) << "the old file's event reached the new handler";
  new_pipe.Fill();
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(stale_calls, 0);
  ctx().remove_fd_handler(number);
  CloseFd(old_copy);
}

// --- RLIMIT_NOFILE

// Issue 7: "registering more fds than RLIMIT_NOFILE allows". The fds are
// opened first and the soft limit lowered below their number afterwards
// (setrlimit closes nothing). A registration either succeeds, and then its
// handler gets every event, or fails with the limit's own errno (EMFILE):
// ppoll() cannot watch more fds than the limit, epoll and io_uring can, and
// must. What needs a new fd fails with EMFILE. In a child: the limit is
// process-wide.
TEST_P(FaultsTest, MoreRegisteredFdsThanRlimitNofile) {
  const Backend backend = GetParam();
  constexpr int kPipes = 96;
  constexpr rlim_t kLimit = 32;
  const ChildResult child = RunInChild([backend] {
    auto context = Context::create({.backend = backend});
    std::vector<std::unique_ptr<Pipe>> pipes;
    for (int i = 0; i < kPipes; ++i) pipes.push_back(std::make_unique<Pipe>());
    rlimit limit;
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 2;
    limit.rlim_cur = kLimit;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return kChildSkip;

    int reads = 0;
    int registered = 0;
    for (auto& pipe : pipes) {
      Pipe* p = pipe.get();
      std::error_code ec = context->set_fd_handler(p->read_fd, ReadHandler([&reads, p] {
                                                     ++reads;
                                                     p->Drain();
                                                   }));
      if (ec && ec.value() != EMFILE) {
        std::fprintf(stderr, "set_fd_handler(%d): %s\n", p->read_fd, ec.message().c_str());
        return 3;
      }
      if (!ec) ++registered;
      p->Fill();
    }
    std::fprintf(stderr, "registered %d of %d\n", registered, kPipes);
    // Bounded: a monitor that cannot wait must not make this loop forever.
    for (int i = 0; i < 100 && reads < registered; ++i) context->poll(true);
    if (reads != registered) {
      std::fprintf(stderr, "%d of %d registered handlers ran\n", reads, registered);
      return 4;
    }
    try {
      EventNotifier notifier;
      return 5;
    } catch (const Error& e) {
      if (e.code().value() != EMFILE) return 6;
    }
    for (auto& pipe : pipes) context->remove_fd_handler(pipe->read_fd);
    return 0;
  });
  if (child.status == kChildSkip) GTEST_SKIP() << "cannot lower RLIMIT_NOFILE";
  EXPECT_EQ(child.status, 0) << child.stderr_text;
  if (backend != Backend::poll) {
    EXPECT_NE(child.stderr_text.find("registered 96 of 96"), std::string::npos)
        << "epoll and io_uring have no reason to refuse:\n"
        << child.stderr_text;
  } else {
    // Those that fit under the limit (with the context's own eventfd).
    EXPECT_NE(child.stderr_text.find("registered 31 of 96"), std::string::npos)
        << child.stderr_text;
  }
}

// --- io_uring refused

// Issue 7: "ENOMEM from the ring" (what io_uring_setup returns when the
// ring's memory cannot be had, e.g. RLIMIT_MEMLOCK before Linux 5.12).
// Backend::automatic falls back to epoll with one warning that says why.
TEST(RingRefusedTest, OutOfMemoryFallsBackWithOneWarning) {
  if (!backend_compiled_in(Backend::io_uring) || !backend_compiled_in(Backend::epoll)) {
    GTEST_SKIP() << "needs both io_uring and epoll built in";
  }
  const ChildResult child = RunInChild([] {
    if (!FailIoUringSetupWith(ENOMEM)) return kChildSkip;
    ::unsetenv("AIOLOOP_BACKEND");
    auto context = Context::create();
    if (context->backend() != Backend::epoll) return 1;
    int runs = 0;
    context->run_soon([&runs] { ++runs; });
    return context->poll(false) && runs == 1 ? 0 : 2;
  });
  if (child.status == kChildSkip) GTEST_SKIP() << "the kernel refused the seccomp filter";
  EXPECT_EQ(child.status, 0) << child.stderr_text;
  EXPECT_NE(child.stderr_text.find("io_uring"), std::string::npos) << child.stderr_text;
  EXPECT_NE(child.stderr_text.find(std::strerror(ENOMEM)), std::string::npos) << child.stderr_text;
  EXPECT_EQ(std::count(child.stderr_text.begin(), child.stderr_text.end(), '\n'), 1)
      << child.stderr_text;
}

// A forced io_uring that cannot get its memory is an Error carrying ENOMEM,
// never a silent fallback.
TEST(RingRefusedTest, OutOfMemoryWithForcedIoUringIsAnError) {
  if (!backend_compiled_in(Backend::io_uring)) GTEST_SKIP() << "io_uring not built in";
  const ChildResult child = RunInChild([] {
    if (!FailIoUringSetupWith(ENOMEM)) return kChildSkip;
    try {
      Context::create({.backend = Backend::io_uring});
    } catch (const Error& e) {
      if (e.code().value() != ENOMEM) return 3;
      return std::string(e.what()).find("io_uring") != std::string::npos ? 0 : 4;
    }
    return 1;
  });
  if (child.status == kChildSkip) GTEST_SKIP() << "the kernel refused the seccomp filter";
  EXPECT_EQ(child.status, 0) << child.stderr_text;
}

// The real limit behind that ENOMEM: with RLIMIT_MEMLOCK at zero, kernels
// before 5.12 refuse the ring (and automatic falls back with a warning
// naming ENOMEM); later kernels no longer charge it. Either way the context
// works.
TEST(RingRefusedTest, ZeroMemlockLimitStillGivesAWorkingContext) {
  const ChildResult child = RunInChild([] {
    rlimit zero{0, 0};
    if (::setrlimit(RLIMIT_MEMLOCK, &zero) != 0) return kChildSkip;
    ::unsetenv("AIOLOOP_BACKEND");
    auto context = Context::create();
    std::fprintf(stderr, "backend: %s\n", std::string(backend_name(context->backend())).c_str());
    int runs = 0;
    context->run_soon([&runs] { ++runs; });
    return context->poll(false) && runs == 1 ? 0 : 1;
  });
  if (child.status == kChildSkip) GTEST_SKIP() << "cannot lower RLIMIT_MEMLOCK";
  EXPECT_EQ(child.status, 0) << child.stderr_text;
  if (child.stderr_text.find("backend: io_uring") == std::string::npos &&
      backend_compiled_in(Backend::io_uring)) {
    EXPECT_NE(child.stderr_text.find(std::strerror(ENOMEM)), std::string::npos)
        << child.stderr_text;
  }
}

// --- Callbacks that throw

// Header (Context::poll): "Callbacks must not throw: they run in noexcept
// frames ..., so an escaping exception calls std::terminate()". Checked for
// each kind of callback; the death test runs in a fresh child process.
using ThrowingCallbackDeathTest = FaultsTest;

TEST_P(ThrowingCallbackDeathTest, BottomHalfThatThrowsTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        BottomHalf bh(ctx(), [] { throw std::runtime_error("bottom half threw"); });
        bh.schedule();
        ctx().poll(false);
      },
      "terminate called after throwing.*\n.*bottom half threw");
}

TEST_P(ThrowingCallbackDeathTest, FdHandlerThatThrowsTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Pipe pipe;
        pipe.Fill();
        (void)ctx().set_fd_handler(
            pipe.read_fd, ReadHandler([] { throw std::runtime_error("fd handler threw"); }));
        ctx().poll(false);
      },
      "terminate called after throwing.*\n.*fd handler threw");
}

TEST_P(ThrowingCallbackDeathTest, TimerThatThrowsTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Timer timer(ctx(), ClockType::test, Scale::ns,
                    [] { throw std::runtime_error("timer threw"); });
        timer.mod(ctx().now(ClockType::test));
        ctx().poll(false);
      },
      "terminate called after throwing.*\n.*timer threw");
}

// --- Destroying a context from inside its own callbacks

// Sets *flag when destroyed: tells when the context released what it held.
struct DestructionFlag {
  explicit DestructionFlag(bool* flag) : flag_(flag) {}
  ~DestructionFlag() { *flag_ = true; }
  bool* flag_;
};

// DESIGN "The objects": a context is reference counted; header
// (Context::poll): dropping the last reference inside a callback defers the
// destruction until the outermost poll() returns. Here the last reference
// goes while handlers are still registered and a one-shot is still queued,
// right after a scheduled bottom half and an armed timer were deleted. The
// rest of the iteration still runs; then everything is released, and the
// one-shot never runs.
TEST_P(FaultsTest, ContextDestroyedFromItsOwnCallbackIsDeferred) {
  Pipe first, second;
  first.Fill();
  second.Fill();
  bool handler_released = false, one_shot_released = false;
  bool alive_inside = false;
  int other_reads = 0;
  Context* raw = ctx_.get();
  Timer timer(*raw, ClockType::test, Scale::ns, [] { ADD_FAILURE() << "deleted timer fired"; });
  timer.mod(raw->now(ClockType::test) + 1000);
  BottomHalf bh(*raw, [] { ADD_FAILURE() << "deleted bottom half ran"; });

  // Whichever of the two handlers runs first drops every reference; the
  // other must still be dispatched in the same iteration.
  auto drop_everything = [&] {
    if (!ctx_) {
      ++other_reads;
      return;
    }
    bh.schedule();      // queued...
    bh = BottomHalf();  // ...and deleted before it could run
    timer = Timer();    // armed, deleted
    raw->run_soon([guard = std::make_shared<DestructionFlag>(&one_shot_released)] {
      ADD_FAILURE() << "a one-shot of a destroyed context ran";
    });
    ctx_.reset();  // the last reference
    // The handler's own closure, which the context holds, is not released
    // yet: the context still lives.
    alive_inside = !handler_released;
  };
  auto guard = std::make_shared<DestructionFlag>(&handler_released);
  ASSERT_FALSE(raw->set_fd_handler(first.read_fd,
                                   ReadHandler([drop_everything, guard] { drop_everything(); })));
  ASSERT_FALSE(raw->set_fd_handler(second.read_fd, ReadHandler(drop_everything)));
  guard.reset();

  raw->poll(false);  // raw dangles after this
  EXPECT_TRUE(alive_inside) << "the context was destroyed inside its own callback";
  EXPECT_EQ(other_reads, 1) << "the other ready handler was not dispatched";
  EXPECT_TRUE(handler_released) << "the context was not destroyed after poll() returned";
  EXPECT_TRUE(one_shot_released) << "the queued one-shot was not released";
}

// The same from a nested poll(): the outermost poll() destroys it.
TEST_P(FaultsTest, ContextDestroyedInsideANestedPollIsDeferredToTheOutermost) {
  Context* raw = ctx_.get();
  bool released = false;
  bool alive_after_nested = false;
  int inner_runs = 0;
  // A registered handler (never ready) whose closure the context frees.
  Pipe idle;
  auto guard = std::make_shared<DestructionFlag>(&released);
  ASSERT_FALSE(raw->set_fd_handler(idle.read_fd, ReadHandler([guard] {})));
  guard.reset();
  raw->run_soon([&] {
    raw->run_soon([&] {
      ++inner_runs;
      ctx_.reset();
    });
    raw->poll(false);  // the nested iteration runs the inner one-shot
    alive_after_nested = !released;
    // Still usable until the outermost poll() returns.
    raw->run_soon([] {});
  });
  raw->poll(false);
  EXPECT_EQ(inner_runs, 1);
  EXPECT_TRUE(alive_after_nested) << "destroyed by the nested poll()";
  EXPECT_TRUE(released);
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(FaultsTest);
AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(ThrowingCallbackDeathTest);

}  // namespace
}  // namespace aioloop::testing
