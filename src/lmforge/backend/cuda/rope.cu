// CUDA rotary position embeddings (contract in backend/kernel_list.inc "rope"; reference
// backend/cpu/rope.cc). One block per row n (grid-stride over rows): the block first builds the
// row's R/2 (cos, sin) pairs in shared memory (precise sincosf on the fp32 angle, rounded to the
// activation dtype), then its threads sweep the (head, i) pairs of the row; consecutive threads
// read consecutive channels of one head, so global accesses are coalesced whatever the row and
// head strides (a fused QKV view works in place of a contiguous tensor). Where the half rotary
// dim, the strides and the bases allow, a thread moves 4 consecutive channels of both halves
// (8-byte bf16 / 16-byte f32 accesses).
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/kernels.h"
#include "lmforge/backend/rope_math.h"

namespace lmf::cuda {

namespace {

constexpr int kThreads = 256;

template <class T, int VEC>
__global__ void rope_kernel(const T* __restrict__ x, const int64_t* __restrict__ pos, T* __restrict__ out,
                            int64_t N, int64_t G, int64_t D, int64_t half, int64_t xs0, int64_t xs1, int64_t os0,
                            int64_t os1, const float* __restrict__ inv_freq, float sign) {
  extern __shared__ float smem[];  // [half] cos, [half] sin
  float* cs = smem;
  float* sn = smem + half;
  const int64_t R = 2 * half, pairs = G * half, copies = G * (D - R);
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float p = float(pos[n]);
    for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
      float s, c;
      sincosf(p * inv_freq[i], &s, &c);
      cs[i] = to_f(from_f<T>(c));
      sn[i] = sign * to_f(from_f<T>(s));
    }
    __syncthreads();
    const T* xr = x + n * xs0;
    T* orow = out + n * os0;
    if (VEC > 1) {  // VEC consecutive i of one head per thread: 8 / 16-byte accesses
      const int64_t hp = half / VEC;
      for (int64_t k = threadIdx.x; k < G * hp; k += blockDim.x) {
        const int64_t g = k / hp, i = (k - g * hp) * VEC;
        const T* xg = xr + g * xs1;
        T* og = orow + g * os1;
        float a[VEC], b[VEC], ra[VEC], rb[VEC];
        load_pack<VEC>(xg, i, a);
        load_pack<VEC>(xg + half, i, b);
#pragma unroll
        for (int e = 0; e < VEC; e++) {
          ra[e] = a[e] * cs[i + e] - b[e] * sn[i + e];
          rb[e] = b[e] * cs[i + e] + a[e] * sn[i + e];
        }
        store_pack<VEC>(og, i, ra);
        store_pack<VEC>(og + half, i, rb);
      }
    } else {
      for (int64_t k = threadIdx.x; k < pairs; k += blockDim.x) {
        const int64_t g = k / half, i = k - g * half;
        const T* xg = xr + g * xs1;
        T* og = orow + g * os1;
        const float a = to_f(xg[i]), b = to_f(xg[i + half]);
        og[i] = from_f<T>(a * cs[i] - b * sn[i]);
        og[i + half] = from_f<T>(b * cs[i] + a * sn[i]);
      }
    }
    if (copies > 0) {
      const int64_t tail = D - R;
      if (VEC > 1) {
        const int64_t tp = tail / VEC;
        for (int64_t k = threadIdx.x; k < G * tp; k += blockDim.x) {
          const int64_t g = k / tp, d = R + (k - g * tp) * VEC;
          float v[VEC];
          load_pack<VEC>(xr + g * xs1, d, v);
          store_pack<VEC>(orow + g * os1, d, v);
        }
      } else {
        for (int64_t k = threadIdx.x; k < copies; k += blockDim.x) {
          const int64_t g = k / tail, d = R + (k - g * tail);
          orow[g * os1 + d] = xr[g * xs1 + d];
        }
      }
    }
    __syncthreads();  // the next row overwrites cs / sn
  }
}

// inv_freq_i for i < half, computed once on the device (tiny: half <= D / 2).
__global__ void rope_inv_freq_kernel(float* inv, int64_t half, double theta) {
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) inv[i] = rope_inv_freq_f32(theta, i, 2 * half);
}

}  // namespace

void rope(const Tensor& x, const Tensor& positions, const Tensor& out, double theta, int64_t R, bool inverse) {
  const int64_t N = x.size(0), G = x.size(1), D = x.size(2), half = R / 2;
  if (N == 0 || G == 0 || D == 0) return;
  // The frequency table lives in a small scratch tensor on the stream (stream-ordered allocator).
  Tensor inv = Tensor::empty({half > 0 ? half : 1}, DType::f32, x.device());
  if (half > 0) {
    rope_inv_freq_kernel<<<1, 128, 0, current_stream()>>>(ptr<float>(inv), half, theta);
    LMF_CUDA_CHECK_LAUNCH();
  }
  const int64_t cap = int64_t(sm_count()) * 8;
  const int blocks = int(N < cap ? N : cap);
  const size_t shmem = size_t(2 * (half > 0 ? half : 1)) * sizeof(float);
  dispatch_floating(x.dtype(), "rope", [&]<class T>() {
    // Packs of 4 elements when half, both row / head strides and both bases allow them.
    constexpr int P = 4;
    const bool packed = half % P == 0 && D % P == 0 && x.strides()[0] % P == 0 && x.strides()[1] % P == 0 &&
                        out.strides()[0] % P == 0 && out.strides()[1] % P == 0 && pack_aligned<T, P>(ptr<T>(x)) &&
                        pack_aligned<T, P>(ptr<T>(out));
    with_pack<P>(packed, [&]<int VEC>() {
      rope_kernel<T, VEC><<<blocks, kThreads, shmem, current_stream()>>>(
          ptr<T>(x), ptr<int64_t>(positions), ptr<T>(out), N, G, D, half, x.strides()[0], x.strides()[1],
          out.strides()[0], out.strides()[1], ptr<float>(inv), inverse ? -1.f : 1.f);
      LMF_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace lmf::cuda
