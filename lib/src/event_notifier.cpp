// SPDX-License-Identifier: MIT
#include <aioloop/event_notifier.h>
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "error_util.h"
#include "i18n.h"

namespace aioloop {

EventNotifier::EventNotifier(bool initially_set) {
  fd_ = eventfd(initially_set ? 1 : 0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd_ < 0) {
    int err = errno;
    throw detail::make_error(err, "%s", _("cannot create an eventfd"));
  }
}

EventNotifier::~EventNotifier() {
  if (fd_ >= 0) close(fd_);
}

std::error_code EventNotifier::set() {
  const uint64_t one = 1;
  for (;;) {
    if (write(fd_, &one, sizeof one) == static_cast<ssize_t>(sizeof one)) return {};
    if (errno == EINTR) continue;
    // EAGAIN: the counter is at its maximum, so the fd is readable anyway.
    if (errno == EAGAIN) return {};
    return detail::errno_code(errno);
  }
}

bool EventNotifier::test_and_clear() {
  uint64_t value = 0;
  for (;;) {
    ssize_t n = read(fd_, &value, sizeof value);
    if (n == static_cast<ssize_t>(sizeof value)) return value != 0;
    if (n < 0 && errno == EINTR) continue;
    return false;  // EAGAIN: not set
  }
}

}  // namespace aioloop
