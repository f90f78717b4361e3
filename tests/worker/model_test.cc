#include "worker/pipeline/model.h"

#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "torch/autograd.h"
#include "torch/nn/functional/loss.h"
#include "torch/optim/sgd.h"

namespace sweepq::worker {
namespace {

using ::testing::HasSubstr;

v1::ModelConfig Config(const std::string& name) {
  v1::ModelConfig config;
  config.set_name(name);
  return config;
}

std::unique_ptr<Classifier> MustCreate(const v1::ModelConfig& config,
                                       int num_classes, uint64_t seed = 1) {
  absl::StatusOr<std::unique_ptr<Classifier>> model =
      CreateClassifier(config, num_classes, seed);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *std::move(model) : nullptr;
}

int64_t CountParameters(Classifier& model) {
  int64_t n = 0;
  for (const NamedParameter& p : model.Parameters()) n += p.tensor.numel();
  return n;
}

std::vector<int64_t> Shape(const torch::Tensor& t) {
  return std::vector<int64_t>(t.sizes().begin(), t.sizes().end());
}

const NamedParameter* FindParameter(const std::vector<NamedParameter>& params,
                                    const std::string& name) {
  for (const NamedParameter& p : params) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

torch::Tensor FindState(Classifier& model, const std::string& name) {
  for (auto& [n, t] : model.StateTensors()) {
    if (n == name) return t;
  }
  return torch::Tensor();
}

// --- Built-in models ---------------------------------------------------------

TEST(ModelTest, BuiltInModelsOutputOneRowOfLogitsPerImage) {
  for (const std::string name :
       {"small_cnn", "resnet18", "resnet34", "resnet50"}) {
    SCOPED_TRACE(name);
    std::unique_ptr<Classifier> model = MustCreate(Config(name), 18);
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(model->num_classes(), 18);
    EXPECT_FALSE(model->multi_head());
    const int64_t batch = name == "resnet50" ? 1 : 2;
    model->SetTraining(false);
    torch::NoGradGuard no_grad;
    ClassifierOutput out = model->Forward(torch::randn({batch, 3, 64, 64}));
    EXPECT_EQ(Shape(out.logits), (std::vector<int64_t>{batch, 18}));
    EXPECT_FALSE(out.mask.defined());
    EXPECT_FALSE(out.gender.defined());
    EXPECT_FALSE(out.age.defined());
  }
}

TEST(ModelTest, SmallCnnTakesTheWorkingResolutionAndAnyClassCount) {
  std::unique_ptr<Classifier> model = MustCreate(Config("small_cnn"), 7);
  ASSERT_NE(model, nullptr);
  ClassifierOutput out = model->Forward(torch::randn({3, 3, 128, 96}));
  EXPECT_EQ(Shape(out.logits), (std::vector<int64_t>{3, 7}));
}

// Parameter counts of torchvision's resnet18/34/50(num_classes=1000): any
// difference in topology (a missing downsample, the stride on the wrong
// conv does not change counts, but a wrong width or block count does).
TEST(ModelTest, ResNetParameterCountsEqualTorchvision) {
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"resnet18", 11689512}, {"resnet34", 21797672}, {"resnet50", 25557032}};
  for (const auto& [name, count] : expected) {
    SCOPED_TRACE(name);
    std::unique_ptr<Classifier> model = MustCreate(Config(name), 1000);
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(CountParameters(*model), count);
  }
  std::unique_ptr<Classifier> model = MustCreate(Config("resnet18"), 1000);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Describe(), "resnet18, 11.7M parameters");
}

struct NamedShape {
  std::string name;
  std::vector<int64_t> shape;
  bool operator==(const NamedShape& o) const {
    return name == o.name && shape == o.shape;
  }
};

void PrintTo(const NamedShape& s, std::ostream* os) {
  *os << s.name << " [";
  for (size_t i = 0; i < s.shape.size(); ++i) {
    *os << (i ? ", " : "") << s.shape[i];
  }
  *os << "]";
}

std::vector<NamedShape> FixtureList(const google::protobuf::Struct& fixture,
                                    const std::string& key) {
  std::vector<NamedShape> out;
  for (const auto& v : fixture.fields().at(key).list_value().values()) {
    const auto& f = v.struct_value().fields();
    NamedShape s{f.at("name").string_value(), {}};
    for (const auto& d : f.at("shape").list_value().values()) {
      s.shape.push_back(static_cast<int64_t>(d.number_value()));
    }
    out.push_back(std::move(s));
  }
  return out;
}

