// Normalizers: the first text transform of the HF pipeline (tokenizers `normalizers/`).
// Each piece of input between added tokens is normalized on its own (PARITY.md 6.0).
//
// Supported "type"s: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend,
// Sequence. Others (BertNormalizer, Precompiled, Nmt, ByteLevel) throw "not supported yet";
// add one as a new class here (or a new file for a large one) and a line in normalizer_from_json.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "lmforge/tokenize/json_fields.h"

namespace lmf::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // The normalized form of `text` (valid UTF-8 in, valid UTF-8 out). Thread-safe.
  virtual std::string normalize(std::string_view text) const = 0;
};

// Builds the normalizer of a tokenizer.json "normalizer" value; nullptr for null.
// Throws lmf::Error naming `path` (e.g. "normalizer.normalizers[1].type") on bad input.
std::unique_ptr<Normalizer> normalizer_from_json(const Json& j, const std::string& path);

}  // namespace lmf::tok
