#include "lmforge/ops/cross_entropy.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/cross_entropy_chunks.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"

namespace lmf::ops {

namespace ag = autograd;

namespace {

constexpr int64_t kIgnoreIndex = -100;

DType acc_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

// Validated, flattened, contiguous arguments plus the host-side row statistics.
struct Prepared {
  Tensor h;        // [N, H]
  Tensor W;        // [V, H]
  Tensor bias;     // [V] or undefined
  Tensor targets;  // [N] i32/i64
  Tensor weights;  // [N] f32 or undefined
  int64_t count = 0;
  double weight_sum = 0;
};

Prepared prepare(const char* op, const char* h_name, const Tensor& h, const Tensor& W, const Tensor& bias,
                 const Tensor& targets, const Tensor& weights) {
  check_defined(op, h_name, h);
  check_defined(op, "W", W);
  check_defined(op, "targets", targets);
  check_floating(op, h_name, h);
  if (h.dim() < 2)
    fail("[", op, "] ", h_name, " must be [..., H] with at least 2 dimensions, got ", shape_str(h.shape()));
  check_dim(op, "W", W, 2);
  const int64_t H = h.size(-1), N = h.numel() / std::max<int64_t>(H, 1), V = W.size(0);
  if (H == 0 || N == 0) fail("[", op, "] ", h_name, " is empty: ", shape_str(h.shape()));
  if (W.size(1) != H)
    fail("[", op, "] W must be [V, ", H, "] to match ", h_name, " ", shape_str(h.shape()), ", got ",
         shape_str(W.shape()));
  if (V == 0) fail("[", op, "] W has no rows (vocabulary size 0)");
  if (W.dtype() != h.dtype())
    fail("[", op, "] W is ", dtype_name(W.dtype()), " but ", h_name, " is ", dtype_name(h.dtype()),
         "; they must match");
  check_same_device(op, h, W);
  check_same_device(op, h, targets);
  check_index_dtype(op, "targets", targets);
  if (targets.numel() != N)
    fail("[", op, "] targets must have ", N, " elements (one per row of ", h_name, " ", shape_str(h.shape()), "), got ",
         shape_str(targets.shape()));

  if (bias.defined()) {
    check_floating(op, "bias", bias);
    if (bias.dim() != 1 || bias.size(0) != V)
      fail("[", op, "] bias must be [", V, "] (one per row of W), got ", shape_str(bias.shape()));
    if (bias.dtype() != W.dtype())
      fail("[", op, "] bias is ", dtype_name(bias.dtype()), " but W is ", dtype_name(W.dtype()), "; they must match");
    check_same_device(op, W, bias);
  }

  Prepared p;
  p.h = h.contiguous().view({N, H});
  p.W = W.contiguous();
  if (bias.defined()) p.bias = bias.contiguous();
  p.targets = targets.contiguous().view({N});

  std::vector<float> w_host;
  if (weights.defined()) {
    check_floating(op, "weights", weights);
    check_same_device(op, h, weights);
    if (weights.numel() != N)
      fail("[", op, "] weights must have ", N, " elements (one per target), got ", shape_str(weights.shape()));
    w_host = weights.to_float_vector();
    // Other floating dtypes go to the kernels as f32 (uploaded from the host copy we need anyway).
    p.weights = weights.dtype() == DType::f32 ? weights.contiguous().view({N})
                                              : Tensor::from_floats(w_host, {N}, DType::f32, weights.device());
  }

  // Targets are validated on the host: the kernels index W with them.
  Tensor t_host = p.targets.to(Device::cpu());
  for (int64_t n = 0; n < N; n++) {
    const int64_t t = t_host.dtype() == DType::i32 ? t_host.data<int32_t>()[n] : t_host.data<int64_t>()[n];
    if (t == kIgnoreIndex) continue;
    if (t < 0 || t >= V)
      fail("[", op, "] targets[", n, "] = ", t, " is out of range: expected [0, ", V, ") or -100 (ignore_index)");
    p.count++;
    p.weight_sum += w_host.empty() ? 1.0 : double(w_host[size_t(n)]);
  }
  return p;
}

// Where a weight-like input's f32 (f64) gradient goes: straight into its parameter slot when
// that is contiguous and of the accumulation dtype, else a zeroed tensor that is either returned
// to the tape (no slot) or added into the slot afterwards (`slot` defined).
struct AccTarget {
  Tensor target, ret, slot;
};

AccTarget acc_target(const ag::GradContext& ctx, int j, const Tensor& like, DType acc) {
  AccTarget a;
  if (!ctx.needs_grad(j)) return a;
  a.slot = ctx.param_grad_slot(j);
  if (a.slot.defined() && a.slot.dtype() == acc && a.slot.is_contiguous()) {
    a.target = a.slot;  // parameter: accumulate straight into its fp32 slot
    a.slot = Tensor();
  } else {
    a.target = Tensor::zeros(like.shape(), acc, like.device());
    if (!a.slot.defined()) a.ret = a.target;
  }
  return a;
}

// 1/16 of the device's memory, at most 4 GiB: 4 GiB on an 80 GB H100 (8192 tokens x 131k
// vocabulary), 1.5 GiB on a 24 GB card.
int64_t default_logits_cache_mb(Device d) {
#if LMF_WITH_CUDA
  return std::min<int64_t>(4096, int64_t(cuda::device_total_bytes(d.index) >> 24));
#else
  (void)d;
  return 0;
#endif
}

// The whole-logits buffer of the CUDA kernels (kernel_list.inc), or undefined: only on CUDA, when
// a backward will follow (the caller checks), no chunk sizes are forced and N x ld f32 fits the budget.
Tensor logits_cache(const Tensor& h, int64_t V, const CrossEntropyOptions& opt) {
  if (!h.device().is_cuda() || opt.chunk_rows > 0 || opt.chunk_vocab > 0) return Tensor();
  int64_t budget_mb = opt.logits_cache_mb;
  if (budget_mb < 0) {
    const char* env = std::getenv("LMF_CE_LOGITS_CACHE_MB");
    budget_mb = env && *env ? std::atoll(env) : default_logits_cache_mb(h.device());
  }
  const int64_t N = h.size(0), ld = (V + 7) / 8 * 8;
  if (budget_mb <= 0 || N == 0 || N * ld * 4 > (budget_mb << 20)) return Tensor();
  return Tensor::empty({N, ld}, DType::f32, h.device());
}

CrossEntropyResult run(const char* op, const char* h_name, const Tensor& h_in, const Tensor& W_in,
                       const Tensor& bias_in, const Tensor& targets, const Tensor& weights,
                       const CrossEntropyOptions& opt) {
  Prepared p = prepare(op, h_name, h_in, W_in, bias_in, targets, weights);
  const int64_t N = p.h.size(0);
  const Device dev = p.h.device();
  const DType acc = acc_dtype(p.h.dtype());
  const CrossEntropyChunks chunks{opt.chunk_rows, opt.chunk_vocab};

  Tensor lse = Tensor::empty({N}, acc, dev);
  Tensor row_loss = Tensor::empty({N}, acc, dev);
  Tensor hits = opt.want_topk ? Tensor::empty({3}, DType::i64, dev) : Tensor();
  const bool backward_follows = ag::grad_mode_enabled() && (ag::requires_grad(h_in) || ag::requires_grad(W_in) ||
                                                           ag::requires_grad(bias_in));
  Tensor logits = backward_follows ? logits_cache(p.h, p.W.size(0), opt) : Tensor();
  {
    CrossEntropyChunksGuard guard(chunks);
    LMF_DISPATCH(p.h, cross_entropy_forward, p.h, p.W, p.bias, p.targets, p.weights, lse, row_loss, hits, logits);
  }

  CrossEntropyResult res;
  res.count = p.count;
  res.weight_sum = p.weight_sum;
  res.row_loss = row_loss;
  if (opt.want_topk) {
    Tensor hh = hits.to(Device::cpu());
    for (int j = 0; j < 3; j++) res.topk_hits[size_t(j)] = hh.data<int64_t>()[j];
  }
  // The reduction runs on the host over N per-row values (N is a few thousand): it needs the
  // host synchronization that reading the targets already paid for.
  double total = 0;
  for (double v : row_loss.to_double_vector()) total += v;
  double inv_denom = 1.0;
  if (opt.reduction == CrossEntropyReduction::mean) {
    const double denom = opt.divide_by_weight_sum ? p.weight_sum : double(p.count);
    inv_denom = denom > 0 ? 1.0 / denom : 0.0;
  }
  res.loss = Tensor::full({1}, total * inv_denom, acc, dev);
  res.sum_loss = Tensor::full({1}, total, acc, dev);

  const Shape h_shape = h_in.shape();
  Tensor h = ag::detach(p.h), W = ag::detach(p.W), b = p.bias.defined() ? ag::detach(p.bias) : Tensor();
  Tensor tg = p.targets, wt = p.weights;
  ag::record(op, {h_in, W_in, bias_in}, {&res.loss, &res.sum_loss},
             [h, W, b, tg, wt, lse, inv_denom, chunks, h_shape, acc, logits](ag::GradContext& ctx) -> std::vector<Tensor> {
               // d total / d (sum of row losses): the upstream gradients of both outputs (read on
               // the host: one sync per backward of the loss).
               const double g = ctx.grad_output(0).item() * inv_denom + ctx.grad_output(1).item();
               Tensor dh;
               if (ctx.needs_grad(0)) dh = Tensor::empty(h.shape(), h.dtype(), h.device());
               AccTarget dW = acc_target(ctx, 1, W, acc);
               AccTarget db = b.defined() ? acc_target(ctx, 2, b, acc) : AccTarget();
               if (g == 0.0) {
                 if (dh.defined()) dh.zero_();
               } else if (dh.defined() || dW.target.defined() || db.target.defined()) {
                 CrossEntropyChunksGuard guard(chunks);
                 LMF_DISPATCH(h, cross_entropy_backward, h, W, b, tg, wt, lse, float(g), dh, dW.target, db.target,
                              logits);
               }
               // A slot of another dtype or layout gets the gradient added afterwards.
               for (AccTarget* a : {&dW, &db})
                 if (a->slot.defined()) LMF_DISPATCH(a->slot, accumulate, a->slot, a->target);
               return {dh.defined() ? dh.view(h_shape) : Tensor(), dW.ret, db.ret};
             });
  return res;
}

}  // namespace

CrossEntropyResult cross_entropy(const Tensor& h, const Tensor& W, const Tensor& targets, const Tensor& weights,
                                 const CrossEntropyOptions& options) {
  return run("cross_entropy", "h", h, W, Tensor(), targets, weights, options);
}

CrossEntropyResult cross_entropy_with_bias(const Tensor& h, const Tensor& W, const Tensor& bias, const Tensor& targets,
                                           const Tensor& weights, const CrossEntropyOptions& options) {
  return run("cross_entropy", "h", h, W, bias, targets, weights, options);
}

CrossEntropyResult cross_entropy_logits(const Tensor& logits, const Tensor& targets, const Tensor& weights,
                                        const CrossEntropyOptions& options) {
  check_defined("cross_entropy_logits", "logits", logits);
  check_floating("cross_entropy_logits", "logits", logits);
  if (logits.dim() < 2)
    fail("[cross_entropy_logits] logits must be [..., C] with at least 2 dimensions, got ", shape_str(logits.shape()));
  // logits = logits I^T: the fused kernel with an identity projection (exact in every dtype).
  const int64_t C = logits.size(-1);
  std::vector<float> eye(size_t(C * C), 0.f);
  for (int64_t c = 0; c < C; c++) eye[size_t(c * C + c)] = 1.f;
  Tensor I = Tensor::from_floats(eye, {C, C}, logits.dtype(), logits.device());
  return run("cross_entropy_logits", "logits", logits, I, Tensor(), targets, weights, options);
}

}  // namespace lmf::ops
