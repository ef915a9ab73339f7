// Argument validation shared by the ops: every message starts with "[op] ", names the
// argument and says what was expected (MLX's habit).
#pragma once

#include <string>

#include "lmforge/core/tensor.h"

namespace lmf::ops {

void check_defined(const char* op, const char* arg, const Tensor& t);
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_same_shape(const char* op, const Tensor& a, const Tensor& b);
void check_dim(const char* op, const char* arg, const Tensor& t, int dim);
void check_last_dim(const char* op, const char* arg, const Tensor& t, int64_t size);
void check_floating(const char* op, const char* arg, const Tensor& t);
void check_index_dtype(const char* op, const char* arg, const Tensor& t);  // i32 / i64
void check_dtype(const char* op, const char* arg, const Tensor& t, DType d);

}  // namespace lmf::ops
