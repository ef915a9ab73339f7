#include "lmforge/ops/embedding.h"

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/grad_target.h"

namespace lmf::ops {

namespace ag = autograd;

namespace {
// Host-side range check (cpu tensors); the CUDA gather checks on the device instead.
void check_ids_on_host(const Tensor& ids, int64_t vocab) {
  const void* p = ids.data_ptr();
  for (int64_t i = 0; i < ids.numel(); i++) {
    int64_t id = cpu::load_index(p, i, ids.dtype());
    if (id < 0 || id >= vocab) fail("[embedding] id ", id, " out of range for vocabulary ", vocab);
  }
}
}  // namespace

Tensor embedding(const Tensor& ids_in, const Tensor& table_in, bool ids_checked) {
  const char* op = "embedding";
  check_defined(op, "ids", ids_in);
  check_defined(op, "table", table_in);
  check_index_dtype(op, "ids", ids_in);
  check_dim(op, "table", table_in, 2);
  check_floating(op, "table", table_in);
  check_same_device(op, ids_in, table_in);
  const int64_t vocab = table_in.size(0), hidden = table_in.size(1);
  Tensor ids = ids_in.contiguous().view({ids_in.numel()});
  Tensor table = table_in.contiguous();
  if (ids.device().is_cpu() && !ids_checked) check_ids_on_host(ids, vocab);
  Tensor out2 = Tensor::empty({ids.numel(), hidden}, table.dtype(), table.device());
  // The host check above (or the caller's) makes the device-side check (a sync) unneeded.
  LMF_DISPATCH(out2, embedding_forward, ids, table, out2, !ids_checked && !ids.device().is_cpu());
  Shape out_shape = ids_in.shape();
  out_shape.push_back(hidden);
  Tensor out = out2.view(out_shape);

  Tensor ids_saved = ag::detach(ids);
  Shape table_shape = table.shape();
  DType table_dtype = table.dtype();
  ag::record("embedding", {ids_in, table_in}, {&out},
             [ids_saved, table_shape, table_dtype](ag::GradContext& ctx) -> std::vector<Tensor> {
               ag::NoGradGuard ng;
               if (!ctx.needs_grad(1)) return {Tensor(), Tensor()};
               Tensor g = ctx.grad_output(0).contiguous().view({ids_saved.numel(), table_shape[1]});
               auto t = detail::grad_target(ctx, 1, table_shape, detail::grad_acc_dtype(table_dtype), g.device(),
                                            /*zeroed=*/true);
               LMF_DISPATCH(g, embedding_backward, ids_saved, g, t.target);
               return {Tensor(), t.result};
             });
  return out;
}

}  // namespace lmf::ops
