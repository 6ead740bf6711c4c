// SPDX-License-Identifier: MIT
// Runs a piece of a test in a fork()ed child: for faults that cannot be
// undone in the test process (seccomp filters, lowered limits) or that are
// about fork() itself.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>

namespace aioloop::testing {

// What the child said: its exit status (-1 when it was killed or could not
// be started) and everything it wrote to stderr.
struct ChildResult {
  int status = -1;
  std::string stderr_text;
};

// Exit status of a child that could not set its fault up: the test skips,
// as meson's convention for "not supported here" has it.
constexpr int kChildSkip = 77;
// Exit status of a child whose body threw.
constexpr int kChildThrew = 99;

// Forks, runs body() in the child with its stderr captured, and _exit()s
// with body's return value, so no test-process state (gtest's, the parent's
// atexit handlers) runs twice. Call it while the test has no other thread.
template <typename Body>
ChildResult RunInChild(Body&& body) {
  ChildResult result;
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return result;
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return result;
  }
  if (child == 0) {
    ::dup2(pipe_fds[1], STDERR_FILENO);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    int status = kChildThrew;
    try {
      status = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child threw: %s\n", e.what());
    }
    std::fflush(nullptr);
    ::_exit(status);
  }
  ::close(pipe_fds[1]);
  char buffer[512];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0) result.stderr_text.append(buffer, n);
  ::close(pipe_fds[0]);
  int status = 0;
  if (::waitpid(child, &status, 0) == child && WIFEXITED(status)) {
    result.status = WEXITSTATUS(status);
  }
  return result;
}

}  // namespace aioloop::testing
