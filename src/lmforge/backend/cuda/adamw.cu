// Fused AdamW kernel (contract in adamw.h; arithmetic in cpu/adamw.h adamw_update_element).
//
// Layout: one grid-stride loop over "vectors" of kVec consecutive elements. Each vector looks up
// its range by binary search over the launch's ranges (kept in shared memory). A vector wholly
// inside one range takes the fast path (16-byte loads/stores of p, g, m, v and one store of the
// compute copy); a vector that straddles a range edge or a frozen gap is done element by element.
// Bytes per element: read p, g, m, v (16) + write p, m, v (12) + copy (2 bf16 / 4 f32).
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "lmforge/backend/cuda/adamw.h"
#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/core/error.h"

namespace lmf::cuda {

namespace {

constexpr int kMaxRangesPerLaunch = 64;
constexpr int kThreads = 256;

struct RangeBatch {
  int count;
  int64_t begin[kMaxRangesPerLaunch];
  int64_t end[kMaxRangesPerLaunch];
  float decay_factor[kMaxRangesPerLaunch];
  float step_size[kMaxRangesPerLaunch];
};

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("cuda adamw_step: ", what, ": ", cudaGetErrorString(e));
}

// Sets the current device for the scope, restoring the previous one.
struct DeviceGuard {
  int previous = -1;
  explicit DeviceGuard(int device) {
    check_cuda(cudaGetDevice(&previous), "cudaGetDevice");
    if (previous != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int now = -1;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous) (void)cudaSetDevice(previous);
  }
};

int multiprocessor_count(int device) {
  static std::atomic<int> cache[64] = {};
  if (device >= 0 && device < 64) {
    int v = cache[device].load(std::memory_order_relaxed);
    if (v > 0) return v;
  }
  int v = 0;
  check_cuda(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device),
             "cudaDeviceGetAttribute");
  if (device >= 0 && device < 64) cache[device].store(v, std::memory_order_relaxed);
  return v;
}

// Index of the range holding element i, or -1 (before the first range, or in a gap).
__device__ __forceinline__ int find_range(const int64_t* begin, const int64_t* end, int count,
                                          int64_t i) {
  int lo = 0, hi = count - 1, found = -1;
  while (lo <= hi) {
    int mid = (lo + hi) >> 1;
    if (begin[mid] <= i) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return (found >= 0 && i < end[found]) ? found : -1;
}

template <class Copy>
__device__ __forceinline__ void store_copy(Copy* copy, int64_t i, float x) {
  if constexpr (std::is_same_v<Copy, float>) copy[i] = x;
  if constexpr (std::is_same_v<Copy, bf16>) copy[i] = float_to_bf16(x);
}

// Stores 4 updated params into the compute copy with one 16-byte (f32) or 8-byte (bf16) store.
template <class Copy>
__device__ __forceinline__ void store_copy4(Copy* copy, int64_t i, const float4& x) {
  if constexpr (std::is_same_v<Copy, float>) {
    *reinterpret_cast<float4*>(copy + i) = x;
  } else if constexpr (std::is_same_v<Copy, bf16>) {
    uint2 packed;
    packed.x = uint32_t(float_to_bf16(x.x).bits) | (uint32_t(float_to_bf16(x.y).bits) << 16);
    packed.y = uint32_t(float_to_bf16(x.z).bits) | (uint32_t(float_to_bf16(x.w).bits) << 16);
    *reinterpret_cast<uint2*>(copy + i) = packed;
  }
}

template <class Copy, int kVec>
__global__ void __launch_bounds__(kThreads)
    adamw_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                 float* __restrict__ v, Copy* __restrict__ copy, RangeBatch batch, AdamWScalars s) {
  __shared__ int64_t s_begin[kMaxRangesPerLaunch], s_end[kMaxRangesPerLaunch];
  __shared__ float s_decay[kMaxRangesPerLaunch], s_step[kMaxRangesPerLaunch];
  const int count = batch.count;
  for (int r = threadIdx.x; r < count; r += blockDim.x) {
    s_begin[r] = batch.begin[r];
    s_end[r] = batch.end[r];
    s_decay[r] = batch.decay_factor[r];
    s_step[r] = batch.step_size[r];
  }
  __syncthreads();

  const int64_t first_vec = batch.begin[0] / kVec;
  const int64_t last_vec = (batch.end[count - 1] + kVec - 1) / kVec;  // exclusive
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  // A thread's vectors only move forward, so its range index does too: a cursor instead of a
  // binary search per vector (the search's dependent shared-memory loads cost ~8 % of the
  // bandwidth with 64 ranges).
  int cursor = 0;
  for (int64_t k = first_vec + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < last_vec;
       k += stride) {
    const int64_t i0 = k * kVec;
    while (cursor < count - 1 && s_end[cursor] <= i0) cursor++;
    const int r = (s_begin[cursor] <= i0 && i0 < s_end[cursor]) ? cursor : -1;
    if constexpr (kVec == 4) {
      if (r >= 0 && i0 + 4 <= s_end[r]) {
        float4 pv = *reinterpret_cast<const float4*>(p + i0);
        const float4 gv = *reinterpret_cast<const float4*>(g + i0);
        float4 mv = *reinterpret_cast<const float4*>(m + i0);
        float4 vv = *reinterpret_cast<const float4*>(v + i0);
        const float decay = s_decay[r], step = s_step[r];
        adamw_update_element(pv.x, mv.x, vv.x, gv.x, decay, step, s);
        adamw_update_element(pv.y, mv.y, vv.y, gv.y, decay, step, s);
        adamw_update_element(pv.z, mv.z, vv.z, gv.z, decay, step, s);
        adamw_update_element(pv.w, mv.w, vv.w, gv.w, decay, step, s);
        *reinterpret_cast<float4*>(p + i0) = pv;
        *reinterpret_cast<float4*>(m + i0) = mv;
        *reinterpret_cast<float4*>(v + i0) = vv;
        if constexpr (!std::is_void_v<Copy>) store_copy4(copy, i0, pv);
        continue;
      }
    }
    // Element by element: a vector on a range edge or gap (or kVec == 1).
    for (int j = 0; j < kVec; j++) {
      const int64_t i = i0 + j;
      const int rr = (j == 0) ? r : find_range(s_begin, s_end, count, i);
      if (rr < 0) continue;
      float pi = p[i], mi = m[i], vi = v[i];
      adamw_update_element(pi, mi, vi, g[i], s_decay[rr], s_step[rr], s);
      p[i] = pi;
      m[i] = mi;
      v[i] = vi;
      if constexpr (!std::is_void_v<Copy>) store_copy(copy, i, pi);
    }
  }
}

