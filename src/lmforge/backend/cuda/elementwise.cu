// CUDA element-wise kernels (contracts in backend/kernel_list.inc; the CPU reference is
// backend/cpu/elementwise.cc). Grid-stride loops with 16-byte packs where pointers allow,
// fp32 arithmetic for every storage type.
#include <type_traits>

#include "lmforge/backend/cuda/column_reduce.cuh"
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

// ---- functors for the maps ----------------------------------------------------------------------
struct AxpbyOp {
  float alpha, beta;
  __device__ float operator()(float a, float b) const { return alpha * a + beta * b; }
};
struct MulOp {
  __device__ float operator()(float a, float b) const { return a * b; }
};
struct ScaleOp {
  float s;
  __device__ float operator()(float a) const { return s * a; }
};

// ---- dtype conversion ------------------------------------------------------------------------
template <class T>
constexpr bool is_float_v = std::is_same_v<T, float> || std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>;

// One element S -> D with the CPU reference's rules: floats round to nearest, float -> int
// truncates toward zero (C conversion), int -> int is a C conversion.
template <class D, class S>
__device__ __forceinline__ D convert_elem(S s) {
  if constexpr (std::is_same_v<D, S>) {
    return s;
  } else if constexpr (is_float_v<S> && is_float_v<D>) {
    return from_f<D>(to_f(s));
  } else if constexpr (is_float_v<S>) {
    return D(to_f(s));
  } else if constexpr (is_float_v<D>) {
    return from_f<D>(float(s));
  } else {
    return D(s);
  }
}

// dst[i] = convert(src[i]), or dst[i] += src[i] when ACC (floating dtypes only).
template <class D, class S, int VEC, bool ACC>
__global__ void convert_kernel(const S* src, D* dst, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t npk = n / VEC;
  for (int64_t p = tid; p < npk; p += stride) {
    Pack<S, VEC> s = *reinterpret_cast<const Pack<S, VEC>*>(src + p * VEC);
    Pack<D, VEC> d;
    if constexpr (ACC) d = *reinterpret_cast<const Pack<D, VEC>*>(dst + p * VEC);
#pragma unroll
    for (int k = 0; k < VEC; k++) {
      if constexpr (ACC) {
        d.v[k] = from_f<D>(to_f(d.v[k]) + to_f(s.v[k]));
      } else {
        d.v[k] = convert_elem<D>(s.v[k]);
      }
    }
    *reinterpret_cast<Pack<D, VEC>*>(dst + p * VEC) = d;
  }
  for (int64_t i = npk * VEC + tid; i < n; i += stride) {
    if constexpr (ACC) {
      dst[i] = from_f<D>(to_f(dst[i]) + to_f(src[i]));
    } else {
      dst[i] = convert_elem<D>(src[i]);
    }
  }
}

template <class D, class S, bool ACC>
void launch_convert(const void* src, void* dst, int64_t n) {
  if (n == 0) return;
  const S* s = static_cast<const S*>(src);
  D* d = static_cast<D*>(dst);
  if (pack_aligned<S, 4>(s) && pack_aligned<D, 4>(d)) {
    convert_kernel<D, S, 4, ACC><<<blocks_for((n + 3) / 4), 256, 0, current_stream()>>>(s, d, n);
  } else {
    convert_kernel<D, S, 1, ACC><<<blocks_for(n), 256, 0, current_stream()>>>(s, d, n);
  }
  LMF_CUDA_CHECK_LAUNCH();
}

// Calls f.template operator()<T>() for every dtype the CUDA backend stores (all but f64).
template <class F>
void dispatch_any(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: f.template operator()<float>(); break;
    case DType::bf16: f.template operator()<__nv_bfloat16>(); break;
    case DType::f16: f.template operator()<__half>(); break;
    case DType::i32: f.template operator()<int32_t>(); break;
    case DType::i64: f.template operator()<int64_t>(); break;
    case DType::u8: f.template operator()<uint8_t>(); break;
    default: fail(op, ": CUDA tensors cannot be ", dtype_name(t));
  }
}

template <class T>
__global__ void fill_kernel(T* dst, int64_t n, T value) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = value;
}

// The fill value in T, converted like the CPU reference (floats through fp32).
template <class T>
T host_value(double v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16(float(v));
  } else if constexpr (std::is_same_v<T, __half>) {
    return __float2half(float(v));
  } else {
    return T(v);
  }
}

