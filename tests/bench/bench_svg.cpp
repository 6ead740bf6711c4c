// SPDX-License-Identifier: MIT
// The plots of a run as one SVG document, written by hand so that the
// benchmark needs no plotting package. Both plots use logarithmic cost axes:
// the figures span four orders of magnitude (busy-polled round trips of a few
// hundred ns, GLib's 10,000-fd iteration of over a millisecond).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench_results.h"

namespace bench {

namespace {

constexpr int kWidth = 960;
constexpr int kPlotLeft = 90;
constexpr int kPlotRight = 700;  // the legend sits right of this
constexpr int kBarLabelWidth = 210;

std::string escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string fmt(const char* format, auto... args) {
  char text[512];
  std::snprintf(text, sizeof text, format, args...);
  return text;
}

// A human label for a cost: 850 ns, 4.3 us, 1.6 ms.
std::string cost_label(double ns) {
  if (ns >= 1e6) return fmt("%.3g ms", ns / 1e6);
  if (ns >= 1e3) return fmt("%.3g us", ns / 1e3);
  return fmt("%.3g ns", ns);
}

// Peers keep fixed colours so they are recognisable in both plots; aioloop's
// modes take the rest of the palette in order of appearance.
class Palette {
 public:
  std::string colour(const std::string& impl, const std::string& series) {
    if (impl == "glib") return "#e6550d";
    if (impl == "libuv") return "#b30000";
    auto [it, inserted] = assigned_.try_emplace(series, "");
    if (inserted) {
      static constexpr const char* kOurs[] = {"#1f77b4", "#2ca02c", "#17becf", "#9467bd",
                                              "#8c564b", "#bcbd22", "#7f7f7f", "#e377c2",
                                              "#393b79", "#637939", "#843c39", "#5254a3"};
      it->second = kOurs[next_++ % std::size(kOurs)];
    }
    return it->second;
  }

 private:
  std::map<std::string, std::string> assigned_;
  size_t next_ = 0;
};

// A logarithmic axis over whole decades that cover [low, high].
struct LogAxis {
  double low_decade;
  double high_decade;
  double from;  // pixel of low_decade
  double to;    // pixel of high_decade

