// SPDX-License-Identifier: MIT
// An I/O thread that iterates its own GMainContext, with the thread's
// context attached to it as a GSource.
#include <aioloop/glib.h>

#include <exception>

namespace aioloop::glib {

GMainContext* host_main_context(IoThread& thread) {
  GMainContext* result = nullptr;
  std::exception_ptr failure;
  // The switch runs in the I/O thread (its one-shot wakes the thread): the
  // GMainContext becomes that thread's default, and the next iteration is
  // GLib's. Exceptions must not escape a loop callback, so carry them out.
  thread.run_and_wait([&] {
    GSource* source;
    try {
      source = create_source(thread.context_ptr());
    } catch (...) {
      failure = std::current_exception();
      return;
    }
    GMainContext* main_context = g_main_context_new();
    g_main_context_push_thread_default(main_context);
    g_source_attach(source, main_context);
    thread.set_iteration([main_context] { g_main_context_iteration(main_context, TRUE); },
                         [main_context, source] {
                           g_source_destroy(source);
                           g_source_unref(source);
                           g_main_context_pop_thread_default(main_context);
                           g_main_context_unref(main_context);
                         });
    result = main_context;
  });
  if (failure) std::rethrow_exception(failure);
  return result;
}

}  // namespace aioloop::glib
