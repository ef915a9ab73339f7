// Selective scan backward on CUDA (kernel_list.inc). Nothing but the inputs is saved by the
// forward, so the backward runs:
//  1. the preparation walker (scan_bwd_prep_kernel, selective_scan_chunked.cuh): per (b, 16
//     channels), the chunks in order with the chunk scanned in parallel over time. It stores the
//     state entering every chunk of 32 steps (hstart, [B, L/32, D, kNPad] f32: 2 B per (b, t, d)
//     for N = 16) and, per segment of seg_chunks chunks, the dL/dh carry entering the segment from
//     the right (segG), so that
//  2. scan_backward_kernel processes all (b, 32 channels, segment) blocks in parallel: the
//     segment's chunks from last to first; per chunk, a walk from hstart gives the states at the
//     starts of its four 8-step sub-chunks; the sub-chunks from last to first recompute their 8
//     steps forward keeping exp(dt A) and h in registers, then step backwards with the carried
//     dL/dh (g_t = gy_t C_t + a_{t+1} g_{t+1}, a = 0 at document starts cuts it);
//  3. finalize (scan_finalize_kernel, one launch): dBm / dCm cast from their f32 accumulators,
//     parameter gradients summed over the per-block partials into the *_acc tensors.
// (With the row-walker preparation, the default for large shapes, step 1 is
// scan_bwd_prep_rows_kernel, which stores every 8-step sub-chunk start, and step 2 stages them.)
// Reductions. dB_t[n] = sum_d g_t[n] dt u and dC_t[n] = sum_d gy h_t[n] are sums over channels:
// over the channel lanes of a warp (bf16 / f16 with G = 4: two tf32 mma per step and one
// shuffle, selective_scan_grad.cuh; otherwise a 7-shuffle transpose-reduce), summed over the
// block's warps in shared memory, then ONE float4 atomicAdd per (b, t, 4 states, B|C)
// per block into f32 accumulators: the order of those D/32 additions varies run to run, so
// dBm / dCm are non-deterministic in the last bits. dA_log, dD, ddelta_bias are reduced in a
// fixed order (per-block partials [B * nseg, D(, N)], then a sum over the rows): deterministic.
//
// Launch of 2: grid (ceil(D / 32), nseg, B), 32 * G threads, BackwardLayout::kBytes of dynamic
// shared memory (bf16, N = 16: ~50 KB, four blocks per SM on H100).
#include <algorithm>
#include <cstdlib>
#include <string>

#include "lmforge/backend/cuda/selective_scan_grad.cuh"
#include "lmforge/backend/cuda/selective_scan_rows.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace scan {
namespace {

// The backward's finalize, one launch: blocks [0, param_blocks) sum the parameter partials,
// the others cast dBm / dCm from their f32 accumulators.
//  - acc[d, n] += sum_r pA[r, d, n] (and the same for D and the dt bias), deterministic: the
//    partial columns (pA's D * npad, then pD's D, then pbias's D) are split over blocks of
//    kParamCols columns x kParamSplit row residues; thread (column, q) sums the rows r = q mod
//    kParamSplit in increasing order, then the kParamSplit sums are added in q order. Column
//    reads are coalesced; every order is fixed by the shape alone.
//  - dB, dC (dtype T) from dBC [2, n], grid-stride over the remaining blocks.
constexpr int kParamCols = 32, kParamSplit = 16;  // 130m 8x1024: 864 blocks, 3 rows per thread
constexpr int kFinalizeThreads = kParamCols * kParamSplit;

struct FinalizeArgs {
  const float* pA;
  const float* pD;
  const float* pbias;
  float* dA_acc;
  float* dD_acc;
  float* dbias_acc;
  int rows, D, N, npad;
  int param_blocks;  // 0: no parameter gradient wanted
  const float* dBC;
  void* dB;
  void* dC;
  int64_t n;  // B * L * N
};

__device__ __forceinline__ void param_grads_block(const FinalizeArgs& a) {
  __shared__ float part[kParamSplit][kParamCols];
  const int c = threadIdx.x % kParamCols, q = threadIdx.x / kParamCols;
  const int64_t ncolA = int64_t(a.D) * a.npad, ncol = ncolA + 2 * int64_t(a.D);
  const int64_t j = int64_t(blockIdx.x) * kParamCols + c;
  const float* src = nullptr;
  int64_t stride = 0;
  if (j < ncolA) {
    src = a.pA + j;
    stride = ncolA;
  } else if (j < ncolA + a.D) {
    src = a.pD + (j - ncolA);
    stride = a.D;
  } else if (j < ncol) {
    src = a.pbias + (j - ncolA - a.D);
    stride = a.D;
  }
  float s = 0.f;
  if (src) {
#pragma unroll 4
    for (int r = q; r < a.rows; r += kParamSplit) s += src[int64_t(r) * stride];
  }
  part[q][c] = s;
  __syncthreads();
  if (q != 0 || !src) return;
  s = part[0][c];
#pragma unroll
  for (int k = 1; k < kParamSplit; k++) s += part[k][c];
  if (j < ncolA) {
    const int64_t dd = j / a.npad;
    const int n = int(j - dd * a.npad);
    if (a.dA_acc && n < a.N) a.dA_acc[dd * a.N + n] += s;
  } else if (j < ncolA + a.D) {
    if (a.dD_acc) a.dD_acc[j - ncolA] += s;
  } else if (a.dbias_acc) {
    a.dbias_acc[j - ncolA - a.D] += s;
  }
}

template <class T>
__global__ void __launch_bounds__(kFinalizeThreads) scan_finalize_kernel(FinalizeArgs a) {
  pdl_wait();  // the gradient pass's partials and dBC (PDL launch)
  if (int(blockIdx.x) < a.param_blocks) {
    param_grads_block(a);
    return;
  }
  T* dB = static_cast<T*>(a.dB);
  T* dC = static_cast<T*>(a.dC);
  const int64_t stride = int64_t(gridDim.x - a.param_blocks) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x - a.param_blocks) * blockDim.x + threadIdx.x; i < a.n; i += stride) {
    if (dB) dB[i] = from_f<T>(a.dBC[i]);
    if (dC) dC[i] = from_f<T>(a.dBC[a.n + i]);
  }
}

