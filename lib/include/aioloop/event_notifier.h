// SPDX-License-Identifier: MIT
// An eventfd wrapper.
#pragma once

#include <aioloop/export.h>

#include <system_error>

namespace aioloop {

// Owns one non-blocking eventfd. set() may be called from any thread;
// test_and_clear() from the thread that watches it.
class AIOLOOP_EXPORT EventNotifier {
 public:
  // Throws Error when eventfd(2) fails (e.g. EMFILE).
  explicit EventNotifier(bool initially_set = false);
  ~EventNotifier();
  EventNotifier(const EventNotifier&) = delete;
  EventNotifier& operator=(const EventNotifier&) = delete;

  // The fd to watch for readability.
  int fd() const { return fd_; }

  // Makes the fd readable. Any thread; one write(2). Setting an already set
  // notifier is harmless.
  std::error_code set();

  // Clears the notifier; returns whether it was set. One read(2).
  bool test_and_clear();

 private:
  int fd_ = -1;
};

}  // namespace aioloop
