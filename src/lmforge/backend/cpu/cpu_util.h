// Helpers shared by the CPU reference kernels: dtype dispatch and element load/store through
// the accumulation type (float for f32/bf16/f16, double for f64).
#pragma once

#include "lmforge/core/dtype.h"
#include "lmforge/core/error.h"

namespace lmf::cpu {

template <class T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <class T> using acc_t = typename AccOf<T>::type;

template <class T> inline acc_t<T> load(T v) { return acc_t<T>(v); }
template <> inline float load<bf16>(bf16 v) { return bf16_to_float(v); }
template <> inline float load<f16>(f16 v) { return f16_to_float(v); }

template <class T> inline T store(acc_t<T> v) { return T(v); }
template <> inline bf16 store<bf16>(float v) { return float_to_bf16(v); }
template <> inline f16 store<f16>(float v) { return float_to_f16(v); }

// Reads element i of a floating buffer of dtype t as double (slow path for mixed dtypes).
inline double load_any(const void* p, int64_t i, DType t) { return load_element(p, i, t); }
inline void store_any(void* p, int64_t i, DType t, double v) { store_element(p, i, t, v); }

// Calls f.template operator()<T>() with T the C++ type of floating dtype t.
template <class F>
void dispatch_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: f.template operator()<float>(); break;
    case DType::f64: f.template operator()<double>(); break;
    case DType::bf16: f.template operator()<bf16>(); break;
    case DType::f16: f.template operator()<f16>(); break;
    default: fail(op, ": floating dtype expected, got ", dtype_name(t));
  }
}

// Reads an integer id tensor element (i32 or i64) as int64.
inline int64_t load_index(const void* p, int64_t i, DType t) {
  return t == DType::i32 ? static_cast<const int32_t*>(p)[i] : static_cast<const int64_t*>(p)[i];
}

}  // namespace lmf::cpu
