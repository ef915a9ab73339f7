// Raw memory on any device: allocation, copies and fills. The one seam between core and the
// CUDA backend: core declares it, backend/cuda/device_memory.cu implements the cuda side, so
// core includes no CUDA header.
//
// Contract
//  - device_alloc returns memory aligned to 256 bytes (cpu: 64), never null for nbytes > 0;
//    throws lmf::Error when out of memory or when the device is cuda and CUDA is not built.
//  - CUDA allocations go through a caching allocator (freed blocks are kept for reuse); its
//    current and peak byte counts are reported by memory_stats().
//  - copy_bytes is synchronous with respect to the host for host<->device copies, and ordered
//    on the current stream for device->device copies.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lmforge/core/device.h"

namespace lmf {

void* device_alloc(Device d, size_t nbytes);
void device_free(Device d, void* p, size_t nbytes);
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);
void fill_zero_bytes(void* dst, Device d, size_t nbytes);

struct MemoryStats {
  size_t current_bytes = 0;   // bytes handed out and not yet freed
  size_t peak_bytes = 0;      // high-water mark of current_bytes since the last reset
  size_t reserved_bytes = 0;  // bytes held from the driver (cached + in use)
};
MemoryStats memory_stats(Device d);
void reset_peak_memory(Device d);
// Waits for all work queued on the device (no-op on cpu).
void synchronize(Device d);

namespace cuda {
// Implemented in backend/cuda; declared here so core can route without CUDA headers.
void* raw_alloc(int device, size_t nbytes);
void raw_free(int device, void* p, size_t nbytes);
void raw_copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t nbytes);
void raw_zero(void* dst, size_t nbytes);
MemoryStats raw_stats(int device);
void raw_reset_peak(int device);
void raw_synchronize(int device);
int raw_device_count();
}  // namespace cuda

}  // namespace lmf