// tests/worker/testdata/resnet18_state.json comes from torchvision
// (tools/fixtures/make_resnet18_fixture.py).
TEST(ModelTest, ResNet18NamesAndShapesEqualTorchvision) {
  const std::string path = std::string(SWEEPQ_SOURCE_DIR) +
                           "/tests/worker/testdata/resnet18_state.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::Struct fixture;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(text.str(), &fixture).ok());

  std::unique_ptr<Classifier> model = MustCreate(Config("resnet18"), 1000);
  ASSERT_NE(model, nullptr);
  std::vector<NamedShape> parameters;
  for (const NamedParameter& p : model->Parameters()) {
    parameters.push_back({p.name, Shape(p.tensor)});
  }
  EXPECT_EQ(parameters, FixtureList(fixture, "parameters"));
  std::vector<NamedShape> state;
  for (const auto& [name, tensor] : model->StateTensors()) {
    state.push_back({name, Shape(tensor)});
  }
  EXPECT_EQ(state, FixtureList(fixture, "state_dict"));
}

TEST(ModelTest, SameSeedGivesSameWeightsAndOtherSeedOthers) {
  for (const std::string name : {"small_cnn", "resnet18"}) {
    SCOPED_TRACE(name);
    std::unique_ptr<Classifier> a = MustCreate(Config(name), 18, 7);
    std::unique_ptr<Classifier> b = MustCreate(Config(name), 18, 7);
    std::unique_ptr<Classifier> c = MustCreate(Config(name), 18, 8);
    ASSERT_TRUE(a && b && c);
    std::vector<NamedParameter> pa = a->Parameters();
    std::vector<NamedParameter> pb = b->Parameters();
    std::vector<NamedParameter> pc = c->Parameters();
    ASSERT_EQ(pa.size(), pb.size());
    bool any_differs = false;
    for (size_t i = 0; i < pa.size(); ++i) {
      EXPECT_TRUE(torch::equal(pa[i].tensor, pb[i].tensor)) << pa[i].name;
      if (!torch::equal(pa[i].tensor, pc[i].tensor)) any_differs = true;
    }
    EXPECT_TRUE(any_differs);
  }
}

TEST(ModelTest, ConvolutionsUseKaimingNormalFanOut) {
  std::unique_ptr<Classifier> model = MustCreate(Config("resnet18"), 18);
  ASSERT_NE(model, nullptr);
  std::vector<NamedParameter> params = model->Parameters();
  // layer4.0.conv2: 512 x 512 x 3 x 3, fan_out = 512 * 9, std sqrt(2/fan_out).
  const NamedParameter* conv = FindParameter(params, "layer4.0.conv2.weight");
  ASSERT_NE(conv, nullptr);
  const double expected = std::sqrt(2.0 / (512 * 9));
  EXPECT_NEAR(conv->tensor.std().item<double>(), expected, expected * 0.02);
  const NamedParameter* bn = FindParameter(params, "layer4.0.bn2.weight");
  ASSERT_NE(bn, nullptr);
  EXPECT_TRUE(torch::equal(bn->tensor, torch::ones({512})));
}

TEST(ModelTest, ParametersFlagNormWeightsAndBiases) {
  std::unique_ptr<Classifier> model = MustCreate(Config("resnet18"), 18);
  ASSERT_NE(model, nullptr);
  std::vector<NamedParameter> params = model->Parameters();
  int flagged = 0;
  for (const NamedParameter& p : params) {
    const bool norm_or_bias = p.name.find(".bn") != std::string::npos ||
                              p.name.rfind("bn1.", 0) == 0 ||
                              p.name.find("downsample.1.") != std::string::npos ||
                              p.name == "fc.bias";
    EXPECT_EQ(p.norm_or_bias, norm_or_bias) << p.name;
    flagged += p.norm_or_bias ? 1 : 0;
  }
  // 20 BatchNorm layers (weight, bias) and the fc bias.
  EXPECT_EQ(flagged, 41);
  EXPECT_FALSE(FindParameter(params, "conv1.weight")->norm_or_bias);
  EXPECT_FALSE(FindParameter(params, "fc.weight")->norm_or_bias);
  EXPECT_TRUE(FindParameter(params, "layer2.0.downsample.1.weight")->norm_or_bias);

  std::unique_ptr<Classifier> cnn = MustCreate(Config("small_cnn"), 18);
  ASSERT_NE(cnn, nullptr);
  for (const NamedParameter& p : cnn->Parameters()) {
    // features.{4k+1} are the BatchNorm layers.
    const bool is_bn = p.name.rfind("features.", 0) == 0 &&
                       std::stoi(p.name.substr(9)) % 4 == 1;
    EXPECT_EQ(p.norm_or_bias, is_bn || p.name == "fc.bias") << p.name;
  }
}

