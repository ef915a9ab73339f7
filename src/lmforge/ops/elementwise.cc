#include "lmforge/ops/elementwise.h"

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/grad_util.h"

namespace lmf::ops {

namespace ag = autograd;

namespace {
using detail::acc_dtype;
void check_binary(const char* op, const Tensor& a, const Tensor& b) {
  check_defined(op, "a", a);
  check_defined(op, "b", b);
  check_floating(op, "a", a);
  check_same_device(op, a, b);
  check_same_shape(op, a, b);
  if (a.dtype() != b.dtype())
    fail("[", op, "] dtypes differ: ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
}
}  // namespace

Tensor axpby(const Tensor& a_in, const Tensor& b_in, float alpha, float beta) {
  // An f32 stream plus a bf16 / f16 branch is added without casting the branch first.
  const bool mixed = a_in.defined() && b_in.defined() && a_in.dtype() == DType::f32 &&
                     (b_in.dtype() == DType::bf16 || b_in.dtype() == DType::f16);
  if (mixed) {
    check_same_device("add", a_in, b_in);
    check_same_shape("add", a_in, b_in);
  } else {
    check_binary("add", a_in, b_in);
  }
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  LMF_DISPATCH(out, add, a, b, out, alpha, beta);
  const DType b_dtype = b.dtype();
  ag::record("add", {a_in, b_in}, {&out}, [alpha, beta, b_dtype](ag::GradContext& ctx) -> std::vector<Tensor> {
    ag::NoGradGuard ng;
    const Tensor& g = ctx.grad_output(0);
    Tensor ga, gb;
    if (ctx.needs_grad(0)) ga = alpha == 1.f ? g : scale(g, alpha);
    if (ctx.needs_grad(1)) gb = cast(beta == 1.f ? g : scale(g, beta), b_dtype);
    return {ga, gb};
  });
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) { return axpby(a, b, 1.f, 1.f); }
Tensor sub(const Tensor& a, const Tensor& b) { return axpby(a, b, 1.f, -1.f); }

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  check_binary("mul", a_in, b_in);
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  LMF_DISPATCH(out, mul, a, b, out);
  Tensor as = ag::detach(a), bs = ag::detach(b);
  ag::record("mul", {a_in, b_in}, {&out}, [as, bs](ag::GradContext& ctx) -> std::vector<Tensor> {
    ag::NoGradGuard ng;
    const Tensor& g = ctx.grad_output(0);
    return {ctx.needs_grad(0) ? mul(g, bs) : Tensor(), ctx.needs_grad(1) ? mul(g, as) : Tensor()};
  });
  return out;
}

Tensor scale(const Tensor& a_in, float s) {
  check_defined("scale", "a", a_in);
  check_floating("scale", "a", a_in);
  Tensor a = a_in.contiguous();
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  LMF_DISPATCH(out, scale, a, s, out);
  ag::record("scale", {a_in}, {&out}, [s](ag::GradContext& ctx) -> std::vector<Tensor> {
    ag::NoGradGuard ng;
    return {scale(ctx.grad_output(0), s)};
  });
  return out;
}

Tensor add_row_vector(const Tensor& x_in, const Tensor& v) {
  check_defined("add_row_vector", "x", x_in);
  check_floating("add_row_vector", "x", x_in);
  check_dim("add_row_vector", "v", v, 1);
  check_last_dim("add_row_vector", "x", x_in, v.size(0));
  check_same_device("add_row_vector", x_in, v);
  Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  LMF_DISPATCH(out, add_row_vector, x, v.contiguous(), out);
  ag::record("add_row_vector", {x_in, v}, {&out}, [](ag::GradContext& ctx) -> std::vector<Tensor> {
    const Tensor& g = ctx.grad_output(0);
    Tensor gv;
    if (ctx.needs_grad(1)) {
      Tensor slot = ctx.param_grad_slot(1);
      Tensor target = slot.defined() ? slot : Tensor::zeros({g.size(-1)}, acc_dtype(g.dtype()), g.device());
      LMF_DISPATCH(g, sum_rows_acc, g, target);
      if (!slot.defined()) gv = target;
    }
    return {ctx.needs_grad(0) ? g : Tensor(), gv};
  });
  return out;
}

Tensor cast(const Tensor& x_in, DType dtype) {
  check_defined("cast", "x", x_in);
  if (x_in.dtype() == dtype) return x_in;
  Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), dtype, x.device());
  LMF_DISPATCH(out, cast, x, out);
  DType src = x_in.dtype();
  if (is_floating(dtype) && is_floating(src)) {
    const int64_t n = x.numel();
    ag::record("cast", {x_in}, {&out}, [src, n](ag::GradContext& ctx) -> std::vector<Tensor> {
      ag::NoGradGuard ng;
      const Tensor& g = ctx.grad_output(0);
      // A residual stream in fp32 read through a bf16 cast: add the bf16 gradient into the fp32
      // one it already has (one kernel) rather than casting and then adding.
      Tensor acc = ctx.activation_grad_to_add_into(0, src, n);
      if (acc.defined() && is_floating(g.dtype())) {
        LMF_DISPATCH(acc, accumulate, acc, g.contiguous());
        return {Tensor()};
      }
      return {cast(g, src)};
    });
  }
  return out;
}

Tensor sum(const Tensor& x_in) {
  check_defined("sum", "x", x_in);
  check_floating("sum", "x", x_in);
  Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty({1}, acc_dtype(x.dtype()), x.device());
  LMF_DISPATCH(out, sum_all, x, out);
  Shape shape = x.shape();
  DType dt = x.dtype();
  ag::record("sum", {x_in}, {&out}, [shape, dt](ag::GradContext& ctx) -> std::vector<Tensor> {
    // d sum / dx = 1 everywhere, times the upstream scalar (read on the host: one sync per
    // backward of a reduction, which only tests and small losses use).
    double g = ctx.grad_output(0).item();
    return {Tensor::full(shape, g, dt, ctx.grad_output(0).device())};
  });
  return out;
}

Tensor mean(const Tensor& x) {
  if (x.numel() == 0) fail("[mean] empty tensor");
  return scale(sum(x), 1.f / float(x.numel()));
}

Tensor sum_last_dim(const Tensor& x_in) {
  check_defined("sum_last_dim", "x", x_in);
  check_floating("sum_last_dim", "x", x_in);
  Tensor x = x_in.contiguous();
  Shape s = x.shape();
  s.pop_back();
  Tensor out = Tensor::empty(s, acc_dtype(x.dtype()), x.device());
  LMF_DISPATCH(out, sum_last_dim, x, out);
  return out;
}

}  // namespace lmf::ops
