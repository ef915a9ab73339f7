#include "lmforge/backend/kernels.h"

namespace lmf {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::gelu_erf: return "gelu";
    case Activation::gelu_tanh: return "gelu_new";
    case Activation::silu: return "silu";
    case Activation::relu: return "relu";
    case Activation::softplus: return "softplus";
    case Activation::tanh_act: return "tanh";
  }
  return "?";
}

// HF transformers ACT2FN names (activations.py). "gelu_pytorch_tanh" computes the same formula
// as gelu_new through a torch kernel (PARITY.md §0): both map to gelu_tanh.
Activation parse_activation(const std::string& s) {
  if (s == "gelu" || s == "gelu_erf") return Activation::gelu_erf;
  if (s == "gelu_new" || s == "gelu_pytorch_tanh" || s == "gelu_tanh" || s == "gelu_fast")
    return Activation::gelu_tanh;
  if (s == "silu" || s == "swish") return Activation::silu;
  if (s == "relu") return Activation::relu;
  if (s == "softplus") return Activation::softplus;
  if (s == "tanh") return Activation::tanh_act;
  fail("unknown activation '", s, "': expected gelu, gelu_new, gelu_pytorch_tanh, silu, relu, softplus or tanh");
}

}  // namespace lmf
