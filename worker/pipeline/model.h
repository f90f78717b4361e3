// Classifiers the trainer fine-tunes: built-in models (a small CNN for tests
// and CPU smoke runs; ResNet-18/34/50 with torchvision's topology) and
// TorchScript modules exported from Python (tools/export_model.py), behind
// one interface so the training loop does not care which it has.
//
// Multi-head (ModelConfig.multi_head, mask data set only): three heads on
// the shared features (mask state 3, gender 2, age band 3); `logits` of the
// output is then the 18 combined log-probabilities
//   logits[c] = log_softmax(mask)[c / 6] + log_softmax(gender)[(c / 3) % 2]
//               + log_softmax(age)[c % 3],
// so arg-max and soft-max over `logits` are the 18-class prediction.
//
// Thread safety: a Classifier is used by one thread at a time.
#ifndef SWEEPQ_WORKER_PIPELINE_MODEL_H_
#define SWEEPQ_WORKER_PIPELINE_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sweepq/v1/run_config.pb.h"
#include "torch/types.h"

namespace sweepq::worker {

// A trainable tensor with its dotted name ("layer1.0.conv1.weight").
struct NamedParameter {
  std::string name;
  torch::Tensor tensor;
  // True for biases and the weights of normalisation layers (BatchNorm,
  // GroupNorm, LayerNorm): the tensors OptimizerConfig.no_decay_norm_bias
  // exempts from weight decay.
  bool norm_or_bias = false;
};

// What Classifier::Forward returns.
struct ClassifierOutput {
  // N x num_classes: logits (single head) or combined log-probabilities
  // (multi-head, see above).
  torch::Tensor logits;
  // Multi-head only: N x 3, N x 2, N x 3 logits; undefined otherwise.
  torch::Tensor mask;
  torch::Tensor gender;
  torch::Tensor age;
};

// What Classifier::ForwardWithActivation returns.
struct ActivationOutput {
  // What Forward returns for the same images.
  ClassifierOutput output;
  // N x C x h x w: the output of the named layer, part of the autograd
  // graph of `output` (so gradients of the logits with respect to it can
  // be taken when grad mode is on).
  torch::Tensor activation;
  // The layer's name (the default layer's when none was asked for).
  std::string layer;
};

// Number of classes of each head of a multi-head model.
inline constexpr int kMaskHeadClasses = 3;
inline constexpr int kGenderHeadClasses = 2;
inline constexpr int kAgeHeadClasses = 3;

// An image classifier.
class Classifier {
 public:
  virtual ~Classifier() = default;

  // Runs the model on `images` (N x 3 x H x W float, on the model's
  // device). Throws c10::Error like any LibTorch call; callers catch.
  virtual ClassifierOutput Forward(const torch::Tensor& images) = 0;

  // Returns the names of the layers whose output ForwardWithActivation can
  // return, in the order the forward pass runs them:
  //   - small_cnn: features.0 ... features.15 (each conv, BatchNorm, ReLU
  //     and max-pool of the four blocks) and `features` (= features.15);
  //   - resnet*: conv1, bn1, relu, maxpool, then each stage's blocks
  //     (layer1.0, layer1.1, ...) and stages (layer1 ... layer4);
  //   - torchscript: the module's top-level children (see
  //     ForwardWithActivation).
  virtual std::vector<std::string> ActivationLayers() const = 0;

  // Returns the layer Grad-CAM looks at by default: the rectified output of
  // the last convolution (as in Selvaraju et al.): features.14 (the last
  // block's ReLU, before its max-pool) for small_cnn, layer4 for the
  // ResNets, and "" for TorchScript (decided per forward pass: the last
  // top-level child with a 4-D output).
  virtual std::string DefaultActivationLayer() const = 0;

  // Runs the model on `images` like Forward and also returns the output of
  // `layer` (one of ActivationLayers(); "" = the default layer). Returns
  // INVALID_ARGUMENT naming the layer and listing the valid names for an
  // unknown one, or one whose output is not N x C x h x w. A TorchScript
  // module is run as its top-level children in order (a 4-D tensor is
  // flattened before a child that needs 2-D input, e.g. `fc` after
  // `avgpool`), which must give what its own forward gives on `images`:
  // FAILED_PRECONDITION says so when it does not (the module's forward
  // does more than chain its children, e.g. DenseNet's functional ReLU and
  // pooling). Throws c10::Error like Forward; callers catch.
  virtual absl::StatusOr<ActivationOutput> ForwardWithActivation(
      const torch::Tensor& images, const std::string& layer) = 0;

  // Returns the trainable parameters, in a fixed order.
  virtual std::vector<NamedParameter> Parameters() = 0;

  // Returns every tensor a checkpoint must hold (parameters and buffers
  // such as BatchNorm running statistics) by name, in a fixed order. The
  // tensors alias the model's: copying into them (under NoGradGuard)
  // restores a checkpoint.
  virtual std::vector<std::pair<std::string, torch::Tensor>> StateTensors() = 0;

  // Switches training mode (dropout, BatchNorm statistics) on or off.
  virtual void SetTraining(bool training) = 0;

  // Moves the model to `device` (and to channels-last memory format when
  // `channels_last`).
  virtual void To(const torch::Device& device, bool channels_last) = 0;

  // Returns the classes of `logits`.
  virtual int num_classes() const = 0;

  // Returns true for a multi-head model.
  virtual bool multi_head() const = 0;

  // Returns a one-line description ("resnet18, 11.2M parameters").
  virtual std::string Describe() const = 0;
};

// Creates the classifier of `config` for `num_classes` classes
// (config.num_classes when set must equal it), with weights initialised
// from `seed` (the global LibTorch generator is seeded with it).
//   - small_cnn: 4 conv-BN-ReLU-maxpool blocks (32, 64, 128, 256 channels),
//     global average pool, dropout (config.dropout), linear.
//   - resnet18 / resnet34 (BasicBlock [2,2,2,2] / [3,4,6,3]) and resnet50
//     (Bottleneck [3,4,6,3], stride on the 3x3 conv) as torchvision builds
//     them, with a new `fc` of num_classes outputs (after dropout when
//     config.dropout > 0).
//   - torchscript: loads config.torchscript (torch::jit::load). When
//     config.head_attribute is set, that attribute (a Linear submodule,
//     e.g. "fc" or "classifier.1") is replaced by a fresh Linear with
//     num_classes outputs (multi-head: 8 outputs split 3/2/3); otherwise
//     the module's output must already have num_classes (8 for
//     multi-head) columns, which is checked with one forward pass on a
//     zero batch of `probe_height` x `probe_width`.
// Multi-head requires num_classes == 18.
// Returns INVALID_ARGUMENT for an unknown name, a missing torchscript path
// or a contradiction (multi-head with num_classes != 18), and
// FAILED_PRECONDITION naming the file for a TorchScript module that does not
// load, has no attribute `head_attribute`, or has the wrong output size.
absl::StatusOr<std::unique_ptr<Classifier>> CreateClassifier(
    const v1::ModelConfig& config, int num_classes, uint64_t seed,
    int probe_height = 128, int probe_width = 96);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_MODEL_H_
