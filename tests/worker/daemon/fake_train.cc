// fake-sweepq-train: a stand-in for sweepq-train that follows the contract
// of docs/train-events.md (command line, files in --out, JSON-lines events,
// exit statuses) without training anything, so that the worker daemon's
// tests can run in seconds and inject faults. Behaviour comes from the
// environment (the daemon passes its own environment on):
//
//   FAKE_TRAIN_EPOCH_MS   time per epoch (default 30)
//   FAKE_TRAIN_STEPS      step events per epoch (default 2)
//   FAKE_TRAIN_CKPT_BYTES size of each checkpoint (default 65536)
//   FAKE_TRAIN_MODE       "" (train to the end), "crash" (SIGABRT after the
//                         first epoch it trains), "exit:N" (an error event,
//                         then exit N, after the first epoch),
//                         "hang" (after the first epoch: ignore SIGTERM and
//                         sleep), "garbage" (also print a non-JSON line)
//   FAKE_TRAIN_RETRYABLE  the error event's retryable flag for exit:N
//                         ("1" = true; default false)
//   FAKE_TRAIN_REFUSE_RESUME  "1": refuse any --resume checkpoint (exit 2
//                         before the start event, as a checkpoint of an
//                         incompatible config or version is refused)
//
// val_f1 grows with the epoch towards a ceiling derived from a hash of the
// config, so different runs rank differently but reproducibly. A config
// with `job` (and --models) runs a fake job instead: see RunJob.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "google/protobuf/util/json_util.h"
#include "sweepq/v1/run_config.pb.h"

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Env(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : fallback;
}

void Emit(const std::string& json) {
  std::fputs(json.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void WriteAtomically(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << data;
  }
  std::rename(tmp.c_str(), path.c_str());
}

std::string Checkpoint(int epoch, size_t bytes) {
  std::string data = "FAKECKPT epoch=" + std::to_string(epoch) + "\n";
  uint32_t x = 2463534242u + static_cast<uint32_t>(epoch);
  while (data.size() < bytes) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    data.push_back(static_cast<char>(x & 0xff));
  }
  return data;
}

int ReadCheckpointEpoch(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  std::getline(in, line);
  const std::string prefix = "FAKECKPT epoch=";
  if (line.compare(0, prefix.size(), prefix) != 0) return -1;
  return std::atoi(line.c_str() + prefix.size());
}

int Usage(const std::string& why) {
  Emit("{\"event\":\"error\",\"time_ms\":" + std::to_string(NowMs()) +
       ",\"message\":" + Quote(why) + ",\"retryable\":false}");
  std::fprintf(stderr, "fake-sweepq-train: %s\n", why.c_str());
  return 2;
}

