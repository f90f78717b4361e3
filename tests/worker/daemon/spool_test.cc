#include "worker/daemon/spool.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::sweepq::v1;

v1::LeaseRef Lease(int64_t run, uint32_t attempt) {
  v1::LeaseRef lease;
  lease.set_run_id(run);
  lease.set_attempt(attempt);
  lease.set_lease_id(0xabcdef);
  return lease;
}

v1::ReportEventsRequest Batch(const std::string& kind, int64_t step) {
  v1::ReportEventsRequest batch;
  batch.add_events()->set_kind(kind);
  auto* p = batch.add_points();
  p->set_name("val_f1");
  p->set_step(step);
  p->set_value(0.5);
  return batch;
}

size_t BatchFiles(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    n += e.path().extension() == ".batch";
  }
  return n;
}

TEST(SpoolTest, BatchesAreDurableUntilAckedAndComeBackInOrder) {
  testing::TempDir tmp;
  auto spool = EventSpool::Create(tmp.path(), Lease(7, 2));
  ASSERT_TRUE(spool.ok()) << spool.status();
  auto s1 = (*spool)->Append(Batch("a", 1));
  auto s2 = (*spool)->Append(Batch("b", 2));
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_EQ(*s1, 1u);
  EXPECT_EQ(*s2, 2u);
  EXPECT_EQ((*spool)->pending(), 2u);
  EXPECT_EQ(BatchFiles((*spool)->dir()), 2u);

  auto oldest = (*spool)->Oldest();
  ASSERT_TRUE(oldest.ok() && oldest->has_value());
  EXPECT_EQ((*oldest)->batch_seq(), 1u);
  EXPECT_EQ((*oldest)->events(0).kind(), "a");
  EXPECT_EQ((*oldest)->lease().run_id(), 7);
  EXPECT_EQ((*oldest)->lease().attempt(), 2u);
  // Not acked: the same batch again (a resend keeps its batch_seq).
  EXPECT_EQ((*(*spool)->Oldest())->batch_seq(), 1u);

  ASSERT_TRUE((*spool)->Ack(1).ok());
  EXPECT_EQ(BatchFiles((*spool)->dir()), 1u);
  EXPECT_EQ((*(*spool)->Oldest())->events(0).kind(), "b");
  ASSERT_TRUE((*spool)->Ack(2).ok());
  EXPECT_FALSE((*spool)->Oldest()->has_value());
  EXPECT_EQ((*spool)->pending(), 0u);
}

TEST(SpoolTest, ReopenReplaysWhatAnEarlierProcessLeftBehind) {
  testing::TempDir tmp;
  std::string dir;
  {
    auto spool = EventSpool::Create(tmp.path(), Lease(3, 1));
    ASSERT_TRUE(spool.ok());
    dir = (*spool)->dir();
    for (int i = 1; i <= 3; ++i) {
      ASSERT_TRUE((*spool)->Append(Batch("e", i)).ok());
    }
    ASSERT_TRUE((*spool)->Ack(1).ok());
  }
  std::ofstream(dir + "/00000000000000000009.tmp") << "half written";
  std::ofstream(dir + "/00000000000000000004.batch") << "not a protobuf \xff";

  EXPECT_EQ(EventSpool::ListDirs(tmp.path()), std::vector<std::string>{dir});
  auto reopened = EventSpool::Reopen(dir);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_FALSE(fs::exists(dir + "/00000000000000000009.tmp"));
  std::vector<uint64_t> seqs;
  while (true) {
    auto batch = (*reopened)->Oldest();
    ASSERT_TRUE(batch.ok());
    if (!batch->has_value()) break;
    seqs.push_back((*batch)->batch_seq());
    EXPECT_EQ((*batch)->lease().run_id(), 3);
    ASSERT_TRUE((*reopened)->Ack((*batch)->batch_seq()).ok());
  }
  EXPECT_EQ(seqs, (std::vector<uint64_t>{2, 3}));  // 4 did not parse
  ASSERT_TRUE((*reopened)->RemoveAll().ok());
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_TRUE(EventSpool::ListDirs(tmp.path()).empty());
}

TEST(SpoolTest, EachAttemptHasItsOwnDirectory) {
  testing::TempDir tmp;
  auto a = EventSpool::Create(tmp.path(), Lease(1, 1));
  auto b = EventSpool::Create(tmp.path(), Lease(1, 2));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->dir(), (*b)->dir());
  EXPECT_EQ(EventSpool::ListDirs(tmp.path()).size(), 2u);
  EXPECT_TRUE(EventSpool::ListDirs(tmp.Join("missing")).empty());
}

TEST(SpoolTest, UnwritableRootIsAnErrorNamingThePath) {
  testing::TempDir tmp;
  std::ofstream(tmp.Join("file")) << "x";
  auto spool = EventSpool::Create(tmp.Join("file"), Lease(1, 1));
  ASSERT_FALSE(spool.ok());
  EXPECT_NE(spool.status().message().find(tmp.Join("file")), std::string::npos);
}

}  // namespace
}  // namespace sweepq::worker
