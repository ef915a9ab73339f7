// Tensor: shared storage + shape + strides + element offset, with a dtype and a device.
//
// Contract
//  - Copying a Tensor is cheap and aliases the same storage (like torch.Tensor). clone() copies.
//  - Shapes and strides are in elements; strides may be any non-negative values (views).
//    Kernels that need contiguity say so and callers use contiguous().
//  - View functions (view, slice, transpose, select) never copy. view()/reshape() of a
//    contiguous tensor keep its autograd record (same elements in the same order, and
//    gradients accumulate flat, so the record is shape-agnostic); slice/select/transpose drop
//    it — the differentiable versions live in ops/.
//  - Tensor carries an optional autograd record (AutogradMeta, defined in autograd/); core only
//    stores the pointer.
//  - Errors from bad shapes/dtypes/devices are lmf::Error with the function name as prefix.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/core/device.h"
#include "lmforge/core/dtype.h"
#include "lmforge/core/error.h"

namespace lmf {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// One device allocation. Freed (returned to its allocator) when the last Tensor lets go.
class Storage {
 public:
  Storage(Device d, size_t nbytes);
  // Wraps memory owned elsewhere (e.g. an mmap); `keep_alive` is held until destruction.
  Storage(Device d, void* data, size_t nbytes, std::shared_ptr<void> keep_alive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  Device device_;
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  std::shared_ptr<void> keep_alive_;  // held for borrowed memory (may be empty)
  bool borrowed_ = false;             // memory owned elsewhere: never freed here
};

struct AutogradMeta;  // autograd/tape.h

class Tensor {
 public:
  Tensor() = default;

  // ---- creation -------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  // Filled with `value` converted to dtype (cpu fill, then copied to the device).
  static Tensor full(const Shape& shape, double value, DType dtype, Device device = Device::cpu());
  // Copies host values into a new tensor of the matching dtype on `device`.
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                            Device device = Device::cpu());
  // Host floats converted to `dtype` (f32/f64/bf16/f16/i32/i64/u8).
  static Tensor from_floats(const std::vector<float>& values, const Shape& shape, DType dtype,
                            Device device = Device::cpu());
  // Wraps existing storage.
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  // ---- properties -----------------------------------------------------------------------
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  int dim() const { return int(shape_.size()); }
  int64_t size(int d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const;
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  std::string str() const;  // "Tensor(bf16, cuda:0, [2, 3])"

  // Pointer to element 0 of this view (storage base + offset).
  void* data_ptr() const;
  // Typed pointer; throws if T does not match dtype().
  template <class T>
  T* data() const;

  // ---- views (no copy) --------------------------------------------------------------------
  Tensor view(const Shape& shape) const;          // requires contiguous; one dim may be -1
  Tensor reshape(const Shape& shape) const;       // view if contiguous, else copy
  Tensor slice(int dim, int64_t start, int64_t end) const;  // [start, end) along dim
  Tensor select(int dim, int64_t index) const;    // drops dim
  Tensor transpose(int d0, int d1) const;
  Tensor flatten() const { return reshape({numel()}); }

  // ---- copies -----------------------------------------------------------------------------
  Tensor contiguous() const;                      // self if already contiguous
  Tensor clone() const;                           // always a fresh contiguous copy
  Tensor to(Device device) const;                 // self if already there
  // Copies src (same shape, same dtype, any device/strides) into this tensor's elements.
  void copy_from(const Tensor& src) const;
  void zero_() const;                             // requires contiguous

  // Host copy converted to float / double (any dtype, any device): for tests and I/O.
  std::vector<float> to_float_vector() const;
  std::vector<double> to_double_vector() const;
  double item() const;                            // numel() == 1

  // ---- autograd hook (see autograd/tape.h) -------------------------------------------------
  const std::shared_ptr<AutogradMeta>& autograd() const { return autograd_; }
  void set_autograd(std::shared_ptr<AutogradMeta> m) { autograd_ = std::move(m); }

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_, strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::f32;
  std::shared_ptr<AutogradMeta> autograd_;
};

// Element-wise copy between two tensors of the same shape and dtype on the CPU, honouring
// strides. Used by contiguous()/copy_from(); CUDA strided copies stage through the host
// only when one side is non-contiguous (rare: our kernels take contiguous inputs).
void cpu_strided_copy(const Tensor& dst, const Tensor& src);

// Copies t.nbytes() bytes from host memory into contiguous tensor t (any device).
void copy_bytes_to(const Tensor& t, const void* host_src);

template <class T>
T* Tensor::data() const {
  if (dtype_of<T>::value != dtype_)
    fail("Tensor::data: tensor is ", dtype_name(dtype_), ", asked for ",
         dtype_name(dtype_of<T>::value));
  return static_cast<T*>(data_ptr());
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  if (int64_t(values.size()) != shape_numel(shape))
    fail("Tensor::from_vector: ", values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>::value, device);
  copy_bytes_to(t, values.data());
  return t;
}

}  // namespace lmf
