#include "lmforge/ops/matmul.h"

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/grad_target.h"

namespace lmf::ops {

namespace ag = autograd;

namespace {

// C = op(A) op(B) (+ beta C) for 2-D or 3-D operands; the shape of C says which.
void gemm(const Tensor& A, bool ta, const Tensor& B, bool tb, const Tensor& C, float beta) {
  if (C.dim() == 3)
    LMF_DISPATCH(C, matmul_batched, A, ta, B, tb, C, 1.f, beta);
  else
    LMF_DISPATCH(C, matmul, A, ta, B, tb, C, 1.f, beta, Tensor());
}

// Rows / columns of op(x) over the last two dims.
int64_t op_rows(const Tensor& x, bool t) { return t ? x.size(-1) : x.size(-2); }
int64_t op_cols(const Tensor& x, bool t) { return t ? x.size(-2) : x.size(-1); }

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in, bool ta, bool tb) {
  const char* op = "matmul";
  check_defined(op, "a", a_in);
  check_defined(op, "b", b_in);
  check_floating(op, "a", a_in);
  check_same_device(op, a_in, b_in);
  if (a_in.dtype() != b_in.dtype())
    fail("[matmul] dtypes differ: a is ", dtype_name(a_in.dtype()), ", b is ", dtype_name(b_in.dtype()));
  if ((a_in.dim() != 2 && a_in.dim() != 3) || b_in.dim() != a_in.dim())
    fail("[matmul] expected two 2-D or two 3-D tensors, got a ", shape_str(a_in.shape()), " and b ",
         shape_str(b_in.shape()));
  const bool batched = a_in.dim() == 3;
  if (batched && a_in.size(0) != b_in.size(0))
    fail("[matmul] batch sizes differ: a ", shape_str(a_in.shape()), ", b ", shape_str(b_in.shape()));
  if (op_cols(a_in, ta) != op_rows(b_in, tb))
    fail("[matmul] inner dimensions differ: op(a) has ", op_cols(a_in, ta), " columns, op(b) has ",
         op_rows(b_in, tb), " rows (a ", shape_str(a_in.shape()), ", b ", shape_str(b_in.shape()),
         ", trans_a ", ta, ", trans_b ", tb, ")");
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Shape out_shape = {op_rows(a, ta), op_cols(b, tb)};
  if (batched) out_shape.insert(out_shape.begin(), a.size(0));
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  gemm(a, ta, b, tb, out, 0.f);

  Tensor as = ag::detach(a), bs = ag::detach(b);
  ag::record("matmul", {a_in, b_in}, {&out}, [as, bs, ta, tb](ag::GradContext& ctx) -> std::vector<Tensor> {
    ag::NoGradGuard ng;
    Tensor g = ctx.grad_output(0).contiguous();
    if (g.dtype() != as.dtype()) {
      Tensor c = Tensor::empty(g.shape(), as.dtype(), g.device());
      LMF_DISPATCH(g, cast, g, c);
      g = c;
    }
    std::vector<Tensor> grads(2);
    // C = op(A) op(B): d op(A) = G op(B)^T, d op(B) = op(A)^T G; a transposed operand's
    // gradient is the transpose of that, written by swapping the GEMM's operands.
    if (ctx.needs_grad(0)) {
      auto t = detail::grad_target(ctx, 0, as.shape(), as.dtype(), as.device());
      if (!ta)
        gemm(g, false, bs, !tb, t.target, t.beta);
      else
        gemm(bs, tb, g, true, t.target, t.beta);
      grads[0] = t.result;
    }
    if (ctx.needs_grad(1)) {
      auto t = detail::grad_target(ctx, 1, bs.shape(), bs.dtype(), bs.device());
      if (!tb)
        gemm(as, !ta, g, false, t.target, t.beta);
      else
        gemm(g, true, as, ta, t.target, t.beta);
      grads[1] = t.result;
    }
    return grads;
  });
  return out;
}

}  // namespace lmf::ops
