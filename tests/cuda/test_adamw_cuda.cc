// CUDA AdamW and grad norm against the CPU reference (runs on the GPU machine only).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lmforge/core/device_memory.h"
#include "lmforge/core/error.h"
#include "lmforge/train/adamw.h"
#include "lmforge/train/grad_clip.h"
#include "test_util.h"

using namespace lmf;

namespace {

// Many ranges with odd edges: more than one launch batch (64 ranges each), frozen gaps, ranges
// shorter than a 4-wide vector, and a range running to the (non-multiple-of-4) end.
std::vector<AdamWGroup> ragged_groups(int64_t n) {
  std::vector<AdamWGroup> g;
  g.push_back({0, 1001, 0.1, 1.0});
  g.push_back({1001, 5003, 0.0, 1.0});
  // gap [5003, 5010)
  int64_t at = 5010;
  for (int i = 0; i < 150; i++) {  // 150 small ranges of 1..17 elements, alternating settings
    int64_t len = 1 + (i * 7) % 17;
    g.push_back({at, at + len, (i % 2) ? 0.0 : 0.05, (i % 3) ? 1.0 : 0.5});
    at += len + (i % 5 == 0 ? 2 : 0);  // some gaps
  }
  g.push_back({at, n, 0.1, 0.25});
  return g;
}

struct Run {
  Tensor p, copy;
  AdamW opt;
};

// Three steps with the same inputs on `device`; returns master, copy and the optimizer state.
Run run_steps(Device device, int64_t n, DType copy_dtype, const std::vector<AdamWGroup>& groups,
              int64_t master_offset) {
  // A master that starts master_offset elements into a bigger buffer exercises unaligned loads.
  Tensor big = test::random_tensor({n + master_offset}, DType::f32, 1, -1.f, 1.f, device);
  Tensor p = big.slice(0, master_offset, n + master_offset);
  Tensor copy = Tensor::zeros({n}, copy_dtype, device);
  AdamW opt({0.9, 0.95, 1e-8, 0.1}, n, device, groups);
  for (int t = 1; t <= 3; t++) {
    Tensor g = test::random_tensor({n}, DType::f32, 10 + t, -0.05f, 0.05f, device);
    opt.step(p, g, copy, 1e-3 * t, t == 2 ? 0.7 : 1.0);
  }
  synchronize(device);
  return {p, copy, std::move(opt)};
}

void compare(int64_t n, DType copy_dtype, int64_t master_offset) {
  auto groups = ragged_groups(n);
  Run cpu = run_steps(Device::cpu(), n, copy_dtype, groups, master_offset);
  Run gpu = run_steps(Device::cuda(0), n, copy_dtype, groups, master_offset);
  EXPECT_LE(test::rel_error(gpu.p, cpu.p), 1e-6);
  EXPECT_LE(test::rel_error(gpu.opt.exp_avg(), cpu.opt.exp_avg()), 1e-6);
  EXPECT_LE(test::rel_error(gpu.opt.exp_avg_sq(), cpu.opt.exp_avg_sq()), 1e-6);
  EXPECT_LE(test::rel_error(gpu.copy, cpu.copy), copy_dtype == DType::bf16 ? 1e-2 : 1e-6);
  EXPECT_TRUE(test::all_finite(gpu.p));
  // Frozen gap [5003, 5010) is untouched on the GPU too.
  auto m = gpu.opt.exp_avg().to_float_vector();
  for (int64_t i = 5003; i < 5010; i++) EXPECT_EQ(m[i], 0.f) << i;
  EXPECT_EQ(gpu.copy.slice(0, 5003, 5010).to_float_vector(), std::vector<float>(7, 0.f));
}

}  // namespace

TEST(AdamWCuda, MatchesCpuAlignedBf16Copy) { compare((1 << 20) + 3, DType::bf16, 0); }
TEST(AdamWCuda, MatchesCpuAlignedF32Copy) { compare((1 << 18) + 1, DType::f32, 0); }
TEST(AdamWCuda, MatchesCpuUnalignedMaster) { compare((1 << 18) + 2, DType::bf16, 1); }

TEST(AdamWCuda, SingleGroupBf16CopyIsRoundedMaster) {
  const int64_t n = 3 * (1 << 20) + 5;
  Tensor p = test::random_tensor({n}, DType::f32, 3, -2.f, 2.f, Device::cuda(0));
  Tensor copy = Tensor::zeros({n}, DType::bf16, Device::cuda(0));
  AdamW opt({0.9, 0.95, 1e-8, 0.1}, n, Device::cuda(0));
  opt.step(p, test::random_tensor({n}, DType::f32, 4, -1.f, 1.f, Device::cuda(0)), copy, 1e-3);
  Tensor expected = Tensor::from_floats(p.to_float_vector(), {n}, DType::bf16);
  EXPECT_EQ(test::max_abs_diff(copy, expected), 0.0);
}

TEST(AdamWCuda, GradNormMatchesCpu) {
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t((1 << 22) + 3)}) {
    Tensor g = test::random_tensor({n}, DType::f32, 9, -3.f, 3.f);
    double cpu = grad_norm(g);
    Tensor gg = g.to(Device::cuda(0));
    double gpu = grad_norm(gg);
    EXPECT_NEAR(gpu, cpu, 1e-12 * cpu) << n;
    EXPECT_EQ(grad_norm(gg), gpu) << "deterministic";
    // Unaligned start (scalar path).
    if (n > 1) {
      double cpu1 = grad_norm(g.slice(0, 1, n).contiguous());
      double gpu1 = grad_norm(gg.slice(0, 1, n));
      EXPECT_NEAR(gpu1, cpu1, 1e-12 * cpu1) << n;
    }
  }
}

TEST(AdamWCuda, RejectsMixedDevices) {
  const int64_t n = 16;
  AdamW opt({}, n, Device::cuda(0));
  Tensor p = test::random_tensor({n}, DType::f32, 1, -1.f, 1.f, Device::cuda(0));
  Tensor g_cpu = test::random_tensor({n}, DType::f32, 2);
  EXPECT_THROW(opt.step(p, g_cpu, Tensor(), 1e-3), Error);
  EXPECT_THROW(opt.step(p.to(Device::cpu()), g_cpu.to(Device::cuda(0)), Tensor(), 1e-3), Error);
  EXPECT_EQ(opt.steps_taken(), 0);
}
