// Selective scan forward on CUDA (kernel_list.inc). The kernel is the row walker of
// selective_scan_rows.cuh (default) or, with LMF_SCAN_IMPL=chunked, the forward chunk walker of
// selective_scan_chunked.cuh; this file validates what the ops layer cannot know about the CUDA
// path (one activation dtype, N <= 32), picks the implementation and launches it.
//
// Launch of the chunk walker: grid (ceil(D / 16), B); Walker<G, W>::kThreads threads (G = 2 / 4 / 8 for N <= 8 /
// 16 / 32; W = 4 time rows unless the grid alone fills the GPU: 256 threads for N = 16);
// WalkLayout::kBytes of dynamic shared memory (bf16, N = 16, W = 4: ~28 KB).
#include <cstdlib>
#include <cstring>

#include "lmforge/backend/cuda/selective_scan_chunked.cuh"
#include "lmforge/backend/cuda/selective_scan_rows.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace scan {

ScanParams make_scan_params(const char* op, const Tensor& u, const Tensor& delta, const Tensor& A_log,
                            const Tensor& Bm, const Tensor& Cm, const Tensor& Dskip, const Tensor& z,
                            const Tensor& delta_bias, const Tensor& seq_idx, bool delta_softplus,
                            const Tensor& dout) {
  const DType t = u.dtype();
  for (const Tensor* x : {&delta, &Bm, &Cm, &z, &dout})
    if (x->defined() && x->dtype() != t)
      fail(op, ": the CUDA kernel needs u, delta, z, Bm, Cm (and the gradient) in one dtype; u is ",
           dtype_name(t), ", got ", dtype_name(x->dtype()));
  if (seq_idx.defined() && seq_idx.dtype() != DType::i32)
    fail(op, ": seq_idx must be i32, got ", dtype_name(seq_idx.dtype()));
  const int64_t B = u.size(0), L = u.size(1), D = u.size(2), N = A_log.size(1);
  if (N > 4 * kMaxG) fail(op, ": the CUDA kernel supports state sizes N <= ", 4 * kMaxG, ", got ", N);
  if (L > INT32_MAX / 2 || D > INT32_MAX / 2 || B > 65535)
    fail(op, ": shape [", B, ", ", L, ", ", D, "] exceeds the CUDA kernel's limits (B <= 65535)");
  ScanParams p;
  p.u = u.data_ptr();
  p.delta = delta.data_ptr();
  p.z = z.defined() ? z.data_ptr() : nullptr;
  p.dout = dout.defined() ? dout.data_ptr() : nullptr;
  p.Bm = Bm.data_ptr();
  p.Cm = Cm.data_ptr();
  p.A_log = param_ptr(A_log, op, "A_log");
  p.Dskip = param_ptr(Dskip, op, "D");
  p.delta_bias = param_ptr(delta_bias, op, "delta_bias");
  p.seq = seq_idx.defined() ? seq_idx.data<int32_t>() : nullptr;
  p.B = int(B);
  p.L = int(L);
  p.D = int(D);
  p.N = int(N);
  p.nc = int((L + kCS - 1) / kCS);
  p.softplus = delta_softplus;
  const int V = 16 / int(dtype_size(t));
  p.vec_act = D % V == 0;
  for (const void* q : {p.u, p.delta, p.z, p.dout})
    if (q && !aligned16(q)) p.vec_act = false;
  p.vec_bc = N % V == 0 && aligned16(p.Bm) && aligned16(p.Cm);
  return p;
}

int walker_rows(const ScanParams& p, int G) {
  if (const char* e = std::getenv("LMF_SCAN_WALK_ROWS")) {
    if (std::strcmp(e, "1") == 0) return 1;
    if (std::strcmp(e, "4") == 0) return 4;
  }
  const int64_t blocks = int64_t(p.B) * ((p.D + kTF - 1) / kTF);
  const int64_t warps = blocks * (kTF * G / 32);  // with one time row
  return warps >= int64_t(24) * sm_count() ? 1 : 4;
}

namespace {

template <class T, int G, int W>
void launch_forward(const ScanParams& p) {
  constexpr int smem = WalkLayout<T, G, W, false>::kBytes;
  auto kernel = scan_fwd_kernel<T, G, W>;
  static std::atomic<uint64_t> prepared{0};
  prepare_kernel(reinterpret_cast<const void*>(kernel), smem, prepared);
  const dim3 grid(unsigned((p.D + kTF - 1) / kTF), unsigned(p.B));
  kernel<<<grid, Walker<G, W>::kThreads, smem, current_stream()>>>(p);
  LMF_CUDA_CHECK_LAUNCH();
}

template <class T, int G>
void launch_forward_any_w(const ScanParams& p) {
  if (walker_rows(p, G) == 1)
    launch_forward<T, G, 1>(p);
  else
    launch_forward<T, G, 4>(p);
}

}  // namespace
}  // namespace scan

void selective_scan_forward(const Tensor& u, const Tensor& delta, const Tensor& A_log, const Tensor& Bm,
                            const Tensor& Cm, const Tensor& Dskip, const Tensor& z, const Tensor& delta_bias,
                            const Tensor& seq_idx, bool delta_softplus, const Tensor& out,
                            const Tensor& final_state) {
  const char* op = "selective_scan_forward";
  scan::ScanParams p = scan::make_scan_params(op, u, delta, A_log, Bm, Cm, Dskip, z, delta_bias, seq_idx,
                                              delta_softplus, Tensor());
  if (out.dtype() != u.dtype()) fail(op, ": out must have u's dtype ", dtype_name(u.dtype()));
  if (final_state.defined() && final_state.dtype() != DType::f32)
    fail(op, ": final_state must be f32 on CUDA, got ", dtype_name(final_state.dtype()));
  p.out = out.data_ptr();
  p.final_state = final_state.defined() ? final_state.data<float>() : nullptr;
  if (p.B == 0 || p.D == 0) return;
  if (p.L == 0) {  // no step: the final state is the initial zero state
    if (p.final_state)
      LMF_CUDA_CHECK(cudaMemsetAsync(p.final_state, 0, final_state.nbytes(), current_stream()));
    return;
  }
  if (scan::use_rows_impl(p)) {
    scan::launch_rows_forward(p, u.dtype());
    return;
  }
  dispatch_floating(u.dtype(), op, [&]<class T>() {
    switch (scan::scan_groups(p.N)) {
      case 2:
        scan::launch_forward_any_w<T, 2>(p);
        break;
      case 4:
        scan::launch_forward_any_w<T, 4>(p);
        break;
      default:
        scan::launch_forward_any_w<T, 8>(p);
        break;
    }
  });
}

}  // namespace lmf::cuda
