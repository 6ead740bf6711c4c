// SPDX-License-Identifier: MIT
// The flagship example: a loopback TCP echo server on aioloop's native loop,
// measured by a built-in client that runs its own context in a second thread.
//
//   echo-server [--seconds=2] [--connections=8] [--size=64]
//               [--backend=automatic|poll|epoll|io_uring] [--soak=SECONDS]
//
// Each client connection sends a request of --size bytes, waits for all of it
// to come back (one round trip), checks the bytes and sends the next. After
// --seconds the program prints requests per second and latency percentiles
// and exits, with status 0 when at least one round trip completed and every
// echo was correct.
//
// --soak=S runs for S seconds with churn: each client connection closes and
// reconnects after a few dozen requests and replaces its handler now and
// then, so the server keeps accepting, registering and removing handlers.
// It reports the resident set size at the start, after a warm-up (a fifth
// of the run, at most a minute) and at the end, and fails when anything was
// lost: a request without its echo for 10 s, or a connection the server
// never saw closed.
#include <aioloop/aioloop.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <libintl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#define _(msgid) gettext(msgid)

namespace {

using aioloop::ClockType;
using aioloop::Context;
using aioloop::FdHandler;

struct Options {
  double seconds = 2.0;
  long connections = 8;
  long size = 64;
  aioloop::Backend backend = aioloop::Backend::automatic;
  double soak = 0;  // seconds of soak with churn; 0 for a plain measurement
};

// ---------------------------------------------------------------------------
// Options

void print_usage(std::FILE* out) {
  std::fprintf(out,
               _("Usage: echo-server [--seconds=S] [--connections=N] [--size=BYTES]\n"
                 "                   [--backend=automatic|poll|epoll|io_uring] [--soak=S]\n"
                 "Runs a loopback TCP echo server and a client that measures it for S seconds\n"
                 "(default 2) over N connections (default 8) with requests of BYTES bytes\n"
                 "(default 64), then prints requests per second and latency percentiles.\n"
                 "--soak=S runs for S seconds instead, with connections closed and reopened\n"
                 "and handlers replaced all along, and reports memory growth; it fails if a\n"
                 "request or a connection was lost.\n"));
}

// std::from_chars rather than strtod: the program runs with the user's locale
// (for its messages), and "0.3" must not depend on the decimal separator.
template <typename T>
bool parse_number(std::string_view text, T* value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *value);
  return ec == std::errc() && ptr == end;
}

// Returns -1 on success, otherwise the exit status to use.
int parse_options(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      print_usage(stdout);
      return 0;
    }
    const size_t eq = arg.find('=');
    const std::string_view name = arg.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : arg.substr(eq + 1);
    bool ok = false;
    if (name == "--seconds") {
      ok = parse_number(value, &options->seconds) && options->seconds > 0 &&
           options->seconds <= 24 * 3600;
    } else if (name == "--connections") {
      ok = parse_number(value, &options->connections) && options->connections >= 1 &&
           options->connections <= 10000;
    } else if (name == "--size") {
      ok = parse_number(value, &options->size) && options->size >= 1 &&
           options->size <= 16 * 1024 * 1024;
    } else if (name == "--soak") {
      ok = parse_number(value, &options->soak) && options->soak > 0 && options->soak <= 24 * 3600;
      if (ok) options->seconds = options->soak;
    } else if (name == "--backend") {
      const auto backend = aioloop::parse_backend(value);
      ok = backend.has_value();
      if (ok) options->backend = *backend;
    }
    if (!ok) {
      std::fprintf(stderr, _("echo-server: invalid option: %s\n"), argv[i]);
      print_usage(stderr);
      return 2;
    }
  }
  return -1;
}

