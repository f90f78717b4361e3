#include "common/sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/run_config.h"
#include "common/status_macros.h"
#include "yaml-cpp/yaml.h"

namespace sweepq {
namespace {

constexpr uint64_t kMaxUint64 = std::numeric_limits<uint64_t>::max();
constexpr uint32_t kDefaultMaxAttempts = 3;
constexpr uint32_t kMaxMaxAttempts = 20;

enum class ParamKind { kValue, kValues, kUniform, kLogUniform, kIntUniform };

struct Param {
  std::string path;                // as written: "optimizer.lr"
  std::vector<std::string> parts;  // {"optimizer", "lr"}
  ParamKind kind = ParamKind::kValue;
  std::vector<std::string> values;  // JSON texts (kValue: one)
  double min = 0;
  double max = 0;
  int64_t int_min = 0;
  int64_t int_max = 0;
};

struct SweepSpec {
  std::string name;
  std::string method;
  std::string metric = "val_f1";
  v1::Goal goal = v1::GOAL_MAXIMIZE;
  uint32_t max_attempts = kDefaultMaxAttempts;
  std::optional<uint64_t> run_cap;
  uint64_t seed = 0;
  YAML::Node config;  // a mapping, or Null when absent
  std::vector<Param> params;
};

// Prefixes every sweep error with the file's name.
class Errors {
 public:
  explicit Errors(absl::string_view source) : source_(source) {}
  absl::Status operator()(absl::string_view path,
                          absl::string_view reason) const {
    if (path.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(source_, ": ", reason));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": ", path, ": ", reason));
  }
  // Re-anchors a Status from YamlToJson (already "path: reason").
  absl::Status Wrap(const absl::Status& status) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": ", status.message()));
  }

 private:
  std::string source_;
};

// Shortest text that reads back as `v` (valid JSON for finite `v`).
std::string ShortestDouble(double v) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// Word-valued scalar (method, goal, distribution, name).
absl::StatusOr<std::string> ReadWord(const YAML::Node& node,
                                     absl::string_view path,
                                     const Errors& error) {
  if (!node.IsScalar()) return error(path, "expected a word");
  return node.Scalar();
}

// JSON text of a scalar, which must be a plain number.
absl::StatusOr<std::string> ReadNumberText(const YAML::Node& node,
                                           absl::string_view path,
                                           const Errors& error) {
  if (!node.IsScalar()) return error(path, "expected a number");
  absl::StatusOr<std::string> json = YamlToJson(node, path);
  if (!json.ok()) return error.Wrap(json.status());
  const char first = json->empty() ? '"' : (*json)[0];
  if (first != '-' && !(first >= '0' && first <= '9')) {
    return error(path, absl::StrCat("expected a number, got ", *json));
  }
  return *json;
}

absl::StatusOr<int64_t> ReadInt(const YAML::Node& node, absl::string_view path,
                                const Errors& error) {
  ASSIGN_OR_RETURN(std::string text, ReadNumberText(node, path, error));
  int64_t v;
  if (!absl::SimpleAtoi(text, &v) ||
      text.find_first_of(".eE") != std::string::npos) {
    return error(path, absl::StrCat("expected an integer, got ", text));
  }
  return v;
}

absl::StatusOr<uint64_t> ReadUint(const YAML::Node& node,
                                  absl::string_view path, const Errors& error) {
  ASSIGN_OR_RETURN(std::string text, ReadNumberText(node, path, error));
  uint64_t v;
  if (!absl::SimpleAtoi(text, &v) ||
      text.find_first_of(".eE-") != std::string::npos) {
    return error(path,
                 absl::StrCat("expected a non-negative integer, got ", text));
  }
  return v;
}

absl::StatusOr<double> ReadDouble(const YAML::Node& node,
                                  absl::string_view path, const Errors& error) {
  ASSIGN_OR_RETURN(std::string text, ReadNumberText(node, path, error));
  double v;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) {
    return error(path, absl::StrCat("expected a finite number, got ", text));
  }
  return v;
}

