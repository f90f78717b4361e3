#include "worker/pipeline/model.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "torch/nn.h"
#include "torch/script.h"
#include "torch/utils.h"

namespace sweepq::worker {
namespace {

constexpr int kMultiHeadClasses =
    kMaskHeadClasses * kGenderHeadClasses * kAgeHeadClasses;
constexpr int kMultiHeadOutputs =
    kMaskHeadClasses + kGenderHeadClasses + kAgeHeadClasses;

// Combines the three heads' logits into the 18 log-probabilities of
// model.h: class c = mask * 6 + gender * 3 + age.
torch::Tensor CombineHeads(const torch::Tensor& mask,
                           const torch::Tensor& gender,
                           const torch::Tensor& age) {
  torch::Tensor m = torch::log_softmax(mask, 1).unsqueeze(2).unsqueeze(3);
  torch::Tensor g = torch::log_softmax(gender, 1).unsqueeze(1).unsqueeze(3);
  torch::Tensor a = torch::log_softmax(age, 1).unsqueeze(1).unsqueeze(2);
  return (m + g + a).reshape({mask.size(0), kMultiHeadClasses});
}

// True for the class name of a normalisation layer, LibTorch's
// ("torch::nn::BatchNorm2d") or TorchScript's
// ("__torch__.torch.nn.modules.batchnorm.BatchNorm2d", "...LayerNorm2d").
bool IsNormClass(const std::string& qualified_name) {
  const size_t last = qualified_name.find_last_of(".:");
  const std::string leaf = last == std::string::npos
                               ? qualified_name
                               : qualified_name.substr(last + 1);
  return leaf.find("Norm") != std::string::npos;
}

bool IsBiasName(const std::string& name) {
  return name == "bias" || absl::EndsWith(name, ".bias");
}

std::string JoinName(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : absl::StrCat(prefix, ".", name);
}

std::string FormatMillions(int64_t n) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1fM", static_cast<double>(n) / 1e6);
  return buffer;
}

std::string ShapeString(const torch::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

// Converts 4-D tensors (convolution weights) to channels-last in place; the
// tensor objects stay the same, so StateTensors and optimizers keep aliasing
// them.
void ToChannelsLast(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  for (const torch::Tensor& t : tensors) {
    if (t.defined() && t.dim() == 4) {
      torch::Tensor copy = t;  // set_data is not const
      copy.set_data(t.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
}

int64_t CountParameters(const std::vector<NamedParameter>& parameters) {
  int64_t n = 0;
  for (const NamedParameter& p : parameters) n += p.tensor.numel();
  return n;
}

// --- Built-in networks -------------------------------------------------------

torch::nn::Conv2d Conv(int64_t in, int64_t out, int64_t kernel,
                       int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                               .stride(stride)
                               .padding(kernel / 2)
                               .bias(false));
}

// The classifier on top of pooled features: dropout, then one Linear `fc`
// or the three heads of a multi-head model. Registered last so parameter
// names and order match torchvision's.
class Heads {
 public:
  void Register(torch::nn::Module& owner, int64_t features, int num_classes,
                bool multi_head, double dropout) {
    dropout_ = dropout;
    if (multi_head) {
      mask_ = owner.register_module(
          "mask_head", torch::nn::Linear(features, kMaskHeadClasses));
      gender_ = owner.register_module(
          "gender_head", torch::nn::Linear(features, kGenderHeadClasses));
      age_ = owner.register_module(
          "age_head", torch::nn::Linear(features, kAgeHeadClasses));
    } else {
      fc_ = owner.register_module("fc",
                                  torch::nn::Linear(features, num_classes));
    }
  }

  ClassifierOutput Forward(torch::Tensor features, bool training) {
    if (dropout_ > 0.0) {
      features = torch::dropout(features, dropout_, training);
    }
    ClassifierOutput out;
    if (fc_.is_empty()) {
      out.mask = mask_->forward(features);
      out.gender = gender_->forward(features);
      out.age = age_->forward(features);
      out.logits = CombineHeads(out.mask, out.gender, out.age);
    } else {
      out.logits = fc_->forward(features);
    }
    return out;
  }

 private:
  double dropout_ = 0.0;
  torch::nn::Linear fc_{nullptr};
  torch::nn::Linear mask_{nullptr};
  torch::nn::Linear gender_{nullptr};
  torch::nn::Linear age_{nullptr};
};

// A built-in network: features, global pooling, heads.
class NetworkImpl : public torch::nn::Module {
 public:
  // Returns the pooled N x C features and, when `activation` is not null,
  // sets it to the output of layer `layer` (one of Layers()). The forward
  // pass continues on a copy of that output, so an in-place layer after it
  // (ReLU) cannot overwrite it.
  virtual torch::Tensor Run(const torch::Tensor& x, const std::string& layer,
                            torch::Tensor* activation) = 0;

  // Returns the names Run accepts, in forward order.
  virtual std::vector<std::string> Layers() const = 0;

  // Returns the Grad-CAM default of Layers() (see model.h).
  virtual std::string DefaultLayer() const = 0;

  ClassifierOutput Forward(const torch::Tensor& x) {
    return Head(Run(x, "", nullptr));
  }

  ClassifierOutput Head(const torch::Tensor& features) {
    return heads_.Forward(features, is_training());
  }

 protected:
  Heads heads_;
};

class SmallCnn : public NetworkImpl {
 public:
  SmallCnn(int num_classes, bool multi_head, double dropout) {
    torch::nn::Sequential features;
    int64_t in = 3;
    for (int64_t out : {32, 64, 128, 256}) {
      features->push_back(Conv(in, out, 3, 1));
      features->push_back(torch::nn::BatchNorm2d(out));
      features->push_back(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
      features->push_back(torch::nn::MaxPool2d(2));
      in = out;
    }
    features_ = register_module("features", features);
    heads_.Register(*this, in, num_classes, multi_head, dropout);
  }

  torch::Tensor Run(const torch::Tensor& input, const std::string& layer,
                    torch::Tensor* activation) override {
    torch::Tensor x = input;
    const size_t last = features_->size() - 1;
    size_t i = 0;
    for (torch::nn::AnyModule& module : *features_) {
      x = module.forward(x);
      if (activation != nullptr &&
          (layer == absl::StrCat("features.", i) ||
           (layer == "features" && i == last))) {
        *activation = x;
        x = x.clone();
      }
      ++i;
    }
    return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  }

  std::vector<std::string> Layers() const override {
    std::vector<std::string> names;
    for (size_t i = 0; i < features_->size(); ++i) {
      names.push_back(absl::StrCat("features.", i));
    }
    names.push_back("features");
    return names;
  }

  // The last block is conv, BatchNorm, ReLU, max-pool: its ReLU.
  std::string DefaultLayer() const override {
    return absl::StrCat("features.", features_->size() - 2);
  }

 private:
  torch::nn::Sequential features_{nullptr};
};

// torchvision's BasicBlock (expansion 1).
class BasicBlockImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;

  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride)
      : conv1_(register_module("conv1", Conv(in, planes, 3, stride))),
        bn1_(register_module("bn1", torch::nn::BatchNorm2d(planes))),
        conv2_(register_module("conv2", Conv(planes, planes, 3, 1))),
        bn2_(register_module("bn2", torch::nn::BatchNorm2d(planes))) {
    if (stride != 1 || in != planes * kExpansion) {
      downsample_ = register_module(
          "downsample",
          torch::nn::Sequential(Conv(in, planes * kExpansion, 1, stride),
                                torch::nn::BatchNorm2d(planes * kExpansion)));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor out = torch::relu(bn1_->forward(conv1_->forward(x)));
    out = bn2_->forward(conv2_->forward(out));
    out += downsample_.is_empty() ? x : downsample_->forward(x);
    return torch::relu(out);
  }

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv2_;
  torch::nn::BatchNorm2d bn2_;
  torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(BasicBlock);

// torchvision's Bottleneck (expansion 4, stride on the 3x3 conv: "ResNet
// v1.5").
class BottleneckImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;

  BottleneckImpl(int64_t in, int64_t planes, int64_t stride)
      : conv1_(register_module("conv1", Conv(in, planes, 1, 1))),
        bn1_(register_module("bn1", torch::nn::BatchNorm2d(planes))),
        conv2_(register_module("conv2", Conv(planes, planes, 3, stride))),
        bn2_(register_module("bn2", torch::nn::BatchNorm2d(planes))),
        conv3_(register_module("conv3",
                               Conv(planes, planes * kExpansion, 1, 1))),
        bn3_(register_module("bn3",
                             torch::nn::BatchNorm2d(planes * kExpansion))) {
    if (stride != 1 || in != planes * kExpansion) {
      downsample_ = register_module(
          "downsample",
          torch::nn::Sequential(Conv(in, planes * kExpansion, 1, stride),
                                torch::nn::BatchNorm2d(planes * kExpansion)));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor out = torch::relu(bn1_->forward(conv1_->forward(x)));
    out = torch::relu(bn2_->forward(conv2_->forward(out)));
    out = bn3_->forward(conv3_->forward(out));
    out += downsample_.is_empty() ? x : downsample_->forward(x);
    return torch::relu(out);
  }

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv2_;
  torch::nn::BatchNorm2d bn2_;
  torch::nn::Conv2d conv3_;
  torch::nn::BatchNorm2d bn3_;
  torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(Bottleneck);

// torchvision's ResNet: stem, four stages of `Block`, average pool, fc.
template <typename Block>
class ResNet : public NetworkImpl {
 public:
  ResNet(const std::array<int, 4>& blocks, int num_classes, bool multi_head,
         double dropout)
      : conv1_(register_module("conv1", Conv(3, 64, 7, 2))),
        bn1_(register_module("bn1", torch::nn::BatchNorm2d(64))) {
    const std::array<int64_t, 4> planes = {64, 128, 256, 512};
    for (size_t i = 0; i < planes.size(); ++i) {
      torch::nn::Sequential layer;
      for (int b = 0; b < blocks[i]; ++b) {
        const int64_t stride = (i > 0 && b == 0) ? 2 : 1;
        layer->push_back(Block(in_, planes[i], stride));
        in_ = planes[i] * Block::ContainedType::kExpansion;
      }
      layers_[i] = register_module(absl::StrCat("layer", i + 1), layer);
    }
    heads_.Register(*this, in_, num_classes, multi_head, dropout);
  }

  torch::Tensor Run(const torch::Tensor& x, const std::string& layer,
                    torch::Tensor* activation) override {
    const auto capture = [&](absl::string_view name, torch::Tensor& out) {
      if (activation != nullptr && name == layer) {
        *activation = out;
        out = out.clone();
      }
    };
    torch::Tensor out = conv1_->forward(x);
    capture("conv1", out);
    out = bn1_->forward(out);
    capture("bn1", out);
    out = torch::relu(out);
    capture("relu", out);
    out = torch::max_pool2d(out, 3, 2, 1);
    capture("maxpool", out);
    for (size_t i = 0; i < layers_.size(); ++i) {
      size_t b = 0;
      for (torch::nn::AnyModule& block : *layers_[i]) {
        out = block.forward(out);
        capture(absl::StrCat("layer", i + 1, ".", b++), out);
      }
      capture(absl::StrCat("layer", i + 1), out);
    }
    return torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
  }

  std::vector<std::string> Layers() const override {
    std::vector<std::string> names = {"conv1", "bn1", "relu", "maxpool"};
    for (size_t i = 0; i < layers_.size(); ++i) {
      for (size_t b = 0; b < layers_[i]->size(); ++b) {
        names.push_back(absl::StrCat("layer", i + 1, ".", b));
      }
      names.push_back(absl::StrCat("layer", i + 1));
    }
    return names;
  }

  std::string DefaultLayer() const override { return "layer4"; }

 private:
  int64_t in_ = 64;
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  std::array<torch::nn::Sequential, 4> layers_ = {nullptr, nullptr, nullptr,
                                                  nullptr};
};

// torchvision's initialisation: Kaiming-normal (fan_out, ReLU) convolution
// weights, BatchNorm weight 1 and bias 0; Linear layers keep LibTorch's
// default, which is PyTorch's.
void InitWeights(torch::nn::Module& network) {
  torch::NoGradGuard no_grad;
  for (const std::shared_ptr<torch::nn::Module>& m : network.modules()) {
    if (auto* conv = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut,
                                       torch::kReLU);
    } else if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
    }
  }
}

class BuiltinClassifier : public Classifier {
 public:
  BuiltinClassifier(std::string name, std::shared_ptr<NetworkImpl> network,
                    int num_classes, bool multi_head)
      : name_(std::move(name)),
        network_(std::move(network)),
        num_classes_(num_classes),
        multi_head_(multi_head),
        parameter_count_(CountParameters(Parameters())) {}

  ClassifierOutput Forward(const torch::Tensor& images) override {
    return network_->Forward(images);
  }

  std::vector<std::string> ActivationLayers() const override {
    return network_->Layers();
  }

  std::string DefaultActivationLayer() const override {
    return network_->DefaultLayer();
  }

  absl::StatusOr<ActivationOutput> ForwardWithActivation(
      const torch::Tensor& images, const std::string& layer) override {
    ActivationOutput out;
    out.layer = layer.empty() ? network_->DefaultLayer() : layer;
    const std::vector<std::string> layers = network_->Layers();
    if (std::find(layers.begin(), layers.end(), out.layer) == layers.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown layer '", out.layer, "' of ", name_, " (layers: ",
          absl::StrJoin(layers, ", "), ")"));
    }
    torch::Tensor features = network_->Run(images, out.layer, &out.activation);
    out.output = network_->Head(features);
    return out;
  }

  std::vector<NamedParameter> Parameters() override {
    std::vector<NamedParameter> out;
    for (const auto& item : network_->named_modules()) {
      const bool norm = IsNormClass(item.value()->name());
      for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
        out.push_back({JoinName(item.key(), p.key()), p.value(),
                       norm || IsBiasName(p.key())});
      }
    }
    return out;
  }

  // In state-dict order: each module's parameters, then its buffers.
  std::vector<std::pair<std::string, torch::Tensor>> StateTensors() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : network_->named_modules()) {
      for (const auto& p : item.value()->named_parameters(false)) {
        out.emplace_back(JoinName(item.key(), p.key()), p.value());
      }
      for (const auto& b : item.value()->named_buffers(false)) {
        out.emplace_back(JoinName(item.key(), b.key()), b.value());
      }
    }
    return out;
  }

