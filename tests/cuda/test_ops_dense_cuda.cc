// Dense ops and the CUDA runtime on the GPU: every op CUDA vs CPU (fp32 <= 1e-5 relative,
// bf16 <= 1e-2, outputs and gradients) on shapes with tails (37x129x65 ...) and a large-ish
// case; the matmul kernel's special paths (mixed output, separate bias, K = 0, unaligned
// pointers, batched); embedding determinism and range errors; the caching allocator's stats.
#include <gtest/gtest.h>

#include <cstring>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/cuda/allocator.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/ops/embedding.h"
#include "lmforge/ops/linear.h"
#include "lmforge/ops/matmul.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::compare_cpu_cuda;
using test::random_tensor;
using test::rel_error;

namespace {

const Device kGpu = Device::cuda(0);

double tol(DType t) { return t == DType::f32 ? 1e-5 : 1e-2; }

void expect_close(const test::DeviceCompare& r, DType t, const std::string& what) {
  EXPECT_LT(r.out_rel, tol(t)) << what << " output";
  for (size_t i = 0; i < r.grad_rel.size(); i++) EXPECT_LT(r.grad_rel[i], tol(t)) << what << " grad of input " << i;
}

// Same bytes as `t` placed one element past a 256-byte boundary: a pointer only aligned to the
// element size, which cuBLASLt's fast kernels reject (exercises alignment keys and fallback).
Tensor misaligned_copy(const Tensor& t) {
  auto storage = std::make_shared<Storage>(t.device(), (size_t(t.numel()) + 1) * dtype_size(t.dtype()));
  Tensor out(storage, t.shape(), contiguous_strides(t.shape()), 1, t.dtype());
  out.copy_from(t);
  return out;
}

}  // namespace

TEST(CudaDense, LinearMatchesCpu) {
  struct Case {
    Shape x, w;
    bool bias;
  };
  std::vector<Case> cases = {
      {{37, 129}, {65, 129}, true},       // tails everywhere
      {{2, 19, 129}, {65, 129}, false},   // 3-D input, no bias
      {{5, 8}, {3, 8}, true},             // tiny
      {{512, 1024}, {768, 1024}, true},   // large-ish
  };
  for (DType dt : {DType::f32, DType::bf16}) {
    for (const auto& c : cases) {
      std::vector<Tensor> ins = {random_tensor(c.x, DType::f32, 1), random_tensor(c.w, DType::f32, 2, -0.2f, 0.2f)};
      if (c.bias) ins.push_back(random_tensor({c.w[0]}, DType::f32, 3));
      auto r = compare_cpu_cuda(
          [&](const std::vector<Tensor>& x) { return ops::linear(x[0], x[1], x.size() > 2 ? x[2] : Tensor()); }, ins,
          dt);
      expect_close(r, dt, std::string("linear ") + shape_str(c.x) + " " + std::string(dtype_name(dt)));
    }
  }
}

