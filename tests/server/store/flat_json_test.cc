// The flat JSON text SqliteStore keeps in TEXT columns.
#include "server/store/flat_json.h"

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sweepq::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

TEST(FlatJsonTest, EscapesQuotesBackslashesAndControlCharacters) {
  std::string out;
  AppendJsonString(
      "a\"b\\c\nd\te\x01"
      "f\r",
      &out);
  EXPECT_EQ(out, R"("a\"b\\c\nd\te\u0001f\r")");
}

TEST(FlatJsonTest, KeepsUtf8AsIs) {
  std::string out;
  AppendJsonString("lr=\xCE\xB1", &out);  // alpha
  EXPECT_EQ(out, "\"lr=\xCE\xB1\"");
}

TEST(FlatJsonTest, StringMapRoundTrips) {
  const std::map<std::string, std::string> params = {
      {"optimizer.lr", "0.001"},
      {"model.name", "\"resnet18\""},  // a JSON value text: quotes inside
      {"weird \\ key\n", "[1, 2]"},
      {"", ""},
  };
  const std::string json = EncodeJsonStringMap(params);
  absl::StatusOr<std::map<std::string, std::string>> decoded =
      DecodeJsonStringMap(json);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, params);
}

TEST(FlatJsonTest, StringArrayRoundTripsInOrder) {
  const std::vector<std::string> datasets = {"mask", "faces \"v2\"", ""};
  absl::StatusOr<std::vector<std::string>> decoded =
      DecodeJsonStringArray(EncodeJsonStringArray(datasets));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, datasets);
  EXPECT_EQ(EncodeJsonStringArray(std::vector<std::string>{}), "[]");
}

TEST(FlatJsonTest, DecodesWhitespaceAndEveryEscape) {
  absl::StatusOr<std::map<std::string, std::string>> decoded =
      DecodeJsonStringMap(
          " { \"a\" : \"\\\"\\\\\\/\\b\\f\\n\\r\\t\" ,"
          " \"u\":\"\\u00e9\\ud83d\\ude00\" } ");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(*decoded, ElementsAre(Pair("a", "\"\\/\b\f\n\r\t"),
                                    Pair("u", "\xC3\xA9\xF0\x9F\x98\x80")));
  EXPECT_THAT(
      DecodeJsonStringArray(" [ ] ").value_or(std::vector<std::string>{"x"}),
      IsEmpty());
}

TEST(FlatJsonTest, RejectsWhatIsNotAFlatStringShape) {
  for (const char* bad :
       {"", "{", "{\"a\":1}", "{\"a\":\"b\",}", "{\"a\" \"b\"}",
        "{\"a\":\"b\"} x", "[\"a\",]", "[1]", "[\"a\"", "\"a\"",
        "[\"\\ud83d\"]", "[\"\\x\"]", "[\"a\nb\"]", "[\"\\u12\"]"}) {
    const bool map_ok = DecodeJsonStringMap(bad).ok();
    const bool array_ok = DecodeJsonStringArray(bad).ok();
    EXPECT_FALSE(map_ok || array_ok) << bad;
  }
  EXPECT_THAT(DecodeJsonStringMap("{\"a\":1}").status().message(),
              HasSubstr("offset 5"));
}

}  // namespace
}  // namespace sweepq::store