  void SetTraining(bool training) override { network_->train(training); }

  void To(const torch::Device& device, bool channels_last) override {
    network_->to(device);
    if (channels_last) {
      std::vector<torch::Tensor> tensors = network_->parameters();
      for (const torch::Tensor& b : network_->buffers()) tensors.push_back(b);
      ToChannelsLast(tensors);
    }
  }

  int num_classes() const override { return num_classes_; }
  bool multi_head() const override { return multi_head_; }

  std::string Describe() const override {
    return absl::StrCat(name_, multi_head_ ? " (multi-head)" : "", ", ",
                        FormatMillions(parameter_count_), " parameters");
  }

 private:
  std::string name_;
  std::shared_ptr<NetworkImpl> network_;
  int num_classes_;
  bool multi_head_;
  int64_t parameter_count_;
};

std::shared_ptr<NetworkImpl> BuildNetwork(const std::string& name,
                                          int num_classes, bool multi_head,
                                          double dropout) {
  if (name == "small_cnn") {
    return std::make_shared<SmallCnn>(num_classes, multi_head, dropout);
  }
  if (name == "resnet18") {
    return std::make_shared<ResNet<BasicBlock>>(
        std::array<int, 4>{2, 2, 2, 2}, num_classes, multi_head, dropout);
  }
  if (name == "resnet34") {
    return std::make_shared<ResNet<BasicBlock>>(
        std::array<int, 4>{3, 4, 6, 3}, num_classes, multi_head, dropout);
  }
  if (name == "resnet50") {
    return std::make_shared<ResNet<Bottleneck>>(
        std::array<int, 4>{3, 4, 6, 3}, num_classes, multi_head, dropout);
  }
  return nullptr;
}

