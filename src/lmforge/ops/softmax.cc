#include "lmforge/ops/softmax.h"

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/grad_util.h"

namespace lmf::ops {

namespace ag = autograd;

Tensor softmax(const Tensor& x_in) {
  check_defined("softmax", "x", x_in);
  check_floating("softmax", "x", x_in);
  if (x_in.dim() == 0) fail("[softmax] x must have at least 1 dimension, got a scalar");
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  LMF_DISPATCH(y, softmax_forward, x, y);
  Tensor ys = ag::detach(y);
  ag::record("softmax", {x_in}, {&y}, [ys](ag::GradContext& ctx) -> std::vector<Tensor> {
    Tensor dy = detail::grad_as(ctx.grad_output(0), ys.dtype());
    Tensor dx = Tensor::empty(ys.shape(), ys.dtype(), ys.device());
    LMF_DISPATCH(dx, softmax_backward, ys, dy, dx);
    return {dx};
  });
  return y;
}

}  // namespace lmf::ops
