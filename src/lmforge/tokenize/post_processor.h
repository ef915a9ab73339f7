// Post-processors: add the model's special tokens around one sequence or a pair, and set type
// ids (tokenizers `processors/`).
//
// Supported "type"s: ByteLevel (offset trimming only), TemplateProcessing, BertProcessing,
// RobertaProcessing, Sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/tokenize/json_fields.h"
#include "lmforge/tokenize/tokenizer.h"

namespace lmf::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Number of tokens process() adds when add_special_tokens (HF `added_tokens(is_pair)`).
  virtual size_t added_tokens(bool is_pair) const = 0;
  // HF `process_encodings`: rewrites the 1 or 2 encodings (the result is concatenated).
  virtual void process_encodings(std::vector<Encoding>& encodings, bool add_special_tokens) const = 0;
  // HF `PostProcessor::process`: sets each sequence's type ids to its index (0 or 1) and its
  // sequence ids, runs process_encodings, then concatenates.
  Encoding process(Encoding first, std::optional<Encoding> second, bool add_special_tokens) const;
};

// Concatenates encodings (HF `Encoding::merge`, offsets unchanged).
Encoding merge_encodings(std::vector<Encoding>& parts);

// Builds the post-processor of a tokenizer.json "post_processor" value; nullptr for null.
std::unique_ptr<PostProcessor> post_processor_from_json(const Json& j, const std::string& path);

}  // namespace lmf::tok
