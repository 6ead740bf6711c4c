// SPDX-License-Identifier: MIT
#include <aioloop/error.h>

#include <cstdarg>
#include <cstdio>

#include "error_util.h"

namespace aioloop {

Error::Error(int errno_value, const std::string& translated_message)
    : std::system_error(errno_value, std::generic_category(), translated_message) {}

namespace detail {

Error make_error(int errno_value, const char* translated_format, ...) {
  char buffer[512];
  va_list args;
  va_start(args, translated_format);
  std::vsnprintf(buffer, sizeof buffer, translated_format, args);
  va_end(args);
  return Error(errno_value, buffer);
}

std::error_code errno_code(int errno_value) {
  return std::error_code(errno_value, std::generic_category());
}

}  // namespace detail
}  // namespace aioloop
