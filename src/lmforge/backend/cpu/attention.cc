// CPU reference: ragged scaled dot-product attention (ops/attention.h), forward and a
// flash-style backward that recomputes the probabilities from q, k and the saved log-sum-exp
// (Dao, "FlashAttention-2", 2023, Algorithm 2, written here without tiling):
//   P_ij = exp(scale q_i.k_j - lse_i)          dV_j += P_ij dO_i
//   dP_ij = dO_i . v_j                         D_i = dO_i . O_i  (= sum_j P_ij dP_ij)
//   dS_ij = P_ij (dP_ij - D_i)                 dQ_i += scale dS_ij k_j,  dK_j += scale dS_ij q_i
// Every query sees a contiguous key range [lo, hi] (causal and window bounds intersect to an
// interval), so O(T) scratch per query is all the forward needs.
#include <algorithm>
#include <cmath>
#include <vector>

#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cpu {

namespace {

// The visible keys of local query i in a sequence of length L: [lo, hi] (empty when lo > hi).
struct KeyRange {
  int64_t lo, hi;
};
KeyRange key_range(int64_t i, int64_t L, bool causal, int64_t wl, int64_t wr) {
  int64_t lo = 0, hi = L - 1;
  if (wl >= 0) lo = std::max(lo, i - wl);
  if (causal) hi = std::min(hi, i);
  if (wr >= 0) hi = std::min(hi, i + wr);
  return {lo, hi};
}

// Strided [N, H, D] view with unit stride in D.
template <class T>
struct View3 {
  T* p;
  int64_t st, sh;  // token and head strides
  T* row(int64_t n, int64_t h) const { return p + n * st + h * sh; }
};
template <class T>
View3<T> view3(const Tensor& t) {
  return {t.data<T>(), t.strides()[0], t.strides()[1]};
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cu_seqlens,
                       int64_t /*max_seqlen*/, float scale, bool causal, int64_t window_left,
                       int64_t window_right, const Tensor& out, const Tensor& lse) {
  const int64_t Hq = q.size(1), Hkv = k.size(1), D = q.size(2);
  const int64_t S = cu_seqlens.numel() - 1, group = Hq / Hkv;
  const int32_t* cu = cu_seqlens.data<int32_t>();
  dispatch_floating(q.dtype(), "attention_forward", [&]<class T>() {
    using A = acc_t<T>;
    const View3<T> Q = view3<T>(q), K = view3<T>(k), V = view3<T>(v);
    T* po = out.data<T>();
    A* pl = lse.data<A>();
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int64_t s = 0; s < S; s++) {
      for (int64_t h = 0; h < Hq; h++) {
        const int64_t t0 = cu[s], L = cu[s + 1] - t0, hk = h / group;
        std::vector<A> p(size_t(std::max<int64_t>(L, 1)), A(0)), acc(size_t(D), A(0));
        for (int64_t i = 0; i < L; i++) {
          const KeyRange r = key_range(i, L, causal, window_left, window_right);
          const T* qi = Q.row(t0 + i, h);
          T* oi = po + ((t0 + i) * Hq + h) * D;
          A m = -INFINITY;
          for (int64_t j = r.lo; j <= r.hi; j++) {
            const T* kj = K.row(t0 + j, hk);
            A dot = 0;
            for (int64_t d = 0; d < D; d++) dot += load(qi[d]) * load(kj[d]);
            p[size_t(j - r.lo)] = A(scale) * dot;
            m = std::max(m, p[size_t(j - r.lo)]);
          }
          if (r.lo > r.hi) {  // no visible key: output 0, lse +inf (P = exp(s - inf) = 0)
            for (int64_t d = 0; d < D; d++) oi[d] = store<T>(A(0));
            pl[(t0 + i) * Hq + h] = A(INFINITY);
            continue;
          }
          A sum = 0;
          std::fill(acc.begin(), acc.end(), A(0));
          for (int64_t j = r.lo; j <= r.hi; j++) {
            const A e = std::exp(p[size_t(j - r.lo)] - m);
            sum += e;
            const T* vj = V.row(t0 + j, hk);
            for (int64_t d = 0; d < D; d++) acc[size_t(d)] += e * load(vj[d]);
          }
          for (int64_t d = 0; d < D; d++) oi[d] = store<T>(acc[size_t(d)] / sum);
          pl[(t0 + i) * Hq + h] = m + std::log(sum);
        }
      }
    }
  });
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& dout, const Tensor& lse, const Tensor& cu_seqlens,
                        int64_t /*max_seqlen*/, float scale, bool causal, int64_t window_left,
                        int64_t window_right, const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  const int64_t Hq = q.size(1), Hkv = k.size(1), D = q.size(2);
  const int64_t S = cu_seqlens.numel() - 1, group = Hq / Hkv;
  const int32_t* cu = cu_seqlens.data<int32_t>();
  dispatch_floating(q.dtype(), "attention_backward", [&]<class T>() {
    using A = acc_t<T>;
    const View3<T> Q = view3<T>(q), K = view3<T>(k), V = view3<T>(v);
    const T *po = out.data<T>(), *pdo = dout.data<T>();
    const A* pl = lse.data<A>();
    T *pdq = dq.data<T>(), *pdk = dk.data<T>(), *pdv = dv.data<T>();
    // One task per (sequence, kv head): it owns dK, dV of that head and dQ of the q heads that
    // read it, so no two threads write the same element.
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int64_t s = 0; s < S; s++) {
      for (int64_t hk = 0; hk < Hkv; hk++) {
        const int64_t t0 = cu[s], L = cu[s + 1] - t0;
        std::vector<A> dk_acc(size_t(L * D), A(0)), dv_acc(size_t(L * D), A(0)), dq_acc(size_t(D), A(0));
        for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
          for (int64_t i = 0; i < L; i++) {
            const KeyRange r = key_range(i, L, causal, window_left, window_right);
            const int64_t row = (t0 + i) * Hq + h;
            const T *qi = Q.row(t0 + i, h), *oi = po + row * D, *doi = pdo + row * D;
            const A l = pl[row];
            A Di = 0;
            for (int64_t d = 0; d < D; d++) Di += load(doi[d]) * load(oi[d]);
            std::fill(dq_acc.begin(), dq_acc.end(), A(0));
            for (int64_t j = r.lo; j <= r.hi; j++) {
              const T *kj = K.row(t0 + j, hk), *vj = V.row(t0 + j, hk);
              A sdot = 0, dp = 0;
              for (int64_t d = 0; d < D; d++) {
                sdot += load(qi[d]) * load(kj[d]);
                dp += load(doi[d]) * load(vj[d]);
              }
              const A P = std::exp(A(scale) * sdot - l);
              const A dS = P * (dp - Di);
              A* dkj = dk_acc.data() + j * D;
              A* dvj = dv_acc.data() + j * D;
              for (int64_t d = 0; d < D; d++) {
                dvj[d] += P * load(doi[d]);
                dkj[d] += A(scale) * dS * load(qi[d]);
                dq_acc[size_t(d)] += A(scale) * dS * load(kj[d]);
              }
            }
            for (int64_t d = 0; d < D; d++) pdq[row * D + d] = store<T>(dq_acc[size_t(d)]);
          }
        }
        for (int64_t j = 0; j < L; j++)
          for (int64_t d = 0; d < D; d++) {
            const int64_t o = ((t0 + j) * Hkv + hk) * D + d;
            pdk[o] = store<T>(dk_acc[size_t(j * D + d)]);
            pdv[o] = store<T>(dv_acc[size_t(j * D + d)]);
          }
      }
    }
  });
}

}  // namespace lmf::cpu
