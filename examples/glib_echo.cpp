// SPDX-License-Identifier: MIT
// An aioloop context inside an ordinary GLib program. The context is attached
// to the default GMainContext and serves a loopback TCP echo server with its
// own fd handlers, while the same GMainLoop also runs:
//
//   - a GIO client (GSocketClient and async stream calls) that talks to the
//     echo server and checks every reply,
//   - a g_idle source doing background work in small chunks,
//   - a g_timeout source ticking every 100 ms.
//
// An aioloop timer ends the run after --seconds (default 1); the program then
// prints what each source did and exits with status 0 when every source made
// progress and every echo was correct.
//
//   glib-echo [--seconds=S] [--backend=automatic|poll|epoll|io_uring]
#include <aioloop/aioloop.h>
#include <aioloop/glib.h>
#include <arpa/inet.h>
#include <gio/gio.h>
#include <libintl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <clocale>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#define _(msgid) gettext(msgid)

namespace {

using aioloop::Context;

struct Options {
  double seconds = 1.0;
  aioloop::Backend backend = aioloop::Backend::automatic;
};

// Returns -1 to go on, otherwise the exit status.
int parse_options(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf(
          _("Usage: glib-echo [--seconds=S] [--backend=automatic|poll|epoll|io_uring]\n"
            "Runs an aioloop echo server, a GIO client, a g_idle and a g_timeout source\n"
            "in one GMainLoop for S seconds (default 1) and prints what each did.\n"));
      return 0;
    }
    if (arg.starts_with("--seconds=")) {
      std::string_view value = arg.substr(10);
      // from_chars: "0.5" must not depend on the locale's decimal separator.
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), options->seconds);
      if (ec == std::errc() && ptr == value.data() + value.size() && options->seconds > 0) continue;
    } else if (arg.starts_with("--backend=")) {
      if (auto backend = aioloop::parse_backend(arg.substr(10))) {
        options->backend = *backend;
        continue;
      }
    }
    std::fprintf(stderr, _("glib-echo: invalid argument: %s\n"), argv[i]);
    return 2;
  }
  return -1;
}

// ---------------------------------------------------------------------------
// The echo server: plain sockets and aioloop fd handlers.

class EchoServer {
 public:
  explicit EchoServer(Context& context) : context_(context) {}
  ~EchoServer() {
    for (auto& [fd, connection] : connections_) {
      context_.remove_fd_handler(fd);
      ::close(fd);
    }
    if (listen_fd_ >= 0) {
      context_.remove_fd_handler(listen_fd_);
      ::close(listen_fd_);
    }
  }
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  // Listens on 127.0.0.1 with a port the kernel picks. Returns 0 or -errno.
  int start(uint16_t* port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return -errno;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      return -errno;
    }
    *port = ntohs(address.sin_port);
    std::error_code ec = context_.set_fd_handler(listen_fd_, {.read = [this] { accept_all(); }});
    return ec ? -ec.value() : 0;
  }

  uint64_t accepted() const { return accepted_; }
  uint64_t bytes_echoed() const { return bytes_echoed_; }

 private:
  struct Connection {
    std::string pending;   // bytes read but not yet written back
    bool writing = false;  // watched for writability instead of readability
  };

  void accept_all() {
    for (;;) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN: accepted everything that was waiting
      connections_[fd] = {};
      ++accepted_;
      watch(fd, false);
    }
  }

  // Reads while there is nothing to write back, writes otherwise: a slow
  // reader on the other end cannot make the server buffer without bound.
  void watch(int fd, bool want_write) {
    connections_[fd].writing = want_write;
    aioloop::FdHandler handler;
    if (want_write) {
      handler.write = [this, fd] { on_writable(fd); };
    } else {
      handler.read = [this, fd] { on_readable(fd); };
    }
    if (context_.set_fd_handler(fd, std::move(handler))) close_connection(fd);
  }

  void on_readable(int fd) {
    char buffer[16384];
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      close_connection(fd);
      return;
    }
    if (n < 0) return;
    connections_[fd].pending.append(buffer, static_cast<size_t>(n));
    on_writable(fd);
  }

  void on_writable(int fd) {
    std::string& pending = connections_[fd].pending;
    while (!pending.empty()) {
      ssize_t n = ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) break;
        close_connection(fd);
        return;
      }
      bytes_echoed_ += static_cast<uint64_t>(n);
      pending.erase(0, static_cast<size_t>(n));
    }
    // Re-register only when the direction changes: replacing a handler
    // costs a system call under epoll.
    if (connections_[fd].writing != !pending.empty()) watch(fd, !pending.empty());
  }

  // Safe from inside the connection's own callback: the context frees the
  // handler once that callback has returned.
  void close_connection(int fd) {
    context_.remove_fd_handler(fd);
    ::close(fd);
    connections_.erase(fd);
  }

  Context& context_;
  int listen_fd_ = -1;
  std::unordered_map<int, Connection> connections_;
  uint64_t accepted_ = 0;
  uint64_t bytes_echoed_ = 0;
};

