#include "lmforge/ops/slice.h"

#include <algorithm>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/check.h"

namespace lmf::ops {

namespace ag = autograd;

namespace {

// Column offsets of pieces of these widths laid side by side.
std::vector<int64_t> offsets_of(const std::vector<int64_t>& widths) {
  std::vector<int64_t> o;
  int64_t off = 0;
  for (int64_t w : widths) {
    o.push_back(off);
    off += w;
  }
  return o;
}

// copy_column_pieces in launches of at most kMaxColumnPieces pieces.
void copy_pieces(const std::vector<Tensor>& srcs, const std::vector<int64_t>& s0, const std::vector<Tensor>& dsts,
                 const std::vector<int64_t>& d0, const std::vector<int64_t>& widths) {
  for (size_t b = 0; b < srcs.size(); b += kMaxColumnPieces) {
    const size_t e = std::min(srcs.size(), b + size_t(kMaxColumnPieces));
    auto part = [&](const auto& v) { return std::vector(v.begin() + long(b), v.begin() + long(e)); };
    LMF_DISPATCH(dsts[b], copy_column_pieces, part(srcs), part(s0), part(dsts), part(d0), part(widths));
  }
}

}  // namespace

Tensor slice_last(const Tensor& x_in, int64_t start, int64_t end) {
  check_defined("slice_last", "x", x_in);
  if (x_in.dim() == 0) fail("[slice_last] x must have at least one dimension");
  const int64_t C = x_in.size(-1);
  if (start < 0 || end > C || start > end)
    fail("[slice_last] range [", start, ", ", end, ") out of bounds for last dimension ", C);
  Tensor x = x_in.contiguous();
  Shape s = x.shape();
  s.back() = end - start;
  Tensor out = Tensor::empty(s, x.dtype(), x.device());
  LMF_DISPATCH(out, copy_columns, x, start, out, 0, end - start, false);
  Shape full = x.shape();
  ag::record("slice_last", {x_in}, {&out}, [full, start, end](ag::GradContext& ctx) -> std::vector<Tensor> {
    const Tensor& g = ctx.grad_output(0);
    Tensor dx = Tensor::zeros(full, g.dtype(), g.device());
    LMF_DISPATCH(dx, copy_columns, g, 0, dx, start, end - start, false);
    return {dx};
  });
  return out;
}

std::vector<Tensor> split_last(const Tensor& x_in, const std::vector<int64_t>& sizes) {
  check_defined("split_last", "x", x_in);
  if (x_in.dim() == 0) fail("[split_last] x must have at least one dimension");
  int64_t total = 0;
  for (int64_t w : sizes) {
    if (w < 0) fail("[split_last] negative width ", w);
    total += w;
  }
  if (total != x_in.size(-1))
    fail("[split_last] sizes sum to ", total, " but the last dimension is ", x_in.size(-1));
  // One node for all pieces: the backward writes every piece's gradient into one tensor in a
  // single pass (missing gradients arrive as zeros from the tape), instead of one zero-filled
  // full-size tensor per piece; each direction is one copy_column_pieces launch.
  Tensor x = x_in.contiguous();
  std::vector<Tensor> out;
  std::vector<Tensor*> outs;
  for (int64_t w : sizes) {
    Shape s = x.shape();
    s.back() = w;
    out.push_back(Tensor::empty(s, x.dtype(), x.device()));
  }
  copy_pieces(std::vector<Tensor>(sizes.size(), x), offsets_of(sizes), out, std::vector<int64_t>(sizes.size(), 0),
              sizes);
  for (auto& t : out) outs.push_back(&t);
  Shape full = x.shape();
  ag::record("split_last", {x_in}, outs, [full, sizes](ag::GradContext& ctx) -> std::vector<Tensor> {
    const Tensor& g0 = ctx.grad_output(0);
    Tensor dx = Tensor::empty(full, g0.dtype(), g0.device());
    std::vector<Tensor> gs;
    for (size_t i = 0; i < sizes.size(); i++) gs.push_back(ctx.grad_output(int(i)).contiguous());
    copy_pieces(gs, std::vector<int64_t>(sizes.size(), 0), std::vector<Tensor>(sizes.size(), dx), offsets_of(sizes),
                sizes);
    return {dx};
  });
  return out;
}

Tensor concat_last(const std::vector<Tensor>& xs_in) {
  if (xs_in.empty()) fail("[concat_last] no tensors");
  std::vector<Tensor> xs;
  int64_t C = 0;
  for (const auto& t : xs_in) {
    check_defined("concat_last", "x", t);
    if (t.dtype() != xs_in[0].dtype() || t.dim() != xs_in[0].dim()) fail("[concat_last] dtypes/ranks differ");
    for (int d = 0; d + 1 < t.dim(); d++)
      if (t.size(d) != xs_in[0].size(d)) fail("[concat_last] leading shapes differ: ", shape_str(t.shape()));
    check_same_device("concat_last", t, xs_in[0]);
    xs.push_back(t.contiguous());
    C += t.size(-1);
  }
  Shape s = xs[0].shape();
  s.back() = C;
  Tensor out = Tensor::empty(s, xs[0].dtype(), xs[0].device());
  std::vector<int64_t> widths;
  for (const auto& t : xs) widths.push_back(t.size(-1));
  copy_pieces(xs, std::vector<int64_t>(xs.size(), 0), std::vector<Tensor>(xs.size(), out), offsets_of(widths), widths);
  ag::record("concat_last", xs_in, {&out}, [widths](ag::GradContext& ctx) -> std::vector<Tensor> {
    ag::NoGradGuard ng;
    return split_last(ctx.grad_output(0), widths);
  });
  return out;
}

}  // namespace lmf::ops
