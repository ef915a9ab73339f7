#include <gtest/gtest.h>

#include "lmforge/core/error.h"
#include "lmforge/models/token_batch.h"

namespace lmf {
namespace {

TEST(TokenBatch, UnpadKeepsRealTokensWithColumnsAndRanks) {
  // Row 0 right-padded, row 1 left-padded, row 2 empty.
  TokenBatch b;
  b.input_ids = Tensor::from_vector<int64_t>({5, 6, 7, 0, 0, 8, 9, 1, 0, 0, 0, 0}, {3, 4});
  b.attention_mask = Tensor::from_vector<int64_t>({1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0}, {3, 4});
  b.token_type_ids = Tensor::from_vector<int32_t>({0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0}, {3, 4});
  RaggedBatch r = unpad(b);
  EXPECT_EQ(r.cu_seqlens, (std::vector<int32_t>{0, 3, 6, 6}));
  EXPECT_EQ(r.max_seqlen, 3);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{5, 6, 7, 8, 9, 1}));
  EXPECT_EQ(r.token_types, (std::vector<int64_t>{0, 0, 1, 0, 1, 1}));
  EXPECT_EQ(r.column, (std::vector<int64_t>{0, 1, 2, 1, 2, 3}));
  EXPECT_EQ(r.rank, (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));

  Tensor x = Tensor::from_floats({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {6, 2}, DType::f32);
  Tensor padded = repad(x, r);
  ASSERT_EQ(padded.shape(), (Shape{3, 4, 2}));
  std::vector<float> v = padded.to_float_vector();
  EXPECT_EQ(v[0], 1.f);   // [0,0,:]
  EXPECT_EQ(v[5], 6.f);   // [0,2,1]
  EXPECT_EQ(v[6], 0.f);   // [0,3,0] pad
  EXPECT_EQ(v[8], 0.f);   // [1,0,0] left pad
  EXPECT_EQ(v[10], 7.f);  // [1,1,0]
  EXPECT_EQ(v[15], 12.f); // [1,3,1]
  for (int i = 16; i < 24; ++i) EXPECT_EQ(v[i], 0.f);
}

TEST(TokenBatch, NoMaskMeansEveryTokenIsReal) {
  TokenBatch b;
  b.input_ids = Tensor::from_vector<int32_t>({3, 4, 5, 6}, {2, 2});
  RaggedBatch r = unpad(b);
  EXPECT_EQ(r.cu_seqlens, (std::vector<int32_t>{0, 2, 4}));
  EXPECT_EQ(r.ids, (std::vector<int64_t>{3, 4, 5, 6}));
}

TEST(TokenBatch, BadMaskAndShapesAreOneLineErrors) {
  TokenBatch b;
  b.input_ids = Tensor::from_vector<int64_t>({1, 2, 3, 4}, {2, 2});
  b.attention_mask = Tensor::from_vector<int64_t>({1, 2, 1, 1}, {2, 2});
  EXPECT_THROW(unpad(b), Error);
  b.attention_mask = Tensor::from_vector<int64_t>({1, 1, 1}, {1, 3});
  EXPECT_THROW(unpad(b), Error);
  b.attention_mask = Tensor();
  b.input_ids = Tensor::from_floats({1, 2}, {1, 2}, DType::f32);
  EXPECT_THROW(unpad(b), Error);
}

}  // namespace
}  // namespace lmf

#include "lmforge/models/pooling.h"

namespace lmf {
namespace {

TEST(Pooling, ClsMeanLastPickTheRightRows) {
  // Two sequences of 2 and 3 tokens, H = 2.
  Tensor h = Tensor::from_floats({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {5, 2}, DType::f64);
  std::vector<int32_t> cu = {0, 2, 5};
  EXPECT_EQ(pool_sequences(h, cu, Pooling::cls).to_double_vector(), (std::vector<double>{1, 2, 5, 6}));
  EXPECT_EQ(pool_sequences(h, cu, Pooling::last).to_double_vector(), (std::vector<double>{3, 4, 9, 10}));
  std::vector<double> m = pool_sequences(h, cu, Pooling::mean).to_double_vector();
  EXPECT_NEAR(m[0], 2, 1e-12);
  EXPECT_NEAR(m[1], 3, 1e-12);
  EXPECT_NEAR(m[2], 7, 1e-12);
  EXPECT_NEAR(m[3], 8, 1e-12);
  EXPECT_THROW(pool_sequences(h, {0, 2, 2, 5}, Pooling::cls), Error);
  EXPECT_THROW(parse_pooling("max", "task.pooling"), Error);
}

}  // namespace
}  // namespace lmf
