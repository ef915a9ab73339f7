// Shards (.bin/.idx) and packed causal-LM batches: round trip, validation, document
// boundaries, mixture proportions and exact resume.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "lmforge/data/packed_dataset.h"
#include "lmforge/data/shard.h"
#include "test_util.h"

using namespace lmf;

namespace {
// Documents of lengths 3..9 made of ids 1..; each ends with EOS = 0.
std::string make_shard(const std::string& dir, const std::string& name, int docs, int base, uint64_t fp = 77) {
  std::string prefix = dir + "/" + name;
  ShardWriter w(prefix, 1000, fp, 0);
  for (int d = 0; d < docs; d++) {
    std::vector<int32_t> ids;
    for (int i = 0; i < 3 + d % 7; i++) ids.push_back(base + (d * 13 + i) % 50 + 1);
    ids.push_back(0);
    w.add_document(ids);
  }
  w.finish();
  return prefix;
}
}  // namespace

TEST(Shards, RoundTripAndValidation) {
  std::string dir = test::scratch_dir("shards");
  std::string p = make_shard(dir, "a", 20, 0);
  auto s = Shard::open(p);
  EXPECT_EQ(s->header().num_docs, 20u);
  EXPECT_EQ(s->header().vocab_size, 1000u);
  EXPECT_EQ(s->doc_end(0) - s->doc_begin(0), 4u);
  EXPECT_EQ(s->tokens()[s->doc_end(0) - 1], 0u);
  // A writer destroyed before finish() leaves no files.
  { ShardWriter w(dir + "/gone", 10, 1, 0); w.add_document({1, 2}); }
  EXPECT_THROW(Shard::open(dir + "/gone"), Error);
  // Out-of-range ids are refused.
  ShardWriter w2(dir + "/bad", 10, 1, 0);
  EXPECT_THROW(w2.add_document({3, 11}), Error);
  // Truncated .bin and garbage .idx are refused with the file named.
  std::ofstream(p + ".bin", std::ios::app) << "xy";
  try {
    Shard::open(p);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.bin"), std::string::npos) << e.what();
  }
  std::ofstream(dir + "/junk.idx") << "not an index";
  std::ofstream(dir + "/junk.bin") << "";
  EXPECT_THROW(Shard::open(dir + "/junk"), Error);
}

TEST(PackedDataset, DocumentBoundariesAndTargets) {
  std::string dir = test::scratch_dir("packed1");
  std::string p = make_shard(dir, "a", 30, 0);
  PackedDataset ds({{"a", {p}, 1.0}}, 16, 1, 1000, 77);
  auto b = ds.next(4);
  auto ids = b.input_ids.to_float_vector(), tg = b.targets.to_float_vector();
  auto sq = b.seq_idx.to_float_vector(), ps = b.positions.to_float_vector();
  for (int r = 0; r < 4; r++)
    for (int t = 0; t < 16; t++) {
      int i = r * 16 + t;
      if (t + 1 < 16) {
        EXPECT_EQ(tg[i], ids[i + 1]);
      }
      if (t > 0) {
        bool new_doc = ids[i - 1] == 0;
        EXPECT_EQ(sq[i], sq[i - 1] + (new_doc ? 1 : 0));
        EXPECT_EQ(ps[i], new_doc ? 0 : ps[i - 1] + 1);
      } else {
        EXPECT_EQ(sq[i], 0);
        EXPECT_EQ(ps[i], 0);
      }
    }
  // Vocabulary and tokenizer mismatches are refused.
  EXPECT_THROW(PackedDataset({{"a", {p}, 1.0}}, 16, 1, 50000, 0), Error);
  EXPECT_THROW(PackedDataset({{"a", {p}, 1.0}}, 16, 1, 0, 12345), Error);
  EXPECT_THROW(PackedDataset({{"a", {p}, 1.0}}, 100000, 1, 0, 0), Error);
}

TEST(PackedDataset, MixtureProportionsAndExactResume) {
  std::string dir = test::scratch_dir("packed2");
  std::string a = make_shard(dir, "a", 200, 0), b = make_shard(dir, "b", 200, 500);
  std::vector<MixtureComponent> mix = {{"a", {a}, 3.0}, {"b", {b}, 1.0}};
  PackedDataset ds(mix, 8, 42, 0, 0);
  int from_b = 0, n = 0;
  for (int i = 0; i < 250; i++) {
    auto batch = ds.next(4);
    auto ids = batch.input_ids.to_float_vector();
    for (int r = 0; r < 4; r++, n++) {
      bool is_b = false;
      for (int t = 0; t < 8; t++) is_b = is_b || ids[r * 8 + t] > 500;
      from_b += is_b;
    }
  }
  EXPECT_NEAR(double(from_b) / n, 0.25, 0.04);
  // Save the cursor, draw, restore into a fresh dataset, draw again: identical batches.
  auto st = ds.state();
  auto x1 = ds.next(3).input_ids.to_float_vector();
  PackedDataset ds2(mix, 8, 42, 0, 0);
  ds2.load_state(st);
  EXPECT_EQ(ds2.next(3).input_ids.to_float_vector(), x1);
}
