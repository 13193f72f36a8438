// UTF-8 checks for text that goes into JSON files (config.json, summary.json): JSON holds Unicode
// text only, and a byte that is not part of a well-formed sequence breaks its readers (Python's
// json module among them).
#pragma once

#include <cstddef>
#include <string>

namespace khsgd {

// The length (1-4) of the well-formed UTF-8 sequence that starts at text[at], or 0 where none does
// (a stray continuation byte, an overlong form, a surrogate, above U+10FFFF, or cut short).
size_t utf8_sequence(const std::string& text, size_t at);

// Whether all of `text` is well-formed UTF-8.
bool is_utf8(const std::string& text);

}  // namespace khsgd