// Keys of a mapping in order; rejects non-scalar and duplicate keys.
absl::StatusOr<std::vector<std::pair<std::string, YAML::Node>>> Entries(
    const YAML::Node& map, absl::string_view path, const Errors& error) {
  std::vector<std::pair<std::string, YAML::Node>> entries;
  std::set<std::string> seen;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) {
      return error(path, "a mapping key must be a scalar");
    }
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) {
      return error(path, absl::StrCat("duplicate key \"", key, "\""));
    }
    entries.emplace_back(key, kv.second);
  }
  return entries;
}

absl::StatusOr<Param> ParseParam(const std::string& key, const YAML::Node& spec,
                                 const std::string& method,
                                 const Errors& error) {
  const std::string where = absl::StrCat("parameters.", key);
  Param param;
  param.path = key;
  param.parts = absl::StrSplit(key, '.');
  for (const std::string& part : param.parts) {
    if (part.empty()) {
      return error(where, "not a dotted RunConfig path (empty part)");
    }
  }
  if (!spec.IsMap()) {
    return error(where,
                 "expected a mapping with value, values or distribution");
  }
  ASSIGN_OR_RETURN(auto entries, Entries(spec, where, error));
  // std::optional: a default-constructed YAML::Node is a defined Null, and
  // assigning one Node to another rebinds what it refers to.
  std::optional<YAML::Node> value, values, distribution, min, max;
  for (const auto& [name, node] : entries) {
    if (name == "value") {
      value.emplace(node);
    } else if (name == "values") {
      values.emplace(node);
    } else if (name == "distribution") {
      distribution.emplace(node);
    } else if (name == "min") {
      min.emplace(node);
    } else if (name == "max") {
      max.emplace(node);
    } else {
      return error(where, absl::StrCat("unknown key \"", name,
                                       "\" (expected value, values, "
                                       "distribution, min, max)"));
    }
  }
  const bool has_value = value.has_value();
  const bool has_values = values.has_value();
  const bool has_distribution = distribution.has_value();
  const bool has_range = min.has_value() || max.has_value();

  if (!has_value && !has_values && !has_distribution) {
    return error(where, has_range ? "min and max need a distribution (uniform, "
                                    "log_uniform or int_uniform)"
                                  : "needs one of value, values, distribution");
  }
  if (has_value && (has_values || has_distribution || has_range)) {
    return error(where,
                 "value cannot be combined with values, distribution, min "
                 "or max");
  }
  std::string distribution_name;
  if (has_distribution) {
    ASSIGN_OR_RETURN(distribution_name,
                     ReadWord(*distribution, where + ".distribution", error));
    if (method == "grid") {
      return error(where, absl::StrCat("distribution ", distribution_name,
                                       " needs method: random (grid takes only "
                                       "value or values)"));
    }
  }

  if (has_value) {
    param.kind = ParamKind::kValue;
    absl::StatusOr<std::string> json = YamlToJson(*value, where + ".value");
    if (!json.ok()) return error.Wrap(json.status());
    param.values.push_back(*std::move(json));
    return param;
  }

  if (has_values) {
    if (has_distribution && distribution_name != "categorical") {
      return error(where, absl::StrCat("has both values and distribution ",
                                       distribution_name,
                                       " (values go with categorical)"));
    }
    if (has_range) {
      return error(where, "min and max do not apply to values");
    }
    if (!values->IsSequence()) {
      return error(where + ".values", "expected a list");
    }
    if (values->size() == 0) return error(where + ".values", "is empty");
    param.kind = ParamKind::kValues;
    size_t index = 0;
    for (const YAML::Node& item : *values) {
      absl::StatusOr<std::string> json =
          YamlToJson(item, absl::StrCat(where, ".values[", index++, "]"));
      if (!json.ok()) return error.Wrap(json.status());
      param.values.push_back(*std::move(json));
    }
    return param;
  }

  if (distribution_name == "categorical") {
    return error(where, "distribution categorical needs values");
  }
  if (distribution_name == "uniform") {
    param.kind = ParamKind::kUniform;
  } else if (distribution_name == "log_uniform") {
    param.kind = ParamKind::kLogUniform;
  } else if (distribution_name == "int_uniform") {
    param.kind = ParamKind::kIntUniform;
  } else {
    return error(where,
                 absl::StrCat("unknown distribution \"", distribution_name,
                              "\" (expected categorical, uniform, "
                              "log_uniform, int_uniform)"));
  }
  if (!min.has_value() || !max.has_value()) {
    return error(where, absl::StrCat("distribution ", distribution_name,
                                     " needs min and max"));
  }
  if (param.kind == ParamKind::kIntUniform) {
    ASSIGN_OR_RETURN(param.int_min, ReadInt(*min, where + ".min", error));
    ASSIGN_OR_RETURN(param.int_max, ReadInt(*max, where + ".max", error));
    if (param.int_min > param.int_max) {
      return error(where, absl::StrCat("min ", param.int_min,
                                       " is greater than max ", param.int_max));
    }
    return param;
  }
  ASSIGN_OR_RETURN(param.min, ReadDouble(*min, where + ".min", error));
  ASSIGN_OR_RETURN(param.max, ReadDouble(*max, where + ".max", error));
  if (param.min > param.max) {
    return error(where, absl::StrCat("min ", ShortestDouble(param.min),
                                     " is greater than max ",
                                     ShortestDouble(param.max)));
  }
  if (param.kind == ParamKind::kLogUniform && param.min <= 0) {
    return error(where, absl::StrCat("log_uniform needs min > 0, got ",
                                     ShortestDouble(param.min)));
  }
  return param;
}

