#include "lmforge/ops/activation.h"

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/grad_util.h"

namespace lmf::ops {

namespace ag = autograd;

Tensor activation(const Tensor& x_in, Activation act) {
  check_defined("activation", "x", x_in);
  check_floating("activation", "x", x_in);
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  LMF_DISPATCH(y, activation_forward, act, x, y);
  Tensor xs = ag::detach(x);
  ag::record(activation_name(act), {x_in}, {&y}, [xs, act](ag::GradContext& ctx) -> std::vector<Tensor> {
    Tensor dy = detail::grad_as(ctx.grad_output(0), xs.dtype());
    Tensor dx = Tensor::empty(xs.shape(), xs.dtype(), xs.device());
    LMF_DISPATCH(dx, activation_backward, act, xs, dy, dx);
    return {dx};
  });
  return y;
}

Tensor gelu(const Tensor& x, bool approximate_tanh) {
  return activation(x, approximate_tanh ? Activation::gelu_tanh : Activation::gelu_erf);
}
Tensor silu(const Tensor& x) { return activation(x, Activation::silu); }
Tensor softplus(const Tensor& x) { return activation(x, Activation::softplus); }

}  // namespace lmf::ops
