// SPDX-License-Identifier: MIT
// A thread that owns a context and runs its loop.
#pragma once

#include <aioloop/context.h>
#include <aioloop/export.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace aioloop {

struct IoThreadOptions {
  // The thread's name as the kernel shows it (at most 15 bytes are kept).
  std::string name = "aioloop-io";
  ContextOptions context;
  // Busy polling, on by default in an I/O thread: 32 us, the reference
  // design's default, with the default grow (x2) and shrink (to 0) rules.
  int64_t poll_max_ns = 32768;
  int64_t poll_grow = 0;
  int64_t poll_shrink = 0;
};

// Owns a thread and a context whose home thread it is, and runs
// context().poll(true) until stop(). Scaling out means one I/O thread per
// core. All members may be called from any thread unless noted.
class AIOLOOP_EXPORT IoThread {
 public:
  // Starts the thread; returns once it runs the loop. Throws Error when the
  // context cannot be created, std::system_error when the thread cannot.
  explicit IoThread(const IoThreadOptions& options = {});
  // stop(), then releases the context.
  ~IoThread();
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  Context& context() const { return *context_; }
  const std::shared_ptr<Context>& context_ptr() const { return context_; }
  std::thread::id thread_id() const { return thread_id_; }

  // Runs fn in the thread, in a later iteration (a one-shot bottom half).
  // After stop(), fn is destroyed without running.
  void run(std::function<void()> fn);

  // Runs fn in the thread and waits until it has returned. From the I/O
  // thread itself, calls fn directly. Returns false, without running fn,
  // when the thread has stopped (or stops before fn's turn comes).
  bool run_and_wait(std::function<void()> fn);

  // Replaces what the thread does for one iteration (by default
  // context().poll(true)); runs in the thread, so call it from run() or
  // run_and_wait(). The GLib packaging uses it to iterate a GMainContext
  // that hosts this context's GSource. An empty function restores the
  // default. The iteration must return when context().notify() is called.
  // cleanup, if given, runs in the thread when the loop stops (or when the
  // iteration is replaced again), e.g. to release a GMainContext there.
  void set_iteration(std::function<void()> iterate, std::function<void()> cleanup = {});

  // Makes the loop return, runs what is already scheduled once more,
  // and joins the thread. Idempotent. Not from the I/O thread itself.
  void stop();

  bool running() const { return !stopping_.load(std::memory_order_acquire); }

 private:
  void main_loop();

  std::shared_ptr<Context> context_;
  std::thread thread_;
  std::thread::id thread_id_;
  std::atomic<bool> stopping_{false};
  std::mutex stop_mutex_;          // orders run_and_wait()'s queueing against stop()
  std::function<void()> iterate_;  // I/O thread only
  std::function<void()> cleanup_;  // I/O thread only
};

}  // namespace aioloop