absl::StatusOr<SweepSpec> ParseSpec(absl::string_view yaml_text,
                                    absl::string_view source) {
  const Errors error(source);
  ASSIGN_OR_RETURN(YAML::Node root, ParseYamlDocument(yaml_text, source));
  if (root.IsNull()) return error("", "empty sweep file");
  if (!root.IsMap()) {
    return error("", "expected a mapping (method, parameters, ...)");
  }
  ASSIGN_OR_RETURN(auto entries, Entries(root, "", error));

  SweepSpec spec;
  YAML::Node parameters;
  for (const auto& [key, node] : entries) {
    if (key == "name") {
      ASSIGN_OR_RETURN(spec.name, ReadWord(node, "name", error));
    } else if (key == "method") {
      ASSIGN_OR_RETURN(spec.method, ReadWord(node, "method", error));
    } else if (key == "metric") {
      if (node.IsNull()) continue;
      if (!node.IsMap()) {
        return error("metric", "expected a mapping {name, goal}");
      }
      ASSIGN_OR_RETURN(auto metric, Entries(node, "metric", error));
      for (const auto& [metric_key, value] : metric) {
        if (metric_key == "name") {
          ASSIGN_OR_RETURN(spec.metric, ReadWord(value, "metric.name", error));
          if (spec.metric.empty()) return error("metric.name", "is empty");
        } else if (metric_key == "goal") {
          ASSIGN_OR_RETURN(std::string goal,
                           ReadWord(value, "metric.goal", error));
          if (goal == "maximize") {
            spec.goal = v1::GOAL_MAXIMIZE;
          } else if (goal == "minimize") {
            spec.goal = v1::GOAL_MINIMIZE;
          } else {
            return error("metric.goal",
                         absl::StrCat("\"", goal,
                                      "\" is not one of maximize, minimize"));
          }
        } else {
          return error("metric", absl::StrCat("unknown key \"", metric_key,
                                              "\" (expected name, goal)"));
        }
      }
    } else if (key == "run_cap") {
      ASSIGN_OR_RETURN(uint64_t cap, ReadUint(node, "run_cap", error));
      if (cap == 0) return error("run_cap", "must be >= 1");
      spec.run_cap = cap;
    } else if (key == "seed") {
      ASSIGN_OR_RETURN(spec.seed, ReadUint(node, "seed", error));
    } else if (key == "max_attempts") {
      ASSIGN_OR_RETURN(uint64_t attempts,
                       ReadUint(node, "max_attempts", error));
      if (attempts < 1 || attempts > kMaxMaxAttempts) {
        return error("max_attempts", absl::StrCat(attempts, " is not in [1, ",
                                                  kMaxMaxAttempts, "]"));
      }
      spec.max_attempts = static_cast<uint32_t>(attempts);
    } else if (key == "config") {
      if (!node.IsNull() && !node.IsMap()) {
        return error("config", "expected a mapping of RunConfig keys");
      }
      spec.config = node;
    } else if (key == "parameters") {
      if (!node.IsNull() && !node.IsMap()) {
        return error("parameters",
                     "expected a mapping of dotted RunConfig paths");
      }
      parameters = node;
    } else {
      return error("", absl::StrCat("unknown top-level key \"", key,
                                    "\" (expected one of name, method, "
                                    "metric, run_cap, seed, max_attempts, "
                                    "config, parameters)"));
    }
  }
  if (spec.method.empty()) return error("method", "required (grid or random)");
  if (spec.method != "grid" && spec.method != "random") {
    return error("method", absl::StrCat("\"", spec.method,
                                        "\" is not one of grid, random"));
  }
  if (spec.method == "random" && !spec.run_cap.has_value()) {
    return error("run_cap", "required by method random (the number of runs)");
  }

  if (parameters.IsDefined() && parameters.IsMap()) {
    ASSIGN_OR_RETURN(auto params, Entries(parameters, "parameters", error));
    for (const auto& [key, node] : params) {
      ASSIGN_OR_RETURN(Param param, ParseParam(key, node, spec.method, error));
      spec.params.push_back(std::move(param));
    }
  }
  // Overlapping paths would make the result depend on the order of writes.
  for (size_t i = 0; i < spec.params.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      const std::string& a = spec.params[i].path;
      const std::string& b = spec.params[j].path;
      if (absl::StartsWith(a, b + ".") || absl::StartsWith(b, a + ".")) {
        return error(absl::StrCat("parameters.", a),
                     absl::StrCat("overlaps parameters.", b));
      }
    }
  }
  return spec;
}

