// CUDA vs CPU for the element-wise, reduction, activation, softmax, dropout and norm kernels:
// every op on random inputs (never zeros), outputs and input gradients, f32 (<= 1e-5 relative)
// and bf16 (<= 1e-2), shapes with tails (not multiples of 4 / 8 / 32 / 128), misaligned views
// and a large case. Dropout masks must be bit-identical; weight-gradient reductions must be
// deterministic (same bits on a second run).
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/ops/activation.h"
#include "lmforge/ops/dropout.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/norm.h"
#include "lmforge/ops/softmax.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::random_tensor;
using test::rel_error;

namespace {

const Device kGpu = Device::cuda(0);

double tol_for(DType dt) { return dt == DType::f32 ? 1e-5 : 1e-2; }

struct Case {
  std::string name;
  test::OpFn fn;
  std::vector<Tensor> inputs;  // cpu f32 (integer inputs pass through)
  bool grads = true;
};

// Inputs exactly representable in `dt`, so the comparison measures the kernels, not the
// rounding of the inputs (which alone moves exp or softplus of a wide input by ~1% in bf16).
std::vector<Tensor> representable(const std::vector<Tensor>& in, DType dt) {
  std::vector<Tensor> out;
  for (const Tensor& t : in) {
    const bool round = t.defined() && is_floating(t.dtype()) && dt != DType::f32;
    out.push_back(round ? Tensor::from_floats(Tensor::from_floats(t.to_float_vector(), t.shape(), dt).to_float_vector(),
                                              t.shape(), DType::f32)
                        : t);
  }
  return out;
}

void run_case(const Case& c, DType dt) {
  const double tol = tol_for(dt);
  test::DeviceCompare r = test::compare_cpu_cuda(c.fn, representable(c.inputs, dt), dt, c.grads);
  EXPECT_LT(r.out_rel, tol) << c.name << " [" << dtype_name(dt) << "] output";
  for (size_t i = 0; i < r.grad_rel.size(); i++)
    EXPECT_LT(r.grad_rel[i], tol) << c.name << " [" << dtype_name(dt) << "] gradient of input " << i;
}

std::string shape_name(const Shape& s) { return shape_str(s); }

// Row shapes: warp-per-row and block-per-row launches, packed and unpacked rows, tails.
const std::vector<Shape> kRowShapes = {{3, 5}, {7, 33}, {4, 130}, {3, 257}, {2, 3, 1000}, {5, 4099}, {3, 8192}};
// Flat shapes for element-wise maps: odd sizes leave scalar tails after the packs.
const std::vector<Shape> kFlatShapes = {{1}, {7}, {1031}, {3, 37}, {4099}, {257, 129}};

}  // namespace

TEST(OpsPointwiseCuda, ElementwiseOps) {
  for (DType dt : {DType::f32, DType::bf16}) {
    for (const Shape& s : kFlatShapes) {
      Tensor a = random_tensor(s, DType::f32, 1), b = random_tensor(s, DType::f32, 2, 0.5f, 2.f);
      const std::string sn = shape_name(s);
      run_case({"add " + sn, [](auto& x) { return ops::add(x[0], x[1]); }, {a, b}}, dt);
      run_case({"axpby " + sn, [](auto& x) { return ops::axpby(x[0], x[1], 0.75f, -1.5f); }, {a, b}}, dt);
      run_case({"mul " + sn, [](auto& x) { return ops::mul(x[0], x[1]); }, {a, b}}, dt);
      run_case({"scale " + sn, [](auto& x) { return ops::scale(x[0], -2.5f); }, {a}}, dt);
      run_case({"sum " + sn, [](auto& x) { return ops::sum(x[0]); }, {b}}, dt);
      run_case({"mean " + sn, [](auto& x) { return ops::mean(x[0]); }, {b}}, dt);
      // A cast round trip exercises f32 <-> bf16 both ways, with gradients.
      run_case({"cast " + sn,
                [](auto& x) { return ops::cast(ops::cast(x[0], DType::f32), DType::bf16); }, {a}}, dt);
    }
    for (const Shape& s : kRowShapes) {
      const int64_t C = s.back();
      Tensor x = random_tensor(s, DType::f32, 3), v = random_tensor({C}, DType::f32, 4);
      const std::string sn = shape_name(s);
      // Its backward runs sum_rows_acc for the vector.
      run_case({"add_row_vector " + sn, [](auto& t) { return ops::add_row_vector(t[0], t[1]); }, {x, v}}, dt);
      run_case({"sum_last_dim " + sn, [](auto& t) { return ops::sum_last_dim(t[0]); }, {x}, false}, dt);
    }
  }
}

