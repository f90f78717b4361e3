#include "worker/pipeline/dataset.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"
#include "tests/testing/temp_dir.h"
#include "worker/pipeline/csv.h"
#include "worker/pipeline/synthetic.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// Writes a small real JPEG (the layout parser never decodes, but the files
// are what a data set holds).
void WriteImage(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  cv::Mat image(16, 12, CV_8UC3, cv::Scalar(40, 90, 200));
  ASSERT_TRUE(cv::imwrite(path, image)) << path;
}

struct Person {
  std::string id;
  std::string gender;
  int age;
  std::string Folder() const {
    return absl::StrCat(id, "_", gender, "_Asian_", age);
  }
};

// Six people covering every gender x age band pair (default bounds), so a
// data set built on them has all 18 classes.
std::vector<Person> BasePeople() {
  return {{"000001", "male", 20},   {"000002", "male", 40},
          {"000003", "male", 65},   {"000004", "female", 22},
          {"000005", "female", 45}, {"000006", "female", 60}};
}

constexpr const char* kStems[] = {"mask1", "mask2",          "mask3", "mask4",
                                  "mask5", "incorrect_mask", "normal"};

// Writes a mask layout with the people's 7 images and, unless csv is
// false, train/train.csv. Returns the CSV text written.
std::string WriteMaskLayout(const std::string& root,
                            const std::vector<Person>& people,
                            bool csv = true) {
  std::string text = "id,gender,race,age,path\n";
  for (const Person& p : people) {
    for (const char* stem : kStems) {
      WriteImage(
          absl::StrCat(root, "/train/images/", p.Folder(), "/", stem, ".jpg"));
    }
    absl::StrAppend(&text, p.id, ",", p.gender, ",Asian,", p.age, ",",
                    p.Folder(), "\n");
  }
  if (csv) WriteText(root + "/train/train.csv", text);
  return text;
}

DatasetOptions MaskOptions(const std::string& root) {
  DatasetOptions options;
  options.root = root;
  return options;
}

const Sample* FindSample(const Dataset& d, const std::string& person,
                         const std::string& file) {
  for (const Sample& s : d.samples) {
    if (s.person == person && fs::path(s.path).filename() == file) return &s;
  }
  return nullptr;
}

// A generated data set shared by the tests of one process.
class GeneratedMaskDataTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    SyntheticOptions options;
    options.out_dir = dir_->path();
    options.people = 24;
    options.eval_images = 10;
    options.seed = 11;
    options.threads = 2;
    auto manifest = WriteSyntheticMaskDataset(options);
    ASSERT_TRUE(manifest.ok()) << manifest.status();
    manifest_ = new SyntheticManifest(*std::move(manifest));
  }
  static void TearDownTestSuite() {
    delete manifest_;
    delete dir_;
  }
  static testing::TempDir* dir_;
  static SyntheticManifest* manifest_;
};
testing::TempDir* GeneratedMaskDataTest::dir_ = nullptr;
SyntheticManifest* GeneratedMaskDataTest::manifest_ = nullptr;

TEST_F(GeneratedMaskDataTest, ParsesCountsClassesSubLabelsAndPeople) {
  auto dataset = LoadDataset(MaskOptions(dir_->path()));
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->layout, "mask");
  EXPECT_EQ(dataset->num_classes(), 18);
  EXPECT_EQ(dataset->class_names[0], "wear/male/<30");
  EXPECT_EQ(dataset->class_names[10], "incorrect/female/30-59");
  EXPECT_EQ(dataset->class_names[17], "normal/female/>=60");
  ASSERT_EQ(dataset->samples.size(), 24u * 7);

  std::map<std::string, const SyntheticImage*> truth;
  for (const SyntheticImage& r : manifest_->train) {
    truth[(fs::path(dir_->path()) / r.path).string()] = &r;
  }
  std::map<std::string, int> images_per_person;
  std::vector<int> per_class(18, 0);
  for (const Sample& s : dataset->samples) {
    ASSERT_EQ(truth.count(s.path), 1u) << s.path;
    const SyntheticImage& r = *truth[s.path];
    EXPECT_EQ(s.person, r.person);
    EXPECT_EQ(s.mask, r.mask) << s.path;
    EXPECT_EQ(s.gender, r.gender) << s.path;
    EXPECT_EQ(s.age, r.age) << s.path;
    EXPECT_EQ(s.label, r.label) << s.path;
    EXPECT_EQ(s.label, s.mask * 6 + s.gender * 3 + s.age_band);
    ++images_per_person[s.person];
    ++per_class[s.label];
  }
  EXPECT_EQ(images_per_person.size(), 24u);
  for (const auto& [person, count] : images_per_person) {
    EXPECT_EQ(count, 7) << person;
  }
  // 5 wear images a person for 1 incorrect and 1 normal.
  int wear = 0, incorrect = 0;
  for (int c = 0; c < 6; ++c) wear += per_class[c];
  for (int c = 6; c < 12; ++c) incorrect += per_class[c];
  EXPECT_EQ(wear, 24 * 5);
  EXPECT_EQ(incorrect, 24);
}