TEST(CudaDense, MatmulMatchesCpuForTransposesAndBatches) {
  for (DType dt : {DType::f32, DType::bf16}) {
    for (int ta = 0; ta < 2; ta++) {
      for (int tb = 0; tb < 2; tb++) {
        const int64_t M = 37, K = 129, N = 65;
        Shape sa = ta ? Shape{K, M} : Shape{M, K}, sb = tb ? Shape{N, K} : Shape{K, N};
        auto fn = [&](const std::vector<Tensor>& x) { return ops::matmul(x[0], x[1], ta, tb); };
        auto r = compare_cpu_cuda(fn, {random_tensor(sa, DType::f32, 4), random_tensor(sb, DType::f32, 5)}, dt);
        expect_close(r, dt, "matmul ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
        Shape ba = sa, bb = sb;
        ba.insert(ba.begin(), 3);
        bb.insert(bb.begin(), 3);
        auto rb = compare_cpu_cuda(fn, {random_tensor(ba, DType::f32, 6), random_tensor(bb, DType::f32, 7)}, dt);
        expect_close(rb, dt, "batched matmul ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
      }
    }
  }
}

TEST(CudaDense, MatmulKernelSpecialPaths) {
  const int64_t M = 37, N = 65, K = 129;
  Tensor A = random_tensor({M, K}, DType::bf16, 8), B = random_tensor({N, K}, DType::bf16, 9);
  Tensor C0 = random_tensor({M, N}, DType::f32, 10);
  Tensor bias32 = random_tensor({N}, DType::f32, 11);
  // bf16 operands, f32 output accumulated with beta = 1 (the weight-gradient GEMM).
  {
    Tensor c_cpu = C0.clone(), c_gpu = C0.to(kGpu);
    cpu::matmul(A, false, B, true, c_cpu, 1.f, 1.f, Tensor());
    cuda::matmul(A.to(kGpu), false, B.to(kGpu), true, c_gpu, 1.f, 1.f, Tensor());
    EXPECT_LT(rel_error(c_gpu, c_cpu), 1e-5) << "bf16 -> f32, beta 1";
  }
  // bf16 output with an f32 bias: the bias cannot ride the epilogue, the bias kernel adds it.
  {
    Tensor c_cpu = Tensor::empty({M, N}, DType::bf16), c_gpu = Tensor::empty({M, N}, DType::bf16, kGpu);
    cpu::matmul(A, false, B, true, c_cpu, 0.5f, 0.f, bias32);
    cuda::matmul(A.to(kGpu), false, B.to(kGpu), true, c_gpu, 0.5f, 0.f, bias32.to(kGpu));
    EXPECT_LT(rel_error(c_gpu, c_cpu), 1e-2) << "bf16 out, f32 bias";
  }
  // Misaligned operands and bias (pointers 2-byte aligned) give the same numbers.
  {
    Tensor bias16 = random_tensor({N}, DType::bf16, 12);
    Tensor c_cpu = Tensor::empty({M, N}, DType::bf16);
    Tensor c_gpu = misaligned_copy(Tensor::zeros({M, N}, DType::bf16, kGpu));
    cpu::matmul(A, false, B, true, c_cpu, 1.f, 0.f, bias16);
    cuda::matmul(misaligned_copy(A.to(kGpu)), false, misaligned_copy(B.to(kGpu)), true, c_gpu, 1.f, 0.f,
                 misaligned_copy(bias16.to(kGpu)));
    EXPECT_LT(rel_error(c_gpu, c_cpu), 1e-2) << "misaligned";
  }
  // K = 0: C = beta C + bias, no GEMM.
  {
    Tensor e_a = Tensor::empty({M, 0}, DType::f32, kGpu), e_b = Tensor::empty({0, N}, DType::f32, kGpu);
    Tensor c_gpu = C0.to(kGpu), c_cpu = C0.clone();
    cuda::matmul(e_a, false, e_b, false, c_gpu, 1.f, 2.f, bias32.to(kGpu));
    cpu::matmul(Tensor::empty({M, 0}, DType::f32), false, Tensor::empty({0, N}, DType::f32), false, c_cpu, 1.f, 2.f,
                bias32);
    EXPECT_LT(rel_error(c_gpu, c_cpu), 1e-6) << "K = 0";
  }
  // f64 is a CPU-only dtype.
  Tensor d = Tensor::zeros({2, 2}, DType::f64, kGpu);
  EXPECT_THROW(cuda::matmul(d, false, d, false, d, 1.f, 0.f, Tensor()), Error);
}

TEST(CudaDense, LinearParamSlotsMatchCpu) {
  // Mixed precision as in training: bf16 compute weights, fp32 gradient slots added into.
  Tensor x = random_tensor({45, 96}, DType::f32, 13);
  Tensor w = random_tensor({80, 96}, DType::f32, 14, -0.1f, 0.1f), b = random_tensor({80}, DType::f32, 15);
  auto run = [&](Device dev, DType dt) {
    Tensor wd = Tensor::from_floats(w.to_float_vector(), w.shape(), dt, dev);
    Tensor bd = Tensor::from_floats(b.to_float_vector(), b.shape(), dt, dev);
    Tensor gw = Tensor::full(w.shape(), 0.25, DType::f32, dev), gb = Tensor::full(b.shape(), -0.5, DType::f32, dev);
    autograd::make_param(wd, gw, "w");
    autograd::make_param(bd, gb, "b");
    Tensor xd = Tensor::from_floats(x.to_float_vector(), x.shape(), dt, dev);
    Tensor y = ops::linear(xd, wd, bd);
    autograd::backward(y, random_tensor(y.shape(), dt, 16, -1.f, 1.f, dev));
    return std::make_pair(gw, gb);
  };
  auto [gw_cpu, gb_cpu] = run(Device::cpu(), DType::f32);
  for (DType dt : {DType::f32, DType::bf16}) {
    auto [gw, gb] = run(kGpu, dt);
    EXPECT_LT(rel_error(gw, gw_cpu), tol(dt)) << dtype_name(dt);
    EXPECT_LT(rel_error(gb, gb_cpu), tol(dt)) << dtype_name(dt);
  }
}

TEST(CudaDense, EmbeddingMatchesCpuAndIsDeterministic) {
  for (int64_t hidden : {37, 128, 300}) {
    std::vector<int64_t> idv;
    for (int i = 0; i < 300; i++) idv.push_back((i * 7919) % 211);  // many repeats
    idv[5] = idv[6] = idv[7] = 999;
    for (int i = 100; i < 300; i += 2) idv[size_t(i)] = 42;  // one long run (summed by all warps)
    for (DType idt : {DType::i32, DType::i64}) {
      Tensor ids = Tensor::from_floats(std::vector<float>(idv.begin(), idv.end()), {10, 30}, idt);
      for (DType dt : {DType::f32, DType::bf16}) {
        auto r = compare_cpu_cuda([](const std::vector<Tensor>& x) { return ops::embedding(x[0], x[1]); },
                                  {ids, random_tensor({1000, hidden}, DType::f32, 17)}, dt);
        expect_close(r, dt, "embedding H=" + std::to_string(hidden));
      }
    }
  }
  // Two backward passes over the same ids: bit-identical table gradients.
  Tensor ids = Tensor::from_vector<int32_t>(std::vector<int32_t>(4096, 3), {4096}).to(kGpu);
  Tensor dout = random_tensor({4096, 64}, DType::bf16, 18, -1.f, 1.f, kGpu);
  Tensor g1 = Tensor::zeros({8, 64}, DType::f32, kGpu), g2 = Tensor::zeros({8, 64}, DType::f32, kGpu);
  cuda::embedding_backward(ids, dout, g1);
  cuda::embedding_backward(ids, dout, g2);
  auto v1 = g1.to_float_vector(), v2 = g2.to_float_vector();
  EXPECT_EQ(0, std::memcmp(v1.data(), v2.data(), v1.size() * sizeof(float)));
  EXPECT_NE(v1[3 * 64], 0.f);
  EXPECT_EQ(v1[2 * 64], 0.f);
  // A run over the whole batch (here 256 pieces of sorted pairs) sums like the CPU reference.
  Tensor gc = Tensor::zeros({8, 64}, DType::f32);
  cpu::embedding_backward(ids.to(Device::cpu()), dout.to(Device::cpu()), gc);
  EXPECT_LT(rel_error(g1, gc), 1e-5);
}

TEST(CudaDense, EmbeddingRangeErrorOnDevice) {
  Tensor table = random_tensor({50280, 4}, DType::bf16, 19, -1.f, 1.f, kGpu);
  Tensor ids = Tensor::from_vector<int64_t>({1, 2, 70000, 3}, {4}).to(kGpu);
  try {
    ops::embedding(ids, table);
    ADD_FAILURE() << "no error for an out-of-range id";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[embedding] id 70000 out of range for vocabulary 50280"), std::string::npos)
        << e.what();
  }
  // The stream is still usable afterwards.
  Tensor ok = ops::embedding(Tensor::from_vector<int32_t>({0, 50279}, {2}).to(kGpu), table);
  EXPECT_EQ(ok.to_float_vector()[4], table.to_float_vector()[50279 * 4]);
  // Ids checked by the caller: the same rows, without the device-side flag.
  Tensor ids_ok = Tensor::from_vector<int64_t>({7, 50279, 0, 7, 123}, {5}).to(kGpu);
  EXPECT_EQ(ops::embedding(ids_ok, table, /*ids_checked=*/true).to_float_vector(),
            ops::embedding(ids_ok, table).to_float_vector());
}

TEST(CudaAllocator, StatsGrowShrinkAndReuse) {
  synchronize(kGpu);
  cuda::empty_cache(0);
  reset_peak_memory(kGpu);
  const MemoryStats s0 = memory_stats(kGpu);
  void* p1 = nullptr;
  {
    Tensor a = Tensor::empty({1000}, DType::f32, kGpu);  // 4000 B -> 4096 B class
    p1 = a.data_ptr();
    const MemoryStats s1 = memory_stats(kGpu);
    EXPECT_EQ(s1.current_bytes, s0.current_bytes + 4096);
    EXPECT_GE(s1.reserved_bytes, s0.reserved_bytes + 4096);
    Tensor big = Tensor::empty({3 << 20}, DType::f32, kGpu);  // 12 MiB: large class
    EXPECT_EQ(memory_stats(kGpu).current_bytes, s0.current_bytes + 4096 + (size_t(12) << 20));
  }
  const MemoryStats s2 = memory_stats(kGpu);
  EXPECT_EQ(s2.current_bytes, s0.current_bytes);                      // shrinks on free
  EXPECT_EQ(s2.peak_bytes, s0.current_bytes + 4096 + (size_t(12) << 20));  // remembers the high-water mark
  EXPECT_GE(s2.reserved_bytes, s0.reserved_bytes + 4096 + (size_t(12) << 20));  // blocks are cached
  {
    // Same size class: the freed block comes back, no new reservation.
    Tensor again = Tensor::empty({1010}, DType::f32, kGpu);
    EXPECT_EQ(again.data_ptr(), p1);
    EXPECT_EQ(memory_stats(kGpu).reserved_bytes, s2.reserved_bytes);
  }
  reset_peak_memory(kGpu);
  EXPECT_EQ(memory_stats(kGpu).peak_bytes, memory_stats(kGpu).current_bytes);
  cuda::empty_cache(0);
  // Every cached block went back to the driver: only live tensors remain reserved.
  EXPECT_EQ(memory_stats(kGpu).reserved_bytes, memory_stats(kGpu).current_bytes);
}

TEST(CudaAllocator, OutOfMemoryIsAnError) {
  try {
    Tensor huge = Tensor::empty({int64_t(1) << 50}, DType::u8, kGpu);  // 1 PiB
    ADD_FAILURE() << "1 PiB allocation succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA out of memory allocating"), std::string::npos) << e.what();
  }
  // Still usable.
  Tensor t = Tensor::full({4}, 2.0, DType::f32, kGpu);
  EXPECT_EQ(t.to_float_vector(), (std::vector<float>{2, 2, 2, 2}));
}

TEST(CudaRuntime, DeviceQueries) {
  EXPECT_GE(cuda_device_count(), 1);
  EXPECT_NO_THROW(cuda::set_device(0));
  EXPECT_THROW(cuda::set_device(cuda_device_count()), Error);
  Tensor a = random_tensor({1 << 16}, DType::f32, 20);
  EXPECT_EQ(a.to(kGpu).to(Device::cpu()).to_float_vector(), a.to_float_vector());
}
