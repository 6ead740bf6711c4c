// SPDX-License-Identifier: MIT
// Shared pieces of the conformance suites: a fixture parameterised over the fd
// monitors, fd pairs that close themselves, and a watchdog that turns a hang
// into a test failure.
#pragma once

#include <aioloop/aioloop.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace aioloop::testing {

// Every conformance test runs once per fd monitor. A monitor that this build
// lacks, or that the running kernel refuses, skips instead of failing: the
// same suite must pass on a machine without io_uring.
class ContextTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    const Backend backend = GetParam();
    if (!backend_compiled_in(backend)) {
      GTEST_SKIP() << "the " << backend_name(backend) << " monitor is not built in";
    }
    try {
      ctx_ = Context::create({.backend = backend});
    } catch (const Error& e) {
      GTEST_SKIP() << "the kernel refused the " << backend_name(backend)
                   << " monitor: " << e.what();
    }
  }

  Context& ctx() { return *ctx_; }

  std::shared_ptr<Context> ctx_;
};

// "poll", "epoll", "io_uring" as the instance names, so a failure says which
// monitor broke (e.g. Backends/TimerTest.FiresAtDeadline/epoll).
inline std::string BackendParamName(const ::testing::TestParamInfo<Backend>& info) {
  return std::string(backend_name(info.param));
}

#define AIOLOOP_INSTANTIATE_FOR_ALL_BACKENDS(suite)                                               \
  INSTANTIATE_TEST_SUITE_P(Backends, suite,                                                       \
                           ::testing::Values(::aioloop::Backend::poll, ::aioloop::Backend::epoll, \
                                             ::aioloop::Backend::io_uring),                       \
                           ::aioloop::testing::BackendParamName)

// A handler with only a read callback.
inline FdHandler ReadHandler(std::function<void()> read) {
  FdHandler handler;
  handler.read = std::move(read);
  return handler;
}

// Closes an fd once; the fd pairs below use it so a test can close one end
// early (to provoke hang-up or error) and the destructor does not close a
// number that may have been reused meanwhile.
inline void CloseFd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

// A non-blocking pipe: fds[0] reads, fds[1] writes.
struct Pipe {
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) ADD_FAILURE() << "pipe2 failed";
    read_fd = fds[0];
    write_fd = fds[1];
  }
  ~Pipe() {
    CloseFd(read_fd);
    CloseFd(write_fd);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  // Makes read_fd readable (one byte).
  void Fill() const {
    const char byte = 'x';
    EXPECT_EQ(::write(write_fd, &byte, 1), 1);
  }
  // Reads everything available; returns the number of bytes (0 at EOF or
  // when nothing was there).
  size_t Drain() const {
    char buffer[256];
    size_t total = 0;
    for (;;) {
      ssize_t n = ::read(read_fd, buffer, sizeof buffer);
      if (n <= 0) return total;
      total += static_cast<size_t>(n);
    }
  }

  int read_fd = -1;
  int write_fd = -1;
};

// A non-blocking AF_UNIX stream socket pair: a and b are both readable and
// writable ends.
struct SocketPair {
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
      ADD_FAILURE() << "socketpair failed";
    }
    a = fds[0];
    b = fds[1];
  }
  ~SocketPair() {
    CloseFd(a);
    CloseFd(b);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;

  static void Send(int fd) {
    const char byte = 'x';
    EXPECT_EQ(::send(fd, &byte, 1, MSG_NOSIGNAL), 1);
  }
  static size_t Drain(int fd) {
    char buffer[256];
    size_t total = 0;
    for (;;) {
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) return total;
      total += static_cast<size_t>(n);
    }
  }

  int a = -1;
  int b = -1;
};

// Tests that must block in the loop (cross-thread wake-ups, real-clock
// timers) run under a watchdog. When its limit passes it marks itself fired
// and keeps calling notify(), so a loop stuck in poll(true) returns, the
// test's own loop condition sees fired() and the test fails instead of
// hanging until meson's timeout.
class Watchdog {
 public:
  explicit Watchdog(Context& context, std::chrono::milliseconds limit = std::chrono::seconds(10))
      : context_(context), thread_([this, limit] { Run(limit); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  bool fired() const { return fired_.load(std::memory_order_acquire); }

 private:
  void Run(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (cv_.wait_for(lock, limit, [this] { return stop_; })) return;
    fired_.store(true, std::memory_order_release);
    // notify() is the very mechanism some tests check; if it is broken the
    // loop never returns, so give up loudly rather than hang until meson's
    // timeout.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!stop_) {
      if (std::chrono::steady_clock::now() > give_up) {
        std::fprintf(stderr, "watchdog: the loop did not return even after notify(); aborting\n");
        std::abort();
      }
      context_.notify();
      cv_.wait_for(lock, std::chrono::milliseconds(10), [this] { return stop_; });
    }
  }

  Context& context_;
  std::atomic<bool> fired_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Waits (from a helper thread) until the home thread has entered a blocking
// wait, i.e. stats().blocking_waits has grown past `before`, then a little
// longer so the wait system call has really started. Returns false after
// 10 s: the caller then gives up instead of hanging.
inline bool WaitUntilBlocked(const Context& context, uint64_t before) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (context.stats().blocking_waits <= before) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return true;
}

inline int64_t ElapsedMs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               since)
      .count();
}

// Arms a timer 20 ms ahead and polls blocking until it fires (or the
// watchdog does); returns how many poll(true) calls that took. A loop that
// blocks properly needs one; one that returns at once (a stale wake-up, an
// fd that keeps reporting) needs many.
inline int BlockingPollsUntilTimer(Context& ctx, const Watchdog& watchdog) {
  int fired = 0;
  Timer timer(ctx, ClockType::realtime, Scale::ns, [&] { ++fired; });
  timer.mod(ctx.now(ClockType::realtime) + 20 * 1000 * 1000);
  int polls = 0;
  while (fired == 0 && !watchdog.fired()) {
    ctx.poll(true);
    ++polls;
  }
  return polls;
}

}  // namespace aioloop::testing
