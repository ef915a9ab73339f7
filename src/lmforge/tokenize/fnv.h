// 64-bit FNV-1a, used for tokenizer fingerprints (stable across runs and platforms).
#pragma once

#include <cstdint>
#include <string_view>

namespace lmf::tok {

struct Fnv1a64 {
  uint64_t hash = 14695981039346656037ull;  // FNV offset basis

  void add_bytes(std::string_view bytes) {
    for (char c : bytes) {
      hash ^= static_cast<unsigned char>(c);
      hash *= 1099511628211ull;  // FNV prime
    }
  }
  // Length-prefixed, so ("ab","c") and ("a","bc") hash differently.
  void add_string(std::string_view s) {
    add_u64(s.size());
    add_bytes(s);
  }
  void add_u64(uint64_t v) {
    for (int i = 0; i < 8; i++) {
      hash ^= (v >> (8 * i)) & 0xFF;
      hash *= 1099511628211ull;
    }
  }
};

}  // namespace lmf::tok
