#include "client/json.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace sweepq::client {
namespace {

TEST(JsonTest, ObjectsKeepInsertionOrderAndReplaceInPlace) {
  JsonValue v = JsonValue::Object();
  v.Set("b", JsonValue::Int(1)).Set("a", JsonValue::String("x"));
  v.Set("b", JsonValue::Int(2));
  EXPECT_EQ(v.Dump(0), "{\"b\":2,\"a\":\"x\"}");
  EXPECT_EQ(v.Dump(2), "{\n  \"b\": 2,\n  \"a\": \"x\"\n}");
}

TEST(JsonTest, NonFiniteNumbersBecomeNull) {
  EXPECT_EQ(JsonValue::Number(std::nan("")).Dump(0), "null");
  EXPECT_EQ(JsonValue::Number(std::numeric_limits<double>::infinity()).Dump(0),
            "null");
  EXPECT_EQ(JsonValue::Number(0.1).Dump(0), "0.1");
  EXPECT_EQ(JsonValue::Int(9007199254740993).Dump(0), "9007199254740993");
}

TEST(JsonTest, ParsesAndKeepsNumberLiterals) {
  auto v = JsonValue::Parse(R"( {"lr": 0.0003, "bounds": [58, 60],
      "name": "ra\u0064am\n", "ok": true, "none": null} )");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->Find("lr")->number_text(), "0.0003");
  EXPECT_DOUBLE_EQ(v->Find("lr")->number_value(), 0.0003);
  EXPECT_EQ(v->Find("bounds")->items().size(), 2u);
  EXPECT_EQ(v->Find("name")->string_value(), "radam\n");
  EXPECT_TRUE(v->Find("ok")->bool_value());
  EXPECT_TRUE(v->Find("none")->is_null());
  EXPECT_EQ(v->Find("missing"), nullptr);
  EXPECT_EQ(v->Dump(0),
            R"({"lr":0.0003,"bounds":[58,60],"name":"radam\n","ok":true,)"
            R"("none":null})");
}

TEST(JsonTest, RejectsMalformedTextWithTheOffset) {
  for (const char* bad :
       {"", "{", "[1,]", "{\"a\" 1}", "01x", "\"abc", "tru", "{} {}"}) {
    auto v = JsonValue::Parse(bad);
    EXPECT_FALSE(v.ok()) << bad;
    if (!v.ok()) {
      EXPECT_NE(v.status().message().find("at byte"), std::string::npos);
    }
  }
}

TEST(JsonTest, EscapesControlCharactersAndQuotes) {
  EXPECT_EQ(JsonQuote("a\"b\\c\x01"), "\"a\\\"b\\\\c\\u0001\"");
}

TEST(JsonTest, DisplayShowsStringsBareAndOthersCompactly) {
  EXPECT_EQ(JsonDisplay("\"radam\""), "radam");
  EXPECT_EQ(JsonDisplay("[58, 60]"), "[58,60]");
  EXPECT_EQ(JsonDisplay("0.0003"), "0.0003");
  EXPECT_EQ(JsonDisplay("true"), "true");
  EXPECT_EQ(JsonDisplay("not json"), "not json");
}

}  // namespace
}  // namespace sweepq::client
