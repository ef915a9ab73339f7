#include "lmforge/core/tensor.h"

#include <cstring>
#include <sstream>

#include "lmforge/core/device_memory.h"

namespace lmf {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); i++) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int i = int(s.size()) - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// ---- Storage -------------------------------------------------------------------------------
Storage::Storage(Device d, size_t nbytes) : device_(d), nbytes_(nbytes) {
  data_ = device_alloc(d, nbytes);
}
Storage::Storage(Device d, void* data, size_t nbytes, std::shared_ptr<void> keep_alive)
    : device_(d), data_(data), nbytes_(nbytes), keep_alive_(std::move(keep_alive)), borrowed_(true) {}
Storage::~Storage() {
  if (!borrowed_) device_free(device_, data_, nbytes_);
}

// ---- Tensor --------------------------------------------------------------------------------
Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset,
               DType dtype)
    : storage_(std::move(storage)), shape_(std::move(shape)), strides_(std::move(strides)),
      offset_(offset), dtype_(dtype) {
  LMF_CHECK(shape_.size() == strides_.size());
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (auto d : shape)
    if (d < 0) fail("Tensor::empty: negative dimension in shape ", shape_str(shape));
  auto st = std::make_shared<Storage>(device, size_t(shape_numel(shape)) * dtype_size(dtype));
  return Tensor(std::move(st), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

namespace {
template <class T>
void fill_host(void* p, int64_t n, T v) {
  T* q = static_cast<T*>(p);
  for (int64_t i = 0; i < n; i++) q[i] = v;
}

// Writes host float values into raw host memory of dtype `t`.
void floats_to_host(const float* src, int64_t n, DType t, void* dst) {
  switch (t) {
    case DType::f32: std::memcpy(dst, src, n * 4); break;
    case DType::f64: for (int64_t i = 0; i < n; i++) static_cast<double*>(dst)[i] = src[i]; break;
    case DType::bf16: for (int64_t i = 0; i < n; i++) static_cast<bf16*>(dst)[i] = float_to_bf16(src[i]); break;
    case DType::f16: for (int64_t i = 0; i < n; i++) static_cast<f16*>(dst)[i] = float_to_f16(src[i]); break;
    case DType::i32: for (int64_t i = 0; i < n; i++) static_cast<int32_t*>(dst)[i] = int32_t(src[i]); break;
    case DType::i64: for (int64_t i = 0; i < n; i++) static_cast<int64_t*>(dst)[i] = int64_t(src[i]); break;
    case DType::u8: for (int64_t i = 0; i < n; i++) static_cast<uint8_t*>(dst)[i] = uint8_t(src[i]); break;
  }
}

}  // namespace

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor host = empty(shape, dtype, Device::cpu());
  int64_t n = host.numel();
  switch (dtype) {
    case DType::f32: fill_host<float>(host.data_ptr(), n, float(value)); break;
    case DType::f64: fill_host<double>(host.data_ptr(), n, value); break;
    case DType::bf16: fill_host<bf16>(host.data_ptr(), n, float_to_bf16(float(value))); break;
    case DType::f16: fill_host<f16>(host.data_ptr(), n, float_to_f16(float(value))); break;
    case DType::i32: fill_host<int32_t>(host.data_ptr(), n, int32_t(value)); break;
    case DType::i64: fill_host<int64_t>(host.data_ptr(), n, int64_t(value)); break;
    case DType::u8: fill_host<uint8_t>(host.data_ptr(), n, uint8_t(value)); break;
  }
  return host.to(device);
}

Tensor Tensor::from_floats(const std::vector<float>& values, const Shape& shape, DType dtype,
                           Device device) {
  if (int64_t(values.size()) != shape_numel(shape))
    fail("Tensor::from_floats: ", values.size(), " values for shape ", shape_str(shape));
  Tensor host = empty(shape, dtype, Device::cpu());
  floats_to_host(values.data(), host.numel(), dtype, host.data_ptr());
  return host.to(device);
}

void copy_bytes_to(const Tensor& t, const void* host_src) {
  LMF_CHECK(t.is_contiguous());
  copy_bytes(t.data_ptr(), t.device(), host_src, Device::cpu(), t.nbytes());
}

int64_t Tensor::size(int d) const {
  int n = dim();
  if (d < 0) d += n;
  if (d < 0 || d >= n) fail("Tensor::size: dim ", d, " out of range for ", str());
  return shape_[d];
}

Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int i = dim() - 1; i >= 0; i--) {
    if (shape_[i] != 1 && strides_[i] != expect) return false;
    expect *= shape_[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  return "Tensor(" + std::string(dtype_name(dtype_)) + ", " + device().str() + ", " +
         shape_str(shape_) + ")";
}

void* Tensor::data_ptr() const {
  if (!storage_) fail("Tensor::data_ptr: undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * int64_t(dtype_size(dtype_));
}

Tensor Tensor::view(const Shape& shape) const {
  if (!is_contiguous()) fail("Tensor::view: needs a contiguous tensor, got strides ", shape_str(strides_));
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < int(s.size()); i++) {
    if (s[i] == -1) {
      if (infer >= 0) fail("Tensor::view: more than one -1 in ", shape_str(shape));
      infer = i;
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel() % known != 0)
      fail("Tensor::view: cannot view ", shape_str(shape_), " as ", shape_str(shape));
    s[infer] = numel() / known;
  }
  if (shape_numel(s) != numel())
    fail("Tensor::view: cannot view ", shape_str(shape_), " as ", shape_str(shape));
  Tensor v(storage_, s, contiguous_strides(s), offset_, dtype_);
  v.autograd_ = autograd_;  // same elements in the same order: gradients are shared flat
  return v;
}

Tensor Tensor::reshape(const Shape& shape) const {
  return is_contiguous() ? view(shape) : contiguous().view(shape);
}

Tensor Tensor::slice(int d, int64_t start, int64_t end) const {
  int n = dim();
  if (d < 0) d += n;
  if (d < 0 || d >= n) fail("Tensor::slice: dim out of range for ", str());
  if (start < 0 || end < start || end > shape_[d])
    fail("Tensor::slice: range [", start, ", ", end, ") out of bounds for dim ", d, " of ", str());
  Shape s = shape_;
  s[d] = end - start;
  return Tensor(storage_, s, strides_, offset_ + start * strides_[d], dtype_);
}

Tensor Tensor::select(int d, int64_t index) const {
  int n = dim();
  if (d < 0) d += n;
  if (d < 0 || d >= n || index < 0 || index >= shape_[d])
    fail("Tensor::select: index ", index, " along dim ", d, " out of range for ", str());
  Shape s = shape_, st = strides_;
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return Tensor(storage_, s, st, offset_ + index * strides_[d], dtype_);
}

Tensor Tensor::transpose(int d0, int d1) const {
  int n = dim();
  if (d0 < 0) d0 += n;
  if (d1 < 0) d1 += n;
  if (d0 < 0 || d0 >= n || d1 < 0 || d1 >= n) fail("Tensor::transpose: dims out of range for ", str());
  Shape s = shape_, st = strides_;
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  return Tensor(storage_, s, st, offset_, dtype_);
}

void cpu_strided_copy(const Tensor& dst, const Tensor& src) {
  LMF_CHECK(dst.device().is_cpu() && src.device().is_cpu());
  LMF_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype());
  const int64_t n = dst.numel();
  const size_t es = dtype_size(dst.dtype());
  const int nd = dst.dim();
  char* d = static_cast<char*>(dst.data_ptr());
  const char* s = static_cast<const char*>(src.data_ptr());
  std::vector<int64_t> idx(nd, 0);
  for (int64_t i = 0; i < n; i++) {
    int64_t od = 0, os = 0;
    for (int k = 0; k < nd; k++) {
      od += idx[k] * dst.strides()[k];
      os += idx[k] * src.strides()[k];
    }
    std::memcpy(d + od * es, s + os * es, es);
    for (int k = nd - 1; k >= 0; k--) {
      if (++idx[k] < dst.shape()[k]) break;
      idx[k] = 0;
    }
  }
}

