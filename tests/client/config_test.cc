// The CLI config file: where it lives (XDG), its mode (0600, even briefly),
// what it accepts, and the environment variables that override it.
#include "client/config.h"

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace sweepq::client {
namespace {

using ::sweepq::testing::TempDir;

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

TEST(ConfigPathTest, UsesXdgConfigHomeWhenSet) {
  MapEnvironment env({{"XDG_CONFIG_HOME", "/x/cfg"}, {"HOME", "/home/u"}});
  EXPECT_EQ(*ConfigFilePath(env), "/x/cfg/sweepq/config.yaml");
}

TEST(ConfigPathTest, FallsBackToHomeDotConfig) {
  MapEnvironment env(std::map<std::string, std::string>{{"HOME", "/home/u"}});
  EXPECT_EQ(*ConfigFilePath(env), "/home/u/.config/sweepq/config.yaml");
}

TEST(ConfigPathTest, IgnoresRelativeOrEmptyXdgConfigHome) {
  MapEnvironment relative({{"XDG_CONFIG_HOME", "cfg"}, {"HOME", "/home/u"}});
  EXPECT_EQ(*ConfigFilePath(relative), "/home/u/.config/sweepq/config.yaml");
  MapEnvironment empty({{"XDG_CONFIG_HOME", ""}, {"HOME", "/home/u"}});
  EXPECT_EQ(*ConfigFilePath(empty), "/home/u/.config/sweepq/config.yaml");
}

TEST(ConfigPathTest, FailsWithoutHomeOrXdg) {
  MapEnvironment env;
  absl::StatusOr<std::string> path = ConfigFilePath(env);
  EXPECT_TRUE(absl::IsFailedPrecondition(path.status())) << path.status();
}

TEST(ConfigFileTest, WritesMode0600InAPrivateDirectoryAndReadsBack) {
  TempDir dir;
  const std::string path = dir.Join("cfg/sweepq/config.yaml");
  ClientConfig config{"coord:50051", "vision", "tok:with\"quotes", "/ca.pem"};
  ASSERT_TRUE(WriteConfigFile(path, config).ok());
  EXPECT_EQ(ModeOf(path), 0600u);
  EXPECT_EQ(ModeOf(dir.Join("cfg/sweepq")), 0700u);
  absl::StatusOr<ClientConfig> read = ReadConfigFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->server, "coord:50051");
  EXPECT_EQ(read->team, "vision");
  EXPECT_EQ(read->token, "tok:with\"quotes");
  EXPECT_EQ(read->tls_ca, "/ca.pem");
}

TEST(ConfigFileTest, Is0600EvenWithAPermissiveUmask) {
  TempDir dir;
  const std::string path = dir.Join("config.yaml");
  mode_t old = umask(0);
  absl::Status status = WriteConfigFile(path, {"a:1", "t", "secret", ""});
  umask(old);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ModeOf(path), 0600u);
}

TEST(ConfigFileTest, ReplacingAWorldReadableFileLeavesIt0600) {
  TempDir dir;
  const std::string path = dir.Join("config.yaml");
  WriteText(path, "server: old:1\n");
  chmod(path.c_str(), 0644);
  EXPECT_TRUE(IsReadableByOthers(path));
  ASSERT_TRUE(WriteConfigFile(path, {"new:2", "t", "secret", ""}).ok());
  EXPECT_EQ(ModeOf(path), 0600u);
  EXPECT_FALSE(IsReadableByOthers(path));
  EXPECT_EQ(ReadConfigFile(path)->server, "new:2");
}

TEST(ConfigFileTest, MissingFileIsNotFound) {
  TempDir dir;
  EXPECT_TRUE(absl::IsNotFound(ReadConfigFile(dir.Join("nope.yaml")).status()));
}

TEST(ConfigFileTest, UnknownKeyIsRejectedWithItsNameAndLine) {
  TempDir dir;
  const std::string path = dir.Join("config.yaml");
  WriteText(path, "server: a:1\nsevrer: b:2\n");
  absl::StatusOr<ClientConfig> read = ReadConfigFile(path);
  ASSERT_FALSE(read.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(read.status()));
  EXPECT_NE(read.status().message().find("config.yaml:2"), std::string::npos)
      << read.status();
  EXPECT_NE(read.status().message().find("'sevrer'"), std::string::npos);
}

TEST(ConfigFileTest, BadYamlNamesTheFile) {
  TempDir dir;
  const std::string path = dir.Join("config.yaml");
  WriteText(path, "server: [a\n");
  absl::StatusOr<ClientConfig> read = ReadConfigFile(path);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find(path), std::string::npos);
}

TEST(EffectiveConfigTest, EnvironmentOverridesTheFileValueByValue) {
  TempDir dir;
  MapEnvironment env(
      std::map<std::string, std::string>{{"XDG_CONFIG_HOME", dir.path()}});
  ASSERT_TRUE(WriteConfigFile(dir.Join("sweepq/config.yaml"),
                              {"file:1", "file-team", "file-token", ""})
                  .ok());
  env.Set("SWEEPQ_SERVER", "env:2");
  env.Set("SWEEPQ_TOKEN", "env-token");
  env.Set("SWEEPQ_TEAM", "");  // empty: does not override
  absl::StatusOr<EffectiveConfig> effective = LoadEffectiveConfig(env);
  ASSERT_TRUE(effective.ok()) << effective.status();
  EXPECT_TRUE(effective->file_found);
  EXPECT_EQ(effective->config.server, "env:2");
  EXPECT_EQ(effective->sources.server, "env SWEEPQ_SERVER");
  EXPECT_EQ(effective->config.token, "env-token");
  EXPECT_EQ(effective->sources.token, "env SWEEPQ_TOKEN");
  EXPECT_EQ(effective->config.team, "file-team");
  EXPECT_EQ(effective->sources.team, "file");
  EXPECT_EQ(effective->sources.tls_ca, "unset");
}

TEST(EffectiveConfigTest, WorksFromTheEnvironmentAloneWithoutAFile) {
  TempDir dir;
  MapEnvironment env({{"XDG_CONFIG_HOME", dir.path()},
                      {"SWEEPQ_SERVER", "h:1"},
                      {"SWEEPQ_TOKEN", "t"},
                      {"SWEEPQ_TLS_CA", "/ca.pem"}});
  absl::StatusOr<EffectiveConfig> effective = LoadEffectiveConfig(env);
  ASSERT_TRUE(effective.ok()) << effective.status();
  EXPECT_FALSE(effective->file_found);
  EXPECT_EQ(effective->path, dir.Join("sweepq/config.yaml"));
  EXPECT_EQ(effective->config.server, "h:1");
  EXPECT_EQ(effective->config.tls_ca, "/ca.pem");
}

TEST(EffectiveConfigTest, MalformedFileIsAnErrorNotSilentlyIgnored) {
  TempDir dir;
  MapEnvironment env(
      std::map<std::string, std::string>{{"XDG_CONFIG_HOME", dir.path()}});
  mkdir(dir.Join("sweepq").c_str(), 0700);
  WriteText(dir.Join("sweepq/config.yaml"), "- a list\n");
  EXPECT_TRUE(absl::IsInvalidArgument(LoadEffectiveConfig(env).status()));
}

}  // namespace
}  // namespace sweepq::client
