// Decoders: turn the tokens of decoded ids back into text (tokenizers `decoders/`).
// The tokenizer calls decode_chain and joins the result with "".
//
// Supported "type"s: ByteLevel, ByteFallback, Fuse, Strip, Replace, Sequence. Others
// (WordPiece, Metaspace, BPEDecoder, CTC) throw "not supported yet".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmforge/tokenize/json_fields.h"

namespace lmf::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // HF `Decoder::decode_chain`. Thread-safe.
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};

// Builds the decoder of a tokenizer.json "decoder" value; nullptr for null.
std::unique_ptr<Decoder> decoder_from_json(const Json& j, const std::string& path);

}  // namespace lmf::tok
