// Launches of the row walkers (selective_scan_rows.cuh): the choice of the implementation and of
// the lanes per channel G, and the (T, NS, G) instantiations:
//   padded N  8: (NS, G) = (8, 1), (4, 2)
//   padded N 16: (16, 1), (8, 2), (4, 4), (2, 8)
//   padded N 32: (16, 2), (8, 4), (4, 8)
#include <cstdlib>
#include <cstring>

#include "lmforge/backend/cuda/selective_scan_rows.cuh"

namespace lmf::cuda::scan {

namespace {

bool valid_g(int npad, int G) {
  const int ns = npad / G;
  return ns >= 2 && ns <= 16 && npad % G == 0;
}

}  // namespace

// Warps per SM (at the largest G) below which the chunk walker is used instead of the row
// walker. First version (H100, bf16, N = 16): 130m 4x4096, G = 8, 11.6 warps/SM: 0.536 ms
// against 0.501 ms for the chunk walker, hence 14. With the element-wise and staging fast paths
// (session 4) the row walker wins there by far (G = 8: 0.380, G = 4 at 5.8 warps/SM: 0.364,
// chunk walker 0.499 ms; backward 1.125 / 1.157 / 1.224 ms), hence 5.
constexpr int64_t kMinWarpsPerSM = 5;
// The lane count G once the row walker is chosen: the smallest G reaching this many warps per
// SM. After the fast paths the walkers need fewer warps (130m 8x1024: G = 4, 11.6 warps/SM:
// 0.122 ms, G = 8: 0.140 ms, G = 2: 0.191 ms; 4x4096 above: G = 8 for forward + backward), and a
// smaller G costs fewer instructions per state-step (wider state slices, fewer shuffles).
constexpr int64_t kMinWarpsPerSMForG = 11;

int64_t rows_warps(const ScanParams& p, int G) { return int64_t(p.B) * ((p.D + kRC - 1) / kRC) * G; }

int largest_g(int npad) { return npad == 8 ? 2 : 8; }

bool use_rows_impl(const ScanParams& p) {
  if (const char* e = std::getenv("LMF_SCAN_IMPL")) {
    if (std::strcmp(e, "chunked") == 0) return false;
    if (std::strcmp(e, "rows") == 0) return true;
  }
  const int npad = 4 * scan_groups(p.N);
  return rows_warps(p, largest_g(npad)) >= kMinWarpsPerSM * sm_count();
}

int rows_groups(const ScanParams& p, int npad) {
  if (const char* e = std::getenv("LMF_SCAN_ROWS_G")) {
    const int g = std::atoi(e);
    if ((g == 1 || g == 2 || g == 4 || g == 8) && valid_g(npad, g)) return g;
  }
  for (int G : {1, 2, 4, 8})
    if (valid_g(npad, G) && rows_warps(p, G) >= kMinWarpsPerSMForG * sm_count()) return G;
  return largest_g(npad);
}

namespace {

template <class T, int NS, int G>
void launch_fwd(const ScanParams& p) {
  constexpr int smem = RowsLayout<T, NS, G, false>::kBytes;
  auto kernel = scan_fwd_rows_kernel<T, NS, G>;
  static std::atomic<uint64_t> prepared{0};
  prepare_kernel(reinterpret_cast<const void*>(kernel), smem, prepared);
  const dim3 grid(unsigned((p.D + kRC - 1) / kRC), unsigned(p.B));
  kernel<<<grid, Rows<NS, G>::kThreads, smem, current_stream()>>>(p);
  LMF_CUDA_CHECK_LAUNCH();
}

template <class T, int NS, int G>
void launch_prep(const ScanParams& p) {
  constexpr int smem = RowsLayout<T, NS, G, true>::kBytes;
  auto kernel = scan_bwd_prep_rows_kernel<T, NS, G>;
  static std::atomic<uint64_t> prepared{0};
  prepare_kernel(reinterpret_cast<const void*>(kernel), smem, prepared);
  const dim3 grid(unsigned((p.D + kRC - 1) / kRC), unsigned(p.B));
  kernel<<<grid, Rows<NS, G>::kThreads, smem, current_stream()>>>(p);
  LMF_CUDA_CHECK_LAUNCH();
}

// Calls f.template operator()<NS, G>() for the instantiation serving (npad, G).
template <class F>
void dispatch_rows(int npad, int G, F&& f) {
  switch (npad * 16 + G) {
    case 8 * 16 + 1: f.template operator()<8, 1>(); break;
    case 8 * 16 + 2: f.template operator()<4, 2>(); break;
    case 16 * 16 + 1: f.template operator()<16, 1>(); break;
    case 16 * 16 + 2: f.template operator()<8, 2>(); break;
    case 16 * 16 + 4: f.template operator()<4, 4>(); break;
    case 16 * 16 + 8: f.template operator()<2, 8>(); break;
    case 32 * 16 + 2: f.template operator()<16, 2>(); break;
    case 32 * 16 + 4: f.template operator()<8, 4>(); break;
    case 32 * 16 + 8: f.template operator()<4, 8>(); break;
    default: LMF_CHECK(false, "selective scan rows: no instantiation for padded N ", npad, ", G ", G);
  }
}

// Only the (npad, G) pairs dispatch_rows serves are valid choices.
int checked_groups(const ScanParams& p, int npad) {
  int G = rows_groups(p, npad);
  if (npad == 8 && G > 2) G = 2;
  if (npad == 32 && G < 2) G = 2;
  return G;
}

}  // namespace

void launch_rows_forward(const ScanParams& p, DType t) {
  const int npad = 4 * scan_groups(p.N);
  const int G = checked_groups(p, npad);
  dispatch_floating(t, "selective_scan_forward", [&]<class T>() {
    dispatch_rows(npad, G, [&]<int NS, int GG>() { launch_fwd<T, NS, GG>(p); });
  });
}

void launch_rows_prep(const ScanParams& p, DType t) {
  const int npad = 4 * scan_groups(p.N);
  const int G = checked_groups(p, npad);
  dispatch_floating(t, "selective_scan_backward", [&]<class T>() {
    dispatch_rows(npad, G, [&]<int NS, int GG>() { launch_prep<T, NS, GG>(p); });
  });
}

}  // namespace lmf::cuda::scan