// Product of the values counts (`value` counts 1); nullopt on overflow.
std::optional<uint64_t> GridSize(const SweepSpec& spec) {
  uint64_t product = 1;
  for (const Param& param : spec.params) {
    const uint64_t n = param.values.size();
    if (product > kMaxUint64 / n) return std::nullopt;
    product *= n;
  }
  return product;
}

// Runs the spec expands into, before limits: random, run_cap; grid, the
// grid size (UINT64_MAX on overflow) cut to run_cap.
uint64_t RunCount(const SweepSpec& spec) {
  if (spec.method == "random") return *spec.run_cap;
  const uint64_t grid = GridSize(spec).value_or(kMaxUint64);
  return spec.run_cap.has_value() ? std::min(grid, *spec.run_cap) : grid;
}

absl::Status CheckLimits(const SweepSpec& spec, const SweepLimits& limits,
                         const Errors& error) {
  const uint64_t runs = RunCount(spec);
  if (runs <= limits.max_runs) return absl::OkStatus();
  if (spec.method == "random") {
    return error("run_cap", absl::StrCat(runs, " exceeds the cap of ",
                                         limits.max_runs, " runs"));
  }
  std::vector<std::string> counts;
  for (const Param& param : spec.params) {
    counts.push_back(absl::StrCat(param.path, ": ", param.values.size()));
  }
  const std::optional<uint64_t> grid = GridSize(spec);
  const std::string size = grid.has_value()
                               ? absl::StrCat(*grid)
                               : absl::StrCat("more than ", kMaxUint64);
  const std::string capped =
      spec.run_cap.has_value() ? absl::StrCat(", cut to ", runs, " by run_cap,")
                               : std::string();
  return error("", absl::StrCat("grid of ", size, " runs (",
                                absl::StrJoin(counts, " x "), ")", capped,
                                " exceeds the cap of ", limits.max_runs,
                                " runs; lower run_cap or use method: random"));
}

// A run's config under construction: mappings stay a tree so parameters
// can be set at their paths; everything else is JSON text.
struct JsonTree {
  bool is_map = false;
  std::string leaf;  // JSON text when !is_map
  std::vector<std::pair<std::string, JsonTree>> members;
};

absl::StatusOr<JsonTree> BuildTree(const YAML::Node& node,
                                   const std::string& path) {
  JsonTree tree;
  if (node.IsMap()) {
    tree.is_map = true;
    for (const auto& kv : node) {
      // YamlToJson over the whole config already vetted keys.
      const std::string key = kv.first.Scalar();
      ASSIGN_OR_RETURN(JsonTree child,
                       BuildTree(kv.second, absl::StrCat(path, ".", key)));
      tree.members.emplace_back(key, std::move(child));
    }
    return tree;
  }
  ASSIGN_OR_RETURN(tree.leaf, YamlToJson(node, path));
  return tree;
}

