// Axis ticks at "nice" values (1, 2 or 5 times a power of ten apart) that
// cover a data range, and their labels. Pure functions; thread-safe.
#ifndef SWEEPQ_COMMON_PLOT_TICKS_H_
#define SWEEPQ_COMMON_PLOT_TICKS_H_

#include <string>
#include <vector>

namespace sweepq::plot {

struct Ticks {
  // The axis range: the first and last tick, covering the data.
  double min = 0;
  double max = 1;
  double step = 0.2;
  // min, min + step, ..., max.
  std::vector<double> values;
  // Digits after the decimal point that tell the ticks apart.
  int decimals = 1;
};

// Returns the nice number closest to `x` (> 0) among 1, 2, 5 and 10 times a
// power of ten: rounded when `round`, else the smallest one >= x.
double NiceNumber(double x, bool round);

// Returns ticks covering [lo, hi] with about `target` ticks (at least 2),
// a step of 1, 2 or 5 times a power of ten chosen to waste little room
// beyond the data.
// `lo` > `hi` are swapped; an empty range (lo == hi) is widened around the
// value; non-finite bounds give the range [0, 1]. With `integers`, the step
// is at least 1 (epochs, counts).
Ticks NiceTicks(double lo, double hi, int target, bool integers = false);

// Returns ticks for an axis that spans exactly [lo, hi] (x axes, where
// the data should reach the frame): min and max are lo and hi, and the
// values are the multiples of a nice step (1, 2 or 5 times a power of ten,
// at least 1 with `integers`) that lie inside, about `target` of them.
// lo == hi and non-finite bounds are widened as in NiceTicks().
Ticks TicksWithin(double lo, double hi, int target, bool integers = false);

// Returns the label of tick `value`: fixed with `ticks.decimals` digits
// ("0.25", "10"), or in exponent form ("1e-05", "2.5e+07") for magnitudes
// below 1e-4 or from 1e7. Never "-0".
std::string FormatTick(double value, const Ticks& ticks);

// Returns `value` with `decimals` digits after the point ("0.812"); "nan",
// "inf", "-inf" for non-finite values. Never "-0".
std::string FormatFixed(double value, int decimals);

}  // namespace sweepq::plot

#endif  // SWEEPQ_COMMON_PLOT_TICKS_H_
