// SPDX-License-Identifier: MIT
// The fd monitors a context can use.
#pragma once

#include <aioloop/export.h>

#include <optional>
#include <string_view>

namespace aioloop {

enum class Backend {
  // io_uring, else epoll, else poll; AIOLOOP_BACKEND=poll|epoll|io_uring in
  // the environment overrides the choice.
  automatic,
  poll,      // ppoll(2) over an array rebuilt only when handlers change
  epoll,     // epoll(7): cost follows the number of ready fds
  io_uring,  // liburing: one level-triggered poll request per fd
};

// "automatic", "poll", "epoll" or "io_uring". Any thread; no allocation.
AIOLOOP_EXPORT std::string_view backend_name(Backend backend);

// The inverse of backend_name(); nullopt for an unknown name. Any thread.
AIOLOOP_EXPORT std::optional<Backend> parse_backend(std::string_view name);

// Whether this build includes the backend (io_uring needs liburing at build
// time). Says nothing about whether the running kernel accepts it. Any thread.
AIOLOOP_EXPORT bool backend_compiled_in(Backend backend);

}  // namespace aioloop
