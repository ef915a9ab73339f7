#include "lmforge/ops/norm.h"

#include <cmath>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/grad_util.h"

namespace lmf::ops {

namespace ag = autograd;

namespace {

// Checks shared by both norms; returns C.
int64_t check_norm_args(const char* op, const Tensor& x, const Tensor& w, float eps) {
  check_defined(op, "x", x);
  check_defined(op, "weight", w);
  check_floating(op, "x", x);
  check_floating(op, "weight", w);
  if (x.dim() == 0 || x.size(-1) == 0) fail("[", op, "] x needs a non-empty last dimension, got ", shape_str(x.shape()));
  check_dim(op, "weight", w, 1);
  check_last_dim(op, "weight", w, x.size(-1));
  check_same_device(op, x, w);
  if (!std::isfinite(eps) || eps < 0.f) fail("[", op, "] eps must be finite and >= 0, got ", eps);
  return x.size(-1);
}

[[noreturn]] void bad_dtypes(const char* op, const Tensor& x, const Tensor& w, const char* allowed) {
  fail("[", op, "] x is ", dtype_name(x.dtype()), " and weight ", dtype_name(w.dtype()), ": expected ", allowed);
}

Shape stats_shape(const Tensor& x) { return {x.numel() / x.size(-1)}; }

// Where the rounded norm's backward puts the fp32 residual's gradient (input 0, like x): added
// into the gradient x has collected so far when the tape allows it, else a fresh tensor.
struct ResidualGrad {
  Tensor dx;  // undefined when x needs no gradient
  bool accumulate = false;
};
ResidualGrad residual_grad(const ag::GradContext& ctx, const Tensor& x) {
  if (!ctx.needs_grad(0)) return {};
  Tensor acc = ctx.activation_grad_to_add_into(0, DType::f32, x.numel());
  if (acc.defined()) return {acc, true};
  return {Tensor::empty(x.shape(), DType::f32, x.device()), false};
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps) {
  return layer_norm(x, w, b, eps, x.dtype());
}

Tensor layer_norm(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, float eps, DType yd) {
  const int64_t C = check_norm_args("layer_norm", x_in, w_in, eps);
  const DType xd = x_in.dtype(), wd = w_in.dtype();
  if (!(wd == xd || (xd == DType::bf16 && wd == DType::f32)))
    bad_dtypes("layer_norm", x_in, w_in, "equal dtypes, or bf16 x with f32 weight");
  if (yd != xd && !(yd == DType::bf16 && xd == DType::f32 && wd == DType::f32))
    fail("[layer_norm] output dtype ", dtype_name(yd), " for x ", dtype_name(xd), " and weight ", dtype_name(wd),
         ": expected x's dtype, or bf16 for f32 x and weight");
  if (b_in.defined()) {
    check_dim("layer_norm", "bias", b_in, 1);
    check_last_dim("layer_norm", "bias", b_in, C);
    check_same_device("layer_norm", x_in, b_in);
    check_dtype("layer_norm", "bias", b_in, wd);
  }
  Tensor x = x_in.contiguous(), w = w_in.contiguous(), b = b_in.defined() ? b_in.contiguous() : Tensor();
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), yd, dev);
  Tensor mean = Tensor::empty(stats_shape(x), detail::acc_dtype(xd), dev);
  Tensor rstd = Tensor::empty(stats_shape(x), detail::acc_dtype(xd), dev);
  LMF_DISPATCH(y, layernorm_forward, x, w, b, y, mean, rstd, eps);
  Tensor xs = ag::detach(x), ws = ag::detach(w);
  const bool has_b = b.defined();
  ag::record("layer_norm", {x_in, w_in, b_in}, {&y},
             [xs, ws, mean, rstd, has_b, C, yd](ag::GradContext& ctx) -> std::vector<Tensor> {
               const Device d = xs.device();
               Tensor dy = detail::grad_as(ctx.grad_output(0), yd);
               Tensor dx = ctx.needs_grad(0) ? Tensor::empty(xs.shape(), xs.dtype(), d) : Tensor();
               detail::WeightGrad gw = detail::weight_grad(ctx, 1, {C}, ws.dtype(), d);
               detail::WeightGrad gb = has_b ? detail::weight_grad(ctx, 2, {C}, ws.dtype(), d) : detail::WeightGrad{};
               LMF_DISPATCH(xs, layernorm_backward, xs, ws, mean, rstd, dy, dx, gw.acc, gb.acc);
               return {dx, gw.result, gb.result};
             });
  return y;
}

