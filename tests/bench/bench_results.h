// SPDX-License-Identifier: MIT
// Every measurement of one run, kept so that the end of the run can set them
// side by side: a table of ratios (ours against the best peer and against
// the machine's limit), a JSON document for machines, and SVG plots.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

// One WORKLOADS line. param is -1 where WORKLOADS prints "-".
struct Result {
  std::string workload;
  std::string impl;
  std::string mode;
  int64_t param;
  double ns_per_op;
  int64_t ops;
  double paired_l3_ns = 0;  // L3 measured between its chunks (RoundTrips), or 0
  // W1 under GLib: GLib's cheapest equivalent (impl=glib mode=continue, an
  // idle source returning G_SOURCE_CONTINUE) run in the same thread between
  // its chunks, per callback; 0 for every other measurement.
  double paired_peer_ns = 0;
};

// The measurements reported so far, in report order (main thread only).
std::vector<Result>& results();

// One row of the comparison: an aioloop measurement, the cheapest peer
// (GLib or libuv) measuring the same thing, and the physical limit that
// bounds it, when there is one.
struct SummaryRow {
  const Result* ours;
  const Result* best_peer;  // null when no peer measured it
  const Result* limit;      // null when no limit applies
  // The peer's cost per operation to divide by: ours.paired_peer_ns when
  // there is one (best_peer is then GLib's continue line, if it ran), else
  // best_peer's own figure; 0 without either.
  double peer_ns = 0;
  bool peer_paired = false;
  // The limit's cost per operation to divide by: the L3 paired with our
  // measurement when there is one (RoundTrips), else limit's own figure.
  double limit_ns = 0;
  bool limit_paired = false;
  // W3 in a native blocking mode: the bare system calls of that monitor
  // (impl=limit workload=xfd, bench_floors.cpp), if measured.
  const Result* floor = nullptr;
  // ours over floor, each first divided by its own paired L3 when both
  // have one (they ran minutes apart, and the wake-up cost drifts).
  double over_floor = 0;
};

// One row per aioloop measurement, in report order.
std::vector<SummaryRow> summarize(const std::vector<Result>& all);

// Which limit bounds a workload in a mode ("eventfd", "spin", "wake"), if any:
// W2/W3 round trips are bounded by the kernel wake-up (L3) when they block
// and by the cache-line transfer (L2) when they busy-poll; W4 iterations by
// an eventfd write + read (L1); W1 and W5 have no physical counterpart.
std::optional<std::string_view> limit_for(std::string_view workload, std::string_view mode);

// Where and with what the run happened: kernel, CPU, vCPU count, library
// versions. Printed above the table, stored in the JSON and in the plots.
struct Machine {
  std::string kernel;
  std::string cpu;
  int cpus;
  std::string date;
  std::string libraries;  // "GLib 2.74.6, libuv 1.44.2, liburing 2.3"
};
Machine describe_machine();

// The table of ratios, for a person (stderr).
void print_summary(const std::vector<Result>& all, const Machine& machine);

// The whole run as one JSON document: machine, results, summary.
std::string to_json(const std::vector<Result>& all, const Machine& machine);

// Two plots in one SVG document: W4 cost against idle fd count per
// implementation and mode, and W2 round trip per implementation and mode,
// with the limits drawn in. Returns an empty string when the run measured
// neither.
std::string to_svg(const std::vector<Result>& all, const Machine& machine);

}  // namespace bench
