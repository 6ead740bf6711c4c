// SPDX-License-Identifier: MIT
// libuv's equivalents (impl=libuv), when the build found libuv. libuv on
// Linux watches fds with epoll, so its fd workloads report mode=epoll.
#include "bench_report.h"

#if AIOLOOP_BENCH_HAVE_LIBUV

#include <uv.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace bench {

namespace {

void check(int rc, const char* what) {
  if (rc < 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(rc));
}

// A loop that closes every handle still open and frees itself when it goes
// out of scope, so each workload starts from a fresh loop.
class Loop {
 public:
  Loop() { check(uv_loop_init(&loop_), "uv_loop_init"); }
  ~Loop() {
    uv_walk(
        &loop_,
        [](uv_handle_t* handle, void*) {
          if (!uv_is_closing(handle)) uv_close(handle, nullptr);
        },
        nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  uv_loop_t* get() { return &loop_; }

 private:
  uv_loop_t loop_;
};

// W1 mode=rearm: an async handle that sends itself again from its callback.
void bh_rearm(const Counts& counts) {
  struct State {
    uv_async_t async;
    int64_t runs = 0;
    int64_t target = 0;
  } state;
  Loop loop;
  check(uv_async_init(loop.get(), &state.async,
                      [](uv_async_t* async) {
                        auto* s = static_cast<State*>(async->data);
                        if (++s->runs < s->target) uv_async_send(async);
                      }),
        "uv_async_init");
  state.async.data = &state;
  auto run = [&](int64_t callbacks) {
    state.runs = 0;
    state.target = callbacks;
    uv_async_send(&state.async);
    while (state.runs < state.target) uv_run(loop.get(), UV_RUN_ONCE);
  };
  run(warmup_count(counts.bh));
  const int64_t start = now_ns();
  run(counts.bh);
  const int64_t wall = now_ns() - start;
  report("bh", "libuv", "rearm", -1, static_cast<double>(wall) / counts.bh, counts.bh);
}

// W1 mode=continue: an idle handle, called once per loop iteration.
void bh_continue(const Counts& counts) {
  struct State {
    uv_idle_t idle;
    int64_t runs = 0;
    int64_t target = 0;
  } state;
  Loop loop;
  check(uv_idle_init(loop.get(), &state.idle), "uv_idle_init");
  state.idle.data = &state;
  auto run = [&](int64_t callbacks) {
    state.runs = 0;
    state.target = callbacks;
    uv_idle_start(&state.idle, [](uv_idle_t* idle) {
      auto* s = static_cast<State*>(idle->data);
      if (++s->runs >= s->target) uv_idle_stop(idle);
    });
    // The idle handle is the only active handle: the loop ends when it stops.
    uv_run(loop.get(), UV_RUN_DEFAULT);
  };
  run(warmup_count(counts.bh));
  const int64_t start = now_ns();
  run(counts.bh);
  const int64_t wall = now_ns() - start;
  report("bh", "libuv", "continue", -1, static_cast<double>(wall) / counts.bh, counts.bh);
}

// Thread B of W2/W3 runs its loop until an async "stop" handle closes every
// handle of the loop; A sends it once it is done.
struct SideB {
  Loop loop;
  uv_async_t stop;
  std::thread thread;

  SideB() {
    check(uv_async_init(loop.get(), &stop,
                        [](uv_async_t* async) {
                          uv_walk(
                              async->loop,
                              [](uv_handle_t* handle, void*) {
                                if (!uv_is_closing(handle)) uv_close(handle, nullptr);
                              },
                              nullptr);
                        }),
          "uv_async_init");
  }
  void start() {
    thread = std::thread([this] { uv_run(loop.get(), UV_RUN_DEFAULT); });
  }
  void finish() {
    uv_async_send(&stop);
    thread.join();
  }
};

// W2: A's async callback sends B's, B's sends A's.
void cross_bh(const Counts& counts) {
  struct State {
    RoundTrips trips;
    uv_async_t async_a;
    uv_async_t async_b;
  } state{{warmup_count(counts.xbh), counts.xbh, counts.budget_ns, "libuv W2", true}, {}, {}};
  Loop loop_a;
  SideB side_b;
  check(uv_async_init(loop_a.get(), &state.async_a,
                      [](uv_async_t* async) {
                        auto* s = static_cast<State*>(async->data);
                        if (s->trips.complete()) uv_async_send(&s->async_b);
                      }),
        "uv_async_init");
  check(uv_async_init(
            side_b.loop.get(), &state.async_b,
            [](uv_async_t* async) { uv_async_send(&static_cast<State*>(async->data)->async_a); }),
        "uv_async_init");
  state.async_a.data = &state;
  state.async_b.data = &state;
  side_b.start();
  state.trips.begin();
  uv_async_send(&state.async_b);
  while (!state.trips.finished()) uv_run(loop_a.get(), UV_RUN_ONCE);
  side_b.finish();
  report_trips("xbh", "libuv", "block", state.trips);
}

// W3: uv_poll on each thread's eventfd; A's reads A's and writes B's.
void cross_fd(const Counts& counts) {
  struct State {
    RoundTrips trips;
    EventFd efd_a;
    EventFd efd_b;
    uv_poll_t poll_a;
    uv_poll_t poll_b;
  } state{
      {warmup_count(counts.xfd), counts.xfd, counts.budget_ns, "libuv W3", true}, {}, {}, {}, {}};
  Loop loop_a;
  SideB side_b;
  check(uv_poll_init(loop_a.get(), &state.poll_a, state.efd_a.fd()), "uv_poll_init");
  check(uv_poll_init(side_b.loop.get(), &state.poll_b, state.efd_b.fd()), "uv_poll_init");
  state.poll_a.data = &state;
  state.poll_b.data = &state;
  check(uv_poll_start(&state.poll_a, UV_READABLE,
                      [](uv_poll_t* poll, int, int) {
                        auto* s = static_cast<State*>(poll->data);
                        if (s->efd_a.drain() && s->trips.complete()) s->efd_b.write_one();
                      }),
        "uv_poll_start");
  check(uv_poll_start(&state.poll_b, UV_READABLE,
                      [](uv_poll_t* poll, int, int) {
                        auto* s = static_cast<State*>(poll->data);
                        if (s->efd_b.drain()) s->efd_a.write_one();
                      }),
        "uv_poll_start");
  side_b.start();
  state.trips.begin();
  state.efd_b.write_one();
  while (!state.trips.finished()) uv_run(loop_a.get(), UV_RUN_ONCE);
  side_b.finish();
  report_trips("xfd", "libuv", "epoll", state.trips);
}

// W4: one uv_poll per idle FIFO, plus the self-pinging eventfd.
void idle_fds(int idle_count, const Counts& counts) {
  const std::span<const int> fifos = idle_fifo_fds(idle_count);
  struct State {
    EventFd efd;
    uv_poll_t ping;
    int64_t iterations = 0;
    int64_t idle_calls = 0;
  } state;
  // uv_poll_t handles must not move while the loop knows them.
  std::deque<uv_poll_t> idle(fifos.size());
  Loop loop;
  for (size_t i = 0; i < idle.size(); ++i) {
    check(uv_poll_init(loop.get(), &idle[i], fifos[i]), "uv_poll_init");
    idle[i].data = &state;
    check(uv_poll_start(
              &idle[i], UV_READABLE,
              [](uv_poll_t* poll, int, int) { ++static_cast<State*>(poll->data)->idle_calls; }),
          "uv_poll_start");
  }
  check(uv_poll_init(loop.get(), &state.ping, state.efd.fd()), "uv_poll_init");
  state.ping.data = &state;
  check(uv_poll_start(&state.ping, UV_READABLE,
                      [](uv_poll_t* poll, int, int) {
                        auto* s = static_cast<State*>(poll->data);
                        s->efd.drain();
                        ++s->iterations;
                        s->efd.write_one();
                      }),
        "uv_poll_start");
  state.efd.write_one();
  auto run = [&](int64_t count) {
    const int64_t target = state.iterations + count;
    while (state.iterations < target) uv_run(loop.get(), UV_RUN_ONCE);
  };

  const int64_t warm = std::min<int64_t>(warmup_count(counts.idle_iters), 2000);
  const int64_t warm_start = now_ns();
  run(warm);
  const double warm_ns = static_cast<double>(now_ns() - warm_start) / static_cast<double>(warm);
  const int64_t count = bounded_count(counts.idle_iters, warm_ns, counts.budget_ns, 500,
                                      "libuv W4 " + std::to_string(idle_count));
  const int64_t start = now_ns();
  run(count);
  const int64_t wall = now_ns() - start;
  report("idlefds", "libuv", "epoll", idle_count, static_cast<double>(wall) / count, count);
  if (state.idle_calls != 0) {
    note("libuv W4: %lld calls on idle fds", static_cast<long long>(state.idle_calls));
  }
  // The loop closes the handles before the FIFOs and the deque go away.
}

// W5 arm_cancel: uv_timer_init + uv_timer_start for every timer, uv_timer_stop
// for every other one, sleep past the last deadline (not timed), then time
// the loop passes that fire the rest. libuv's timeouts are in ms from the
// loop's cached time.
double arm_cancel_fire(int64_t timers) {
  XorShift random;
  std::vector<uint64_t> intervals(static_cast<size_t>(timers));
  for (uint64_t& interval : intervals) interval = offset_ms(random.deadline_offset_ns());
  std::deque<uv_timer_t> handles;
  int64_t fired = 0;
  Loop loop;
  const uv_timer_cb on_timeout = [](uv_timer_t* timer) { ++*static_cast<int64_t*>(timer->data); };

  const int64_t arm_start = now_ns();
  for (uint64_t interval : intervals) {
    uv_timer_t& timer = handles.emplace_back();
    uv_timer_init(loop.get(), &timer);
    timer.data = &fired;
    uv_timer_start(&timer, on_timeout, interval, 0);
  }
  for (size_t i = 1; i < handles.size(); i += 2) uv_timer_stop(&handles[i]);
  const int64_t arm_ns = now_ns() - arm_start;

  // Every deadline is at most 100 ms after the loop's cached time, which is
  // no later than the start of arming.
  const int64_t wake_ns = arm_start + 102ll * 1000 * 1000;
  while (now_ns() < wake_ns) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(wake_ns - now_ns()));
  }