// --- TorchScript -------------------------------------------------------------

// The first tensor of what a scripted forward returned: a Tensor, or the
// first element of a tuple (e.g. GoogLeNet's outputs with auxiliary logits).
torch::Tensor OutputTensor(const c10::IValue& out) {
  torch::Tensor tensor;
  if (out.isTensor()) {
    tensor = out.toTensor();
  } else if (out.isTuple()) {
    const auto& elements = out.toTupleRef().elements();
    if (!elements.empty() && elements[0].isTensor()) {
      tensor = elements[0].toTensor();
    }
  }
  TORCH_CHECK(tensor.defined(), "the TorchScript module's forward returned ",
              out.tagKind(), ", expected a Tensor");
  return tensor;
}

class TorchScriptClassifier : public Classifier {
 public:
  TorchScriptClassifier(std::string path, torch::jit::Module module,
                        std::string head, int num_classes, bool multi_head)
      : path_(std::move(path)),
        module_(std::move(module)),
        head_(std::move(head)),
        num_classes_(num_classes),
        multi_head_(multi_head),
        outputs_(multi_head ? kMultiHeadOutputs : num_classes),
        parameter_count_(CountParameters(Parameters())) {}

  // Runs the module and returns its N x outputs() tensor.
  torch::Tensor RawForward(const torch::Tensor& images) {
    torch::Tensor out = OutputTensor(module_.forward({images}));
    TORCH_CHECK(out.dim() == 2 && out.size(0) == images.size(0) &&
                    out.size(1) == outputs_,
                "the TorchScript module ", path_, " returned ",
                ShapeString(out), " for ", images.size(0),
                " images, expected [", images.size(0), ", ", outputs_, "]");
    return out;
  }

