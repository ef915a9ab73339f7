#include "lmforge/ops/gather_rows.h"

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/grad_target.h"

namespace lmf::ops {

namespace ag = autograd;

Tensor gather_rows(const Tensor& x_in, const Tensor& idx_in) {
  const char* op = "gather_rows";
  check_defined(op, "x", x_in);
  check_defined(op, "idx", idx_in);
  check_dim(op, "x", x_in, 2);
  check_floating(op, "x", x_in);
  check_index_dtype(op, "idx", idx_in);
  check_dim(op, "idx", idx_in, 1);
  check_same_device(op, x_in, idx_in);
  const int64_t N = x_in.size(0), H = x_in.size(1);
  Tensor idx = idx_in.contiguous();
  if (idx.device().is_cpu())
    for (int64_t i = 0; i < idx.numel(); i++) {
      const int64_t r = cpu::load_index(idx.data_ptr(), i, idx.dtype());
      if (r < 0 || r >= N)
        fail("[gather_rows] idx[", i, "] = ", r, " is out of range for x with ", N, " rows");
    }
  Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty({idx.numel(), H}, x.dtype(), x.device());
  if (idx.numel() > 0) {
    // The embedding gather is exactly this with x as the table (its error names the op).
    try {
      LMF_DISPATCH(out, embedding_forward, idx, x, out, !idx.device().is_cpu());
    } catch (const Error& e) {
      fail("[gather_rows] ", e.what());
    }
  }
  Tensor idx_saved = ag::detach(idx);
  const Shape x_shape = x.shape();
  const DType x_dtype = x.dtype();
  ag::record(op, {x_in, idx_in}, {&out},
             [idx_saved, x_shape, x_dtype](ag::GradContext& ctx) -> std::vector<Tensor> {
               ag::NoGradGuard ng;
               if (!ctx.needs_grad(0)) return {Tensor(), Tensor()};
               const Tensor& g = ctx.grad_output(0);
               const DType acc = detail::grad_acc_dtype(x_dtype);
               Tensor dx_acc = Tensor::zeros(x_shape, acc, g.device());
               if (idx_saved.numel() > 0)
                 LMF_DISPATCH(g, embedding_backward, idx_saved, g.contiguous(), dx_acc);
               if (acc == x_dtype) return {dx_acc, Tensor()};
               Tensor dx = Tensor::empty(x_shape, x_dtype, g.device());
               LMF_DISPATCH(dx, cast, dx_acc, dx);
               return {dx, Tensor()};
             });
  return out;
}

}  // namespace lmf::ops
