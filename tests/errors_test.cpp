// SPDX-License-Identifier: MIT
// Errors and bad input: invalid fds, removal of what is not there, fds
// closed while registered, and backend choice errors.
#include <stdlib.h>
#include <sys/resource.h>

#include <cerrno>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "test_support.h"

namespace aioloop::testing {
namespace {

using ErrorsTest = ContextTest;

// An fd number that is certainly not open: a pipe's, closed again.
int ClosedFdNumber() {
  Pipe pipe;
  int fd = pipe.read_fd;
  return fd;  // the Pipe destructor closes it
}

// DESIGN "Errors and bad input": operations that fail on bad input return an
// error value; header (set_fd_handler): "Returns EBADF for an fd that is
// negative or not open".
TEST_P(ErrorsTest, NegativeFdIsEbadf) {
  int reads = 0;
  std::error_code ec = ctx().set_fd_handler(-1, ReadHandler([&] { ++reads; }));
  EXPECT_EQ(ec, std::errc::bad_file_descriptor) << ec.message();
  EXPECT_EQ(ec.value(), EBADF);
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 0);
}

// Header (set_fd_handler): EBADF for an fd that is not open.
TEST_P(ErrorsTest, FdThatIsNotOpenIsEbadf) {
  int reads = 0;
  const int closed = ClosedFdNumber();
  std::error_code ec = ctx().set_fd_handler(closed, ReadHandler([&] { ++reads; }));
  EXPECT_EQ(ec, std::errc::bad_file_descriptor) << ec.message();

  // A number far above anything open (and above the registry's table).
  ec = ctx().set_fd_handler(1 << 20, ReadHandler([&] { ++reads; }));
  EXPECT_EQ(ec, std::errc::bad_file_descriptor) << ec.message();

  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 0);
}

// DESIGN "Errors and bad input": a refused registration leaves no trace —
// a later valid registration of the same number works normally.
TEST_P(ErrorsTest, RefusedRegistrationLeavesTheContextUsable) {
  const int closed = ClosedFdNumber();
  EXPECT_TRUE(ctx().set_fd_handler(closed, ReadHandler([] {})));
  Pipe pipe;  // likely reuses the number just refused
  pipe.Fill();
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([&] {
                                      ++reads;
                                      pipe.Drain();
                                    })));
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  ctx().remove_fd_handler(pipe.read_fd);
}

// Issue 2 "Errors and bad input": "removing a handler that does not exist is
// a no-op"; header (remove_fd_handler): "a no-op when there is none".
TEST_P(ErrorsTest, RemovingAHandlerThatDoesNotExistIsANoOp) {
  Pipe pipe;
  pipe.Fill();
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(pipe.read_fd, ReadHandler([&] { ++reads; })));
  ctx().remove_fd_handler(pipe.write_fd);  // open, never registered
  ctx().remove_fd_handler(-1);
  ctx().remove_fd_handler(1 << 20);
  ctx().remove_fd_handler(ClosedFdNumber());
  EXPECT_FALSE(ctx().set_fd_handler(pipe.write_fd, FdHandler{})) << "empty handler = removal";
  EXPECT_TRUE(ctx().poll(false)) << "the registered handler must be untouched";
  EXPECT_EQ(reads, 1);
  ctx().remove_fd_handler(pipe.read_fd);
  ctx().remove_fd_handler(pipe.read_fd);  // twice: the second is a no-op
  EXPECT_FALSE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
}

// DESIGN "Errors and bad input": an fd "closed while registered" must not
// crash, hang or spin, nor lose another handler's callback. Issue 2: under
// poll, "the handler stops being watched and the condition is visible in
// statistics".
TEST_P(ErrorsTest, FdClosedWhileRegisteredNeverMakesTheLoopSpin) {
  Watchdog watchdog(ctx());
  Pipe doomed;
  Pipe healthy;
  int doomed_calls = 0;
  int healthy_reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(doomed.read_fd, ReadHandler([&] { ++doomed_calls; })));
  ASSERT_FALSE(ctx().set_fd_handler(healthy.read_fd, ReadHandler([&] {
                                      ++healthy_reads;
                                      healthy.Drain();
                                    })));
  const int doomed_fd = doomed.read_fd;
  CloseFd(doomed.read_fd);

  // Let the monitor notice, then check that a blocking poll() waits for the
  // timer instead of returning at once, again and again.
  ctx().poll(false);
  const int polls = BlockingPollsUntilTimer(ctx(), watchdog);
  ASSERT_FALSE(watchdog.fired());
  EXPECT_LE(polls, 2) << "the closed fd made the loop spin";
  EXPECT_EQ(doomed_calls, 0) << "a closed fd is not an event for its handler";

  // Another handler keeps working.
  healthy.Fill();
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(healthy_reads, 1);

  if (GetParam() == Backend::poll) {
    EXPECT_EQ(ctx().stats().invalid_fds, 1u) << "ppoll's POLLNVAL must show in the statistics";
  }
  ctx().remove_fd_handler(doomed_fd);
  ctx().remove_fd_handler(healthy.read_fd);
}