TEST(ModelTest, StateTensorsHoldRunningStatsAndAliasTheModel) {
  std::unique_ptr<Classifier> model = MustCreate(Config("small_cnn"), 18);
  ASSERT_NE(model, nullptr);
  torch::Tensor mean = FindState(*model, "features.1.running_mean");
  torch::Tensor var = FindState(*model, "features.1.running_var");
  torch::Tensor tracked = FindState(*model, "features.1.num_batches_tracked");
  ASSERT_TRUE(mean.defined() && var.defined() && tracked.defined());
  EXPECT_EQ(model->StateTensors().size(),
            model->Parameters().size() + 4 * 3);  // 4 BatchNorms x 3 buffers

  // A training forward updates the running statistics in place.
  const torch::Tensor before = mean.clone();
  model->SetTraining(true);
  model->Forward(torch::randn({4, 3, 32, 32}));
  EXPECT_FALSE(torch::equal(before, mean));
  EXPECT_EQ(tracked.item<int64_t>(), 1);
  // An evaluation forward does not.
  const torch::Tensor after_train = mean.clone();
  model->SetTraining(false);
  torch::Tensor input = torch::randn({2, 3, 32, 32});
  torch::Tensor out1 = model->Forward(input).logits.detach().clone();
  EXPECT_TRUE(torch::equal(after_train, mean));

  // Writing into the state tensors (a checkpoint restore) changes the model.
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : model->StateTensors()) {
      if (name == "fc.bias") t.add_(1.0);
    }
  }
  torch::Tensor out2 = model->Forward(input).logits.detach();
  EXPECT_TRUE(torch::allclose(out2, out1 + 1.0, 1e-5, 1e-5));
}

TEST(ModelTest, DropoutActsBeforeTheHeadInTrainingOnly) {
  torch::Tensor input = torch::randn({4, 3, 32, 32});
  for (const std::string name : {"small_cnn", "resnet18"}) {
    SCOPED_TRACE(name);
    v1::ModelConfig config = Config(name);
    std::unique_ptr<Classifier> plain = MustCreate(config, 18);
    config.set_dropout(0.5);
    std::unique_ptr<Classifier> dropped = MustCreate(config, 18);
    ASSERT_TRUE(plain && dropped);
    // Same parameters: dropout adds none (names stay torchvision's).
    EXPECT_EQ(plain->Parameters().size(), dropped->Parameters().size());
    torch::NoGradGuard no_grad;
    // BatchNorm uses batch statistics in training, so the same batch gives
    // the same output without dropout and different ones with it.
    plain->SetTraining(true);
    dropped->SetTraining(true);
    EXPECT_TRUE(torch::equal(plain->Forward(input).logits,
                             plain->Forward(input).logits));
    EXPECT_FALSE(torch::equal(dropped->Forward(input).logits,
                              dropped->Forward(input).logits));
    dropped->SetTraining(false);
    EXPECT_TRUE(torch::equal(dropped->Forward(input).logits,
                             dropped->Forward(input).logits));
  }
}

void ExpectCombinedHeads(const ClassifierOutput& out, int64_t batch) {
  ASSERT_EQ(Shape(out.logits), (std::vector<int64_t>{batch, 18}));
  ASSERT_EQ(Shape(out.mask), (std::vector<int64_t>{batch, 3}));
  ASSERT_EQ(Shape(out.gender), (std::vector<int64_t>{batch, 2}));
  ASSERT_EQ(Shape(out.age), (std::vector<int64_t>{batch, 3}));
  torch::Tensor m = torch::log_softmax(out.mask, 1);
  torch::Tensor g = torch::log_softmax(out.gender, 1);
  torch::Tensor a = torch::log_softmax(out.age, 1);
  for (int64_t i = 0; i < batch; ++i) {
    for (int64_t c = 0; c < 18; ++c) {
      const double expected = m[i][c / 6].item<double>() +
                              g[i][(c / 3) % 2].item<double>() +
                              a[i][c % 3].item<double>();
      EXPECT_NEAR(out.logits[i][c].item<double>(), expected, 1e-5)
          << "sample " << i << " class " << c;
    }
    EXPECT_EQ(out.logits[i].argmax().item<int64_t>(),
              out.mask[i].argmax().item<int64_t>() * 6 +
                  out.gender[i].argmax().item<int64_t>() * 3 +
                  out.age[i].argmax().item<int64_t>());
  }
  // Combined log-probabilities: each row is a distribution.
  EXPECT_TRUE(torch::allclose(out.logits.exp().sum(1), torch::ones({batch}),
                              1e-5, 1e-5));
}

