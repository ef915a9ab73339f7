// data/classification_batches: encoding with max_length / truncation (single and pair), right
// padding with masks and type ids, per-epoch shuffles from the seed, length grouping.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "lmforge/core/error.h"
#include "lmforge/data/classification_batches.h"
#include "lmforge/tokenize/tokenizer.h"
#include "test_util.h"

using namespace lmf;

namespace {

const Tokenizer& tok() {
  static Tokenizer t = Tokenizer::from_file(test::source_path("data/tokenizers/enfr-bpe-4k/tokenizer.json"));
  return t;
}

std::vector<EncodedExample> synthetic(int n) {
  std::vector<EncodedExample> v;
  for (int i = 0; i < n; i++) {
    EncodedExample e;
    const int len = 1 + (i * 7) % 13;  // lengths 1..13
    for (int t = 0; t < len; t++) e.ids.push_back(10 + (i + t) % 50);
    e.type_ids.assign(e.ids.size(), 0);
    e.label = i % 3;
    e.index = i;
    v.push_back(e);
  }
  return v;
}

}  // namespace

TEST(ClassificationBatches, EncodeTruncatesContent) {
  const std::string text = "the acting , costumes , music , cinematography and sound are all astounding";
  const std::vector<int32_t> full = tok().encode(text, true);
  ASSERT_GT(full.size(), 8u);
  SeqEncodeOptions o;
  o.max_length = 8;
  EncodedExample e = encode_one(tok(), text, "", o);
  EXPECT_EQ(e.ids, std::vector<int32_t>(full.begin(), full.begin() + 8));
  EXPECT_EQ(e.type_ids, std::vector<int32_t>(8, 0));
  o.truncation = Truncation::none;
  EXPECT_EQ(encode_one(tok(), text, "", o).ids, full);

  // A pair: the second text gets type id 1; longest_first cuts the longer one first.
  const std::string a = "a charming journey",
                    b = "unflinchingly bleak and desperate , and far too long for its own good";
  const auto ia = tok().encode(a, true), ib = tok().encode(b, true);
  ASSERT_GE(ib.size(), 2 * ia.size() + 2);
  SeqEncodeOptions po;
  po.max_length = 2 * int64_t(ia.size()) + 2;  // room for a whole plus |a| + 2 tokens of b
  EncodedExample p = encode_one(tok(), a, b, po);
  ASSERT_EQ(p.ids.size(), 2 * ia.size() + 2);
  EXPECT_EQ(std::vector<int32_t>(p.ids.begin(), p.ids.begin() + int64_t(ia.size())),
            ia);  // the shorter stays whole
  EXPECT_EQ(std::vector<int32_t>(p.ids.begin() + int64_t(ia.size()), p.ids.end()),
            std::vector<int32_t>(ib.begin(), ib.begin() + int64_t(ia.size()) + 2));
  EXPECT_EQ(std::count(p.type_ids.begin(), p.type_ids.end(), 1), int64_t(ia.size()) + 2);
  po.truncation = Truncation::only_second;
  EXPECT_EQ(encode_one(tok(), a, b, po).ids, p.ids);
  po.truncation = Truncation::only_first;
  EXPECT_THROW(encode_one(tok(), a, b, po), Error);  // the first text alone cannot absorb the cut

  EXPECT_EQ(parse_truncation("true", "t"), Truncation::longest_first);
  EXPECT_EQ(parse_truncation("none", "t"), Truncation::none);
  try {
    parse_truncation("middle", "data.truncation");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.truncation: expected one of longest_first"),
              std::string::npos);
  }
}

TEST(ClassificationBatches, EncodeExamplesStatsAndContext) {
  LabelledReadOptions ro;
  LabelledData d = parse_labelled(
      "text\tlabel\nshort\t0\nthis one is a much longer sentence than the other\t1\n", "s.tsv", ro);
  assign_label_ids(d, {"0", "1"});
  SeqEncodeOptions o;
  o.max_length = 4;
  EncodeStats st;
  auto ex = encode_examples(tok(), d, o, &st);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[1].label, 1);
  EXPECT_EQ(ex[1].index, 1);
  EXPECT_EQ(st.truncated, 1);
  EXPECT_EQ(st.max_len, 4);
  EXPECT_EQ(st.tokens, int64_t(ex[0].ids.size() + 4));
  o.max_length = 0;
  EXPECT_THROW(encode_examples(tok(), d, o), Error);
}

