#include "worker/pipeline/split.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/pipeline/synthetic.h"

namespace sweepq::worker {
namespace {

using ::testing::HasSubstr;

// A mask-layout data set in memory: the people of the synthetic generator,
// 7 samples each (no image files are needed to split).
Dataset MaskDataset(int people, uint64_t seed) {
  Dataset dataset;
  dataset.root = "/mem";
  dataset.layout = "mask";
  dataset.age_bounds = {30, 60};
  dataset.class_names = MaskClassNames(dataset.age_bounds);
  for (const SyntheticPerson& p : SampleSyntheticPeople(people, seed)) {
    for (int k = 0; k < 7; ++k) {
      Sample s;
      s.person = p.folder;
      s.path = absl::StrCat("/mem/", p.folder, "/", k, ".jpg");
      s.mask = k < 5 ? 0 : (k == 5 ? 1 : 2);
      s.gender = p.gender;
      s.age = p.age;
      s.age_band = AgeBand(p.age, dataset.age_bounds);
      s.label = MaskClassIndex(s.mask, s.gender, s.age_band, 3);
      dataset.samples.push_back(s);
    }
  }
  return dataset;
}

std::set<std::string> PeopleOf(const Dataset& d,
                               const std::vector<size_t>& indexes) {
  std::set<std::string> people;
  for (size_t i : indexes) people.insert(d.samples[i].person);
  return people;
}

void ExpectNoPersonInBothSets(const Dataset& d, const Split& split) {
  const std::set<std::string> train = PeopleOf(d, split.train);
  for (const std::string& person : PeopleOf(d, split.val)) {
    EXPECT_EQ(train.count(person), 0u) << person << " is in train and val";
  }
  EXPECT_EQ(split.train.size() + split.val.size(), d.samples.size());
}

TEST(SplitTest, HoldoutKeepsPeopleApartAndStratifies) {
  const Dataset d = MaskDataset(400, 3);
  SplitOptions options;
  options.val_ratio = 0.2;
  options.seed = 42;
  auto split = SplitByPerson(d, options);
  ASSERT_TRUE(split.ok()) << split.status();
  ExpectNoPersonInBothSets(d, *split);
  const double val_people = PeopleOf(d, split->val).size();
  EXPECT_NEAR(val_people / 400, 0.2, 0.01);
  // Every class keeps about its share in validation.
  std::vector<int> total(18, 0), val(18, 0);
  for (size_t i = 0; i < d.samples.size(); ++i) ++total[d.samples[i].label];
  for (size_t i : split->val) ++val[d.samples[i].label];
  for (int c = 0; c < 18; ++c) {
    ASSERT_GT(total[c], 0) << c;
    EXPECT_NEAR(static_cast<double>(val[c]) / total[c], 0.2, 0.08)
        << d.class_names[c] << ": " << val[c] << " of " << total[c];
  }
}

TEST(SplitTest, SameSeedSameSplitOtherSeedOtherSplit) {
  const Dataset d = MaskDataset(120, 5);
  SplitOptions options;
  options.seed = 9;
  auto a = SplitByPerson(d, options);
  auto b = SplitByPerson(d, options);
  options.seed = 10;
  auto c = SplitByPerson(d, options);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->train, b->train);
  EXPECT_EQ(a->val, b->val);
  EXPECT_NE(a->val, c->val);