// printf into a std::string, for messages kept until they can be printed.
__attribute__((format(printf, 1, 2))) std::string format(const char* fmt, ...) {
  char text[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(text, sizeof text, fmt, args);
  va_end(args);
  return text;
}

// The resident set size in KiB (the second field of /proc/self/statm, in
// pages), or -1 when it cannot be read.
long resident_kib() {
  std::FILE* statm = std::fopen("/proc/self/statm", "r");
  if (!statm) return -1;
  long size = 0, resident = -1;
  if (std::fscanf(statm, "%ld %ld", &size, &resident) != 2) resident = -1;
  std::fclose(statm);
  return resident < 0 ? -1 : resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

// ---------------------------------------------------------------------------
// Latency histogram

// Log-linear buckets, so a run of any length costs the same fixed memory:
// values below 2^kSubBits ns are exact, and each power-of-two range above is
// cut into 2^kSubBits buckets, so a reported percentile is within 1/2^kSubBits
// (under 1 %) of the true value.
class LatencyHistogram {
 public:
  void record(uint64_t ns) {
    ++counts_[index_of(ns)];
    ++total_;
  }

  uint64_t total() const { return total_; }

  // The value (ns) below or at which `percent` of the samples lie.
  double percentile(double percent) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(total_)));
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return middle_of(i);
    }
    return middle_of(counts_.size() - 1);
  }

 private:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;

  static size_t index_of(uint64_t ns) {
    if (ns < kSub) return static_cast<size_t>(ns);
    const int shift = static_cast<int>(std::bit_width(ns)) - 1 - kSubBits;
    const uint64_t sub = (ns >> shift) - kSub;
    return static_cast<size_t>((static_cast<uint64_t>(shift) + 1) * kSub + sub);
  }

  static double middle_of(size_t index) {
    if (index < kSub) return static_cast<double>(index);
    const uint64_t shift = index / kSub - 1;
    const uint64_t low = (kSub + index % kSub) << shift;
    return static_cast<double>(low) + static_cast<double>(uint64_t{1} << shift) / 2;
  }

  std::vector<uint64_t> counts_ = std::vector<uint64_t>((64 - kSubBits + 1) * kSub);
  uint64_t total_ = 0;
};

// ---------------------------------------------------------------------------
// Sockets

void close_fd(int fd) {
  // close() is not retried on EINTR: on Linux the fd is gone either way.
  (void)::close(fd);
}