// out[r, c] = x[r, c] + v[c]; VEC divides C so a pack never straddles rows.
template <class T, class V, int VEC>
__global__ void add_row_vector_kernel(const T* x, const V* v, T* out, int64_t n, int64_t C) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < n / VEC; p += stride) {
    const int64_t c0 = (p * VEC) % C;
    float u[VEC];
    load_pack<VEC>(x, p * VEC, u);
#pragma unroll
    for (int k = 0; k < VEC; k++) u[k] += to_f(v[c0 + k]);
    store_pack<VEC>(out, p * VEC, u);
  }
}

template <class S>
struct LoadElem {
  const S* p;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, float (&out)[1]) const { out[0] = to_f(p[r * C + c]); }
};

}  // namespace

void add(const Tensor& a, const Tensor& b, const Tensor& out, float alpha, float beta) {
  if (b.dtype() != out.dtype()) {  // f32 a / out with a bf16 / f16 b
    if (out.dtype() != DType::f32) fail("add: CUDA mixes dtypes only into f32, got ", dtype_name(out.dtype()));
    dispatch_floating(b.dtype(), "add", [&]<class U>() {
      launch_binary_map(ptr<float>(a), ptr<U>(b), ptr<float>(out), out.numel(), AxpbyOp{alpha, beta});
    });
    return;
  }
  dispatch_floating(out.dtype(), "add", [&]<class T>() {
    launch_binary_map(ptr<T>(a), ptr<T>(b), ptr<T>(out), out.numel(), AxpbyOp{alpha, beta});
  });
}

void mul(const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_floating(out.dtype(), "mul", [&]<class T>() {
    launch_binary_map(ptr<T>(a), ptr<T>(b), ptr<T>(out), out.numel(), MulOp{});
  });
}

void scale(const Tensor& a, float s, const Tensor& out) {
  dispatch_floating(out.dtype(), "scale", [&]<class T>() {
    launch_unary_map(ptr<T>(a), ptr<T>(out), out.numel(), ScaleOp{s});
  });
}

void accumulate(const Tensor& dst, const Tensor& src) {
  dispatch_floating(dst.dtype(), "accumulate", [&]<class D>() {
    dispatch_floating(src.dtype(), "accumulate", [&]<class S>() {
      launch_convert<D, S, true>(src.data_ptr(), dst.data_ptr(), dst.numel());
    });
  });
}

void cast(const Tensor& src, const Tensor& dst) {
  dispatch_any(dst.dtype(), "cast", [&]<class D>() {
    dispatch_any(src.dtype(), "cast", [&]<class S>() {
      launch_convert<D, S, false>(src.data_ptr(), dst.data_ptr(), dst.numel());
    });
  });
}

void fill(const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  dispatch_any(dst.dtype(), "fill", [&]<class T>() {
    fill_kernel<T><<<blocks_for(n), 256, 0, current_stream()>>>(ptr<T>(dst), n, host_value<T>(value));
    LMF_CUDA_CHECK_LAUNCH();
  });
}

void add_row_vector(const Tensor& x, const Tensor& v, const Tensor& out) {
  const int64_t n = x.numel(), C = x.size(-1);
  if (n == 0) return;
  dispatch_floating(x.dtype(), "add_row_vector", [&]<class T>() {
    dispatch_floating(v.dtype(), "add_row_vector", [&]<class V>() {
      constexpr int P = pack_size<T>();
      const T* px = ptr<T>(x);
      T* po = ptr<T>(out);
      if (C % P == 0 && pack_aligned<T, P>(px) && pack_aligned<T, P>(po)) {
        add_row_vector_kernel<T, V, P><<<blocks_for(n / P), 256, 0, current_stream()>>>(px, ptr<V>(v), po, n, C);
      } else {
        add_row_vector_kernel<T, V, 1><<<blocks_for(n), 256, 0, current_stream()>>>(px, ptr<V>(v), po, n, C);
      }
      LMF_CUDA_CHECK_LAUNCH();
    });
  });
}

void sum_rows_acc(const Tensor& dy, const Tensor& dv_acc) {
  if (dv_acc.dtype() != DType::f32)
    fail("sum_rows_acc: CUDA accumulates into f32, got ", dtype_name(dv_acc.dtype()));
  const int64_t C = dy.size(-1), N = C == 0 ? 0 : dy.numel() / C;
  dispatch_floating(dy.dtype(), "sum_rows_acc", [&]<class S>() {
    column_reduce_acc<1>(N, C, LoadElem<S>{ptr<S>(dy), C}, ColumnTargets<1>{{ptr<float>(dv_acc)}},
                         dy.device());
  });
}

}  // namespace lmf::cuda
