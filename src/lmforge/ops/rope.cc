#include "lmforge/ops/rope.h"

#include <cmath>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/grad_util.h"

namespace lmf::ops {

namespace ag = autograd;

namespace {

const char* kOp = "rope";

// A raw (autograd-free) strided view of t's storage.
Tensor raw_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
  return Tensor(t.storage(), shape, strides, offset, t.dtype());
}

// Validated positions as a detached contiguous i64 [N] tensor on `device`.
Tensor checked_positions(const Tensor& positions, int64_t N, Device device) {
  check_defined(kOp, "positions", positions);
  check_index_dtype(kOp, "positions", positions);
  if (positions.dim() != 1 || positions.size(0) != N)
    fail("[rope] positions must be [", N, "] (one per row), got ", shape_str(positions.shape()));
  if (positions.device() != device)
    fail("[rope] positions are on ", positions.device().str(), ", x is on ", device.str());
  Tensor p = ag::detach(positions.contiguous());
  if (p.dtype() == DType::i64) return p;
  Tensor p64 = Tensor::empty(p.shape(), DType::i64, device);
  LMF_DISPATCH(p64, cast, p, p64);
  return p64;
}

// The effective rotary_dim for head size D.
int64_t checked_rotary_dim(int64_t rotary_dim, int64_t D, double theta) {
  if (!(theta > 0) || !std::isfinite(theta)) fail("[rope] theta must be positive and finite, got ", theta);
  const int64_t R = rotary_dim == 0 ? D : rotary_dim;
  if (R <= 0 || R > D || R % 2 != 0)
    fail("[rope] rotary_dim must be even and in (0, head_dim = ", D, "], got ", R,
         rotary_dim == 0 ? " (rotary_dim 0 means head_dim)" : "");
  return R;
}

// x with a unit stride in its last dim (a copy only when needed; never differentiable).
Tensor unit_last(const Tensor& x) { return x.strides().back() == 1 ? ag::detach(x) : ag::detach(x.contiguous()); }

Tensor rope_no_grad(const Tensor& x, const Tensor& pos, double theta, int64_t R, bool inverse) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  LMF_DISPATCH(out, rope, x, pos, out, theta, R, inverse);
  return out;
}

}  // namespace

Tensor rope(const Tensor& x_in, const Tensor& positions, double theta, int64_t rotary_dim) {
  check_defined(kOp, "x", x_in);
  check_floating(kOp, "x", x_in);
  check_dim(kOp, "x [N, heads, head_dim]", x_in, 3);
  const int64_t R = checked_rotary_dim(rotary_dim, x_in.size(2), theta);
  Tensor pos = checked_positions(positions, x_in.size(0), x_in.device());
  Tensor x = unit_last(x_in);
  Tensor out = rope_no_grad(x, pos, theta, R, false);
  ag::record(kOp, {x_in}, {&out}, [pos, theta, R](ag::GradContext& ctx) -> std::vector<Tensor> {
    if (!ctx.needs_grad(0)) return {Tensor()};
    ag::NoGradGuard ng;
    Tensor g = unit_last(ctx.grad_output(0));
    return {rope_no_grad(g, pos, theta, R, true)};
  });
  return out;
}

RopeQKV rope_qkv(const Tensor& qkv_in, const Tensor& positions, double theta, int64_t rotary_dim) {
  check_defined(kOp, "qkv", qkv_in);
  check_floating(kOp, "qkv", qkv_in);
  check_dim(kOp, "qkv [N, 3, heads, head_dim]", qkv_in, 4);
  if (qkv_in.size(1) != 3) fail("[rope] qkv must be [N, 3, heads, head_dim], got ", shape_str(qkv_in.shape()));
  const int64_t N = qkv_in.size(0), H = qkv_in.size(2), D = qkv_in.size(3);
  const int64_t R = checked_rotary_dim(rotary_dim, D, theta);
  Tensor pos = checked_positions(positions, N, qkv_in.device());
  // [N, 3, H, D] -> [N, 3H, D] needs stride(1) == H * stride(2) and a unit stride in D.
  Tensor qkv = ag::detach(qkv_in);
  const Shape& st = qkv.strides();
  if (!(st[3] == 1 && st[1] == H * st[2])) qkv = ag::detach(qkv.contiguous());
  const int64_t s0 = qkv.strides()[0], s2 = qkv.strides()[2], off = qkv.offset();
  // q and k (the first 2H "heads" of the merged view) rotated in one launch.
  Tensor qk_in = raw_view(qkv, {N, 2 * H, D}, {s0, s2, 1}, off);
  Tensor qk = rope_no_grad(qk_in, pos, theta, R, false);  // [N, 2H, D] contiguous
  RopeQKV r;
  r.q = raw_view(qk, {N, H, D}, {2 * H * D, D, 1}, qk.offset());
  r.k = raw_view(qk, {N, H, D}, {2 * H * D, D, 1}, qk.offset() + H * D);
  r.v = raw_view(qkv, {N, H, D}, {s0, s2, 1}, off + 2 * H * s2);
  const DType dtype = qkv.dtype();
  ag::record("rope_qkv", {qkv_in}, {&r.q, &r.k, &r.v},
             [pos, theta, R, N, H, D, dtype](ag::GradContext& ctx) -> std::vector<Tensor> {
               if (!ctx.needs_grad(0)) return {Tensor()};
               ag::NoGradGuard ng;
               Tensor dqkv = Tensor::empty({N, 3, H, D}, dtype, ctx.grad_output(0).device());
               for (int j = 0; j < 3; j++) {
                 Tensor g = unit_last(ctx.grad_output(j));
                 if (g.dtype() != dtype) g = detail::grad_as(g, dtype);
                 Tensor dst = raw_view(dqkv, {N, H, D}, {3 * H * D, D, 1}, int64_t(j) * H * D);
                 // j = 2 (v) is a plain copy: rotary_dim 0.
                 LMF_DISPATCH(dst, rope, g, pos, dst, theta, j < 2 ? R : 0, true);
               }
               return {dqkv};
             });
  return r;
}

}  // namespace lmf::ops
