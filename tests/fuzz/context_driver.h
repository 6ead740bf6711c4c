// SPDX-License-Identifier: MIT
// Drives one Context through the operations an input decodes to, on real
// pipes and the test clock, telling the reference model about each one; the
// callbacks it registers report to the model when the loop runs them, and
// decode further operations themselves (nested polls included).
#pragma once

#include <aioloop/aioloop.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "fuzz_input.h"
#include "reference_model.h"

namespace aioloop::fuzz {

class ContextDriver {
 public:
  explicit ContextDriver(FuzzInput& input) : in_(input) {}
  ~ContextDriver();
  ContextDriver(const ContextDriver&) = delete;
  ContextDriver& operator=(const ContextDriver&) = delete;

  // Decodes and runs the whole input, then destroys the context and checks
  // that it let go of every callback.
  void run();

 private:
  struct PipeFds {
    int read_fd = -1;
    int write_fd = -1;
  };

  void step();
  void callback_actions();

  // Bottom halves.
  void new_bh(int slot);
  void run_soon();
  // Timers.
  void new_timer(int slot);
  int64_t pick_expire_time(int slot, int64_t* deadline_ns);
  void mod_timer(int slot, bool anticipate);
  // Timer handles, external_disabled() and stats() against the model.
  void check_observers();
  // Pipes and handlers.
  void open_pipe(int pipe);
  void write_pipe(int pipe);
  void drain_pipe(int pipe);
  void set_handler(int slot);
  void remove_handler(int slot);
  void hang_up(int pipe);
  void reopen(int pipe);
  int slot_fd(int slot) const;
  // Iterations and the context's lifetime.
  void poll(bool want_blocking);
  // One iteration as an outer loop (GLib) runs it: embed_prepare(), a
  // zero-timeout poll() of embed_fds(), embed_check(), embed_dispatch().
  void embedded_iteration();
  // Handlers on fds nobody writes, so that more than 8 handlers make the
  // epoll and io_uring monitors show an outer loop their own fd (and epoll
  // its hot fds) instead of each handler's.
  void add_idle_handlers();
  void set_poll_params();
  void drop_context();

  // What the callbacks do.
  void on_bh(int slot, uint64_t uid);
  void on_one_shot(uint64_t uid);
  void on_timer(int slot, uint64_t uid);
  void on_handler(int slot, uint64_t uid);
  bool on_poll(int slot, uint64_t uid, int64_t advance_ns);
  void on_poll_ready(int slot, uint64_t uid);

  FuzzInput& in_;
  ReferenceModel model_;
  std::shared_ptr<Context> ctx_;
  // Valid until the model says the context was destroyed; callbacks use it
  // while ctx_ may already be released (destruction deferred).
  Context* context_ = nullptr;
  BottomHalf bhs_[kBhSlots];
  Timer timers_[kTimerSlots];
  Scale timer_scales_[kTimerSlots] = {};
  PipeFds pipes_[kPipes];
  int callback_depth_ = 0;
  // Non-blocking iterations run through the embedding hooks (set up by the
  // first input byte).
  bool embedded_ = false;
  std::vector<PipeFds> idle_pipes_;
  // The outer loop's own wake-up (Context::set_embed_wakeup), when the
  // first input byte asks for one: a pipe the embedded iterations poll too.
  PipeFds outer_wake_;
  void use_outer_wakeup();
  // With the outer wake-up, every third embedded iteration is followed by
  // a prepare that the outer loop gives up (Context::embed_abandon()), as
  // GLib does when a higher-priority source destroys ours in between.
  uint64_t embedded_rounds_ = 0;
  void abandoned_prepare();
  // Embedded iterations whose check found nothing due, and abandoned
  // prepares: the model counts them as iterations, stats() does not (no
  // dispatch).
  uint64_t undispatched_ = 0;
};

}  // namespace aioloop::fuzz