// Launches kernel(args...) on the current stream, with programmatic dependent launch when `pdl`
// (the kernel starts during the previous kernel's tail and waits in griddepcontrol.wait).
template <class... KArgs, class... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, int smem, bool pdl, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = size_t(smem);
  cfg.stream = current_stream();
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  LMF_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args...));
}

template <class T, int G, int W>
void launch_prep(const ScanParams& p) {
  constexpr int smem = WalkLayout<T, G, W, true>::kBytes;
  auto kernel = scan_bwd_prep_kernel<T, G, W>;
  static std::atomic<uint64_t> prepared{0};
  prepare_kernel(reinterpret_cast<const void*>(kernel), smem, prepared);
  const dim3 grid(unsigned((p.D + kTF - 1) / kTF), unsigned(p.B));
  kernel<<<grid, Walker<G, W>::kThreads, smem, current_stream()>>>(p);
  LMF_CUDA_CHECK_LAUNCH();
}

template <class T, int G>
void launch_backward(const ScanParams& p, DType t) {
  if (p.sub_starts)  // the row walker (use_rows_impl), which stores sub-chunk starts
    launch_rows_prep(p, t);
  else if (walker_rows(p, G) == 1)
    launch_prep<T, G, 1>(p);
  else
    launch_prep<T, G, 4>(p);
  constexpr int smem = BackwardLayout<T, G>::kBytes;
  auto kernel = scan_backward_kernel<T, G>;
  static std::atomic<uint64_t> prepared{0};
  prepare_kernel(reinterpret_cast<const void*>(kernel), smem, prepared);
  const dim3 grid(unsigned((p.D + kTD - 1) / kTD), unsigned(p.nseg), unsigned(p.B));
  launch_pdl(kernel, grid, dim3(32 * G), smem, p.pdl && p.sub_starts, p);
}

// Chunks per gradient-pass segment: enough blocks for ~16 per SM over the run (load balance and
// latency hiding), as few as that allows (each segment costs a partials row and a sweep step).
// LMF_SCAN_SEG_CHUNKS=<n> forces it (tests cover multi-chunk segments on small shapes).
int segment_chunks(int64_t B, int64_t D, int64_t nc) {
  int64_t s = 0;
  if (const char* e = std::getenv("LMF_SCAN_SEG_CHUNKS")) s = std::atoll(e);
  if (s <= 0) {
    const int64_t units = B * ((D + kTD - 1) / kTD) * nc, target = int64_t(sm_count()) * 16;
    s = (units + target - 1) / target;
  }
  s = std::max<int64_t>(s, (nc + 65534) / 65535);  // grid.y <= 65535
  return int(std::clamp<int64_t>(s, 1, nc));
}

void check_out(const char* op, const char* name, const Tensor& t, DType want) {
  if (t.defined() && t.dtype() != want)
    fail(op, ": ", name, " must be ", dtype_name(want), " on CUDA, got ", dtype_name(t.dtype()));
}

float* f32_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace
}  // namespace scan

