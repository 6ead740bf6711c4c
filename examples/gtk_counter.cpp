// SPDX-License-Identifier: MIT
// A small GTK window whose counters are driven by an aioloop context attached
// to GTK's main loop (the default GMainContext):
//
//   - an aioloop timer ticks every 100 ms and updates the "timer" label;
//   - a worker thread schedules a bottom half every 250 ms (BottomHalf::
//     schedule() is safe from any thread and wakes the GTK main loop); the
//     bottom half updates the "bottom half" label in the GUI thread;
//   - the worker also writes to a pipe whose read end is an aioloop fd
//     handler, updating the "fd events" label.
//
// Every label changes in the GUI thread: the context's callbacks run inside
// GTK's own main loop, so no locking or g_idle_add() hand-off is needed.
// Builds against GTK 4 or GTK 3.
//
//   gtk-counter [--quit-after=SECONDS]
#include <aioloop/aioloop.h>
#include <aioloop/glib.h>
#include <fcntl.h>
#include <gtk/gtk.h>
#include <libintl.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <clocale>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#define _(msgid) gettext(msgid)

namespace {

using aioloop::ClockType;
using aioloop::Context;

struct App {
  std::shared_ptr<Context> context;
  guint source_id = 0;
  GtkLabel* timer_label = nullptr;
  GtkLabel* bh_label = nullptr;
  GtkLabel* fd_label = nullptr;
  aioloop::Timer timer;
  aioloop::BottomHalf bh;
  int pipe_fds[2] = {-1, -1};
  std::thread worker;
  std::atomic<bool> stopping{false};
  unsigned long ticks = 0, bh_runs = 0, fd_events = 0;
  double quit_after = 0;  // seconds; 0: run until the window is closed
};

void set_count(GtkLabel* label, const char* format, unsigned long count) {
  char text[128];
  std::snprintf(text, sizeof text, format, count);
  gtk_label_set_text(label, text);
}

GtkLabel* add_label(GtkWidget* box) {
  GtkWidget* label = gtk_label_new("");
#if GTK_CHECK_VERSION(4, 0, 0)
  gtk_box_append(GTK_BOX(box), label);
#else
  gtk_box_pack_start(GTK_BOX(box), label, TRUE, TRUE, 4);
#endif
  return GTK_LABEL(label);
}

void start_context(App* app) {
  app->context = Context::create();
  app->source_id = aioloop::glib::attach(app->context);
  Context& context = *app->context;

  app->timer = aioloop::Timer(context, ClockType::realtime, aioloop::Scale::ms, [app] {
    set_count(app->timer_label, _("timer ticks: %lu"), ++app->ticks);
    if (app->quit_after > 0 && app->ticks * 0.1 >= app->quit_after) {
      g_application_quit(g_application_get_default());
      return;
    }
    app->timer.mod(app->context->now(ClockType::realtime) / 1000000 + 100);
  });
  app->timer.mod(context.now(ClockType::realtime) / 1000000 + 100);

  app->bh = aioloop::BottomHalf(
      context, [app] { set_count(app->bh_label, _("bottom halves: %lu"), ++app->bh_runs); });

  if (::pipe2(app->pipe_fds, O_NONBLOCK | O_CLOEXEC) == 0) {
    std::error_code ec =
        context.set_fd_handler(app->pipe_fds[0], {.read = [app] {
                                 char buffer[64];
                                 while (::read(app->pipe_fds[0], buffer, sizeof buffer) > 0) {
                                   set_count(app->fd_label, _("fd events: %lu"), ++app->fd_events);
                                 }
                               }});
    if (ec) std::fprintf(stderr, _("gtk-counter: cannot watch a pipe: %s\n"), ec.message().c_str());
  }

  // The worker never touches GTK: it only schedules and writes.
  app->worker = std::thread([app] {
    while (!app->stopping.load(std::memory_order_acquire)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      app->bh.schedule();
      const char byte = 'x';
      if (app->pipe_fds[1] >= 0 && ::write(app->pipe_fds[1], &byte, 1) < 0) break;
    }
  });
}

void stop_context(App* app) {
  app->stopping.store(true, std::memory_order_release);
  if (app->worker.joinable()) app->worker.join();
  if (!app->context) return;
  if (app->pipe_fds[0] >= 0) app->context->remove_fd_handler(app->pipe_fds[0]);
  for (int& fd : app->pipe_fds) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  app->timer.reset();
  app->bh.reset();
  g_source_remove(app->source_id);
  app->context.reset();
}

void activate(GtkApplication* application, gpointer data) {
  auto* app = static_cast<App*>(data);
  GtkWidget* window = gtk_application_window_new(application);
  gtk_window_set_title(GTK_WINDOW(window), _("aioloop counters"));
  gtk_window_set_default_size(GTK_WINDOW(window), 280, 120);
  GtkWidget* box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
  app->timer_label = add_label(box);
  app->bh_label = add_label(box);
  app->fd_label = add_label(box);
  set_count(app->timer_label, _("timer ticks: %lu"), 0);
  set_count(app->bh_label, _("bottom halves: %lu"), 0);
  set_count(app->fd_label, _("fd events: %lu"), 0);
#if GTK_CHECK_VERSION(4, 0, 0)
  gtk_window_set_child(GTK_WINDOW(window), box);
  gtk_window_present(GTK_WINDOW(window));
#else
  gtk_container_add(GTK_CONTAINER(window), box);
  gtk_widget_show_all(window);
#endif
  try {
    start_context(app);
  } catch (const std::exception& e) {
    // No exception may cross GTK's C frames.
    std::fprintf(stderr, _("gtk-counter: %s\n"), e.what());
    g_application_quit(G_APPLICATION(application));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::setlocale(LC_ALL, "");
  bindtextdomain("aioloop", LOCALEDIR);
  bind_textdomain_codeset("aioloop", "UTF-8");
  textdomain("aioloop");

  App app;
  // Our own option, taken out before GTK sees the command line.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--quit-after=", 0) == 0) {
      // from_chars: "0.5" must not depend on the locale's decimal separator.
      std::from_chars(arg.data() + 13, arg.data() + arg.size(), app.quit_after);
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;

  GtkApplication* application =
      gtk_application_new("org.aioloop.GtkCounter", G_APPLICATION_NON_UNIQUE);
  g_signal_connect(application, "activate", G_CALLBACK(activate), &app);
  int status = g_application_run(G_APPLICATION(application), argc, argv);
  stop_context(&app);
  g_object_unref(application);
  return status;
}
