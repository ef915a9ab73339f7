#include "lmforge/ops/mask.h"

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/backend/mask_kernels.h"
#include "lmforge/ops/check.h"

namespace lmf::ops {

namespace ag = autograd;

namespace {
Tensor mul_rows_no_grad(const Tensor& x, const Tensor& mask) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  LMF_DISPATCH(out, mul_rows, x, mask, out);
  return out;
}
}  // namespace

Tensor mul_rows(const Tensor& x_in, const Tensor& mask_in) {
  const char* op = "mul_rows";
  check_defined(op, "x", x_in);
  check_defined(op, "mask", mask_in);
  check_floating(op, "x", x_in);
  check_dtype(op, "mask", mask_in, DType::f32);
  check_same_device(op, x_in, mask_in);
  if (x_in.dim() < 1) fail("[", op, "] x must have at least 1 dimension, got ", shape_str(x_in.shape()));
  Shape rows = x_in.shape();
  rows.pop_back();
  if (mask_in.shape() != rows)
    fail("[", op, "] mask must be ", shape_str(rows), " (x ", shape_str(x_in.shape()), " without its last dim), got ",
         shape_str(mask_in.shape()));
  Tensor x = x_in.contiguous(), mask = ag::detach(mask_in.contiguous());
  Tensor out = mul_rows_no_grad(x, mask);
  ag::record(op, {x_in}, {&out}, [mask](ag::GradContext& ctx) -> std::vector<Tensor> {
    if (!ctx.needs_grad(0)) return {Tensor()};
    ag::NoGradGuard ng;
    return {mul_rows_no_grad(ctx.grad_output(0).contiguous(), mask)};
  });
  return out;
}

}  // namespace lmf::ops
