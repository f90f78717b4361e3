#include "client/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "yaml-cpp/yaml.h"

namespace sweepq::client {
namespace {

constexpr char kServerVar[] = "SWEEPQ_SERVER";
constexpr char kTeamVar[] = "SWEEPQ_TEAM";
constexpr char kTokenVar[] = "SWEEPQ_TOKEN";
constexpr char kTlsCaVar[] = "SWEEPQ_TLS_CA";

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat("cannot ", what, " ", path, ": ", std::strerror(errno)));
}

std::string ParentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// mkdir -p with mode 0700 for the directories it creates.
absl::Status MakeDirs(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " exists and is not a directory"));
  }
  std::string parent = ParentOf(dir);
  if (parent != dir) {
    absl::Status status = MakeDirs(parent);
    if (!status.ok()) return status;
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError("create directory", dir);
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<std::string> ProcessEnvironment::Get(
    absl::string_view name) const {
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

std::optional<std::string> MapEnvironment::Get(absl::string_view name) const {
  auto it = vars_.find(std::string(name));
  if (it == vars_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::string> ConfigFilePath(const Environment& env) {
  // The XDG spec says relative values are invalid and must be ignored.
  auto xdg = env.Get("XDG_CONFIG_HOME");
  if (xdg.has_value() && !xdg->empty() && (*xdg)[0] == '/') {
    return absl::StrCat(*xdg, "/sweepq/config.yaml");
  }
  auto home = env.Get("HOME");
  if (home.has_value() && !home->empty()) {
    return absl::StrCat(*home, "/.config/sweepq/config.yaml");
  }
  return absl::FailedPreconditionError(
      "neither XDG_CONFIG_HOME nor HOME is set: cannot locate the sweepq "
      "config file (set SWEEPQ_SERVER and SWEEPQ_TOKEN instead)");
}

absl::StatusOr<ClientConfig> ReadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    }
    return ErrnoError("read", path);
  }
  std::stringstream text;
  text << in.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(text.str());
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  ClientConfig config;
  if (root.IsNull()) return config;
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": expected a mapping of server, team, token, "
                     "tls_ca"));
  }
  for (const auto& item : root) {
    std::string key = item.first.as<std::string>("");
    const YAML::Node& value = item.second;
    if (!value.IsScalar() && !value.IsNull()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", value.Mark().line + 1, ": ", key, ": expected a string"));
    }
    std::string text_value = value.IsNull() ? "" : value.Scalar();
    if (key == "server") {
      config.server = text_value;
    } else if (key == "team") {
      config.team = text_value;
    } else if (key == "token") {
      config.token = text_value;
    } else if (key == "tls_ca") {
      config.tls_ca = text_value;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", item.first.Mark().line + 1, ": unknown key '",
                       key, "' (expected server, team, token, tls_ca)"));
    }
  }
  return config;
}

absl::Status WriteConfigFile(const std::string& path,
                             const ClientConfig& config) {
  absl::Status status = MakeDirs(ParentOf(path));
  if (!status.ok()) return status;

  YAML::Emitter out;
  out << YAML::Comment("Written by `sweepq login`. The token is a secret.");
  out << YAML::BeginMap;
  out << YAML::Key << "server" << YAML::Value << YAML::DoubleQuoted
      << config.server;
  out << YAML::Key << "team" << YAML::Value << YAML::DoubleQuoted
      << config.team;
  out << YAML::Key << "token" << YAML::Value << YAML::DoubleQuoted
      << config.token;
  if (!config.tls_ca.empty()) {
    out << YAML::Key << "tls_ca" << YAML::Value << YAML::DoubleQuoted
        << config.tls_ca;
  }
  out << YAML::EndMap;
  std::string text = absl::StrCat(out.c_str(), "\n");

  // mkstemp creates the file 0600, so the token is never exposed.
  std::string temp = absl::StrCat(path, ".tmp-XXXXXX");
  int fd = mkstemp(temp.data());
  if (fd < 0) return ErrnoError("create", temp);
  auto fail = [&](absl::string_view what) {
    absl::Status error = ErrnoError(what, temp);
    close(fd);
    unlink(temp.c_str());
    return error;
  };
  if (fchmod(fd, 0600) != 0) return fail("chmod");
  size_t written = 0;
  while (written < text.size()) {
    ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write");
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return fail("fsync");
  if (close(fd) != 0) {
    absl::Status error = ErrnoError("close", temp);
    unlink(temp.c_str());
    return error;
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    absl::Status error = ErrnoError("rename into place", path);
    unlink(temp.c_str());
    return error;
  }
  return absl::OkStatus();
}

absl::StatusOr<EffectiveConfig> LoadEffectiveConfig(const Environment& env) {
  EffectiveConfig effective;
  absl::StatusOr<std::string> path = ConfigFilePath(env);
  if (path.ok()) {
    effective.path = *path;
    absl::StatusOr<ClientConfig> file = ReadConfigFile(*path);
    if (file.ok()) {
      effective.file_found = true;
      effective.config = *file;
      auto from_file = [](const std::string& v) {
        return v.empty() ? "unset" : "file";
      };
      effective.sources.server = from_file(file->server);
      effective.sources.team = from_file(file->team);
      effective.sources.token = from_file(file->token);
      effective.sources.tls_ca = from_file(file->tls_ca);
    } else if (!absl::IsNotFound(file.status())) {
      return file.status();
    }
  }
  auto override_with = [&](const char* var, std::string* value,
                           std::string* source) {
    auto v = env.Get(var);
    if (v.has_value() && !v->empty()) {
      *value = *v;
      *source = absl::StrCat("env ", var);
    }
  };
  override_with(kServerVar, &effective.config.server,
                &effective.sources.server);
  override_with(kTeamVar, &effective.config.team, &effective.sources.team);
  override_with(kTokenVar, &effective.config.token, &effective.sources.token);
  override_with(kTlsCaVar, &effective.config.tls_ca, &effective.sources.tls_ca);
  return effective;
}

bool IsReadableByOthers(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  return (st.st_mode & 0077) != 0;
}

}  // namespace sweepq::client