TEST(OpsPointwiseCuda, ActivationsAndSoftmax) {
  const std::vector<Activation> acts = {Activation::gelu_erf, Activation::gelu_tanh, Activation::silu,
                                        Activation::relu, Activation::softplus, Activation::tanh_act};
  for (DType dt : {DType::f32, DType::bf16}) {
    for (const Shape& s : kFlatShapes) {
      // [-30, 30] crosses the softplus threshold (20) and saturates tanh / sigmoid.
      Tensor x = random_tensor(s, DType::f32, 5, -30.f, 30.f), xs = random_tensor(s, DType::f32, 6, -3.f, 3.f);
      for (Activation a : acts) {
        auto fn = [a](const std::vector<Tensor>& t) { return ops::activation(t[0], a); };
        run_case({std::string(activation_name(a)) + " wide " + shape_name(s), fn, {x}}, dt);
        run_case({std::string(activation_name(a)) + " " + shape_name(s), fn, {xs}}, dt);
      }
    }
    // Gated activations (GeGLU / SwiGLU): even rows, packed and unpacked halves.
    for (const Shape& s : std::vector<Shape>{{3, 10}, {7, 34}, {4, 132}, {2, 3, 1000}, {5, 4098}}) {
      Tensor x = random_tensor(s, DType::f32, 8, -4.f, 4.f);
      for (Activation a : {Activation::gelu_erf, Activation::gelu_tanh, Activation::silu}) {
        auto fn = [a](const std::vector<Tensor>& t) { return ops::gated_activation(t[0], a); };
        run_case({std::string("gated ") + activation_name(a) + " " + shape_name(s), fn, {x}}, dt);
      }
    }
    for (const Shape& s : kRowShapes) {
      // Moderate logits: with peaked rows, 1 - y of a bf16-stored y near 1 is ill-conditioned in any
      // bf16 softmax backward (PyTorch included), whatever the kernel.
      Tensor x = random_tensor(s, DType::f32, 7, -3.f, 3.f);
      run_case({"softmax " + shape_name(s), [](auto& t) { return ops::softmax(t[0]); }, {x}}, dt);
    }
  }
}