TEST(ClassificationBatches, RightPaddingMaskAndTypes) {
  auto ex = synthetic(5);
  ex[2].type_ids.back() = 1;
  std::vector<int64_t> order = {4, 2, 0};
  ClassificationBatch b = make_batch(ex, order, 0, 3, /*pad_id=*/3);
  const int64_t T = std::max({ex[4].ids.size(), ex[2].ids.size(), ex[0].ids.size()});
  ASSERT_EQ(b.tokens.input_ids.shape(), (Shape{3, T}));
  EXPECT_EQ(b.indices, (std::vector<int64_t>{4, 2, 0}));
  EXPECT_EQ(b.labels, (std::vector<int32_t>{1, 2, 0}));
  const int64_t* ids = b.tokens.input_ids.data<int64_t>();
  const int64_t* m = b.tokens.attention_mask.data<int64_t>();
  const int64_t* ty = b.tokens.token_type_ids.data<int64_t>();
  int64_t real = 0;
  for (int64_t r = 0; r < 3; r++) {
    const auto& e = ex[size_t(order[size_t(r)])];
    for (int64_t t = 0; t < T; t++) {
      const bool in = t < int64_t(e.ids.size());
      EXPECT_EQ(m[r * T + t], in ? 1 : 0);
      EXPECT_EQ(ids[r * T + t], in ? e.ids[size_t(t)] : 3);
      EXPECT_EQ(ty[r * T + t], in ? e.type_ids[size_t(t)] : 0);
      real += in;
    }
  }
  EXPECT_EQ(b.num_tokens, real);
  EXPECT_EQ(ty[1 * T + int64_t(ex[2].ids.size()) - 1], 1);
}

TEST(ClassificationBatches, EpochShufflesAreSeededPermutations) {
  auto ex = synthetic(103);
  ClassificationBatcher a(ex, 10, 0, true, 42), b(ex, 10, 0, true, 42), c(ex, 10, 0, true, 43);
  EXPECT_EQ(a.num_batches(), 11);
  EXPECT_EQ(a.batch(10).labels.size(), 3u);
  EXPECT_EQ(a.order(), b.order());
  EXPECT_NE(a.order(), c.order());
  std::vector<int64_t> sorted = a.order();
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 103; i++) EXPECT_EQ(sorted[size_t(i)], i);
  const auto epoch0 = a.order();
  a.start_epoch(1);
  EXPECT_NE(a.order(), epoch0);
  a.start_epoch(0);
  EXPECT_EQ(a.order(), epoch0);  // an epoch's order depends only on (seed, epoch)
  ClassificationBatcher plain(ex, 10, 0, false, 42);
  for (int64_t i = 0; i < 103; i++) EXPECT_EQ(plain.order()[size_t(i)], i);
  EXPECT_THROW(ClassificationBatcher(ex, 0, 0, true, 1), Error);
  EXPECT_THROW(ClassificationBatcher(ex, 4, 0, false, 1, true), Error);
  EXPECT_THROW(a.batch(11), Error);
}

TEST(ClassificationBatches, GroupByLengthReducesPadding) {
  auto ex = synthetic(400);
  auto padded_tokens = [&](const ClassificationBatcher& bt) {
    int64_t cells = 0;
    for (int64_t i = 0; i < bt.num_batches(); i++) cells += bt.batch(i).tokens.input_ids.numel();
    return cells;
  };
  ClassificationBatcher random(ex, 8, 0, true, 5), grouped(ex, 8, 0, true, 5, true);
  std::vector<int64_t> sorted = grouped.order();
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::set<int64_t>(sorted.begin(), sorted.end()).size(), 400u);  // still a permutation
  EXPECT_LT(padded_tokens(grouped), padded_tokens(random) * 8 / 10);
  // Batches are shuffled: the first batch is not always the longest one.
  grouped.start_epoch(1);
  std::vector<int64_t> first_lengths;
  for (int e = 0; e < 4; e++) {
    grouped.start_epoch(e);
    first_lengths.push_back(grouped.batch(0).tokens.input_ids.size(1));
  }
  EXPECT_GT(std::set<int64_t>(first_lengths.begin(), first_lengths.end()).size(), 1u);
}
