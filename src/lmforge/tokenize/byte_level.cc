#include "lmforge/tokenize/byte_level.h"

#include <array>

#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

namespace {

struct ByteTable {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> to_utf8;
  ByteTable() {
    int n = 0;
    for (int b = 0; b < 256; b++) {
      bool identity = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[b] = identity ? static_cast<char32_t>(b) : static_cast<char32_t>(0x100 + n++);
      append_utf8(to_utf8[b], to_char[b]);
    }
  }
};

const ByteTable& table() {
  static const ByteTable t;
  return t;
}

}  // namespace

char32_t byte_to_char(unsigned char byte) { return table().to_char[byte]; }

int char_to_byte(char32_t cp) {
  if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
    return static_cast<int>(cp);
  if (cp < 0x100 || cp >= 0x100 + 68) return -1;
  // The 68 remapped bytes in ascending order: 0x00-0x20, 0x7F-0xA0, 0xAD.
  int n = static_cast<int>(cp - 0x100);
  if (n <= 0x20) return n;
  if (n <= 0x20 + 34) return 0x7F + (n - 0x21);
  return 0xAD;
}

std::string bytes_to_unicode(std::string_view text) {
  const ByteTable& t = table();
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) out += t.to_utf8[static_cast<unsigned char>(c)];
  return out;
}

}  // namespace lmf::tok