TEST(OpsPointwiseCuda, Norms) {
  for (DType dt : {DType::f32, DType::bf16}) {
    for (const Shape& s : kRowShapes) {
      const int64_t C = s.back();
      Tensor x = random_tensor(s, DType::f32, 8, -2.f, 3.f);
      Tensor w = random_tensor({C}, DType::f32, 9, 0.5f, 1.5f), b = random_tensor({C}, DType::f32, 10);
      const std::string sn = shape_name(s);
      run_case({"layer_norm " + sn, [](auto& t) { return ops::layer_norm(t[0], t[1], t[2], 1e-5f); }, {x, w, b}}, dt);
      run_case({"layer_norm no bias " + sn, [](auto& t) { return ops::layer_norm(t[0], t[1], Tensor(), 1e-5f); },
                {x, w}}, dt);
      run_case({"rms_norm " + sn, [](auto& t) { return ops::rms_norm(t[0], t[1], 1e-6f); }, {x, w}}, dt);
    }
  }
  // Mixed precision on CUDA (bf16 activations, f32 weights, or f32 residual stream into a bf16
  // norm weight, as Mamba's norm_f sees it); on the CPU the casts are no-ops.
  for (const Shape& s : kRowShapes) {
    const int64_t C = s.back();
    Tensor x = random_tensor(s, DType::f32, 11, -2.f, 2.f), w = random_tensor({C}, DType::f32, 12, 0.5f, 1.5f);
    Tensor b = random_tensor({C}, DType::f32, 13);
    const std::string sn = shape_name(s);
    run_case({"layer_norm bf16 x f32 w " + sn,
              [](auto& t) { return ops::layer_norm(t[0], ops::cast(t[1], DType::f32), ops::cast(t[2], DType::f32), 1e-5f); },
              {x, w, b}}, DType::bf16);
    run_case({"rms_norm bf16 x f32 w " + sn,
              [](auto& t) { return ops::rms_norm(t[0], ops::cast(t[1], DType::f32), 1e-5f); }, {x, w}}, DType::bf16);
    run_case({"layer_norm f32 x into bf16 " + sn,
              [](auto& t) {
                auto f = [](const Tensor& v) { return ops::cast(v, DType::f32); };
                return ops::layer_norm(f(t[0]), f(t[1]), f(t[2]), 1e-5f, DType::bf16);
              },
              {x, w, b}}, DType::bf16);
    run_case({"f32 + bf16 add " + sn,
              [](auto& t) { return ops::add(ops::cast(t[0], DType::f32), ops::cast(ops::scale(t[0], 0.5f), DType::bf16)); },
              {x}}, DType::bf16);
    run_case({"rms_norm f32 x bf16 w " + sn,
              [](auto& t) { return ops::rms_norm(ops::cast(t[0], DType::f32), t[1], 1e-5f); }, {x, w}}, DType::bf16);
    // Mamba's block norm: the fp32 residual normalised as bf16 in one kernel, alone and with the
    // residual's own gradient that the fused backward adds into.
    run_case({"rms_norm rounded " + sn,
              [](auto& t) { return ops::rms_norm(ops::cast(t[0], DType::f32), ops::cast(t[1], DType::bf16), 1e-5f, DType::bf16); },
              {x, w}}, DType::bf16);
    run_case({"rms_norm rounded + residual " + sn,
              [](auto& t) {
                Tensor xf = ops::cast(t[0], DType::f32);
                return ops::add(xf, ops::rms_norm(xf, ops::cast(t[1], DType::bf16), 1e-5f, DType::bf16));
              },
              {x, w}}, DType::bf16);
  }
}

// Mamba's block boundary, ops::add_rms_norm: the residual sum and the next block's norm in one
// kernel each way; the loss uses both outputs, so the backward adds the residual path's
// gradient. Shapes cover both weight-gradient paths (register sums for packed rows of <= 2048,
// a column reduction otherwise), several rows per warp ({9000, 64}, {2500, 2048}) and unpacked
// rows; the weight gradient must be deterministic.
TEST(OpsPointwiseCuda, AddRmsNormBlockBoundary) {
  std::vector<Shape> shapes = kRowShapes;
  shapes.insert(shapes.end(), {{9000, 64}, {2500, 2048}, {37, 1536}, {3, 2052}});
  auto fn = [](auto& t) {
    auto [s, y] = ops::add_rms_norm(ops::cast(t[0], DType::f32), ops::cast(t[1], DType::bf16),
                                    ops::cast(t[2], DType::bf16), 1e-5f, DType::bf16);
    return ops::add(ops::scale(s, 0.5f), y);
  };
  for (const Shape& s : shapes) {
    const int64_t C = s.back();
    Tensor x = random_tensor(s, DType::f32, 19, -2.f, 2.f), h = random_tensor(s, DType::f32, 20);
    Tensor w = random_tensor({C}, DType::f32, 21, 0.5f, 1.5f);
    run_case({"add_rms_norm " + shape_name(s), fn, {x, h, w}}, DType::bf16);
  }
  Tensor x = random_tensor({2500, 2048}, DType::f32, 22, -2.f, 2.f).to(kGpu);
  Tensor h = ops::cast(random_tensor({2500, 2048}, DType::f32, 23), DType::bf16).to(kGpu);
  Tensor w = ops::cast(random_tensor({2048}, DType::f32, 24, 0.5f, 1.5f), DType::bf16).to(kGpu);
  Tensor r = random_tensor({2500, 2048}, DType::f32, 25).to(kGpu);
  std::vector<std::vector<float>> dws;
  for (int run = 0; run < 2; run++) {
    Tensor wp = w.clone();
    autograd::set_requires_grad(wp, true);
    auto [sum, y] = ops::add_rms_norm(x, h, wp, 1e-5f, DType::bf16);
    autograd::backward(ops::sum(ops::mul(ops::add(sum, y), r)));
    dws.push_back(autograd::grad(wp).to_float_vector());
  }
  EXPECT_EQ(dws[0], dws[1]);
}