// Latency, not throughput, is what the client measures: without TCP_NODELAY
// Nagle's algorithm would hold back small echoes waiting for more data.
void set_nodelay(int fd) {
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A non-blocking socket listening on 127.0.0.1 on a port the kernel picks.
int listen_on_loopback(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::listen(fd, SOMAXCONN) < 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    int err = errno;
    close_fd(fd);
    return -err;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// ---------------------------------------------------------------------------
// The server

// Echoes everything it reads. Each connection is watched for reading, and for
// writing only while it has output the kernel did not take yet: a level-
// triggered monitor reports a writable socket on every iteration, so leaving
// write interest on would make the loop spin.
class EchoServer {
 public:
  explicit EchoServer(Context& context) : context_(context) {}

  ~EchoServer() {
    for (auto& [fd, connection] : connections_) {
      context_.remove_fd_handler(fd);
      close_fd(fd);
    }
    if (listen_fd_ >= 0) {
      context_.remove_fd_handler(listen_fd_);
      close_fd(listen_fd_);
    }
  }

  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  // Connections accepted and closed so far, and open now (the soak checks
  // that every connection the client closed was seen closed here too).
  uint64_t accepted() const { return accepted_; }
  uint64_t closed() const { return closed_; }
  size_t open_connections() const { return connections_.size(); }

  // Returns 0 or a negative errno.
  int start(uint16_t* port) {
    listen_fd_ = listen_on_loopback(port);
    if (listen_fd_ < 0) return listen_fd_;
    return watch_listener();
  }

 private:
  // Reading stops while this much output is queued, so a peer that sends but
  // never reads cannot make the server buffer without bound.
  static constexpr size_t kHighWater = 1 << 20;

  struct Connection {
    int fd = -1;
    std::vector<char> out;  // echo not yet taken by the kernel
    size_t out_offset = 0;  // how much of `out` was sent
    bool reading = false;   // the registered interest
    bool writing = false;
    size_t pending() const { return out.size() - out_offset; }
  };

  int watch_listener() {
    FdHandler handler;
    handler.read = [this] { on_accept(); };
    return -context_.set_fd_handler(listen_fd_, std::move(handler)).value();
  }

  void on_accept() {
    // Accept everything that is queued: connections arrive in bursts when the
    // client starts, and each one costs only an accept4() here.
    for (;;) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          pause_accepting();
          return;
        }
        std::fprintf(stderr, _("echo-server: accept failed: %s\n"), std::strerror(errno));
        return;
      }
      set_nodelay(fd);
      auto connection = std::make_unique<Connection>();
      connection->fd = fd;
      Connection& c = *connection;
      connections_.emplace(fd, std::move(connection));
      ++accepted_;
      if (!update_interest(c)) close_connection(c);
    }
  }

  // Out of fds or memory: the listening socket stays readable, and with a
  // level-triggered monitor retrying at once would spin. Stop watching it for
  // a moment instead; a timer brings it back.
  void pause_accepting() {
    std::fprintf(stderr, _("echo-server: accept failed (%s); pausing for 100 ms\n"),
                 std::strerror(errno));
    context_.remove_fd_handler(listen_fd_);
    if (!accept_retry_) {
      accept_retry_ = aioloop::Timer(context_, ClockType::realtime, aioloop::Scale::ms,
                                     [this] { (void)watch_listener(); });
    }
    accept_retry_.mod_ns(context_.now(ClockType::realtime) + 100 * 1000 * 1000);
  }

  void on_readable(Connection& c) {
    // One recv() per event rather than reading until EAGAIN: the monitor is
    // level-triggered, so leftover input is reported again in the next
    // iteration, and one busy connection cannot hold up the others.
    char buffer[64 * 1024];
    ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
    if (n == 0) {
      close_connection(c);  // orderly shutdown by the peer
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      close_connection(c);  // e.g. ECONNRESET
      return;
    }
    c.out.insert(c.out.end(), buffer, buffer + n);
    if (!flush(c) || !update_interest(c)) close_connection(c);
  }

  void on_writable(Connection& c) {
    if (!flush(c) || !update_interest(c)) close_connection(c);
  }

  // Sends as much queued output as the kernel takes. False on a fatal error.
  bool flush(Connection& c) {
    while (c.pending() > 0) {
      ssize_t n = ::send(c.fd, c.out.data() + c.out_offset, c.pending(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;  // EPIPE, ECONNRESET: the peer is gone
      }
      c.out_offset += static_cast<size_t>(n);
    }
    if (c.pending() == 0) {
      c.out.clear();
      c.out_offset = 0;
    }
    return true;
  }

  // Registers the interest the connection needs now, and only when it
  // changed: re-registering replaces the handler, which costs an allocation.
  bool update_interest(Connection& c) {
    const bool reading = c.pending() < kHighWater;
    const bool writing = c.pending() > 0;
    if (reading == c.reading && writing == c.writing) return true;
    FdHandler handler;
    Connection* conn = &c;
    if (reading) handler.read = [this, conn] { on_readable(*conn); };
    if (writing) handler.write = [this, conn] { on_writable(*conn); };
    if (std::error_code ec = context_.set_fd_handler(c.fd, std::move(handler))) {
      std::fprintf(stderr, _("echo-server: cannot watch a connection: %s\n"), ec.message().c_str());
      return false;
    }
    c.reading = reading;
    c.writing = writing;
    return true;
  }

  // Frees the connection: the caller must not touch `c` afterwards. Safe from
  // the connection's own callbacks, because the context keeps the removed
  // handler's callbacks alive until the dispatch that runs them returns.
  void close_connection(Connection& c) {
    const int fd = c.fd;
    context_.remove_fd_handler(fd);
    close_fd(fd);
    connections_.erase(fd);
    ++closed_;
  }

  Context& context_;
  int listen_fd_ = -1;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  aioloop::Timer accept_retry_;
  uint64_t accepted_ = 0;
  uint64_t closed_ = 0;
};

// ---------------------------------------------------------------------------
// The client

struct ClientResult {
  LatencyHistogram latency;
  double elapsed_seconds = 0;
  std::string error;  // empty on success; already translated
  aioloop::Stats stats;
  uint64_t connects = 0;              // sockets opened, reconnections included
  uint64_t handler_replacements = 0;  // soak churn besides interest changes
};

// N connections, each with one request in flight. A connection is watched
// for reading all the time (the echo may start before the request is fully
// sent) and for writing only while connecting or while part of the request
// waits for room in the socket buffer.
class EchoClient {
 public:
  EchoClient(Context& context, const Options& options, ClientResult* result)
      : context_(context), options_(options), result_(result) {}

  ~EchoClient() {
    for (auto& connection : connections_) {
      if (connection->fd < 0) continue;
      context_.remove_fd_handler(connection->fd);
      close_fd(connection->fd);
    }
  }

  EchoClient(const EchoClient&) = delete;
  EchoClient& operator=(const EchoClient&) = delete;

  void run(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);

    addr_ = addr;
    const int64_t start_ns = context_.now(ClockType::realtime);
    for (long i = 0; i < options_.connections && !failed(); ++i) connect_one();

