#include "lmforge/ops/check.h"

namespace lmf::ops {

void check_defined(const char* op, const char* arg, const Tensor& t) {
  if (!t.defined()) fail("[", op, "] ", arg, " is undefined");
}
void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (a.device() != b.device())
    fail("[", op, "] tensors on different devices: ", a.device().str(), " and ", b.device().str());
}
void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    fail("[", op, "] shapes differ: ", shape_str(a.shape()), " and ", shape_str(b.shape()));
}
void check_dim(const char* op, const char* arg, const Tensor& t, int dim) {
  if (t.dim() != dim) fail("[", op, "] ", arg, " must have ", dim, " dimension(s), got ", shape_str(t.shape()));
}
void check_last_dim(const char* op, const char* arg, const Tensor& t, int64_t size) {
  if (t.dim() == 0 || t.size(-1) != size)
    fail("[", op, "] ", arg, " last dimension must be ", size, ", got ", shape_str(t.shape()));
}
void check_floating(const char* op, const char* arg, const Tensor& t) {
  if (!is_floating(t.dtype())) fail("[", op, "] ", arg, " must be floating, got ", dtype_name(t.dtype()));
  if (t.dtype() == DType::f64 && !t.device().is_cpu())
    fail("[", op, "] ", arg, ": f64 is supported on cpu only");
}
void check_index_dtype(const char* op, const char* arg, const Tensor& t) {
  if (t.dtype() != DType::i32 && t.dtype() != DType::i64)
    fail("[", op, "] ", arg, " must be i32 or i64, got ", dtype_name(t.dtype()));
}
void check_dtype(const char* op, const char* arg, const Tensor& t, DType d) {
  if (t.dtype() != d) fail("[", op, "] ", arg, " must be ", dtype_name(d), ", got ", dtype_name(t.dtype()));
}

}  // namespace lmf::ops