TEST(OpsPointwiseCuda, LargeNormAndSoftmax) {
  Tensor x = random_tensor({512, 4096}, DType::f32, 14, -2.f, 2.f);
  Tensor w = random_tensor({4096}, DType::f32, 15, 0.5f, 1.5f), b = random_tensor({4096}, DType::f32, 16);
  for (DType dt : {DType::f32, DType::bf16}) {
    run_case({"layer_norm large", [](auto& t) { return ops::layer_norm(t[0], t[1], t[2], 1e-5f); }, {x, w, b}}, dt);
    run_case({"rms_norm large", [](auto& t) { return ops::rms_norm(t[0], t[1], 1e-5f); }, {x, w}}, dt);
    run_case({"softmax large", [](auto& t) { return ops::softmax(t[0]); }, {x}}, dt);
  }
}

TEST(OpsPointwiseCuda, DropoutMasksBitIdentical) {
  for (DType dt : {DType::f32, DType::bf16}) {
    for (const Shape& s : kFlatShapes) {
      Tensor x = Tensor::from_floats(random_tensor(s, DType::f32, 17, 0.5f, 1.5f).to_float_vector(), s, dt);
      Tensor xg = x.to(kGpu);
      Tensor yc = Tensor::empty(s, dt), yg = Tensor::empty(s, dt, kGpu);
      cpu::dropout_forward(x, yc, 0.3f, 1234, 77);
      cuda::dropout_forward(xg, yg, 0.3f, 1234, 77);
      // Same fp32 products rounded the same way: equal bit for bit, not just the same mask.
      EXPECT_EQ(yg.to_float_vector(), yc.to_float_vector()) << shape_name(s) << " " << dtype_name(dt);
      Tensor dc = Tensor::empty(s, dt), dg = Tensor::empty(s, dt, kGpu);
      cpu::dropout_backward(x, dc, 0.3f, 1234, 77);
      cuda::dropout_backward(xg, dg, 0.3f, 1234, 77);
      EXPECT_EQ(dg.to_float_vector(), dc.to_float_vector());
    }
  }
  // A view one element in (not 16-byte aligned) takes the scalar path, same stream positions.
  Tensor x = random_tensor({4100}, DType::f32, 18, 0.5f, 1.5f);
  Tensor xv = x.slice(0, 1, 4100), xgv = x.to(kGpu).slice(0, 1, 4100);
  Tensor yc = Tensor::empty({4099}, DType::f32), yg = Tensor::empty({4100}, DType::f32, kGpu).slice(0, 1, 4100);
  cpu::dropout_forward(xv, yc, 0.5f, 9, 3);
  cuda::dropout_forward(xgv, yg, 0.5f, 9, 3);
  EXPECT_EQ(yg.to_float_vector(), yc.to_float_vector());
  // Through the op with gradients.
  for (DType dt : {DType::f32, DType::bf16}) {
    run_case({"dropout",
              [](auto& t) {
                Generator g{5, 11};
                return ops::dropout(t[0], 0.25f, g, true);
              },
              {random_tensor({33, 65}, DType::f32, 19)}}, dt);
  }
}

