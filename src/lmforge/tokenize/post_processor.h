// Post-processors: add the model's special tokens around the encoded sequence
// (tokenizers `processors/`). Only single sequences are handled so far (pairs come with the
// fine-tuning tasks that need them).
//
// Supported "type"s: ByteLevel (changes only offsets, so nothing for ids), TemplateProcessing,
// BertProcessing, RobertaProcessing, Sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/tokenize/json_fields.h"

namespace lmf::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Rewrites the ids of one sequence; special tokens are added only when add_special_tokens.
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
  // Number of ids process() adds to a single sequence when add_special_tokens.
  virtual size_t added_tokens() const = 0;
};

// Builds the post-processor of a tokenizer.json "post_processor" value; nullptr for null.
std::unique_ptr<PostProcessor> post_processor_from_json(const Json& j, const std::string& path);

}  // namespace lmf::tok
