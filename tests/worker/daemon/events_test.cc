#include "worker/daemon/events.h"

#include <cmath>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sweepq::worker {
namespace {

using ::testing::HasSubstr;

std::map<std::string, std::pair<int64_t, double>> Points(const ChildEvent& e) {
  std::map<std::string, std::pair<int64_t, double>> out;
  for (const auto& p : e.points) out[p.name()] = {p.step(), p.value()};
  return out;
}

TEST(EventsTest, EpochMetricsBecomePointsAtStepEqualToTheEpoch) {
  const std::string line =
      R"({"event":"epoch","time_ms":1700000000123,"epoch":4,"step":400,)"
      R"("metrics":{"val_f1":0.75,"train_loss":0.5,"lr":0.001},)"
      R"("per_class_f1":[0.5,1],"confusion":[[1,0],[0,1]]})";
  ChildEvent e = ParseChildLine(line, 5);
  EXPECT_EQ(e.kind, "epoch");
  auto points = Points(e);
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points["val_f1"], std::make_pair(int64_t{4}, 0.75));
  EXPECT_EQ(points["train_loss"], std::make_pair(int64_t{4}, 0.5));
  for (const auto& p : e.points) EXPECT_EQ(p.wall_time_ms(), 1700000000123);
  EXPECT_EQ(e.event.kind(), "epoch");
  EXPECT_EQ(e.event.payload_json(), line);
  EXPECT_EQ(e.event.time_ms(), 1700000000123);
}

TEST(EventsTest, StepLossIsAPointAtTheGlobalStep) {
  ChildEvent e = ParseChildLine(
      R"({"event":"step","time_ms":10,"epoch":2,"step":57,"loss":1.25,"lr":0.1})",
      5);
  ASSERT_EQ(e.points.size(), 1u);
  EXPECT_EQ(e.points[0].name(), "step_loss");
  EXPECT_EQ(e.points[0].step(), 57);
  EXPECT_EQ(e.points[0].value(), 1.25);
}

TEST(EventsTest, NonFiniteMetricValuesAreKept) {
  ChildEvent e = ParseChildLine(
      R"({"event":"epoch","epoch":1,"metrics":{"a":null,"b":"NaN",)"
      R"("c":"Infinity","d":"-Infinity","e":"fast","f":[1]}})",
      5);
  auto points = Points(e);
  ASSERT_EQ(points.size(), 4u);  // e and f are not numbers
  EXPECT_TRUE(std::isnan(points["a"].second));
  EXPECT_TRUE(std::isnan(points["b"].second));
  EXPECT_EQ(points["c"].second, INFINITY);
  EXPECT_EQ(points["d"].second, -INFINITY);
}

TEST(EventsTest, CheckpointArtifactStartAndErrorFieldsAreRead) {
  ChildEvent c = ParseChildLine(
      R"({"event":"checkpoint","epoch":3,"kind":"last","path":"/o/last.ckpt"})", 1);
  ASSERT_TRUE(c.checkpoint.has_value());
  EXPECT_EQ(c.checkpoint->epoch, 3);
  EXPECT_EQ(c.checkpoint->kind, "last");
  EXPECT_EQ(c.checkpoint->path, "/o/last.ckpt");

  ChildEvent a = ParseChildLine(
      R"({"event":"artifact","name":"gradcam.png","path":"/o/g.png"})", 1);
  ASSERT_TRUE(a.artifact.has_value());
  EXPECT_EQ(a.artifact->name, "gradcam.png");
  EXPECT_EQ(a.artifact->path, "/o/g.png");

  ChildEvent s = ParseChildLine(R"({"event":"start","start_epoch":5})", 1);
  EXPECT_EQ(s.start_epoch, 5);

  ChildEvent no = ParseChildLine(
      R"({"event":"error","message":"bad data","retryable":false})", 1);
  ASSERT_TRUE(no.error.has_value());
  EXPECT_EQ(no.error->message, "bad data");
  EXPECT_FALSE(no.error->retryable);
  ChildEvent yes = ParseChildLine(R"({"event":"error","message":"oom"})", 1);
  ASSERT_TRUE(yes.error.has_value());
  EXPECT_TRUE(yes.error->retryable);  // unspecified: retry
}

TEST(EventsTest, UnknownKindsAreKeptAsEventsWithoutPoints) {
  ChildEvent e =
      ParseChildLine(R"({"event":"gradcam","time_ms":7,"x":[1,2]})", 99);
  EXPECT_EQ(e.kind, "gradcam");
  EXPECT_TRUE(e.points.empty());
  EXPECT_EQ(e.event.time_ms(), 7);
}

TEST(EventsTest, ALineThatIsNotAnEventIsKeptQuoted) {
  for (const std::string& line :
       {std::string("Segmentation fault"), std::string("[1,2]"),
        std::string("{\"no_event\":1}"), std::string("{broken")}) {
    ChildEvent e = ParseChildLine(line, 42);
    EXPECT_EQ(e.kind, kInvalidOutputKind) << line;
    EXPECT_EQ(e.event.time_ms(), 42);
    EXPECT_THAT(e.event.payload_json(), HasSubstr("\"line\":"));
  }
  ChildEvent quoted = ParseChildLine("say \"hi\"", 1);
  EXPECT_EQ(quoted.event.payload_json(),
            R"({"line":"say \"hi\"","truncated":false})");
}

TEST(EventsTest, AnOverlongEventKeepsItsKindAndPointsButNotItsText) {
  std::string big(kMaxEventPayloadBytes, 'x');
  const std::string line =
      R"({"event":"epoch","epoch":2,"metrics":{"val_f1":0.5},"pad":")" + big +
      "\"}";
  ChildEvent e = ParseChildLine(line, 1);
  EXPECT_EQ(e.kind, "epoch");
  EXPECT_EQ(e.points.size(), 1u);
  EXPECT_LT(e.event.payload_json().size(), 200u);
  EXPECT_THAT(e.event.payload_json(), HasSubstr("\"truncated\":true"));
}

}  // namespace
}  // namespace sweepq::worker