TEST_F(GeneratedMaskDataTest, AgeBoundFiftyEightMovesOnlyFiftyEightAndNine) {
  DatasetOptions options = MaskOptions(dir_->path());
  auto at_60 = LoadDataset(options);
  options.age_bounds = {30, 58};
  auto at_58 = LoadDataset(options);
  ASSERT_TRUE(at_60.ok()) << at_60.status();
  ASSERT_TRUE(at_58.ok()) << at_58.status();
  ASSERT_EQ(at_60->samples.size(), at_58->samples.size());
  EXPECT_EQ(at_58->class_names[1], "wear/male/30-57");
  for (size_t i = 0; i < at_60->samples.size(); ++i) {
    const Sample& a = at_60->samples[i];
    const Sample& b = at_58->samples[i];
    ASSERT_EQ(a.path, b.path);
    const bool moves = a.age == 58 || a.age == 59;
    EXPECT_EQ(b.age_band, moves ? 2 : a.age_band) << a.path;
    EXPECT_EQ(b.label - a.label, moves ? 1 : 0) << a.path;
  }
}

TEST_F(GeneratedMaskDataTest, EvalSetListsInfoCsvImages) {
  auto eval = LoadMaskEvalSet(dir_->path());
  ASSERT_TRUE(eval.ok()) << eval.status();
  ASSERT_EQ(eval->size(), 10u);
  for (size_t i = 0; i < eval->size(); ++i) {
    EXPECT_EQ((*eval)[i].image_id, manifest_->eval[i].image_id);
    EXPECT_TRUE(fs::is_regular_file((*eval)[i].path));
  }
}

TEST(MaskLayoutTest, AgeBoundFiftyEightMovesTheRightPeople) {
  testing::TempDir dir;
  std::vector<Person> people = BasePeople();
  people.push_back({"000007", "male", 58});
  people.push_back({"000008", "female", 59});
  people.push_back({"000009", "male", 57});
  WriteMaskLayout(dir.path(), people);
  DatasetOptions options = MaskOptions(dir.path());
  options.age_bounds = {30, 58};
  auto dataset = LoadDataset(options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  const Sample* p58 =
      FindSample(*dataset, "000007_male_Asian_58", "normal.jpg");
  const Sample* p59 =
      FindSample(*dataset, "000008_female_Asian_59", "mask1.jpg");
  const Sample* p57 =
      FindSample(*dataset, "000009_male_Asian_57", "incorrect_mask.jpg");
  ASSERT_TRUE(p58 && p59 && p57);
  EXPECT_EQ(p58->label, 2 * 6 + 0 * 3 + 2);
  EXPECT_EQ(p59->label, 0 * 6 + 1 * 3 + 2);
  EXPECT_EQ(p57->label, 1 * 6 + 0 * 3 + 1);
}

TEST(MaskLayoutTest, PeopleAreGroupedByFolderNotId) {
  testing::TempDir dir;
  std::vector<Person> people = BasePeople();
  people.push_back({"000001", "female", 33});  // The id of person 1 again.
  WriteMaskLayout(dir.path(), people);
  auto dataset = LoadDataset(MaskOptions(dir.path()));
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  std::set<std::string> persons;
  for (const Sample& s : dataset->samples) persons.insert(s.person);
  EXPECT_EQ(persons.size(), 7u);
  EXPECT_TRUE(persons.count("000001_male_Asian_20"));
  EXPECT_TRUE(persons.count("000001_female_Asian_33"));
}

TEST(MaskLayoutTest, ReadsFolderNamesWithoutTrainCsvAndSkipsOtherFiles) {
  testing::TempDir dir;
  WriteMaskLayout(dir.path(), BasePeople(), /*csv=*/false);
  const std::string folder = dir.Join("train/images/000002_male_Asian_40");
  WriteImage(folder + "/._mask1.jpg");
  WriteImage(folder + "/photo.jpg");
  WriteText(folder + "/notes.txt", "x");
  fs::rename(folder + "/mask3.jpg", folder + "/mask3.PNG");
  auto dataset = LoadDataset(MaskOptions(dir.path()));
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->samples.size(), 6u * 7);
  const Sample* s = FindSample(*dataset, "000002_male_Asian_40", "mask3.PNG");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->label, 1);
}

