// SPDX-License-Identifier: MIT
// W3's floor under GLib (impl=limit workload=xfd mode=gsource-<monitor>):
// the cheapest W3 any GSource can do. Each side is a GMainContext iterated
// with g_main_context_iteration() and one hand-written source watching its
// eventfd through a GPollFD: prepare lets GLib block, check reports revents,
// dispatch reads the eventfd and writes the other side's. GLib polls that fd
// and its own wake-up fd; there is no notifier, no handler table, nothing a
// source could leave out. The source is recursable, as aioloop's is: GLib
// takes a non-recursable source's fds out of the poll set while it
// dispatches and puts them back after, and each of the two changes writes
// GLib's wake-up eventfd, which then costs the next iteration an extra
// poll() and read() (GLib's own fd sources, impl=glib mode=poll, pay that).
//
// Measured like the other floors (bench_floors.cpp): L3 paired between its
// chunks, right after aioloop's W3 under GLib on the monitor it is named
// for. The monitor does not matter to it; the moment does.
#include "bench_report.h"

#if AIOLOOP_BENCH_HAVE_GLIB

#include <glib.h>

#include <atomic>
#include <string>
#include <thread>

#include "bench_glib_side_b.h"

namespace bench {

namespace {

struct FloorSource {
  GSource base;
  GPollFD pollfd;
  const EventFd* own;
  const EventFd* other;
  RoundTrips* trips;  // side A counts round trips; side B has none
};

gboolean floor_prepare(GSource*, gint* timeout) {
  *timeout = -1;
  return FALSE;
}

gboolean floor_check(GSource* source) {
  return reinterpret_cast<FloorSource*>(source)->pollfd.revents != 0 ? TRUE : FALSE;
}

gboolean floor_dispatch(GSource* source, GSourceFunc, gpointer) {
  auto* self = reinterpret_cast<FloorSource*>(source);
  if (self->own->drain() && (!self->trips || self->trips->complete())) self->other->write_one();
  return G_SOURCE_CONTINUE;
}

GSourceFuncs floor_funcs = {floor_prepare, floor_check, floor_dispatch, nullptr, nullptr, nullptr};

// A GMainContext of its own with one floor source; destroyed in the thread
// that made it, after the last iteration.
class FloorLoop {
 public:
  FloorLoop(const EventFd& own, const EventFd& other, RoundTrips* trips)
      : context_(g_main_context_new()) {
    GSource* source = g_source_new(&floor_funcs, sizeof(FloorSource));
    auto* self = reinterpret_cast<FloorSource*>(source);
    self->pollfd = {own.fd(), G_IO_IN, 0};
    self->own = &own;
    self->other = &other;
    self->trips = trips;
    g_source_add_poll(source, &self->pollfd);
    g_source_set_can_recurse(source, TRUE);
    g_source_attach(source, context_);
    g_source_unref(source);
  }
  ~FloorLoop() { g_main_context_unref(context_); }  // destroys the source
  FloorLoop(const FloorLoop&) = delete;
  FloorLoop& operator=(const FloorLoop&) = delete;

  GMainContext* context() const { return context_; }
  void iterate() const { g_main_context_iteration(context_, TRUE); }

 private:
  GMainContext* context_;
};

}  // namespace

void w3_gsource_floor(std::string_view mode, const Counts& counts) {
  RoundTrips trips(warmup_count(counts.xfd), counts.xfd, counts.budget_ns,
                   "limit W3 floor " + std::string(mode), /*pair_with_l3=*/true);
  EventFd efd_a;
  EventFd efd_b;
  FloorLoop loop_b(efd_b, efd_a, nullptr);
  std::atomic<bool> stop{false};
  std::thread side_b = start_side_b(loop_b.context(), stop);
  FloorLoop loop_a(efd_a, efd_b, &trips);
  trips.begin();
  efd_b.write_one();
  while (!trips.finished()) loop_a.iterate();
  stop_side_b(loop_b.context(), stop, side_b);
  report_trips("xfd", "limit", mode, trips);
}

}  // namespace bench

#else  // !AIOLOOP_BENCH_HAVE_GLIB

namespace bench {

void w3_gsource_floor(std::string_view, const Counts&) {}

}  // namespace bench

#endif
