// Element types and their host-side conversions.
//
// Contract
//  - DType names every element type a Tensor may hold. f64 exists for the CPU reference and
//    fp64 finite-difference gradient checks only; CUDA kernels never see it.
//  - bf16/f16 are stored as raw uint16 bit patterns (struct bf16 / struct f16). Conversions
//    round to nearest even, as PyTorch does; NaN stays NaN.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#ifdef __CUDACC__
#define LMF_HD __host__ __device__
#else
#define LMF_HD
#endif

namespace lmf {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64, u8 };
inline constexpr int kNumDTypes = 7;

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // "f32", "bf16", ...
// Parses "f32"/"float32", "bf16"/"bfloat16", "f16"/"float16"/"half", "i32"/"int32", ...;
// throws lmf::Error naming the accepted spellings otherwise.
DType parse_dtype(std::string_view s);
inline bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16;
}

struct bf16 {
  uint16_t bits = 0;
};
struct f16 {
  uint16_t bits = 0;
};

LMF_HD inline float bf16_to_float(bf16 h) {
  uint32_t u = uint32_t(h.bits) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
LMF_HD inline bf16 float_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x40)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return bf16{uint16_t(u >> 16)};
}
float f16_to_float(f16 h);
f16 float_to_f16(float f);

// Element i of host memory `p` holding dtype t, read as / written from double (slow, generic
// path for mixed dtypes and conversions).
double load_element(const void* p, int64_t i, DType t);
void store_element(void* p, int64_t i, DType t, double v);

// C++ type -> DType, for typed accessors.
template <class T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<f16> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };

}  // namespace lmf