Tensor rms_norm(const Tensor& x_in, const Tensor& w_in, float eps) {
  const int64_t C = check_norm_args("rms_norm", x_in, w_in, eps);
  const DType xd = x_in.dtype(), wd = w_in.dtype();
  DType yd;
  if (wd == xd) {
    yd = xd;
  } else if ((xd == DType::bf16 && wd == DType::f32) || (xd == DType::f32 && wd == DType::bf16)) {
    yd = DType::f32;  // weight * h.to(input_dtype) promotes to f32
  } else {
    bad_dtypes("rms_norm", x_in, w_in, "equal dtypes, or one f32 and the other bf16");
  }
  Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), yd, dev);
  Tensor rstd = Tensor::empty(stats_shape(x), detail::acc_dtype(xd), dev);
  LMF_DISPATCH(y, rmsnorm_forward, x, w, y, rstd, eps);
  Tensor xs = ag::detach(x), ws = ag::detach(w);
  ag::record("rms_norm", {x_in, w_in}, {&y}, [xs, ws, rstd, yd, C](ag::GradContext& ctx) -> std::vector<Tensor> {
    const Device d = xs.device();
    Tensor dy = detail::grad_as(ctx.grad_output(0), yd);
    Tensor dx = ctx.needs_grad(0) ? Tensor::empty(xs.shape(), xs.dtype(), d) : Tensor();
    detail::WeightGrad gw = detail::weight_grad(ctx, 1, {C}, ws.dtype(), d);
    LMF_DISPATCH(xs, rmsnorm_backward, xs, ws, rstd, dy, dx, gw.acc);
    return {dx, gw.result};
  });
  return y;
}

Tensor rms_norm(const Tensor& x_in, const Tensor& w_in, float eps, DType input_dtype) {
  check_defined("rms_norm", "x", x_in);
  check_defined("rms_norm", "weight", w_in);
  if (!(x_in.dtype() == DType::f32 && w_in.dtype() == DType::bf16 && input_dtype == DType::bf16))
    return rms_norm(cast(x_in, input_dtype), w_in, eps);
  const int64_t C = check_norm_args("rms_norm", x_in, w_in, eps);
  Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), DType::bf16, dev);
  Tensor rstd = Tensor::empty(stats_shape(x), DType::f32, dev);
  LMF_DISPATCH(y, rmsnorm_rounded_forward, x, Tensor(), w, Tensor(), y, rstd, eps);
  Tensor xs = ag::detach(x), ws = ag::detach(w);
  ag::record("rms_norm", {x_in, w_in}, {&y}, [xs, ws, rstd, C](ag::GradContext& ctx) -> std::vector<Tensor> {
    const Device d = xs.device();
    Tensor dy = detail::grad_as(ctx.grad_output(0), DType::bf16);
    auto [dx, accumulate] = residual_grad(ctx, xs);
    detail::WeightGrad gw = detail::weight_grad(ctx, 1, {C}, ws.dtype(), d);
    LMF_DISPATCH(xs, rmsnorm_rounded_backward, xs, ws, rstd, dy, Tensor(), dx, accumulate, Tensor(), gw.acc);
    return {accumulate ? Tensor() : dx, gw.result};
  });
  return y;
}

std::pair<Tensor, Tensor> add_rms_norm(const Tensor& x_in, const Tensor& h_in, const Tensor& w_in, float eps,
                                       DType input_dtype) {
  check_defined("add_rms_norm", "x", x_in);
  check_defined("add_rms_norm", "h", h_in);
  check_defined("add_rms_norm", "weight", w_in);
  if (!(x_in.dtype() == DType::f32 && h_in.dtype() == DType::bf16 && w_in.dtype() == DType::bf16 &&
        input_dtype == DType::bf16)) {
    Tensor s = add(x_in, h_in);
    return {s, rms_norm(s, w_in, eps, input_dtype)};
  }
  const int64_t C = check_norm_args("add_rms_norm", x_in, w_in, eps);
  if (h_in.shape() != x_in.shape())
    fail("[add_rms_norm] h must have x's shape ", shape_str(x_in.shape()), ", got ", shape_str(h_in.shape()));
  check_same_device("add_rms_norm", x_in, h_in);
  Tensor x = x_in.contiguous(), h = h_in.contiguous(), w = w_in.contiguous();
  const Device dev = x.device();
  Tensor s = Tensor::empty(x.shape(), DType::f32, dev);
  Tensor y = Tensor::empty(x.shape(), DType::bf16, dev);
  Tensor rstd = Tensor::empty(stats_shape(x), DType::f32, dev);
  LMF_DISPATCH(y, rmsnorm_rounded_forward, x, h, w, s, y, rstd, eps);
  Tensor ss = ag::detach(s), ws = ag::detach(w);
  ag::record("add_rms_norm", {x_in, h_in, w_in}, {&s, &y},
             [ss, ws, rstd, C](ag::GradContext& ctx) -> std::vector<Tensor> {
               const Device d = ss.device();
               Tensor ds = detail::grad_as(ctx.grad_output(0), DType::f32);
               Tensor dy = detail::grad_as(ctx.grad_output(1), DType::bf16);
               auto [dx, accumulate] = residual_grad(ctx, ss);
               Tensor dh = ctx.needs_grad(1) ? Tensor::empty(ss.shape(), DType::bf16, d) : Tensor();
               detail::WeightGrad gw = detail::weight_grad(ctx, 2, {C}, ws.dtype(), d);
               LMF_DISPATCH(ss, rmsnorm_rounded_backward, ss, ws, rstd, dy, ds, dx, accumulate, dh, gw.acc);
               return {accumulate ? Tensor() : dx, dh, gw.result};
             });
  return {s, y};
}

}  // namespace lmf::ops
