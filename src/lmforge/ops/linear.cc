#include "lmforge/ops/linear.h"

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/grad_target.h"

namespace lmf::ops {

namespace ag = autograd;

namespace {
void check_args(const Tensor& x, const Tensor& w, const Tensor& b) {
  const char* op = "linear";
  check_defined(op, "x", x);
  check_defined(op, "w", w);
  check_floating(op, "x", x);
  check_same_device(op, x, w);
  check_dim(op, "w", w, 2);
  if (x.dim() < 1) fail("[linear] x must have at least 1 dimension, got a scalar");
  if (x.size(-1) != w.size(1))
    fail("[linear] x last dimension must be ", w.size(1), " (w is ", shape_str(w.shape()), "), got x ",
         shape_str(x.shape()));
  if (x.dtype() != w.dtype())
    fail("[linear] w dtype must equal x dtype ", dtype_name(x.dtype()), ", got ", dtype_name(w.dtype()));
  if (b.defined()) {
    check_same_device(op, x, b);
    check_dim(op, "b", b, 1);
    if (b.size(0) != w.size(0))
      fail("[linear] b must have ", w.size(0), " elements (w is ", shape_str(w.shape()), "), got ",
           shape_str(b.shape()));
    if (b.dtype() != x.dtype() && b.dtype() != DType::f32)
      fail("[linear] b dtype must be ", dtype_name(x.dtype()), x.dtype() == DType::f32 ? "" : " or f32", ", got ",
           dtype_name(b.dtype()));
  }
}
}  // namespace

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  check_args(x_in, w_in, b_in);
  const int64_t in = w_in.size(1), out_features = w_in.size(0);
  int64_t rows = 1;
  for (int d = 0; d + 1 < x_in.dim(); d++) rows *= x_in.size(d);
  Tensor x2 = x_in.contiguous().view({rows, in});
  Tensor w = w_in.contiguous();
  Tensor b = b_in.defined() ? b_in.contiguous() : Tensor();
  Tensor y2 = Tensor::empty({rows, out_features}, x2.dtype(), x2.device());
  LMF_DISPATCH(y2, matmul, x2, false, w, true, y2, 1.f, 0.f, b);
  Shape y_shape = x_in.shape();
  y_shape.back() = out_features;
  Tensor y = y2.view(y_shape);

  Tensor xs = ag::detach(x2), ws = ag::detach(w);
  Shape x_shape = x_in.shape();
  const bool has_bias = b.defined();
  ag::record("linear", {x_in, w_in, b_in}, {&y},
             [xs, ws, x_shape, has_bias](ag::GradContext& ctx) -> std::vector<Tensor> {
               ag::NoGradGuard ng;
               const int64_t n = xs.size(0), o = ws.size(0);
               Tensor g = ctx.grad_output(0).contiguous().view({n, o});
               if (g.dtype() != xs.dtype()) {
                 Tensor c = Tensor::empty(g.shape(), xs.dtype(), g.device());
                 LMF_DISPATCH(g, cast, g, c);
                 g = c;
               }
               std::vector<Tensor> grads(3);
               if (ctx.needs_grad(0)) {  // dx = dy W: assigned, or added into x's gradient so far
                 Tensor acc = ctx.activation_grad_to_add_into(0, xs.dtype(), n * ws.size(1));
                 Tensor dx = acc.defined() ? acc.view({n, ws.size(1)})
                                           : Tensor::empty({n, ws.size(1)}, xs.dtype(), xs.device());
                 LMF_DISPATCH(g, matmul, g, false, ws, false, dx, 1.f, acc.defined() ? 1.f : 0.f, Tensor());
                 if (!acc.defined()) grads[0] = dx.view(x_shape);
               }
               const DType acc = detail::grad_acc_dtype(xs.dtype());
               if (ctx.needs_grad(1)) {  // dW (+)= dy^T x, fp32 output from bf16 operands
                 auto t = detail::grad_target(ctx, 1, ws.shape(), acc, ws.device());
                 LMF_DISPATCH(g, matmul, g, true, xs, false, t.target, 1.f, t.beta, Tensor());
                 grads[1] = t.result;
               }
               if (has_bias && ctx.needs_grad(2)) {  // db += sum over rows of dy
                 auto t = detail::grad_target(ctx, 2, {o}, acc, ws.device(), /*zeroed=*/true);
                 LMF_DISPATCH(g, sum_rows_acc, g, t.target);
                 grads[2] = t.result;
               }
               return grads;
             });
  return y;
}

}  // namespace lmf::ops
