// SPDX-License-Identifier: MIT
// The comparison the benchmark prints at the end of a run: which peer and
// which limit each of our figures is set against, and that the JSON and SVG
// carry every measurement.
#include "bench_results.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bench_report.h"

namespace bench {
namespace {

std::vector<Result> SampleRun() {
  return {
      {"bh", "aioloop", "epoll", -1, 25, 100},
      {"bh", "aioloop", "gsource-epoll", -1, 1500, 100, 0, 1400},
      {"xbh", "aioloop", "epoll", -1, 24000, 100},
      {"xbh", "aioloop", "epoll+busypoll", -1, 1000, 100},
      {"idlefds", "aioloop", "epoll", 0, 4300, 100},
      {"idlefds", "aioloop", "epoll", 10000, 4400, 100},
      {"timers", "aioloop", "rearm", -1, 41, 100},
      {"bh", "glib", "rearm", -1, 2000, 100},
      {"bh", "glib", "continue", -1, 1430, 100},
      {"bh", "libuv", "continue", -1, 1500, 100},
      {"xbh", "glib", "block", -1, 33000, 100},
      {"xbh", "libuv", "block", -1, 28000, 100},
      {"idlefds", "glib", "poll", 0, 9000, 100},
      {"idlefds", "glib", "poll", 10000, 1600000, 100},
      {"idlefds", "libuv", "epoll", 10000, 4200, 100},
      {"timers", "glib", "arm_cancel", -1, 10, 100},  // a different operation
      {"timers", "libuv", "rearm", -1, 70, 100},
      {"eventfd", "limit", "-", -1, 2400, 100},
      {"spin", "limit", "-", -1, 750, 100},
      {"wake", "limit", "-", -1, 23000, 100},
      {"xfd", "aioloop", "epoll", -1, 26000, 100, 21000},
      {"xfd", "libuv", "epoll", -1, 30000, 100, 22000},
      {"xfd", "limit", "epoll", -1, 24000, 100, 20500},
      {"xfd", "limit", "poll", -1, 23500, 100, 20500},
      {"xfd", "aioloop", "gsource-epoll", -1, 28000, 100, 22000},
      {"xfd", "limit", "gsource-epoll", -1, 27000, 100, 21500},
  };
}

const SummaryRow& RowFor(const std::vector<SummaryRow>& rows, std::string_view workload,
                         std::string_view mode, int64_t param = -1) {
  for (const SummaryRow& row : rows) {
    if (row.ours->workload == workload && row.ours->mode == mode && row.ours->param == param)
      return row;
  }
  ADD_FAILURE() << "no row for " << workload << " " << mode;
  return rows.front();
}

TEST(BenchSummary, OneRowPerAioloopMeasurement) {
  const auto run = SampleRun();
  EXPECT_EQ(summarize(run).size(), 9u);
}

TEST(BenchSummary, BestPeerIsTheCheapestOfAnyPeerMode) {
  const auto run = SampleRun();
  const auto rows = summarize(run);
  const SummaryRow& bh = RowFor(rows, "bh", "epoll");
  ASSERT_NE(bh.best_peer, nullptr);
  EXPECT_EQ(bh.best_peer->impl, "glib");
  EXPECT_EQ(bh.best_peer->mode, "continue");
  EXPECT_EQ(bh.limit, nullptr);
  EXPECT_EQ(RowFor(rows, "xbh", "epoll").best_peer->impl, "libuv");
}

TEST(BenchSummary, W1UnderGLibIsSetAgainstTheGIdleRunBetweenItsChunks) {
  const auto run = SampleRun();
  const auto rows = summarize(run);
  const SummaryRow& paired = RowFor(rows, "bh", "gsource-epoll");
  EXPECT_TRUE(paired.peer_paired);
  EXPECT_EQ(paired.peer_ns, 1400);  // not the separate run's 1430
  ASSERT_NE(paired.best_peer, nullptr);
  EXPECT_EQ(paired.best_peer->impl, "glib");
  EXPECT_EQ(paired.best_peer->mode, "continue");
  // Without a paired figure, the cheapest peer's own.
  const SummaryRow& native = RowFor(rows, "bh", "epoll");
  EXPECT_FALSE(native.peer_paired);
  EXPECT_EQ(native.peer_ns, 1430);
}

TEST(BenchSummary, IdleFdsComparedAtTheSameFdCount) {
  const auto run = SampleRun();
  const auto rows = summarize(run);
  EXPECT_EQ(RowFor(rows, "idlefds", "epoll", 0).best_peer->ns_per_op, 9000);
  EXPECT_EQ(RowFor(rows, "idlefds", "epoll", 10000).best_peer->ns_per_op, 4200);
  EXPECT_EQ(RowFor(rows, "idlefds", "epoll", 10000).limit->workload, "eventfd");
}

TEST(BenchSummary, TimersOnlyAgainstTheSameOperation) {
  const auto run = SampleRun();
  const auto rows = summarize(run);
  const SummaryRow& rearm = RowFor(rows, "timers", "rearm");
  ASSERT_NE(rearm.best_peer, nullptr);
  EXPECT_EQ(rearm.best_peer->impl, "libuv");
}

TEST(BenchSummary, BusyPollingIsBoundedByTheSpinLimitBlockingByTheWakeLimit) {
  const auto run = SampleRun();
  const auto rows = summarize(run);
  EXPECT_EQ(RowFor(rows, "xbh", "epoll").limit->workload, "wake");
  EXPECT_EQ(RowFor(rows, "xbh", "epoll+busypoll").limit->workload, "spin");
  EXPECT_FALSE(limit_for("timers", "rearm").has_value());
}

TEST(BenchSummary, BlockingRoundTripsAreSetAgainstTheirPairedL3) {
  const auto run = SampleRun();
  const auto rows = summarize(run);
  const SummaryRow& xfd = RowFor(rows, "xfd", "epoll");
  ASSERT_NE(xfd.limit, nullptr);
  EXPECT_TRUE(xfd.limit_paired);
  EXPECT_EQ(xfd.limit_ns, 21000);
  // Without a paired figure, the run's own L3.
  const SummaryRow& xbh = RowFor(rows, "xbh", "epoll");
  EXPECT_FALSE(xbh.limit_paired);
  EXPECT_EQ(xbh.limit_ns, 23000);
}

TEST(BenchSummary, W3FloorIsTheSameMonitors) {
  const auto run = SampleRun();
  const auto rows = summarize(run);
  const SummaryRow& xfd = RowFor(rows, "xfd", "epoll");
  ASSERT_NE(xfd.floor, nullptr);
  EXPECT_EQ(xfd.floor->ns_per_op, 24000);
  EXPECT_EQ(RowFor(rows, "xbh", "epoll").floor, nullptr);
  // Under GLib, the cheapest GSource measured beside it, not the bare
  // monitor: GLib's iteration is part of what no source can avoid.
  const SummaryRow& under_glib = RowFor(rows, "xfd", "gsource-epoll");
  ASSERT_NE(under_glib.floor, nullptr);
  EXPECT_EQ(under_glib.floor->ns_per_op, 27000);
  EXPECT_NEAR(under_glib.over_floor, (28000.0 / 22000) / (27000.0 / 21500), 1e-9);
}

TEST(RoundTrips, PairedL3IsMeasuredBetweenChunksAndLeftOutOfTheClock) {
  RoundTrips trips(100, 800, int64_t{60} * 1000 * 1000 * 1000, "test", /*pair_with_l3=*/true);
  trips.begin();
  while (trips.complete()) {
  }
  // Each L3 round trip puts a thread to sleep and wakes it: microseconds.
  // The round trips here do nothing, so if the pauses were counted they
  // would cost as much as L3 itself.
  EXPECT_GT(trips.paired_l3_ns(), 0);
  EXPECT_LT(trips.ns_per_op(), trips.paired_l3_ns() / 4);
  RoundTrips unpaired(100, 800, int64_t{60} * 1000 * 1000 * 1000, "test");
  unpaired.begin();
  while (unpaired.complete()) {
  }
  EXPECT_EQ(unpaired.paired_l3_ns(), 0);
}

TEST(BenchSummary, JsonCarriesEveryResultAndTheRatios) {
  const auto run = SampleRun();
  const Machine machine{"Linux 6.18", "a \"quoted\" CPU", 2, "2026-11-23", "GLib 2.74"};
  const std::string json = to_json(run, machine);
  size_t count = 0;
  for (size_t at = json.find("\"workload\""); at != std::string::npos;
       at = json.find("\"workload\"", at + 1)) {
    ++count;
  }
  // Every result once, plus each summary row's own and peer's copy (every
  // one of the nine rows has a peer here).
  EXPECT_EQ(count, run.size() + 9 + 9);
  EXPECT_NE(json.find("\"paired_l3_ns\":21000.00"), std::string::npos);
  EXPECT_NE(json.find("\"ours_over_limit\":1.24"), std::string::npos);  // 26000 / 21000
  // (26000 / 21000) / (24000 / 20500): both against their own paired L3.
  EXPECT_NE(json.find("\"ours_over_floor\":1.06"), std::string::npos);
  EXPECT_NE(json.find("\"ours_over_peer\":0.02"), std::string::npos);  // 25 / 1430
  EXPECT_NE(json.find("\"paired_peer_ns\":1400.00"), std::string::npos);
  EXPECT_NE(json.find("\"peer_paired\":true,\"ours_over_peer\":1.07"),
            std::string::npos);  // 1500 / 1400
  EXPECT_NE(json.find("a \\\"quoted\\\" CPU"), std::string::npos);
}

TEST(BenchSummary, SvgHasALinePerW4SeriesAndABarPerW2Mode) {
  const auto run = SampleRun();
  const std::string svg = to_svg(run, Machine{"Linux", "cpu", 2, "today", "GLib"});
  auto occurrences = [&](std::string_view what) {
    size_t n = 0;
    for (size_t at = svg.find(what); at != std::string::npos; at = svg.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(occurrences("<polyline"), 3u);  // aioloop epoll, glib poll, libuv epoll
  EXPECT_EQ(occurrences("<rect x="), 4u);   // two of ours, glib, libuv
  EXPECT_NE(svg.find("L1 eventfd"), std::string::npos);
  EXPECT_NE(svg.find("L3 wake"), std::string::npos);
  EXPECT_TRUE(to_svg({}, Machine{}).empty());
}

}  // namespace
}  // namespace bench
