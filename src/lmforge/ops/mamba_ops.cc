#include "lmforge/ops/mamba_ops.h"

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/grad_util.h"

namespace lmf::ops {

namespace ag = autograd;

namespace {
Tensor c(const Tensor& t) { return t.defined() ? ag::detach(t.contiguous()) : t; }
using detail::acc_dtype;

// The accumulation target for input j of a node (its param slot, or a fresh zero tensor that is
// also returned as the gradient).
Tensor acc_target(ag::GradContext& ctx, int j, const Tensor& like, Tensor* returned) {
  detail::WeightGrad w = detail::weight_grad(ctx, j, like.shape(), like.dtype(), like.device());
  *returned = w.result;
  return w.acc;
}

void check_seq_idx(const char* op, const Tensor& seq_idx, const Tensor& x) {
  if (!seq_idx.defined()) return;
  check_dtype(op, "seq_idx", seq_idx, DType::i32);
  if (seq_idx.dim() != 2 || seq_idx.size(0) != x.size(0) || seq_idx.size(1) != x.size(1))
    fail("[", op, "] seq_idx must be [B, L] = [", x.size(0), ", ", x.size(1), "], got ", shape_str(seq_idx.shape()));
  check_same_device(op, seq_idx, x);
}
}  // namespace

Tensor causal_conv1d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in, const Tensor& seq_in, bool silu) {
  const char* op = "causal_conv1d";
  check_defined(op, "x", x_in);
  check_dim(op, "x", x_in, 3);
  check_floating(op, "x", x_in);
  check_dim(op, "w", w_in, 2);
  if (w_in.size(0) != x_in.size(2))
    fail("[", op, "] w must be [D, K] with D = ", x_in.size(2), ", got ", shape_str(w_in.shape()));
  if (bias_in.defined() && (bias_in.dim() != 1 || bias_in.size(0) != x_in.size(2)))
    fail("[", op, "] bias must be [", x_in.size(2), "], got ", shape_str(bias_in.shape()));
  check_same_device(op, x_in, w_in);
  check_seq_idx(op, seq_in, x_in);
  Tensor x = c(x_in), w = c(w_in), bias = c(bias_in), seq = c(seq_in);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  LMF_DISPATCH(y, causal_conv1d_forward, x, w, bias, seq, y, silu);
  ag::record(op, {x_in, w_in, bias_in}, {&y}, [x, w, bias, seq, silu](ag::GradContext& ctx) -> std::vector<Tensor> {
    Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    Tensor gw, gb;
    Tensor dw = acc_target(ctx, 1, w, &gw);
    Tensor db = bias.defined() ? acc_target(ctx, 2, bias, &gb) : Tensor();
    Tensor dy = ctx.grad_output(0).contiguous();
    LMF_DISPATCH(dy, causal_conv1d_backward, x, w, bias, seq, dy, dx, dw, db, silu);
    return {ctx.needs_grad(0) ? dx : Tensor(), gw, gb};
  });
  return y;
}

namespace {
void check_scan(const SelectiveScanArgs& a) {
  const char* op = "selective_scan";
  check_defined(op, "u", a.u);
  check_dim(op, "u", a.u, 3);
  check_floating(op, "u", a.u);
  const int64_t B = a.u.size(0), L = a.u.size(1), D = a.u.size(2);
  check_defined(op, "delta", a.delta);
  check_same_shape(op, a.u, a.delta);
  check_defined(op, "A_log", a.A_log);
  check_dim(op, "A_log", a.A_log, 2);
  if (a.A_log.size(0) != D) fail("[", op, "] A_log must be [", D, ", N], got ", shape_str(a.A_log.shape()));
  const int64_t N = a.A_log.size(1);
  for (const Tensor* t : {&a.Bm, &a.Cm}) {
    check_defined(op, "Bm/Cm", *t);
    if (t->shape() != Shape{B, L, N})
      fail("[", op, "] Bm and Cm must be [", B, ", ", L, ", ", N, "], got ", shape_str(t->shape()));
  }
  if (a.z.defined()) check_same_shape(op, a.u, a.z);
  for (const Tensor* t : {&a.Dskip, &a.delta_bias})
    if (t->defined() && (t->dim() != 1 || t->size(0) != D))
      fail("[", op, "] D and delta_bias must be [", D, "], got ", shape_str(t->shape()));
  for (const Tensor* t : {&a.delta, &a.A_log, &a.Bm, &a.Cm, &a.Dskip, &a.z, &a.delta_bias})
    if (t->defined()) check_same_device(op, a.u, *t);
  check_seq_idx(op, a.seq_idx, a.u);
}
}  // namespace

Tensor selective_scan_with_state(const SelectiveScanArgs& in, Tensor* final_state) {
  check_scan(in);
  SelectiveScanArgs a{c(in.u), c(in.delta), c(in.A_log), c(in.Bm), c(in.Cm), c(in.Dskip), c(in.z),
                      c(in.delta_bias), c(in.seq_idx), in.delta_softplus};
  Tensor out = Tensor::empty(a.u.shape(), a.u.dtype(), a.u.device());
  Tensor fs;
  if (final_state) {
    fs = Tensor::empty({a.u.size(0), a.u.size(2), a.A_log.size(1)}, acc_dtype(a.u.dtype()), a.u.device());
    *final_state = fs;
  }
  LMF_DISPATCH(out, selective_scan_forward, a.u, a.delta, a.A_log, a.Bm, a.Cm, a.Dskip, a.z, a.delta_bias,
               a.seq_idx, a.delta_softplus, out, fs);
  ag::record("selective_scan", {in.u, in.delta, in.A_log, in.Bm, in.Cm, in.Dskip, in.z, in.delta_bias}, {&out},
             [a](ag::GradContext& ctx) -> std::vector<Tensor> {
               auto like = [](const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); };
               Tensor du = like(a.u), dd = like(a.delta), dB = like(a.Bm), dC = like(a.Cm);
               Tensor dz = a.z.defined() ? like(a.z) : Tensor();
               Tensor gA, gD, gbias;
               Tensor dA = acc_target(ctx, 2, a.A_log, &gA);
               Tensor dDs = a.Dskip.defined() ? acc_target(ctx, 5, a.Dskip, &gD) : Tensor();
               Tensor dbias = a.delta_bias.defined() ? acc_target(ctx, 7, a.delta_bias, &gbias) : Tensor();
               Tensor dout = ctx.grad_output(0).contiguous();
               LMF_DISPATCH(dout, selective_scan_backward, a.u, a.delta, a.A_log, a.Bm, a.Cm, a.Dskip, a.z,
                            a.delta_bias, a.seq_idx, a.delta_softplus, dout, du, dd, dB, dC, dz, dA, dDs, dbias);
               auto keep = [&](int j, const Tensor& g) { return ctx.needs_grad(j) ? g : Tensor(); };
               return {keep(0, du), keep(1, dd), gA, keep(3, dB), keep(4, dC), gD, keep(6, dz), gbias};
             });
  return out;
}

Tensor selective_scan(const SelectiveScanArgs& a) { return selective_scan_with_state(a, nullptr); }

}  // namespace lmf::ops
