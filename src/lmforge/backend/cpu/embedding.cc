// CPU reference: embedding gather and its scatter-add gradient (see backend/kernel_list.inc).
#include <cstring>

#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cpu {

void embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out, bool check) {
  const int64_t N = ids.numel(), H = table.size(1);
  if (check)
    for (int64_t n = 0; n < N; n++) {
      const int64_t id = load_index(ids.data_ptr(), n, ids.dtype());
      if (id < 0 || id >= table.size(0)) fail("[embedding] id ", id, " out of range for vocabulary ", table.size(0));
    }
  const size_t row_bytes = size_t(H) * dtype_size(table.dtype());
  const char* src = static_cast<const char*>(table.data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());
  const void* pid = ids.data_ptr();
#pragma omp parallel for if (N * H > 65536)
  for (int64_t n = 0; n < N; n++)
    std::memcpy(dst + size_t(n) * row_bytes, src + size_t(load_index(pid, n, ids.dtype())) * row_bytes,
                row_bytes);
}

namespace {
template <class Acc>
void scatter_add(const Tensor& ids, const Tensor& dout, Acc* acc) {
  const int64_t N = ids.numel(), H = dout.size(-1);
  const void* pid = ids.data_ptr();
  dispatch_floating(dout.dtype(), "embedding_backward", [&]<class T>() {
    const T* g = dout.data<T>();
    // Parallel over column blocks, rows in order inside each: repeated ids sum in the same
    // order every run (deterministic), and no two threads touch the same element.
    constexpr int64_t kCols = 64;
#pragma omp parallel for if (N * H > 65536)
    for (int64_t c0 = 0; c0 < H; c0 += kCols) {
      const int64_t c1 = c0 + kCols < H ? c0 + kCols : H;
      for (int64_t n = 0; n < N; n++) {
        Acc* row = acc + load_index(pid, n, ids.dtype()) * H;
        const T* grow = g + n * H;
        for (int64_t c = c0; c < c1; c++) row[c] += Acc(load(grow[c]));
      }
    }
  });
}
}  // namespace

void embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dtable_acc) {
  if (dtable_acc.dtype() == DType::f64)
    scatter_add(ids, dout, dtable_acc.data<double>());
  else
    scatter_add(ids, dout, dtable_acc.data<float>());
}

}  // namespace lmf::cpu
