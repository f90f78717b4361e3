#include "common/run_config.h"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/type.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver.h"
#include "google/protobuf/util/type_resolver_util.h"

namespace sweepq {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

// Guards against cyclic aliases (`&a [*a]`, which yaml-cpp accepts) and
// alias bombs: a sweep file comes from a user, the coordinator parses it.
constexpr int kMaxDepth = 64;
constexpr size_t kMaxJsonBytes = size_t{16} << 20;
constexpr size_t kMaxNodes = 100'000;

constexpr char kStrTag[] = "tag:yaml.org,2002:str";
constexpr char kIntTag[] = "tag:yaml.org,2002:int";
constexpr char kFloatTag[] = "tag:yaml.org,2002:float";
constexpr char kBoolTag[] = "tag:yaml.org,2002:bool";
constexpr char kNullTag[] = "tag:yaml.org,2002:null";

std::string AtPath(absl::string_view path, absl::string_view message) {
  if (path.empty()) return std::string(message);
  return absl::StrCat(path, ": ", message);
}

// " (line L, column C)" for nodes read from text; "" for built ones.
std::string Where(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return "";
  return absl::StrCat(" (line ", mark.line + 1, ", column ", mark.column + 1,
                      ")");
}

bool AllDigits(absl::string_view s, bool hex = false) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!(hex ? absl::ascii_isxdigit(c) : absl::ascii_isdigit(c))) return false;
  }
  return true;
}

// YAML 1.2 core schema int / float (decimal forms) as a JSON number, or
// nullopt when `s` is not one. Keeps the written digits; only rewrites what
// JSON forbids (a leading `+`, leading zeros, `.5`, `5.`).
std::optional<std::string> DecimalToJson(absl::string_view s) {
  absl::string_view rest = s;
  bool negative = false;
  if (absl::ConsumePrefix(&rest, "-")) {
    negative = true;
  } else {
    absl::ConsumePrefix(&rest, "+");
  }
  size_t i = 0;
  while (i < rest.size() && absl::ascii_isdigit(rest[i])) ++i;
  absl::string_view int_digits = rest.substr(0, i);
  rest.remove_prefix(i);
  bool has_point = absl::ConsumePrefix(&rest, ".");
  i = 0;
  while (i < rest.size() && absl::ascii_isdigit(rest[i])) ++i;
  absl::string_view frac_digits = rest.substr(0, i);
  rest.remove_prefix(i);
  if (int_digits.empty() && frac_digits.empty()) return std::nullopt;
  std::string exponent;
  if (!rest.empty() && (rest[0] == 'e' || rest[0] == 'E')) {
    exponent.push_back(rest[0]);
    rest.remove_prefix(1);
    if (!rest.empty() && (rest[0] == '+' || rest[0] == '-')) {
      exponent.push_back(rest[0]);
      rest.remove_prefix(1);
    }
    if (!AllDigits(rest)) return std::nullopt;
    absl::StrAppend(&exponent, rest);
    rest = {};
  }
  if (!rest.empty()) return std::nullopt;

  while (int_digits.size() > 1 && int_digits[0] == '0') {
    int_digits.remove_prefix(1);
  }
  std::string json = negative ? "-" : "";
  absl::StrAppend(&json, int_digits.empty() ? "0" : int_digits);
  if (has_point) {
    absl::StrAppend(&json, ".", frac_digits.empty() ? "0" : frac_digits);
  }
  absl::StrAppend(&json, exponent);
  return json;
}

enum class ScalarKind { kNull, kBool, kInt, kFloat, kString };

// Resolves a plain scalar by the YAML 1.2 core schema into its kind and
// JSON text.
absl::StatusOr<std::pair<ScalarKind, std::string>> ResolvePlain(
    const std::string& s, absl::string_view path, const YAML::Node& node) {
  using R = std::pair<ScalarKind, std::string>;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    return R{ScalarKind::kNull, "null"};
  }
  if (s == "true" || s == "True" || s == "TRUE") {
    return R{ScalarKind::kBool, "true"};
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    return R{ScalarKind::kBool, "false"};
  }
  absl::string_view unsigned_part = s;
  if (!unsigned_part.empty() &&
      (unsigned_part[0] == '+' || unsigned_part[0] == '-')) {
    unsigned_part.remove_prefix(1);
  }
  if (AllDigits(unsigned_part)) return R{ScalarKind::kInt, *DecimalToJson(s)};
  // Core-schema hex and octal ints carry no sign.
  absl::string_view digits =
      s.size() > 2 ? absl::string_view(s).substr(2) : absl::string_view();
  int base = 0;
  if (absl::StartsWith(s, "0x") && AllDigits(digits, true)) {
    base = 16;
  } else if (absl::StartsWith(s, "0o") && AllDigits(digits) &&
             digits.find_first_of("89") == absl::string_view::npos) {
    base = 8;
  }
  if (base != 0) {
    errno = 0;
    const std::string text(digits);
    const unsigned long long v = std::strtoull(text.c_str(), nullptr, base);
    if (errno == ERANGE) {
      return absl::InvalidArgumentError(AtPath(
          path, absl::StrCat("integer ", s, " is out of range", Where(node))));
    }
    return R{ScalarKind::kInt, absl::StrCat(v)};
  }
  if (std::optional<std::string> json = DecimalToJson(s)) {
    return R{ScalarKind::kFloat, *std::move(json)};
  }
  absl::string_view inf = s;
  bool negative = absl::ConsumePrefix(&inf, "-");
  if (!negative) absl::ConsumePrefix(&inf, "+");
  if (inf == ".inf" || inf == ".Inf" || inf == ".INF") {
    return R{ScalarKind::kFloat, negative ? "\"-Infinity\"" : "\"Infinity\""};
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    return R{ScalarKind::kFloat, "\"NaN\""};
  }
  return R{ScalarKind::kString, JsonQuote(s)};
}