// DESIGN "Errors and bad input": "defined behaviour" for a closed fd whose
// number is reused: registering the new fd replaces the stale handler, and
// the new handler gets its events.
TEST_P(ErrorsTest, ReusedNumberOfAClosedRegisteredFdWorks) {
  Pipe first;
  int stale_calls = 0;
  ASSERT_FALSE(ctx().set_fd_handler(first.read_fd, ReadHandler([&] { ++stale_calls; })));
  const int number = first.read_fd;
  CloseFd(first.read_fd);
  CloseFd(first.write_fd);
  ctx().poll(false);

  Pipe second;
  if (second.read_fd != number) GTEST_SKIP() << "the kernel did not reuse the fd number";
  int reads = 0;
  ASSERT_FALSE(ctx().set_fd_handler(second.read_fd, ReadHandler([&] {
                                      ++reads;
                                      second.Drain();
                                    })));
  EXPECT_FALSE(ctx().poll(false));
  second.Fill();
  EXPECT_TRUE(ctx().poll(false));
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(stale_calls, 0);
  ctx().remove_fd_handler(second.read_fd);
}

// Issue 2 "Errors and bad input": "a handler removed during dispatch is never
// called again" — also when its fd stays ready for many iterations.
TEST_P(ErrorsTest, HandlerRemovedDuringDispatchIsNeverCalledAgain) {
  Pipe pipes[2];
  int reads[2] = {0, 0};
  int removed = -1;
  // Whichever handler the monitor dispatches first removes the other, whose
  // event is already collected and whose fd stays readable (never drained).
  for (int i = 0; i < 2; ++i) {
    ASSERT_FALSE(ctx().set_fd_handler(pipes[i].read_fd, ReadHandler([&, i] {
                                        ++reads[i];
                                        EXPECT_NE(removed, i) << "called after its removal";
                                        if (removed < 0) {
                                          removed = 1 - i;
                                          ctx().remove_fd_handler(pipes[1 - i].read_fd);
                                        }
                                        pipes[i].Drain();
                                      })));
    pipes[i].Fill();
  }
  EXPECT_TRUE(ctx().poll(false));
  ASSERT_GE(removed, 0);
  for (int i = 0; i < 5; ++i) ctx().poll(false);
  EXPECT_EQ(reads[removed], 0);
  EXPECT_EQ(reads[1 - removed], 1);
  ctx().remove_fd_handler(pipes[1 - removed].read_fd);
}

// Restores an environment variable when it goes out of scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// DESIGN "Fd monitors": forced "by option or `AIOLOOP_BACKEND=...`"; header
// (ContextOptions): an unusable forced choice is an Error, never a silent
// fallback. Issue 2: creation failures throw aioloop::Error with a message.
TEST(BackendChoiceTest, BogusEnvironmentBackendThrows) {
  ScopedEnv env("AIOLOOP_BACKEND", "bogus");
  try {
    auto context = Context::create();
    FAIL() << "Context::create() accepted AIOLOOP_BACKEND=bogus";
  } catch (const Error& e) {
    EXPECT_EQ(e.code().value(), EINVAL);
    EXPECT_NE(std::string(e.what()).find("bogus"), std::string::npos) << e.what();
  }
}

// AIOLOOP_IO_URING_POLL picks the io_uring monitor's poll requests; any
// value but oneshot or multishot is an error, for a forced io_uring and for
// the automatic choice alike (never a quiet fallback to epoll).
TEST(BackendChoiceTest, BogusIoUringPollModeThrows) {
  if (!backend_compiled_in(Backend::io_uring)) GTEST_SKIP() << "io_uring not built in";
  ScopedEnv backend_env("AIOLOOP_BACKEND", "");
  ScopedEnv env("AIOLOOP_IO_URING_POLL", "sometimes");
  for (Backend backend : {Backend::automatic, Backend::io_uring}) {
    try {
      auto context = Context::create({.backend = backend});
      FAIL() << "Context::create() accepted AIOLOOP_IO_URING_POLL=sometimes";
    } catch (const Error& e) {
      EXPECT_EQ(e.code().value(), EINVAL);
      EXPECT_NE(std::string(e.what()).find("sometimes"), std::string::npos) << e.what();
    }
  }
  // The other monitors do not read it.
  EXPECT_EQ(Context::create({.backend = Backend::epoll})->backend(), Backend::epoll);
}

