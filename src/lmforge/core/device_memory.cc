#include "lmforge/core/device_memory.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "lmforge/core/error.h"

namespace lmf {

namespace {
// Host allocations are counted too, so memory_stats(cpu) reports what tensors hold.
std::atomic<size_t> g_cpu_current{0}, g_cpu_peak{0};

[[noreturn, maybe_unused]] void no_cuda() { fail("this lmforge was built without CUDA (LMF_CUDA=OFF)"); }
}  // namespace

void* device_alloc(Device d, size_t nbytes) {
  if (nbytes == 0) nbytes = 1;
  if (d.is_cpu()) {
    size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) fail("out of host memory allocating ", nbytes, " bytes");
    size_t cur = g_cpu_current.fetch_add(nbytes) + nbytes;
    size_t peak = g_cpu_peak.load();
    while (cur > peak && !g_cpu_peak.compare_exchange_weak(peak, cur)) {
    }
    return p;
  }
#if LMF_WITH_CUDA
  return cuda::raw_alloc(d.index, nbytes);
#else
  no_cuda();
#endif
}

void device_free(Device d, void* p, size_t nbytes) {
  if (!p) return;
  if (nbytes == 0) nbytes = 1;
  if (d.is_cpu()) {
    g_cpu_current.fetch_sub(nbytes);
    std::free(p);
    return;
  }
#if LMF_WITH_CUDA
  cuda::raw_free(d.index, p, nbytes);
#endif
}

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
#if LMF_WITH_CUDA
  cuda::raw_copy(dst, dst_dev.is_cuda(), src, src_dev.is_cuda(), nbytes);
#else
  no_cuda();
#endif
}

void fill_zero_bytes(void* dst, Device d, size_t nbytes) {
  if (nbytes == 0) return;
  if (d.is_cpu()) {
    std::memset(dst, 0, nbytes);
    return;
  }
#if LMF_WITH_CUDA
  cuda::raw_zero(dst, nbytes);
#else
  no_cuda();
#endif
}

MemoryStats memory_stats(Device d) {
  if (d.is_cpu()) return {g_cpu_current.load(), g_cpu_peak.load(), g_cpu_current.load()};
#if LMF_WITH_CUDA
  return cuda::raw_stats(d.index);
#else
  no_cuda();
#endif
}

void reset_peak_memory(Device d) {
  if (d.is_cpu()) {
    g_cpu_peak.store(g_cpu_current.load());
    return;
  }
#if LMF_WITH_CUDA
  cuda::raw_reset_peak(d.index);
#endif
}

void synchronize(Device d) {
  if (d.is_cpu()) return;
#if LMF_WITH_CUDA
  cuda::raw_synchronize(d.index);
#endif
}

}  // namespace lmf
