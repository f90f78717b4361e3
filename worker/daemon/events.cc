#include "worker/daemon/events.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/json_quote.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace sweepq::worker {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// Longest metric name the coordinator accepts.
constexpr size_t kMaxMetricNameBytes = 128;
constexpr size_t kQuotedPrefixBytes = 4 << 10;

const Value* Field(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

std::optional<double> NumberField(const Struct& s, const std::string& name) {
  const Value* v = Field(s, name);
  if (v == nullptr || v->kind_case() != Value::kNumberValue) return std::nullopt;
  return v->number_value();
}

std::string StringField(const Struct& s, const std::string& name) {
  const Value* v = Field(s, name);
  if (v == nullptr || v->kind_case() != Value::kStringValue) return "";
  return v->string_value();
}

// A metric value: a number, null (NaN) or a non-finite spelled as a string.
std::optional<double> MetricValue(const Value& v) {
  switch (v.kind_case()) {
    case Value::kNumberValue:
      return v.number_value();
    case Value::kNullValue:
      return std::numeric_limits<double>::quiet_NaN();
    case Value::kStringValue: {
      const std::string& s = v.string_value();
      if (s == "NaN" || s == "nan") {
        return std::numeric_limits<double>::quiet_NaN();
      }
      if (s == "Infinity" || s == "inf") {
        return std::numeric_limits<double>::infinity();
      }
      if (s == "-Infinity" || s == "-inf") {
        return -std::numeric_limits<double>::infinity();
      }
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

void AddPoint(ChildEvent* out, const std::string& name, int64_t step,
              double value) {
  if (name.empty() || name.size() > kMaxMetricNameBytes) return;
  sweepq::v1::MetricPoint* p = &out->points.emplace_back();
  p->set_name(name);
  p->set_step(step);
  p->set_value(value);
  p->set_wall_time_ms(out->event.time_ms());
}

ChildEvent InvalidLine(absl::string_view line, int64_t now_ms) {
  ChildEvent out;
  out.kind = kInvalidOutputKind;
  out.event.set_kind(kInvalidOutputKind);
  out.event.set_time_ms(now_ms);
  const bool cut = line.size() > kQuotedPrefixBytes;
  out.event.set_payload_json(absl::StrCat(
      "{\"line\":", JsonQuote(line.substr(0, kQuotedPrefixBytes)),
      ",\"truncated\":", cut ? "true" : "false", "}"));
  return out;
}

}  // namespace

ChildEvent ParseChildLine(absl::string_view line, int64_t now_ms) {
  Struct json;
  google::protobuf::util::JsonParseOptions parse_options;
  if (line.empty() || line.front() != '{' ||
      !google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(line.data(), line.size()), &json,
           parse_options)
           .ok()) {
    return InvalidLine(line, now_ms);
  }
  const std::string kind = StringField(json, "event");
  if (kind.empty() || kind.size() > kMaxMetricNameBytes) {
    return InvalidLine(line, now_ms);
  }
  ChildEvent out;
  out.kind = kind;
  out.event.set_kind(kind);
  const std::optional<double> time_ms = NumberField(json, "time_ms");
  out.event.set_time_ms(time_ms.has_value() && *time_ms > 0
                            ? static_cast<int64_t>(*time_ms)
                            : now_ms);
  if (line.size() <= kMaxEventPayloadBytes) {
    out.event.set_payload_json(std::string(line));
  } else {
    out.event.set_payload_json(absl::StrCat(
        "{\"event\":", JsonQuote(kind), ",\"truncated\":true,\"bytes\":",
        line.size(), "}"));
  }

  if (kind == "epoch" || kind == "metrics") {
    // A job's `metrics` event has `step` where an epoch has `epoch`.
    const std::optional<double> epoch =
        NumberField(json, kind == "epoch" ? "epoch" : "step");
    const Value* metrics = Field(json, "metrics");
    if (epoch.has_value() && metrics != nullptr &&
        metrics->kind_case() == Value::kStructValue) {
      for (const auto& [name, value] : metrics->struct_value().fields()) {
        std::optional<double> v = MetricValue(value);
        if (v.has_value()) {
          AddPoint(&out, name, static_cast<int64_t>(*epoch), *v);
        }
      }
    }
  } else if (kind == "step") {
    const std::optional<double> step = NumberField(json, "step");
    const Value* loss = Field(json, "loss");
    if (step.has_value() && loss != nullptr) {
      std::optional<double> v = MetricValue(*loss);
      if (v.has_value()) {
        AddPoint(&out, "step_loss", static_cast<int64_t>(*step), *v);
      }
    }
  } else if (kind == "checkpoint") {
    ChildEvent::Checkpoint c;
    c.epoch = static_cast<int64_t>(NumberField(json, "epoch").value_or(0));
    c.kind = StringField(json, "kind");
    c.path = StringField(json, "path");
    if (!c.path.empty()) out.checkpoint = c;
  } else if (kind == "artifact") {
    ChildEvent::Artifact a;
    a.name = StringField(json, "name");
    a.path = StringField(json, "path");
    if (!a.name.empty() && !a.path.empty()) out.artifact = a;
  } else if (kind == "error") {
    ChildEvent::Error e;
    e.message = StringField(json, "message");
    const Value* retryable = Field(json, "retryable");
    e.retryable = retryable == nullptr ||
                  retryable->kind_case() != Value::kBoolValue ||
                  retryable->bool_value();
    out.error = e;
  } else if (kind == "start") {
    const std::optional<double> start = NumberField(json, "start_epoch");
    if (start.has_value()) out.start_epoch = static_cast<int64_t>(*start);
  }
  return out;
}

}  // namespace sweepq::worker
