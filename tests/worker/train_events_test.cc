#include "worker/pipeline/train_events.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/train_test_util.h"

namespace sweepq::worker {
namespace {

using ::sweepq::testing::Field;
using ::sweepq::testing::Kind;
using ::sweepq::testing::ParseEvent;

TEST(JsonNumberTest, RoundTripsAndWritesNullForNonFinite) {
  EXPECT_EQ(JsonNumber(0.1), "0.1");
  EXPECT_EQ(JsonNumber(1.0), "1");
  EXPECT_EQ(JsonNumber(-2.5e-9), "-2.5e-09");
  const double third = 1.0 / 3.0;
  EXPECT_EQ(std::stod(JsonNumber(third)), third);
  EXPECT_EQ(JsonNumber(std::nan("")), "null");
  EXPECT_EQ(JsonNumber(std::numeric_limits<double>::infinity()), "null");
}

TEST(JsonObjectTest, QuotesKeysAndStringsAndKeepsOrder) {
  const std::string text = JsonObject()
                               .Add("b", "x\"y\n")
                               .Add("a", int64_t{3})
                               .Add("c", true)
                               .AddNull("d")
                               .AddRaw("e", "[1,2]")
                               .ToString();
  EXPECT_EQ(text, R"({"b":"x\"y\n","a":3,"c":true,"d":null,"e":[1,2]})");
}

TEST(TrainEventWriterTest, EveryEventHasKindAndTimeFirst) {
  MemoryEventSink sink;
  TrainEventWriter writer(&sink, [] { return int64_t{1700000000123}; });
  writer.Step(2, 40, 0.5, 0.75, 1e-3);
  ASSERT_EQ(sink.lines().size(), 1u);
  EXPECT_EQ(sink.lines()[0],
            R"({"event":"step","time_ms":1700000000123,"epoch":2,"step":40,)"
            R"("loss":0.5,"lr":0.001,"mean_loss":0.75})");
}

TEST(TrainEventWriterTest, DocumentedFieldsOfEachKind) {
  MemoryEventSink sink;
  TrainEventWriter writer(&sink);
  TrainEventWriter::StartInfo start;
  start.config_json = R"({"seed":"3"})";
  start.fingerprint = "ab";
  start.train_samples = 10;
  start.val_samples = 4;
  start.classes = {"a", "b"};
  start.start_epoch = 3;
  start.device = "cpu";
  start.threads = 2;
  writer.Start(start);
  writer.Epoch(1, 9, {{"train_loss", 0.5}, {"val_f1", std::nan("")}},
               {0.25, 0.5}, {{1, 2}, {3, 4}});
  writer.BadSamples(12, 20,
                    std::vector<BadSampleExample>(12, {"p.jpg", "truncated"}));
  writer.Summary(0, "val_f1", std::nullopt, 2, false);
  writer.Error("boom", false, 0, 7);
  const std::vector<std::string> lines = sink.lines();
  ASSERT_EQ(lines.size(), 5u);
  std::vector<google::protobuf::Struct> events;
  for (const std::string& line : lines) {
    auto e = ParseEvent(line);
    ASSERT_TRUE(e.has_value()) << line;
    events.push_back(*e);
  }
  EXPECT_EQ(Kind(events[0]), "start");
  EXPECT_EQ(Field(Field(events[0], "config").struct_value(), "seed")
                .string_value(),
            "3");
  const auto& data = Field(events[0], "data").struct_value();
  EXPECT_EQ(Field(data, "train").number_value(), 10);
  EXPECT_EQ(Field(data, "classes").list_value().values_size(), 2);
  EXPECT_EQ(Field(events[0], "start_epoch").number_value(), 3);

  const auto& metrics = Field(events[1], "metrics").struct_value();
  EXPECT_EQ(Field(metrics, "train_loss").number_value(), 0.5);
  EXPECT_EQ(Field(metrics, "val_f1").kind_case(),
            google::protobuf::Value::kNullValue);
  EXPECT_EQ(Field(events[1], "confusion").list_value().values(1)
                .list_value()
                .values(0)
                .number_value(),
            3);
  // At most 10 examples.
  EXPECT_EQ(Field(events[2], "examples").list_value().values_size(), 10);
  EXPECT_EQ(Field(events[2], "count").number_value(), 12);
  EXPECT_EQ(Field(events[3], "best_value").kind_case(),
            google::protobuf::Value::kNullValue);
  EXPECT_FALSE(Field(events[4], "retryable").bool_value());
  EXPECT_EQ(Field(events[4], "step").number_value(), 7);
  EXPECT_EQ(events[4].fields().count("epoch"), 0u);
}

}  // namespace
}  // namespace sweepq::worker
