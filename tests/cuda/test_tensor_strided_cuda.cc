// Non-contiguous CUDA views copied to the host (Tensor::to(cpu), contiguous(), clone()): before
// 2026-11-23 to(cpu) on a strided device view recursed forever (a host stack overflow, seen as
// the segfault of OpsRopeCuda.FusedQkvMatchesCpu). Values must equal the same view taken on
// the CPU, for transposes, offset slices and the fused-QKV head views the attention uses.
#include <gtest/gtest.h>

#include "lmforge/core/tensor.h"
#include "test_util.h"

using namespace lmf;

namespace {

void expect_same(const Tensor& dev_view, const Tensor& cpu_view) {
  ASSERT_TRUE(dev_view.device().is_cuda());
  ASSERT_FALSE(dev_view.is_contiguous());
  EXPECT_EQ(dev_view.to(Device::cpu()).to_double_vector(), cpu_view.contiguous().to_double_vector());
  EXPECT_EQ(dev_view.contiguous().to_double_vector(), cpu_view.contiguous().to_double_vector());
  EXPECT_TRUE(dev_view.clone().is_contiguous());
}

TEST(CudaTensorStrided, ViewsCopyToHostLikeCpuViews) {
  for (DType dt : {DType::f32, DType::bf16, DType::i64}) {
    // Values in [-100, 100) so the i64 copy is not mostly zeros.
    const Tensor r = test::random_tensor({5, 3, 4, 6}, DType::f32, 21, -100.f, 100.f);
    const Tensor cpu = Tensor::from_floats(r.to_float_vector(), r.shape(), dt);
    Tensor dev = cpu.to(Device::cuda(0));
    expect_same(dev.transpose(0, 3), cpu.transpose(0, 3));
    expect_same(dev.select(1, 2), cpu.select(1, 2));                   // fused-QKV "v" head view
    expect_same(dev.slice(3, 1, 5).slice(0, 2, 5), cpu.slice(3, 1, 5).slice(0, 2, 5));
    expect_same(dev.reshape({5, 12, 6}).slice(1, 4, 8), cpu.reshape({5, 12, 6}).slice(1, 4, 8));
  }
}

}  // namespace
