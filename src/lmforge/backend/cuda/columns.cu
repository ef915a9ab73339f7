// CUDA: column-block copies (kernel_list.inc). Memory-bound: one block per row (grid-stride),
// threads across the row's columns, 16-byte accesses when every offset and row length allows.
// copy_column_pieces does the pieces of a split / concat in one launch, one thread per 16-byte
// unit (or element) of all rows: a Mamba x_proj split of [8192, 48 + 16 + 16] is a few hundred
// KB, so the cost is the launch, not the bytes.
#include <cstdint>

#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

// V = elements per access (1 for the scalar path, 16 / sizeof(T) for uint4 accesses).
template <class T, int V>
__global__ void copy_columns_kernel(const T* __restrict__ src, int64_t Cs, int64_t s0, T* __restrict__ dst,
                                    int64_t Cd, int64_t d0, int64_t ncols, int64_t rows, bool accumulate) {
  const int64_t nvec = ncols / V;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* s = src + r * Cs + s0;
    T* d = dst + r * Cd + d0;
    for (int64_t c = threadIdx.x; c < nvec; c += blockDim.x) {
      if constexpr (V > 1) {
        reinterpret_cast<uint4*>(d)[c] = reinterpret_cast<const uint4*>(s)[c];
      } else {
        d[c] = accumulate ? from_f<T>(to_f(d[c]) + to_f(s[c])) : s[c];
      }
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ---- several pieces in one launch ----------------------------------------------------------------

struct Pieces {
  const void* src[kMaxColumnPieces];
  void* dst[kMaxColumnPieces];
  int64_t src_ld[kMaxColumnPieces], dst_ld[kMaxColumnPieces];  // row lengths, in units of V elements
  int64_t src0[kMaxColumnPieces], dst0[kMaxColumnPieces];      // first column, in units
  int64_t end[kMaxColumnPieces];  // prefix sums of the pieces' widths (units): piece k owns [end[k-1], end[k])
  int count;
};

// One thread per (row, unit) of the pieces laid side by side; U is the unit (uint4: 16 bytes, or
// one element when some offset or width is not a multiple of 16 bytes).
template <class U>
__global__ void copy_pieces_kernel(Pieces p, int64_t rows) {
  const int64_t width = p.end[p.count - 1], total = rows * width;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / width, j = i - r * width;
    int k = 0;
    while (j >= p.end[k]) k++;
    const int64_t c = j - (k > 0 ? p.end[k - 1] : 0);
    static_cast<U*>(p.dst[k])[r * p.dst_ld[k] + p.dst0[k] + c] =
        static_cast<const U*>(p.src[k])[r * p.src_ld[k] + p.src0[k] + c];
  }
}

template <class U>
void launch_pieces(const std::vector<Tensor>& srcs, const std::vector<int64_t>& src_col0,
                   const std::vector<Tensor>& dsts, const std::vector<int64_t>& dst_col0,
                   const std::vector<int64_t>& ncols, int64_t rows, int64_t per_unit) {
  Pieces p{};
  p.count = int(srcs.size());
  int64_t acc = 0;
  for (int k = 0; k < p.count; k++) {
    p.src[k] = srcs[size_t(k)].data_ptr();
    p.dst[k] = dsts[size_t(k)].data_ptr();
    p.src_ld[k] = srcs[size_t(k)].size(-1) / per_unit;
    p.dst_ld[k] = dsts[size_t(k)].size(-1) / per_unit;
    p.src0[k] = src_col0[size_t(k)] / per_unit;
    p.dst0[k] = dst_col0[size_t(k)] / per_unit;
    acc += ncols[size_t(k)] / per_unit;
    p.end[k] = acc;
  }
  copy_pieces_kernel<U><<<blocks_for(rows * acc), 256, 0, current_stream()>>>(p, rows);
  LMF_CUDA_CHECK_LAUNCH();
}

}  // namespace

void copy_columns(const Tensor& src, int64_t src_col0, const Tensor& dst, int64_t dst_col0, int64_t ncols,
                  bool accumulate) {
  if (ncols == 0) return;  // (an empty piece may have an empty last dimension)
  const int64_t Cs = src.size(-1), Cd = dst.size(-1), rows = src.numel() / Cs;
  if (rows == 0) return;
  if (src.dtype() == DType::i32 || src.dtype() == DType::i64)
    fail("copy_columns: integer tensors are not supported on CUDA");
  const int blocks = int(std::min<int64_t>(rows, int64_t(sm_count()) * 16));
  dispatch_floating(src.dtype(), "copy_columns", [&]<class T>() {
    constexpr int V = int(16 / sizeof(T));
    const T* s = ptr<T>(src);
    T* d = ptr<T>(dst);
    const bool vec = !accumulate && Cs % V == 0 && Cd % V == 0 && src_col0 % V == 0 && dst_col0 % V == 0 &&
                     ncols % V == 0 && aligned16(s) && aligned16(d);
    const int threads = int(std::min<int64_t>(256, std::max<int64_t>(32, (vec ? ncols / V : ncols))));
    if (vec)
      copy_columns_kernel<T, V><<<blocks, threads, 0, current_stream()>>>(s, Cs, src_col0, d, Cd, dst_col0, ncols,
                                                                          rows, false);
    else
      copy_columns_kernel<T, 1><<<blocks, threads, 0, current_stream()>>>(s, Cs, src_col0, d, Cd, dst_col0, ncols,
                                                                          rows, accumulate);
    LMF_CUDA_CHECK_LAUNCH();
  });
}

void copy_column_pieces(const std::vector<Tensor>& srcs, const std::vector<int64_t>& src_col0,
                        const std::vector<Tensor>& dsts, const std::vector<int64_t>& dst_col0,
                        const std::vector<int64_t>& ncols) {
  const size_t n = srcs.size();
  if (n == 0) return;
  if (n > size_t(kMaxColumnPieces) || dsts.size() != n || src_col0.size() != n || dst_col0.size() != n ||
      ncols.size() != n)
    fail("copy_column_pieces: expected 1 to ", kMaxColumnPieces, " pieces with one offset and width each");
  // Pieces of zero width take no part (the kernel's piece search assumes widths > 0).
  std::vector<Tensor> s, d;
  std::vector<int64_t> s0, d0, nc;
  bool vec = true;
  const size_t es = dtype_size(srcs[0].dtype());
  const int64_t V = int64_t(16 / es);
  for (size_t k = 0; k < n; k++) {
    if (ncols[k] == 0) continue;
    s.push_back(srcs[k]);
    d.push_back(dsts[k]);
    s0.push_back(src_col0[k]);
    d0.push_back(dst_col0[k]);
    nc.push_back(ncols[k]);
    vec = vec && srcs[k].size(-1) % V == 0 && dsts[k].size(-1) % V == 0 && src_col0[k] % V == 0 &&
          dst_col0[k] % V == 0 && ncols[k] % V == 0 && aligned16(srcs[k].data_ptr()) &&
          aligned16(dsts[k].data_ptr());
  }
  if (s.empty()) return;
  const int64_t rows = s[0].numel() / s[0].size(-1);  // s[0] has a non-empty last dimension
  if (rows == 0) return;
  if (vec) {
    launch_pieces<uint4>(s, s0, d, d0, nc, rows, V);
    return;
  }
  switch (es) {
    case 2: launch_pieces<uint16_t>(s, s0, d, d0, nc, rows, 1); break;
    case 4: launch_pieces<uint32_t>(s, s0, d, d0, nc, rows, 1); break;
    default: launch_pieces<uint64_t>(s, s0, d, d0, nc, rows, 1); break;
  }
}

}  // namespace lmf::cuda
