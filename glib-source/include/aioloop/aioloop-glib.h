/* SPDX-License-Identifier: MIT */
/* The C entry points, for plain-C GLib and GTK programs. */
#pragma once

#include <aioloop/export.h>
#include <glib.h>

G_BEGIN_DECLS

/* A reference-counted handle to an aioloop context. */
typedef struct AioloopContext AioloopContext;

typedef void (*AioloopCallback)(gpointer user_data);

/* The GError domain of the functions below. */
AIOLOOP_EXPORT GQuark aioloop_error_quark(void);
#define AIOLOOP_ERROR (aioloop_error_quark())

/* Creates a context whose home thread is the calling thread. backend is
 * NULL (automatic), "poll", "epoll" or "io_uring". Returns NULL and sets
 * error (code: an errno value) when the kernel refuses. */
AIOLOOP_EXPORT AioloopContext* aioloop_context_new(const char* backend, GError** error);
AIOLOOP_EXPORT AioloopContext* aioloop_context_ref(AioloopContext* context);
AIOLOOP_EXPORT void aioloop_context_unref(AioloopContext* context);

/* The context's GSource (a new reference, not attached); see
 * aioloop::glib::create_source(). NULL with error set (code EBUSY) when the
 * context already has one. */
AIOLOOP_EXPORT GSource* aioloop_context_create_source(AioloopContext* context, GError** error);

/* Registers read and/or write callbacks for fd (NULL for none; both NULL
 * removes the handler). FALSE with error set (EBADF, EPERM, ...) when the fd
 * is refused. Home thread only. */
AIOLOOP_EXPORT gboolean aioloop_context_set_fd_handler(AioloopContext* context, int fd,
                                                       AioloopCallback read, AioloopCallback write,
                                                       gpointer user_data, GError** error);

/* Runs fn(user_data) once in the home thread, in a later iteration. Any
 * thread. */
AIOLOOP_EXPORT void aioloop_context_run_soon(AioloopContext* context, AioloopCallback fn,
                                             gpointer user_data);

/* Wakes the home thread's loop. Any thread. */
AIOLOOP_EXPORT void aioloop_context_notify(AioloopContext* context);

G_END_DECLS