  // The order of the samples does not matter, only the people.
  Dataset reversed = d;
  std::reverse(reversed.samples.begin(), reversed.samples.end());
  options.seed = 9;
  auto r = SplitByPerson(reversed, options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(PeopleOf(reversed, r->val), PeopleOf(d, a->val));
}

TEST(SplitTest, KfoldFoldsPartitionThePeople) {
  const Dataset d = MaskDataset(203, 7);
  SplitOptions options;
  options.method = "kfold";
  options.folds = 5;
  options.seed = 1;
  std::map<std::string, int> fold_of;
  std::vector<size_t> fold_people;
  for (uint32_t fold = 0; fold < 5; ++fold) {
    options.fold = fold;
    auto split = SplitByPerson(d, options);
    ASSERT_TRUE(split.ok()) << split.status();
    ExpectNoPersonInBothSets(d, *split);
    const std::set<std::string> val = PeopleOf(d, split->val);
    fold_people.push_back(val.size());
    for (const std::string& person : val) {
      EXPECT_TRUE(fold_of.emplace(person, fold).second)
          << person << " is in two validation folds";
    }
  }
  EXPECT_EQ(fold_of.size(), 203u);
  const auto [lo, hi] =
      std::minmax_element(fold_people.begin(), fold_people.end());
  EXPECT_LE(*hi - *lo, 1u);
}

TEST(SplitTest, FullPutsEverythingInTrain) {
  const Dataset d = MaskDataset(30, 2);
  SplitOptions options;
  options.method = "full";
  auto split = SplitByPerson(d, options);
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(split->train.size(), d.samples.size());
  EXPECT_TRUE(split->val.empty());
}

// Two classes; class "b" has a single person.
Dataset TinyGenericDataset() {
  Dataset d;
  d.root = "/mem";
  d.layout = "image_folder";
  d.class_names = {"a", "b"};
  for (int i = 0; i < 6; ++i) {
    Sample s;
    s.path = absl::StrCat("/mem/a/", i, ".jpg");
    s.person = absl::StrCat("a/", i, ".jpg");
    s.label = 0;
    d.samples.push_back(s);
  }
  Sample s;
  s.path = "/mem/b/0.jpg";
  s.person = "b/0.jpg";
  s.label = 1;
  d.samples.push_back(s);
  return d;
}

TEST(SplitTest, HoldoutNeverTakesAStratumsLastPerson) {
  const Dataset d = TinyGenericDataset();
  SplitOptions options;
  options.val_ratio = 0.9;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    options.seed = seed;
    auto split = SplitByPerson(d, options);
    ASSERT_TRUE(split.ok()) << split.status();
    EXPECT_EQ(PeopleOf(d, split->train).count("b/0.jpg"), 1u);
  }
}

TEST(SplitTest, TrainWithoutAClassFailsNamingIt) {
  const Dataset d = TinyGenericDataset();
  SplitOptions options;
  options.method = "kfold";
  options.folds = 2;
  int failures = 0;
  for (uint32_t fold = 0; fold < 2; ++fold) {
    options.fold = fold;
    auto split = SplitByPerson(d, options);
    if (split.ok()) continue;
    ++failures;
    EXPECT_EQ(split.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(split.status().message(),
                HasSubstr(absl::StrCat("kfold split (fold ", fold,
                                       " of 2, seed 0) train set: class 1 "
                                       "(b) has no samples")));
  }
  EXPECT_EQ(failures, 1);
}

TEST(SplitTest, RejectsBadOptions) {
  const Dataset d = TinyGenericDataset();
  SplitOptions options;
  options.method = "random";
  EXPECT_THAT(SplitByPerson(d, options).status().message(),
              HasSubstr("data.split \"random\""));
  options = SplitOptions();
  options.val_ratio = 1.0;
  EXPECT_THAT(SplitByPerson(d, options).status().message(),
              HasSubstr("data.val_ratio 1 is not in (0, 1)"));
  options = SplitOptions();
  options.method = "kfold";
  options.folds = 1;
  EXPECT_THAT(SplitByPerson(d, options).status().message(),
              HasSubstr("folds >= 2"));
  options.folds = 3;
  options.fold = 3;
  EXPECT_THAT(SplitByPerson(d, options).status().message(),
              HasSubstr("data.fold 3 is not in [0, 3)"));
  options.folds = 8;
  options.fold = 0;
  EXPECT_THAT(SplitByPerson(d, options).status().message(),
              HasSubstr("8 folds but only 7 people"));
}

TEST(SplitTest, OptionsComeFromRunConfig) {
  v1::RunConfig config;
  SplitOptions defaults = SplitOptionsFromConfig(config);
  EXPECT_EQ(defaults.method, "holdout");
  EXPECT_DOUBLE_EQ(defaults.val_ratio, 0.2);
  EXPECT_EQ(defaults.seed, 0u);
  config.mutable_data()->set_split("kfold");
  config.mutable_data()->set_fold(2);
  config.mutable_data()->set_folds(5);
  config.set_seed(77);
  SplitOptions set = SplitOptionsFromConfig(config);
  EXPECT_EQ(set.method, "kfold");
  EXPECT_EQ(set.fold, 2u);
  EXPECT_EQ(set.folds, 5u);
  EXPECT_EQ(set.seed, 77u);
}

}  // namespace
}  // namespace sweepq::worker
