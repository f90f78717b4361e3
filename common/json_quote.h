// JSON string literals, written the same way by every part of the project
// (sweep expansion, the store's flat JSON columns, the CLI's JSON output).
#ifndef SWEEPQ_COMMON_JSON_QUOTE_H_
#define SWEEPQ_COMMON_JSON_QUOTE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace sweepq {

// Returns `text` as a JSON string literal: quoted, with `"`, `\` and control
// characters escaped. Bytes >= 0x80 are copied unchanged.
std::string JsonQuote(absl::string_view text);

}  // namespace sweepq

#endif  // SWEEPQ_COMMON_JSON_QUOTE_H_
