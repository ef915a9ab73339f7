#include "lmforge/train/mlm_batch.h"

#include <algorithm>

#include "lmforge/core/error.h"

namespace lmf {

int64_t MlmSpecialTokens::window_for(int64_t max_length) const {
  const int64_t w = max_length - int64_t(prefix.size() + suffix.size());
  if (w < 1)
    fail("data.max_length: ", max_length, " leaves no room for a token besides the tokenizer's ",
         prefix.size() + suffix.size(), " special tokens");
  return w;
}

MlmSpecialTokens mlm_special_tokens(const Tokenizer& tok, const std::string& mask_token) {
  MlmSpecialTokens sp;
  sp.vocab_size = tok.vocab_size();
  // Where the post-processor puts a sequence: find the plain ids inside the processed ones.
  const std::string probe = "Hello world";
  const std::vector<int32_t> plain = tok.encode(probe, false), with = tok.encode(probe, true);
  auto it = std::search(with.begin(), with.end(), plain.begin(), plain.end());
  if (plain.empty() || it == with.end())
    fail(tok.source(),
         ": the post-processor does more than add special tokens around a sequence; "
         "MLM pre-training needs [CLS]/[SEP]-style templates");
  sp.prefix.assign(with.begin(), it);
  sp.suffix.assign(it + std::ptrdiff_t(plain.size()), with.end());

  std::optional<int32_t> mask;
  if (!mask_token.empty()) {
    mask = tok.token_to_id(mask_token);
    if (!mask) fail(tok.source(), ": mlm.mask_token '", mask_token, "' is not a token of this tokenizer");
  } else {
    mask = tok.mask_id();  // tokenizer_config.json's mask_token, else a special [MASK] / <mask>
    for (const char* name : {"[MASK]", "<mask>"})
      if (!mask) mask = tok.token_to_id(name);
    if (!mask) fail(tok.source(), ": no mask token ([MASK] or <mask>); name one with mlm.mask_token");
  }
  sp.mask_id = *mask;
  sp.pad_id = tok.pad_id().value_or(0);

  std::vector<int32_t>& s = sp.never_masked;
  for (int32_t id = 0; id < tok.vocab_size(); id++)
    if (tok.is_special(id)) s.push_back(id);
  s.insert(s.end(), sp.prefix.begin(), sp.prefix.end());
  s.insert(s.end(), sp.suffix.begin(), sp.suffix.end());
  s.push_back(sp.mask_id);
  for (auto id : {tok.pad_id(), tok.eos_id(), tok.bos_id()})
    if (id) s.push_back(*id);
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
  return sp;
}

MlmMaskingConfig mlm_masking_config(const MlmSpecialTokens& sp, double mask_replace_prob,
                                    double random_replace_prob) {
  MlmMaskingConfig c;
  c.mask_id = sp.mask_id;
  c.vocab_size = sp.vocab_size;
  c.special_ids = sp.never_masked;
  c.mask_replace_prob = mask_replace_prob;
  c.random_replace_prob = random_replace_prob;
  return c;
}

MlmBatch make_mlm_batch(const std::vector<LanguageSampler::Sequence>& sequences, const MlmSpecialTokens& sp,
                        const MlmMasker& masker, double mask_rate, uint64_t seed) {
  if (sequences.empty()) fail("data: an MLM batch needs at least one sequence");
  const int64_t B = int64_t(sequences.size());
  std::vector<std::vector<int32_t>> rows(sequences.size()), labels(sequences.size());
  int64_t T = 0;
  for (size_t b = 0; b < sequences.size(); b++) {
    std::vector<int32_t>& ids = rows[b];
    ids.reserve(sp.prefix.size() + sequences[b].tokens.size() + sp.suffix.size());
    ids.insert(ids.end(), sp.prefix.begin(), sp.prefix.end());
    ids.insert(ids.end(), sequences[b].tokens.begin(), sequences[b].tokens.end());
    ids.insert(ids.end(), sp.suffix.begin(), sp.suffix.end());
    labels[b].resize(ids.size());
    masker.apply(ids, labels[b], mask_rate, seed, sequences[b].sample);
    T = std::max(T, int64_t(ids.size()));
  }
  MlmBatch out;
  std::vector<int64_t> input(size_t(B * T), sp.pad_id), mask(size_t(B * T), 0);
  int64_t stream = 0;
  for (size_t b = 0; b < rows.size(); b++) {
    for (size_t t = 0; t < rows[b].size(); t++) {
      input[b * size_t(T) + t] = rows[b][t];
      mask[b * size_t(T) + t] = 1;
      if (labels[b][t] != -100) {
        out.masked_index.push_back(stream);
        out.masked_label.push_back(labels[b][t]);
      }
      stream++;
    }
  }
  out.num_tokens = stream;
  out.batch.input_ids = Tensor::from_vector<int64_t>(input, {B, T});
  out.batch.attention_mask = Tensor::from_vector<int64_t>(mask, {B, T});
  return out;
}

}  // namespace lmf
