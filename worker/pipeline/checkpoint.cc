#include "worker/pipeline/checkpoint.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace sweepq::worker {
namespace {

// Archive keys. Model tensors are stored as model/t<i> with their names in
// model/names (archive keys cannot hold the dots of parameter names).
constexpr char kFormatVersion[] = "format_version";
constexpr char kModel[] = "model";
constexpr char kModelNames[] = "names";
constexpr char kOptimizer[] = "optimizer";
constexpr char kSchedule[] = "schedule";
constexpr char kEpoch[] = "epoch";
constexpr char kGlobalStep[] = "global_step";
constexpr char kBestEpoch[] = "best_epoch";
constexpr char kBestValue[] = "best_value";
constexpr char kBadEpochs[] = "bad_epochs";
constexpr char kBestConfusion[] = "best_confusion";
constexpr char kMetricsCsv[] = "metrics_csv";
constexpr char kConfigJson[] = "config_json";
constexpr char kDataFingerprint[] = "data_fingerprint";

std::string TensorKey(size_t i) { return absl::StrCat("t", i); }

torch::Tensor ConfusionToTensor(
    const std::vector<std::vector<int64_t>>& confusion) {
  const int64_t n = static_cast<int64_t>(confusion.size());
  torch::Tensor t = torch::zeros({n, n}, torch::kLong);
  auto a = t.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n && j < static_cast<int64_t>(confusion[i].size());
         ++j) {
      a[i][j] = confusion[i][j];
    }
  }
  return t;
}

std::vector<std::vector<int64_t>> TensorToConfusion(const torch::Tensor& t) {
  const torch::Tensor cpu = t.to(torch::kCPU, torch::kLong).contiguous();
  std::vector<std::vector<int64_t>> out;
  if (cpu.dim() != 2) return out;
  auto a = cpu.accessor<int64_t, 2>();
  for (int64_t i = 0; i < cpu.size(0); ++i) {
    std::vector<int64_t> row;
    for (int64_t j = 0; j < cpu.size(1); ++j) row.push_back(a[i][j]);
    out.push_back(std::move(row));
  }
  return out;
}

// Reads a scalar entry; throws c10::Error when missing or mistyped.
c10::IValue ReadValue(torch::serialize::InputArchive& archive,
                      const std::string& key) {
  c10::IValue value;
  archive.read(key, value);
  return value;
}

}  // namespace

