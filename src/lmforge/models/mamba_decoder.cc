#include "lmforge/models/mamba_decoder.h"

#include <cmath>
#include <string>

namespace lmf {

namespace {

// The fp32 master weight `name`, on the host and contiguous: the store's own memory when it
// already is (CPU store), else a one-time host copy (CUDA store). Checks the element count
// against the config so a mismatched store fails here rather than reading out of bounds.
Tensor host_weight(const ParamStore& store, const std::string& name, const Shape& shape) {
  if (!store.has(name)) fail("[mamba_decoder] parameter '", name, "' is missing from the model");
  Tensor m = store.master(name);
  if (m.numel() != shape_numel(shape))
    fail("[mamba_decoder] parameter '", name, "' has shape ", shape_str(m.shape()), ", the config implies ",
         shape_str(shape));
  if (m.device().is_cpu() && m.is_contiguous()) return m;
  return m.to(Device::cpu()).contiguous();
}

const float* ptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// sum_k a[k] b[k] with 16 independent fp32 partial sums (the register blocking of an fp32
// GEMM kernel; about 1.6x faster than fp64 sums on this matrix-vector bound path, with errors
// of the same order as the sgemm the full forward uses), combined in a fixed order: the result
// depends only on the two rows, never on the batch size or the thread count, which is what
// makes prefill bit-identical to single steps.
float dot(const float* a, const float* b, int64_t n) {
  float s[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int j = 0; j < 16; j++) s[j] += a[k + j] * b[k + j];
  for (int j = 0; k < n; k++, j++) s[j] += a[k] * b[k];
  for (int w = 8; w >= 1; w /= 2)  // pairwise: 16 -> 8 -> 4 -> 2 -> 1
    for (int j = 0; j < w; j++) s[j] += s[j + w];
  return s[0];
}

// y[t, o] = x[t, :] . W[o, :] + bias[o] for t < rows; x rows are `ldx` apart, W is [out, in]
// row-major, bias may be null. Parallel over output features: each weight row is read once
// for all rows of x.
void linear_rows(const float* x, int64_t rows, int64_t ldx, const float* W, const float* bias, int64_t in,
                 int64_t out, float* y) {
  const bool big = rows * in * out > (int64_t(1) << 16);
#pragma omp parallel for if (big) schedule(static)
  for (int64_t o = 0; o < out; o++) {
    const float* w = W + o * in;
    const double b = bias ? double(bias[o]) : 0.0;
    for (int64_t t = 0; t < rows; t++) y[t * out + o] = float(double(dot(x + t * ldx, w, in)) + b);
  }
}

// HF MambaRMSNorm on fp32 rows: h = x * rsqrt(mean(x^2) + eps), cast to the input dtype (f32),
// then weight * h.
void rms_norm_rows(const float* x, int64_t rows, int64_t H, const float* w, double eps, float* y) {
  for (int64_t t = 0; t < rows; t++) {
    const float* xr = x + t * H;
    double ss = 0;
    for (int64_t k = 0; k < H; k++) ss += double(xr[k]) * double(xr[k]);
    const double var = ss / double(H);
    const double r = 1.0 / std::sqrt(var + eps);
    for (int64_t k = 0; k < H; k++) y[t * H + k] = w[k] * float(double(xr[k]) * r);
  }
}

double silu(double v) { return v / (1.0 + std::exp(-v)); }
// PyTorch F.softplus(beta=1, threshold=20), as HF's dt uses.
double softplus(double v) { return v > 20.0 ? v : std::log1p(std::exp(v)); }

}  // namespace

MambaDecoder::MambaDecoder(MambaModel& model, int64_t batch) : MambaDecoder(model.config(), model.params(), batch) {}

MambaDecoder::MambaDecoder(const MambaConfig& c, const ParamStore& store, int64_t batch) : cfg_(c), batch_(batch) {
  if (batch < 1) fail("[mamba_decoder] batch must be >= 1, got ", batch);
  if (!store.finalized()) fail("[mamba_decoder] the parameter store is not finalized");
  const int64_t V = c.vocab_size, H = c.hidden_size, I = c.intermediate_size, N = c.state_size,
                R = c.time_step_rank, K = c.conv_kernel;
  embed_ = host_weight(store, "backbone.embeddings.weight", {V, H});
  norm_f_ = host_weight(store, "backbone.norm_f.weight", {H});
  lm_head_ = c.tie_word_embeddings ? embed_ : host_weight(store, "lm_head.weight", {V, H});
  for (int l = 0; l < c.num_hidden_layers; l++) {
    const std::string p = "backbone.layers." + std::to_string(l) + ".";
    auto w = [&](const std::string& s, const Shape& shape) { return host_weight(store, p + s, shape); };
    Layer L;
    L.norm_w = w("norm.weight", {H});
    L.in_w = w("mixer.in_proj.weight", {2 * I, H});
    if (c.use_bias) L.in_b = w("mixer.in_proj.bias", {2 * I});
    L.conv_w = w("mixer.conv1d.weight", {I, 1, K});
    if (c.use_conv_bias) L.conv_b = w("mixer.conv1d.bias", {I});
    L.x_w = w("mixer.x_proj.weight", {R + 2 * N, I});
    L.dt_w = w("mixer.dt_proj.weight", {I, R});
    L.dt_b = w("mixer.dt_proj.bias", {I});
    const Tensor A_log = w("mixer.A_log", {I, N});
    L.A.resize(size_t(I * N));
    for (int64_t k = 0; k < I * N; k++) L.A[size_t(k)] = -std::exp(double(A_log.data<float>()[k]));
    L.D = w("mixer.D", {I});
    L.out_w = w("mixer.out_proj.weight", {H, I});
    if (c.use_bias) L.out_b = w("mixer.out_proj.bias", {H});
    L.conv_state = Tensor::zeros({batch, I, K}, DType::f32);
    L.ssm_state = Tensor::zeros({batch, I, N}, DType::f32);
    layers_.push_back(std::move(L));
  }
}

void MambaDecoder::reset() {
  for (auto& L : layers_) {
    L.conv_state.zero_();
    L.ssm_state.zero_();
  }
  position_ = 0;
}

const Tensor& MambaDecoder::conv_state(int layer) const {
  if (layer < 0 || layer >= int(layers_.size()))
    fail("[mamba_decoder] conv_state: layer ", layer, " out of range [0, ", layers_.size(), ")");
  return layers_[size_t(layer)].conv_state;
}

const Tensor& MambaDecoder::ssm_state(int layer) const {
  if (layer < 0 || layer >= int(layers_.size()))
    fail("[mamba_decoder] ssm_state: layer ", layer, " out of range [0, ", layers_.size(), ")");
  return layers_[size_t(layer)].ssm_state;
}

void MambaDecoder::check_ids(const std::vector<int32_t>& ids, int64_t length) const {
  if (length < 1) fail("[mamba_decoder] prefill: length must be >= 1, got ", length);
  if (int64_t(ids.size()) != batch_ * length)
    fail("[mamba_decoder] expected ", batch_ * length, " token ids (batch ", batch_, " x length ", length, "), got ",
         ids.size());
  for (size_t i = 0; i < ids.size(); i++)
    if (ids[i] < 0 || ids[i] >= cfg_.vocab_size)
      fail("[mamba_decoder] token id ", ids[i], " (row ", int64_t(i) / length, ", position ", int64_t(i) % length,
           ") is outside the vocabulary [0, ", cfg_.vocab_size, ")");
}

Tensor MambaDecoder::step(const std::vector<int32_t>& ids) {
  check_ids(ids, 1);
  return run(ids, 1);
}

Tensor MambaDecoder::prefill(const std::vector<int32_t>& ids, int64_t length) {
  check_ids(ids, length);
  return run(ids, length);
}

Tensor MambaDecoder::run(const std::vector<int32_t>& ids, int64_t length) {
  const int64_t B = batch_, H = cfg_.hidden_size, V = cfg_.vocab_size, rows = B * length;
  // The residual stream x [B, length, H], fp32 (HF's fp32 model; residual_in_fp32 changes
  // nothing there).
  std::vector<float> x(size_t(rows * H));
  const float* emb = embed_.data<float>();
  for (int64_t r = 0; r < rows; r++)
    for (int64_t k = 0; k < H; k++) x[size_t(r * H + k)] = emb[int64_t(ids[size_t(r)]) * H + k];
  for (auto& L : layers_) run_layer(L, x, length);
  // norm_f and the LM head for the last position of each row only.
  std::vector<float> last(size_t(B * H));
  for (int64_t b = 0; b < B; b++)
    rms_norm_rows(x.data() + ((b + 1) * length - 1) * H, 1, H, ptr(norm_f_), cfg_.layer_norm_epsilon,
                  last.data() + b * H);
  Tensor logits = Tensor::empty({B, V}, DType::f32);
  linear_rows(last.data(), B, H, lm_head_.data<float>(), nullptr, H, V, logits.data<float>());
  position_ += length;
  return logits;
}

void MambaDecoder::run_layer(Layer& L, std::vector<float>& x, int64_t length) {
  const MambaConfig& c = cfg_;
  const int64_t B = batch_, H = c.hidden_size, I = c.intermediate_size, N = c.state_size, R = c.time_step_rank,
                K = c.conv_kernel, rows = B * length, XD = R + 2 * N;
  std::vector<float> xn(size_t(rows * H)), uz(size_t(rows * 2 * I)), conv_out(size_t(rows * I));
  std::vector<float> xdbl(size_t(rows * XD)), dt_lin(size_t(rows * I)), y(size_t(rows * I)), out(size_t(rows * H));
  rms_norm_rows(x.data(), rows, H, ptr(L.norm_w), c.layer_norm_epsilon, xn.data());
  linear_rows(xn.data(), rows, H, ptr(L.in_w), ptr(L.in_b), H, 2 * I, uz.data());  // [rows, u | z]

  // Causal conv, one token at a time per channel: roll the window left, append u (HF
  // update_conv_state in decode), then c = SiLU(window . w + bias).
  float* cs = L.conv_state.data<float>();
  const float *cw = ptr(L.conv_w), *cb = ptr(L.conv_b);
#pragma omp parallel for collapse(2) if (B * I * length * K > (1 << 16)) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < I; i++) {
      float* s = cs + (b * I + i) * K;
      for (int64_t t = 0; t < length; t++) {
        const int64_t r = b * length + t;
        for (int64_t j = 0; j + 1 < K; j++) s[j] = s[j + 1];
        s[K - 1] = uz[size_t(r * 2 * I + i)];
        double acc = cb ? double(cb[i]) : 0.0;
        for (int64_t j = 0; j < K; j++) acc += double(s[j]) * double(cw[i * K + j]);
        conv_out[size_t(r * I + i)] = float(silu(acc));
      }
    }