    bool stop = false;
    aioloop::Timer deadline(context_, ClockType::realtime, aioloop::Scale::ns,
                            [&stop] { stop = true; });
    deadline.mod(start_ns + static_cast<int64_t>(options_.seconds * aioloop::kNsPerSecond));
    // In a soak, a request whose echo never comes would otherwise go
    // unnoticed among the others: look for one every second.
    aioloop::Timer lost_check;
    if (options_.soak > 0) {
      lost_check = aioloop::Timer(context_, ClockType::realtime, aioloop::Scale::ns, [&] {
        find_lost_requests();
        lost_check.mod(context_.now(ClockType::realtime) + aioloop::kNsPerSecond);
      });
      lost_check.mod(start_ns + aioloop::kNsPerSecond);
    }
    while (!stop && !failed()) context_.poll(true);

    result_->elapsed_seconds =
        static_cast<double>(context_.now(ClockType::realtime) - start_ns) / aioloop::kNsPerSecond;
  }

 private:
  struct Connection {
    int fd = -1;
    bool connecting = true;
    bool writing = false;  // the registered interest
    std::vector<unsigned char> request;
    std::vector<unsigned char> response;
    size_t sent = 0;
    size_t received = 0;
    uint64_t sequence = 0;
    int64_t started_ns = 0;
    uint64_t requests_before_reconnect = 0;  // soak only
  };

  // A soak's churn: reconnect after 16 to 63 requests, and register the
  // handler anew every kReplaceEvery requests.
  static constexpr uint64_t kReplaceEvery = 8;
  static constexpr int64_t kLostAfterNs = 10 * aioloop::kNsPerSecond;

  bool failed() const { return !result_->error.empty(); }

  // Keeps the first error; the client then stops.
  void fail(std::string translated_message) {
    if (!failed()) result_->error = std::move(translated_message);
  }

  void connect_one() {
    auto connection = std::make_unique<Connection>();
    Connection& c = *connection;
    connections_.push_back(std::move(connection));
    c.request.resize(static_cast<size_t>(options_.size));
    c.response.resize(static_cast<size_t>(options_.size));
    open_socket(c);
  }

  void open_socket(Connection& c) {
    c.connecting = true;
    c.writing = false;
    c.started_ns = context_.now(ClockType::realtime);
    c.requests_before_reconnect = 16 + next_random() % 48;
    ++result_->connects;
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      fail(format(_("cannot create a socket: %s"), std::strerror(errno)));
      return;
    }
    set_nodelay(c.fd);
    // A non-blocking connect completes in the background; the socket turns
    // writable when it has, and SO_ERROR then says how it went.
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) < 0 &&
        errno != EINPROGRESS) {
      fail(format(_("cannot connect to the server: %s"), std::strerror(errno)));
      return;
    }
    set_interest(c, true);
  }

  void set_interest(Connection& c, bool writing) {
    FdHandler handler;
    Connection* conn = &c;
    handler.read = [this, conn] { on_readable(*conn); };
    if (writing) handler.write = [this, conn] { on_writable(*conn); };
    if (std::error_code ec = context_.set_fd_handler(c.fd, std::move(handler))) {
      fail(format(_("cannot watch a client socket: %s"), ec.message().c_str()));
      return;
    }
    c.writing = writing;
  }

  void on_writable(Connection& c) {
    if (c.connecting) {
      int error = 0;
      socklen_t len = sizeof error;
      if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0) error = errno;
      if (error != 0) {
        fail(format(_("cannot connect to the server: %s"), std::strerror(error)));
        return;
      }
      c.connecting = false;
      start_request(c);
      return;
    }
    send_request(c);
  }

  void start_request(Connection& c) {
    // A pattern that differs per connection and per request, so an echo of
    // the wrong bytes, or of bytes from another request, is caught.
    const auto seed = static_cast<unsigned>(c.fd * 131 + static_cast<int>(c.sequence));
    for (size_t i = 0; i < c.request.size(); ++i) {
      c.request[i] = static_cast<unsigned char>(seed + i * 7);
    }
    c.sent = 0;
    c.received = 0;
    c.started_ns = context_.now(ClockType::realtime);
    send_request(c);
  }

  void send_request(Connection& c) {
    while (c.sent < c.request.size()) {
      ssize_t n = ::send(c.fd, c.request.data() + c.sent, c.request.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        fail(format(_("cannot send to the server: %s"), std::strerror(errno)));
        return;
      }
      c.sent += static_cast<size_t>(n);
    }
    const bool need_write = c.sent < c.request.size();
    if (need_write != c.writing) set_interest(c, need_write);
  }

  void on_readable(Connection& c) {
    if (c.connecting) return;  // a refused connect shows up on the write side
    ssize_t n = ::recv(c.fd, c.response.data() + c.received, c.response.size() - c.received, 0);
    if (n == 0) {
      fail(_("the server closed a connection"));
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      fail(format(_("cannot receive from the server: %s"), std::strerror(errno)));
      return;
    }
    c.received += static_cast<size_t>(n);
    if (c.received > c.sent) {
      fail(_("the server sent more bytes than it was sent"));
      return;
    }
    if (c.received < c.response.size()) return;
    if (c.response != c.request) {
      fail(_("the echo differs from the request"));
      return;
    }
    result_->latency.record(
        static_cast<uint64_t>(context_.now(ClockType::realtime) - c.started_ns));
    ++c.sequence;
    if (options_.soak > 0 && --c.requests_before_reconnect == 0) {
      reconnect(c);
      return;
    }
    if (options_.soak > 0 && c.sequence % kReplaceEvery == 0) {
      set_interest(c, c.writing);  // the same interest, a new registration
      ++result_->handler_replacements;
    }
    start_request(c);
  }

  // Closes the connection between two requests (nothing is in flight, so
  // nothing can be lost) and opens a new one in its place. Runs inside the
  // connection's own read callback: removing that handler there is safe.
  void reconnect(Connection& c) {
    context_.remove_fd_handler(c.fd);
    close_fd(c.fd);
    c.fd = -1;
    open_socket(c);
  }

  void find_lost_requests() {
    const int64_t now = context_.now(ClockType::realtime);
    for (const auto& c : connections_) {
      if (c->fd >= 0 && now - c->started_ns > kLostAfterNs) {
        fail(format(_("a request got no echo within %lld s: it was lost"),
                    static_cast<long long>(kLostAfterNs / aioloop::kNsPerSecond)));
        return;
      }
    }
  }

  // A small xorshift generator: the churn need not be unpredictable, only
  // varied, and the same in every run.
  uint64_t next_random() {
    random_state_ ^= random_state_ << 13;
    random_state_ ^= random_state_ >> 7;
    random_state_ ^= random_state_ << 17;
    return random_state_;
  }

  Context& context_;
  const Options& options_;
  ClientResult* result_;
  std::vector<std::unique_ptr<Connection>> connections_;
  sockaddr_in addr_{};
  uint64_t random_state_ = 0x9e3779b97f4a7c15;
};

