// CUDA activations (contracts in backend/kernel_list.inc). The math is shared with the CPU
// reference through backend/activation_math.h; here it runs in fp32 over 16-byte packs.
#include "lmforge/backend/activation_math.h"
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {
template <Activation A>
struct ActForward {
  __device__ float operator()(float x) const { return actmath::forward<A>(x); }
};
template <Activation A>
struct ActBackward {  // (x, dy) -> dy * act'(x)
  __device__ float operator()(float x, float dy) const { return dy * actmath::derivative<A>(x); }
};
}  // namespace

void activation_forward(Activation act, const Tensor& x, const Tensor& y) {
  dispatch_floating(x.dtype(), "activation_forward", [&]<class T>() {
    actmath::dispatch_activation(act, [&]<Activation A>() {
      launch_unary_map(ptr<T>(x), ptr<T>(y), x.numel(), ActForward<A>{});
    });
  });
}

void activation_backward(Activation act, const Tensor& x, const Tensor& dy, const Tensor& dx) {
  dispatch_floating(x.dtype(), "activation_backward", [&]<class T>() {
    actmath::dispatch_activation(act, [&]<Activation A>() {
      launch_binary_map(ptr<T>(x), ptr<T>(dy), ptr<T>(dx), x.numel(), ActBackward<A>{});
    });
  });
}

}  // namespace lmf::cuda
