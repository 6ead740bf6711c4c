// SPDX-License-Identifier: MIT
// Errors reported by aioloop.
#pragma once

#include <aioloop/export.h>

#include <string>
#include <system_error>

namespace aioloop {

// Thrown by constructors that cannot create their kernel objects (eventfd,
// epoll instance, io_uring ring), and by the calls that drive a context in a
// child process after fork() (ECHILD: the kernel objects are the parent's;
// see Context::poll). Everything that fails on bad input returns a
// std::error_code instead. what() is translated through gettext (domain
// "aioloop").
class AIOLOOP_EXPORT Error : public std::system_error {
 public:
  Error(int errno_value, const std::string& translated_message);
};

}  // namespace aioloop