TEST(ModelTest, MultiHeadCombinesThreeHeadsIntoEighteenClasses) {
  for (const std::string name : {"small_cnn", "resnet18"}) {
    SCOPED_TRACE(name);
    v1::ModelConfig config = Config(name);
    config.set_multi_head(true);
    std::unique_ptr<Classifier> model = MustCreate(config, 18, 3);
    ASSERT_NE(model, nullptr);
    EXPECT_TRUE(model->multi_head());
    EXPECT_EQ(model->num_classes(), 18);
    std::vector<NamedParameter> params = model->Parameters();
    EXPECT_EQ(FindParameter(params, "fc.weight"), nullptr);
    ASSERT_NE(FindParameter(params, "mask_head.weight"), nullptr);
    ASSERT_NE(FindParameter(params, "gender_head.weight"), nullptr);
    ASSERT_NE(FindParameter(params, "age_head.weight"), nullptr);
    model->SetTraining(false);
    torch::NoGradGuard no_grad;
    ExpectCombinedHeads(model->Forward(torch::randn({6, 3, 64, 64}) * 3), 6);
  }
}

TEST(ModelTest, ChannelsLastKeepsTheOutputAndTheTensorsAliased) {
  std::unique_ptr<Classifier> model = MustCreate(Config("resnet18"), 18);
  ASSERT_NE(model, nullptr);
  model->SetTraining(false);
  torch::NoGradGuard no_grad;
  torch::Tensor input = torch::randn({2, 3, 64, 64});
  torch::Tensor before = model->Forward(input).logits.clone();
  torch::Tensor conv = FindParameter(model->Parameters(), "conv1.weight")->tensor;
  EXPECT_FALSE(conv.is_contiguous(at::MemoryFormat::ChannelsLast));
  model->To(torch::kCPU, /*channels_last=*/true);
  EXPECT_TRUE(conv.is_contiguous(at::MemoryFormat::ChannelsLast));
  torch::Tensor after =
      model->Forward(input.contiguous(at::MemoryFormat::ChannelsLast)).logits;
  EXPECT_TRUE(torch::allclose(before, after, 1e-4, 1e-4));
}

// --- Configuration errors -------------------------------------------------------

TEST(ModelTest, UnknownNameIsInvalidArgument) {
  absl::StatusOr<std::unique_ptr<Classifier>> model =
      CreateClassifier(Config("resnet19"), 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("model.name"));
  EXPECT_THAT(model.status().message(), HasSubstr("resnet19"));
}

TEST(ModelTest, MultiHeadNeedsEighteenClasses) {
  v1::ModelConfig config = Config("small_cnn");
  config.set_multi_head(true);
  absl::StatusOr<std::unique_ptr<Classifier>> model =
      CreateClassifier(config, 10, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("model.multi_head"));
  EXPECT_THAT(model.status().message(), HasSubstr("10"));
}

TEST(ModelTest, ContradictoryConfigsAreInvalidArguments) {
  v1::ModelConfig config = Config("resnet18");
  config.set_num_classes(10);
  absl::StatusOr<std::unique_ptr<Classifier>> model =
      CreateClassifier(config, 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("model.num_classes"));

  model = CreateClassifier(Config("torchscript"), 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("model.torchscript"));

  config = Config("resnet18");
  config.set_head_attribute("fc");
  model = CreateClassifier(config, 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("model.head_attribute"));

  config = Config("small_cnn");
  config.set_dropout(1.0);
  model = CreateClassifier(config, 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("model.dropout"));
}

