#include "worker/pipeline/job.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>

#include "ATen/Parallel.h"
#include "absl/strings/str_cat.h"
#include "common/run_config.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "torch/cuda.h"
#include "worker/pipeline/checkpoint.h"
#include "worker/pipeline/dataset.h"
#include "worker/pipeline/gradcam.h"
#include "worker/pipeline/predict.h"

namespace sweepq::worker {
namespace fs = std::filesystem;

namespace {

// Returns the class names a source run's model predicts (see SourceModel).
absl::StatusOr<std::vector<std::string>> SourceClassNames(
    const v1::RunConfig& config, const std::string& path,
    const std::string& data_dir) {
  const v1::DataConfig& data = config.data();
  if (data.layout().empty() || data.layout() == "mask") {
    const DatasetOptions options = DatasetOptionsFromConfig(data, data_dir);
    return MaskClassNames(options.age_bounds);
  }
  if (data_dir.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": data.layout ", data.layout(),
        " without model.num_classes: the class count comes from the data "
        "set, and no data directory was given"));
  }
  absl::StatusOr<Dataset> dataset =
      LoadDataset(DatasetOptionsFromConfig(data, data_dir));
  if (!dataset.ok()) {
    return absl::Status(dataset.status().code(),
                        absl::StrCat(path, ": the classes of its data set: ",
                                     dataset.status().message()));
  }
  return dataset->class_names;
}

}  // namespace

torch::Device JobDevice() {
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0)
                                     : torch::Device(torch::kCPU);
}

std::string JobCacheDir(const JobOptions& options) {
  if (!options.cache_dir.empty()) return options.cache_dir;
  std::error_code ec;
  fs::path out = fs::absolute(options.out_dir, ec).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();  // a trailing slash
  return (out.parent_path() / "cache").string();
}

absl::StatusOr<std::unique_ptr<FaceCropper>> CreateSourceCropper(
    const v1::RunConfig& source, const std::string& cache_dir) {
  if (!source.crop().enabled()) return std::unique_ptr<FaceCropper>();
  v1::CropConfig crop = source.crop();
  crop.clear_cache_dir();
  return FaceCropper::Create(FaceCropOptionsFromConfig(crop, cache_dir));
}

absl::StatusOr<LoaderOptions> SourceEvalLoaderOptions(
    const v1::RunConfig& source, int batch_size) {
  ASSIGN_OR_RETURN(LoaderOptions options,
                   LoaderOptionsFromConfig(source, /*train=*/false));
  options.batch_size = std::max(1, batch_size);
  // As the trainer's validation: full decodes, so the pixels do not depend
  // on whether the detection cache was warm.
  options.reduced_decoding = false;
  options.torch_threads = 0;
  return options;
}

TrainFailure ClassifyJobError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kResourceExhausted:
      return TrainFailure::kPermanent;
    default:
      return TrainFailure::kRetryable;
  }
}

absl::StatusOr<SourceModel> LoadSourceModel(const std::string& path,
                                            const torch::Device& device,
                                            int num_classes,
                                            const std::string& data_dir) {
  // Read on the CPU: the model is built there and moved afterwards.
  ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint,
                   Checkpoint::Read(path, torch::kCPU));
  SourceModel source;
  source.path = path;
  if (absl::Status s =
          RunConfigFromJson(checkpoint->config_json(), &source.config, path);
      !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the stored config: ", s.message()));
  }
  if (source.config.has_job()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": written by a job, not by a training run"));
  }
  const v1::RunConfig& config = source.config;
  if (num_classes <= 0 && config.model().num_classes() > 0) {
    num_classes = static_cast<int>(config.model().num_classes());
  }
  absl::StatusOr<std::vector<std::string>> names =
      SourceClassNames(config, path, data_dir);
  // Without the names the count must be known; with a known count, names
  // that do not fit it are replaced by "class <i>".
  if (!names.ok() && num_classes <= 0) return names.status();
  if (num_classes <= 0) num_classes = static_cast<int>(names->size());
  if (names.ok() && static_cast<int>(names->size()) == num_classes) {
    source.class_names = *std::move(names);
  } else {
    for (int c = 0; c < num_classes; ++c) {
      source.class_names.push_back(absl::StrCat("class ", c));
    }
  }

  ASSIGN_OR_RETURN(
      source.model,
      CreateClassifier(config.model(), num_classes, config.seed(),
                       static_cast<int>(config.data().image_height()),
                       static_cast<int>(config.data().image_width())));
  RETURN_IF_ERROR(checkpoint->RestoreModel(*source.model));
  try {
    source.model->To(device,
                     device.is_cuda() && config.train().channels_last());
    source.model->SetTraining(false);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(path, ": moving the model to ",
                                            device.str(), ": ",
                                            e.what_without_backtrace()));
  }
  return source;
}

TrainResult RunJob(const JobOptions& options) {
  CHECK(options.events != nullptr) << "JobOptions.events is required";
  TrainEventWriter events(options.events);
  auto fail = [&events](TrainFailure kind, absl::Status status) {
    LOG(ERROR) << status;
    events.Error(status.message(), kind == TrainFailure::kRetryable, 0, 0);
    TrainResult result;
    result.status = std::move(status);
    result.failure = kind;
    return result;
  };
  const v1::RunConfig& config = options.config;
  if (!config.has_job()) {
    return fail(TrainFailure::kBadConfig,
                absl::InvalidArgumentError("job: the config has no job"));
  }
  if (absl::Status s = ValidateRunConfig(config); !s.ok()) {
    return fail(TrainFailure::kBadConfig, s);
  }
  const int sources = config.job().source_runs_size();
  if (options.model_paths.empty()) {
    return fail(TrainFailure::kBadConfig,
                absl::InvalidArgumentError(absl::StrCat(
                    "--models: required for a job (", sources,
                    " checkpoint(s), one per job.source_runs)")));
  }
  if (static_cast<int>(options.model_paths.size()) != sources) {
    return fail(TrainFailure::kBadConfig,
                absl::InvalidArgumentError(absl::StrCat(
                    "--models: ", options.model_paths.size(),
                    " checkpoint(s) for ", sources,
                    " job.source_runs (one per source run, in order)")));
  }
  for (size_t i = 0; i < options.model_paths.size(); ++i) {
    if (options.model_paths[i].empty()) {
      return fail(TrainFailure::kBadConfig,
                  absl::InvalidArgumentError(
                      absl::StrCat("--models: path ", i + 1, " is empty")));
    }
  }

  JobOptions resolved = options;
  int threads = options.threads >= 0 ? options.threads
                                     : static_cast<int>(config.threads());
  if (threads <= 0) {
    threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  const int interop = config.interop_threads() > 0
                          ? static_cast<int>(config.interop_threads())
                          : 1;
  resolved.config.set_threads(static_cast<uint32_t>(threads));
  resolved.config.set_interop_threads(static_cast<uint32_t>(interop));
  resolved.threads = threads;
  try {
    at::set_num_threads(threads);
    SetInteropThreadsOnce(interop);
    if (config.job().kind() == "predict") return RunPredictJob(resolved);
    return RunGradCamJob(resolved);
  } catch (const std::exception& e) {
    // The jobs catch their own errors; this is a last resort.
    return fail(TrainFailure::kRetryable,
                absl::InternalError(absl::StrCat("unexpected error: ", e.what())));
  }
}

}  // namespace sweepq::worker
