// The GPT-2 byte <-> unicode table used by the ByteLevel pre-tokenizer and decoder
// (openai/gpt-2 encoder.py `bytes_to_unicode`; HF `pre_tokenizers/byte_level.rs: bytes_char`).
// Bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF map to the same code point; the other 68 bytes, in
// ascending order, map to U+0100 + n. So ' ' -> U+0120 'Ġ', '\n' -> U+010A 'Ċ'.
#pragma once

#include <string>
#include <string_view>

namespace lmf::tok {

// Code point that stands for `byte`.
char32_t byte_to_char(unsigned char byte);
// Byte that `cp` stands for, or -1 when cp is not in the table.
int char_to_byte(char32_t cp);
// Maps every byte of `text` to its table character, as UTF-8.
std::string bytes_to_unicode(std::string_view text);

}  // namespace lmf::tok