TEST(ModelTest, ForwardWithActivationGivesForwardsOutputAndTheNamedLayer) {
  struct Case {
    std::string model;
    int64_t height, width;
    std::string default_layer;
    std::vector<int64_t> default_shape;
    std::string other_layer;
    std::vector<int64_t> other_shape;
    // Followed by an in-place ReLU in the forward pass: its captured output
    // must keep its negative values.
    std::string before_relu;
  };
  const std::vector<Case> cases = {
      {"small_cnn", 64, 48, "features.14", {2, 256, 8, 6}, "features",
       {2, 256, 4, 3}, "features.1"},
      {"resnet18", 64, 64, "layer4", {2, 512, 2, 2}, "layer2.1",
       {2, 128, 8, 8}, "layer1.0.bn1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.model);
    std::unique_ptr<Classifier> model = MustCreate(Config(c.model), 18);
    ASSERT_NE(model, nullptr);
    model->SetTraining(false);
    EXPECT_EQ(model->DefaultActivationLayer(), c.default_layer);
    const std::vector<std::string> layers = model->ActivationLayers();
    EXPECT_THAT(layers, ::testing::Contains(c.default_layer));
    EXPECT_THAT(layers, ::testing::Contains(c.other_layer));
    const torch::Tensor input = torch::randn({2, 3, c.height, c.width});
    torch::Tensor expected;
    {
      torch::NoGradGuard no_grad;
      expected = model->Forward(input).logits;
    }
    absl::StatusOr<ActivationOutput> out =
        model->ForwardWithActivation(input, "");
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->layer, c.default_layer);
    EXPECT_EQ(Shape(out->activation), c.default_shape);
    EXPECT_TRUE(torch::allclose(out->output.logits, expected, 1e-5, 1e-6));
    out = model->ForwardWithActivation(input, c.other_layer);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(Shape(out->activation), c.other_shape);
    EXPECT_TRUE(torch::allclose(out->output.logits, expected, 1e-5, 1e-6));
  }
  // small_cnn's BatchNorm output (features.1) is followed by an in-place
  // ReLU; what is returned is the BatchNorm's output, negatives and all.
  std::unique_ptr<Classifier> model = MustCreate(Config("small_cnn"), 18);
  model->SetTraining(false);
  absl::StatusOr<ActivationOutput> out =
      model->ForwardWithActivation(torch::randn({1, 3, 64, 48}), "features.1");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_LT(out->activation.min().item<float>(), 0.0f);
}

TEST(ModelTest, ForwardWithActivationRejectsAnUnknownLayerListingValidOnes) {
  for (const char* name : {"small_cnn", "resnet18"}) {
    std::unique_ptr<Classifier> model = MustCreate(Config(name), 18);
    ASSERT_NE(model, nullptr);
    absl::StatusOr<ActivationOutput> out =
        model->ForwardWithActivation(torch::randn({1, 3, 64, 64}), "layer9");
    ASSERT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(out.status().message(), HasSubstr("unknown layer 'layer9'"));
    EXPECT_THAT(out.status().message(),
                HasSubstr(model->DefaultActivationLayer()));
  }
}

// --- TorchScript ----------------------------------------------------------------

// Exports torchvision models with tools/export_model.py (Debian's
// python3-torchvision, random weights). Each export runs once per process
// and only when a test asks for it: CTest runs every test in its own process.
class TorchScriptTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new testing::TempDir(); }
  static void TearDownTestSuite() {
    delete exported_;
    exported_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  // Returns the path of `arch` exported with `classes` outputs, or "" after
  // a test failure.
  static std::string Exported(const std::string& arch, int classes) {
    if (exported_ == nullptr) exported_ = new std::map<std::string, std::string>;
    const std::string path =
        dir_->Join(arch + "_" + std::to_string(classes) + ".pt");
    if (exported_->count(path) != 0) return path;
    int status = -1;
    const std::string out = testing::RunCommand(
        {"/usr/bin/python3",
         std::string(SWEEPQ_SOURCE_DIR) + "/tools/export_model.py", "--arch",
         arch, "--num-classes", std::to_string(classes), "--out", path},
        &status);
    EXPECT_EQ(status, 0) << "tools/export_model.py failed (it needs Debian's "
                            "python3-torchvision); stdout: "
                         << out;
    EXPECT_THAT(out, HasSubstr("head_attribute: fc"));
    if (status != 0) return "";
    (*exported_)[path] = out;
    return path;
  }

  static v1::ModelConfig ScriptConfig(const std::string& path,
                                      const std::string& head = "") {
    v1::ModelConfig config = Config("torchscript");
    config.set_torchscript(path);
    config.set_head_attribute(head);
    return config;
  }

  // Copies the state of torchvision's `arch` (exported) into the built-in
  // model of that name and expects both to compute the same logits.
  static void ExpectBuiltInEqualsTorchvision(const std::string& arch);

  static testing::TempDir* dir_;
  static std::map<std::string, std::string>* exported_;
};

testing::TempDir* TorchScriptTest::dir_ = nullptr;
std::map<std::string, std::string>* TorchScriptTest::exported_ = nullptr;