  ClassifierOutput Forward(const torch::Tensor& images) override {
    return FromRaw(RawForward(images));
  }

  std::vector<std::string> ActivationLayers() const override {
    std::vector<std::string> names;
    for (const auto& child : module_.named_children()) {
      names.push_back(child.name);
    }
    return names;
  }

  std::string DefaultActivationLayer() const override { return ""; }

  absl::StatusOr<ActivationOutput> ForwardWithActivation(
      const torch::Tensor& images, const std::string& layer) override;

 private:
  // How the module's top-level children ran in order on some images.
  struct ChainPlan {
    std::vector<torch::jit::Module> children;
    std::vector<std::string> names;
    // Flatten the input from dimension 1 before child i.
    std::vector<bool> flatten;
    // The default layer: the last child with parameters and a 4-D output.
    std::string default_layer;
    // The output size of each child.
    std::vector<std::vector<int64_t>> shapes;
  };

  // Runs the children in order without gradients, deciding where to
  // flatten, and checks that the result equals the module's own forward.
  absl::StatusOr<ChainPlan> PlanChain(const torch::Tensor& images);

  ClassifierOutput FromRaw(const torch::Tensor& raw) const {
    ClassifierOutput out;
    if (!multi_head_) {
      out.logits = raw;
      return out;
    }
    out.mask = raw.narrow(1, 0, kMaskHeadClasses);
    out.gender = raw.narrow(1, kMaskHeadClasses, kGenderHeadClasses);
    out.age = raw.narrow(1, kMaskHeadClasses + kGenderHeadClasses,
                         kAgeHeadClasses);
    out.logits = CombineHeads(out.mask, out.gender, out.age);
    return out;
  }

