// SPDX-License-Identifier: MIT
// The extern "C" entry points for plain-C GLib and GTK programs. No
// exception crosses into C: each entry point catches and reports a GError.
#include <aioloop/aioloop-glib.h>
#include <aioloop/context.h>
#include <aioloop/error.h>
#include <aioloop/glib.h>

#include <atomic>
#include <cerrno>

#include "i18n.h"

struct AioloopContext {
  std::shared_ptr<aioloop::Context> context;
  std::atomic<int> refs{1};
};

extern "C" {

GQuark aioloop_error_quark(void) {
  return g_quark_from_static_string("aioloop-error-quark");
}

AioloopContext* aioloop_context_new(const char* backend, GError** error) {
  aioloop::ContextOptions options;
  if (backend) {
    std::optional<aioloop::Backend> parsed = aioloop::parse_backend(backend);
    if (!parsed) {
      g_set_error(error, AIOLOOP_ERROR, EINVAL, _("unknown backend \"%s\" (poll, epoll, io_uring)"),
                  backend);
      return nullptr;
    }
    options.backend = *parsed;
  }
  try {
    auto* handle = new AioloopContext;
    handle->context = aioloop::Context::create(options);
    return handle;
  } catch (const aioloop::Error& e) {
    g_set_error_literal(error, AIOLOOP_ERROR, e.code().value(), e.what());
  } catch (const std::exception& e) {
    g_set_error_literal(error, AIOLOOP_ERROR, ENOMEM, e.what());
  }
  return nullptr;
}

AioloopContext* aioloop_context_ref(AioloopContext* context) {
  context->refs.fetch_add(1, std::memory_order_relaxed);
  return context;
}

void aioloop_context_unref(AioloopContext* context) {
  // acq_rel: the last owner sees every other owner's writes before freeing.
  if (context->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete context;
}

GSource* aioloop_context_create_source(AioloopContext* context, GError** error) {
  try {
    return aioloop::glib::create_source(context->context);
  } catch (const aioloop::Error& e) {
    g_set_error_literal(error, AIOLOOP_ERROR, e.code().value(), e.what());
  }
  return nullptr;
}

gboolean aioloop_context_set_fd_handler(AioloopContext* context, int fd, AioloopCallback read,
                                        AioloopCallback write, gpointer user_data, GError** error) {
  aioloop::FdHandler handler;
  if (read) handler.read = [read, user_data] { read(user_data); };
  if (write) handler.write = [write, user_data] { write(user_data); };
  std::error_code ec = context->context->set_fd_handler(fd, std::move(handler));
  if (ec) {
    g_set_error(error, AIOLOOP_ERROR, ec.value(), _("cannot watch fd %d: %s"), fd,
                ec.message().c_str());
    return FALSE;
  }
  return TRUE;
}

void aioloop_context_run_soon(AioloopContext* context, AioloopCallback fn, gpointer user_data) {
  context->context->run_soon([fn, user_data] { fn(user_data); });
}

void aioloop_context_notify(AioloopContext* context) {
  context->context->notify();
}

}  // extern "C"