// With torchvision's weights copied in by name, the built-in ResNets compute
// what torchvision's compute: same topology, strides (Bottleneck strides on
// its 3x3 conv) and forward.
void TorchScriptTest::ExpectBuiltInEqualsTorchvision(const std::string& arch) {
  {
    const std::string path = Exported(arch, 18);
    ASSERT_FALSE(path.empty());
    std::unique_ptr<Classifier> reference = MustCreate(ScriptConfig(path), 18);
    std::unique_ptr<Classifier> ours = MustCreate(Config(arch), 18, 99);
    ASSERT_TRUE(reference && ours);
    // Running statistics away from 0 and 1, so BatchNorm's eval path counts.
    {
      torch::NoGradGuard no_grad;
      reference->SetTraining(true);
      reference->Forward(torch::rand({2, 3, 64, 64}));
    }
    std::vector<std::pair<std::string, torch::Tensor>> theirs =
        reference->StateTensors();
    std::vector<std::pair<std::string, torch::Tensor>> mine =
        ours->StateTensors();
    ASSERT_EQ(mine.size(), theirs.size());
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < mine.size(); ++i) {
        ASSERT_EQ(mine[i].first, theirs[i].first);
        ASSERT_EQ(Shape(mine[i].second), Shape(theirs[i].second))
            << mine[i].first;
        mine[i].second.copy_(theirs[i].second);
      }
    }
    const torch::Tensor input = torch::randn({1, 3, 64, 64});
    reference->SetTraining(false);
    ours->SetTraining(false);
    torch::NoGradGuard no_grad;
    torch::Tensor expected = reference->Forward(input).logits;
    torch::Tensor actual = ours->Forward(input).logits;
    EXPECT_TRUE(torch::allclose(actual, expected, 1e-4, 1e-5))
        << "max difference "
        << (actual - expected).abs().max().item<double>();
  }
}

TEST_F(TorchScriptTest, BuiltInResNet18ComputesWhatTorchvisionComputes) {
  ExpectBuiltInEqualsTorchvision("resnet18");
}

TEST_F(TorchScriptTest, BuiltInResNet50ComputesWhatTorchvisionComputes) {
  ExpectBuiltInEqualsTorchvision("resnet50");
}

TEST_F(TorchScriptTest, LoadsAnExportedModelAndFineTunesIt) {
  const std::string path = Exported("resnet18", 18);
  ASSERT_FALSE(path.empty());
  std::unique_ptr<Classifier> model = MustCreate(ScriptConfig(path), 18);
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(model->Describe(), HasSubstr(path));
  std::vector<NamedParameter> params = model->Parameters();
  // torchvision resnet18 with an 18-class fc.
  EXPECT_EQ(CountParameters(*model), 11689512 - 1000 * 513 + 18 * 513);
  ASSERT_NE(FindParameter(params, "layer1.0.bn1.weight"), nullptr);
  EXPECT_TRUE(FindParameter(params, "layer1.0.bn1.weight")->norm_or_bias);
  EXPECT_TRUE(FindParameter(params, "fc.bias")->norm_or_bias);
  EXPECT_FALSE(FindParameter(params, "layer1.0.conv1.weight")->norm_or_bias);

  torch::manual_seed(11);
  const torch::Tensor images = torch::randn({4, 3, 64, 64});
  const torch::Tensor targets = torch::tensor({0, 5, 11, 17}, torch::kLong);
  model->SetTraining(true);
  EXPECT_EQ(Shape(model->Forward(images).logits),
            (std::vector<int64_t>{4, 18}));

  std::vector<torch::Tensor> tensors;
  for (const NamedParameter& p : params) tensors.push_back(p.tensor);
  torch::optim::SGD sgd(tensors, torch::optim::SGDOptions(0.05).momentum(0.9));
  std::vector<double> losses;
  for (int step = 0; step < 6; ++step) {
    sgd.zero_grad();
    torch::Tensor loss =
        torch::nn::functional::cross_entropy(model->Forward(images).logits,
                                             targets);
    loss.backward();
    sgd.step();
    losses.push_back(loss.item<double>());
  }
  EXPECT_LT(losses.back(), losses.front() * 0.5)
      << "losses " << losses.front() << " ... " << losses.back();
}

