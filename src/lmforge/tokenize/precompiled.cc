#include "lmforge/tokenize/precompiled.h"

#include <utf8proc.h>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/normalizer.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

std::optional<std::string> base64_decode(std::string_view s) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (s.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(s.size() / 4 * 3);
  for (size_t i = 0; i < s.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      char c = s[i + k];
      if (c == '=' && i + 4 == s.size() && k >= 2) {
        v[k] = 0;
        pad++;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[k] = val(c);
      if (v[k] < 0) return std::nullopt;
    }
    uint32_t n = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                 (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out.push_back(static_cast<char>((n >> 16) & 0xFF));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xFF));
  }
  return out;
}

PrecompiledCharsmap::PrecompiledCharsmap(std::string_view blob, const std::string& where) : where_(where) {
  if (blob.size() < 4) fail(where, ": precompiled_charsmap is truncated (", blob.size(), " bytes, expected at least 4)");
  auto u8 = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(blob[i])); };
  const uint32_t trie_bytes = u8(0) | (u8(1) << 8) | (u8(2) << 16) | (u8(3) << 24);
  if (trie_bytes == 0 || trie_bytes % 4 != 0 || 4 + static_cast<size_t>(trie_bytes) > blob.size())
    fail(where, ": precompiled_charsmap: trie size ", trie_bytes, " does not fit the ", blob.size(), "-byte map");
  array_.resize(trie_bytes / 4);
  for (size_t k = 0; k < array_.size(); k++) {
    size_t b = 4 + 4 * k;
    array_[k] = u8(b) | (u8(b + 1) << 8) | (u8(b + 2) << 16) | (u8(b + 3) << 24);
  }
  normalized_.assign(blob.substr(4 + trie_bytes));
  if (size_t bad = find_invalid_utf8(normalized_); bad != std::string::npos)
    fail(where, ": precompiled_charsmap: the replacement strings are not valid UTF-8 (byte ", bad, ")");
}

uint32_t PrecompiledCharsmap::unit(size_t pos) const {
  if (pos >= array_.size()) fail(where_, ": precompiled_charsmap is corrupt (trie index ", pos, " out of range)");
  return array_[pos];
}

namespace {
bool has_leaf(uint32_t u) { return ((u >> 8) & 1) == 1; }
uint32_t value(uint32_t u) { return u & ((1u << 31) - 1); }
uint32_t label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
size_t offset(uint32_t u) { return static_cast<size_t>(u >> 10) << ((u & (1u << 9)) >> 6); }
}  // namespace

std::string_view PrecompiledCharsmap::replacement_at(size_t index) const {
  if (index > normalized_.size()) return {};
  size_t end = normalized_.find('\0', index);
  if (end == std::string::npos) end = normalized_.size();
  return std::string_view(normalized_).substr(index, end - index);
}

std::optional<std::string_view> PrecompiledCharsmap::transform(std::string_view chunk) const {
  size_t node = 0;
  node ^= offset(unit(node));
  for (char ch : chunk) {
    auto c = static_cast<unsigned char>(ch);
    if (c == 0) break;
    node ^= c;
    uint32_t u = unit(node);
    if (label(u) != c) return std::nullopt;
    node ^= offset(u);
    if (has_leaf(u)) return replacement_at(value(unit(node)));
  }
  return std::nullopt;
}

std::optional<std::pair<size_t, std::string_view>> PrecompiledCharsmap::longest_prefix(std::string_view chunk) const {
  std::optional<std::pair<size_t, std::string_view>> best;
  size_t node = 0;
  node ^= offset(unit(node));
  for (size_t i = 0; i < chunk.size(); i++) {
    auto c = static_cast<unsigned char>(chunk[i]);
    if (c == 0) break;
    node ^= c;
    uint32_t u = unit(node);
    if (label(u) != c) break;
    node ^= offset(u);
    if (has_leaf(u)) best = std::make_pair(i + 1, replacement_at(value(unit(node))));
  }
  return best;
}

namespace {

// normalizers/precompiled.rs replace(): the new chars replace the old ones one for one; extra
// new chars are insertions (+1), fewer new chars fold the removal into the last change.
void replace(std::vector<CharChange>& t, std::string_view old_part, std::string_view new_part) {
  int32_t old_count = 0, new_count = 0;
  for (char c : old_part) old_count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  size_t i = 0;
  while (i < new_part.size()) {
    t.push_back({next_code_point(new_part, i), 0});
    new_count++;
  }
  const int32_t diff = new_count - old_count;
  if (diff > 0) {
    for (int32_t k = 0; k < diff; k++) t[t.size() - 1 - k].change = 1;
  } else if (diff < 0 && !t.empty()) {
    t.back().change += diff;
  }
}

class Precompiled final : public Normalizer {
 public:
  explicit Precompiled(PrecompiledCharsmap map) : map_(std::move(map)) {}

  void apply(NormalizedString& s) const override {
    const std::string& text = s.get();
    std::vector<CharChange> t;
    t.reserve(text.size());
    bool modified = false;
    // Extended grapheme clusters (unicode-segmentation graphemes(true); utf8proc's rules).
    size_t g_start = 0;
    utf8proc_int32_t state = 0;
    size_t i = 0;
    char32_t prev = 0;
    auto flush = [&](size_t g_end) {
      std::string_view g(text.data() + g_start, g_end - g_start);
      if (g.size() < 6) {
        if (auto norm = map_.transform(g)) {
          modified = true;
          replace(t, g, *norm);
          return;
        }
      }
      size_t k = 0;
      while (k < g.size()) {
        size_t b = k;
        char32_t c = next_code_point(g, k);
        std::string_view part = g.substr(b, k - b);
        if (auto norm = map_.transform(part)) {
          modified = true;
          replace(t, part, *norm);
        } else {
          t.push_back({c, 0});
        }
      }
    };
    while (i < text.size()) {
      size_t b = i;
      char32_t c = next_code_point(text, i);
      if (b > 0 &&
          utf8proc_grapheme_break_stateful(static_cast<utf8proc_int32_t>(prev), static_cast<utf8proc_int32_t>(c), &state)) {
        flush(b);
        g_start = b;
        state = 0;
      }
      prev = c;
    }
    if (!text.empty()) flush(text.size());
    if (modified) s.transform(t, 0);
  }

 private:
  PrecompiledCharsmap map_;
};

}  // namespace

std::unique_ptr<Normalizer> precompiled_from_json(const Json& j, const std::string& path) {
  const std::string p = path_key(path, "precompiled_charsmap");
  const std::string b64 = get_string(j, "precompiled_charsmap", path);
  std::optional<std::string> blob = base64_decode(b64);
  if (!blob) fail(p, ": not valid base64");
  return std::make_unique<Precompiled>(PrecompiledCharsmap(*blob, p));
}

}  // namespace lmf::tok