TEST(MaskLayoutTest, LabelOverridesApplyToPeopleAndImages) {
  testing::TempDir dir;
  std::vector<Person> people = BasePeople();
  // Keep every class filled once persons 2, 4 and 5 are corrected.
  people.push_back({"000007", "female", 25});
  people.push_back({"000008", "male", 35});
  people.push_back({"000009", "female", 50});
  WriteMaskLayout(dir.path(), people);
  WriteText(dir.Join("fixes.csv"),
            "target,field,value\n"
            "000004_female_Asian_22,gender,male\n"
            "000002_male_Asian_40,age,61\n"
            "000005_female_Asian_45/normal.jpg,mask,incorrect\n"
            "train/images/000001_male_Asian_20/mask2.jpg,mask,normal\n");
  DatasetOptions options = MaskOptions(dir.path());
  options.label_overrides = "fixes.csv";
  auto dataset = LoadDataset(options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  // Person 4: every image becomes male, age band unchanged.
  const Sample* a = FindSample(*dataset, "000004_female_Asian_22", "mask1.jpg");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->gender, 0);
  EXPECT_EQ(a->label, 0);
  // Person 2: now >= 60; the person key stays the folder name.
  const Sample* b = FindSample(*dataset, "000002_male_Asian_40", "normal.jpg");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->age, 61);
  EXPECT_EQ(b->label, 2 * 6 + 0 * 3 + 2);
  const Sample* c =
      FindSample(*dataset, "000005_female_Asian_45", "normal.jpg");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->mask, 1);
  EXPECT_EQ(c->label, 1 * 6 + 1 * 3 + 1);
  const Sample* d = FindSample(*dataset, "000001_male_Asian_20", "mask2.jpg");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->label, 2 * 6);
  // Untouched image of an overridden person.
  const Sample* e = FindSample(*dataset, "000001_male_Asian_20", "mask1.jpg");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->label, 0);
}

TEST(MaskLayoutTest, OverrideWithUnknownTargetOrValueNamesTheLine) {
  testing::TempDir dir;
  WriteMaskLayout(dir.path(), BasePeople());
  DatasetOptions options = MaskOptions(dir.path());
  options.label_overrides = dir.Join("fixes.csv");

  WriteText(options.label_overrides,
            "target,field,value\n000001_male_Asian_20,age,30\n"
            "000099_male_Asian_20,age,31\n");
  auto status = LoadDataset(options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("fixes.csv: line 3: target "
                                          "\"000099_male_Asian_20\""));

  WriteText(options.label_overrides,
            "target,field,value\n000001_male_Asian_20,gender,other\n");
  EXPECT_THAT(LoadDataset(options).status().message(),
              HasSubstr("fixes.csv: line 2: gender \"other\" is not male or "
                        "female"));

  WriteText(options.label_overrides,
            "target,field,value\n000001_male_Asian_20,mask,normal\n");
  EXPECT_THAT(LoadDataset(options).status().message(),
              HasSubstr("line 2: field mask needs an image target"));
}

TEST(MaskLayoutTest, UnparsableCsvRowNamesFileLineAndCause) {
  testing::TempDir dir;
  std::string csv = WriteMaskLayout(dir.path(), BasePeople());
  // Line 3 (person 2) gets an age that is not a number.
  csv.replace(csv.find(",40,"), 4, ",forty,");
  WriteText(dir.Join("train/train.csv"), csv);
  auto status = LoadDataset(MaskOptions(dir.path())).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("train/train.csv: line 3: age \"forty\" is not an "
                        "integer"));

  WriteText(dir.Join("train/train.csv"),
            "id,gender,race,age,path\n000001,male,Asian,20\n");
  EXPECT_THAT(LoadDataset(MaskOptions(dir.path())).status().message(),
              HasSubstr("train/train.csv: line 2: expected 5 fields "
                        "(id,gender,race,age,path), got 4"));

  WriteText(dir.Join("train/train.csv"),
            "id,gender,race,age,path\n000001,\"male,Asian,20,x\n");
  EXPECT_THAT(LoadDataset(MaskOptions(dir.path())).status().message(),
              HasSubstr("line 2: unterminated quoted field"));
}

