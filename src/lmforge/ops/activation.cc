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

Tensor gated_activation(const Tensor& x_in, Activation act) {
  check_defined("gated_activation", "x", x_in);
  check_floating("gated_activation", "x", x_in);
  if (x_in.dim() == 0 || x_in.size(-1) % 2 != 0)
    fail("[gated_activation] x needs an even last dimension (input and gate halves), got ", shape_str(x_in.shape()));
  Tensor x = x_in.contiguous();
  Shape y_shape = x.shape();
  y_shape.back() /= 2;
  Tensor y = Tensor::empty(y_shape, x.dtype(), x.device());
  LMF_DISPATCH(y, gated_activation_forward, act, x, y);
  Tensor xs = ag::detach(x);
  ag::record("gated_activation", {x_in}, {&y},
             [xs, act](ag::GradContext& ctx) -> std::vector<Tensor> {
               Tensor dy = detail::grad_as(ctx.grad_output(0), xs.dtype()).contiguous();
               Tensor dx = Tensor::empty(xs.shape(), xs.dtype(), xs.device());
               LMF_DISPATCH(dx, gated_activation_backward, act, xs, dy, dx);
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
