// Slicing, splitting and concatenation along the last dim on CUDA against the CPU reference:
// the 16-byte path (widths and offsets multiples of 8 bf16 / 4 f32) and the scalar path, more
// pieces than one copy_column_pieces launch takes, an empty piece,
// outputs and gradients, f32 and bf16. Inputs are bf16-representable; f32 must match exactly,
// bf16 to rounding of the per-piece scaling (the CPU side computes it in f32).
#include <gtest/gtest.h>

#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/slice.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;

TEST(OpsSliceCuda, SplitSliceConcatMatchCpu) {
  struct Case {
    Shape shape;
    std::vector<int64_t> widths;
  };
  const std::vector<Case> cases = {{{2, 3, 16}, {8, 8}},                // vector path (bf16 and f32)
                                   {{4, 37, 3072}, {1536, 1536}},       // Mamba in_proj split
                                   {{3, 5, 80}, {48, 16, 16}},          // x_proj split (R, N, N)
                                   {{2, 7, 13}, {5, 1, 7}},             // scalar path
                                   {{2, 1024, 160}, {128, 16, 16}},     // 1.4B x_proj split
                                   {{3, 4, 20}, {2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 2}},  // > 8 pieces, one empty
                                   {{2, 3, 6}, {0, 2, 4}},              // an empty first piece
                                   {{1, 1, 6}, {2, 4}}};
  for (const Case& c : cases) {
    for (DType dt : {DType::f32, DType::bf16}) {
      // Weight each piece differently so a gradient written to the wrong columns shows up.
      auto split = [&](const std::vector<Tensor>& in) {
        auto parts = ops::split_last(in[0], c.widths);
        std::vector<Tensor> scaled;
        for (size_t i = 0; i < parts.size(); i++) scaled.push_back(ops::scale(parts[i], float(i + 1)));
        return ops::concat_last(scaled);
      };
      auto input = [&](uint64_t seed) {  // bf16-exact values
        return test::random_tensor(c.shape, DType::bf16, seed).to(Device::cpu());
      };
      auto as_f32 = [](const Tensor& t) { return Tensor::from_floats(t.to_float_vector(), t.shape(), DType::f32); };
      const double tol = dt == DType::f32 ? 0.0 : 1e-2;
      auto r = test::compare_cpu_cuda(split, {as_f32(input(3))}, dt);
      EXPECT_LE(r.out_rel, tol) << shape_str(c.shape) << " " << dtype_name(dt);
      EXPECT_LE(r.grad_rel[0], tol) << shape_str(c.shape) << " " << dtype_name(dt);
      const int64_t C = c.shape.back();
      auto slice = [&](const std::vector<Tensor>& in) { return ops::slice_last(in[0], c.widths[0], C); };
      auto rs = test::compare_cpu_cuda(slice, {as_f32(input(4))}, dt);
      EXPECT_LE(rs.out_rel, tol) << shape_str(c.shape) << " " << dtype_name(dt);
      EXPECT_LE(rs.grad_rel[0], tol) << shape_str(c.shape) << " " << dtype_name(dt);
    }
  }
}
