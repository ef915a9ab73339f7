// SentencePiece's precompiled normalization map (the "precompiled_charsmap" of a .model file,
// base64 in tokenizer.json's Precompiled normalizer; tokenizers `normalizers/precompiled.rs` +
// the spm_precompiled crate).
//
// Format: u32 little-endian trie size in bytes, then that many bytes of a darts-clone double
// array (u32 units: bit 8 = has leaf, low 31 bits = value, label = unit & (2^31 | 0xFF), offset =
// (unit >> 10) << ((unit & 2^9) >> 6)), then the replacement strings, each ended by '\0'; a
// trie value is the byte index of its replacement.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmf::tok {

class PrecompiledCharsmap {
 public:
  // Parses the binary map; throws lmf::Error naming `where` when it is truncated, the trie is
  // empty, or the replacement strings are not UTF-8.
  PrecompiledCharsmap(std::string_view blob, const std::string& where);

  // spm_precompiled transform(): the replacement of the SHORTEST key that is a prefix of
  // `chunk` (bytes), if any. A '\0' byte ends the key.
  std::optional<std::string_view> transform(std::string_view chunk) const;
  // The replacement of the longest key that is a prefix of `chunk`: (key length, replacement).
  std::optional<std::pair<size_t, std::string_view>> longest_prefix(std::string_view chunk) const;

 private:
  std::string_view replacement_at(size_t index) const;
  uint32_t unit(size_t pos) const;

  std::vector<uint32_t> array_;
  std::string normalized_;
  std::string where_;
};

// Standard base64 (RFC 4648, '=' padding) to bytes; nullopt on any invalid input.
std::optional<std::string> base64_decode(std::string_view s);

}  // namespace lmf::tok
