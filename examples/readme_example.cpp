// SPDX-License-Identifier: MIT
// The API example of README.md: a bottom half, a timer and an fd handler on
// one context, driven by poll(). Built and run by the test suite so the README
// stays true; keep the two in sync.
#include <aioloop/aioloop.h>
#include <fcntl.h>
#include <unistd.h>

#include <thread>

int main() {
  auto ctx = aioloop::Context::create();  // poll, epoll or io_uring, whichever works

  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return 1;

  // An fd handler: runs inside poll() while the pipe is readable.
  ssize_t received = 0;
  aioloop::FdHandler handler;
  handler.read = [&] {
    char buf[64];
    if (ssize_t n = read(fds[0], buf, sizeof buf); n > 0) received += n;
  };
  if (std::error_code ec = ctx->set_fd_handler(fds[0], std::move(handler))) return 1;

  // A bottom half: schedule() from any thread, it runs in the context's own
  // thread during the next iteration.
  aioloop::BottomHalf writer(*ctx, [&] {
    if (write(fds[1], "hello", 5) != 5) received = -1;
  });
  std::thread([&] { writer.schedule(); }).join();

  // A timer 10 ms from now on the monotonic clock ends the loop.
  bool done = false;
  aioloop::Timer deadline(*ctx, aioloop::ClockType::realtime, aioloop::Scale::ms,
                          [&] { done = true; });
  deadline.mod_ns(ctx->now(aioloop::ClockType::realtime) + 10'000'000);

  while (!done) ctx->poll(true);  // blocks until something is due

  ctx->remove_fd_handler(fds[0]);
  close(fds[0]);
  close(fds[1]);
  return received == 5 ? 0 : 1;
}
