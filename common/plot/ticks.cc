#include "common/plot/ticks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace sweepq::plot {

double NiceNumber(double x, bool round) {
  if (!(x > 0) || !std::isfinite(x)) return 1;
  double exponent = std::floor(std::log10(x));
  double power = std::pow(10.0, exponent);
  double fraction = x / power;  // in [1, 10)
  double nice;
  if (round) {
    nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10;
  } else {
    nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  }
  return nice * power;
}

Ticks NiceTicks(double lo, double hi, int target, bool integers) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (lo > hi) std::swap(lo, hi);
  if (lo == hi) {
    // One value: a range around it that still shows its magnitude.
    double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    if (integers) pad = std::max(pad, 1.0);
    lo -= pad;
    hi += pad;
  }
  target = std::max(target, 2);
  // Among the nice steps near range / (target - 1), take the one whose
  // ticks waste the least room beyond the data while giving about `target`
  // ticks (plain Heckbert rounding can double the axis: 1..12 -> 0..20).
  const double range = hi - lo;
  const double rough = range / (target - 1);
  const double base = std::pow(10.0, std::floor(std::log10(rough)));
  double step = NiceNumber(rough, true);
  double best_score = std::numeric_limits<double>::infinity();
  for (double power : {base / 10, base, base * 10}) {
    for (double mantissa : {1.0, 2.0, 5.0}) {
      double candidate = mantissa * power;
      if (integers && candidate < 1) continue;
      double first = std::floor(lo / candidate + 1e-9) * candidate;
      double last = std::ceil(hi / candidate - 1e-9) * candidate;
      double count = std::round((last - first) / candidate) + 1;
      double waste = ((last - first) - range) / range;
      double score = 3 * waste + std::abs(count - target) / target;
      if (score < best_score) {
        best_score = score;
        step = candidate;
      }
    }
  }
  if (integers) step = std::max(step, 1.0);
  Ticks ticks;
  ticks.step = step;
  // A small tolerance keeps 0.30000000000000004 from adding a tick.
  ticks.min = std::floor(lo / step + 1e-9) * step;
  ticks.max = std::ceil(hi / step - 1e-9) * step;
  int count = static_cast<int>(std::lround((ticks.max - ticks.min) / step));
  for (int i = 0; i <= count; ++i) {
    double v = ticks.min + i * step;
    // Snap to the step's grid so labels do not read 0.6000000000000001.
    v = std::round(v / step) * step;
    ticks.values.push_back(v);
  }
  ticks.decimals =
      std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return ticks;
}

Ticks TicksWithin(double lo, double hi, int target, bool integers) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo == hi) {
    Ticks widened = NiceTicks(lo, hi, target, integers);
    lo = widened.min;
    hi = widened.max;
  }
  if (lo > hi) std::swap(lo, hi);
  target = std::max(target, 2);
  double step = NiceNumber((hi - lo) / (target - 1), true);
  if (integers) step = std::max(step, 1.0);
  Ticks ticks;
  ticks.min = lo;
  ticks.max = hi;
  ticks.step = step;
  double first = std::ceil(lo / step - 1e-9);
  double last = std::floor(hi / step + 1e-9);
  for (double k = first; k <= last; ++k) ticks.values.push_back(k * step);
  ticks.decimals =
      std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return ticks;
}

std::string FormatFixed(double value, int decimals) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", std::clamp(decimals, 0, 17),
                value);
  std::string text = buffer;
  // "-0.00": every digit zero means the value rounds to zero.
  if (text[0] == '-' && text.find_first_not_of("0.", 1) == std::string::npos) {
    text.erase(0, 1);
  }
  return text;
}

std::string FormatTick(double value, const Ticks& ticks) {
  double magnitude = std::max(std::abs(ticks.min), std::abs(ticks.max));
  if (magnitude >= 1e7 || ticks.step < 1e-4) {
    if (std::abs(value) < ticks.step * 1e-6) return "0";
    char buffer[64];
    std::snprintf(buffer, sizeof(buffer), "%.3g", value);
    return buffer;
  }
  return FormatFixed(value, ticks.decimals);
}

}  // namespace sweepq::plot
