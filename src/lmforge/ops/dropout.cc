#include "lmforge/ops/dropout.h"

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/grad_util.h"

namespace lmf::ops {

namespace ag = autograd;

Tensor dropout(const Tensor& x_in, float p, Generator& gen, bool training) {
  check_defined("dropout", "x", x_in);
  check_floating("dropout", "x", x_in);
  if (!(p >= 0.f && p < 1.f)) fail("[dropout] p must be in [0, 1), got ", p);
  if (!training || p == 0.f) return x_in;
  const uint64_t seed = gen.seed, offset = gen.next_offset();
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  LMF_DISPATCH(y, dropout_forward, x, y, p, seed, offset);
  const DType dt = x.dtype();
  ag::record("dropout", {x_in}, {&y}, [p, seed, offset, dt](ag::GradContext& ctx) -> std::vector<Tensor> {
    Tensor dy = detail::grad_as(ctx.grad_output(0), dt);
    Tensor dx = Tensor::empty(dy.shape(), dt, dy.device());
    LMF_DISPATCH(dx, dropout_backward, dy, dx, p, seed, offset);
    return {dx};
  });
  return y;
}

}  // namespace lmf::ops
