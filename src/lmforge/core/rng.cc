#include "lmforge/core/rng.h"

#include "lmforge/core/philox.h"

namespace lmf {

namespace {
template <class F>
void fill_with(const Tensor& t, F value_of) {
  if (!t.device().is_cpu() || !t.is_contiguous() || !is_floating(t.dtype()))
    fail("rng fill: needs a contiguous floating cpu tensor, got ", t.str());
  const int64_t n = t.numel();
  void* p = t.data_ptr();
  switch (t.dtype()) {
    case DType::f32: for (int64_t i = 0; i < n; i++) static_cast<float*>(p)[i] = value_of(i); break;
    case DType::f64: for (int64_t i = 0; i < n; i++) static_cast<double*>(p)[i] = value_of(i); break;
    case DType::bf16: for (int64_t i = 0; i < n; i++) static_cast<bf16*>(p)[i] = float_to_bf16(value_of(i)); break;
    case DType::f16: for (int64_t i = 0; i < n; i++) static_cast<f16*>(p)[i] = float_to_f16(value_of(i)); break;
    default: break;
  }
}
}  // namespace

void fill_uniform_cpu(const Tensor& t, uint64_t seed, uint64_t offset, float lo, float hi) {
  fill_with(t, [&](int64_t i) { return lo + (hi - lo) * philox_uniform(seed, offset, uint64_t(i)); });
}

void fill_normal_cpu(const Tensor& t, uint64_t seed, uint64_t offset, float mean, float std) {
  fill_with(t, [&](int64_t i) { return mean + std * philox_normal(seed, offset, uint64_t(i)); });
}

Tensor rand_uniform(const Shape& shape, DType dtype, Generator& gen, float lo, float hi, Device device) {
  Tensor t = Tensor::empty(shape, dtype);
  fill_uniform_cpu(t, gen.seed, gen.next_offset(), lo, hi);
  return t.to(device);
}

Tensor rand_normal(const Shape& shape, DType dtype, Generator& gen, float mean, float std, Device device) {
  Tensor t = Tensor::empty(shape, dtype);
  fill_normal_cpu(t, gen.seed, gen.next_offset(), mean, std);
  return t.to(device);
}

}  // namespace lmf
