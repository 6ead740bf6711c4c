// SPDX-License-Identifier: MIT
// The GSource of a context: GLib's prepare / poll / check / dispatch mapped
// onto Context::embed_prepare / embed_fds / embed_check / embed_dispatch.
#include <aioloop/error.h>
#include <aioloop/glib.h>

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "i18n.h"
#include "time_util.h"

namespace aioloop::glib {

namespace {

struct SourceState {
  std::shared_ptr<Context> context;
  // The fds GLib polls for us, owned here (g_source_add_poll) so that check
  // reads revents directly: g_source_query_unix_fd() searches a list per
  // call, which made every iteration O(n^2) under the poll monitor. Keyed
  // by fd so a change of handlers touches only the fds that changed.
  struct Watched {
    std::unique_ptr<GPollFD> pollfd;
    uint64_t seen = 0;
  };
  std::unordered_map<int, Watched> watched;
  std::vector<GPollFD*> order;  // aligned with Context::embed_fds()
  std::vector<short> revents;
  uint64_t generation = UINT64_MAX;
  // prepare() ran and check() has not: GLib skips check() for a source
  // whose prepare() said it was ready, and dispatch() then does its work.
  bool check_pending = false;
  std::shared_ptr<struct GLibWakeup> wakeup;
};

struct ContextSource {
  GSource base;
  SourceState* state;
};

// The contexts that have a source: a context attached to two GMainContexts
// would be iterated by two threads.
std::mutex sourced_mutex;
std::unordered_set<const Context*> sourced;

SourceState* state_of(GSource* source) {
  return reinterpret_cast<ContextSource*>(source)->state;
}

// Under the poll monitor the set of fds follows the handlers; under epoll
// and io_uring it is one fd for good, so this is a comparison per iteration.
void sync_fds(GSource* source, SourceState* st) {
  const uint64_t generation = st->context->embed_fds_generation();
  if (generation == st->generation) return;
  st->order.clear();
  for (const EmbedFd& fd : st->context->embed_fds()) {
    SourceState::Watched& w = st->watched[fd.fd];
    if (!w.pollfd) {
      w.pollfd = std::make_unique<GPollFD>();
      w.pollfd->fd = fd.fd;
      w.pollfd->events = static_cast<gushort>(fd.events);  // GIOCondition == poll(2) bits
      w.pollfd->revents = 0;
      g_source_add_poll(source, w.pollfd.get());
    } else {
      // GLib reads events afresh for every poll: an in-place change is enough.
      w.pollfd->events = static_cast<gushort>(fd.events);
    }
    w.seen = generation;
    st->order.push_back(w.pollfd.get());
  }
  for (auto it = st->watched.begin(); it != st->watched.end();) {
    if (it->second.seen == generation) {
      ++it;
      continue;
    }
    g_source_remove_poll(source, it->second.pollfd.get());
    it = st->watched.erase(it);
  }
  st->revents.assign(st->order.size(), 0);
  st->generation = generation;
}

bool check_now(GSource* source, SourceState* st) {
  (void)source;
  for (size_t i = 0; i < st->order.size(); ++i) {
    st->revents[i] = static_cast<short>(st->order[i]->revents);
  }
  st->check_pending = false;
  return st->context->embed_check(st->revents);
}

// The context is woken through GLib's own wake-up fd, which GLib polls in
// every iteration anyway (Context::set_embed_wakeup): every poll() then has
// one fd fewer to look at, about 3% of an iteration in W1 under GLib, and a
// cross-thread notification still costs one write and one read.
// g_main_context_wakeup() takes no lock and only writes an eventfd.
//
// Lifetime: the GMainContext is not referenced (it owns the source, so a
// reference would keep both alive for good). It is valid until the source
// is destroyed, and GLib destroys every source before freeing a
// GMainContext. Destroying an attached source drops its callback, so the
// source carries a callback of its own (never called: dispatch() ignores
// it) whose destroy notify withdraws the wake-up; once
// Context::set_embed_wakeup() returns, no notify() calls it any more. The
// notify runs in whichever thread destroys the source, also when GLib
// drops the callback because somebody replaced it; and without ever being
// attached, after finalize. Hence this own object, shared with the source
// state, and its mutex against a first prepare() in the home thread.
struct GLibWakeup {
  std::shared_ptr<Context> context;
  GSource* source = nullptr;  // alive whenever main_context is set
  std::mutex mutex;
  GMainContext* main_context = nullptr;  // installed: the wake-up's argument
  bool dropped = false;                  // GLib dropped the callback: never again
};

void wake_main_context(void* main_context) {
  g_main_context_wakeup(static_cast<GMainContext*>(main_context));
}

// From the first prepare(), in the home thread: the source is attached now.
void install_wakeup(GLibWakeup& w) {
  std::lock_guard<std::mutex> lock(w.mutex);
  if (w.dropped || w.main_context) return;
  GMainContext* main_context = g_source_get_context(w.source);
  if (!main_context) return;
  w.main_context = main_context;
  w.context->set_embed_wakeup(&wake_main_context, main_context);
}

gboolean callback_never_called(gpointer) {
  return G_SOURCE_CONTINUE;
}

void wakeup_dropped(gpointer data) {
  auto* holder = static_cast<std::shared_ptr<GLibWakeup>*>(data);
  GLibWakeup& w = **holder;
  {
    std::lock_guard<std::mutex> lock(w.mutex);
    w.dropped = true;
    if (GMainContext* main_context = std::exchange(w.main_context, nullptr)) {
      w.context->set_embed_wakeup(nullptr, nullptr);
      if (g_source_is_destroyed(w.source)) {
        // GLib will not check the source again: if it was destroyed between
        // prepare and check, the announcement must not outlive it.
        w.context->embed_abandon();
      } else {
        // Replaced rather than destroyed: the source is still attached and
        // GLib may be blocked in a poll() without the context's eventfd.
        // Its next prepare() shows the eventfd again.
        g_main_context_wakeup(main_context);
      }
    }
  }
  delete holder;
}

gboolean source_prepare(GSource* source, gint* timeout) {
  SourceState* st = state_of(source);
  if (st->wakeup) {
    install_wakeup(*st->wakeup);
    st->wakeup.reset();  // installed, or dropped for good: nothing more to do here
  }
  const int64_t timeout_ns = st->context->embed_prepare();
  st->check_pending = true;
  sync_fds(source, st);
  if (timeout_ns == 0) {
    *timeout = 0;
    return TRUE;
  }
  // GLib polls in milliseconds: rounded up, so a timer never fires early.
  *timeout = ::aioloop::detail::to_timeout_ms_rounded_up(timeout_ns);
  return FALSE;
}

gboolean source_check(GSource* source) {
  return check_now(source, state_of(source)) ? TRUE : FALSE;
}

gboolean source_dispatch(GSource* source, GSourceFunc, gpointer) {
  SourceState* st = state_of(source);
  if (st->check_pending) check_now(source, st);
  st->context->embed_dispatch();
  return G_SOURCE_CONTINUE;
}

void source_finalize(GSource* source) {
  SourceState* st = state_of(source);
  // Prepared but never checked (its callback replaced, so wakeup_dropped()
  // did not see the destruction): GLib no longer waits for the context.
  if (st->check_pending) st->context->embed_abandon();
  {
    std::lock_guard<std::mutex> lock(sourced_mutex);
    sourced.erase(st->context.get());
  }
  delete st;  // may destroy the context
}

GSourceFuncs source_funcs = {source_prepare,  source_check, source_dispatch,
                             source_finalize, nullptr,      nullptr};

}  // namespace

GSource* create_source(const std::shared_ptr<Context>& context) {
  {
    std::lock_guard<std::mutex> lock(sourced_mutex);
    if (!sourced.insert(context.get()).second) {
      throw Error(EBUSY, _("this aioloop context already has a GSource; a context can be "
                           "attached to only one GMainContext at a time"));
    }
  }
  GSource* source = g_source_new(&source_funcs, sizeof(ContextSource));
  auto wakeup = std::make_shared<GLibWakeup>();
  wakeup->context = context;
  wakeup->source = source;
  reinterpret_cast<ContextSource*>(source)->state =
      new SourceState{context, {}, {}, {}, UINT64_MAX, false, wakeup};
  g_source_set_callback(source, callback_never_called, new std::shared_ptr<GLibWakeup>(wakeup),
                        wakeup_dropped);
  g_source_set_can_recurse(source, TRUE);
  g_source_set_name(source, "aioloop context");
  return source;
}

guint attach(const std::shared_ptr<Context>& context, GMainContext* main_context, int priority) {
  GSource* source = create_source(context);
  g_source_set_priority(source, priority);
  guint id = g_source_attach(source, main_context);
  g_source_unref(source);
  return id;
}

void run(const std::shared_ptr<Context>& context, GMainLoop* loop) {
  GSource* source = create_source(context);
  g_source_attach(source, g_main_loop_get_context(loop));
  g_main_loop_run(loop);
  g_source_destroy(source);
  g_source_unref(source);
}

}  // namespace aioloop::glib
