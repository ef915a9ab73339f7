// CPU reference: column-block copies (kernel_list.inc).
#include <cstring>

#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cpu {

void copy_columns(const Tensor& src, int64_t src_col0, const Tensor& dst, int64_t dst_col0, int64_t ncols,
                  bool accumulate) {
  if (ncols == 0) return;  // (an empty piece may have an empty last dimension)
  const int64_t Cs = src.size(-1), Cd = dst.size(-1), N = src.numel() / Cs;
  const size_t es = dtype_size(src.dtype());
  const char* s = static_cast<const char*>(src.data_ptr());
  char* d = static_cast<char*>(dst.data_ptr());
#pragma omp parallel for if (N * ncols > 65536)
  for (int64_t r = 0; r < N; r++) {
    if (!accumulate) {
      std::memcpy(d + size_t(r * Cd + dst_col0) * es, s + size_t(r * Cs + src_col0) * es, size_t(ncols) * es);
    } else {
      for (int64_t c = 0; c < ncols; c++) {
        int64_t di = r * Cd + dst_col0 + c;
        store_any(d, di, dst.dtype(), load_any(d, di, dst.dtype()) + load_any(s, r * Cs + src_col0 + c, src.dtype()));
      }
    }
  }
}

void copy_column_pieces(const std::vector<Tensor>& srcs, const std::vector<int64_t>& src_col0,
                        const std::vector<Tensor>& dsts, const std::vector<int64_t>& dst_col0,
                        const std::vector<int64_t>& ncols) {
  for (size_t k = 0; k < srcs.size(); k++) copy_columns(srcs[k], src_col0[k], dsts[k], dst_col0[k], ncols[k], false);
}

}  // namespace lmf::cpu
