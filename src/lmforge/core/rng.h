// Host-side random fills built on the Philox stream (core/philox.h), and the Generator that
// hands out (seed, offset) pairs so consecutive draws never reuse a stream.
#pragma once

#include <cstdint>

#include "lmforge/core/tensor.h"

namespace lmf {

// A seed plus a running offset. Each draw takes the next offset; saving (seed, offset) in a
// checkpoint and restoring it reproduces every later draw exactly.
struct Generator {
  uint64_t seed = 0;
  uint64_t offset = 0;
  uint64_t next_offset() { return offset++; }
};

// Fills contiguous floating tensor t (cpu) with U[lo, hi) / N(mean, std) from stream
// (seed, offset). Values are computed in fp32 then converted to t's dtype.
void fill_uniform_cpu(const Tensor& t, uint64_t seed, uint64_t offset, float lo, float hi);
void fill_normal_cpu(const Tensor& t, uint64_t seed, uint64_t offset, float mean, float std);

// Convenience: a new tensor on `device`, filled on the host then copied.
Tensor rand_uniform(const Shape& shape, DType dtype, Generator& gen, float lo = 0.f, float hi = 1.f,
                    Device device = Device::cpu());
Tensor rand_normal(const Shape& shape, DType dtype, Generator& gen, float mean = 0.f, float std = 1.f,
                   Device device = Device::cpu());

}  // namespace lmf