absl::Status ScalarToJson(const YAML::Node& node, absl::string_view path,
                          std::string* out) {
  const std::string& tag = node.Tag();
  const bool null_node = node.IsNull();
  const std::string text = null_node ? "" : node.Scalar();
  if (tag == "!" || tag == kStrTag) {
    absl::StrAppend(out, JsonQuote(text));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(auto resolved, ResolvePlain(text, path, node));
  if (tag.empty() || tag == "?") {
    // yaml-cpp gives Null nodes (`~`, `null`, nothing) an empty tag.
    absl::StrAppend(out, null_node ? "null" : resolved.second);
    return absl::OkStatus();
  }
  ScalarKind wanted;
  if (tag == kIntTag) {
    wanted = ScalarKind::kInt;
  } else if (tag == kFloatTag) {
    wanted = ScalarKind::kFloat;
  } else if (tag == kBoolTag) {
    wanted = ScalarKind::kBool;
  } else if (tag == kNullTag) {
    wanted = ScalarKind::kNull;
  } else {
    return absl::InvalidArgumentError(AtPath(
        path, absl::StrCat("unsupported YAML tag \"", tag, "\"", Where(node))));
  }
  ScalarKind got = resolved.first;
  if (wanted == ScalarKind::kFloat && got == ScalarKind::kInt) {
    got = ScalarKind::kFloat;
  }
  if (got != wanted) {
    return absl::InvalidArgumentError(
        AtPath(path, absl::StrCat("\"", text, "\" does not match its tag ", tag,
                                  Where(node))));
  }
  absl::StrAppend(out, resolved.second);
  return absl::OkStatus();
}

absl::Status NodeToJson(const YAML::Node& node, absl::string_view path,
                        int depth, size_t* nodes, std::string* out) {
  // Type() and Mark() throw on an invalid node (a missing key of a const
  // node); IsDefined() does not.
  if (!node.IsDefined()) {
    return absl::InvalidArgumentError(AtPath(path, "undefined YAML node"));
  }
  if (depth > kMaxDepth) {
    return absl::InvalidArgumentError(
        AtPath(path, absl::StrCat("nested deeper than ", kMaxDepth,
                                  " levels (a cyclic alias?)", Where(node))));
  }
  if (out->size() > kMaxJsonBytes || ++*nodes > kMaxNodes) {
    return absl::InvalidArgumentError(
        AtPath(path,
               "document expands to more than 16 MiB or 100000 nodes "
               "(aliases?)"));
  }
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
      return absl::InvalidArgumentError(AtPath(path, "undefined YAML node"));
    case YAML::NodeType::Null:
    case YAML::NodeType::Scalar:
      return ScalarToJson(node, path, out);
    case YAML::NodeType::Sequence: {
      out->push_back('[');
      size_t index = 0;
      for (const YAML::Node& item : node) {
        if (index > 0) out->push_back(',');
        RETURN_IF_ERROR(NodeToJson(item, absl::StrCat(path, "[", index, "]"),
                                   depth + 1, nodes, out));
        ++index;
      }
      out->push_back(']');
      return absl::OkStatus();
    }
    case YAML::NodeType::Map: {
      out->push_back('{');
      std::set<std::string> seen;
      bool first = true;
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return absl::InvalidArgumentError(AtPath(
              path,
              absl::StrCat("a mapping key must be a scalar", Where(kv.first))));
        }
        const std::string& key = kv.first.Scalar();
        std::string child = path.empty() ? key : absl::StrCat(path, ".", key);
        if (!seen.insert(key).second) {
          return absl::InvalidArgumentError(
              AtPath(child, absl::StrCat("duplicate key", Where(kv.first))));
        }
        if (!first) out->push_back(',');
        first = false;
        absl::StrAppend(out, JsonQuote(key), ":");
        RETURN_IF_ERROR(NodeToJson(kv.second, child, depth + 1, nodes, out));
      }
      out->push_back('}');
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown YAML node type");
}

// ---- Reshaping protobuf 3.21's JSON errors ----
//
// protobuf's converter words its errors as (observed with 3.21.12):
//   "(optimizer) lrr: Cannot find field."              unknown key
//   "lrr: Cannot find field."                          unknown top-level key
//   "(optimizer.lr): invalid value \"fast\" for type TYPE_DOUBLE"
//   "(tta.transforms[1]): invalid value 3 for type TYPE_STRING"
//   "(optimizer): invalid value 5 for type type.googleapis.com/..."
//   "(optimizer): invalid value Starting an object on a scalar field for
//    type name"                                        mapping for a scalar
//   "(optimizer) name: Proto field is not repeating, cannot start list."
//   ": Root element must be a message."
//   "Unexpected end of string. Expected a value.\n<json>\n  ^"  syntax

