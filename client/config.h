// The CLI's configuration: which coordinator to talk to, as which team,
// with which token. `sweepq login` writes it to
// $XDG_CONFIG_HOME/sweepq/config.yaml (default ~/.config/sweepq/config.yaml)
// with mode 0600; SWEEPQ_SERVER, SWEEPQ_TEAM, SWEEPQ_TOKEN and
// SWEEPQ_TLS_CA override the file, value by value.
#ifndef SWEEPQ_CLIENT_CONFIG_H_
#define SWEEPQ_CLIENT_CONFIG_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sweepq::client {

// Read access to environment variables, so tests need not touch the real
// environment. Implementations must be safe to call from several threads.
class Environment {
 public:
  virtual ~Environment() = default;
  // The variable's value, or nullopt if it is not set.
  virtual std::optional<std::string> Get(absl::string_view name) const = 0;
};

// The process environment (getenv).
class ProcessEnvironment : public Environment {
 public:
  std::optional<std::string> Get(absl::string_view name) const override;
};

// A fixed set of variables, for tests.
class MapEnvironment : public Environment {
 public:
  MapEnvironment() = default;
  explicit MapEnvironment(std::map<std::string, std::string> vars)
      : vars_(std::move(vars)) {}
  void Set(const std::string& name, const std::string& value) {
    vars_[name] = value;
  }
  std::optional<std::string> Get(absl::string_view name) const override;

 private:
  std::map<std::string, std::string> vars_;
};

struct ClientConfig {
  // Coordinator address, HOST:PORT.
  std::string server;
  // Team name (informational: the token decides the team).
  std::string team;
  // Member token sent as `authorization: Bearer TOKEN`.
  std::string token;
  // PEM file of the CA that signed the server certificate; "" = plaintext.
  std::string tls_ca;
};

// Where each value of an effective configuration came from: "file",
// "env SWEEPQ_SERVER", ..., or "unset".
struct ConfigSources {
  std::string server = "unset";
  std::string team = "unset";
  std::string token = "unset";
  std::string tls_ca = "unset";
};

struct EffectiveConfig {
  ClientConfig config;
  ConfigSources sources;
  // The file that was (or would be) read.
  std::string path;
  // True when the file exists and was read.
  bool file_found = false;
};

// $XDG_CONFIG_HOME/sweepq/config.yaml when XDG_CONFIG_HOME is set and
// absolute, else $HOME/.config/sweepq/config.yaml. FAILED_PRECONDITION when
// neither variable is usable.
absl::StatusOr<std::string> ConfigFilePath(const Environment& env);

// Reads a config file. NOT_FOUND if it does not exist; INVALID_ARGUMENT
// naming the file (and line or key) when it is not a mapping of the known
// keys (server, team, token, tls_ca) to strings.
absl::StatusOr<ClientConfig> ReadConfigFile(const std::string& path);

// Writes `config` to `path` atomically (temporary file in the same
// directory, fsync, rename) with mode 0600, creating the parent directory
// with mode 0700 if needed. The file is never readable by others, not even
// briefly. Returns an error naming the path on failure.
absl::Status WriteConfigFile(const std::string& path,
                             const ClientConfig& config);

// The configuration in effect: the file (if any) overridden by the
// SWEEPQ_SERVER, SWEEPQ_TEAM, SWEEPQ_TOKEN and SWEEPQ_TLS_CA variables
// (set and non-empty). A missing file is not an error; a malformed one is.
absl::StatusOr<EffectiveConfig> LoadEffectiveConfig(const Environment& env);

// True when the file at `path` can be read or written by group or others
// (the token in it should be private). False if it cannot be stat'ed.
bool IsReadableByOthers(const std::string& path);

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_CONFIG_H_
