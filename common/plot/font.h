// The built-in bitmap font of the charts: one 5x9 glyph per printable ASCII
// character (32-126), drawn by hand for this project. Capitals and digits
// are 7 pixels tall, lower case has a 5-pixel x-height, and g j p q y , ;
// _ use the two rows below the baseline. Text is drawn at an integer scale
// (each font pixel becomes scale x scale canvas pixels), horizontally or
// rotated a quarter turn to read bottom to top (y-axis titles, column
// labels). Characters outside 32-126 are drawn as a hollow box.
//
// All functions are pure or draw into the canvas they are given;
// thread-safe for distinct canvases.
#ifndef SWEEPQ_COMMON_PLOT_FONT_H_
#define SWEEPQ_COMMON_PLOT_FONT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/plot/canvas.h"

namespace sweepq::plot {

// Font metrics in font pixels (multiply by the scale).
inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 9;  // cap height + descender
inline constexpr int kCapHeight = 7;
inline constexpr int kGlyphAdvance = 6;  // glyph plus one column of space
inline constexpr int kLineHeight = 11;   // glyph plus two rows of space

// Returns whether font pixel (x, y) of `c`'s glyph is ink; x in [0, 5),
// y in [0, 9) with y = 0 the top row (false outside).
bool GlyphPixel(char c, int x, int y);

// Returns the width in canvas pixels of `text` on one line at `scale`:
// 6 * scale per character less the trailing space; 0 for "".
int TextWidth(absl::string_view text, int scale);

// Returns the height in canvas pixels of one line of text (9 * scale).
int TextHeight(int scale);

enum class Align { kStart, kCenter, kEnd };

// Draws `text` with its top-left corner at (x, y).
void DrawText(Canvas& canvas, int x, int y, absl::string_view text, Color c,
              int scale);

// Draws `text` aligned horizontally on `x` (start: x is the left edge, end:
// the right edge) and vertically centred on `center_y`.
void DrawTextAligned(Canvas& canvas, int x, int center_y,
                     absl::string_view text, Color c, int scale, Align align);

// Draws `text` rotated a quarter turn counter-clockwise, reading bottom to
// top, with the tops of the letters facing left. (x, y) is the bottom-left
// corner of the rotated box, which is TextHeight(scale) wide and
// TextWidth(text, scale) tall.
void DrawTextUp(Canvas& canvas, int x, int y, absl::string_view text, Color c,
                int scale);

// Returns `text` shortened in the middle with ".." to fit `max_width`
// pixels at `scale` ("incorrect/f..>=60"); unchanged if it fits. Returns at
// least the first and last character when anything fits.
std::string FitText(absl::string_view text, int max_width, int scale);

// Splits `text` into lines of at most `max_width` pixels at `scale`,
// breaking after '/', '_', '-' or at spaces (which are dropped); a word
// longer than a line is cut with FitText. Returns one line for "".
std::vector<std::string> WrapText(absl::string_view text, int max_width,
                                  int scale);

}  // namespace sweepq::plot

#endif  // SWEEPQ_COMMON_PLOT_FONT_H_