std::string JoinPath(absl::string_view loc, absl::string_view name) {
  if (loc.empty()) return std::string(name);
  if (name.empty()) return std::string(loc);
  return absl::StrCat(loc, ".", name);
}

// The field `path` names under RunConfig, and whether the path ends in a
// list index (names one element). nullptr when some part is unknown.
const FieldDescriptor* ResolveField(absl::string_view path, bool* element) {
  const Descriptor* message = v1::RunConfig::descriptor();
  const FieldDescriptor* field = nullptr;
  *element = false;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (message == nullptr) return nullptr;
    *element = false;
    size_t bracket = part.find('[');
    if (bracket != absl::string_view::npos) {
      *element = true;
      part = part.substr(0, bracket);
    }
    std::string name(part);
    field = message->FindFieldByName(name);
    if (field == nullptr) field = message->FindFieldByCamelcaseName(name);
    if (field == nullptr) return nullptr;
    message = field->message_type();
  }
  return field;
}

// The message type `loc` names ("" = RunConfig), for "unknown field".
std::string MessageNameAt(absl::string_view loc) {
  if (loc.empty()) return v1::RunConfig::descriptor()->full_name();
  bool element;
  const FieldDescriptor* field = ResolveField(loc, &element);
  if (field != nullptr && field->message_type() != nullptr) {
    return field->message_type()->full_name();
  }
  return std::string(loc);
}

std::string ExpectedKind(const FieldDescriptor* field, bool element) {
  const bool list = field->is_repeated() && !element;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return list ? "a list of numbers" : "a number";
    case FieldDescriptor::CPPTYPE_INT32:
      return list ? "a list of integers"
                  : "an integer in [-2147483648, 2147483647]";
    case FieldDescriptor::CPPTYPE_INT64:
      return list ? "a list of integers"
                  : "an integer in [-9223372036854775808, "
                    "9223372036854775807]";
    case FieldDescriptor::CPPTYPE_UINT32:
      return list ? "a list of integers" : "an integer in [0, 4294967295]";
    case FieldDescriptor::CPPTYPE_UINT64:
      return list ? "a list of integers"
                  : "an integer in [0, 18446744073709551615]";
    case FieldDescriptor::CPPTYPE_BOOL:
      return list ? "a list of booleans" : "true or false";
    case FieldDescriptor::CPPTYPE_STRING:
      return list ? "a list of strings" : "a string";
    case FieldDescriptor::CPPTYPE_ENUM:
      return list ? "a list of enum names" : "an enum name";
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return absl::StrCat(list ? "a list of mappings (" : "a mapping (",
                          field->message_type()->full_name(), ")");
  }
  return "another type";
}

// `type_name` is protobuf's ("TYPE_DOUBLE", "type.googleapis.com/x.Y"),
// used when the path does not resolve.
std::string ExpectedKindAt(absl::string_view path,
                           absl::string_view type_name) {
  bool element;
  if (const FieldDescriptor* field = ResolveField(path, &element)) {
    return ExpectedKind(field, element);
  }
  if (absl::ConsumePrefix(&type_name, "type.googleapis.com/")) {
    return absl::StrCat("a mapping (", type_name, ")");
  }
  if (type_name == "TYPE_DOUBLE" || type_name == "TYPE_FLOAT")
    return "a number";
  if (type_name == "TYPE_STRING") return "a string";
  if (type_name == "TYPE_BOOL") return "true or false";
  if (absl::StrContains(type_name, "INT")) return "an integer";
  return absl::StrCat("a value of type ", type_name);
}

