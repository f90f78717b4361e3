#include "worker/daemon/options.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace sweepq::worker {
namespace {

using ::testing::HasSubstr;

class OptionsTest : public ::testing::Test {
 protected:
  OptionsTest() {
    std::filesystem::create_directories(dir_.Join("mask"));
    std::filesystem::create_directories(dir_.Join("other"));
    train_ = dir_.Join("sweepq-train");
    std::ofstream(train_) << "#!/bin/sh\n";
    chmod(train_.c_str(), 0755);
    flags_.server = "coord:50051";
    flags_.token = "tok";
    flags_.data = {"mask=" + dir_.Join("mask")};
    flags_.train_binary = train_;
    flags_.work_dir = dir_.Join("work");
  }

  absl::StatusOr<WorkerOptions> Resolve(int gpus = 0) {
    return ResolveWorkerOptions(flags_, dir_.Join("sweepq-worker"),
                                [gpus]() -> absl::StatusOr<int> { return gpus; });
  }

  testing::TempDir dir_;
  std::string train_;
  WorkerFlags flags_;
};

TEST_F(OptionsTest, DefaultsFillTheRest) {
  auto options = Resolve();
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->datasets.at("mask"), dir_.Join("mask"));
  EXPECT_FALSE(options->worker_id.empty());  // the host name
  EXPECT_EQ(options->worker_id, options->host);
  EXPECT_EQ(options->spool_dir, dir_.Join("work") + "/spool");
  ASSERT_EQ(options->slots.size(), 1u);  // no GPU: one CPU slot
  EXPECT_FALSE(options->slots[0].gpu);
  EXPECT_EQ(options->slots[0].cuda_visible_devices, "");
  EXPECT_EQ(options->max_consecutive_failures, 3u);
}

TEST_F(OptionsTest, SlotsFollowGpusSlotsOrTheDetectedDevices) {
  auto detected = Resolve(/*gpus=*/2);
  ASSERT_TRUE(detected.ok());
  ASSERT_EQ(detected->slots.size(), 2u);
  EXPECT_TRUE(detected->slots[1].gpu);
  EXPECT_EQ(detected->slots[1].cuda_visible_devices, "1");
  EXPECT_EQ(detected->slots[1].Describe(), "gpu 1");

  flags_.gpus = "3,GPU-12ab-34";
  auto listed = Resolve(/*gpus=*/8);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->slots.size(), 2u);
  EXPECT_EQ(listed->slots[0].cuda_visible_devices, "3");
  EXPECT_EQ(listed->slots[1].cuda_visible_devices, "GPU-12ab-34");

  flags_.gpus = "";
  flags_.slots = 3;
  auto cpu = Resolve(/*gpus=*/8);
  ASSERT_TRUE(cpu.ok());
  ASSERT_EQ(cpu->slots.size(), 3u);
  EXPECT_FALSE(cpu->slots[2].gpu);
  EXPECT_EQ(cpu->slots[2].Describe(), "cpu 2");

  flags_.gpus = "0";
  EXPECT_THAT(Resolve().status().message(), HasSubstr("exclusive"));
}

TEST_F(OptionsTest, BadGpuListsAreRefused) {
  EXPECT_THAT(ParseGpuList("0,,1").status().message(), HasSubstr("\"\""));
  EXPECT_THAT(ParseGpuList("0,x").status().message(), HasSubstr("\"x\""));
  EXPECT_THAT(ParseGpuList("1,1").status().message(), HasSubstr("twice"));
}

TEST_F(OptionsTest, DatasetEntriesAreChecked) {
  auto two = ParseDatasets({"mask=" + dir_.Join("mask"),
                            "other=" + dir_.Join("other") + ",x=" + dir_.Join("mask")});
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->size(), 3u);
  EXPECT_THAT(ParseDatasets({"mask"}).status().message(), HasSubstr("NAME=DIR"));
  EXPECT_THAT(ParseDatasets({"=" + dir_.Join("mask")}).status().message(),
              HasSubstr("name"));
  EXPECT_THAT(ParseDatasets({"a b=" + dir_.Join("mask")}).status().message(),
              HasSubstr("name"));
  EXPECT_THAT(ParseDatasets({"m=" + dir_.Join("mask"), "m=" + dir_.Join("other")})
                  .status()
                  .message(),
              HasSubstr("twice"));
  EXPECT_THAT(ParseDatasets({"m=" + dir_.Join("nope")}).status().message(),
              HasSubstr("not a directory"));
  flags_.data.clear();
  EXPECT_THAT(Resolve().status().message(), HasSubstr("--data"));
}

TEST_F(OptionsTest, TokenComesFromExactlyOneSource) {
  std::ofstream(dir_.Join("token")) << "  from-file\n";
  flags_.token_file = dir_.Join("token");
  EXPECT_THAT(Resolve().status().message(), HasSubstr("both"));
  flags_.token = "";
  auto from_file = Resolve();
  ASSERT_TRUE(from_file.ok());
  EXPECT_EQ(from_file->token, "from-file");
  flags_.token_file = "";
  flags_.env_token = "from-env";
  EXPECT_EQ(Resolve()->token, "from-env");
  flags_.env_token = "";
  EXPECT_THAT(Resolve().status().message(), HasSubstr("no worker token"));
  flags_.token_file = dir_.Join("missing");
  EXPECT_THAT(Resolve().status().message(), HasSubstr("cannot read"));
}

TEST_F(OptionsTest, ServerAndTrainBinaryAreChecked) {
  flags_.server = "";
  EXPECT_THAT(Resolve().status().message(), HasSubstr("--server"));
  flags_.server = "coord:1";
  flags_.train_binary = dir_.Join("mask");  // a directory
  EXPECT_THAT(Resolve().status().message(), HasSubstr("not an executable"));
  flags_.train_binary = "";  // default: next to sweepq-worker, i.e. train_
  auto options = Resolve();
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->train_binary, train_);
  flags_.grace_period_ms = -1;
  EXPECT_THAT(Resolve().status().message(), HasSubstr("--grace-period-ms"));
}

TEST(MergeRepeatedFlagTest, RepeatedValuesAreJoinedInPlaceOfTheFirst) {
  EXPECT_EQ(MergeRepeatedFlag({"w", "--data", "a=/x", "--slots=2",
                               "--data=b=/y", "-data", "c=/z", "--", "--data",
                               "d"},
                              "data"),
            (std::vector<std::string>{"w", "--data=a=/x,b=/y,c=/z",
                                      "--slots=2", "--", "--data", "d"}));
  EXPECT_EQ(MergeRepeatedFlag({"w", "--database=1"}, "data"),
            (std::vector<std::string>{"w", "--database=1"}));
}

}  // namespace
}  // namespace sweepq::worker