 public:
  std::vector<NamedParameter> Parameters() override {
    std::vector<NamedParameter> out;
    for (const auto& m : module_.named_modules()) {
      const bool norm = IsNormClass(m.value.type()->name()->qualifiedName());
      for (const auto& p : m.value.named_parameters(/*recurse=*/false)) {
        if (!p.value.requires_grad()) continue;  // frozen at export
        out.push_back({JoinName(m.name, p.name), p.value,
                       norm || IsBiasName(p.name)});
      }
    }
    return out;
  }

  std::vector<std::pair<std::string, torch::Tensor>> StateTensors() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& m : module_.named_modules()) {
      for (const auto& p : m.value.named_parameters(false)) {
        out.emplace_back(JoinName(m.name, p.name), p.value);
      }
      for (const auto& b : m.value.named_buffers(false)) {
        out.emplace_back(JoinName(m.name, b.name), b.value);
      }
    }
    return out;
  }

  void SetTraining(bool training) override { module_.train(training); }

  void To(const torch::Device& device, bool channels_last) override {
    module_.to(device);
    if (channels_last) {
      std::vector<torch::Tensor> tensors;
      for (const torch::Tensor& p : module_.parameters()) tensors.push_back(p);
      for (const torch::Tensor& b : module_.buffers()) tensors.push_back(b);
      ToChannelsLast(tensors);
    }
  }

  int num_classes() const override { return num_classes_; }
  bool multi_head() const override { return multi_head_; }

  std::string Describe() const override {
    return absl::StrCat(
        "torchscript ", path_,
        head_.empty() ? "" : absl::StrCat(" (new head ", head_, ")"),
        multi_head_ ? " (multi-head)" : "", ", ",
        FormatMillions(parameter_count_), " parameters");
  }

 private:
  std::string path_;
  torch::jit::Module module_;
  std::string head_;
  int num_classes_;
  bool multi_head_;
  int64_t outputs_;
  int64_t parameter_count_;
};