bool IsKeyWord(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '[' || c == ']' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

RunConfigJsonError ReshapeJsonError(absl::string_view message) {
  absl::string_view rest = message;
  std::string loc;
  if (absl::ConsumePrefix(&rest, "(")) {
    size_t close = rest.find(')');
    if (close != absl::string_view::npos) {
      loc = std::string(rest.substr(0, close));
      rest.remove_prefix(close + 1);
    } else {
      rest = message;
    }
  }

  if (absl::ConsumePrefix(&rest, ": invalid value ")) {
    absl::string_view body = rest;
    if (absl::ConsumePrefix(&body,
                            "Starting an object on a scalar field for type ")) {
      std::string path = JoinPath(loc, body);
      return {path, absl::StrCat("expected ", ExpectedKindAt(path, ""),
                                 ", got a mapping")};
    }
    if (absl::StartsWith(body, "oneof field ")) {
      size_t start = body.find("Cannot set '");
      if (start != absl::string_view::npos) {
        absl::string_view name = body.substr(start + 12);
        name = name.substr(0, name.find('\''));
        return {JoinPath(loc, name), "set more than once"};
      }
    }
    size_t for_type = body.rfind(" for type ");
    if (for_type != absl::string_view::npos) {
      absl::string_view value = body.substr(0, for_type);
      absl::string_view type_name = body.substr(for_type + 10);
      return {loc, absl::StrCat("expected ", ExpectedKindAt(loc, type_name),
                                ", got ", value)};
    }
    return {loc, absl::StrCat("invalid value ", body)};
  }

  absl::string_view named = absl::StripLeadingAsciiWhitespace(rest);
  if (absl::ConsumePrefix(&named, ": Root element must be a message.") ||
      absl::StartsWith(message, "Root element must be a message")) {
    return {"", "expected a JSON object (a mapping) at the top level"};
  }
  size_t colon = named.find(": ");
  if (colon != absl::string_view::npos && IsKeyWord(named.substr(0, colon))) {
    absl::string_view name = named.substr(0, colon);
    absl::string_view what = named.substr(colon + 2);
    std::string path = JoinPath(loc, name);
    if (absl::StartsWith(what, "Cannot find field")) {
      return {path, absl::StrCat("unknown field \"", name, "\" in ",
                                 MessageNameAt(loc))};
    }
    if (absl::StartsWith(what, "Proto field is not repeating")) {
      return {path, absl::StrCat("expected ", ExpectedKindAt(path, ""),
                                 ", got a list")};
    }
    return {path, std::string(absl::StripSuffix(what, "."))};
  }

  // JSON syntax errors: the first line is the reason; the rest quotes the
  // input with a caret under the position.
  absl::string_view first_line = message.substr(0, message.find('\n'));
  return {loc,
          absl::StrCat("invalid JSON: ", absl::StripSuffix(first_line, "."))};
}

// ---- Validation ----

// Shortest text that reads back as `v`.
std::string FormatDouble(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

absl::Status Invalid(absl::string_view path, absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", reason));
}

absl::Status CheckChoice(absl::string_view path, const std::string& value,
                         std::initializer_list<absl::string_view> allowed) {
  for (absl::string_view word : allowed) {
    if (value == word) return absl::OkStatus();
  }
  return Invalid(path, absl::StrCat("\"", value, "\" is not one of ",
                                    absl::StrJoin(allowed, ", ")));
}

// Optional choice: "" means the default.
absl::Status CheckChoiceOrEmpty(
    absl::string_view path, const std::string& value,
    std::initializer_list<absl::string_view> allowed) {
  if (value.empty()) return absl::OkStatus();
  return CheckChoice(path, value, allowed);
}

// `v` in the interval from `lo` to `hi`, each end closed or open.
absl::Status CheckInterval(absl::string_view path, double v, double lo,
                           bool lo_closed, double hi, bool hi_closed) {
  bool ok = (lo_closed ? v >= lo : v > lo) && (hi_closed ? v <= hi : v < hi);
  if (ok) return absl::OkStatus();
  return Invalid(
      path, absl::StrCat(FormatDouble(v), " is not in ", lo_closed ? "[" : "(",
                         FormatDouble(lo), ", ", FormatDouble(hi),
                         hi_closed ? "]" : ")"));
}

absl::Status CheckProbability(absl::string_view path, double v) {
  return CheckInterval(path, v, 0, true, 1, true);
}

absl::Status CheckPositive(absl::string_view path, double v) {
  if (v > 0) return absl::OkStatus();
  return Invalid(path, absl::StrCat("must be > 0, got ", FormatDouble(v)));
}

absl::Status CheckNonNegative(absl::string_view path, double v) {
  if (v >= 0) return absl::OkStatus();
  return Invalid(path, absl::StrCat("must be >= 0, got ", FormatDouble(v)));
}

// Rejects NaN and infinities anywhere in the message (YAML `.nan` / `.inf`
// map onto doubles without complaint).
absl::Status CheckFinite(const google::protobuf::Message& message,
                         const std::string& prefix) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    std::string path = prefix.empty()
                           ? field->name()
                           : absl::StrCat(prefix, ".", field->name());
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_DOUBLE:
        if (field->is_repeated()) {
          for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
            double v = reflection->GetRepeatedDouble(message, field, i);
            if (!std::isfinite(v)) {
              return Invalid(
                  absl::StrCat(path, "[", i, "]"),
                  absl::StrCat("must be finite, got ", FormatDouble(v)));
            }
          }
        } else {
          double v = reflection->GetDouble(message, field);
          if (!std::isfinite(v)) {
            return Invalid(
                path, absl::StrCat("must be finite, got ", FormatDouble(v)));
          }
        }
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (!field->is_repeated()) {
          RETURN_IF_ERROR(
              CheckFinite(reflection->GetMessage(message, field), path));
        }
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateData(const v1::DataConfig& data) {
  if (data.dataset().empty()) return Invalid("data.dataset", "required");
  RETURN_IF_ERROR(CheckChoiceOrEmpty("data.layout", data.layout(),
                                     {"mask", "image_folder", "csv"}));
  if (data.layout() == "csv" && data.csv().empty()) {
    return Invalid("data.csv", "required by layout csv");
  }
  RETURN_IF_ERROR(CheckChoiceOrEmpty("data.split", data.split(),
                                     {"holdout", "kfold", "full"}));
  if (data.has_val_ratio()) {
    RETURN_IF_ERROR(
        CheckInterval("data.val_ratio", data.val_ratio(), 0, false, 1, false));
  }
  if (data.split() == "kfold") {
    if (data.folds() < 2) {
      return Invalid(
          "data.folds",
          absl::StrCat("split kfold needs folds >= 2, got ", data.folds()));
    }
    if (data.fold() >= data.folds()) {
      return Invalid("data.fold", absl::StrCat(data.fold(), " is not in [0, ",
                                               data.folds(), ") (data.folds)"));
    }
  }
  for (int i = 1; i < data.age_bounds_size(); ++i) {
    if (data.age_bounds(i) <= data.age_bounds(i - 1)) {
      return Invalid(
          absl::StrCat("data.age_bounds[", i, "]"),
          absl::StrCat("bounds must be strictly ascending, got ",
                       data.age_bounds(i - 1), " then ", data.age_bounds(i)));
    }
  }
  if (data.has_max_bad_fraction()) {
    RETURN_IF_ERROR(
        CheckProbability("data.max_bad_fraction", data.max_bad_fraction()));
  }
  return absl::OkStatus();
}

absl::Status ValidateCrop(const v1::CropConfig& crop) {
  for (int i = 0; i < crop.detectors_size(); ++i) {
    RETURN_IF_ERROR(CheckChoice(absl::StrCat("crop.detectors[", i, "]"),
                                crop.detectors(i), {"haar", "yunet", "fixed"}));
    if (crop.detectors(i) == "yunet" && crop.yunet_model().empty()) {
      return Invalid("crop.yunet_model", "required by detector yunet");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAugment(const v1::AugmentConfig& augment) {
  if (augment.has_hflip()) {
    RETURN_IF_ERROR(CheckProbability("augment.hflip", augment.hflip()));
  }
  const v1::ColorJitter& jitter = augment.color_jitter();
  RETURN_IF_ERROR(CheckProbability("augment.color_jitter.p", jitter.p()));
  RETURN_IF_ERROR(
      CheckNonNegative("augment.color_jitter.brightness", jitter.brightness()));
  RETURN_IF_ERROR(
      CheckNonNegative("augment.color_jitter.contrast", jitter.contrast()));
  RETURN_IF_ERROR(
      CheckNonNegative("augment.color_jitter.saturation", jitter.saturation()));
  RETURN_IF_ERROR(CheckInterval("augment.color_jitter.hue", jitter.hue(), 0,
                                true, 0.5, true));
  RETURN_IF_ERROR(CheckChoiceOrEmpty("augment.autoaugment",
                                     augment.autoaugment(), {"imagenet"}));
  RETURN_IF_ERROR(CheckProbability("augment.cutout.p", augment.cutout().p()));
  RETURN_IF_ERROR(
      CheckProbability("augment.cutout.size", augment.cutout().size()));
  const v1::CutMix& cutmix = augment.cutmix();
  RETURN_IF_ERROR(CheckProbability("augment.cutmix.p", cutmix.p()));
  if (cutmix.has_beta()) {
    RETURN_IF_ERROR(CheckPositive("augment.cutmix.beta", cutmix.beta()));
  }
  RETURN_IF_ERROR(CheckChoiceOrEmpty("augment.cutmix.mode", cutmix.mode(),
                                     {"box", "vertical", "horizontal"}));
  RETURN_IF_ERROR(CheckProbability("augment.mixup.p", augment.mixup().p()));
  if (augment.mixup().has_alpha()) {
    RETURN_IF_ERROR(
        CheckPositive("augment.mixup.alpha", augment.mixup().alpha()));
  }
  const v1::RandomResizedCrop& rrc = augment.random_resized_crop();
  if (rrc.has_scale_min()) {
    RETURN_IF_ERROR(CheckInterval("augment.random_resized_crop.scale_min",
                                  rrc.scale_min(), 0, false, 1, true));
  }
  if (rrc.has_scale_max()) {
    RETURN_IF_ERROR(CheckInterval("augment.random_resized_crop.scale_max",
                                  rrc.scale_max(), 0, false, 1, true));
  }
  if (rrc.has_scale_min() && rrc.has_scale_max() &&
      rrc.scale_min() > rrc.scale_max()) {
    return Invalid("augment.random_resized_crop.scale_min",
                   absl::StrCat(FormatDouble(rrc.scale_min()),
                                " is greater than scale_max ",
                                FormatDouble(rrc.scale_max())));
  }
  if (rrc.has_ratio_min()) {
    RETURN_IF_ERROR(CheckPositive("augment.random_resized_crop.ratio_min",
                                  rrc.ratio_min()));
  }
  if (rrc.has_ratio_max()) {
    RETURN_IF_ERROR(CheckPositive("augment.random_resized_crop.ratio_max",
                                  rrc.ratio_max()));
  }
  if (rrc.has_ratio_min() && rrc.has_ratio_max() &&
      rrc.ratio_min() > rrc.ratio_max()) {
    return Invalid("augment.random_resized_crop.ratio_min",
                   absl::StrCat(FormatDouble(rrc.ratio_min()),
                                " is greater than ratio_max ",
                                FormatDouble(rrc.ratio_max())));
  }
  if (augment.mean_size() != 0 && augment.mean_size() != 3) {
    return Invalid("augment.mean",
                   absl::StrCat("needs 0 or 3 values (one per channel), got ",
                                augment.mean_size()));
  }
  if (augment.std_size() != 0 && augment.std_size() != 3) {
    return Invalid("augment.std",
                   absl::StrCat("needs 0 or 3 values (one per channel), got ",
                                augment.std_size()));
  }
  for (int i = 0; i < augment.std_size(); ++i) {
    RETURN_IF_ERROR(
        CheckPositive(absl::StrCat("augment.std[", i, "]"), augment.std(i)));
  }
  return absl::OkStatus();
}

absl::Status ValidateModel(const v1::ModelConfig& model) {
  if (model.name().empty()) {
    return Invalid("model.name",
                   "required (small_cnn, resnet18, resnet34, resnet50 or "
                   "torchscript)");
  }
  RETURN_IF_ERROR(CheckChoice(
      "model.name", model.name(),
      {"small_cnn", "resnet18", "resnet34", "resnet50", "torchscript"}));
  if (model.name() == "torchscript" && model.torchscript().empty()) {
    return Invalid("model.torchscript",
                   "required by model torchscript (the scripted module's "
                   "path)");
  }
  RETURN_IF_ERROR(
      CheckInterval("model.dropout", model.dropout(), 0, true, 1, false));
  const v1::HeadWeights& heads = model.head_weights();
  if (heads.has_mask()) {
    RETURN_IF_ERROR(CheckNonNegative("model.head_weights.mask", heads.mask()));
  }
  if (heads.has_gender()) {
    RETURN_IF_ERROR(
        CheckNonNegative("model.head_weights.gender", heads.gender()));
  }
  if (heads.has_age()) {
    RETURN_IF_ERROR(CheckNonNegative("model.head_weights.age", heads.age()));
  }
  return absl::OkStatus();
}

absl::Status ValidateLoss(const v1::LossConfig& loss) {
  RETURN_IF_ERROR(
      CheckChoiceOrEmpty("loss.name", loss.name(), {"ce", "focal", "f1"}));
  RETURN_IF_ERROR(CheckInterval("loss.label_smoothing", loss.label_smoothing(),
                                0, true, 1, false));
  if (loss.has_focal_gamma()) {
    RETURN_IF_ERROR(CheckNonNegative("loss.focal_gamma", loss.focal_gamma()));
  }
  for (int i = 0; i < loss.class_weights_size(); ++i) {
    RETURN_IF_ERROR(CheckNonNegative(
        absl::StrCat("loss.class_weights[", i, "]"), loss.class_weights(i)));
  }
  RETURN_IF_ERROR(CheckNonNegative("loss.ce_weight", loss.ce_weight()));
  RETURN_IF_ERROR(CheckNonNegative("loss.focal_weight", loss.focal_weight()));
  RETURN_IF_ERROR(CheckNonNegative("loss.f1_weight", loss.f1_weight()));
  return absl::OkStatus();
}

absl::Status ValidateOptimizer(const v1::OptimizerConfig& optimizer) {
  RETURN_IF_ERROR(CheckChoiceOrEmpty("optimizer.name", optimizer.name(),
                                     {"sgd", "adam", "adamw", "radam"}));
  if (optimizer.has_lr()) {
    RETURN_IF_ERROR(CheckPositive("optimizer.lr", optimizer.lr()));
  }
  RETURN_IF_ERROR(
      CheckNonNegative("optimizer.weight_decay", optimizer.weight_decay()));
  RETURN_IF_ERROR(CheckInterval("optimizer.momentum", optimizer.momentum(), 0,
                                true, 1, false));
  if (optimizer.has_beta1()) {
    RETURN_IF_ERROR(
        CheckInterval("optimizer.beta1", optimizer.beta1(), 0, true, 1, false));
  }
  if (optimizer.has_beta2()) {
    RETURN_IF_ERROR(
        CheckInterval("optimizer.beta2", optimizer.beta2(), 0, true, 1, false));
  }
  if (optimizer.has_eps()) {
    RETURN_IF_ERROR(CheckPositive("optimizer.eps", optimizer.eps()));
  }
  RETURN_IF_ERROR(
      CheckNonNegative("optimizer.grad_clip_norm", optimizer.grad_clip_norm()));
  return absl::OkStatus();
}

absl::Status ValidateScheduler(const v1::SchedulerConfig& scheduler) {
  RETURN_IF_ERROR(CheckChoiceOrEmpty(
      "scheduler.name", scheduler.name(),
      {"none", "cosine", "cosine_restarts", "step", "plateau"}));
  if (scheduler.name() == "step" && scheduler.step_size() == 0) {
    return Invalid("scheduler.step_size", "required (> 0) by scheduler step");
  }
  if (scheduler.name() == "cosine_restarts" && scheduler.t_0() == 0) {
    return Invalid("scheduler.t_0",
                   "required (> 0) by scheduler cosine_restarts");
  }
  if (scheduler.has_t_mult() && scheduler.t_mult() < 1) {
    return Invalid("scheduler.t_mult", "must be >= 1, got 0");
  }
  RETURN_IF_ERROR(CheckNonNegative("scheduler.eta_min", scheduler.eta_min()));
  if (scheduler.has_gamma()) {
    RETURN_IF_ERROR(CheckPositive("scheduler.gamma", scheduler.gamma()));
  }
  if (scheduler.has_warmup_start_factor()) {
    RETURN_IF_ERROR(CheckInterval("scheduler.warmup_start_factor",
                                  scheduler.warmup_start_factor(), 0, false, 1,
                                  true));
  }
  if (scheduler.has_plateau_factor()) {
    RETURN_IF_ERROR(CheckInterval("scheduler.plateau_factor",
                                  scheduler.plateau_factor(), 0, false, 1,
                                  false));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<YAML::Node> ParseYamlDocument(absl::string_view text,
                                             absl::string_view source) {
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": YAML syntax error: ", e.msg));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": YAML syntax error at line ", e.mark.line + 1,
                     ", column ", e.mark.column + 1, ": ", e.msg));
  }
  if (documents.empty()) return YAML::Node(YAML::NodeType::Null);
  if (documents.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": holds ", documents.size(),
                     " YAML documents (separated by ---); expected one"));
  }
  return documents[0];
}

