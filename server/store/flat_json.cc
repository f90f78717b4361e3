#include "server/store/flat_json.h"

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/json_quote.h"
#include "common/status_macros.h"

namespace sweepq::store {
namespace {

void AppendUtf8(uint32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    *out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    *out += static_cast<char>(0xC0 | (code_point >> 6));
    *out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    *out += static_cast<char>(0xE0 | (code_point >> 12));
    *out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (code_point >> 18));
    *out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

// A cursor over JSON text for the two flat shapes.
class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
            text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  // Consumes `c` (after whitespace) if it is next.
  bool Consume(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  absl::Status Expect(char c) {
    if (Consume(c)) return absl::OkStatus();
    return Error(absl::StrCat("expected '", std::string(1, c), "'"));
  }

  absl::StatusOr<std::string> String() {
    if (!Consume('"')) return Error("expected a string");
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) return Error("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) {
        return Error("control character in string");
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) return Error("unterminated escape");
      switch (text_[pos_++]) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t unit;
          if (!Hex4(&unit)) return Error("bad \\u escape");
          if (unit >= 0xD800 && unit < 0xDC00) {
            uint32_t low;
            if (pos_ + 2 > text_.size() || text_[pos_] != '\\' ||
                text_[pos_ + 1] != 'u') {
              return Error("unpaired surrogate");
            }
            pos_ += 2;
            if (!Hex4(&low) || low < 0xDC00 || low >= 0xE000) {
              return Error("unpaired surrogate");
            }
            unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
          } else if (unit >= 0xDC00 && unit < 0xE000) {
            return Error("unpaired surrogate");
          }
          AppendUtf8(unit, &out);
          break;
        }
        default:
          return Error("bad escape");
      }
    }
  }

  absl::Status End() {
    SkipSpace();
    if (pos_ != text_.size()) return Error("trailing text");
    return absl::OkStatus();
  }

 private:
  bool Hex4(uint32_t* value) {
    if (pos_ + 4 > text_.size()) return false;
    *value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      *value <<= 4;
      if (c >= '0' && c <= '9') {
        *value |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        *value |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        *value |= c - 'A' + 10;
      } else {
        return false;
      }
    }
    return true;
  }

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("JSON: ", what, " at offset ", pos_));
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

void AppendJsonString(absl::string_view value, std::string* out) {
  out->append(JsonQuote(value));
}

std::string EncodeJsonStringMap(const std::map<std::string, std::string>& map) {
  std::string out = "{";
  bool first = true;
  for (const auto& [key, value] : map) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(key, &out);
    out += ':';
    AppendJsonString(value, &out);
  }
  out += '}';
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeJsonStringArray(
    absl::string_view json) {
  Parser parser(json);
  std::vector<std::string> out;
  RETURN_IF_ERROR(parser.Expect('['));
  if (!parser.Consume(']')) {
    do {
      ASSIGN_OR_RETURN(std::string value, parser.String());
      out.push_back(std::move(value));
    } while (parser.Consume(','));
    RETURN_IF_ERROR(parser.Expect(']'));
  }
  RETURN_IF_ERROR(parser.End());
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> DecodeJsonStringMap(
    absl::string_view json) {
  Parser parser(json);
  std::map<std::string, std::string> out;
  RETURN_IF_ERROR(parser.Expect('{'));
  if (!parser.Consume('}')) {
    do {
      ASSIGN_OR_RETURN(std::string key, parser.String());
      RETURN_IF_ERROR(parser.Expect(':'));
      ASSIGN_OR_RETURN(std::string value, parser.String());
      out[std::move(key)] = std::move(value);
    } while (parser.Consume(','));
    RETURN_IF_ERROR(parser.Expect('}'));
  }
  RETURN_IF_ERROR(parser.End());
  return out;
}

}  // namespace sweepq::store