// Sets `json` at `parts` (creating mappings on the way; a null counts as an
// empty mapping). Fails when a part on the way is not a mapping.
absl::Status SetAt(JsonTree* tree, const std::vector<std::string>& parts,
                   const std::string& json) {
  JsonTree* node = tree;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!node->is_map) {
      if (node->leaf != "null") {
        return absl::InvalidArgumentError(absl::StrCat(
            "config.", absl::StrJoin(parts.begin(), parts.begin() + i, "."),
            " is not a mapping"));
      }
      node->is_map = true;
      node->leaf.clear();
    }
    auto it = std::find_if(node->members.begin(), node->members.end(),
                           [&](const auto& m) { return m.first == parts[i]; });
    if (it == node->members.end()) {
      node->members.emplace_back(parts[i], JsonTree{});
      it = node->members.end() - 1;
      it->second.leaf = "null";
    }
    node = &it->second;
  }
  node->is_map = false;
  node->members.clear();
  node->leaf = json;
  return absl::OkStatus();
}

void Serialize(const JsonTree& tree, std::string* out) {
  if (!tree.is_map) {
    out->append(tree.leaf);
    return;
  }
  out->push_back('{');
  for (size_t i = 0; i < tree.members.size(); ++i) {
    if (i > 0) out->push_back(',');
    absl::StrAppend(out, JsonQuote(tree.members[i].first), ":");
    Serialize(tree.members[i].second, out);
  }
  out->push_back('}');
}

// Portable draws: std::uniform_*_distribution differ between standard
// libraries, and a sweep must expand the same on every host.
class Sampler {
 public:
  explicit Sampler(uint64_t seed) : engine_(seed) {}

  // Uniform in [0, 1) with 53 random bits.
  double Unit() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

  // Uniform in [0, n); n == 0 means the whole 64-bit range.
  uint64_t Below(uint64_t n) {
    if (n == 0) return engine_();
    const uint64_t threshold =
        (uint64_t{0} - n) % n;  // 2^64 mod n: rejected tail
    while (true) {
      const uint64_t x = engine_();
      if (x >= threshold) return x % n;
    }
  }

  std::string Draw(const Param& param) {
    switch (param.kind) {
      case ParamKind::kValue:
        return param.values[0];
      case ParamKind::kValues:
        return param.values[Below(param.values.size())];
      case ParamKind::kUniform: {
        double v = param.min + (param.max - param.min) * Unit();
        return ShortestDouble(std::min(v, param.max));
      }
      case ParamKind::kLogUniform: {
        const double lo = std::log(param.min);
        const double hi = std::log(param.max);
        double v = std::exp(lo + (hi - lo) * Unit());
        return ShortestDouble(std::clamp(v, param.min, param.max));
      }
      case ParamKind::kIntUniform: {
        const uint64_t span = static_cast<uint64_t>(param.int_max) -
                              static_cast<uint64_t>(param.int_min) + 1;
        return absl::StrCat(static_cast<int64_t>(
            static_cast<uint64_t>(param.int_min) + Below(span)));
      }
    }
    return "null";
  }

 private:
  std::mt19937_64 engine_;
};

std::string DescribeRun(size_t index, const std::vector<Param>& params,
                        const std::vector<std::string>& chosen) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < params.size(); ++i) {
    parts.push_back(absl::StrCat(params[i].path, "=", chosen[i]));
  }
  return absl::StrCat("run ", index, " {", absl::StrJoin(parts, ", "), "}");
}