// ---------------------------------------------------------------------------
// The GIO client: one connection, one request in flight, every reply checked.

struct Client {
  GMainLoop* loop = nullptr;
  bool deadline_passed = false;
  GSocketClient* socket_client = nullptr;
  GSocketConnection* connection = nullptr;
  GCancellable* cancellable = nullptr;
  std::string request;
  std::string reply;
  size_t received = 0;
  uint64_t round_trips = 0;
  bool mismatch = false;
  bool finished = false;  // no asynchronous call is pending any more
  std::string error;
};

void send_request(Client* client);

// A cancelled call is how the run ends, not an error.
void finish(Client* client, GError* error) {
  if (error && !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    client->error = error->message;
  }
  g_clear_error(&error);
  client->finished = true;
  if (client->deadline_passed) g_main_loop_quit(client->loop);
}

void on_read(GObject* stream, GAsyncResult* result, gpointer data) {
  auto* client = static_cast<Client*>(data);
  GError* error = nullptr;
  gssize n = g_input_stream_read_finish(G_INPUT_STREAM(stream), result, &error);
  if (n <= 0) {
    if (n == 0 && !error) client->error = _("the server closed the connection");
    finish(client, error);
    return;
  }
  client->received += static_cast<size_t>(n);
  if (client->received < client->reply.size()) {
    GInputStream* in = g_io_stream_get_input_stream(G_IO_STREAM(client->connection));
    g_input_stream_read_async(in, client->reply.data() + client->received,
                              client->reply.size() - client->received, G_PRIORITY_DEFAULT,
                              client->cancellable, on_read, client);
    return;
  }
  if (client->reply != client->request) client->mismatch = true;
  ++client->round_trips;
  send_request(client);
}

void on_written(GObject* stream, GAsyncResult* result, gpointer data) {
  auto* client = static_cast<Client*>(data);
  GError* error = nullptr;
  if (!g_output_stream_write_all_finish(G_OUTPUT_STREAM(stream), result, nullptr, &error)) {
    finish(client, error);
    return;
  }
  client->reply.assign(client->request.size(), '\0');
  client->received = 0;
  GInputStream* in = g_io_stream_get_input_stream(G_IO_STREAM(client->connection));
  g_input_stream_read_async(in, client->reply.data(), client->reply.size(), G_PRIORITY_DEFAULT,
                            client->cancellable, on_read, client);
}

void send_request(Client* client) {
  if (g_cancellable_is_cancelled(client->cancellable)) {
    finish(client, nullptr);
    return;
  }
  client->request = "ping " + std::to_string(client->round_trips) + "\n";
  GOutputStream* out = g_io_stream_get_output_stream(G_IO_STREAM(client->connection));
  g_output_stream_write_all_async(out, client->request.data(), client->request.size(),
                                  G_PRIORITY_DEFAULT, client->cancellable, on_written, client);
}

void on_connected(GObject* source, GAsyncResult* result, gpointer data) {
  auto* client = static_cast<Client*>(data);
  GError* error = nullptr;
  client->connection =
      g_socket_client_connect_to_host_finish(G_SOCKET_CLIENT(source), result, &error);
  if (!client->connection) {
    finish(client, error);
    return;
  }
  send_request(client);
}

// ---------------------------------------------------------------------------
// The other GLib sources.

// Background work for the g_idle source: counting primes, 500 numbers per
// call, so the main loop stays responsive between chunks.
struct PrimeCounter {
  uint64_t next = 2;
  uint64_t primes = 0;
  uint64_t chunks = 0;
};

gboolean count_primes_chunk(gpointer data) {
  auto* counter = static_cast<PrimeCounter*>(data);
  for (uint64_t end = counter->next + 500; counter->next < end; ++counter->next) {
    bool prime = true;
    for (uint64_t d = 2; d * d <= counter->next; ++d) {
      if (counter->next % d == 0) {
        prime = false;
        break;
      }
    }
    if (prime) ++counter->primes;
  }
  ++counter->chunks;
  // Up to a million is enough background work for a demonstration.
  return counter->next < 1000000 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

gboolean tick(gpointer data) {
  ++*static_cast<uint64_t*>(data);
  return G_SOURCE_CONTINUE;
}

}  // namespace