bool HasParameters(const torch::jit::Module& module) {
  for (const torch::Tensor& p : module.parameters()) {
    (void)p;
    return true;
  }
  return false;
}

absl::StatusOr<TorchScriptClassifier::ChainPlan>
TorchScriptClassifier::PlanChain(const torch::Tensor& images) {
  const auto fail = [&](const std::string& why) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Grad-CAM on the TorchScript module ", path_,
        " runs its top-level children in order, but ", why,
        "; Grad-CAM needs a module whose forward chains its children "
        "(torchvision's ResNet, VGG, MobileNet, EfficientNet) or a built-in "
        "model"));
  };
  ChainPlan plan;
  for (const auto& child : module_.named_children()) {
    plan.names.push_back(child.name);
    plan.children.push_back(child.value);
  }
  if (plan.children.empty()) return fail("it has no children");
  torch::NoGradGuard no_grad;
  torch::Tensor reference = RawForward(images);
  torch::Tensor x = images;
  for (size_t i = 0; i < plan.children.size(); ++i) {
    c10::IValue out;
    bool flatten = false;
    try {
      out = plan.children[i].forward({x});
    } catch (const std::exception& first) {
      if (x.dim() <= 2) {
        return fail(absl::StrCat("child '", plan.names[i],
                                 "' fails on the output of the previous "
                                 "one: ",
                                 first.what()));
      }
      // A classifier after pooling expects the flattened features.
      flatten = true;
      try {
        out = plan.children[i].forward({x.flatten(1)});
      } catch (const std::exception& second) {
        return fail(absl::StrCat("child '", plan.names[i], "' fails on ",
                                 ShapeString(x), " and on it flattened: ",
                                 second.what()));
      }
    }
    if (!out.isTensor()) {
      return fail(absl::StrCat("child '", plan.names[i], "' returns ",
                               out.tagKind(), ", not a Tensor"));
    }
    x = out.toTensor();
    plan.flatten.push_back(flatten);
    plan.shapes.push_back(x.sizes().vec());
    if (x.dim() == 4 && HasParameters(plan.children[i])) {
      plan.default_layer = plan.names[i];
    }
  }
  if (!x.sizes().equals(reference.sizes()) ||
      !torch::allclose(x.to(torch::kFloat), reference.to(torch::kFloat),
                       /*rtol=*/1e-3, /*atol=*/1e-4)) {
    return fail(absl::StrCat(
        "that gives ", ShapeString(x), " unlike its forward's ",
        ShapeString(reference),
        x.sizes().equals(reference.sizes()) ? " (different values)" : ""));
  }
  return plan;
}

