// SPDX-License-Identifier: MIT
// The benchmark program: every workload of WORKLOADS.md for aioloop (natively
// and as a GSource under GLib), GLib, libuv (when built with it) and the
// machine's limits, in one process run.
//
//   aioloop-bench [--quick] [--only=W1,W5,L1] [--backend=poll,epoll,io_uring]
//                 [--impl=aioloop,glib,libuv,limit] [--param=0,10000]
//                 [--json] [--svg=FILE] [--no-summary]
//
// --param picks W4's idle fd counts.
//
// stdout carries only the WORKLOADS lines (or, with --json, one JSON document
// of the whole run); everything else goes to stderr, including the closing
// table of ratios. --svg writes the plots of the run to FILE.
#include <malloc.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "bench_report.h"
#include "bench_results.h"

namespace {

// Workload ids with the names WORKLOADS.md prints; --only accepts either.
constexpr std::pair<std::string_view, std::string_view> kWorkloads[] = {
    {"W1", "bh"},     {"W2", "xbh"},     {"W3", "xfd"},  {"W4", "idlefds"},
    {"W5", "timers"}, {"L1", "eventfd"}, {"L2", "spin"}, {"L3", "wake"},
};

std::vector<std::string> split(std::string_view list) {
  std::vector<std::string> items;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    if (!item.empty()) items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return items;
}

bool normalize_workload(std::string& item) {
  std::string upper = item;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  for (const auto& [id, name] : kWorkloads) {
    if (upper == id || item == name) {
      item = std::string(id);
      return true;
    }
  }
  return false;
}

int usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s [--quick] [--only=W1,...,L3] [--backend=poll,epoll,io_uring] "
               "[--impl=aioloop,glib,libuv,limit] [--param=N,...] [--json] [--svg=FILE] "
               "[--no-summary]\n",
               program);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // Keep freed memory in the process instead of trimming it back to the
  // kernel: otherwise whichever implementation runs after a large free pays
  // page faults on fresh memory (tens of microseconds per page on this
  // paravirtualised MMU) and the figure measures the run order, not the
  // loop. Every implementation gets the same steady-state allocator.
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  bench::Options options;
  bool json = false;
  bool summary = true;
  std::string svg_path;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quick") {
      options.quick = true;
    } else if (arg.starts_with("--only=")) {
      options.only = split(arg.substr(7));
      for (std::string& item : options.only) {
        if (!normalize_workload(item)) {
          std::fprintf(stderr, "unknown workload '%s'\n", item.c_str());
          return usage(argv[0]);
        }
      }
    } else if (arg.starts_with("--backend=")) {
      options.backends = split(arg.substr(10));
    } else if (arg.starts_with("--param=")) {
      for (const std::string& item : split(arg.substr(8))) {
        char* end = nullptr;
        const long value = std::strtol(item.c_str(), &end, 10);
        if (*end != '\0' || value < 0 || value > 1000000) return usage(argv[0]);
        options.params.push_back(static_cast<int>(value));
      }
    } else if (arg.starts_with("--impl=")) {
      options.impls = split(arg.substr(7));
    } else if (arg == "--json") {
      json = true;
    } else if (arg.starts_with("--svg=") && arg.size() > 6) {
      svg_path = arg.substr(6);
    } else if (arg == "--no-summary") {
      summary = false;
    } else {
      return usage(argv[0]);
    }
  }

  bench::print_lines(!json);
  bench::raise_fd_limit();
  const bench::Counts counts = bench::counts_for(options);
  try {
    if (options.wants_impl("aioloop")) {
      bench::run_aioloop(options, counts);
      bench::run_gsource(options, counts);
    }
    if (options.wants_impl("glib")) bench::run_glib(options, counts);
    if (options.wants_impl("libuv")) bench::run_libuv(options, counts);
    if (options.wants_impl("limit")) bench::run_limits(options, counts);
  } catch (const std::exception& e) {
    bench::note("benchmark failed: %s", e.what());
    return 1;
  }

  const bench::Machine machine = bench::describe_machine();
  if (summary) bench::print_summary(bench::results(), machine);
  if (json) std::fputs(bench::to_json(bench::results(), machine).c_str(), stdout);
  if (!svg_path.empty()) {
    const std::string svg = bench::to_svg(bench::results(), machine);
    std::FILE* out = std::fopen(svg_path.c_str(), "w");
    if (!out || std::fputs(svg.c_str(), out) < 0 || std::fclose(out) != 0) {
      bench::note("cannot write %s", svg_path.c_str());
      return 1;
    }
    bench::note("plots written to %s", svg_path.c_str());
  }
  return 0;
}
