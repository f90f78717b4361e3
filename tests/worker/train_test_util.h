// Helpers shared by the sweepq-train tests: event lines parsed as JSON
// (google.protobuf.Struct) and small accessors. Test-only.
#ifndef SWEEPQ_TESTS_WORKER_TRAIN_TEST_UTIL_H_
#define SWEEPQ_TESTS_WORKER_TRAIN_TEST_UTIL_H_

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace sweepq::testing {

// Parses one event line; std::nullopt when it is not a JSON object.
inline std::optional<google::protobuf::Struct> ParseEvent(
    const std::string& line) {
  google::protobuf::Struct event;
  if (!google::protobuf::util::JsonStringToMessage(line, &event).ok()) {
    return std::nullopt;
  }
  return event;
}

// Returns the "event" field ("" when missing).
inline std::string Kind(const google::protobuf::Struct& event) {
  auto it = event.fields().find("event");
  return it == event.fields().end() ? "" : it->second.string_value();
}

// Returns true when `event` has `key`.
inline bool Has(const google::protobuf::Struct& event, const std::string& key) {
  return event.fields().count(key) > 0;
}

// Returns field `key` (a default Value when missing). The reference lives
// as long as `event`.
inline const google::protobuf::Value& Field(
    const google::protobuf::Struct& event, const std::string& key) {
  static const google::protobuf::Value* const kMissing =
      new google::protobuf::Value();
  auto it = event.fields().find(key);
  return it == event.fields().end() ? *kMissing : it->second;
}

// Returns metrics[name] of an epoch event, or std::nullopt.
inline std::optional<double> Metric(const google::protobuf::Struct& event,
                                    const std::string& name) {
  const auto& metrics = Field(event, "metrics").struct_value().fields();
  auto it = metrics.find(name);
  if (it == metrics.end()) return std::nullopt;
  return it->second.number_value();
}

// Returns the events of `kind` among `events`.
inline std::vector<google::protobuf::Struct> OfKind(
    const std::vector<google::protobuf::Struct>& events,
    const std::string& kind) {
  std::vector<google::protobuf::Struct> out;
  for (const auto& e : events) {
    if (Kind(e) == kind) out.push_back(e);
  }
  return out;
}

// Returns a file's contents ("" when it cannot be read).
inline std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes `text` to `path`.
inline void WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace sweepq::testing

#endif  // SWEEPQ_TESTS_WORKER_TRAIN_TEST_UTIL_H_
