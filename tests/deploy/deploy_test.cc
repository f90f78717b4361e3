// The deployment recipes in deploy/ stay true to the binaries they start:
//   - every systemd unit passes `systemd-analyze verify` (with its
//     /usr/local/bin paths pointed at this build);
//   - the Kubernetes manifests parse, name only images this project builds
//     (deploy/docker/<image>.Dockerfile), ports the server listens on and
//     probes it serves;
//   - every --flag a recipe passes is a flag of the binary it starts (read
//     from the binary's own --help).
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace sweepq {
namespace {

namespace fs = std::filesystem;

const std::string kSource = SWEEPQ_SOURCE_DIR;
const std::string kBinary = SWEEPQ_BINARY_DIR;

// Where this build puts each program the recipes start.
std::string BuiltBinary(const std::string& name) {
  if (name == "sweepq-server") return kBinary + "/server/sweepq-server";
  if (name == "sweepq") return kBinary + "/client/sweepq";
  return kBinary + "/worker/" + name;  // sweepq-worker, sweepq-train
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Flag names (underscored) a binary lists in its --help.
std::set<std::string> FlagsOf(const std::string& binary) {
  int status = -1;
  std::string help = testing::RunCommand(
      {"/bin/sh", "-c", BuiltBinary(binary) + " --help 2>&1"}, &status);
  std::set<std::string> flags;
  static const std::regex kFlag(R"(\n\s+--([a-z0-9_]+) \()");
  for (std::sregex_iterator it(help.begin(), help.end(), kFlag), end;
       it != end; ++it) {
    flags.insert((*it)[1]);
  }
  return flags;
}

// Checks that each "--name[=value]" of `args` is a flag of `binary`.
void ExpectFlagsExist(const std::string& where, const std::string& binary,
                      const std::vector<std::string>& args) {
  if (!fs::exists(BuiltBinary(binary))) {
    ADD_FAILURE() << where << " starts " << binary
                  << ", which this build does not have";
    return;
  }
  const std::set<std::string> flags = FlagsOf(binary);
  ASSERT_FALSE(flags.empty()) << binary << " --help listed no flags";
  for (const std::string& arg : args) {
    if (!absl::StartsWith(arg, "--")) continue;
    std::string name = std::string(
        absl::StripPrefix(std::vector<std::string>(
                              absl::StrSplit(arg, absl::MaxSplits('=', 1)))[0],
                          "--"));
    name = absl::StrReplaceAll(name, {{"-", "_"}});
    EXPECT_TRUE(flags.count(name)) << where << ": " << binary
                                   << " has no flag --" << name;
  }
}

std::vector<std::string> FilesIn(const std::string& dir,
                                 const std::string& extension) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == extension) {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(SystemdTest, UnitsPassSystemdAnalyzeVerify) {
  const std::vector<std::string> units =
      FilesIn(kSource + "/deploy/systemd", ".service");
  ASSERT_FALSE(units.empty());
  testing::TempDir dir;
  for (const std::string& unit : units) {
    std::string text = ReadFile(unit);
    // Point the install paths at this build.
    text = std::regex_replace(
        text, std::regex(R"(/usr/local/bin/(sweepq[a-z-]*))"),
        kBinary + "/BINDIR_$1");
    for (const char* name : {"sweepq-server", "sweepq-worker", "sweepq"}) {
      std::string dir_of = BuiltBinary(name);
      text = absl::StrReplaceAll(
          text, {{kBinary + "/BINDIR_" + std::string(name) + " ", dir_of + " "}});
    }
    std::string name = fs::path(unit).filename().string();
    // A template unit is verified as one instance of it.
    if (absl::StrContains(name, "@.")) {
      name = absl::StrReplaceAll(name, {{"@.", "@demo."}});
    }
    const std::string copy = dir.Join(name);
    std::ofstream(copy) << text;
    int status = -1;
    std::string output = testing::RunCommand(
        {"/bin/sh", "-c", "systemd-analyze verify " + copy + " 2>&1"},
        &status);
    EXPECT_EQ(status, 0) << unit << ":\n" << output;
    EXPECT_EQ(output, "") << unit << " has warnings:\n" << output;

    // The flags of ExecStart exist.
    std::smatch exec;
    ASSERT_TRUE(std::regex_search(
        text, exec, std::regex(R"(\nExecStart=(\S+)([^\n]*))")))
        << unit;
    std::vector<std::string> args =
        absl::StrSplit(exec[2].str(), ' ', absl::SkipEmpty());
    ExpectFlagsExist(unit, fs::path(exec[1].str()).filename().string(), args);
  }
}

// Images this project builds: deploy/docker/<image>.Dockerfile, with the
// binary its ENTRYPOINT starts.
std::map<std::string, std::string> ProjectImages() {
  std::map<std::string, std::string> images;
  for (const std::string& file :
       FilesIn(kSource + "/deploy/docker", ".Dockerfile")) {
    std::string image = "sweepq-" + fs::path(file).stem().string();
    std::smatch entry;
    std::string text = ReadFile(file);
    if (std::regex_search(text, entry,
                          std::regex(R"re(ENTRYPOINT \["[^"]*/([^"/]+)")re"))) {
      images[image] = entry[1];
    }
  }
  return images;
}

TEST(KubernetesTest, ManifestsNameOnlyWhatTheProjectHas) {
  const std::map<std::string, std::string> images = ProjectImages();
  ASSERT_EQ(images.count("sweepq-server"), 1u);
  ASSERT_EQ(images.count("sweepq-worker"), 1u);
  const std::string k8s = kSource + "/deploy/k8s";
  YAML::Node kustomization = YAML::LoadFile(k8s + "/kustomization.yaml");
  int containers_seen = 0;
  for (const auto& resource : kustomization["resources"]) {
    const std::string file = k8s + "/" + resource.as<std::string>();
    ASSERT_TRUE(fs::exists(file)) << "kustomization names missing " << file;
    std::vector<YAML::Node> docs;
    ASSERT_NO_THROW(docs = YAML::LoadAllFromFile(file)) << file;
    for (const YAML::Node& doc : docs) {
      ASSERT_TRUE(doc["apiVersion"] && doc["kind"]) << file;
      if (!doc["spec"] || !doc["spec"]["template"]) continue;
      const YAML::Node pod = doc["spec"]["template"]["spec"];
      for (const auto& container : pod["containers"]) {
        ++containers_seen;
        const std::string image = container["image"].as<std::string>();
        ASSERT_EQ(images.count(image), 1u)
            << file << " names image " << image
            << " that deploy/docker does not build";
        std::vector<std::string> args;
        for (const auto& a : container["args"]) {
          args.push_back(a.as<std::string>());
        }
        ExpectFlagsExist(file, images.at(image), args);
        // Ports: what the server listens on is what is exposed and probed.
        std::set<int> ports;
        for (const auto& p : container["ports"]) {
          ports.insert(p["containerPort"].as<int>());
        }
        for (const std::string& arg : args) {
          if (absl::StartsWith(arg, "--listen=")) {
            int port = std::stoi(arg.substr(arg.rfind(':') + 1));
            EXPECT_TRUE(ports.count(port))
                << file << ": listens on " << port << " but exposes none";
          }
        }
        for (const char* probe : {"readinessProbe", "livenessProbe"}) {
          if (!container[probe]) continue;
          // The server serves grpc.health.v1.Health; nothing else is probed.
          ASSERT_TRUE(container[probe]["grpc"])
              << file << ": " << probe << " is not a gRPC health probe";
          EXPECT_TRUE(ports.count(container[probe]["grpc"]["port"].as<int>()))
              << file << ": " << probe << " probes a port not exposed";
        }
      }
    }
  }
  EXPECT_EQ(containers_seen, 2);
}

}  // namespace
}  // namespace sweepq