absl::StatusOr<std::string> YamlToJson(const YAML::Node& node,
                                       absl::string_view path) {
  std::string json;
  size_t nodes = 0;
  RETURN_IF_ERROR(NodeToJson(node, path, 0, &nodes, &json));
  if (json.size() > kMaxJsonBytes) {
    return absl::InvalidArgumentError(
        AtPath(path,
               "document expands to more than 16 MiB or 100000 nodes "
               "(aliases?)"));
  }
  return json;
}

namespace {

// Protobuf 3.21's JSON parser asks its TypeResolver to rebuild the type
// description of every nested message on every call (about 150 us a
// RunConfig, 1.5 s for a 10,000-run sweep). The descriptors never change at
// run time, so the resolved types are kept.
class CachingTypeResolver : public google::protobuf::util::TypeResolver {
 public:
  CachingTypeResolver()
      : base_(google::protobuf::util::NewTypeResolverForDescriptorPool(
            kTypeUrlPrefix,
            google::protobuf::DescriptorPool::generated_pool())) {}

  google::protobuf::util::Status ResolveMessageType(
      const std::string& type_url, google::protobuf::Type* type) override {
    {
      absl::MutexLock lock(&mu_);
      auto it = messages_.find(type_url);
      if (it != messages_.end()) {
        *type = it->second;
        return google::protobuf::util::Status();
      }
    }
    google::protobuf::util::Status status =
        base_->ResolveMessageType(type_url, type);
    if (status.ok()) {
      absl::MutexLock lock(&mu_);
      messages_.emplace(type_url, *type);
    }
    return status;
  }