TEST_F(TorchScriptTest, TrainingSwitchReachesTheScriptedModule) {
  const std::string path = Exported("resnet18", 10);
  ASSERT_FALSE(path.empty());
  std::unique_ptr<Classifier> model = MustCreate(ScriptConfig(path, "fc"), 18);
  ASSERT_NE(model, nullptr);
  torch::Tensor mean = FindState(*model, "bn1.running_mean");
  ASSERT_TRUE(mean.defined());
  ASSERT_TRUE(FindState(*model, "layer4.1.bn2.running_var").defined());
  torch::NoGradGuard no_grad;
  const torch::Tensor input = torch::randn({2, 3, 64, 64});
  model->SetTraining(false);
  const torch::Tensor before = mean.clone();
  model->Forward(input);
  EXPECT_TRUE(torch::equal(before, mean));
  model->SetTraining(true);
  model->Forward(input);
  EXPECT_FALSE(torch::equal(before, mean));
}

TEST_F(TorchScriptTest, HeadAttributeReplacesTheHead) {
  const std::string path = Exported("resnet18", 10);
  ASSERT_FALSE(path.empty());
  std::unique_ptr<Classifier> model = MustCreate(ScriptConfig(path, "fc"), 18);
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(model->Describe(), HasSubstr("new head fc"));
  std::vector<NamedParameter> params = model->Parameters();
  const NamedParameter* weight = FindParameter(params, "fc.weight");
  ASSERT_NE(weight, nullptr);
  EXPECT_EQ(Shape(weight->tensor), (std::vector<int64_t>{18, 512}));
  EXPECT_TRUE(weight->tensor.requires_grad());
  ASSERT_NE(FindParameter(params, "fc.bias"), nullptr);
  EXPECT_EQ(Shape(FindParameter(params, "fc.bias")->tensor),
            (std::vector<int64_t>{18}));
  model->SetTraining(true);
  ClassifierOutput out = model->Forward(torch::randn({2, 3, 64, 64}));
  EXPECT_EQ(Shape(out.logits), (std::vector<int64_t>{2, 18}));
  // The new head trains: its weight gets a gradient.
  out.logits.sum().backward();
  ASSERT_TRUE(weight->tensor.grad().defined());
  EXPECT_GT(weight->tensor.grad().abs().sum().item<double>(), 0.0);
}

TEST_F(TorchScriptTest, MultiHeadSplitsEightOutputsOfTheNewHead) {
  const std::string path = Exported("resnet18", 10);
  ASSERT_FALSE(path.empty());
  v1::ModelConfig config = ScriptConfig(path, "fc");
  config.set_multi_head(true);
  std::unique_ptr<Classifier> model = MustCreate(config, 18);
  ASSERT_NE(model, nullptr);
  EXPECT_TRUE(model->multi_head());
  EXPECT_EQ(Shape(FindParameter(model->Parameters(), "fc.weight")->tensor),
            (std::vector<int64_t>{8, 512}));
  model->SetTraining(false);
  torch::NoGradGuard no_grad;
  ExpectCombinedHeads(model->Forward(torch::randn({3, 3, 64, 64}) * 3), 3);
}

TEST_F(TorchScriptTest, ChannelsLastKeepsTheOutput) {
  const std::string path = Exported("resnet18", 10);
  ASSERT_FALSE(path.empty());
  std::unique_ptr<Classifier> model = MustCreate(ScriptConfig(path, "fc"), 18);
  ASSERT_NE(model, nullptr);
  model->SetTraining(false);
  torch::NoGradGuard no_grad;
  torch::Tensor input = torch::randn({1, 3, 64, 64});
  torch::Tensor before = model->Forward(input).logits.clone();
  model->To(torch::kCPU, /*channels_last=*/true);
  EXPECT_TRUE(FindParameter(model->Parameters(), "conv1.weight")
                  ->tensor.is_contiguous(at::MemoryFormat::ChannelsLast));
  torch::Tensor after =
      model->Forward(input.contiguous(at::MemoryFormat::ChannelsLast)).logits;
  EXPECT_TRUE(torch::allclose(before, after, 1e-4, 1e-4));
}

TEST_F(TorchScriptTest, WrongOutputSizeIsFailedPreconditionNamingTheFile) {
  const std::string path = Exported("resnet18", 10);
  ASSERT_FALSE(path.empty());
  absl::StatusOr<std::unique_ptr<Classifier>> model =
      CreateClassifier(ScriptConfig(path), 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(), HasSubstr(path));
  EXPECT_THAT(model.status().message(), HasSubstr("[1, 10]"));
  EXPECT_THAT(model.status().message(), HasSubstr("model.head_attribute"));

  v1::ModelConfig config = ScriptConfig(path);
  config.set_multi_head(true);  // needs 8 outputs
  model = CreateClassifier(config, 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(), HasSubstr("expected [1, 8]"));
}