TEST(MaskLayoutTest, MissingCsvColumnIsNamed) {
  testing::TempDir dir;
  WriteMaskLayout(dir.path(), BasePeople());
  WriteText(dir.Join("train/train.csv"),
            "id,gender,race,path\n000001,male,Asian,000001_male_Asian_20\n");
  auto status = LoadDataset(MaskOptions(dir.path())).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("train/train.csv: line 1: missing column \"age\" "
                        "(header: id,gender,race,path)"));
}

TEST(MaskLayoutTest, EmptyDataSetFails) {
  testing::TempDir dir;
  fs::create_directories(dir.Join("train/images"));
  WriteText(dir.Join("train/train.csv"), "id,gender,race,age,path\n");
  auto status = LoadDataset(MaskOptions(dir.path())).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("empty data set: no images"));
  EXPECT_THAT(status.message(), HasSubstr("train/train.csv"));

  EXPECT_EQ(LoadDataset(MaskOptions(dir.Join("missing"))).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(MaskLayoutTest, ClassWithNoSamplesFails) {
  testing::TempDir dir;
  std::vector<Person> people = BasePeople();
  people.pop_back();  // No woman aged 60 or more.
  WriteMaskLayout(dir.path(), people);
  auto status = LoadDataset(MaskOptions(dir.path())).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("class 5 (wear/female/>=60) has no samples"));
}

TEST(MaskLayoutTest, MissingPersonFolderAndFolderWithoutImagesFail) {
  testing::TempDir dir;
  std::string csv = WriteMaskLayout(dir.path(), BasePeople());
  WriteText(dir.Join("train/train.csv"),
            csv + "000010,male,Asian,30,000010_male_Asian_30\n");
  auto status = LoadDataset(MaskOptions(dir.path())).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("train.csv: line 8: person folder"));

  fs::create_directories(dir.Join("train/images/000010_male_Asian_30"));
  status = LoadDataset(MaskOptions(dir.path())).status();
  EXPECT_THAT(status.message(), HasSubstr("holds no mask1..mask5"));
}