bool aligned(const void* ptr, uintptr_t bytes) {
  return reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
}

template <class Copy, int kVec>
void launch(float* p, const float* g, float* m, float* v, Copy* copy, const RangeBatch& batch,
            const AdamWScalars& s, int device) {
  const int64_t first_vec = batch.begin[0] / kVec;
  const int64_t last_vec = (batch.end[batch.count - 1] + kVec - 1) / kVec;
  const int64_t vecs = last_vec - first_vec;
  // Enough resident blocks to saturate memory bandwidth (8 x 256 threads per SM), grid-stride
  // beyond.
  const int64_t max_blocks = int64_t(multiprocessor_count(device)) * 8;
  const int blocks =
      int(std::max<int64_t>(1, std::min(max_blocks, (vecs + kThreads - 1) / kThreads)));
  adamw_kernel<Copy, kVec><<<blocks, kThreads, 0, current_stream()>>>(p, g, m, v, copy, batch, s);
  check_cuda(cudaGetLastError(), "kernel launch");
}

template <class Copy>
void run(int device, float* p, const float* g, float* m, float* v, Copy* copy,
         const RangeBatch& batch, const AdamWScalars& s) {
  size_t copy_align = std::is_same_v<Copy, bf16> ? 8 : 16;
  bool vec4 = aligned(p, 16) && aligned(g, 16) && aligned(m, 16) && aligned(v, 16) &&
              (copy == nullptr || aligned(copy, copy_align));
  if (vec4)
    launch<Copy, 4>(p, g, m, v, copy, batch, s, device);
  else
    launch<Copy, 1>(p, g, m, v, copy, batch, s, device);
}

}  // namespace

void adamw_step(int device, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                void* copy, DType copy_dtype, int64_t n, const AdamWRange* ranges, int num_ranges,
                const AdamWScalars& scalars) {
  LMF_CHECK(n >= 0 && num_ranges >= 0);
  LMF_CHECK(copy == nullptr || copy_dtype == DType::f32 || copy_dtype == DType::bf16,
            "compute copy must be f32 or bf16, got ", dtype_name(copy_dtype));
  for (int r = 0; r < num_ranges; r++) {
    LMF_CHECK(ranges[r].begin >= 0 && ranges[r].begin <= ranges[r].end && ranges[r].end <= n,
              "range ", r, " out of [0, ", n, ")");
    LMF_CHECK(r == 0 || ranges[r - 1].end <= ranges[r].begin, "ranges overlap or are unsorted");
  }
  DeviceGuard guard(device);
  RangeBatch batch{};
  auto flush = [&] {
    if (batch.count == 0) return;
    if (copy == nullptr)
      run<void>(device, params, grads, exp_avg, exp_avg_sq, nullptr, batch, scalars);
    else if (copy_dtype == DType::f32)
      run(device, params, grads, exp_avg, exp_avg_sq, static_cast<float*>(copy), batch, scalars);
    else
      run(device, params, grads, exp_avg, exp_avg_sq, static_cast<bf16*>(copy), batch, scalars);
    batch.count = 0;
  };
  for (int r = 0; r < num_ranges; r++) {
    if (ranges[r].begin == ranges[r].end) continue;
    batch.begin[batch.count] = ranges[r].begin;
    batch.end[batch.count] = ranges[r].end;
    batch.decay_factor[batch.count] = ranges[r].decay_factor;
    batch.step_size[batch.count] = ranges[r].step_size;
    if (++batch.count == kMaxRangesPerLaunch) flush();
  }
  flush();
}

}  // namespace lmf::cuda