absl::StatusOr<ActivationOutput> TorchScriptClassifier::ForwardWithActivation(
    const torch::Tensor& images, const std::string& layer) {
  const std::vector<std::string> layers = ActivationLayers();
  if (!layer.empty() &&
      std::find(layers.begin(), layers.end(), layer) == layers.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown layer '", layer, "' of the TorchScript module ", path_,
        " (its top-level children: ",
        layers.empty() ? "none" : absl::StrJoin(layers, ", "), ")"));
  }
  absl::StatusOr<ChainPlan> plan = PlanChain(images);
  if (!plan.ok()) return plan.status();
  ActivationOutput out;
  out.layer = layer.empty() ? plan->default_layer : layer;
  if (out.layer.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the TorchScript module ", path_,
        " has no top-level child with parameters and an N x C x h x w "
        "output to take Grad-CAM at; name one (children: ",
        absl::StrJoin(layers, ", "), ")"));
  }
  torch::Tensor x = images;
  for (size_t i = 0; i < plan->children.size(); ++i) {
    if (plan->flatten[i]) x = x.flatten(1);
    x = plan->children[i].forward({x}).toTensor();
    if (plan->names[i] == out.layer) {
      if (x.dim() != 4) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer '", out.layer, "' of the TorchScript module ", path_,
            " outputs ", ShapeString(x),
            ", not N x C x h x w; layers with such outputs: ",
            [&] {
              std::vector<std::string> spatial;
              for (size_t j = 0; j < plan->shapes.size(); ++j) {
                if (plan->shapes[j].size() == 4) {
                  spatial.push_back(plan->names[j]);
                }
              }
              return spatial.empty() ? std::string("none")
                                     : absl::StrJoin(spatial, ", ");
            }()));
      }
      out.activation = x;
      x = x.clone();
    }
  }
  TORCH_CHECK(x.dim() == 2 && x.size(0) == images.size(0) &&
                  x.size(1) == outputs_,
              "the TorchScript module ", path_, " returned ", ShapeString(x),
              " for ", images.size(0), " images, expected [", images.size(0),
              ", ", outputs_, "]");
  out.output = FromRaw(x);
  return out;
}

std::string ChildNames(const torch::jit::Module& module) {
  std::vector<std::string> names;
  for (const auto& child : module.named_children()) names.push_back(child.name);
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// Replaces the weight and bias of the Linear submodule at dotted `path` by
// freshly initialised ones with `outputs` rows. The module keeps its type
// (and so its compiled forward, which reads the attributes at run time).
absl::Status ReplaceHead(torch::jit::Module& root, const std::string& file,
                         const std::string& path, int64_t outputs) {
  const auto fail = [&](const std::string& why) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model.head_attribute '", path, "': the TorchScript module ", file,
        " ", why));
  };
  torch::jit::Module head = root;
  std::string walked;
  for (const absl::string_view part : absl::StrSplit(path, '.')) {
    const std::string name(part);
    if (name.empty() || !head.hasattr(name) || !head.attr(name).isModule()) {
      return fail(absl::StrCat(
          "has no submodule '", name, "'",
          walked.empty() ? "" : absl::StrCat(" in '", walked, "'"),
          " (submodules there: ", ChildNames(head), ")"));
    }
    head = head.attr(name).toModule();
    walked = JoinName(walked, name);
  }
  if (!head.hasattr("weight") || !head.attr("weight").isTensor() ||
      head.attr("weight").toTensor().dim() != 2) {
    return fail(absl::StrCat("has no 2-D `weight` at that path (it is a ",
                             head.type()->name()->name(),
                             ", not a Linear layer)"));
  }
  const torch::Tensor old_weight = head.attr("weight").toTensor();
  torch::nn::Linear fresh(old_weight.size(1), outputs);
  const torch::TensorOptions options = old_weight.options();
  head.register_parameter(
      "weight", fresh->weight.detach().to(options).requires_grad_(true),
      /*is_buffer=*/false);
  if (head.hasattr("bias") && head.attr("bias").isTensor()) {
    head.register_parameter(
        "bias", fresh->bias.detach().to(options).requires_grad_(true),
        /*is_buffer=*/false);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Classifier>> LoadTorchScript(
    const v1::ModelConfig& config, int num_classes, int probe_height,
    int probe_width) {
  const std::string& file = config.torchscript();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model.torchscript: ", file, ": no such file",
        ec ? absl::StrCat(" (", ec.message(), ")") : ""));
  }
  const int64_t outputs =
      config.multi_head() ? kMultiHeadOutputs : num_classes;
  torch::jit::Module module;
  try {
    module = torch::jit::load(file, torch::kCPU);
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("model.torchscript: ", file,
                     " is not a loadable TorchScript module: ", e.what()));
  }
  try {
    if (!config.head_attribute().empty()) {
      absl::Status s =
          ReplaceHead(module, file, config.head_attribute(), outputs);
      if (!s.ok()) return s;
    }
    module.train(true);
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model.head_attribute '", config.head_attribute(), "': replacing the "
        "head of ", file, ": ", e.what()));
  }

  // One forward pass on a zero batch checks the output size (also after a
  // head replacement: a frozen module would have inlined the old head).
  torch::Tensor out;
  try {
    torch::NoGradGuard no_grad;
    module.eval();
    out = OutputTensor(module.forward(
        {torch::zeros({1, 3, probe_height, probe_width})}));
    module.train(true);
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model.torchscript: ", file, ": a forward pass on a 1x3x",
        probe_height, "x", probe_width, " zero batch failed: ", e.what()));
  }
  if (out.dim() != 2 || out.size(0) != 1 || out.size(1) != outputs) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model.torchscript: ", file, " outputs ", ShapeString(out),
        " for one image, expected [1, ", outputs, "]",
        config.multi_head() ? " (multi-head: 3 + 2 + 3 outputs)" : "",
        config.head_attribute().empty()
            ? "; set model.head_attribute to replace the head "
              "(tools/export_model.py prints it)"
            : ""));
  }
  return std::make_unique<TorchScriptClassifier>(
      file, std::move(module), config.head_attribute(), num_classes,
      config.multi_head());
}