void selective_scan_backward(const Tensor& u, const Tensor& delta, const Tensor& A_log, const Tensor& Bm,
                             const Tensor& Cm, const Tensor& Dskip, const Tensor& z, const Tensor& delta_bias,
                             const Tensor& seq_idx, bool delta_softplus, const Tensor& dout, const Tensor& du,
                             const Tensor& ddelta, const Tensor& dBm, const Tensor& dCm, const Tensor& dz,
                             const Tensor& dA_log_acc, const Tensor& dD_acc, const Tensor& ddelta_bias_acc) {
  const char* op = "selective_scan_backward";
  scan::ScanParams p = scan::make_scan_params(op, u, delta, A_log, Bm, Cm, Dskip, z, delta_bias, seq_idx,
                                              delta_softplus, dout);
  const DType t = u.dtype();
  scan::check_out(op, "du", du, t);
  scan::check_out(op, "ddelta", ddelta, t);
  scan::check_out(op, "dBm", dBm, t);
  scan::check_out(op, "dCm", dCm, t);
  scan::check_out(op, "dz", dz, t);
  scan::check_out(op, "dA_log_acc", dA_log_acc, DType::f32);
  scan::check_out(op, "dD_acc", dD_acc, DType::f32);
  scan::check_out(op, "ddelta_bias_acc", ddelta_bias_acc, DType::f32);
  if (!dout.defined()) fail(op, ": dout is required");
  if (p.B == 0 || p.L == 0) return;  // no element: no gradient
  cudaStream_t stream = current_stream();
  if (p.D == 0) {  // no channel: dBm, dCm are zero
    if (dBm.defined()) LMF_CUDA_CHECK(cudaMemsetAsync(dBm.data_ptr(), 0, dBm.nbytes(), stream));
    if (dCm.defined()) LMF_CUDA_CHECK(cudaMemsetAsync(dCm.data_ptr(), 0, dCm.nbytes(), stream));
    return;
  }
  p.du = du.defined() ? du.data_ptr() : nullptr;
  p.ddelta = ddelta.defined() ? ddelta.data_ptr() : nullptr;
  p.dz = dz.defined() ? dz.data_ptr() : nullptr;

  const int G = scan::scan_groups(p.N);
  const int64_t B = p.B, L = p.L, D = p.D, N = p.N, npad = 4 * G, nc = p.nc;
  p.seg_chunks = scan::segment_chunks(B, D, nc);
  p.nseg = int((nc + p.seg_chunks - 1) / p.seg_chunks);
  const int64_t rows = B * p.nseg;
  const Device dev = u.device();
  // The row-walker preparation stores the state entering every 8-step sub-chunk (4x the chunk
  // starts: 8 B per (b, t, d) for N = 16), which spares the gradient pass its 24-step walk.
  p.sub_starts = scan::use_rows_impl(p);
  // The gradient pass (after the row-walker preparation, which signals it) and the finalize
  // start with programmatic dependent launch (LMF_SCAN_PDL=0: off).
  {
    const char* e = std::getenv("LMF_SCAN_PDL");
    p.pdl = !(e && std::string(e) == "0");
  }
  Tensor hstart = Tensor::empty({B, nc * (p.sub_starts ? scan::kNSub : 1), D, npad}, DType::f32, dev);
  Tensor seg = Tensor::empty({2, B, p.nseg, D, npad}, DType::f32, dev);
  Tensor dBC = Tensor::zeros({2, B, L, N}, DType::f32, dev);
  Tensor partials = Tensor::empty({rows * D * (npad + 2)}, DType::f32, dev);
  p.hstart = hstart.data<float>();
  p.segP = seg.data<float>();
  p.segG = p.segP + B * p.nseg * D * npad;
  p.dBC = dBC.data<float>();
  p.pA = partials.data<float>();
  p.pD = p.pA + rows * D * npad;
  p.pbias = p.pD + rows * D;

  dispatch_floating(t, op, [&]<class T>() {
    switch (G) {
      case 2:
        scan::launch_backward<T, 2>(p, t);
        break;
      case 4:
        scan::launch_backward<T, 4>(p, t);
        break;
      default:
        scan::launch_backward<T, 8>(p, t);
        break;
    }
    scan::FinalizeArgs fa{};
    fa.pA = p.pA;
    fa.pD = p.pD;
    fa.pbias = p.pbias;
    fa.dA_acc = scan::f32_or_null(dA_log_acc);
    fa.dD_acc = scan::f32_or_null(dD_acc);
    fa.dbias_acc = scan::f32_or_null(ddelta_bias_acc);
    fa.rows = int(rows);
    fa.D = p.D;
    fa.N = p.N;
    fa.npad = int(npad);
    const bool params = fa.dA_acc || fa.dD_acc || fa.dbias_acc;
    fa.param_blocks = params ? int((D * (npad + 2) + scan::kParamCols - 1) / scan::kParamCols) : 0;
    fa.dBC = p.dBC;
    fa.dB = dBm.defined() ? dBm.data_ptr() : nullptr;
    fa.dC = dCm.defined() ? dCm.data_ptr() : nullptr;
    fa.n = B * L * N;
    const int cast_blocks = blocks_for(fa.n, scan::kFinalizeThreads);
    scan::launch_pdl(scan::scan_finalize_kernel<T>, dim3(unsigned(fa.param_blocks + cast_blocks)),
                     dim3(scan::kFinalizeThreads), 0, p.pdl, fa);
  });
}

}  // namespace lmf::cuda