TEST(ImageFolderLayoutTest, ReadsClassesFromFolderNames) {
  testing::TempDir dir;
  WriteImage(dir.Join("cat/a.jpg"));
  WriteImage(dir.Join("cat/b.png"));
  WriteImage(dir.Join("dog/c.jpeg"));
  WriteText(dir.Join("dog/readme.txt"), "x");
  DatasetOptions options;
  options.root = dir.path();
  options.layout = "image_folder";
  auto dataset = LoadDataset(options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_THAT(dataset->class_names, ::testing::ElementsAre("cat", "dog"));
  ASSERT_EQ(dataset->samples.size(), 3u);
  EXPECT_EQ(dataset->samples[0].person, "cat/a.jpg");
  EXPECT_EQ(dataset->samples[2].label, 1);
  EXPECT_EQ(dataset->samples[2].mask, -1);

  WriteText(dir.Join("fixes.csv"), "target,field,value\ncat/b.png,label,dog\n");
  options.label_overrides = "fixes.csv";
  dataset = LoadDataset(options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->samples[1].label, 1);
}

TEST(ImageFolderLayoutTest, EmptyClassFolderAndEmptyRootFail) {
  testing::TempDir dir;
  DatasetOptions options;
  options.root = dir.path();
  options.layout = "image_folder";
  EXPECT_THAT(LoadDataset(options).status().message(),
              HasSubstr("empty data set"));
  WriteImage(dir.Join("cat/a.jpg"));
  fs::create_directories(dir.Join("dog"));
  EXPECT_THAT(LoadDataset(options).status().message(),
              HasSubstr("class 1 (dog) has no samples"));
}

TEST(CsvLayoutTest, ReadsPathsLabelsAndPersons) {
  testing::TempDir dir;
  WriteImage(dir.Join("img/1.jpg"));
  WriteImage(dir.Join("img/2.jpg"));
  WriteImage(dir.Join("img/3.jpg"));
  WriteText(dir.Join("list.csv"),
            "path,label,person\nimg/1.jpg,1,p1\nimg/2.jpg,0,p1\n"
            "\"img/3.jpg\",2,\n");
  DatasetOptions options;
  options.root = dir.path();
  options.layout = "csv";
  options.csv = "list.csv";
  auto dataset = LoadDataset(options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_THAT(dataset->class_names, ::testing::ElementsAre("0", "1", "2"));
  ASSERT_EQ(dataset->samples.size(), 3u);
  EXPECT_EQ(dataset->samples[0].person, "img/3.jpg");
  EXPECT_EQ(dataset->samples[0].label, 2);
  EXPECT_EQ(dataset->samples[1].person, "p1");
  EXPECT_EQ(dataset->samples[2].person, "p1");
}

TEST(CsvLayoutTest, BadInputsNameFileLineAndCause) {
  testing::TempDir dir;
  WriteImage(dir.Join("img/1.jpg"));
  DatasetOptions options;
  options.root = dir.path();
  options.layout = "csv";
  options.csv = "list.csv";

  WriteText(dir.Join("list.csv"), "path,class\nimg/1.jpg,cat\n");
  EXPECT_THAT(LoadDataset(options).status().message(),
              HasSubstr("list.csv: line 1: missing column \"label\""));

  WriteText(dir.Join("list.csv"), "path,label\nimg/1.jpg,cat\nimg/9.jpg,dog\n");
  auto status = LoadDataset(options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("list.csv: line 3: image "));

  WriteText(dir.Join("list.csv"), "path,label\n");
  EXPECT_THAT(LoadDataset(options).status().message(),
              HasSubstr("list.csv: empty data set"));

  WriteText(dir.Join("list.csv"), "path,label\nimg/1.jpg,2\n");
  EXPECT_THAT(LoadDataset(options).status().message(),
              HasSubstr("class 0 (0) has no samples"));

  WriteText(dir.Join("list.csv"), "");
  EXPECT_THAT(LoadDataset(options).status().message(),
              HasSubstr("list.csv: line 1: empty file"));
}

TEST(DatasetTest, HelpersMapNamesAgesAndClasses) {
  EXPECT_EQ(MaskStateFromFileName("mask1.jpg"), MaskState::kWear);
  EXPECT_EQ(MaskStateFromFileName("mask5.JPEG"), MaskState::kWear);
  EXPECT_EQ(MaskStateFromFileName("incorrect_mask.png"), MaskState::kIncorrect);
  EXPECT_EQ(MaskStateFromFileName("normal.jpeg"), MaskState::kNormal);
  EXPECT_EQ(MaskStateFromFileName("mask6.jpg"), std::nullopt);
  EXPECT_EQ(MaskStateFromFileName("._mask1.jpg"), std::nullopt);
  EXPECT_EQ(MaskStateFromFileName("normal.gif"), std::nullopt);
  EXPECT_EQ(AgeBand(29, kDefaultAgeBounds), 0);
  EXPECT_EQ(AgeBand(30, kDefaultAgeBounds), 1);
  EXPECT_EQ(AgeBand(59, kDefaultAgeBounds), 1);
  EXPECT_EQ(AgeBand(60, kDefaultAgeBounds), 2);
  EXPECT_EQ(MaskClassIndex(2, 1, 2, 3), 17);
  EXPECT_EQ(MaskClassNames(std::vector<int>{40}).size(), 12u);

  v1::DataConfig config;
  DatasetOptions defaults = DatasetOptionsFromConfig(config, "/d");
  EXPECT_EQ(defaults.layout, "mask");
  EXPECT_THAT(defaults.age_bounds, ::testing::ElementsAre(30, 60));
  config.add_age_bounds(30);
  config.add_age_bounds(58);
  config.set_layout("csv");
  DatasetOptions set = DatasetOptionsFromConfig(config, "/d");
  EXPECT_EQ(set.layout, "csv");
  EXPECT_THAT(set.age_bounds, ::testing::ElementsAre(30, 58));

  DatasetOptions bad;
  bad.root = "/d";
  bad.layout = "folders";
  EXPECT_THAT(LoadDataset(bad).status().message(),
              HasSubstr("data.layout \"folders\""));
}

}  // namespace
}  // namespace sweepq::worker
