// SPDX-License-Identifier: MIT
#include "bench_results.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>

#include "bench_report.h"

namespace bench {

namespace {

bool is_peer(const Result& r) {
  return r.impl == "glib" || r.impl == "libuv";
}

bool busy_polls(std::string_view mode) {
  return mode.find("busypoll") != std::string_view::npos;
}

// What a peer must have measured to stand beside one of our figures. W5's
// two modes are different operations; everywhere else the peers' modes are
// their ways of doing the same work (GLib's rearm and continue for W1, their
// one blocking mode for W2-W4), so the cheapest one is the fair comparison.
bool comparable(const Result& ours, const Result& peer) {
  if (peer.workload != ours.workload || peer.param != ours.param) return false;
  if (ours.workload == "timers") return peer.mode == ours.mode;
  return true;
}

const char* workload_id(std::string_view name) {
  static constexpr std::pair<std::string_view, const char*> kIds[] = {
      {"bh", "W1"},     {"xbh", "W2"},     {"xfd", "W3"},  {"idlefds", "W4"},
      {"timers", "W5"}, {"eventfd", "L1"}, {"spin", "L2"}, {"wake", "L3"},
  };
  for (const auto& [n, id] : kIds) {
    if (n == name) return id;
  }
  return "?";
}

std::string read_first_line_with(const char* path, std::string_view key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(key)) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) return line;
      size_t start = line.find_first_not_of(" \t", colon + 1);
      return start == std::string::npos ? std::string() : line.substr(start);
    }
  }
  return {};
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", value);
  return text;
}

void append_result_json(std::string& out, const Result& r) {
  out += "{\"workload\":";
  append_json_string(out, r.workload);
  out += ",\"impl\":";
  append_json_string(out, r.impl);
  out += ",\"mode\":";
  append_json_string(out, r.mode);
  out += ",\"param\":";
  out += r.param < 0 ? "null" : std::to_string(r.param);
  out += ",\"ns_per_op\":" + number(r.ns_per_op);
  out += ",\"ops\":" + std::to_string(r.ops);
  if (r.paired_l3_ns > 0) out += ",\"paired_l3_ns\":" + number(r.paired_l3_ns);
  if (r.paired_peer_ns > 0) out += ",\"paired_peer_ns\":" + number(r.paired_peer_ns);
  out += "}";
}

}  // namespace

std::vector<Result>& results() {
  static std::vector<Result> all;
  return all;
}

std::optional<std::string_view> limit_for(std::string_view workload, std::string_view mode) {
  if (workload == "xbh" || workload == "xfd") {
    return busy_polls(mode) ? std::string_view("spin") : std::string_view("wake");
  }
  if (workload == "idlefds") return std::string_view("eventfd");
  return std::nullopt;
}

std::vector<SummaryRow> summarize(const std::vector<Result>& all) {
  std::vector<SummaryRow> rows;
  for (const Result& ours : all) {
    if (ours.impl != "aioloop") continue;
    SummaryRow row{&ours, nullptr, nullptr};
    if (ours.paired_peer_ns > 0) {
      // The peer measured at the same moments beats any measured minutes
      // away: GLib's iteration cost drifts with the machine as ours does.
      row.peer_paired = true;
      row.peer_ns = ours.paired_peer_ns;
      for (const Result& peer : all) {
        if (peer.impl == "glib" && peer.workload == ours.workload && peer.mode == "continue") {
          row.best_peer = &peer;
        }
      }
    } else {
      for (const Result& peer : all) {
        if (!is_peer(peer) || !comparable(ours, peer)) continue;
        if (!row.best_peer || peer.ns_per_op < row.best_peer->ns_per_op) row.best_peer = &peer;
      }
      if (row.best_peer) row.peer_ns = row.best_peer->ns_per_op;
    }
    if (auto limit = limit_for(ours.workload, ours.mode)) {
      for (const Result& l : all) {
        if (l.impl == "limit" && l.workload == *limit) row.limit = &l;
      }
    }
    if (row.limit) {
      row.limit_paired = row.limit->workload == "wake" && ours.paired_l3_ns > 0;
      row.limit_ns = row.limit_paired ? ours.paired_l3_ns : row.limit->ns_per_op;
    }
    for (const Result& f : all) {
      if (f.impl == "limit" && f.workload == ours.workload && f.mode == ours.mode) row.floor = &f;
    }
    if (row.floor) {
      row.over_floor = ours.ns_per_op / row.floor->ns_per_op;
      if (ours.paired_l3_ns > 0 && row.floor->paired_l3_ns > 0) {
        row.over_floor *= row.floor->paired_l3_ns / ours.paired_l3_ns;
      }
    }
    rows.push_back(row);
  }
  return rows;
}

Machine describe_machine() {
  Machine m;
  utsname names{};
  if (uname(&names) == 0) m.kernel = std::string(names.sysname) + " " + names.release;
  m.cpu = read_first_line_with("/proc/cpuinfo", "model name");
  m.cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  char date[32] = "";
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  if (gmtime_r(&now, &utc)) std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &utc);
  m.date = date;
#ifdef AIOLOOP_BENCH_LIBRARY_VERSIONS
  m.libraries = AIOLOOP_BENCH_LIBRARY_VERSIONS;
