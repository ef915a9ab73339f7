// Normalizers: the first text transform of the HF pipeline (tokenizers `normalizers/`).
// Each piece of input between added tokens is normalized on its own (PARITY.md 6.0).
//
// Supported "type"s: BertNormalizer (bert_normalizer.cc), Precompiled (precompiled.cc), NFC, NFD,
// NFKC, NFKD, Nmt, Lowercase, Strip, StripAccents, Replace, Prepend, Sequence. Others
// (ByteLevel) throw "not supported"; add one as a new class here (or a new file for a large
// one) and a line in normalizer_from_json.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lmforge/tokenize/json_fields.h"
#include "lmforge/tokenize/normalized_string.h"

namespace lmf::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Normalizes `s` in place, keeping its alignments (HF `Normalizer::normalize`). Thread-safe.
  virtual void apply(NormalizedString& s) const = 0;
  // The normalized form of `text` (valid UTF-8 in, valid UTF-8 out).
  std::string normalize(std::string_view text) const {
    NormalizedString s(text);
    apply(s);
    return s.get();
  }
};

// BertNormalizer with HF's defaults semantics (strip_accents nullopt = follow lowercase).
std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool handle_chinese_chars,
                                                 std::optional<bool> strip_accents, bool lowercase);

// Builds the normalizer of a tokenizer.json "normalizer" value; nullptr for null.
// Throws lmf::Error naming `path` (e.g. "normalizer.normalizers[1].type") on bad input.
std::unique_ptr<Normalizer> normalizer_from_json(const Json& j, const std::string& path);

}  // namespace lmf::tok
