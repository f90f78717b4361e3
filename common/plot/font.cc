#include "common/plot/font.h"

#include <algorithm>

namespace sweepq::plot {
namespace {

constexpr int kFirstChar = 32;
constexpr int kLastChar = 126;
constexpr int kGlyphsPerBand = 8;

// The glyphs of characters 32-126, eight to a band, as pictures: each band
// is kGlyphHeight strings, one per pixel row, with the glyphs side by side
// (5 columns each, one space between). '#' is ink. The comment above each
// band names its characters.
constexpr const char* kBands[] = {
    //       !     "     #     $     %     &     '
    "..... ..#.. .#.#. .#.#. ..#.. ##... .##.. ..#..",
    "..... ..#.. .#.#. .#.#. .#### ##..# #..#. ..#..",
    "..... ..#.. .#.#. ##### #.#.. ...#. #.#.. .#...",
    "..... ..#.. ..... .#.#. .###. ..#.. .#... .....",
    "..... ..#.. ..... ##### ..#.# .#... #.#.# .....",
    "..... ..... ..... .#.#. ####. #..## #..#. .....",
    "..... ..#.. ..... .#.#. ..#.. ...## .##.# .....",
    "..... ..... ..... ..... ..... ..... ..... .....",
    "..... ..... ..... ..... ..... ..... ..... .....",
    // (     )     *     +     ,     -     .     /
    "...#. .#... ..... ..... ..... ..... ..... ....#",
    "..#.. ..#.. ..#.. ..#.. ..... ..... ..... ....#",
    ".#... ...#. #.#.# ..#.. ..... ..... ..... ...#.",
    ".#... ...#. .###. ##### ..... .###. ..... ..#..",
    ".#... ...#. #.#.# ..#.. ..... ..... ..... .#...",
    "..#.. ..#.. ..#.. ..#.. .##.. ..... .##.. #....",
    "...#. .#... ..... ..... .##.. ..... .##.. #....",
    "..... ..... ..... ..... ..#.. ..... ..... .....",
    "..... ..... ..... ..... .#... ..... ..... .....",
    // 0     1     2     3     4     5     6     7
    ".###. ..#.. .###. ##### ...#. ##### ..##. #####",
    "#...# .##.. #...# ...#. ..##. #.... .#... ....#",
    "#..## ..#.. ....# ..#.. .#.#. ####. #.... ...#.",
    "#.#.# ..#.. ...#. ...#. #..#. ....# ####. ..#..",
    "##..# ..#.. ..#.. ....# ##### ....# #...# .#...",
    "#...# ..#.. .#... #...# ...#. #...# #...# .#...",
    ".###. .###. ##### .###. ...#. .###. .###. .#...",
    "..... ..... ..... ..... ..... ..... ..... .....",
    "..... ..... ..... ..... ..... ..... ..... .....",
    // 8     9     :     ;     <     =     >     ?
    ".###. .###. ..... ..... ...#. ..... .#... .###.",
    "#...# #...# .##.. .##.. ..#.. ..... ..#.. #...#",
    "#...# #...# .##.. .##.. .#... ##### ...#. ....#",
    ".###. .#### ..... ..... #.... ..... ....# ...#.",
    "#...# ....# .##.. ..... .#... ##### ...#. ..#..",
    "#...# ...#. .##.. .##.. ..#.. ..... ..#.. .....",
    ".###. .##.. ..... .##.. ...#. ..... .#... ..#..",
    "..... ..... ..... ..#.. ..... ..... ..... .....",
    "..... ..... ..... .#... ..... ..... ..... .....",
    // @     A     B     C     D     E     F     G
    ".###. .###. ####. .###. ####. ##### ##### .###.",
    "#...# #...# #...# #...# #...# #.... #.... #...#",
    "#.### #...# #...# #.... #...# #.... #.... #....",
    "#.#.# ##### ####. #.... #...# ####. ####. #.###",
    "#.### #...# #...# #.... #...# #.... #.... #...#",
    "#.... #...# #...# #...# #...# #.... #.... #...#",
    ".###. #...# ####. .###. ####. ##### #.... .####",
    "..... ..... ..... ..... ..... ..... ..... .....",
    "..... ..... ..... ..... ..... ..... ..... .....",
    // H     I     J     K     L     M     N     O
    "#...# .###. ..### #...# #.... #...# #...# .###.",
    "#...# ..#.. ...#. #..#. #.... ##.## #...# #...#",
    "#...# ..#.. ...#. #.#.. #.... #.#.# ##..# #...#",
    "##### ..#.. ...#. ##... #.... #.#.# #.#.# #...#",
    "#...# ..#.. ...#. #.#.. #.... #...# #..## #...#",
    "#...# ..#.. #..#. #..#. #.... #...# #...# #...#",
    "#...# .###. .##.. #...# ##### #...# #...# .###.",
    "..... ..... ..... ..... ..... ..... ..... .....",
    "..... ..... ..... ..... ..... ..... ..... .....",
    // P     Q     R     S     T     U     V     W
    "####. .###. ####. .#### ##### #...# #...# #...#",
    "#...# #...# #...# #.... ..#.. #...# #...# #...#",
    "#...# #...# #...# #.... ..#.. #...# #...# #...#",
    "####. #...# ####. .###. ..#.. #...# #...# #.#.#",
    "#.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.#",
    "#.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.#",
    "#.... .##.# #...# ####. ..#.. .###. ..#.. .#.#.",
    "..... ..... ..... ..... ..... ..... ..... .....",
    "..... ..... ..... ..... ..... ..... ..... .....",
    // X     Y     Z     [     \     ]     ^     _
    "#...# #...# ##### .###. #.... .###. ..#.. .....",
    "#...# #...# ....# .#... #.... ...#. .#.#. .....",
    ".#.#. .#.#. ...#. .#... .#... ...#. #...# .....",
    "..#.. ..#.. ..#.. .#... ..#.. ...#. ..... .....",
    ".#.#. ..#.. .#... .#... ...#. ...#. ..... .....",
    "#...# ..#.. #.... .#... ....# ...#. ..... .....",
    "#...# ..#.. ##### .###. ....# .###. ..... .....",
    "..... ..... ..... ..... ..... ..... ..... #####",
    "..... ..... ..... ..... ..... ..... ..... .....",
    // `     a     b     c     d     e     f     g
    ".#... ..... #.... ..... ....# ..... ..##. .....",
    "..#.. ..... #.... ..... ....# ..... .#..# .....",
    "..... .###. ####. .###. .#### .###. .#... .####",
    "..... ....# #...# #.... #...# #...# ###.. #...#",
    "..... .#### #...# #.... #...# ##### .#... #...#",
    "..... #...# #...# #...# #...# #.... .#... #...#",
    "..... .#### ####. .###. .#### .###. .#... .####",
    "..... ..... ..... ..... ..... ..... ..... ....#",
    "..... ..... ..... ..... ..... ..... ..... .###.",
    // h     i     j     k     l     m     n     o
    "#.... ..#.. ...#. #.... .##.. ..... ..... .....",
    "#.... ..... ..... #.... ..#.. ..... ..... .....",
    "#.##. .##.. ..##. #..#. ..#.. ##.#. #.##. .###.",
    "##..# ..#.. ...#. #.#.. ..#.. #.#.# ##..# #...#",
    "#...# ..#.. ...#. ##... ..#.. #.#.# #...# #...#",
    "#...# ..#.. ...#. #.#.. ..#.. #.#.# #...# #...#",
    "#...# .###. ...#. #..#. .###. #.#.# #...# .###.",
    "..... ..... #..#. ..... ..... ..... ..... .....",
    "..... ..... .##.. ..... ..... ..... ..... .....",
    // p     q     r     s     t     u     v     w
    "..... ..... ..... ..... .#... ..... ..... .....",
    "..... ..... ..... ..... .#... ..... ..... .....",
    "####. .#### #.##. .#### ###.. #...# #...# #...#",
    "#...# #...# ##..# #.... .#... #...# #...# #...#",
    "#...# #...# #.... .###. .#... #...# #...# #.#.#",
    "#...# #...# #.... ....# .#..# #..## .#.#. #.#.#",
    "####. .#### #.... ####. ..##. .##.# ..#.. .#.#.",
    "#.... ....# ..... ..... ..... ..... ..... .....",
    "#.... ....# ..... ..... ..... ..... ..... .....",
    // x     y     z     {     |     }     ~
    "..... ..... ..... ...## ..#.. ##... .....",
    "..... ..... ..... ..#.. ..#.. ..#.. .....",
    "#...# #...# ##### ..#.. ..#.. ..#.. .#...",
    ".#.#. #...# ...#. .#... ..#.. ...#. #.#.#",
    "..#.. #...# ..#.. ..#.. ..#.. ..#.. ...#.",
    ".#.#. #...# .#... ..#.. ..#.. ..#.. .....",
    "#...# .#### ##### ...## ..#.. ##... .....",
    "..... ....# ..... ..... ..#.. ..... .....",
    "..... .###. ..... ..... ..... ..... .....",
};

constexpr int kBandCount =
    (kLastChar - kFirstChar + kGlyphsPerBand) / kGlyphsPerBand;
static_assert(sizeof(kBands) / sizeof(kBands[0]) == kBandCount * kGlyphHeight,
              "every band has one string per glyph row");

}  // namespace

bool GlyphPixel(char c, int x, int y) {
  if (x < 0 || x >= kGlyphWidth || y < 0 || y >= kGlyphHeight) return false;
  int code = static_cast<unsigned char>(c);
  if (code < kFirstChar || code > kLastChar) {
    // A hollow box marks a character the font does not have.
    return y < kCapHeight &&
           (x == 0 || x == kGlyphWidth - 1 || y == 0 || y == kCapHeight - 1);
  }
  int index = code - kFirstChar;
  const char* row = kBands[(index / kGlyphsPerBand) * kGlyphHeight + y];
  return row[(index % kGlyphsPerBand) * kGlyphAdvance + x] == '#';
}

int TextWidth(absl::string_view text, int scale) {
  if (text.empty()) return 0;
  return (static_cast<int>(text.size()) * kGlyphAdvance - 1) * scale;
}

int TextHeight(int scale) { return kGlyphHeight * scale; }

void DrawText(Canvas& canvas, int x, int y, absl::string_view text, Color c,
              int scale) {
  scale = std::max(scale, 1);
  for (size_t i = 0; i < text.size(); ++i) {
    int left = x + static_cast<int>(i) * kGlyphAdvance * scale;
    for (int gy = 0; gy < kGlyphHeight; ++gy) {
      for (int gx = 0; gx < kGlyphWidth; ++gx) {
        if (!GlyphPixel(text[i], gx, gy)) continue;
        canvas.FillRect(Rect{left + gx * scale, y + gy * scale, scale, scale},
                        c);
      }
    }
  }
}

void DrawTextAligned(Canvas& canvas, int x, int center_y,
                     absl::string_view text, Color c, int scale, Align align) {
  int width = TextWidth(text, scale);
  int left = align == Align::kStart    ? x
             : align == Align::kCenter ? x - width / 2
                                       : x - width;
  // Centre on the capitals, not on the descenders.
  DrawText(canvas, left, center_y - kCapHeight * scale / 2, text, c, scale);
}

void DrawTextUp(Canvas& canvas, int x, int y, absl::string_view text, Color c,
                int scale) {
  scale = std::max(scale, 1);
  // Font pixel (u, v) (u along the text, v down the glyph) lands at
  // (x + v, y - 1 - u) after the quarter turn.
  for (size_t i = 0; i < text.size(); ++i) {
    int start = static_cast<int>(i) * kGlyphAdvance;
    for (int gy = 0; gy < kGlyphHeight; ++gy) {
      for (int gx = 0; gx < kGlyphWidth; ++gx) {
        if (!GlyphPixel(text[i], gx, gy)) continue;
        int u = (start + gx) * scale;
        canvas.FillRect(Rect{x + gy * scale, y - u - scale, scale, scale}, c);
      }
    }
  }
}

std::string FitText(absl::string_view text, int max_width, int scale) {
  scale = std::max(scale, 1);
  if (TextWidth(text, scale) <= max_width) return std::string(text);
  int fits = (max_width + scale) / (kGlyphAdvance * scale);
  if (fits <= 0) return "";
  if (fits < 3) return std::string(text.substr(0, fits));
  size_t keep = static_cast<size_t>(fits - 2);
  size_t head = (keep + 1) / 2, tail = keep - head;
  return std::string(text.substr(0, head)) + ".." +
         std::string(text.substr(text.size() - tail));
}

std::vector<std::string> WrapText(absl::string_view text, int max_width,
                                  int scale) {
  // Pieces end after a break character; spaces separate pieces and vanish.
  std::vector<std::string> pieces;
  std::string piece;
  for (char ch : text) {
    if (ch == ' ') {
      if (!piece.empty()) pieces.push_back(piece);
      piece.clear();
      continue;
    }
    piece += ch;
    if (ch == '/' || ch == '_' || ch == '-') {
      pieces.push_back(piece);
      piece.clear();
    }
  }
  if (!piece.empty()) pieces.push_back(piece);
  std::vector<std::string> lines;
  std::string line;
  bool line_ends_in_space = false;  // the piece before came from a space
  for (size_t i = 0; i < pieces.size(); ++i) {
    std::string candidate =
        line.empty() ? pieces[i]
                     : line + (line_ends_in_space ? " " : "") + pieces[i];
    if (line.empty() || TextWidth(candidate, scale) <= max_width) {
      line = candidate;
    } else {
      lines.push_back(FitText(line, max_width, scale));
      line = pieces[i];
    }
    char last = pieces[i].back();
    line_ends_in_space = last != '/' && last != '_' && last != '-';
  }
  if (!line.empty() || lines.empty()) {
    lines.push_back(FitText(line, max_width, scale));
  }
  return lines;
}

}  // namespace sweepq::plot
