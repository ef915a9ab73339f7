#include "lmforge/data/classification_batches.h"

#include <algorithm>
#include <numeric>

#include "lmforge/core/error.h"
#include "lmforge/core/philox.h"

namespace lmf {

namespace {

// A uniform integer in [0, n) from element i of the Philox stream (seed, offset) (Lemire's
// multiply-shift; the bias is below 2^-32 * n, irrelevant for data order).
uint64_t philox_below(uint64_t seed, uint64_t offset, uint64_t i, uint64_t n) {
  const uint32_t w = philox4x32_10(seed, i >> 2, offset).v[i & 3];
  return (uint64_t(w) * n) >> 32;
}

void shuffle(std::vector<int64_t>& v, uint64_t seed, uint64_t offset) {
  for (size_t i = v.size(); i > 1; i--) std::swap(v[i - 1], v[philox_below(seed, offset, i, i)]);
}

}  // namespace

Truncation parse_truncation(const std::string& name, const std::string& field) {
  if (name == "longest_first" || name == "true") return Truncation::longest_first;
  if (name == "only_first") return Truncation::only_first;
  if (name == "only_second") return Truncation::only_second;
  if (name == "none" || name == "false" || name == "do_not_truncate") return Truncation::none;
  fail(field, ": expected one of longest_first, only_first, only_second, none, got '", name, "'");
}

const char* truncation_name(Truncation t) {
  switch (t) {
    case Truncation::longest_first:
      return "longest_first";
    case Truncation::only_first:
      return "only_first";
    case Truncation::only_second:
      return "only_second";
    case Truncation::none:
      return "none";
  }
  return "?";
}

EncodedExample encode_one(const Tokenizer& tok, const std::string& text, const std::string& text_pair,
                          const SeqEncodeOptions& o) {
  EncodeOptions eo;
  eo.add_special_tokens = true;
  eo.truncation = o.truncation;
  eo.max_length = o.truncation == Truncation::none ? 0 : static_cast<size_t>(o.max_length);
  std::optional<std::string_view> second;
  if (!text_pair.empty()) second = text_pair;
  Encoding enc = tok.encode_pair(text, second, eo);
  size_t first_tokens = 0, second_tokens = 0;
  for (int32_t s : enc.sequence_ids) {
    first_tokens += s == 0;
    second_tokens += s == 1;
  }
  if (first_tokens == 0) fail("the text yields no tokens");
  if (second && second_tokens == 0) fail("the text pair yields no tokens");
  EncodedExample e;
  e.ids = std::move(enc.ids);
  e.type_ids = std::move(enc.type_ids);
  return e;
}

std::vector<EncodedExample> encode_examples(const Tokenizer& tok, const LabelledData& data,
                                            const SeqEncodeOptions& o, EncodeStats* stats) {
  if (o.truncation != Truncation::none && o.max_length < 1)
    fail("max_length: expected >= 1, got ", o.max_length);
  std::vector<EncodedExample> out(data.examples.size());
  EncodeStats st;
  SeqEncodeOptions untruncated = o;
  untruncated.truncation = Truncation::none;
  for (size_t i = 0; i < data.examples.size(); i++) {
    const LabelledExample& ex = data.examples[i];
    try {
      out[i] = encode_one(tok, ex.text, ex.text_pair, o);
    } catch (const Error& e) {
      throw e.with_context(data.source + ":" + std::to_string(ex.line));
    }
    out[i].label = ex.label_id;
    out[i].index = static_cast<int64_t>(i);
    st.tokens += static_cast<int64_t>(out[i].ids.size());
    st.max_len = std::max<int64_t>(st.max_len, static_cast<int64_t>(out[i].ids.size()));
    if (o.truncation != Truncation::none && static_cast<int64_t>(out[i].ids.size()) == o.max_length &&
        static_cast<int64_t>(encode_one(tok, ex.text, ex.text_pair, untruncated).ids.size()) > o.max_length)
      st.truncated++;
  }
  st.examples = static_cast<int64_t>(out.size());
  if (stats) *stats = st;
  return out;
}

ClassificationBatch make_batch(const std::vector<EncodedExample>& ex, const std::vector<int64_t>& order,
                               int64_t begin, int64_t end, int64_t pad_id) {
  LMF_CHECK(begin >= 0 && begin < end && end <= static_cast<int64_t>(order.size()), "batch range");
  const int64_t B = end - begin;
  int64_t T = 0;
  for (int64_t r = begin; r < end; r++)
    T = std::max<int64_t>(T, static_cast<int64_t>(ex[size_t(order[size_t(r)])].ids.size()));
  std::vector<int64_t> ids(size_t(B * T), pad_id), mask(size_t(B * T), 0), types(size_t(B * T), 0);
  ClassificationBatch b;
  for (int64_t r = 0; r < B; r++) {
    const EncodedExample& e = ex[size_t(order[size_t(begin + r)])];
    for (size_t t = 0; t < e.ids.size(); t++) {
      ids[size_t(r * T) + t] = e.ids[t];
      types[size_t(r * T) + t] = e.type_ids[t];
      mask[size_t(r * T) + t] = 1;
    }
    b.labels.push_back(e.label);
    b.indices.push_back(e.index);
    b.num_tokens += static_cast<int64_t>(e.ids.size());
  }
  b.tokens.input_ids = Tensor::from_vector(ids, {B, T});
  b.tokens.attention_mask = Tensor::from_vector(mask, {B, T});
  b.tokens.token_type_ids = Tensor::from_vector(types, {B, T});
  return b;
}

ClassificationBatcher::ClassificationBatcher(const std::vector<EncodedExample>& examples, int64_t batch_size,
                                             int64_t pad_id, bool shuffle, uint64_t seed,
                                             bool group_by_length)
    : ex_(examples),
      batch_size_(batch_size),
      pad_id_(pad_id),
      shuffle_(shuffle),
      group_(group_by_length),
      seed_(seed) {
  if (batch_size < 1) fail("batch size: expected >= 1, got ", batch_size);
  if (group_by_length && !shuffle) fail("group_by_length needs shuffling (it is for training batches)");
  start_epoch(0);
}

void ClassificationBatcher::start_epoch(int64_t epoch) {
  order_.resize(ex_.size());
  std::iota(order_.begin(), order_.end(), int64_t(0));
  if (!shuffle_) return;
  // Streams: 2 * epoch for the example order, 2 * epoch + 1 for the batch order.
  shuffle(order_, seed_, 2 * uint64_t(epoch));
  if (!group_) return;
  const int64_t window = 50 * batch_size_, n = static_cast<int64_t>(order_.size());
  auto len = [&](int64_t i) { return ex_[size_t(i)].ids.size(); };
  for (int64_t w = 0; w < n; w += window) {
    auto first = order_.begin() + w, last = order_.begin() + std::min(n, w + window);
    std::stable_sort(first, last, [&](int64_t a, int64_t b) { return len(a) > len(b); });
  }
  // Shuffle whole batches (the last, possibly short batch stays last so every other is full).
  const int64_t nb = num_batches(), full = n % batch_size_ == 0 ? nb : nb - 1;
  std::vector<int64_t> batches(static_cast<size_t>(full));
  std::iota(batches.begin(), batches.end(), int64_t(0));
  shuffle(batches, seed_, 2 * uint64_t(epoch) + 1);
  std::vector<int64_t> reordered;
  reordered.reserve(order_.size());
  for (int64_t bi : batches)
    reordered.insert(reordered.end(), order_.begin() + bi * batch_size_,
                     order_.begin() + (bi + 1) * batch_size_);
  reordered.insert(reordered.end(), order_.begin() + full * batch_size_, order_.end());
  order_ = std::move(reordered);
}

int64_t ClassificationBatcher::num_batches() const {
  return (static_cast<int64_t>(ex_.size()) + batch_size_ - 1) / batch_size_;
}

ClassificationBatch ClassificationBatcher::batch(int64_t i) const {
  if (i < 0 || i >= num_batches()) fail("batch index ", i, " outside [0, ", num_batches(), ")");
  const int64_t begin = i * batch_size_,
                end = std::min<int64_t>(begin + batch_size_, static_cast<int64_t>(ex_.size()));
  return make_batch(ex_, order_, begin, end, pad_id_);
}

}  // namespace lmf