// Both io_uring poll modes run handlers level-triggered: a pipe left full is
// reported in every iteration, and once drained no more.
TEST(BackendChoiceTest, BothIoUringPollModesAreLevelTriggered) {
  if (!backend_compiled_in(Backend::io_uring)) GTEST_SKIP() << "io_uring not built in";
  for (const char* mode : {"oneshot", "multishot"}) {
    ScopedEnv env("AIOLOOP_IO_URING_POLL", mode);
    std::shared_ptr<Context> context;
    try {
      context = Context::create({.backend = Backend::io_uring});
    } catch (const Error& e) {
      GTEST_SKIP() << "the kernel refused io_uring: " << e.what();
    }
    Pipe pipe;
    int reads = 0;
    ASSERT_FALSE(context->set_fd_handler(pipe.read_fd, ReadHandler([&] { ++reads; })));
    pipe.Fill();
    for (int i = 1; i <= 4; ++i) {
      EXPECT_TRUE(context->poll(false)) << mode;
      EXPECT_EQ(reads, i) << mode;
    }
    pipe.Drain();
    EXPECT_FALSE(context->poll(false)) << mode;
    EXPECT_EQ(reads, 4) << mode;
    context->remove_fd_handler(pipe.read_fd);
  }
}

// DESIGN "Fd monitors": `AIOLOOP_BACKEND=poll` forces the poll monitor.
TEST(BackendChoiceTest, EnvironmentForcesAMonitor) {
  ScopedEnv env("AIOLOOP_BACKEND", "poll");
  auto context = Context::create();
  EXPECT_EQ(context->backend(), Backend::poll);
  EXPECT_EQ(context->stats().backend, Backend::poll);
}

// Header (Context::backend): "The fd monitor in use (never automatic)".
TEST(BackendChoiceTest, AutomaticPicksARealMonitor) {
  ScopedEnv env("AIOLOOP_BACKEND", "");
  auto context = Context::create();
  EXPECT_NE(context->backend(), Backend::automatic);
  EXPECT_TRUE(backend_compiled_in(context->backend()));
}

// Header (ContextOptions::backend): a forced backend that cannot be used is
// an Error from Context::create(), never a silent fallback.
TEST(BackendChoiceTest, ForcedBackendThatIsNotBuiltThrows) {
  for (Backend backend : {Backend::epoll, Backend::io_uring}) {
    if (backend_compiled_in(backend)) continue;
    EXPECT_THROW(Context::create({.backend = backend}), Error) << backend_name(backend);
  }
}

// Header (backend.h): parse_backend() is the inverse of backend_name().
TEST(BackendChoiceTest, NamesRoundTrip) {
  for (Backend backend : {Backend::automatic, Backend::poll, Backend::epoll, Backend::io_uring}) {
    EXPECT_EQ(parse_backend(backend_name(backend)), backend);
  }
  EXPECT_EQ(parse_backend("bogus"), std::nullopt);
  EXPECT_EQ(parse_backend(""), std::nullopt);
  EXPECT_TRUE(backend_compiled_in(Backend::poll));
}

// DESIGN "Errors and bad input": "Constructors that cannot create their
// kernel objects throw `aioloop::Error` (errno plus a translated message)" —
// with no fd left, Context::create() and EventNotifier throw EMFILE.
TEST(CreationErrorTest, OutOfFdsThrowsError) {
  rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old_limit), 0);
  // Fill the fd table up to a small limit.
  rlimit low = old_limit;
  low.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> filler;
  for (;;) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    filler.push_back(fd);
  }
  bool context_threw = false;
  bool notifier_threw = false;
  int context_errno = 0;
  try {
    auto context = Context::create({.backend = Backend::poll});
  } catch (const Error& e) {
    context_threw = true;
    context_errno = e.code().value();
  }
  try {
    EventNotifier notifier;
  } catch (const Error& e) {
    notifier_threw = true;
    EXPECT_EQ(e.code().value(), EMFILE);
    EXPECT_STRNE(e.what(), "");
  }
  for (int fd : filler) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old_limit), 0);
  EXPECT_TRUE(context_threw);
  EXPECT_EQ(context_errno, EMFILE);
  EXPECT_TRUE(notifier_threw);
}

AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(ErrorsTest);

}  // namespace
}  // namespace aioloop::testing
