// SPDX-License-Identifier: MIT
// Issue 3, "Choice and fallback": when the kernel refuses io_uring (here a
// seccomp filter makes io_uring_setup(2) fail with EPERM, as container
// runtimes do), Backend::automatic falls back to epoll with one warning,
// and a forced io_uring is an error, never a silent fallback. The filter
// cannot be removed again, so each check runs in a child process.
#include <aioloop/aioloop.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

#include "seccomp_refusal.h"

namespace aioloop::testing {
namespace {

// Runs body in a child with io_uring refused and its stderr captured.
// Returns the child's exit status (or -1) and fills *stderr_text.
int RunRefused(int (*body)(), std::string* stderr_text) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return -1;
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    if (!FailIoUringSetupWith(EPERM)) _exit(77);
    _exit(body());
  }
  close(pipe_fds[1]);
  char buffer[512];
  ssize_t n;
  while ((n = read(pipe_fds[0], buffer, sizeof buffer)) > 0) stderr_text->append(buffer, n);
  close(pipe_fds[0]);
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

TEST(FallbackTest, AutomaticFallsBackToEpollWithOneWarning) {
  if (!backend_compiled_in(Backend::io_uring) || !backend_compiled_in(Backend::epoll)) {
    GTEST_SKIP() << "needs both io_uring and epoll built in";
  }
  std::string warnings;
  const int status = RunRefused(
      [] {
        unsetenv("AIOLOOP_BACKEND");
        // Two contexts: the warning is printed once per process, not per context.
        auto first = Context::create();
        auto second = Context::create();
        if (first->backend() != Backend::epoll || second->backend() != Backend::epoll) return 1;
        return first->poll(false) ? 2 : 0;  // and the fallback loop works
      },
      &warnings);
  if (status == 77) GTEST_SKIP() << "the kernel refused the seccomp filter";
  EXPECT_EQ(status, 0);
  // One line naming the refused backend and the reason.
  EXPECT_NE(warnings.find("io_uring"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("Operation not permitted"), std::string::npos) << warnings;
  EXPECT_EQ(std::count(warnings.begin(), warnings.end(), '\n'), 1) << "not exactly one warning:\n"
                                                                   << warnings;
}

TEST(FallbackTest, ForcedIoUringThatTheKernelRefusesIsAnError) {
  if (!backend_compiled_in(Backend::io_uring)) GTEST_SKIP() << "io_uring not built in";
  std::string warnings;
  const int status = RunRefused(
      [] {
        try {
          Context::create({.backend = Backend::io_uring});
        } catch (const Error& e) {
          // The errno travels with the error.
          return e.code().value() == EPERM ? 0 : 3;
        }
        return 1;  // silently created something else: wrong
      },
      &warnings);
  if (status == 77) GTEST_SKIP() << "the kernel refused the seccomp filter";
  EXPECT_EQ(status, 0);
}

TEST(FallbackTest, EnvironmentForcedIoUringThatTheKernelRefusesIsAnError) {
  if (!backend_compiled_in(Backend::io_uring)) GTEST_SKIP() << "io_uring not built in";
  std::string warnings;
  const int status = RunRefused(
      [] {
        setenv("AIOLOOP_BACKEND", "io_uring", 1);
        try {
          Context::create();
        } catch (const Error&) {
          return 0;
        }
        return 1;
      },
      &warnings);
  if (status == 77) GTEST_SKIP() << "the kernel refused the seccomp filter";
  EXPECT_EQ(status, 0);
}

}  // namespace
}  // namespace aioloop::testing
