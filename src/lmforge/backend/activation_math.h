// The activation functions and their derivatives, written once for both backends: host code
// (backend/cpu, in float or double) and device code (backend/cuda, in float) include this.
// Formulas follow HF transformers activations.py and PyTorch (PARITY.md §0).
#pragma once

#include <math.h>

#include "lmforge/backend/kernels.h"
#include "lmforge/core/dtype.h"  // LMF_HD

namespace lmf::actmath {

// Overloads that pick the float or double libm / CUDA math function by argument type.
LMF_HD inline float m_erf(float x) { return erff(x); }
LMF_HD inline double m_erf(double x) { return erf(x); }
LMF_HD inline float m_tanh(float x) { return tanhf(x); }
LMF_HD inline double m_tanh(double x) { return tanh(x); }
LMF_HD inline float m_exp(float x) { return expf(x); }
LMF_HD inline double m_exp(double x) { return exp(x); }
LMF_HD inline float m_log1p(float x) { return log1pf(x); }
LMF_HD inline double m_log1p(double x) { return log1p(x); }

template <class A> LMF_HD inline A sigmoid(A x) { return A(1) / (A(1) + m_exp(-x)); }

// sqrt(2/pi) and 1/sqrt(2), 1/sqrt(2 pi), written out to double precision.
template <class A> LMF_HD constexpr A kSqrt2OverPi() { return A(0.7978845608028654); }
template <class A> LMF_HD constexpr A kInvSqrt2() { return A(0.7071067811865476); }
template <class A> LMF_HD constexpr A kInvSqrt2Pi() { return A(0.3989422804014327); }
// F.softplus default threshold: above it softplus(x) is x itself (PARITY.md §0, Mamba dt).
template <class A> LMF_HD constexpr A kSoftplusThreshold() { return A(20); }

// act(x). A is float or double.
template <Activation act, class A>
LMF_HD inline A forward(A x) {
  if constexpr (act == Activation::gelu_erf) {
    // GELUActivation: 0.5 x (1 + erf(x / sqrt 2)).
    return A(0.5) * x * (A(1) + m_erf(x * kInvSqrt2<A>()));
  } else if constexpr (act == Activation::gelu_tanh) {
    // NewGELUActivation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    return A(0.5) * x * (A(1) + m_tanh(kSqrt2OverPi<A>() * (x + A(0.044715) * x * x * x)));
  } else if constexpr (act == Activation::silu) {
    return x * sigmoid(x);
  } else if constexpr (act == Activation::relu) {
    return x > A(0) ? x : A(0);
  } else if constexpr (act == Activation::softplus) {
    return x > kSoftplusThreshold<A>() ? x : m_log1p(m_exp(x));
  } else {
    return m_tanh(x);
  }
}

// d act / dx at x.
template <Activation act, class A>
LMF_HD inline A derivative(A x) {
  if constexpr (act == Activation::gelu_erf) {
    // Phi(x) + x phi(x).
    return A(0.5) * (A(1) + m_erf(x * kInvSqrt2<A>())) + x * kInvSqrt2Pi<A>() * m_exp(A(-0.5) * x * x);
  } else if constexpr (act == Activation::gelu_tanh) {
    const A k = kSqrt2OverPi<A>();
    const A t = m_tanh(k * (x + A(0.044715) * x * x * x));
    return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * k * (A(1) + A(3 * 0.044715) * x * x);
  } else if constexpr (act == Activation::silu) {
    const A s = sigmoid(x);
    return s * (A(1) + x * (A(1) - s));
  } else if constexpr (act == Activation::relu) {
    return x > A(0) ? A(1) : A(0);
  } else if constexpr (act == Activation::softplus) {
    // PyTorch softplus_backward: 1 above the threshold, sigmoid(x) below.
    return x > kSoftplusThreshold<A>() ? A(1) : sigmoid(x);
  } else {
    const A t = m_tanh(x);
    return A(1) - t * t;
  }
}

// Calls f.template operator()<act>() for the runtime activation `a`.
template <class F>
void dispatch_activation(Activation a, F&& f) {
  switch (a) {
    case Activation::gelu_erf: f.template operator()<Activation::gelu_erf>(); break;
    case Activation::gelu_tanh: f.template operator()<Activation::gelu_tanh>(); break;
    case Activation::silu: f.template operator()<Activation::silu>(); break;
    case Activation::relu: f.template operator()<Activation::relu>(); break;
    case Activation::softplus: f.template operator()<Activation::softplus>(); break;
    case Activation::tanh_act: f.template operator()<Activation::tanh_act>(); break;
  }
}

}  // namespace lmf::actmath