// The parameter a mapping error at `path` comes from: the one whose path
// equals it, lies above it or below it; the longest wins. -1 if none.
int ParamAt(const std::vector<Param>& params, absl::string_view path) {
  int best = -1;
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& p = params[i].path;
    bool related = path == p || absl::StartsWith(path, p + ".") ||
                   absl::StartsWith(path, p + "[") ||
                   absl::StartsWith(p, absl::StrCat(path, "."));
    if (related && (best < 0 ||
                    p.size() > params[static_cast<size_t>(best)].path.size())) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

absl::StatusOr<ExpandedRun> BuildRun(const SweepSpec& spec,
                                     const JsonTree& base, size_t index,
                                     const std::vector<std::string>& chosen,
                                     const Errors& error) {
  JsonTree tree = base;
  for (size_t i = 0; i < spec.params.size(); ++i) {
    absl::Status set = SetAt(&tree, spec.params[i].parts, chosen[i]);
    if (!set.ok()) {
      return error(absl::StrCat("parameters.", spec.params[i].path),
                   set.message());
    }
  }
  std::string json;
  Serialize(tree, &json);
  ExpandedRun run;
  if (std::optional<RunConfigJsonError> mapping =
          MapJsonToRunConfig(json, &run.config)) {
    const int p = ParamAt(spec.params, mapping->path);
    if (p < 0) {
      return error(DescribeRun(index, spec.params, chosen),
                   absl::StrCat(mapping->path, ": ", mapping->detail));
    }
    const Param& param = spec.params[static_cast<size_t>(p)];
    std::string detail =
        mapping->path == param.path
            ? mapping->detail
            : absl::StrCat(mapping->path, ": ", mapping->detail);
    return error(absl::StrCat("parameters.", param.path),
                 absl::StrCat(detail, " (run ", index, ": ", param.path, "=",
                              chosen[static_cast<size_t>(p)], ")"));
  }
  absl::Status valid = ValidateRunConfig(run.config);
  if (!valid.ok()) {
    return error(DescribeRun(index, spec.params, chosen), valid.message());
  }
  for (size_t i = 0; i < spec.params.size(); ++i) {
    run.params[spec.params[i].path] = chosen[i];
  }
  return run;
}

}  // namespace

absl::StatusOr<uint64_t> CountSweepRuns(absl::string_view yaml_text,
                                        absl::string_view source) {
  ASSIGN_OR_RETURN(SweepSpec spec, ParseSpec(yaml_text, source));
  return RunCount(spec);
}

absl::StatusOr<ExpandedSweep> ExpandSweepYaml(absl::string_view yaml_text,
                                              absl::string_view source,
                                              const SweepLimits& limits) {
  const Errors error(source);
  ASSIGN_OR_RETURN(SweepSpec spec, ParseSpec(yaml_text, source));
  RETURN_IF_ERROR(CheckLimits(spec, limits, error));
  const uint64_t count = RunCount(spec);

  // The base config alone must map (it need not validate: parameters may
  // supply required fields), so its errors name `config.<key>`.
  YAML::Node config = spec.config.IsDefined() && spec.config.IsMap()
                          ? spec.config
                          : YAML::Node(YAML::NodeType::Map);
  absl::StatusOr<std::string> base_json = YamlToJson(config, "config");
  if (!base_json.ok()) return error.Wrap(base_json.status());
  v1::RunConfig scratch;
  if (std::optional<RunConfigJsonError> mapping =
          MapJsonToRunConfig(*base_json, &scratch)) {
    return error(
        absl::StrCat("config", mapping->path.empty() ? "" : ".", mapping->path),
        mapping->detail);
  }
  absl::StatusOr<JsonTree> base = BuildTree(config, "config");
  if (!base.ok()) return error.Wrap(base.status());

  ExpandedSweep sweep;
  sweep.name = spec.name;
  sweep.method = spec.method;
  sweep.metric = spec.metric;
  sweep.goal = spec.goal;
  sweep.max_attempts = spec.max_attempts;
  sweep.runs.reserve(count);

  const size_t n = spec.params.size();
  std::vector<std::string> chosen(n);
  if (spec.method == "grid") {
    // Mixed-radix counter over the values, last parameter fastest.
    std::vector<size_t> digit(n, 0);
    for (uint64_t index = 0; index < count; ++index) {
      for (size_t i = 0; i < n; ++i)
        chosen[i] = spec.params[i].values[digit[i]];
      ASSIGN_OR_RETURN(ExpandedRun run,
                       BuildRun(spec, *base, index, chosen, error));
      sweep.runs.push_back(std::move(run));
      for (size_t i = n; i-- > 0;) {
        if (++digit[i] < spec.params[i].values.size()) break;
        digit[i] = 0;
      }
    }
  } else {
    Sampler sampler(spec.seed);
    for (uint64_t index = 0; index < count; ++index) {
      for (size_t i = 0; i < n; ++i) chosen[i] = sampler.Draw(spec.params[i]);
      ASSIGN_OR_RETURN(ExpandedRun run,
                       BuildRun(spec, *base, index, chosen, error));
      sweep.runs.push_back(std::move(run));
    }
  }
  return sweep;
}

}  // namespace sweepq