absl::Status SaveCheckpoint(const std::string& path, Classifier& model,
                            const torch::optim::Optimizer& optimizer,
                            const LrSchedule& schedule,
                            const TrainingProgress& progress,
                            const std::string& config_json,
                            const std::string& data_fingerprint) {
  const std::string temp = path + ".tmp";
  try {
    torch::serialize::OutputArchive archive;
    archive.write(kFormatVersion, c10::IValue(kCheckpointFormatVersion));

    torch::serialize::OutputArchive model_archive;
    std::vector<std::string> names;
    const auto tensors = model.StateTensors();
    for (size_t i = 0; i < tensors.size(); ++i) {
      names.push_back(tensors[i].first);
      model_archive.write(TensorKey(i), tensors[i].second.detach(),
                          /*is_buffer=*/true);
    }
    model_archive.write(kModelNames, c10::IValue(absl::StrJoin(names, "\n")));
    archive.write(kModel, model_archive);

    torch::serialize::OutputArchive optimizer_archive;
    optimizer.save(optimizer_archive);
    archive.write(kOptimizer, optimizer_archive);

    torch::serialize::OutputArchive schedule_archive;
    schedule.Save(schedule_archive);
    archive.write(kSchedule, schedule_archive);

    archive.write(kEpoch, c10::IValue(static_cast<int64_t>(progress.epoch)));
    archive.write(kGlobalStep, c10::IValue(progress.global_step));
    archive.write(kBestEpoch,
                  c10::IValue(static_cast<int64_t>(progress.best_epoch)));
    archive.write(kBestValue, c10::IValue(progress.best_value));
    archive.write(kBadEpochs,
                  c10::IValue(static_cast<int64_t>(progress.bad_epochs)));
    archive.write(kBestConfusion, ConfusionToTensor(progress.best_confusion),
                  /*is_buffer=*/true);
    archive.write(kMetricsCsv, c10::IValue(progress.metrics_csv));
    archive.write(kConfigJson, c10::IValue(config_json));
    archive.write(kDataFingerprint, c10::IValue(data_fingerprint));
    archive.save_to(temp);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(
        "writing checkpoint ", temp, ": ", e.what_without_backtrace()));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("rename ", temp, " to ", path, ": ",
                                            std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Read(
    const std::string& path, const torch::Device& device) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", path, " not found"));
  }
  std::unique_ptr<Checkpoint> checkpoint(new Checkpoint());
  checkpoint->path_ = path;
  TrainingProgress& p = checkpoint->progress_;
  try {
    checkpoint->archive_.load_from(path, device);
    torch::serialize::InputArchive& archive = checkpoint->archive_;
    c10::IValue version;
    if (!archive.try_read(kFormatVersion, version) || !version.isInt()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a sweepq checkpoint (no format_version)"));
    }
    if (version.toInt() != kCheckpointFormatVersion) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": checkpoint format ", version.toInt(), ", this build reads ",
          kCheckpointFormatVersion));
    }
    p.epoch = static_cast<int>(ReadValue(archive, kEpoch).toInt());
    p.global_step = ReadValue(archive, kGlobalStep).toInt();
    p.best_epoch = static_cast<int>(ReadValue(archive, kBestEpoch).toInt());
    p.best_value = ReadValue(archive, kBestValue).toDouble();
    p.bad_epochs = static_cast<int>(ReadValue(archive, kBadEpochs).toInt());
    torch::Tensor confusion;
    archive.read(kBestConfusion, confusion, /*is_buffer=*/true);
    p.best_confusion = TensorToConfusion(confusion);
    p.metrics_csv = ReadValue(archive, kMetricsCsv).toStringRef();
    checkpoint->config_json_ = ReadValue(archive, kConfigJson).toStringRef();
    checkpoint->data_fingerprint_ =
        ReadValue(archive, kDataFingerprint).toStringRef();
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a readable sweepq checkpoint: ", e.what_without_backtrace()));
  }
  return checkpoint;
}

absl::Status Checkpoint::RestoreModel(Classifier& model) {
  try {
    torch::serialize::InputArchive model_archive;
    archive_.read(kModel, model_archive);
    const std::vector<std::string> names = absl::StrSplit(
        ReadValue(model_archive, kModelNames).toStringRef(), '\n',
        absl::SkipEmpty());
    const auto tensors = model.StateTensors();
    if (names.size() != tensors.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": holds ", names.size(),
                       " model tensors, the model has ", tensors.size()));
    }
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto& [name, target] = tensors[i];
      if (names[i] != name) {
        return absl::InvalidArgumentError(
            absl::StrCat(path_, ": model tensor ", i, " is ", names[i],
                         ", the model's is ", name));
      }
      torch::Tensor value;
      model_archive.read(TensorKey(i), value, /*is_buffer=*/true);
      if (!value.sizes().equals(target.sizes())) {
        return absl::InvalidArgumentError(absl::StrCat(
            path_, ": model tensor ", name, " has shape ",
            c10::str(value.sizes()), ", the model's is ",
            c10::str(target.sizes())));
      }
      target.copy_(value);
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": cannot restore the model: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

absl::Status Checkpoint::Restore(Classifier& model,
                                 torch::optim::Optimizer& optimizer,
                                 LrSchedule& schedule) {
  RETURN_IF_ERROR(RestoreModel(model));
  try {
    torch::serialize::InputArchive optimizer_archive;
    archive_.read(kOptimizer, optimizer_archive);
    optimizer.load(optimizer_archive);

    torch::serialize::InputArchive schedule_archive;
    archive_.read(kSchedule, schedule_archive);
    absl::Status s = schedule.Load(schedule_archive);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": schedule state: ", s.message()));
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": cannot restore the checkpoint: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

}  // namespace sweepq::worker