  static LogAxis covering(double low, double high, double from, double to) {
    double lo = std::floor(std::log10(std::max(low, 1.0)));
    double hi = std::ceil(std::log10(std::max(high, 1.0)));
    if (hi <= lo) hi = lo + 1;
    return {lo, hi, from, to};
  }
  double at(double value) const {
    const double t = (std::log10(std::max(value, 1.0)) - low_decade) / (high_decade - low_decade);
    return from + t * (to - from);
  }
};

const Result* find_limit(const std::vector<Result>& all, std::string_view name) {
  for (const Result& r : all) {
    if (r.impl == "limit" && r.workload == name) return &r;
  }
  return nullptr;
}

std::string series_name(const Result& r) {
  return r.impl + " " + r.mode;
}

// W4: one line per implementation and mode over the idle fd counts, which
// sit at even spacing (0, 64, 1024, 10000 are not plottable on one log axis).
int plot_idle_fds(std::string& svg, const std::vector<Result>& all, Palette& palette, int top) {
  std::vector<int64_t> params;
  std::map<std::string, std::vector<const Result*>> series;
  std::vector<std::string> order;
  double low = 1e300, high = 0;
  for (const Result& r : all) {
    if (r.workload != "idlefds") continue;
    if (std::find(params.begin(), params.end(), r.param) == params.end()) params.push_back(r.param);
    auto [it, inserted] = series.try_emplace(series_name(r));
    if (inserted) order.push_back(series_name(r));
    it->second.push_back(&r);
    low = std::min(low, r.ns_per_op);
    high = std::max(high, r.ns_per_op);
  }
  if (series.empty()) return top;
  const Result* l1 = find_limit(all, "eventfd");
  if (l1) low = std::min(low, l1->ns_per_op);
  std::sort(params.begin(), params.end());

  const int height = 360;
  const int plot_top = top + 40, plot_bottom = top + height - 40;
  svg +=
      fmt("<text x='%d' y='%d' class='title'>W4 idlefds: cost of one iteration against the "
          "number of idle fds registered</text>\n",
          kPlotLeft, top + 20);
  const LogAxis y = LogAxis::covering(low, high, plot_bottom, plot_top);
  for (double d = y.low_decade; d <= y.high_decade; d += 1) {
    const double py = y.at(std::pow(10, d));
    svg += fmt("<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' class='grid'/>\n", kPlotLeft, py,
               kPlotRight, py);
    svg += fmt("<text x='%d' y='%.1f' class='tick' text-anchor='end'>%s</text>\n", kPlotLeft - 6,
               py + 4, cost_label(std::pow(10, d)).c_str());
  }
  auto x_of = [&](int64_t param) {
    const auto index = std::find(params.begin(), params.end(), param) - params.begin();
    const double span = kPlotRight - kPlotLeft - 60;
    return kPlotLeft + 30 +
           (params.size() == 1
                ? span / 2
                : span * static_cast<double>(index) / static_cast<double>(params.size() - 1));
  };
  for (int64_t p : params) {
    svg += fmt("<text x='%.1f' y='%d' class='tick' text-anchor='middle'>%lld</text>\n", x_of(p),
               plot_bottom + 18, static_cast<long long>(p));
  }
  svg +=
      fmt("<text x='%d' y='%d' class='tick' text-anchor='middle'>idle fds "
          "(each a FIFO without writer)</text>\n",
          (kPlotLeft + kPlotRight) / 2, plot_bottom + 34);
  if (l1) {
    const double py = y.at(l1->ns_per_op);
    svg += fmt("<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' class='limit'/>\n", kPlotLeft, py,
               kPlotRight, py);
    // Below the line: every loop costs more than L1, so that space is free.
    svg +=
        fmt("<text x='%d' y='%.1f' class='tick' text-anchor='end'>L1 eventfd write+read "
            "%s</text>\n",
            kPlotRight - 4, py + 14, cost_label(l1->ns_per_op).c_str());
  }
  int legend_y = plot_top;
  for (const std::string& name : order) {
    const auto& points = series[name];
    const std::string colour = palette.colour(points.front()->impl, name);
    std::string path;
    for (const Result* r : points) {
      path += fmt("%.1f,%.1f ", x_of(r->param), y.at(r->ns_per_op));
      svg +=
          fmt("<circle cx='%.1f' cy='%.1f' r='3' fill='%s'><title>%s, %lld fds: %.0f "
              "ns</title></circle>\n",
              x_of(r->param), y.at(r->ns_per_op), colour.c_str(), escape(name).c_str(),
              static_cast<long long>(r->param), r->ns_per_op);
    }
    // Our GSource modes are dashed: the same monitor as the solid line of
    // the same name, driven through a GMainLoop.
    const char* dash = points.front()->mode.starts_with("gsource") ? "5 3" : "none";
    svg +=
        fmt("<polyline points='%s' fill='none' stroke='%s' stroke-width='2' "
            "stroke-dasharray='%s'/>\n",
            path.c_str(), colour.c_str(), dash);
    svg +=
        fmt("<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='%s' stroke-width='3' "
            "stroke-dasharray='%s'/>\n",
            kPlotRight + 20, legend_y - 4, kPlotRight + 40, legend_y - 4, colour.c_str(), dash);
    svg += fmt("<text x='%d' y='%d' class='tick'>%s</text>\n", kPlotRight + 46, legend_y,
               escape(name).c_str());
    legend_y += 16;
  }
  return std::max(top + height, legend_y + 10);
}

// W2: one bar per implementation and mode, with the two limits that bound a
// cross-thread round trip: L3 (a kernel wake-up) for blocking loops and L2
// (a cache-line transfer) for busy polling.
int plot_cross_thread(std::string& svg, const std::vector<Result>& all, Palette& palette, int top) {
  std::vector<const Result*> bars;
  double low = 1e300, high = 0;
  for (const Result& r : all) {
    if (r.workload != "xbh") continue;
    bars.push_back(&r);
    low = std::min(low, r.ns_per_op);
    high = std::max(high, r.ns_per_op);
  }
  if (bars.empty()) return top;
  const Result* l2 = find_limit(all, "spin");
  const Result* l3 = find_limit(all, "wake");
  for (const Result* l : {l2, l3}) {
    if (l) low = std::min(low, l->ns_per_op), high = std::max(high, l->ns_per_op);
  }
  const int bar_height = 18, gap = 6;
  const int plot_top = top + 56;  // room for the limits' labels under the title
  const int plot_bottom = plot_top + static_cast<int>(bars.size()) * (bar_height + gap);
  const int left = kBarLabelWidth + 10, right = kWidth - 40;
  svg +=
      fmt("<text x='%d' y='%d' class='title'>W2 xbh: cross-thread bottom-half round trip "
          "(lower is better)</text>\n",
          kPlotLeft, top + 20);
  const LogAxis x = LogAxis::covering(low, high, left, right);
  for (double d = x.low_decade; d <= x.high_decade; d += 1) {
    const double px = x.at(std::pow(10, d));
    svg += fmt("<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' class='grid'/>\n", px, plot_top - 6, px,
               plot_bottom);
    svg += fmt("<text x='%.1f' y='%d' class='tick' text-anchor='middle'>%s</text>\n", px,
               plot_bottom + 16, cost_label(std::pow(10, d)).c_str());
  }
  int y = plot_top;
  for (const Result* r : bars) {
    const std::string name = series_name(*r);
    const std::string colour = palette.colour(r->impl, name);
    const double width = std::max(1.0, x.at(r->ns_per_op) - left);
    svg += fmt("<text x='%d' y='%d' class='tick' text-anchor='end'>%s</text>\n", left - 6,
               y + bar_height - 5, escape(name).c_str());
    svg +=
        fmt("<rect x='%d' y='%d' width='%.1f' height='%d' fill='%s'><title>%s: %.0f "
            "ns</title></rect>\n",
            left, y, width, bar_height, colour.c_str(), escape(name).c_str(), r->ns_per_op);
    svg += fmt("<text x='%.1f' y='%d' class='tick'>%s</text>\n", left + width + 4,
               y + bar_height - 5, cost_label(std::round(r->ns_per_op)).c_str());
    y += bar_height + gap;
  }
  for (auto [limit, label] : {std::pair{l2, "L2 spin"}, std::pair{l3, "L3 wake"}}) {
    if (!limit) continue;
    const double px = x.at(limit->ns_per_op);
    svg += fmt("<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' class='limit'/>\n", px, plot_top - 10, px,
               plot_bottom);
    svg += fmt("<text x='%.1f' y='%d' class='tick' text-anchor='middle'>%s %s</text>\n", px,
               plot_top - 14, label, cost_label(std::round(limit->ns_per_op)).c_str());
  }
  return plot_bottom + 30;
}

}  // namespace

std::string to_svg(const std::vector<Result>& all, const Machine& machine) {
  Palette palette;
  std::string body;
  int bottom = plot_idle_fds(body, all, palette, 50);
  bottom = plot_cross_thread(body, all, palette, bottom + 10);
  if (bottom <= 60) return {};
  std::string svg =
      fmt("<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' viewBox='0 0 %d %d' "
          "font-family='sans-serif'>\n",
          kWidth, bottom + 10, kWidth, bottom + 10);
  svg +=
      "<style>.title{font-size:15px;font-weight:bold}.tick{font-size:11px;fill:#333}"
      ".grid{stroke:#ddd;stroke-width:1}.limit{stroke:#000;stroke-width:1.5;"
      "stroke-dasharray:6 4}</style>\n";
  svg += fmt("<rect width='%d' height='%d' fill='white'/>\n", kWidth, bottom + 10);
  svg += fmt("<text x='%d' y='22' class='title'>aioloop-bench, %s</text>\n", kPlotLeft,
             escape(machine.date).c_str());
  svg += fmt("<text x='%d' y='40' class='tick'>%s, %d CPUs, %s; %s</text>\n", kPlotLeft,
             escape(machine.cpu).c_str(), machine.cpus, escape(machine.kernel).c_str(),
             escape(machine.libraries).c_str());
  svg += body;
  svg += "</svg>\n";
  return svg;
}

}  // namespace bench
