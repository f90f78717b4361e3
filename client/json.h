// JsonValue: a small ordered JSON tree for the CLI's `--format json` output
// and for reading JSON text (swept parameter values, event payloads).
//
// Objects keep their keys in insertion order so that output field order is
// stable and matches docs/cli.md. Not thread-safe; values are plain data.
#ifndef SWEEPQ_CLIENT_JSON_H_
#define SWEEPQ_CLIENT_JSON_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json_quote.h"

namespace sweepq::client {

class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  // A null value.
  JsonValue() = default;

  static JsonValue Null() { return JsonValue(); }
  static JsonValue Bool(bool value);
  // Non-finite numbers are written as null (JSON has no NaN or Inf).
  static JsonValue Number(double value);
  // Integers keep all their digits (no round trip through double).
  static JsonValue Int(int64_t value);
  // A number given by its literal text, which must be a valid JSON number
  // (the parser uses it so "0.0003" is written back as "0.0003").
  static JsonValue NumberLiteral(std::string text);
  static JsonValue String(std::string value);
  static JsonValue Array();
  static JsonValue Object();

  // Parses JSON text (RFC 8259; one value, surrounding whitespace allowed).
  // Returns INVALID_ARGUMENT naming the byte offset on malformed input.
  static absl::StatusOr<JsonValue> Parse(absl::string_view text);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_object() const { return type_ == Type::kObject; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_bool() const { return type_ == Type::kBool; }

  // Accessors; they return a zero value when the type does not match.
  bool bool_value() const { return type_ == Type::kBool && bool_; }
  double number_value() const;
  // The number as written (e.g. "0.0003", "42"); "" if not a number.
  const std::string& number_text() const { return text_; }
  const std::string& string_value() const { return text_; }
  const std::vector<JsonValue>& items() const { return items_; }
  const std::vector<std::pair<std::string, JsonValue>>& members() const {
    return members_;
  }

  // Object: sets `key` (replacing an existing one in place) and returns
  // *this for chaining. Turns a null value into an object first.
  JsonValue& Set(std::string key, JsonValue value);
  // Array: appends. Turns a null value into an array first.
  JsonValue& Push(JsonValue value);
  // Object: the member named `key`, or nullptr.
  const JsonValue* Find(absl::string_view key) const;

  // Serialises. `indent` > 0 pretty-prints with that many spaces per level;
  // 0 writes everything on one line with no spaces.
  std::string Dump(int indent = 2) const;

 private:
  void DumpTo(std::string* out, int indent, int depth) const;

  Type type_ = Type::kNull;
  bool bool_ = false;
  // Number: its text; string: its value.
  std::string text_;
  std::vector<JsonValue> items_;
  std::vector<std::pair<std::string, JsonValue>> members_;
};

// JSON string literals come from common/json_quote.h.
using ::sweepq::JsonQuote;

// Formats a JSON value for a table cell: strings without quotes ("" for the
// empty string), everything else compactly (`[58,60]`, `true`, `0.0003`).
// Text that is not valid JSON is returned unchanged.
std::string JsonDisplay(absl::string_view json_text);

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_JSON_H_