void run_client(const Options& options, uint16_t port, std::shared_ptr<Context> server,
                bool* server_stop, ClientResult* result) {
  try {
    auto context = Context::create({.backend = options.backend});
    {
      EchoClient client(*context, options, result);
      client.run(port);
    }
    result->stats = context->stats();
  } catch (const std::exception& e) {
    result->error = e.what();
  }
  // The flag belongs to the server's thread; setting it there, from a
  // one-shot bottom half, also wakes the server's blocked poll().
  server->run_soon([server_stop] { *server_stop = true; });
}

// The loop's own counters explain the figures: iterations per request, and
// how many of them had to block in the kernel.
void print_loop_stats(bool server, const aioloop::Stats& stats) {
  // Two whole sentences rather than one with "server"/"client" pasted in,
  // so that translators can get the grammar right.
  const char* format_string =
      server
          ? _("server loop (%s): %llu iterations, %llu blocking waits, %llu handler callbacks\n")
          : _("client loop (%s): %llu iterations, %llu blocking waits, %llu handler callbacks\n");
  std::printf(format_string, std::string(aioloop::backend_name(stats.backend)).c_str(),
              static_cast<unsigned long long>(stats.iterations),
              static_cast<unsigned long long>(stats.blocking_waits),
              static_cast<unsigned long long>(stats.handlers_dispatched));
}

// What a soak measured besides the client's figures.
struct SoakReport {
  long rss_start_kib = -1;
  long rss_warm_kib = -1;
  long rss_end_kib = -1;
  double warm_up_seconds = 0;
  uint64_t accepted = 0;
  uint64_t closed = 0;
};

