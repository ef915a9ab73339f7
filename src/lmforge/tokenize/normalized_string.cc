#include "lmforge/tokenize/normalized_string.h"

#include <optional>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/regex.h"

namespace lmf::tok {

namespace {

size_t utf8_len(char32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }

bool is_char_boundary(const std::string& s, size_t i) {
  return i == 0 || i == s.size() || (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80);
}

}  // namespace

NormalizedString::NormalizedString(std::string_view original, size_t shift)
    : normalized_(original), original_len_(original.size()), shift_(shift) {
  align_.reserve(original.size());
  size_t i = 0;
  while (i < original.size()) {
    size_t b = i;
    next_code_point(original, i);
    for (size_t k = b; k < i; k++) align_.emplace_back(b, i);
  }
}

std::vector<char32_t> NormalizedString::chars() const {
  std::vector<char32_t> out;
  out.reserve(normalized_.size());
  size_t i = 0;
  while (i < normalized_.size()) out.push_back(next_code_point(normalized_, i));
  return out;
}

std::optional<Span> NormalizedString::normalized_to_original(Span r) const {
  if (r.first == r.second) return r;
  if (r.first > r.second || r.second > align_.size()) return std::nullopt;
  return Span{align_[r.first].first, align_[r.second - 1].second};
}

std::optional<Span> NormalizedString::original_to_normalized(Span r) const {
  if (r.first == r.second) return r;
  if (r.first > r.second) return std::nullopt;
  std::optional<size_t> start, end;
  for (size_t i = 0; i < align_.size(); i++) {
    const Span& a = align_[i];
    if (r.second < a.second) break;  // take_while(target.end >= alignment.end)
    if (!start && r.first <= a.first && a.first != a.second) start = i;
    end = i + 1;
  }
  if (start && end) return Span{*start, *end};
  if (start) return Span{*start, *start};
  if (end) return Span{*end, *end};
  return std::nullopt;
}

std::optional<NormalizedString> NormalizedString::slice(Span r) const {
  if (r.first > r.second || r.second > normalized_.size() || !is_char_boundary(normalized_, r.first) ||
      !is_char_boundary(normalized_, r.second))
    return std::nullopt;
  std::optional<Span> orig = normalized_to_original(r);
  if (!orig) return std::nullopt;
  NormalizedString out;
  const size_t n_shift = orig->first;
  // HF takes the original text of that range (empty when out of range).
  out.original_len_ = orig->second <= original_len_ && orig->first <= orig->second ? orig->second - orig->first : 0;
  out.normalized_ = normalized_.substr(r.first, r.second - r.first);
  out.align_.reserve(r.second - r.first);
  for (size_t i = r.first; i < r.second; i++) out.align_.emplace_back(align_[i].first - n_shift, align_[i].second - n_shift);
  out.shift_ = shift_ + orig->first;
  return out;
}

void NormalizedString::transform_range(Span r, const std::vector<CharChange>& dest, size_t initial_offset) {
  LMF_CHECK(r.first <= r.second && r.second <= normalized_.size(), "transform_range out of bounds");
  std::string_view old(normalized_.data() + r.first, r.second - r.first);
  size_t cursor = 0;  // next old char to consume
  auto take_char = [&]() -> size_t {
    if (cursor >= old.size()) return 0;
    size_t b = cursor;
    next_code_point(old, cursor);
    return cursor - b;
  };
  size_t offset = r.first;
  for (size_t k = 0; k < initial_offset; k++) offset += take_char();

  std::string out;
  out.reserve(old.size() + 8);
  std::vector<Span> al;
  al.reserve(old.size() + 8);
  for (const CharChange& d : dest) {
    Span a;
    if (d.change > 0) {
      a = offset < 1 ? Span{0, 0} : align_.at(offset - 1);
    } else {
      a = align_.at(offset);
    }
    size_t replaced = d.change <= 0 ? take_char() : 0;
    size_t removed = 0;
    for (int32_t k = 0; k < -d.change; k++) removed += take_char();
    offset += replaced + removed;
    append_utf8(out, d.c);
    al.insert(al.end(), utf8_len(d.c), a);
  }
  if (r.first == 0 && r.second == normalized_.size()) {  // the usual case: the whole string
    normalized_ = std::move(out);
    align_ = std::move(al);
    return;
  }
  normalized_.replace(r.first, r.second - r.first, out);
  align_.erase(align_.begin() + static_cast<std::ptrdiff_t>(r.first), align_.begin() + static_cast<std::ptrdiff_t>(r.second));
  align_.insert(align_.begin() + static_cast<std::ptrdiff_t>(r.first), al.begin(), al.end());
}

void NormalizedString::transform(const std::vector<CharChange>& dest, size_t initial_offset) {
  std::optional<Span> r = original_to_normalized({0, original_len_});
  if (!r) return;
  transform_range(*r, dest, initial_offset);
}

void NormalizedString::map_bytes_to_chars(const char32_t (&table)[256]) {
  std::optional<Span> r = original_to_normalized({0, original_len_});
  if (!r) return;
  if (r->first != 0 || r->second != normalized_.size()) {  // zero-width alignments at the edges
    std::vector<CharChange> dest;
    size_t i = 0;
    while (i < normalized_.size()) {
      size_t b = i;
      next_code_point(normalized_, i);
      for (size_t k = b; k < i; k++) dest.push_back({table[static_cast<unsigned char>(normalized_[k])], k > b ? 1 : 0});
    }
    transform(dest, 0);
    return;
  }
  // Whole string: a replaced char takes its own first byte's alignment, an inserted one the
  // alignment of the previous old byte, i.e. the last byte of the same char.
  std::string out;
  std::vector<Span> al;
  out.reserve(normalized_.size() * 2);
  al.reserve(normalized_.size() * 2);
  size_t i = 0;
  while (i < normalized_.size()) {
    size_t b = i;
    next_code_point(normalized_, i);
    for (size_t k = b; k < i; k++) {
      char32_t c = table[static_cast<unsigned char>(normalized_[k])];
      const Span a = k == b ? align_[b] : align_[i - 1];
      size_t before = out.size();
      append_utf8(out, c);
      al.insert(al.end(), out.size() - before, a);
    }
  }
  normalized_ = std::move(out);
  align_ = std::move(al);
}

void NormalizedString::normalize_unicode(NormalForm form) {
  bool ascii = true;
  for (char c : normalized_)
    if (static_cast<unsigned char>(c) >= 0x80) {
      ascii = false;
      break;
    }
  if (ascii) return;  // all four forms are the identity on ASCII, alignments included
  transform(unicode_changes(normalized_, form), 0);
}

void NormalizedString::lowercase() {
  std::vector<CharChange> dest;
  dest.reserve(normalized_.size());
  for (char32_t c : chars()) {
    std::string one;
    append_utf8(one, c);
    std::string lc = to_lowercase(one);
    size_t i = 0, n = 0;
    while (i < lc.size()) dest.push_back({next_code_point(lc, i), n++ > 0 ? 1 : 0});
  }
  transform(dest, 0);
}

void NormalizedString::prepend(std::string_view s) {
  if (normalized_.empty()) return;
  size_t i = 0;
  char32_t next = next_code_point(normalized_, i);
  std::vector<CharChange> dest;
  size_t j = 0, n = 0;
  while (j < s.size()) dest.push_back({next_code_point(s, j), n++ > 0 ? 1 : 0});
  dest.push_back({next, 1});
  transform_range({0, i}, dest, 0);
}

void NormalizedString::append(std::string_view s) {
  std::vector<CharChange> dest;
  size_t b = normalized_.size();
  if (!normalized_.empty()) {
    size_t e = normalized_.size();
    char32_t prev = prev_code_point(normalized_, e);
    b = e;
    dest.push_back({prev, 0});
  } else {
    b = 0;
  }
  size_t j = 0;
  while (j < s.size()) dest.push_back({next_code_point(s, j), 1});
  transform_range({b, normalized_.size()}, dest, 0);
}

void NormalizedString::replace(const Regex& re, std::string_view content) { replace_spans(re.find_all(normalized_), content); }

void NormalizedString::replace(char32_t c, std::string_view content) {
  std::vector<Span> spans;
  size_t i = 0;
  while (i < normalized_.size()) {
    size_t b = i;
    if (next_code_point(normalized_, i) == c) spans.emplace_back(b, i);
  }
  replace_spans(spans, content);
}

void NormalizedString::replace_spans(const std::vector<Span>& matches, std::string_view content) {
  // HF replace(): each match is rewritten as if by transform_range(match, content as inserted
  // chars, initial_offset = all chars of the match), i.e. every new char takes the alignment
  // of the last byte of the match.
  std::string out;
  std::vector<Span> al;
  out.reserve(normalized_.size());
  al.reserve(align_.size());
  size_t last = 0;
  for (auto [s, e] : matches) {
    out.append(normalized_, last, s - last);
    al.insert(al.end(), align_.begin() + static_cast<std::ptrdiff_t>(last), align_.begin() + static_cast<std::ptrdiff_t>(s));
    const Span a = e < 1 ? Span{0, 0} : align_[e - 1];
    size_t j = 0;
    while (j < content.size()) {
      size_t b = j;
      next_code_point(content, j);
      out.append(content.substr(b, j - b));
      al.insert(al.end(), j - b, a);
    }
    last = e;
  }
  out.append(normalized_, last, std::string::npos);
  al.insert(al.end(), align_.begin() + static_cast<std::ptrdiff_t>(last), align_.end());
  normalized_ = std::move(out);
  align_ = std::move(al);
}

void NormalizedString::lrstrip(bool left, bool right) {
  std::vector<char32_t> cs = chars();
  size_t leading = 0, trailing = 0;
  if (left)
    while (leading < cs.size() && is_white_space(cs[leading])) leading++;
  if (right)
    while (trailing < cs.size() && is_white_space(cs[cs.size() - 1 - trailing])) trailing++;
  if (leading == 0 && trailing == 0) return;
  // HF compares a char index with the byte length here (so the removal marker is only placed on
  // ASCII text); removing trailing chars changes no kept alignment either way.
  std::vector<CharChange> dest;
  for (size_t i = 0; i < cs.size(); i++) {
    if (i < leading || i + trailing >= cs.size()) continue;
    if (i + trailing + 1 == normalized_.size())
      dest.push_back({cs[i], -static_cast<int32_t>(trailing)});
    else
      dest.push_back({cs[i], 0});
  }
  transform(dest, leading);
}

}  // namespace lmf::tok