#endif
  return m;
}

void print_summary(const std::vector<Result>& all, const Machine& machine) {
  const std::vector<SummaryRow> rows = summarize(all);
  if (rows.empty()) return;
  std::fputc('\n', stderr);
  note("summary: %s, %d CPUs, %s; %s; %s", machine.cpu.c_str(), machine.cpus,
       machine.kernel.c_str(), machine.libraries.c_str(), machine.date.c_str());
  note("ours/peer < 1: aioloop is cheaper than the best of GLib and libuv at the same work;");
  note("ours/limit: aioloop's cost over the machine's own cost for that work (1.00 = at it);");
  note("  L3* is the L3 measured between the chunks of that very measurement.");
  note("  glib continue* (W1 under GLib) is GLib's g_idle run between its chunks, likewise.");
  note("ours/floor: W3 over its monitor's bare wait + read + write with no loop (bench_floors),");
  note("  or under GLib over the cheapest GSource doing W3 (bench_gsource_floor), each divided");
  note("  by its own L3* first.");
  note("%-3s %-8s %6s  %-20s %10s  %-16s %10s %9s  %-5s %10s %10s", "id", "workload", "param",
       "aioloop mode", "ns/op", "best peer", "ns/op", "ours/peer", "limit", "ours/limit",
       "ours/floor");
  for (const SummaryRow& row : rows) {
    const Result& r = *row.ours;
    const std::string param = r.param < 0 ? "-" : std::to_string(r.param);
    std::string peer = "-", peer_ns = "-", peer_ratio = "-";
    if (row.peer_paired) {
      peer = "glib continue*";
    } else if (row.best_peer) {
      peer = row.best_peer->impl + " " + row.best_peer->mode;
    }
    if (row.peer_ns > 0) {
      peer_ns = number(row.peer_ns);
      peer_ratio = number(r.ns_per_op / row.peer_ns);
    }
    std::string limit = row.limit ? workload_id(row.limit->workload) : "-";
    if (row.limit_paired) limit += "*";
    const std::string limit_ratio =
        row.limit ? number(r.ns_per_op / row.limit_ns) : std::string("-");
    const std::string floor_ratio = row.floor ? number(row.over_floor) : std::string("-");
    note("%-3s %-8s %6s  %-20s %10.2f  %-16s %10s %9s  %-5s %10s %10s", workload_id(r.workload),
         r.workload.c_str(), param.c_str(), r.mode.c_str(), r.ns_per_op, peer.c_str(),
         peer_ns.c_str(), peer_ratio.c_str(), limit.c_str(), limit_ratio.c_str(),
         floor_ratio.c_str());
  }
  for (const Result& f : all) {
    if (f.impl != "limit" || f.workload != "xfd" || f.paired_l3_ns <= 0) continue;
    const bool under_glib = f.mode.starts_with("gsource-");
    note("W3 floor %-16s %10.2f ns/op = %.2f x L3* (%.2f ns): no %s can do W3 for less",
         f.mode.c_str(), f.ns_per_op, f.ns_per_op / f.paired_l3_ns, f.paired_l3_ns,
         under_glib ? "GSource" : "loop");
  }
}

std::string to_json(const std::vector<Result>& all, const Machine& machine) {
  std::string out = "{\n  \"machine\": {\"kernel\":";
  append_json_string(out, machine.kernel);
  out += ",\"cpu\":";
  append_json_string(out, machine.cpu);
  out += ",\"cpus\":" + std::to_string(machine.cpus) + ",\"date\":";
  append_json_string(out, machine.date);
  out += ",\"libraries\":";
  append_json_string(out, machine.libraries);
  out += "},\n  \"results\": [";
  for (size_t i = 0; i < all.size(); ++i) {
    out += i ? ",\n    " : "\n    ";
    append_result_json(out, all[i]);
  }
  out += "\n  ],\n  \"summary\": [";
  const std::vector<SummaryRow> rows = summarize(all);
  for (size_t i = 0; i < rows.size(); ++i) {
    const SummaryRow& row = rows[i];
    out += i ? ",\n    " : "\n    ";
    out += "{\"ours\":";
    append_result_json(out, *row.ours);
    out += ",\"best_peer\":";
    if (row.best_peer) {
      append_result_json(out, *row.best_peer);
    } else {
      out += "null";
    }
    out += ",\"peer_paired\":";
    out += row.peer_paired ? "true" : "false";
    out += ",\"ours_over_peer\":";
    out += row.peer_ns > 0 ? number(row.ours->ns_per_op / row.peer_ns) : "null";
    out += ",\"limit\":";
    if (row.limit) {
      append_json_string(out, workload_id(row.limit->workload));
      out += ",\"limit_paired\":";
      out += row.limit_paired ? "true" : "false";
      out += ",\"ours_over_limit\":" + number(row.ours->ns_per_op / row.limit_ns);
    } else {
      out += "null,\"ours_over_limit\":null";
    }
    out += ",\"ours_over_floor\":";
    out += row.floor ? number(row.over_floor) : "null";
    out += "}";
  }
  out += "\n  ]\n}\n";
  return out;
}

}  // namespace bench