// A job (config.job): writes submission.csv holding, per --models file,
// its first line (the fake checkpoint's epoch), so tests can check which
// models the daemon fetched; a `metrics` event and the artifact.
int RunJob(const sweepq::v1::RunConfig& config, const std::string& models,
           const std::string& out) {
  std::vector<std::string> paths;
  std::stringstream list(models);
  for (std::string path; std::getline(list, path, ',');) paths.push_back(path);
  if (static_cast<int>(paths.size()) != config.job().source_runs_size()) {
    return Usage("--models must name one file per job.source_runs entry");
  }
  std::filesystem::create_directories(out);
  Emit("{\"event\":\"start\",\"time_ms\":" + std::to_string(NowMs()) +
       ",\"kind\":" + Quote(config.job().kind()) + "}");
  std::string submission = "source,first_line\n";
  for (size_t i = 0; i < paths.size(); ++i) {
    std::ifstream in(paths[i], std::ios::binary);
    std::string line;
    if (!std::getline(in, line)) return Usage("cannot read " + paths[i]);
    submission += std::to_string(config.job().source_runs(static_cast<int>(i))) +
                  "," + line + "\n";
  }
  WriteAtomically(out + "/submission.csv", submission);
  Emit("{\"event\":\"metrics\",\"time_ms\":" + std::to_string(NowMs()) +
       ",\"step\":1,\"metrics\":{\"pred_f1\":0.75,\"pred_acc\":0.8}}");
  Emit("{\"event\":\"artifact\",\"time_ms\":" + std::to_string(NowMs()) +
       ",\"name\":\"submission.csv\",\"path\":" +
       Quote(out + "/submission.csv") + "}");
  Emit("{\"event\":\"summary\",\"time_ms\":" + std::to_string(NowMs()) +
       ",\"kind\":" + Quote(config.job().kind()) + "}");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, data, out, resume, models;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--config") config_path = value;
    else if (flag == "--data") data = value;
    else if (flag == "--out") out = value;
    else if (flag == "--resume") resume = value;
    else if (flag == "--models") models = value;
    else if (flag == "--threads" || flag == "--cache-dir") continue;
    else return Usage("unknown flag " + flag);
  }
  if (config_path.empty() || data.empty() || out.empty()) {
    return Usage("--config, --data and --out are required");
  }
  std::ifstream config_in(config_path);
  std::stringstream config_text;
  config_text << config_in.rdbuf();
  sweepq::v1::RunConfig config;
  if (!google::protobuf::util::JsonStringToMessage(config_text.str(), &config)
           .ok()) {
    return Usage("cannot parse " + config_path);
  }
  if (!std::filesystem::is_directory(data)) {
    return Usage("--data " + data + " is not a directory");
  }
  std::filesystem::create_directories(out);

  if (config.has_job()) return RunJob(config, models, out);
  const int epochs = static_cast<int>(config.train().epochs());
  const int epoch_ms = std::atoi(Env("FAKE_TRAIN_EPOCH_MS", "30").c_str());
  const int steps = std::atoi(Env("FAKE_TRAIN_STEPS", "2").c_str());
  const size_t ckpt_bytes =
      static_cast<size_t>(std::atol(Env("FAKE_TRAIN_CKPT_BYTES", "65536").c_str()));
  const std::string mode = Env("FAKE_TRAIN_MODE");

  uint64_t hash = 1469598103934665603ull;
  for (char c : config_text.str()) {
    hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  }
  const double ceiling = 0.5 + 0.45 * static_cast<double>(hash % 1000) / 1000.0;

  int start_epoch = 1;
  if (!resume.empty() && Env("FAKE_TRAIN_REFUSE_RESUME") == "1") {
    return Usage("--resume " + resume + " was written by a different config");
  }
  if (!resume.empty()) {
    const int done = ReadCheckpointEpoch(resume);
    if (done < 0) return Usage("--resume " + resume + " is not a checkpoint");
    start_epoch = done + 1;
  }
  {
    std::ofstream pid(out + "/fake_train.pid");
    pid << getpid() << "\n";
  }
  WriteAtomically(out + "/config.json", config_text.str());
  const std::string visible = Env("CUDA_VISIBLE_DEVICES", "<unset>");
  Emit("{\"event\":\"start\",\"time_ms\":" + std::to_string(NowMs()) +
       ",\"config\":{},\"data\":{\"fingerprint\":\"00\",\"train\":8,"
       "\"val\":4,\"classes\":18},\"start_epoch\":" +
       std::to_string(start_epoch) + ",\"device\":" +
       Quote(visible.empty() || visible == "<unset>" ? "cpu" : "cuda:0") +
       ",\"visible_devices\":" + Quote(visible) + ",\"best_beside_resume\":" +
       (!resume.empty() && std::filesystem::exists(
                               std::filesystem::path(resume).parent_path() /
                               "best.ckpt")
            ? "true"
            : "false") +
       ",\"token_visible\":" +
       (std::getenv("SWEEPQ_WORKER_TOKEN") != nullptr ? "true" : "false") +
       ",\"threads\":1}");
  std::fprintf(stderr, "fake-sweepq-train: starting at epoch %d of %d\n",
               start_epoch, epochs);
  if (mode == "garbage") Emit("this is not json");

  std::string csv = "epoch,train_loss,val_f1\n";
  double best = -1;
  int best_epoch = 0;
  for (int epoch = start_epoch; epoch <= epochs; ++epoch) {
    for (int s = 1; s <= steps; ++s) {
      const int64_t global = static_cast<int64_t>(epoch - 1) * steps + s;
      Emit("{\"event\":\"step\",\"time_ms\":" + std::to_string(NowMs()) +
           ",\"epoch\":" + std::to_string(epoch) + ",\"step\":" +
           std::to_string(global) + ",\"loss\":" +
           std::to_string(2.0 / static_cast<double>(global)) +
           ",\"lr\":0.001}");
      std::this_thread::sleep_for(
          std::chrono::milliseconds(epoch_ms / std::max(steps, 1)));
    }
    const double f1 = ceiling * epoch / epochs;
    const double loss = 1.0 / epoch;
    WriteAtomically(out + "/last.ckpt", Checkpoint(epoch, ckpt_bytes));
    const bool improved = f1 > best;
    if (improved) {
      best = f1;
      best_epoch = epoch;
      WriteAtomically(out + "/best.ckpt", Checkpoint(epoch, ckpt_bytes));
    }
    csv += std::to_string(epoch) + "," + std::to_string(loss) + "," +
           std::to_string(f1) + "\n";
    WriteAtomically(out + "/metrics.csv", csv);
    const int64_t step = static_cast<int64_t>(epoch) * steps;
    char metrics[512];
    std::snprintf(metrics, sizeof(metrics),
                  "{\"train_loss\":%.6f,\"train_acc\":%.6f,\"lr\":0.001,"
                  "\"epoch_time_s\":%.3f,\"images_per_s\":100,"
                  "\"data_wait_s\":0,\"val_loss\":%.6f,\"val_acc\":%.6f,"
                  "\"val_f1\":%.6f}",
                  loss, f1, epoch_ms / 1000.0, loss, f1, f1);
    Emit("{\"event\":\"epoch\",\"time_ms\":" + std::to_string(NowMs()) +
         ",\"epoch\":" + std::to_string(epoch) + ",\"step\":" +
         std::to_string(step) + ",\"metrics\":" + metrics +
         ",\"per_class_f1\":[0.5],\"confusion\":[[1]]}");
    Emit("{\"event\":\"checkpoint\",\"time_ms\":" + std::to_string(NowMs()) +
         ",\"epoch\":" + std::to_string(epoch) +
         ",\"kind\":\"last\",\"path\":" + Quote(out + "/last.ckpt") + "}");
    if (improved) {
      Emit("{\"event\":\"checkpoint\",\"time_ms\":" + std::to_string(NowMs()) +
           ",\"epoch\":" + std::to_string(epoch) +
           ",\"kind\":\"best\",\"path\":" + Quote(out + "/best.ckpt") + "}");
    }
    if (epoch == start_epoch) {
      if (mode == "crash") {
        std::fprintf(stderr, "fake-sweepq-train: crashing on purpose\n");
        std::abort();
      }
      if (mode.rfind("exit:", 0) == 0) {
        const int code = std::atoi(mode.c_str() + 5);
        const bool retryable = Env("FAKE_TRAIN_RETRYABLE") == "1";
        Emit("{\"event\":\"error\",\"time_ms\":" + std::to_string(NowMs()) +
             ",\"message\":\"fake failure\",\"retryable\":" +
             (retryable ? "true" : "false") + ",\"epoch\":" +
             std::to_string(epoch) + "}");
        std::fprintf(stderr, "fake-sweepq-train: failing with %d\n", code);
        return code;
      }
      if (mode == "hang") {
        signal(SIGTERM, SIG_IGN);
        std::fprintf(stderr, "fake-sweepq-train: hanging, SIGTERM ignored\n");
        while (true) pause();
      }
    }
  }
  WriteAtomically(out + "/confusion.csv", "true,pred,count\n0,0,1\n");
  WriteAtomically(out + "/confusion.png", std::string("\x89PNG fake", 9));
  WriteAtomically(out + "/notes.txt", "an extra artifact\n");
  for (const char* name :
       {"metrics.csv", "confusion.csv", "confusion.png", "notes.txt"}) {
    Emit("{\"event\":\"artifact\",\"time_ms\":" + std::to_string(NowMs()) +
         ",\"name\":\"" + name + "\",\"path\":" + Quote(out + "/" + name) + "}");
  }
  char summary[256];
  std::snprintf(summary, sizeof(summary),
                "{\"event\":\"summary\",\"time_ms\":%lld,\"best_epoch\":%d,"
                "\"metric\":\"val_f1\",\"best_value\":%.6f,\"epochs\":%d,"
                "\"stopped_early\":false}",
                static_cast<long long>(NowMs()), best_epoch, best, epochs);
  Emit(summary);
  return 0;
}
