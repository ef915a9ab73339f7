#include "lmforge/models/pooling.h"

#include "lmforge/core/error.h"
#include "lmforge/ops/matmul.h"

namespace lmf {

Pooling parse_pooling(const std::string& name, const std::string& field) {
  if (name == "cls") return Pooling::cls;
  if (name == "mean") return Pooling::mean;
  if (name == "last") return Pooling::last;
  fail(field, ": expected one of cls, mean, last, got '", name, "'");
}

const char* pooling_name(Pooling p) {
  switch (p) {
    case Pooling::cls: return "cls";
    case Pooling::mean: return "mean";
    case Pooling::last: return "last";
  }
  return "?";
}

Tensor pool_sequences(const Tensor& h, const std::vector<int32_t>& cu, Pooling pooling) {
  if (!h.defined() || h.dim() != 2) fail("[pooling] expected h [N, H]");
  if (cu.size() < 2 || cu.front() != 0 || cu.back() != h.shape()[0])
    fail("[pooling] cu_seqlens must start at 0 and end at N = ", h.shape()[0]);
  const int64_t S = static_cast<int64_t>(cu.size()) - 1, N = h.shape()[0];
  std::vector<double> p(static_cast<size_t>(S * N), 0.0);
  for (int64_t s = 0; s < S; ++s) {
    const int64_t begin = cu[s], end = cu[s + 1];
    if (end <= begin) fail("[pooling] sequence ", s, " is empty");
    double* row = p.data() + s * N;
    switch (pooling) {
      case Pooling::cls: row[begin] = 1.0; break;
      case Pooling::last: row[end - 1] = 1.0; break;
      case Pooling::mean:
        for (int64_t i = begin; i < end; ++i) row[i] = 1.0 / static_cast<double>(end - begin);
        break;
    }
  }
  Tensor pm;
  if (h.dtype() == DType::f64) {
    pm = Tensor::from_vector(p, {S, N}, h.device());
  } else {
    pm = Tensor::from_floats(std::vector<float>(p.begin(), p.end()), {S, N}, h.dtype(), h.device());
  }
  return ops::matmul(pm, h);
}

}  // namespace lmf
