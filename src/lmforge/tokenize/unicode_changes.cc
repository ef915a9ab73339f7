// Unicode normalization as a (char, change) stream, reproducing the `unicode-normalization-
// alignments` crate (n1t0's fork of unicode-normalization, used by HF NormalizedString::nfd &
// co.): src/decompose.rs (Decompositions) and src/recompose.rs (Recompositions). The character
// data (decompositions, combining classes, compositions) comes from utf8proc.
#include <utf8proc.h>

#include <algorithm>
#include <optional>

#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

int combining_class(char32_t cp) {
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class;
}

namespace {

struct Decomposed {
  int ccc;
  char32_t c;
  int32_t change;
};

// Canonical (or compatibility) decomposition, then a stable sort by combining class of every
// maximal run of non-starters (what Decompositions::sort_pending does before each starter).
std::vector<Decomposed> decompose(std::string_view s, bool compat) {
  std::vector<Decomposed> out;
  out.reserve(s.size() + 8);
  utf8proc_int32_t buf[64];
  auto options = static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0));
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp = next_code_point(s, i);
    if (cp < 0x80) {
      out.push_back({0, cp, 0});
      continue;
    }
    int boundclass = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), buf, 64, options, &boundclass);
    if (n <= 0 || n > 64) {  // cannot happen for valid code points; keep the char as it is
      out.push_back({combining_class(cp), cp, 0});
      continue;
    }
    for (utf8proc_ssize_t k = 0; k < n; k++) {
      auto d = static_cast<char32_t>(buf[k]);
      out.push_back({combining_class(d), d, k == 0 ? 0 : 1});
    }
  }
  size_t k = 0;
  while (k < out.size()) {
    if (out[k].ccc == 0) {
      k++;
      continue;
    }
    size_t e = k;
    while (e < out.size() && out[e].ccc != 0) e++;
    std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(k), out.begin() + static_cast<std::ptrdiff_t>(e),
                     [](const Decomposed& a, const Decomposed& b) { return a.ccc < b.ccc; });
    k = e;
  }
  return out;
}

// The primary composite of (a, b), if any (canonical composition, exclusions excluded).
std::optional<char32_t> compose(char32_t a, char32_t b) {
  if (b < 0x300) return std::nullopt;  // no composition has a second char below U+0300
  utf8proc_int32_t buf[2] = {static_cast<utf8proc_int32_t>(a), static_cast<utf8proc_int32_t>(b)};
  utf8proc_ssize_t n =
      utf8proc_normalize_utf32(buf, 2, static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_STABLE));
  if (n == 1) return static_cast<char32_t>(buf[0]);
  return std::nullopt;
}

// Recompositions::next, run to the end of the input.
std::vector<CharChange> recompose(const std::vector<Decomposed>& in) {
  std::vector<CharChange> out;
  out.reserve(in.size());
  std::vector<CharChange> buffer;
  std::optional<CharChange> composee;
  std::optional<int> last_ccc;
  for (const Decomposed& d : in) {
    CharChange ch{d.c, d.change};
    int ch_class = d.ccc;
    if (!composee) {
      if (ch_class != 0) {
        out.push_back(ch);
        continue;
      }
      composee = ch;
      continue;
    }
    CharChange k = *composee;
    if (!last_ccc) {
      if (auto r = compose(k.c, ch.c)) {
        composee = CharChange{*r, k.change + ch.change - 1};
        continue;
      }
      if (ch_class == 0) {
        composee = ch;
        out.push_back(k);
        continue;
      }
      buffer.push_back(ch);
      last_ccc = ch_class;
      continue;
    }
    if (*last_ccc >= ch_class) {
      if (ch_class == 0) {
        // Purging: the composee, then the blocked marks, then compose on from `ch`.
        composee = ch;
        last_ccc.reset();
        out.push_back(k);
        out.insert(out.end(), buffer.begin(), buffer.end());
        buffer.clear();
        continue;
      }
      buffer.push_back(ch);
      last_ccc = ch_class;
      continue;
    }
    if (auto r = compose(k.c, ch.c)) {
      composee = CharChange{*r, k.change + ch.change - 1};
      continue;
    }
    buffer.push_back(ch);
    last_ccc = ch_class;
  }
  // Finished: the composee first, then whatever marks are still buffered.
  if (composee) out.push_back(*composee);
  out.insert(out.end(), buffer.begin(), buffer.end());
  return out;
}

}  // namespace

std::vector<CharChange> unicode_changes(std::string_view s, NormalForm form) {
  const bool compat = form == NormalForm::NFKC || form == NormalForm::NFKD;
  std::vector<Decomposed> d = decompose(s, compat);
  if (form == NormalForm::NFC || form == NormalForm::NFKC) return recompose(d);
  std::vector<CharChange> out;
  out.reserve(d.size());
  for (const Decomposed& x : d) out.push_back({x.c, x.change});
  return out;
}

}  // namespace lmf::tok
