// Decoders: turn the tokens of decoded ids back into text (tokenizers `decoders/`).
// The tokenizer calls decode_chain and joins the result with "".
//
// Supported "type"s: ByteLevel, ByteFallback, WordPiece, Metaspace (metaspace.cc), BPEDecoder,
// Fuse, Strip, Replace, Sequence. Others (CTC) throw "not supported".
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

// decoders/wordpiece.rs cleanup(): " ." -> "." and the other English detokenization fixes.
std::string wordpiece_cleanup(std::string s);

// Builds the decoder of a tokenizer.json "decoder" value; nullptr for null.
std::unique_ptr<Decoder> decoder_from_json(const Json& j, const std::string& path);

}  // namespace lmf::tok
