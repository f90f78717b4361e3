// JSON text for the flat shapes SqliteStore keeps in TEXT columns: a string
// array (worker datasets), a string -> string object (run params) and the
// string literals of event payloads. Strict: anything else is rejected.
#ifndef SWEEPQ_SERVER_STORE_FLAT_JSON_H_
#define SWEEPQ_SERVER_STORE_FLAT_JSON_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sweepq::store {

// Appends `value` to `out` as a JSON string literal: quoted, with '"', '\\'
// and control characters escaped. Bytes >= 0x80 are copied as they are
// (the text is expected to be UTF-8).
void AppendJsonString(absl::string_view value, std::string* out);

// ["a","b"] for any range of strings, in its order.
template <typename Range>
std::string EncodeJsonStringArray(const Range& values) {
  std::string out = "[";
  bool first = true;
  for (const auto& value : values) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(value, &out);
  }
  out += ']';
  return out;
}

// {"k":"v",...} with keys in the map's order.
std::string EncodeJsonStringMap(const std::map<std::string, std::string>& map);

// Parses a JSON array of strings. INVALID_ARGUMENT (with the offset) for
// anything else, including trailing text.
absl::StatusOr<std::vector<std::string>> DecodeJsonStringArray(
    absl::string_view json);

// Parses a JSON object whose values are all strings. A repeated key keeps
// the last value. INVALID_ARGUMENT (with the offset) for anything else.
absl::StatusOr<std::map<std::string, std::string>> DecodeJsonStringMap(
    absl::string_view json);

}  // namespace sweepq::store

#endif  // SWEEPQ_SERVER_STORE_FLAT_JSON_H_
