// SPDX-License-Identifier: MIT
// Use after fork() (issue 7, point 5): a context belongs to the process that
// created it. In a fork()ed child its entry points report ECHILD instead of
// touching the eventfd, epoll instance or io_uring it shares with the parent,
// and destroying it there leaves the parent's loop alone (header: context.h,
// "fork()").
#include <cerrno>
#include <string>

#include "child_process.h"
#include "test_support.h"

namespace aioloop::testing {
namespace {

using ForkTest = ContextTest;

// Whether calling fn throws an Error with ECHILD and a message that says
// what happened.
template <typename Fn>
bool ThrowsUsedAfterFork(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code().value() == ECHILD && std::string(e.what()).find("fork") != std::string::npos;
  }
  return false;
}

TEST_P(ForkTest, EveryEntryPointThatTouchesTheKernelFailsWithEchildInTheChild) {
  Pipe pipe;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([] {})));
  const ChildResult child = RunInChild([this, &pipe] {
    if (!ThrowsUsedAfterFork([&] { ctx().poll(false); })) return 1;
    if (!ThrowsUsedAfterFork([&] { ctx().poll(true); })) return 2;
    if (!ThrowsUsedAfterFork([&] { ctx().remove_fd_handler(pipe.read_fd); })) return 3;
    if (!ThrowsUsedAfterFork([&] { ctx().disable_external(); })) return 4;
    if (ctx().set_fd_handler(pipe.write_fd, ReadHandler([] {})).value() != ECHILD) return 5;
    EventNotifier notifier;
    if (ctx().set_event_notifier(notifier, [] {}).value() != ECHILD) return 6;
    if (!ThrowsUsedAfterFork([&] { ctx().remove_event_notifier(notifier); })) return 7;
    // A child that wants a loop makes its own; that one works.
    auto own = Context::create({.backend = GetParam()});
    int runs = 0;
    own->run_soon([&runs] { ++runs; });
    if (!own->poll(false) || runs != 1) return 8;
    return 0;
  });
  EXPECT_EQ(child.status, 0) << child.stderr_text;
  // The parent's context is untouched and still works.
  int runs = 0;
  ctx().run_soon([&runs] { ++runs; });
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(runs, 1);
  ctx().remove_fd_handler(pipe.read_fd);
}

// The common case: a child (e.g. one about to exec) drops its copy of the
// context. Under epoll the child shares the parent's epoll instance, so
// unregistering its handlers there would silence the parent's; destruction
// must leave the kernel objects alone.
TEST_P(ForkTest, DestroyingTheContextInTheChildLeavesTheParentsHandlersWatched) {
  Watchdog watchdog(ctx());
  Pipe pipe;
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([&] {
                                      ++reads;
                                      pipe.Drain();
                                    })));
  ctx().poll(false);  // hand the registration to the kernel (io_uring)
  const ChildResult child = RunInChild([this] {
    ctx_.reset();  // the child's last reference: destroys its copy
    return 0;
  });
  ASSERT_EQ(child.status, 0) << child.stderr_text;

  pipe.Fill();
  while (reads == 0 && !watchdog.fired()) ctx().poll(true);
  EXPECT_EQ(reads, 1) << "the child's destruction unregistered the parent's handler";
  ctx().remove_fd_handler(pipe.read_fd);
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(ForkTest);

}  // namespace
}  // namespace aioloop::testing
