#include "lmforge/ops/attention.h"

#include <cmath>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"
#include "lmforge/ops/grad_util.h"

namespace lmf::ops {

namespace ag = autograd;

namespace {

constexpr const char* kOp = "attention";

void check_qkv(const char* arg, const Tensor& t) {
  check_defined(kOp, arg, t);
  check_floating(kOp, arg, t);
  if (t.dim() != 3) fail("[attention] ", arg, " must be [N, heads, head_dim], got ", shape_str(t.shape()));
}

// Validates cu_seqlens against N; returns the longest sequence.
int64_t check_cu_seqlens(const std::vector<int32_t>& cu, int64_t N) {
  if (cu.empty() || cu.front() != 0)
    fail("[attention] cu_seqlens must start with 0 (got ", cu.empty() ? "an empty vector" : std::to_string(cu.front()), ")");
  int64_t max_len = 0;
  for (size_t s = 0; s + 1 < cu.size(); s++) {
    if (cu[s + 1] < cu[s])
      fail("[attention] cu_seqlens must be non-decreasing, got cu_seqlens[", s, "] = ", cu[s], " > cu_seqlens[",
           s + 1, "] = ", cu[s + 1]);
    max_len = std::max<int64_t>(max_len, cu[s + 1] - cu[s]);
  }
  if (cu.back() != N)
    fail("[attention] cu_seqlens must end with the number of tokens ", N, ", got ", cu.back());
  return max_len;
}

// cu_seqlens as an i32 tensor on `device`. Every layer of a model passes the same vector, so
// the last upload per thread is reused: a host-to-device copy waits for the stream, and one
// wait per step is enough.
Tensor cu_seqlens_tensor(const std::vector<int32_t>& cu, Device device) {
  const Shape shape{int64_t(cu.size())};
  if (device.is_cpu()) return Tensor::from_vector<int32_t>(cu, shape);
  thread_local std::vector<int32_t> cached_host;
  thread_local Tensor cached;
  if (!cached.defined() || cached.device() != device || cached_host != cu) {
    cached = Tensor::from_vector<int32_t>(cu, shape, device);
    cached_host = cu;
  }
  return cached;
}

// Kernels read strided q/k/v rows but need unit stride along head_dim.
Tensor unit_inner_stride(const Tensor& t) { return t.size(2) <= 1 || t.strides()[2] == 1 ? t : t.contiguous(); }

}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const std::vector<int32_t>& cu_seqlens,
                 const AttentionOptions& options) {
  check_qkv("q", q_in);
  check_qkv("k", k_in);
  check_qkv("v", v_in);
  check_same_device(kOp, q_in, k_in);
  check_same_device(kOp, q_in, v_in);
  if (k_in.dtype() != q_in.dtype() || v_in.dtype() != q_in.dtype())
    fail("[attention] q, k, v dtypes differ: ", dtype_name(q_in.dtype()), ", ", dtype_name(k_in.dtype()), ", ",
         dtype_name(v_in.dtype()));
  if (k_in.shape() != v_in.shape())
    fail("[attention] k and v shapes differ: ", shape_str(k_in.shape()), " and ", shape_str(v_in.shape()));
  const int64_t N = q_in.size(0), Hq = q_in.size(1), D = q_in.size(2), Hkv = k_in.size(1);
  if (k_in.size(0) != N || k_in.size(2) != D)
    fail("[attention] k must be [", N, ", heads_kv, ", D, "] to match q ", shape_str(q_in.shape()), ", got ",
         shape_str(k_in.shape()));
  if (Hq <= 0 || Hkv <= 0 || Hq % Hkv != 0)
    fail("[attention] q heads (", Hq, ") must be a positive multiple of kv heads (", Hkv, ")");
  if (D <= 0) fail("[attention] head_dim must be positive, got ", D);
  if (q_in.device().is_cuda() && D > 256) fail("[attention] head_dim ", D, " is not supported on CUDA (at most 256)");
  if (options.window_left < -1 || options.window_right < -1)
    fail("[attention] windows must be -1 (unlimited) or >= 0, got window_left ", options.window_left,
         ", window_right ", options.window_right);
  if (!std::isfinite(options.scale)) fail("[attention] scale must be finite, got ", options.scale);
  const int64_t max_seqlen = check_cu_seqlens(cu_seqlens, N);
  if (max_seqlen > (int64_t(1) << 31) - 1) fail("[attention] sequences must be shorter than 2^31 tokens");

  const float scale = options.scale != 0.f ? options.scale : float(1.0 / std::sqrt(double(D)));
  const bool causal = options.causal;
  const int64_t wl = options.window_left, wr = options.window_right;
  Tensor q = unit_inner_stride(q_in), k = unit_inner_stride(k_in), v = unit_inner_stride(v_in);
  Tensor cu = cu_seqlens_tensor(cu_seqlens, q.device());
  Tensor out = Tensor::empty({N, Hq, D}, q.dtype(), q.device());
  Tensor lse = Tensor::empty({N, Hq}, detail::acc_dtype(q.dtype()), q.device());
  if (N > 0)
    LMF_DISPATCH(q, attention_forward, q, k, v, cu, max_seqlen, scale, causal, wl, wr, out, lse);

  Tensor qs = ag::detach(q), ks = ag::detach(k), vs = ag::detach(v), os = ag::detach(out);
  ag::record("attention", {q_in, k_in, v_in}, {&out},
             [qs, ks, vs, os, lse, cu, max_seqlen, scale, causal, wl, wr](ag::GradContext& ctx) -> std::vector<Tensor> {
               Tensor dout = detail::grad_as(ctx.grad_output(0), qs.dtype());
               Tensor dq = Tensor::empty(qs.shape(), qs.dtype(), qs.device());
               Tensor dk = Tensor::empty(ks.shape(), ks.dtype(), ks.device());
               Tensor dv = Tensor::empty(vs.shape(), vs.dtype(), vs.device());
               if (qs.size(0) > 0)
                 LMF_DISPATCH(qs, attention_backward, qs, ks, vs, os, dout, lse, cu, max_seqlen, scale, causal, wl,
                              wr, dq, dk, dv);
               return {ctx.needs_grad(0) ? dq : Tensor(), ctx.needs_grad(1) ? dk : Tensor(),
                       ctx.needs_grad(2) ? dv : Tensor()};
             });
  return out;
}

}  // namespace lmf::ops