  const int64_t expected = (timers + 1) / 2;
  const int64_t fire_start = now_ns();
  while (fired < expected) uv_run(loop.get(), UV_RUN_ONCE);
  const int64_t fire_ns = now_ns() - fire_start;
  note("%s W5 arm_cancel, %lld timers: arm+cancel %.1f ns per timer, fire %.1f ns per fired timer",
       "libuv", static_cast<long long>(timers),
       static_cast<double>(arm_ns) / static_cast<double>(timers),
       static_cast<double>(fire_ns) / static_cast<double>(expected));
  return static_cast<double>(arm_ns + fire_ns) / static_cast<double>(timers);
}

// W5 rearm: uv_timer_start on a started timer moves it (a heap removal and
// insertion). libuv computes the deadline from the loop's cached time and
// reads no clock.
double rearm(int64_t others, int64_t rearms) {
  XorShift random;
  std::deque<uv_timer_t> handles;
  Loop loop;
  const uv_timer_cb never = [](uv_timer_t*) {};
  for (int64_t i = 0; i < others; ++i) {
    uv_timer_t& timer = handles.emplace_back();
    uv_timer_init(loop.get(), &timer);
    uv_timer_start(&timer, never, offset_ms(random.deadline_offset_ns()), 0);
  }
  uv_timer_t& timer = handles.emplace_back();
  uv_timer_init(loop.get(), &timer);
  auto run = [&](int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      uv_timer_start(&timer, never, offset_ms(random.deadline_offset_ns()), 0);
    }
  };
  run(warmup_count(rearms));
  const int64_t start = now_ns();
  run(rearms);
  return static_cast<double>(now_ns() - start) / static_cast<double>(rearms);
}

}  // namespace

void run_libuv(const Options& options, const Counts& counts) {
  if (options.wants("W1")) {
    bh_rearm(counts);
    bh_continue(counts);
  }
  if (options.wants("W2")) cross_bh(counts);
  if (options.wants("W3")) cross_fd(counts);
  if (options.wants("W4")) {
    for (int idle_count : counts.idle_fd_counts) idle_fds(idle_count, counts);
  }
  if (options.wants("W5")) report_timers("libuv", counts, arm_cancel_fire, rearm);
}

}  // namespace bench

#else  // !AIOLOOP_BENCH_HAVE_LIBUV

namespace bench {

void run_libuv(const Options&, const Counts&) {
  note("libuv: not built with libuv; skipped");
}

}  // namespace bench

#endif