// Prints the soak's figures; false when a connection was lost.
bool report_soak(const SoakReport& soak, const ClientResult& result) {
  std::printf(_("soak: %llu requests over %llu connections, %llu handler replacements; "
                "the server accepted %llu connections and saw %llu close\n"),
              static_cast<unsigned long long>(result.latency.total()),
              static_cast<unsigned long long>(result.connects),
              static_cast<unsigned long long>(result.handler_replacements),
              static_cast<unsigned long long>(soak.accepted),
              static_cast<unsigned long long>(soak.closed));
  std::printf(_("soak: resident memory %ld KiB at the start, %ld KiB after %.0f s of warm-up, "
                "%ld KiB at the end: %+ld KiB since the warm-up\n"),
              soak.rss_start_kib, soak.rss_warm_kib, soak.warm_up_seconds, soak.rss_end_kib,
              soak.rss_end_kib - soak.rss_warm_kib);
  if (soak.accepted != soak.closed || soak.accepted != result.connects) {
    std::fprintf(stderr,
                 _("echo-server: soak: the client opened %llu connections, the server accepted "
                   "%llu and saw %llu close: connections were lost\n"),
                 static_cast<unsigned long long>(result.connects),
                 static_cast<unsigned long long>(soak.accepted),
                 static_cast<unsigned long long>(soak.closed));
    return false;
  }
  return true;
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
  try {
    context = Context::create({.backend = options.backend});
  } catch (const std::exception& e) {
    std::fprintf(stderr, _("echo-server: %s\n"), e.what());
    return 1;
  }

  ClientResult result;
  aioloop::Stats server_stats;
  SoakReport soak;
  {
    EchoServer server(*context);
    uint16_t port = 0;
    if (int err = server.start(&port); err < 0) {
      std::fprintf(stderr, _("echo-server: cannot listen on 127.0.0.1: %s\n"), std::strerror(-err));
      return 1;
    }
    std::printf(_("echo server on 127.0.0.1:%u, %s backend\n"), static_cast<unsigned>(port),
                std::string(aioloop::backend_name(context->backend())).c_str());
    std::printf(_("client: %ld connections, %ld-byte requests, %.1f s\n"), options.connections,
                options.size, options.seconds);
    std::fflush(stdout);

    // Memory is measured in the server's thread at three points: before any
    // traffic, after the warm-up (allocator pools and kernel buffers have
    // grown to their working size by then), and at the end.
    soak.rss_start_kib = resident_kib();
    const int64_t start_ns = context->now(ClockType::realtime);
    soak.warm_up_seconds = std::min(options.soak / 5, 60.0);
    aioloop::Timer warm_up(*context, ClockType::realtime, aioloop::Scale::ns,
                           [&soak] { soak.rss_warm_kib = resident_kib(); });
    if (options.soak > 0) {
      warm_up.mod(start_ns + static_cast<int64_t>(soak.warm_up_seconds * aioloop::kNsPerSecond));
    }

    bool stop = false;
    std::thread client(run_client, std::cref(options), port, context, &stop, &result);
    while (!stop) context->poll(true);
    client.join();
    if (options.soak > 0) {
      // The client has closed every socket: the server must see each one
      // close. Bounded, so that a lost hang-up fails instead of hanging.
      bool give_up = false;
      aioloop::Timer drain_limit(*context, ClockType::realtime, aioloop::Scale::ns,
                                 [&give_up] { give_up = true; });
      drain_limit.mod(context->now(ClockType::realtime) + 5 * aioloop::kNsPerSecond);
      while (server.open_connections() > 0 && !give_up) context->poll(true);
      soak.rss_end_kib = resident_kib();
      soak.accepted = server.accepted();
      soak.closed = server.closed();
    }
    server_stats = context->stats();
  }

  if (!result.error.empty()) {
    std::fprintf(stderr, _("echo-server: client: %s\n"), result.error.c_str());
    return 1;
  }
  const uint64_t requests = result.latency.total();
  if (requests == 0) {
    std::fprintf(stderr, _("echo-server: no request completed in %.3f s\n"),
                 result.elapsed_seconds);
    return 1;
  }
  std::printf(_("%llu requests in %.2f s: %.0f requests/s\n"),
              static_cast<unsigned long long>(requests), result.elapsed_seconds,
              static_cast<double>(requests) / result.elapsed_seconds);
  std::printf(_("latency (µs): p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f\n"),
              result.latency.percentile(50) / 1000, result.latency.percentile(90) / 1000,
              result.latency.percentile(99) / 1000, result.latency.percentile(99.9) / 1000);
  print_loop_stats(true, server_stats);
  print_loop_stats(false, result.stats);
  if (options.soak > 0) return report_soak(soak, result) ? 0 : 1;
  return 0;
}
