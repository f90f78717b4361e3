// Golden-output tests of the table renderer: alignment, middle truncation,
// the 100-column fit, dropped columns, colour and CSV.
#include "client/table.h"

#include <regex>
#include <sstream>
#include <string>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace sweepq::client {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

std::string StripAnsi(const std::string& text) {
  return std::regex_replace(text, std::regex("\x1b\\[[0-9;]*m"), "");
}

Column Right(const std::string& header) {
  Column c;
  c.header = header;
  c.align = Align::kRight;
  c.shrinkable = false;
  return c;
}

Column Left(const std::string& header, size_t min_width = 6,
            bool droppable = false) {
  Column c;
  c.header = header;
  c.min_width = min_width;
  c.droppable = droppable;
  return c;
}

TEST(TruncateMiddleTest, KeepsBothEndsAndMarksTheCut) {
  EXPECT_EQ(TruncateMiddle("abcdefghij", 10), "abcdefghij");
  EXPECT_EQ(TruncateMiddle("abcdefghij", 5), "ab\u2026ij");
  EXPECT_EQ(TruncateMiddle("abcdefghij", 6), "abc\u2026ij");
  EXPECT_EQ(TruncateMiddle("abcdefghij", 1), "\u2026");
  EXPECT_EQ(TruncateMiddle("abcdefghij", 0), "");
  EXPECT_EQ(DisplayWidth(TruncateMiddle("resnet50_cosine_restarts", 9)), 9u);
}

TEST(TruncateMiddleTest, CountsCodePointsNotBytes) {
  EXPECT_EQ(DisplayWidth("\u00e9t\u00e9"), 3u);
  // Never cuts inside a multi-byte character.
  EXPECT_EQ(TruncateMiddle("\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9", 4),
            "\u00e9\u00e9\u2026\u00e9");
}

TEST(TableTest, AlignsColumnsWithoutTrailingSpaces) {
  Table table({Right("rank"), Left("run"), Right("val_f1"), Left("state")});
  table.AddRow({"1", "12", "0.8123", "succeeded"});
  table.AddRow({"2", "7", "0.7900", "running"});
  table.AddRow({"10", "1003", "0.1000", "failed"});
  const char* kGolden =
      "rank  run   val_f1  state\n"
      "   1  12    0.8123  succeeded\n"
      "   2  7     0.7900  running\n"
      "  10  1003  0.1000  failed\n";
  EXPECT_EQ(table.Render(TableOptions()), kGolden);
}

TEST(TableTest, EmptyTableRendersTheHeader) {
  Table table({Right("run"), Left("state")});
  EXPECT_EQ(table.Render(TableOptions()), "run  state\n");
}

TEST(TableTest, ShrinksTheWidestColumnsToFitAndCutsTheirMiddle) {
  Table table({Right("rank"), Left("config", 8), Left("note", 8)});
  table.AddRow(
      {"1", std::string(60, 'a') + "_tail", std::string(50, 'b') + "_end"});
  TableOptions options;
  options.max_width = 40;
  const char* kGolden =
      "rank  config            note\n"
      "   1  aaaaaaaa\u2026aa_tail  bbbbbbbb\u2026bbb_end\n";
  std::string rendered = table.Render(options);
  EXPECT_EQ(rendered, kGolden);
  for (const auto& line : Lines(rendered)) {
    EXPECT_LE(DisplayWidth(line), 40u) << line;
  }
}

TEST(TableTest, EveryLineFitsOneHundredColumns) {
  std::vector<Column> columns = {Right("rank"), Right("run"), Right("val_f1")};
  for (int i = 0; i < 8; ++i) {
    columns.push_back(Left("augment.param_" + std::to_string(i), 6, true));
  }
  columns.push_back(Left("state", 9));
  Table table(columns);
  for (int r = 0; r < 5; ++r) {
    std::vector<Cell> row = {std::to_string(r + 1), std::to_string(100 + r),
                             "0.8123"};
    for (int i = 0; i < 8; ++i) {
      row.push_back("value_that_is_rather_long_" + std::to_string(r * i));
    }
    row.push_back("succeeded");
    table.AddRow(row);
  }
  std::string rendered = table.Render(TableOptions());
  for (const auto& line : Lines(rendered)) {
    EXPECT_LE(DisplayWidth(line), 100u) << line;
  }
  // The non-shrinkable columns are intact.
  EXPECT_NE(rendered.find("0.8123"), std::string::npos);
  EXPECT_NE(rendered.find("succeeded"), std::string::npos);
}

// The note is clipped to the width like any line.
TEST(TableTest, DropsDroppableColumnsFromTheRightAndSaysWhich) {
  Table table({Right("run"), Left("p1", 6, true), Left("p2", 6, true),
               Left("p3", 6, true), Left("state", 9)});
  table.AddRow({"1", "aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc", "succeeded"});
  TableOptions options;
  options.max_width = 30;
  std::string rendered = table.Render(options);
  const char* kExpected =
      "run  p1      p2      state\n"
      "  1  aaa\u2026aa  bbb\u2026bb  succeeded\n"
      "(not shown: p3; see --format \u2026\n";
  EXPECT_EQ(rendered, kExpected);
  for (const auto& line : Lines(rendered)) {
    EXPECT_LE(DisplayWidth(line), 30u) << line;
  }
}

TEST(TableTest, ColourWrapsTextButNotPaddingAndKeepsTheLayout) {
  Table table({Right("run"), Left("state"), Left("worker")});
  table.AddRow({"1", Cell("failed", Style::kRed), "w1"});
  TableOptions plain;
  TableOptions colored;
  colored.color = true;
  std::string with_color = table.Render(colored);
  EXPECT_NE(with_color.find("\x1b[31mfailed\x1b[0m  w1"), std::string::npos)
      << with_color;
  EXPECT_EQ(StripAnsi(with_color), table.Render(plain));
  EXPECT_EQ(table.Render(plain).find('\x1b'), std::string::npos);
}

TEST(TableTest, CsvUsesRawValuesAndQuotesWhenNeeded) {
  Table table({Right("run"), Left("val_f1"), Left("note")});
  table.AddRow({"1", CellWithRaw("0.8123", "0.81234567"), "a,b"});
  table.AddRow({"2", "-", "say \"hi\""});
  EXPECT_EQ(table.RenderCsv(),
            "run,val_f1,note\n"
            "1,0.81234567,\"a,b\"\n"
            "2,-,\"say \"\"hi\"\"\"\n");
}

TEST(TableTest, HeadersAreTruncatedLikeValues) {
  Table table({Left("a_very_long_parameter_name", 6)});
  table.AddRow({"x"});
  TableOptions options;
  options.max_width = 10;
  EXPECT_EQ(table.Render(options), "a_ver\u2026name\nx\n");
}

}  // namespace
}  // namespace sweepq::client
