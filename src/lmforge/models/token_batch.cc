#include "lmforge/models/token_batch.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "lmforge/core/error.h"

namespace lmf {
namespace {

int64_t read_int(const Tensor& t, int64_t i) {
  if (t.dtype() == DType::i64) return t.data<int64_t>()[i];
  return t.data<int32_t>()[i];
}

void check_int_matrix(const Tensor& t, const char* name, const Shape& shape) {
  if (!t.defined()) return;
  if (t.device().is_cuda()) fail("[batch] ", name, ": expected a cpu tensor");
  if (t.dtype() != DType::i64 && t.dtype() != DType::i32)
    fail("[batch] ", name, ": expected i64 or i32, got ", dtype_name(t.dtype()));
  if (t.shape() != shape) fail("[batch] ", name, ": expected shape ", shape_str(shape), ", got ", shape_str(t.shape()));
  if (!t.is_contiguous()) fail("[batch] ", name, ": expected a contiguous tensor");
}

}  // namespace

RaggedBatch unpad(const TokenBatch& batch) {
  const Tensor& ids = batch.input_ids;
  if (!ids.defined() || ids.dim() != 2) fail("[batch] input_ids: expected [B, T]");
  check_int_matrix(ids, "input_ids", ids.shape());
  check_int_matrix(batch.attention_mask, "attention_mask", ids.shape());
  check_int_matrix(batch.token_type_ids, "token_type_ids", ids.shape());
  RaggedBatch r;
  r.batch = ids.shape()[0];
  r.seq_len = ids.shape()[1];
  r.cu_seqlens.assign(1, 0);
  for (int64_t b = 0; b < r.batch; ++b) {
    int64_t rank = 0;
    for (int64_t t = 0; t < r.seq_len; ++t) {
      const int64_t i = b * r.seq_len + t;
      if (batch.attention_mask.defined()) {
        const int64_t m = read_int(batch.attention_mask, i);
        if (m != 0 && m != 1) fail("[batch] attention_mask: expected 0 or 1, got ", m, " at [", b, ", ", t, "]");
        if (m == 0) continue;
      }
      r.ids.push_back(read_int(ids, i));
      r.token_types.push_back(batch.token_type_ids.defined() ? read_int(batch.token_type_ids, i) : 0);
      r.column.push_back(t);
      r.rank.push_back(rank++);
    }
    if (r.ids.size() > static_cast<size_t>(INT32_MAX)) fail("[batch] more than 2^31 tokens in one batch");
    r.cu_seqlens.push_back(static_cast<int32_t>(r.ids.size()));
    r.max_seqlen = std::max(r.max_seqlen, rank);
  }
  return r;
}

Tensor to_index_tensor(const std::vector<int64_t>& v, Device device) {
  Tensor t = Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
  return device.is_cuda() ? t.to(device) : t;
}

Tensor repad(const Tensor& x, const RaggedBatch& r) {
  if (!x.defined() || x.dim() < 1 || x.shape()[0] != r.num_tokens())
    fail("[batch] repad: expected ", r.num_tokens(), " rows");
  Tensor src = x.contiguous().to(Device::cpu());
  Shape out_shape = {r.batch, r.seq_len};
  int64_t row = 1;
  for (int64_t d = 1; d < x.dim(); ++d) {
    out_shape.push_back(x.shape()[d]);
    row *= x.shape()[d];
  }
  Tensor out = Tensor::zeros(out_shape, x.dtype());
  const size_t row_bytes = static_cast<size_t>(row) * dtype_size(x.dtype());
  const auto* s = static_cast<const uint8_t*>(src.data_ptr());
  auto* d = static_cast<uint8_t*>(out.data_ptr());
  for (int64_t b = 0; b < r.batch; ++b)
    for (int64_t i = r.cu_seqlens[b]; i < r.cu_seqlens[b + 1]; ++i)
      std::memcpy(d + (b * r.seq_len + r.column[i]) * row_bytes, s + i * row_bytes, row_bytes);
  return x.device().is_cuda() ? out.to(x.device()) : out;
}

}  // namespace lmf