  google::protobuf::util::Status ResolveEnumType(
      const std::string& type_url, google::protobuf::Enum* enum_type) override {
    return base_->ResolveEnumType(type_url, enum_type);
  }

  static constexpr char kTypeUrlPrefix[] = "type.googleapis.com";

 private:
  std::unique_ptr<google::protobuf::util::TypeResolver> base_;
  absl::Mutex mu_;
  std::map<std::string, google::protobuf::Type> messages_ ABSL_GUARDED_BY(mu_);
};

CachingTypeResolver* SharedTypeResolver() {
  static auto* resolver = new CachingTypeResolver();  // never destroyed
  return resolver;
}

}  // namespace

std::optional<RunConfigJsonError> MapJsonToRunConfig(absl::string_view json,
                                                     v1::RunConfig* out) {
  out->Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  std::string binary;
  auto status = google::protobuf::util::JsonToBinaryString(
      SharedTypeResolver(),
      absl::StrCat(CachingTypeResolver::kTypeUrlPrefix, "/",
                   v1::RunConfig::descriptor()->full_name()),
      google::protobuf::StringPiece(json.data(), json.size()), &binary,
      options);
  if (status.ok() && !out->ParseFromString(binary)) {
    return RunConfigJsonError{"", "internal error: the JSON mapping produced "
                                  "bytes RunConfig cannot parse"};
  }
  if (status.ok()) return std::nullopt;
  const auto message = status.message();
  return ReshapeJsonError(absl::string_view(message.data(), message.size()));
}

