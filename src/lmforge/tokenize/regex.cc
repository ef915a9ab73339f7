#include "lmforge/tokenize/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>
#include <cstdio>

#include "lmforge/core/error.h"

namespace lmf::tok {

namespace {

// Unicode White_Space as class items (usable inside [...]).
constexpr const char* kWhiteSpaceItems =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";
constexpr const char* kHexItems = "0-9a-fA-F";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof(buf));
  return n < 0 ? "unknown PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buf));
}

}  // namespace

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() {
    if (code) pcre2_code_free(code);
  }
};

std::string translate_oniguruma_pattern(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  int class_depth = 0;
  for (size_t i = 0; i < p.size(); i++) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char d = p[i + 1];
      bool in_class = class_depth > 0;
      if (d == 's' || d == 'h') {
        const char* items = d == 's' ? kWhiteSpaceItems : kHexItems;
        if (in_class)
          out += items;
        else
          out += std::string("[") + items + "]";
        i++;
        continue;
      }
      if ((d == 'S' || d == 'H') && !in_class) {
        out += std::string("[^") + (d == 'S' ? kWhiteSpaceItems : kHexItems) + "]";
        i++;
        continue;
      }
      out += c;
      out += d;
      i++;
      continue;
    }
    if (c == '[') {
      class_depth++;
      out += c;
      // A ']' right after '[' or '[^' is a literal in both engines.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && class_depth > 0) class_depth--;
    out += c;
  }
  return out;
}

namespace {

pcre2_code* compile_raw(const std::string& pcre_pattern, uint32_t options, std::string_view shown,
                        const std::string& where) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre_pattern.data()), pcre_pattern.size(),
                                   options | PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
  if (!code) fail(where, ": invalid regex '", shown, "': ", pcre2_message(err), " at offset ", err_off);
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is unavailable
  return code;
}

}  // namespace

Regex Regex::compile(std::string_view pattern, const std::string& where) {
  Regex r;
  r.pattern_ = std::string(pattern);
  auto code = std::make_shared<Code>();
  code->code = compile_raw(translate_oniguruma_pattern(pattern), 0, pattern, where);
  r.code_ = code;
  return r;
}

Regex Regex::literal(std::string_view text, const std::string& where) {
  Regex r;
  r.pattern_ = std::string(text);
  // PCRE2_LITERAL cannot be combined with UCP: escape instead. A backslash before an ASCII
  // non-alphanumeric char makes it literal; controls are written as \x{..}.
  std::string escaped;
  for (char c : text) {
    auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x{%02X}", b);
      escaped += buf;
    } else if (b < 0x80 && !std::isalnum(b)) {
      escaped += '\\';
      escaped += c;
    } else {
      escaped += c;
    }
  }
  auto code = std::make_shared<Code>();
  code->code = compile_raw(escaped, 0, text, where);
  r.code_ = code;
  return r;
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  LMF_CHECK(md != nullptr, "pcre2_match_data_create_from_pattern failed");
  size_t last_end = 0;
  bool have_last = false;
  size_t last_match_end = 0;
  while (last_end <= text.size()) {
    int rc = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), last_end,
                         PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      fail("regex '", pattern_, "': matching failed: ", pcre2_message(rc));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t s = ov[0], e = ov[1];
    if (s == e && have_last && last_match_end == e) {
      // onig FindMatches: skip an empty match glued to the previous one, advance one char.
      if (last_end >= text.size()) break;
      auto b = static_cast<unsigned char>(text[last_end]);
      last_end += b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
      continue;
    }
    last_end = e;
    last_match_end = e;
    have_last = true;
    out.emplace_back(s, e);
  }
  pcre2_match_data_free(md);
  return out;
}

std::vector<MatchSpan> Regex::split_spans(std::string_view text) const {
  std::vector<MatchSpan> spans;
  if (text.empty()) {
    spans.push_back({0, 0, false});
    return spans;
  }
  size_t prev = 0;
  for (auto [s, e] : find_all(text)) {
    if (prev != s) spans.push_back({prev, s, false});
    spans.push_back({s, e, true});
    prev = e;
  }
  if (prev != text.size()) spans.push_back({prev, text.size(), false});
  return spans;
}

}  // namespace lmf::tok
