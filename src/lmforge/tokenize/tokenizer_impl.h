// The parts of a Tokenizer (internal to tokenize/: tokenizer.cc runs the pipeline,
// tokenizer_json.cc builds it from tokenizer.json).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "lmforge/tokenize/added_vocabulary.h"
#include "lmforge/tokenize/decoder.h"
#include "lmforge/tokenize/model.h"
#include "lmforge/tokenize/normalizer.h"
#include "lmforge/tokenize/post_processor.h"
#include "lmforge/tokenize/pre_tokenizer.h"
#include "lmforge/tokenize/tokenizer.h"

namespace lmf {

struct Tokenizer::Impl {
  std::string source;
  std::unique_ptr<tok::Normalizer> normalizer;         // may be null
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;    // may be null
  std::unique_ptr<tok::Model> model;                   // never null
  std::unique_ptr<tok::PostProcessor> post_processor;  // may be null
  std::unique_ptr<tok::Decoder> decoder;               // may be null: tokens joined with " "
  tok::AddedVocabulary added;
  std::optional<int32_t> eos, bos, pad, mask;
  uint64_t fingerprint = 0;
};

}  // namespace lmf
