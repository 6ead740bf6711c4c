// SPDX-License-Identifier: MIT
// A context as a GSource: nest it under any GMainContext / GMainLoop.
#pragma once

#include <aioloop/context.h>
#include <aioloop/export.h>
#include <aioloop/io_thread.h>
#include <glib.h>

#include <memory>

namespace aioloop::glib {

// Creates the GSource of a context. The source keeps the context alive
// until it is finalized; it is recursable (a callback may run a nested
// GMainLoop) and has G_PRIORITY_DEFAULT (g_source_set_priority() changes
// it). Attach it with g_source_attach() to any GMainContext, then drop your
// reference with g_source_unref(). A context has at most one source at a
// time, so it can never be attached to two GMainContexts: while one exists
// this throws Error (EBUSY). The context's home thread must be the thread
// that iterates the GMainContext. Busy polling is off under GLib.
// Per iteration the source shows GLib the fds of the context's watched
// handlers while there are at most 8, or under poll; beyond 8, under epoll
// and io_uring, the epoll or ring fd plus at most 4 busy handlers' fds,
// whatever the number of handlers (see Context::embed_fds()). A context
// with no handlers shows GLib no fd at all: from the source's first prepare
// until it is destroyed, notifications from other threads wake GLib
// through its own wake-up fd (g_main_context_wakeup(), see
// Context::set_embed_wakeup()) instead of the context's eventfd. The
// source carries a callback that it never calls; GLib drops it when the
// source is destroyed, which is how the source learns to stop waking the
// GMainContext before GLib frees it. Replacing it with
// g_source_set_callback() is harmless: GLib then polls the context's
// eventfd again.
AIOLOOP_EXPORT GSource* create_source(const std::shared_ptr<Context>& context);

// create_source() + g_source_set_priority() + g_source_attach() to
// main_context (nullptr: the global default) + g_source_unref(). Returns the
// source id (g_source_remove(id) detaches it). Throws like create_source().
AIOLOOP_EXPORT guint attach(const std::shared_ptr<Context>& context,
                            GMainContext* main_context = nullptr,
                            int priority = G_PRIORITY_DEFAULT);

// Runs loop with the context attached to the loop's GMainContext, until
// g_main_loop_quit(); detaches it again before returning.
AIOLOOP_EXPORT void run(const std::shared_ptr<Context>& context, GMainLoop* loop);

// Switches an I/O thread into GLib mode: the thread gets its own
// GMainContext (its thread-default context), the thread's context source is
// attached to it, and from then on the thread iterates that GMainContext, so
// GLib and GIO sources attached to it run in the I/O thread next to the
// context's work. Wakes the thread to switch; returns the GMainContext
// (owned by the thread, valid until IoThread::stop(), which still joins
// cleanly). Call from any thread but the I/O thread. Throws Error (EBUSY) if
// the context already has a source.
AIOLOOP_EXPORT GMainContext* host_main_context(IoThread& thread);

}  // namespace aioloop::glib