TEST(OpsPointwiseCuda, AccumulateCastFill) {
  const Shape s = {1037};
  Tensor src = random_tensor(s, DType::f32, 20);
  for (DType sdt : {DType::f32, DType::bf16, DType::f16}) {
    Tensor sc = Tensor::from_floats(src.to_float_vector(), s, sdt);
    for (DType ddt : {DType::f32, DType::bf16}) {
      Tensor dc = Tensor::from_floats(random_tensor(s, DType::f32, 21).to_float_vector(), s, ddt);
      Tensor dg = dc.to(kGpu);
      cpu::accumulate(dc, sc);
      cuda::accumulate(dg, sc.to(kGpu));
      EXPECT_LT(rel_error(dg, dc), ddt == DType::f32 ? 1e-7 : 1e-2) << dtype_name(sdt) << " into " << dtype_name(ddt);
    }
  }
  // Casts between every CUDA dtype pair, from values that every dtype can hold approximately.
  Tensor base = random_tensor(s, DType::f32, 22, 0.f, 100.f);
  const std::vector<DType> all = {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8};
  for (DType from : all) {
    Tensor xc = Tensor::from_floats(base.to_float_vector(), s, from);
    for (DType to : all) {
      Tensor yc = Tensor::empty(s, to), yg = Tensor::empty(s, to, kGpu);
      cpu::cast(xc, yc);
      cuda::cast(xc.to(kGpu), yg);
      EXPECT_LT(rel_error(yg, yc), 1e-6) << dtype_name(from) << " -> " << dtype_name(to);
    }
  }
  for (DType dt : all) {
    Tensor yc = Tensor::empty({1031}, dt), yg = Tensor::empty({1031}, dt, kGpu);
    cpu::fill(yc, 3.7);
    cuda::fill(yg, 3.7);
    EXPECT_EQ(yg.to_double_vector(), yc.to_double_vector()) << dtype_name(dt);
  }
}

TEST(OpsPointwiseCuda, ReductionKernelsAndDeterminism) {
  // sum_all over many blocks (two-stage) and a short one (one block).
  for (int64_t n : {int64_t(5), int64_t(3000001)}) {
    for (DType dt : {DType::f32, DType::bf16}) {
      Tensor x = Tensor::from_floats(random_tensor({n}, DType::f32, 23).to_float_vector(), {n}, dt);
      Tensor oc = Tensor::empty({1}, DType::f32), og = Tensor::empty({1}, DType::f32, kGpu);
      cpu::sum_all(x, oc);
      cuda::sum_all(x.to(kGpu), og);
      EXPECT_NEAR(og.item(), oc.item(), 1e-6 * std::sqrt(double(n)) + 1e-6) << n << " " << dtype_name(dt);
    }
  }
  // sum_rows_acc with many rows (several row chunks + the finishing pass) adds into its target.
  for (DType dt : {DType::f32, DType::bf16}) {
    for (Shape s : {Shape{20011, 77}, Shape{3, 5}, Shape{4096, 1031}}) {
      Tensor dy = Tensor::from_floats(random_tensor(s, DType::f32, 24).to_float_vector(), s, dt);
      Tensor start = random_tensor({s[1]}, DType::f32, 25);
      Tensor ac = start.clone(), ag1 = start.to(kGpu), ag2 = start.to(kGpu);
      cpu::sum_rows_acc(dy, ac);
      Tensor dyg = dy.to(kGpu);
      cuda::sum_rows_acc(dyg, ag1);
      cuda::sum_rows_acc(dyg, ag2);
      EXPECT_LT(rel_error(ag1, ac), 1e-5) << shape_name(s) << " " << dtype_name(dt);
      EXPECT_EQ(ag1.to_float_vector(), ag2.to_float_vector()) << "sum_rows_acc must be deterministic";
    }
  }
  // Norm weight gradients are deterministic too.
  Tensor x = random_tensor({3000, 768}, DType::f32, 26).to(kGpu), w = random_tensor({768}, DType::f32, 27).to(kGpu);
  Tensor b = random_tensor({768}, DType::f32, 28).to(kGpu), r = random_tensor({3000, 768}, DType::f32, 29).to(kGpu);
  std::vector<std::vector<float>> runs;
  for (int k = 0; k < 2; k++) {
    Tensor ws = Tensor::zeros({768}, DType::f32, kGpu), bs = Tensor::zeros({768}, DType::f32, kGpu);
    Tensor wp = w.clone(), bp = b.clone();
    autograd::make_param(wp, ws, "w");
    autograd::make_param(bp, bs, "b");
    autograd::backward(ops::sum(ops::mul(ops::layer_norm(x, wp, bp, 1e-5f), r)));
    autograd::backward(ops::sum(ops::mul(ops::rms_norm(x, wp, 1e-5f), r)));
    auto a = ws.to_float_vector(), c = bs.to_float_vector();
    a.insert(a.end(), c.begin(), c.end());
    runs.push_back(a);
  }
  EXPECT_EQ(runs[0], runs[1]);
}