void Tensor::copy_from(const Tensor& src) const {
  if (src.shape() != shape_ || src.dtype() != dtype_)
    fail("Tensor::copy_from: ", src.str(), " into ", str());
  if (is_contiguous() && src.is_contiguous()) {
    copy_bytes(data_ptr(), device(), src.data_ptr(), src.device(), nbytes());
    return;
  }
  // Strided case: stage through contiguous host copies.
  Tensor s_host = src.device().is_cpu() ? src : src.to(Device::cpu());
  if (device().is_cpu()) {
    cpu_strided_copy(*this, s_host);
  } else {
    LMF_CHECK(is_contiguous(), "strided writes into device tensors are not supported");
    Tensor tmp = Tensor::empty(shape_, dtype_);
    cpu_strided_copy(tmp, s_host);
    copy_bytes(data_ptr(), device(), tmp.data_ptr(), Device::cpu(), nbytes());
  }
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_, device());
  out.copy_from(*this);
  return out;
}

namespace {
// A non-contiguous device view on the host, contiguous: one copy of the storage span the view
// covers (from its lowest to its highest element), then a host strided gather. (Calling to(cpu)
// here would recurse: to() itself lands here for strided device tensors.)
Tensor strided_device_to_host(const Tensor& t) {
  if (t.numel() == 0) return Tensor::empty(t.shape(), t.dtype());
  int64_t lo = 0, hi = 0;  // element offsets relative to the view's element 0
  for (int d = 0; d < t.dim(); d++) {
    const int64_t reach = (t.shape()[size_t(d)] - 1) * t.strides()[size_t(d)];
    if (reach >= 0) hi += reach; else lo += reach;
  }
  const size_t es = dtype_size(t.dtype());
  Tensor span = Tensor::empty({hi - lo + 1}, t.dtype());
  copy_bytes(span.data_ptr(), Device::cpu(), static_cast<const char*>(t.data_ptr()) + lo * int64_t(es), t.device(),
             size_t(hi - lo + 1) * es);
  Tensor view(span.storage(), t.shape(), t.strides(), -lo, t.dtype());
  return view.clone();
}
}  // namespace

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor src = device().is_cpu() ? contiguous() : *this;
  if (!src.is_contiguous()) src = strided_device_to_host(src);
  if (dev.is_cpu() && src.device().is_cpu()) return src;
  Tensor out = empty(shape_, dtype_, dev);
  copy_bytes(out.data_ptr(), dev, src.data_ptr(), src.device(), nbytes());
  return out;
}

void Tensor::zero_() const {
  if (!is_contiguous()) fail("Tensor::zero_: needs a contiguous tensor");
  fill_zero_bytes(data_ptr(), device(), nbytes());
}

std::vector<double> Tensor::to_double_vector() const {
  Tensor h = to(Device::cpu()).contiguous();
  std::vector<double> out(size_t(h.numel()));
  for (int64_t i = 0; i < h.numel(); i++) out[i] = load_element(h.data_ptr(), i, dtype_);
  return out;
}

std::vector<float> Tensor::to_float_vector() const {
  auto d = to_double_vector();
  return std::vector<float>(d.begin(), d.end());
}

double Tensor::item() const {
  if (numel() != 1) fail("Tensor::item: needs one element, got ", str());
  return to_double_vector()[0];
}

}  // namespace lmf
