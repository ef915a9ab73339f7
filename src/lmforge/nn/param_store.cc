#include "lmforge/nn/param_store.h"

#include <algorithm>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"

namespace lmf {

namespace {
constexpr int64_t kAlign = 64;
int64_t align_up(int64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }
Tensor flat_view(const Tensor& flat, int64_t offset, const Shape& shape) {
  return Tensor(flat.storage(), shape, contiguous_strides(shape), flat.offset() + offset, flat.dtype());
}
}  // namespace

ParamStore::ParamStore(Device device, DType compute_dtype) : device_(device), compute_dtype_(compute_dtype) {
  if (compute_dtype != DType::f32 && compute_dtype != DType::bf16 && compute_dtype != DType::f64)
    fail("ParamStore: compute dtype must be f32, bf16 or f64, got ", dtype_name(compute_dtype));
}

void ParamStore::add(const ParamSpec& spec) {
  if (finalized_) fail("ParamStore::add(", spec.name, "): store already finalized");
  if (index_.count(spec.name)) fail("ParamStore::add: duplicate parameter name '", spec.name, "'");
  for (auto d : spec.shape)
    if (d <= 0) fail("ParamStore::add(", spec.name, "): bad shape ", shape_str(spec.shape));
  index_[spec.name] = specs_.size();
  specs_.push_back(spec);
}

void ParamStore::set_trainable(const std::string& name, bool trainable) {
  if (finalized_) fail("ParamStore::set_trainable(", name, "): store already finalized");
  auto it = index_.find(name);
  if (it == index_.end()) fail("ParamStore: unknown parameter '", name, "'");
  specs_[it->second].trainable = trainable;
}

void ParamStore::finalize() {
  if (finalized_) return;
  // Trainable parameters first so the grad buffer and the optimizer cover one prefix.
  entries_.assign(specs_.size(), Entry{});
  int64_t off = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < specs_.size(); i++) {
      if (specs_[i].trainable != (pass == 0)) continue;
      entries_[i].offset = off;
      off = align_up(off + shape_numel(specs_[i].shape));
    }
    if (pass == 0) trainable_total_ = off;
  }
  total_ = off;
  const DType master_dtype = compute_dtype_ == DType::f64 ? DType::f64 : DType::f32;
  master_ = Tensor::zeros({std::max<int64_t>(total_, 1)}, master_dtype, device_);
  grads_ = Tensor::zeros({std::max<int64_t>(trainable_total_, 1)}, master_dtype, device_);
  if (compute_dtype_ != master_dtype) compute_ = Tensor::zeros({std::max<int64_t>(total_, 1)}, compute_dtype_, device_);
  for (size_t i = 0; i < specs_.size(); i++) {
    const ParamSpec& s = specs_[i];
    Entry& e = entries_[i];
    const bool use_master = !compute_.defined() || s.keep_fp32;
    e.forward = flat_view(use_master ? master_ : compute_, e.offset, s.shape);
    if (s.trainable) autograd::make_param(e.forward, flat_view(grads_, e.offset, s.shape), s.name);
  }
  finalized_ = true;
}

const Tensor& ParamStore::param(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("ParamStore: unknown parameter '", name, "'");
  if (!finalized_) fail("ParamStore::param(", name, "): store not finalized");
  return entries_[it->second].forward;
}

const Tensor& ParamStore::param_rows(const std::string& name, int64_t begin, int64_t end) const {
  (void)param(name);  // validates the name and that the store is finalized
  const ParamSpec& s = spec(name);
  if (s.shape.empty() || begin < 0 || end > s.shape[0] || begin >= end)
    fail("ParamStore::param_rows(", name, "): rows [", begin, ", ", end, ") outside a parameter of shape ",
         shape_str(s.shape));
  auto key = std::make_tuple(name, begin, end);
  auto it = row_views_.find(key);
  if (it != row_views_.end()) return it->second;
  Shape rows = s.shape;
  rows[0] = end - begin;
  const int64_t row_elems = shape_numel(s.shape) / s.shape[0];
  const int64_t off = entries_[index_.at(name)].offset + begin * row_elems;
  const bool use_master = !compute_.defined() || s.keep_fp32;
  Tensor view = flat_view(use_master ? master_ : compute_, off, rows);
  if (s.trainable) autograd::make_param(view, flat_view(grads_, off, rows), name + "[rows]");
  return row_views_.emplace(std::move(key), std::move(view)).first->second;
}

Tensor ParamStore::master(const std::string& name) const {
  const ParamSpec& s = spec(name);
  return flat_view(master_, entries_[index_.at(name)].offset, s.shape);
}

Tensor ParamStore::grad(const std::string& name) const {
  const ParamSpec& s = spec(name);
  if (!s.trainable) return Tensor();
  return flat_view(grads_, entries_[index_.at(name)].offset, s.shape);
}

const ParamSpec& ParamStore::spec(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("ParamStore: unknown parameter '", name, "'");
  return specs_[it->second];
}

std::vector<DecayRange> ParamStore::decay_ranges() const {
  // Walk trainable params in offset order; padding between params joins the previous range
  // (its grads are zero, so the optimizer leaves it at zero apart from decay of zeros).
  std::vector<std::pair<int64_t, size_t>> order;
  for (size_t i = 0; i < specs_.size(); i++)
    if (specs_[i].trainable) order.push_back({entries_[i].offset, i});
  std::sort(order.begin(), order.end());
  std::vector<DecayRange> out;
  for (size_t k = 0; k < order.size(); k++) {
    int64_t begin = order[k].first;
    int64_t end = k + 1 < order.size() ? order[k + 1].first : trainable_total_;
    bool wd = specs_[order[k].second].weight_decay;
    if (!out.empty() && out.back().weight_decay == wd && out.back().end == begin)
      out.back().end = end;
    else
      out.push_back({begin, end, wd});
  }
  return out;
}

void ParamStore::zero_grad() { grads_.zero_(); }

void ParamStore::sync_compute() {
  if (compute_.defined()) LMF_DISPATCH(compute_, cast, master_, compute_);
}

}  // namespace lmf
