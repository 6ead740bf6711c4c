// SPDX-License-Identifier: MIT
#include "bench_idle_handlers.h"

#include <stdexcept>
#include <string>

namespace bench {

void check(std::error_code error, const char* what) {
  if (error) throw std::runtime_error(std::string(what) + ": " + error.message());
}

IdleFdHandlers::IdleFdHandlers(aioloop::Context& ctx, std::span<const int> idle_fds)
    : ctx_(ctx), idle_fds_(idle_fds) {
  for (int fd : idle_fds_) {
    check(ctx_.set_fd_handler(fd, {.read = [this] { ++idle_calls_; }}), "set_fd_handler");
  }
  check(ctx_.set_fd_handler(efd_.fd(), {.read =
                                            [this] {
                                              efd_.drain();
                                              ++iterations_;
                                              efd_.write_one();
                                            }}),
        "set_fd_handler");
  efd_.write_one();
}

IdleFdHandlers::~IdleFdHandlers() {
  ctx_.remove_fd_handler(efd_.fd());
  for (int fd : idle_fds_) ctx_.remove_fd_handler(fd);
}

}  // namespace bench
