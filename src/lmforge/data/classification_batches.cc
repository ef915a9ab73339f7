#include "lmforge/data/classification_batches.h"

#include <algorithm>
#include <numeric>

#include "lmforge/core/error.h"
#include "lmforge/core/philox.h"
#include "lmforge/tokenize/tokenizer.h"

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

// The tokenizer's special tokens around one sequence: full = prefix + content + suffix.
// Found by locating the plain encoding inside the one with special tokens (Template, Bert and
// Roberta processing all wrap the sequence this way).
struct Wrapped {
  std::vector<int32_t> prefix, content, suffix;
};

Wrapped encode_wrapped(const Tokenizer& tok, const std::string& text) {
  Wrapped w;
  w.content = tok.encode(text, false);
  if (tok.num_special_tokens_added() == 0) return w;
  std::vector<int32_t> full = tok.encode(text, true);
  const size_t n = w.content.size();
  if (full.size() < n) return w;
  for (size_t p = 0; p + n <= full.size(); p++)
    if (std::equal(w.content.begin(), w.content.end(), full.begin() + static_cast<std::ptrdiff_t>(p))) {
      w.prefix.assign(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(p));
      w.suffix.assign(full.begin() + static_cast<std::ptrdiff_t>(p + n), full.end());
      return w;
    }
  LMF_CHECK(false, "the post-processor of ", tok.source(), " does not wrap the sequence");
}

void append(std::vector<int32_t>& ids, std::vector<int32_t>& types, const std::vector<int32_t>& v, int32_t type) {
  ids.insert(ids.end(), v.begin(), v.end());
  types.insert(types.end(), v.size(), type);
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
    case Truncation::longest_first: return "longest_first";
    case Truncation::only_first: return "only_first";
    case Truncation::only_second: return "only_second";
    case Truncation::none: return "none";
  }
  return "?";
}

EncodedExample encode_one(const Tokenizer& tok, const std::string& text, const std::string& text_pair,
                          const EncodeOptions& o) {
  const bool pair = !text_pair.empty();
  Wrapped a = encode_wrapped(tok, text);
  if (a.content.empty()) fail("the text yields no tokens");
  Wrapped b;
  if (pair) {
    b = encode_wrapped(tok, text_pair);
    if (b.content.empty()) fail("the text pair yields no tokens");
  }
  // Pair layout until the tokenizer has a pair template: prefix a suffix b suffix (BERT's
  // [CLS] a [SEP] b [SEP]; plain concatenation for tokenizers without special tokens).
  const size_t specials = a.prefix.size() + a.suffix.size() + (pair ? a.suffix.size() : 0);
  size_t n1 = a.content.size(), n2 = b.content.size();
  if (o.truncation != Truncation::none && n1 + n2 + specials > size_t(o.max_length)) {
    if (specials >= size_t(o.max_length))
      fail("max_length ", o.max_length, " leaves no room for content next to ", specials, " special tokens");
    const size_t m = size_t(o.max_length) - specials;
    switch (o.truncation) {
      case Truncation::longest_first:
        if (!pair) {
          n1 = m;
        } else {
          // tokenizers (Rust) TruncationStrategy::LongestFirst: the shorter text keeps its
          // length when the longer can absorb the cut, else both get half (the longer the odd one).
          size_t s = std::min(n1, n2), l = std::max(n1, n2);
          l = s > m ? s : std::max(s, m - s);
          if (s + l > m) {
            s = m / 2;
            l = s + m % 2;
          }
          if (n1 > n2) {
            n1 = std::min(n1, l);
            n2 = std::min(n2, s);
          } else {
            n1 = std::min(n1, s);
            n2 = std::min(n2, l);
          }
        }
        break;
      case Truncation::only_first:
        if (n2 >= m) fail("only_first truncation cannot fit the pair into max_length ", o.max_length);
        n1 = m - n2;
        break;
      case Truncation::only_second:
        if (!pair) fail("only_second truncation needs a text pair");
        if (n1 >= m) fail("only_second truncation cannot fit the pair into max_length ", o.max_length);
        n2 = m - n1;
        break;
      case Truncation::none: break;
    }
  }
  a.content.resize(n1);
  b.content.resize(n2);
  EncodedExample e;
  append(e.ids, e.type_ids, a.prefix, 0);
  append(e.ids, e.type_ids, a.content, 0);
  append(e.ids, e.type_ids, a.suffix, 0);
  if (pair) {
    append(e.ids, e.type_ids, b.content, 1);
    append(e.ids, e.type_ids, a.suffix, 1);
  }
  return e;
}

std::vector<EncodedExample> encode_examples(const Tokenizer& tok, const LabelledData& data, const EncodeOptions& o,
                                            EncodeStats* stats) {
  if (o.truncation != Truncation::none && o.max_length < 1) fail("max_length: expected >= 1, got ", o.max_length);
  std::vector<EncodedExample> out(data.examples.size());
  EncodeStats st;
  EncodeOptions untruncated = o;
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

ClassificationBatch make_batch(const std::vector<EncodedExample>& ex, const std::vector<int64_t>& order, int64_t begin,
                               int64_t end, int64_t pad_id) {
  LMF_CHECK(begin >= 0 && begin < end && end <= static_cast<int64_t>(order.size()), "batch range");
  const int64_t B = end - begin;
  int64_t T = 0;
  for (int64_t r = begin; r < end; r++) T = std::max<int64_t>(T, static_cast<int64_t>(ex[size_t(order[size_t(r)])].ids.size()));
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
                                             int64_t pad_id, bool shuffle, uint64_t seed, bool group_by_length)
    : ex_(examples), batch_size_(batch_size), pad_id_(pad_id), shuffle_(shuffle), group_(group_by_length), seed_(seed) {
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
    reordered.insert(reordered.end(), order_.begin() + bi * batch_size_, order_.begin() + (bi + 1) * batch_size_);
  reordered.insert(reordered.end(), order_.begin() + full * batch_size_, order_.end());
  order_ = std::move(reordered);
}

int64_t ClassificationBatcher::num_batches() const {
  return (static_cast<int64_t>(ex_.size()) + batch_size_ - 1) / batch_size_;
}

ClassificationBatch ClassificationBatcher::batch(int64_t i) const {
  if (i < 0 || i >= num_batches()) fail("batch index ", i, " outside [0, ", num_batches(), ")");
  const int64_t begin = i * batch_size_, end = std::min<int64_t>(begin + batch_size_, static_cast<int64_t>(ex_.size()));
  return make_batch(ex_, order_, begin, end, pad_id_);
}

}  // namespace lmf
