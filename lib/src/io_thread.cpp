// SPDX-License-Identifier: MIT
// The I/O thread runner.
#include <aioloop/io_thread.h>
#include <pthread.h>

#include <cassert>
#include <future>
#include <mutex>
#include <utility>

namespace aioloop {

IoThread::IoThread(const IoThreadOptions& options) : context_(Context::create(options.context)) {
  std::promise<void> started;
  std::future<void> started_future = started.get_future();
  thread_ = std::thread([this, &options, &started] {
    pthread_setname_np(pthread_self(), options.name.substr(0, 15).c_str());
    context_->make_current_thread_home();
    context_->set_poll_params(options.poll_max_ns, options.poll_grow, options.poll_shrink);
    started.set_value();
    main_loop();
  });
  thread_id_ = thread_.get_id();
  started_future.wait();
}

IoThread::~IoThread() {
  stop();
}

void IoThread::main_loop() {
  while (!stopping_.load(std::memory_order_acquire)) {
    if (iterate_) {
      iterate_();
    } else {
      context_->poll(true);
    }
  }
  // What was scheduled before stop() still runs once; what its callbacks
  // schedule in turn is released with the context, never run later.
  if (cleanup_) std::exchange(cleanup_, nullptr)();
  iterate_ = nullptr;
  context_->poll(false);
}

void IoThread::run(std::function<void()> fn) {
  context_->run_soon(std::move(fn));
}

bool IoThread::run_and_wait(std::function<void()> fn) {
  if (std::this_thread::get_id() == thread_id_) {
    fn();
    return true;
  }
  // std::function must be copyable, hence the shared_ptr. If the one-shot
  // is released without running (the thread stopped first), the promise
  // dies with it and the future reports a broken promise instead of
  // leaving us waiting forever.
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  {
    // Under the lock, stop() cannot slip in between the check and the
    // queueing: a one-shot queued here is always run by the final drain in
    // main_loop(), so the wait below always ends.
    std::lock_guard<std::mutex> lock(stop_mutex_);
    if (stopping_.load(std::memory_order_relaxed)) return false;
    context_->run_soon([fn = std::move(fn), done]() {
      fn();
      done->set_value();
    });
  }
  done.reset();
  try {
    finished.get();
    return true;
  } catch (const std::future_error&) {
    return false;
  }
}

void IoThread::set_iteration(std::function<void()> iterate, std::function<void()> cleanup) {
  assert(std::this_thread::get_id() == thread_id_ && "set_iteration() outside the I/O thread");
  if (cleanup_) std::exchange(cleanup_, nullptr)();
  iterate_ = std::move(iterate);
  cleanup_ = std::move(cleanup);
}

void IoThread::stop() {
  if (!thread_.joinable()) return;
  assert(std::this_thread::get_id() != thread_id_ && "IoThread::stop() from its own thread");
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stopping_.store(true, std::memory_order_release);
  }
  // notify() after the store: the loop either sees stopping_ before it
  // blocks, or is woken by the notification.
  context_->notify();
  thread_.join();
  // The context outlives the thread only through handles users still
  // hold; make the joining thread its home so they can be dropped here.
  context_->make_current_thread_home();
}

}  // namespace aioloop