TEST_F(TorchScriptTest, UnknownHeadAttributeIsFailedPrecondition) {
  const std::string path = Exported("resnet18", 10);
  ASSERT_FALSE(path.empty());
  absl::StatusOr<std::unique_ptr<Classifier>> model =
      CreateClassifier(ScriptConfig(path, "classifier.1"), 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(), HasSubstr("model.head_attribute"));
  EXPECT_THAT(model.status().message(), HasSubstr("'classifier'"));
  EXPECT_THAT(model.status().message(), HasSubstr(path));
  EXPECT_THAT(model.status().message(), HasSubstr("layer4"));  // lists them

  model = CreateClassifier(ScriptConfig(path, "layer4.7"), 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(), HasSubstr("'7' in 'layer4'"));

  // A submodule that is not a Linear layer.
  model = CreateClassifier(ScriptConfig(path, "layer4"), 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(), HasSubstr("not a Linear layer"));
}

TEST_F(TorchScriptTest, MissingOrGarbageFileIsFailedPreconditionNamingIt) {
  const std::string missing = dir_->Join("missing.pt");
  absl::StatusOr<std::unique_ptr<Classifier>> model =
      CreateClassifier(ScriptConfig(missing), 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(), HasSubstr("model.torchscript"));
  EXPECT_THAT(model.status().message(), HasSubstr(missing));

  const std::string garbage = dir_->Join("garbage.pt");
  std::ofstream(garbage) << "this is not a TorchScript archive\n";
  model = CreateClassifier(ScriptConfig(garbage), 18, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(), HasSubstr(garbage));
  EXPECT_THAT(model.status().message(), HasSubstr("not a loadable"));
}

TEST_F(TorchScriptTest, ForwardWithActivationRunsTheChildrenOfAChainedModule) {
  const std::string path = Exported("resnet18", 18);
  ASSERT_FALSE(path.empty());
  std::unique_ptr<Classifier> model = MustCreate(ScriptConfig(path), 18);
  ASSERT_NE(model, nullptr);
  model->SetTraining(false);
  EXPECT_THAT(model->ActivationLayers(),
              ::testing::ElementsAre("conv1", "bn1", "relu", "maxpool",
                                     "layer1", "layer2", "layer3", "layer4",
                                     "avgpool", "fc"));
  EXPECT_EQ(model->DefaultActivationLayer(), "");
  const torch::Tensor input = torch::randn({2, 3, 64, 64});
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model->Forward(input).logits;
  }
  // The default: the last child with parameters and a 4-D output.
  absl::StatusOr<ActivationOutput> out =
      model->ForwardWithActivation(input, "");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->layer, "layer4");
  EXPECT_EQ(Shape(out->activation), (std::vector<int64_t>{2, 512, 2, 2}));
  EXPECT_TRUE(torch::allclose(out->output.logits, expected, 1e-4, 1e-5));
  // The logits depend on the activation through the graph.
  torch::Tensor gradient =
      torch::autograd::grad({out->output.logits.sum()}, {out->activation})[0];
  EXPECT_GT(gradient.abs().sum().item<double>(), 0.0);
  // bn1 is followed by an in-place ReLU in torchvision's ResNet.
  out = model->ForwardWithActivation(input, "bn1");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_LT(out->activation.min().item<float>(), 0.0f);

  out = model->ForwardWithActivation(input, "fc");
  ASSERT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("not N x C x h x w"));
  out = model->ForwardWithActivation(input, "features");
  ASSERT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("conv1, bn1, relu"));
}

TEST_F(TorchScriptTest, ForwardWithActivationRefusesAModuleThatIsNotAChain) {
  // ShuffleNetV2's forward averages conv5's output with x.mean([2, 3]),
  // which is no child: its children in order cannot compute its output.
  const std::string path = Exported("shufflenet_v2_x0_5", 18);
  ASSERT_FALSE(path.empty());
  std::unique_ptr<Classifier> model = MustCreate(ScriptConfig(path), 18);
  ASSERT_NE(model, nullptr);
  model->SetTraining(false);
  absl::StatusOr<ActivationOutput> out =
      model->ForwardWithActivation(torch::randn({2, 3, 64, 64}), "");
  ASSERT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(out.status().message(), HasSubstr(path));
  EXPECT_THAT(out.status().message(), HasSubstr("chains its children"));
}

}  // namespace
}  // namespace sweepq::worker