int main(int argc, char** argv) {
  std::setlocale(LC_ALL, "");
  bindtextdomain("aioloop", LOCALEDIR);
  bind_textdomain_codeset("aioloop", "UTF-8");
  textdomain("aioloop");

  Options options;
  if (int status = parse_options(argc, argv, &options); status >= 0) return status;

  std::shared_ptr<Context> context;
  guint source_id = 0;
  try {
    context = Context::create({.backend = options.backend});
    // The default GMainContext now runs the context's handlers, bottom
    // halves and timers, side by side with every other source below.
    source_id = aioloop::glib::attach(context);
  } catch (const std::exception& e) {
    std::fprintf(stderr, _("glib-echo: %s\n"), e.what());
    return 1;
  }

  Client client;
  PrimeCounter counter;
  uint64_t ticks = 0;
  uint64_t accepted = 0;
  uint64_t bytes_echoed = 0;
  int status = 0;
  {
    EchoServer server(*context);
    uint16_t port = 0;
    if (int err = server.start(&port); err < 0) {
      std::fprintf(stderr, _("glib-echo: cannot listen on 127.0.0.1: %s\n"), std::strerror(-err));
      return 1;
    }
    std::printf(_("echo server on 127.0.0.1:%u (%s backend) inside a GMainLoop\n"),
                static_cast<unsigned>(port),
                std::string(aioloop::backend_name(context->backend())).c_str());
    std::fflush(stdout);

    client.loop = g_main_loop_new(nullptr, FALSE);
    client.socket_client = g_socket_client_new();
    client.cancellable = g_cancellable_new();
    g_socket_client_connect_to_host_async(client.socket_client, "127.0.0.1", port,
                                          client.cancellable, on_connected, &client);
    // At GLib's usual idle priority (G_PRIORITY_DEFAULT_IDLE) the idle would
    // run only when nothing else is ready, and the echo traffic never lets
    // the loop go idle. At the same priority as the context's source, GLib
    // shares each iteration between them.
    guint idle_id = g_idle_add_full(G_PRIORITY_DEFAULT, count_primes_chunk, &counter, nullptr);
    guint tick_id = g_timeout_add(100, tick, &ticks);

    // The end of the run is an aioloop timer: it cancels the client, whose
    // pending call then completes (cancelled) and quits the loop, so no GIO
    // callback can run after the client is gone.
    aioloop::Timer deadline(*context, aioloop::ClockType::realtime, aioloop::Scale::ns, [&] {
      client.deadline_passed = true;
      if (client.finished) {
        g_main_loop_quit(client.loop);
      } else {
        g_cancellable_cancel(client.cancellable);
      }
    });
    deadline.mod_ns(context->now(aioloop::ClockType::realtime) +
                    static_cast<int64_t>(options.seconds * aioloop::kNsPerSecond));
    g_main_loop_run(client.loop);

    g_source_remove(tick_id);
    if (counter.next < 1000000) g_source_remove(idle_id);
    accepted = server.accepted();
    bytes_echoed = server.bytes_echoed();
    // Closing the client's connection before the server goes lets the
    // server see an orderly end rather than a reset.
    g_clear_object(&client.connection);
    g_clear_object(&client.socket_client);
    g_clear_object(&client.cancellable);
    g_main_loop_unref(client.loop);
  }
  g_source_remove(source_id);  // finalizes the source: it releases the context

  std::printf(_("aioloop echo server: %llu connections accepted, %llu bytes echoed\n"),
              static_cast<unsigned long long>(accepted),
              static_cast<unsigned long long>(bytes_echoed));
  std::printf(_("GIO client: %llu round trips\n"),
              static_cast<unsigned long long>(client.round_trips));
  std::printf(_("g_idle: %llu chunks of background work (%llu primes found)\n"),
              static_cast<unsigned long long>(counter.chunks),
              static_cast<unsigned long long>(counter.primes));
  std::printf(_("g_timeout: %llu ticks\n"), static_cast<unsigned long long>(ticks));

  if (!client.error.empty()) {
    std::fprintf(stderr, _("glib-echo: client: %s\n"), client.error.c_str());
    status = 1;
  }
  if (client.mismatch) {
    std::fprintf(stderr, _("glib-echo: an echo did not match its request\n"));
    status = 1;
  }
  if (client.round_trips == 0 || counter.chunks == 0 || ticks == 0) {
    std::fprintf(stderr, _("glib-echo: a source made no progress\n"));
    status = 1;
  }
  return status;
}
