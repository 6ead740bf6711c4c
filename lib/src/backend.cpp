// SPDX-License-Identifier: MIT
// Backend names and the choice of fd monitor: forced by option or by
// AIOLOOP_BACKEND, otherwise io_uring -> epoll -> poll, falling back with one
// translated warning when the kernel refuses.
#include <aioloop/backend.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "config.h"
#include "error_util.h"
#include "fd_monitor.h"
#include "i18n.h"

namespace aioloop {

std::string_view backend_name(Backend backend) {
  switch (backend) {
    case Backend::automatic:
      return "automatic";
    case Backend::poll:
      return "poll";
    case Backend::epoll:
      return "epoll";
    case Backend::io_uring:
      return "io_uring";
  }
  return "unknown";
}

std::optional<Backend> parse_backend(std::string_view name) {
  for (Backend b : {Backend::automatic, Backend::poll, Backend::epoll, Backend::io_uring}) {
    if (name == backend_name(b)) return b;
  }
  return std::nullopt;
}

bool backend_compiled_in(Backend backend) {
  switch (backend) {
    case Backend::automatic:
    case Backend::poll:
      return true;
    case Backend::epoll:
      return AIOLOOP_HAVE_EPOLL != 0;
    case Backend::io_uring:
      return AIOLOOP_HAVE_IO_URING != 0;
  }
  return false;
}

namespace detail {

namespace {

std::unique_ptr<FdMonitor> make_one(Backend backend, MonitorHost& host) {
  switch (backend) {
    case Backend::io_uring:
#if AIOLOOP_HAVE_IO_URING
      return make_io_uring_monitor(host);
#else
      throw make_error(ENOSYS,
                       _("the io_uring backend was not built (liburing missing at build time)"));
#endif
    case Backend::epoll:
#if AIOLOOP_HAVE_EPOLL
      return make_epoll_monitor(host);
#else
      throw make_error(ENOSYS, _("the epoll backend was not built"));
#endif
    case Backend::poll:
    case Backend::automatic:
      break;
  }
  return make_poll_monitor(host);
}

void warn_fallback_once(Backend refused, const Error& why) {
  static std::atomic<bool> warned{false};
  if (warned.exchange(true, std::memory_order_relaxed)) return;
  std::fprintf(stderr, _("aioloop: the %s backend is not available (%s); falling back\n"),
               std::string(backend_name(refused)).c_str(), why.what());
}

}  // namespace

std::unique_ptr<FdMonitor> make_monitor(Backend requested, MonitorHost& host) {
  Backend backend = requested;
  if (backend == Backend::automatic) {
    const char* env = std::getenv("AIOLOOP_BACKEND");
    if (env && *env) {
      std::optional<Backend> parsed = parse_backend(env);
      if (!parsed) {
        throw make_error(EINVAL, _("AIOLOOP_BACKEND=%s is not one of poll, epoll, io_uring"), env);
      }
      backend = *parsed;
    }
  }
#if AIOLOOP_HAVE_IO_URING
  // A bad value is the user's error, not the kernel refusing io_uring: it
  // must not turn into a quiet fallback to epoll.
  if (backend == Backend::automatic || backend == Backend::io_uring)
    (void)io_uring_multishot_wanted();
#endif
  if (backend != Backend::automatic) return make_one(backend, host);  // forced: no fallback

  for (Backend candidate : {Backend::io_uring, Backend::epoll}) {
    if (!backend_compiled_in(candidate)) continue;
    try {
      return make_one(candidate, host);
    } catch (const Error& refused) {
      warn_fallback_once(candidate, refused);
    }
  }
  return make_poll_monitor(host);
}

}  // namespace detail
}  // namespace aioloop
