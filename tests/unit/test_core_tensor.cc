#include <gtest/gtest.h>

#include "lmforge/core/philox.h"
#include "lmforge/core/rng.h"
#include "lmforge/core/tensor.h"
#include "test_util.h"

using namespace lmf;

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor tt = t.transpose(0, 1);
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt.shape(), (Shape{3, 2}));
  auto v = tt.contiguous().to_float_vector();
  EXPECT_EQ(v, (std::vector<float>{0, 3, 1, 4, 2, 5}));
  Tensor s = t.slice(1, 1, 3);
  EXPECT_EQ(s.to_float_vector(), (std::vector<float>{1, 2, 4, 5}));
  t.data<float>()[1] = 42;
  EXPECT_EQ(s.to_float_vector()[0], 42);
  EXPECT_EQ(t.select(0, 1).to_float_vector(), (std::vector<float>{3, 4, 5}));
  EXPECT_EQ(t.view({3, -1}).shape(), (Shape{3, 2}));
  EXPECT_THROW(t.view({4, -1}), Error);
  EXPECT_THROW(tt.view({6}), Error);
  EXPECT_THROW(t.slice(1, 2, 5), Error);
}

TEST(Tensor, DTypeConversionsRoundTrip) {
  for (float x : {0.f, 1.f, -2.5f, 3.14159f, 1e-3f, 65504.f, -1e-5f}) {
    EXPECT_EQ(f16_to_float(float_to_f16(x)), f16_to_float(float_to_f16(f16_to_float(float_to_f16(x)))));
    EXPECT_NEAR(f16_to_float(float_to_f16(x)), x, std::fabs(x) * 1e-3 + 1e-7);
    EXPECT_NEAR(bf16_to_float(float_to_bf16(x)), x, std::fabs(x) * 8e-3);
  }
  // Round-to-nearest-even on the bf16 boundary: 1 + 2^-8 is a tie and rounds to 1.
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  EXPECT_EQ(parse_dtype("bfloat16"), DType::bf16);
  EXPECT_THROW(parse_dtype("f8"), Error);
}

TEST(Philox, KnownAnswerAndStreams) {
  // Known-answer vector from the Random123 distribution (philox4x32-10, key 0, counter 0).
  Philox4 r = philox4x32_10(0, 0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
  // Different offsets give different streams; same (seed, offset) repeats.
  EXPECT_NE(philox_uniform(1, 0, 5), philox_uniform(1, 1, 5));
  EXPECT_EQ(philox_uniform(1, 0, 5), philox_uniform(1, 0, 5));
  // Moments of the normal fill.
  Generator g{7, 0};
  Tensor n = rand_normal({20000}, DType::f32, g);
  double m = 0, s = 0;
  for (double v : n.to_double_vector()) {
    m += v;
    s += v * v;
  }
  m /= 20000;
  s = s / 20000 - m * m;
  EXPECT_NEAR(m, 0, 0.03);
  EXPECT_NEAR(s, 1, 0.05);
}

TEST(Device, ParseRejectsGarbage) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  EXPECT_THROW(parse_device("tpu"), Error);
  EXPECT_THROW(parse_device("cuda:x"), Error);
}
