// SPDX-License-Identifier: MIT
// Building errors: Error for constructors, std::error_code for operations.
#pragma once

#include <aioloop/error.h>

#include <system_error>

namespace aioloop::detail {

// An Error whose message is printf(translated_format, ...); the format comes
// from _() so the whole message is translated. what() appends ": " and the
// errno's own text (std::system_error does), so the message must not.
[[gnu::format(printf, 2, 3)]] Error make_error(int errno_value, const char* translated_format, ...);

std::error_code errno_code(int errno_value);

}  // namespace aioloop::detail