absl::Status CheckConfig(const v1::ModelConfig& config, int num_classes,
                         int probe_height, int probe_width) {
  if (num_classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: num_classes must be >= 1, got ", num_classes));
  }
  if (config.num_classes() != 0 &&
      config.num_classes() != static_cast<uint32_t>(num_classes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.num_classes is ", config.num_classes(), " but the task has ",
        num_classes, " classes"));
  }
  if (config.multi_head() && num_classes != kMultiHeadClasses) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.multi_head needs the 18 classes of the mask task (mask 3 x "
        "gender 2 x age 3), got ",
        num_classes));
  }
  if (!(config.dropout() >= 0.0 && config.dropout() < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.dropout must be in [0, 1), got ", config.dropout()));
  }
  if (probe_height < 1 || probe_width < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: probe size must be positive, got ", probe_height,
                     "x", probe_width));
  }
  if (config.name() == "torchscript") {
    if (config.torchscript().empty()) {
      return absl::InvalidArgumentError(
          "model.torchscript: required by model.name torchscript (the path "
          "of a module exported by tools/export_model.py)");
    }
  } else if (!config.torchscript().empty() ||
             !config.head_attribute().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.", config.torchscript().empty() ? "head_attribute" : "torchscript",
        " is only used with model.name torchscript, but model.name is '",
        config.name(), "'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Classifier>> CreateClassifier(
    const v1::ModelConfig& config, int num_classes, uint64_t seed,
    int probe_height, int probe_width) {
  const std::string& name = config.name();
  if (name != "small_cnn" && name != "resnet18" && name != "resnet34" &&
      name != "resnet50" && name != "torchscript") {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.name: unknown model '", name,
        "' (expected small_cnn, resnet18, resnet34, resnet50 or torchscript)"));
  }
  if (absl::Status s = CheckConfig(config, num_classes, probe_height,
                                   probe_width);
      !s.ok()) {
    return s;
  }
  try {
    torch::manual_seed(seed);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("model: seeding: ", e.what()));
  }
  if (name == "torchscript") {
    if (config.dropout() > 0.0) {
      LOG(WARNING) << "model.dropout " << config.dropout()
                   << " is not applied to a TorchScript model (its own "
                      "dropout layers stay as exported)";
    }
    return LoadTorchScript(config, num_classes, probe_height, probe_width);
  }
  try {
    std::shared_ptr<NetworkImpl> network = BuildNetwork(
        name, num_classes, config.multi_head(), config.dropout());
    CHECK(network != nullptr) << name;  // names were checked above
    InitWeights(*network);
    return std::make_unique<BuiltinClassifier>(name, std::move(network),
                                               num_classes,
                                               config.multi_head());
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("model ", name, ": building the network: ", e.what()));
  }
}

}  // namespace sweepq::worker
