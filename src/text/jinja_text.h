// Python str semantics over UTF-8 for the Jinja interpreter: whitespace as
// str.isspace() sees it, strip/split, code point counting and indexing, and
// case mapping. Invalid UTF-8 never fails: a stray byte counts as one
// character and is copied through unchanged.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace pocket::jinja::text {

// Decodes the code point at s[pos]; returns its length in bytes (>= 1). A byte
// that does not start a valid sequence decodes as U+FFFD with length 1.
size_t decode(std::string_view s, size_t pos, char32_t* cp);
void append_utf8(std::string& out, char32_t cp);

// str.isspace(): ASCII whitespace, \x1c-\x1f, \x85, \xa0 and the Unicode spaces.
bool is_space(char32_t cp);
bool is_ascii(std::string_view s);

// str.strip() family. With `chars` (Python's argument), strips those code points.
std::string_view strip(std::string_view s, bool left, bool right);
std::string_view strip_chars(std::string_view s, std::string_view chars, bool left, bool right);

// len(s): number of code points.
size_t length(std::string_view s);
// Byte offset of every code point plus s.size() at the end (size length()+1).
std::vector<size_t> offsets(std::string_view s);
// The code points of s, each as its own string.
std::vector<std::string> chars(std::string_view s);

// str.split(sep, maxsplit) / rsplit; sep == nullptr splits on whitespace runs.
std::vector<std::string> split(std::string_view s, const std::string* sep, long long maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::string* sep, long long maxsplit);
// str.splitlines() (without keepends).
std::vector<std::string> splitlines(std::string_view s);
// str.replace(old, new, count); count < 0 replaces all.
std::string replace(std::string_view s, std::string_view from, std::string_view to, long long count);
// str.count(sub) (non-overlapping; an empty sub counts len(s) + 1).
size_t count(std::string_view s, std::string_view sub);

// Full Unicode case mappings (ICU root locale, like Python's str methods).
std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);       // str.title()
std::string capitalize(std::string_view s);  // str.capitalize()
bool is_word_char(char32_t cp);              // regex \w
bool is_upper(std::string_view s);           // str.isupper()
bool is_lower(std::string_view s);           // str.islower()

}  // namespace pocket::jinja::text