absl::Status RunConfigFromJson(absl::string_view json, v1::RunConfig* out,
                               absl::string_view source) {
  std::optional<RunConfigJsonError> error = MapJsonToRunConfig(json, out);
  if (!error.has_value()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": ", AtPath(error->path, error->detail)));
}

absl::Status ValidateTta(const v1::TtaConfig& tta, absl::string_view path) {
  for (int i = 0; i < tta.transforms_size(); ++i) {
    RETURN_IF_ERROR(CheckChoice(absl::StrCat(path, ".transforms[", i, "]"),
                                tta.transforms(i),
                                {"hflip", "multicrop", "scale"}));
  }
  for (int i = 0; i < tta.scales_size(); ++i) {
    RETURN_IF_ERROR(CheckPositive(absl::StrCat(path, ".scales[", i, "]"),
                                  tta.scales(i)));
  }
  return absl::OkStatus();
}

// A job's config holds the job and the few run-level settings that apply
// to it; anything else (a model, an optimizer, ...) would be ignored, so it
// is refused with its path.
absl::Status ValidateJob(const v1::RunConfig& config) {
  const v1::JobConfig& job = config.job();
  RETURN_IF_ERROR(CheckChoice("job.kind", job.kind(), {"predict", "gradcam"}));
  if (config.data().dataset().empty()) {
    return Invalid("data.dataset", "required (the data set the job reads)");
  }
  v1::RunConfig rest = config;
  rest.clear_job();
  rest.mutable_data()->clear_dataset();
  if (rest.data().ByteSizeLong() == 0) rest.clear_data();
  rest.clear_seed();
  rest.clear_threads();
  rest.clear_interop_threads();
  rest.clear_name();
  std::vector<const google::protobuf::FieldDescriptor*> set;
  rest.GetReflection()->ListFields(rest, &set);
  if (!set.empty()) {
    std::string path = set.front()->name();
    if (path == "data") {
      std::vector<const google::protobuf::FieldDescriptor*> inner;
      rest.data().GetReflection()->ListFields(rest.data(), &inner);
      if (!inner.empty()) path = "data." + inner.front()->name();
    }
    return Invalid(path,
                   "not allowed in a job: a job uses its source runs' "
                   "settings (only data.dataset, seed, threads, "
                   "interop_threads and name go with job)");
  }
  if (job.source_runs_size() == 0) {
    return Invalid("job.source_runs", "required (at least one run id)");
  }
  std::set<int64_t> seen;
  for (int i = 0; i < job.source_runs_size(); ++i) {
    const std::string path = absl::StrCat("job.source_runs[", i, "]");
    if (job.source_runs(i) <= 0) {
      return Invalid(path, absl::StrCat("must be a run id (> 0), got ",
                                        job.source_runs(i)));
    }
    seen.insert(job.source_runs(i));
  }
  if (job.source_runs_size() > kMaxJobSourceRuns) {
    return Invalid("job.source_runs",
                   absl::StrCat("at most ", kMaxJobSourceRuns,
                                " runs in an ensemble, got ",
                                job.source_runs_size()));
  }
  RETURN_IF_ERROR(
      CheckChoiceOrEmpty("job.split", job.split(), {"eval", "val"}));
  RETURN_IF_ERROR(ValidateTta(job.tta(), "job.tta"));
  if (job.kind() == "predict") {
    if (job.has_gradcam_class() || job.gradcam_images() != 0 ||
        !job.gradcam_layer().empty()) {
      return Invalid("job.gradcam_class",
                     "gradcam_* settings belong to kind gradcam");
    }
    return absl::OkStatus();
  }
  // gradcam
  if (job.source_runs_size() != 1) {
    return Invalid("job.source_runs",
                   absl::StrCat("gradcam takes exactly one run, got ",
                                job.source_runs_size()));
  }
  if (!job.has_gradcam_class()) {
    return Invalid("job.gradcam_class", "required for kind gradcam");
  }
  if (job.gradcam_images() > kMaxGradCamImages) {
    return Invalid("job.gradcam_images",
                   absl::StrCat("at most ", kMaxGradCamImages, ", got ",
                                job.gradcam_images()));
  }
  if (job.tta().transforms_size() > 0 || !job.split().empty()) {
    return Invalid(job.split().empty() ? "job.tta" : "job.split",
                   "belongs to kind predict (gradcam uses the validation "
                   "split without test-time augmentation)");
  }
  return absl::OkStatus();
}

