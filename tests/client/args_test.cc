#include "client/args.h"

#include "client/errors.h"
#include "gtest/gtest.h"

namespace sweepq::client {
namespace {

class ArgParserTest : public ::testing::Test {
 protected:
  ArgParserTest()
      : parser_("sweepq board", {"sweepq board [--top N]", "Ranks runs.",
                                 "  sweepq board --top 5\n"}) {
    parser_.AddInt("top", &top_, "N", "how many", 1, 1000);
    parser_.AddString("format", &format_, "FORMAT", "table or json");
    parser_.AddString("output", &output_, "PATH", "where", "-o");
    parser_.AddBool("dry-run", &dry_run_, "preview");
  }

  ArgParser parser_;
  int64_t top_ = 20;
  std::string format_ = "table";
  std::string output_;
  bool dry_run_ = false;
  std::vector<std::string> positionals_;
};

TEST_F(ArgParserTest, ParsesSeparateAndInlineValuesAndSwitches) {
  ASSERT_TRUE(parser_
                  .Parse({"--top", "5", "--format=json", "-o", "out.pt",
                          "--dry-run", "pos"},
                         &positionals_, 0, 1)
                  .ok());
  EXPECT_EQ(top_, 5);
  EXPECT_EQ(format_, "json");
  EXPECT_EQ(output_, "out.pt");
  EXPECT_TRUE(dry_run_);
  EXPECT_EQ(positionals_, std::vector<std::string>({"pos"}));
}

TEST_F(ArgParserTest, DefaultsStayWhenFlagsAreAbsent) {
  ASSERT_TRUE(parser_.Parse({}, &positionals_, 0, 0).ok());
  EXPECT_EQ(top_, 20);
  EXPECT_EQ(format_, "table");
}

TEST_F(ArgParserTest, UnknownFlagSuggestsTheClosestAndIsAUsageError) {
  absl::Status status = parser_.Parse({"--topp", "3"}, &positionals_, 0, 0);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(ExitCodeOf(status), kExitUsage);
  EXPECT_EQ(status.message(),
            "sweepq board: unknown flag --topp; did you mean --top? (see "
            "sweepq board --help)");
}

TEST_F(ArgParserTest, ValuesAreChecked) {
  EXPECT_NE(parser_.Parse({"--top", "0"}, &positionals_, 0, 0)
                .message()
                .find("--top expects an integer from 1 to 1000, got '0'"),
            std::string::npos);
  EXPECT_NE(parser_.Parse({"--top"}, &positionals_, 0, 0)
                .message()
                .find("--top needs a value"),
            std::string::npos);
  EXPECT_FALSE(parser_.Parse({"--dry-run=maybe"}, &positionals_, 0, 0).ok());
}

TEST_F(ArgParserTest, PositionalCountIsChecked) {
  EXPECT_NE(
      parser_.Parse({}, &positionals_, 1, 1).message().find("missing argument"),
      std::string::npos);
  positionals_.clear();
  EXPECT_NE(parser_.Parse({"a", "b"}, &positionals_, 0, 1)
                .message()
                .find("unexpected argument 'b'"),
            std::string::npos);
}

TEST_F(ArgParserTest, DoubleDashEndsFlags) {
  ASSERT_TRUE(parser_.Parse({"--", "--top"}, &positionals_, 1, 1).ok());
  EXPECT_EQ(positionals_, std::vector<std::string>({"--top"}));
}

TEST_F(ArgParserTest, HelpListsFlagsAndTheExample) {
  ASSERT_TRUE(
      parser_.Parse({"--top", "5", "--help"}, &positionals_, 1, 1).ok());
  EXPECT_TRUE(parser_.help_requested());
  std::string help = parser_.HelpText();
  EXPECT_NE(help.find("Usage: sweepq board [--top N]"), std::string::npos);
  EXPECT_NE(help.find("  -o, --output PATH"), std::string::npos);
  EXPECT_NE(help.find("Example:\n  sweepq board --top 5\n"), std::string::npos);
}

}  // namespace
}  // namespace sweepq::client