  // (dt_raw | B | C) = x_proj(c); dt_proj without its bias (added before softplus below, in
  // double, as the full-sequence scan does).
  linear_rows(conv_out.data(), rows, I, ptr(L.x_w), nullptr, I, XD, xdbl.data());
  linear_rows(xdbl.data(), rows, XD, ptr(L.dt_w), nullptr, R, I, dt_lin.data());

  // Selective scan, one step per token from the cached h (fp32 between steps).
  float* hs = L.ssm_state.data<float>();
  const double* A = L.A.data();
  const float *Dp = ptr(L.D), *dt_b = ptr(L.dt_b);
#pragma omp parallel for collapse(2) if (B * I * length * N > (1 << 15)) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < I; i++) {
      float* h = hs + (b * I + i) * N;
      for (int64_t t = 0; t < length; t++) {
        const int64_t r = b * length + t;
        const double dt = softplus(double(dt_lin[size_t(r * I + i)]) + double(dt_b[i]));
        const double u = conv_out[size_t(r * I + i)];
        const float* Bm = xdbl.data() + r * XD + R;
        const float* Cm = Bm + N;
        double acc = 0;
        for (int64_t n = 0; n < N; n++) {
          const double hn = std::exp(dt * A[i * N + n]) * double(h[n]) + dt * double(Bm[n]) * u;
          h[n] = float(hn);
          acc += hn * double(Cm[n]);
        }
        acc += u * double(Dp[i]);
        const double z = uz[size_t(r * 2 * I + I + i)];
        y[size_t(r * I + i)] = float(acc * silu(z));
      }
    }

  linear_rows(y.data(), rows, I, ptr(L.out_w), ptr(L.out_b), I, H, out.data());
  for (size_t k = 0; k < x.size(); k++) x[k] += out[k];
}

}  // namespace lmf