absl::Status ValidateRunConfig(const v1::RunConfig& config) {
  RETURN_IF_ERROR(CheckFinite(config, ""));
  if (config.has_job()) return ValidateJob(config);
  RETURN_IF_ERROR(ValidateData(config.data()));
  RETURN_IF_ERROR(ValidateCrop(config.crop()));
  RETURN_IF_ERROR(ValidateAugment(config.augment()));
  RETURN_IF_ERROR(ValidateModel(config.model()));
  RETURN_IF_ERROR(ValidateLoss(config.loss()));
  RETURN_IF_ERROR(ValidateOptimizer(config.optimizer()));
  RETURN_IF_ERROR(ValidateScheduler(config.scheduler()));

  const v1::EarlyStoppingConfig& early = config.early_stopping();
  RETURN_IF_ERROR(CheckChoiceOrEmpty("early_stopping.goal", early.goal(),
                                     {"maximize", "minimize"}));
  RETURN_IF_ERROR(
      CheckNonNegative("early_stopping.min_delta", early.min_delta()));

  const v1::TrainConfig& train = config.train();
  if (train.epochs() == 0) return Invalid("train.epochs", "required (> 0)");
  RETURN_IF_ERROR(CheckChoiceOrEmpty("train.device", train.device(),
                                     {"auto", "cpu", "cuda"}));
  if (train.has_checkpoint_every_epochs() &&
      train.checkpoint_every_epochs() == 0) {
    return Invalid("train.checkpoint_every_epochs", "must be >= 1, got 0");
  }

  return ValidateTta(config.tta(), "tta");
}

absl::StatusOr<v1::RunConfig> LoadRunConfigYaml(absl::string_view yaml_text,
                                                absl::string_view source) {
  ASSIGN_OR_RETURN(YAML::Node root, ParseYamlDocument(yaml_text, source));
  if (root.IsNull()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": empty document; expected a RunConfig mapping"));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": expected a mapping of RunConfig keys", Where(root)));
  }
  absl::StatusOr<std::string> json = YamlToJson(root, "");
  if (!json.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", json.status().message()));
  }
  v1::RunConfig config;
  RETURN_IF_ERROR(RunConfigFromJson(*json, &config, source));
  absl::Status valid = ValidateRunConfig(config);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", valid.message()));
  }
  return config;
}

}  // namespace sweepq
