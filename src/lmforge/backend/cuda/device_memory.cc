// The CUDA side of core/device_memory.h: a caching allocator, copies and fills.
//
// Why a caching allocator: cudaMalloc/cudaFree synchronise the device and cost tens of
// microseconds; a training step allocates and frees the same activation sizes every step.
// Freed blocks go to a per-device free list keyed by their (rounded) size and are handed out
// again to the next request of that size class.
//
// Size classes: requests up to 1 MiB are rounded to 512 B, larger ones to 2 MiB. A small
// request reuses only a block of exactly its class; a large one accepts a cached block up to
// 25% bigger (bounded waste, fewer new cudaMallocs when shapes vary a little).
//
// Stream ordering: every lmforge kernel and copy runs on the device's one stream
// (current_stream()), so a block freed on the host may be handed out at once — any later use
// is queued after the work that last touched it. Memory used on another stream (e.g. NCCL's)
// must be synchronised by its user before the tensor is dropped.
//
// Out of memory: the cache is released to the driver and the cudaMalloc retried once, then an
// lmf::Error "CUDA out of memory allocating X MiB (in use Y MiB, reserved Z MiB)" is thrown.
#include <array>
#include <cstdio>
#include <map>
#include <mutex>
#include <unordered_map>

#include "lmforge/backend/cuda/allocator.h"
#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/core/device_memory.h"

namespace lmf::cuda {

namespace {

constexpr size_t kSmallLimit = size_t(1) << 20;  // 1 MiB
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t(2) << 20;  // 2 MiB
constexpr int kMaxDevices = 64;

size_t round_size(size_t n) {
  if (n <= kSmallLimit) return (n + kSmallRound - 1) / kSmallRound * kSmallRound;
  return (n + kLargeRound - 1) / kLargeRound * kLargeRound;
}

double mib(size_t n) { return double(n) / double(size_t(1) << 20); }

// Makes `device` current for the scope, restoring the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    LMF_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != device) LMF_CUDA_CHECK(cudaSetDevice(device));
    changed_ = prev_ != device;
  }
  ~DeviceGuard() {
    if (changed_) (void)cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool changed_ = false;
};

class DeviceAllocator {
 public:
  void* allocate(int device, size_t nbytes) {
    const size_t size = round_size(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    size_t block = size;
    void* p = take_cached(size, &block);
    if (!p) {
      DeviceGuard guard(device);
      cudaError_t e = cudaMalloc(&p, size);
      if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        release_cache();
        e = cudaMalloc(&p, size);
        if (e == cudaErrorMemoryAllocation) {
          (void)cudaGetLastError();
          char msg[160];
          std::snprintf(msg, sizeof msg,
                        "CUDA out of memory allocating %.2f MiB on cuda:%d (in use %.2f MiB, reserved %.2f MiB)",
                        mib(nbytes), device, mib(current_), mib(reserved_));
          fail(msg);
        }
      }
      LMF_CUDA_CHECK(e);
      reserved_ += size;
    }
    live_[p] = block;
    current_ += block;
    if (current_ > peak_) peak_ = current_;
    return p;
  }

  // Never throws: called from Storage destructors.
  void release(void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      std::fprintf(stderr, "lmforge: internal error: cuda free of unknown pointer %p ignored\n", p);
      return;
    }
    current_ -= it->second;
    free_.emplace(it->second, p);
    live_.erase(it);
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {current_, peak_, reserved_};
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = current_;
  }
  void empty_cache(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    DeviceGuard guard(device);
    release_cache();
  }

 private:
  // A cached block for a request of rounded `size` (its real size in *block), or null.
  void* take_cached(size_t size, size_t* block) {
    auto it = free_.lower_bound(size);
    if (it == free_.end()) return nullptr;
    const size_t limit = size <= kSmallLimit ? size : size + size / 4;
    if (it->first > limit) return nullptr;
    void* p = it->second;
    *block = it->first;
    free_.erase(it);
    return p;
  }
  // Returns every cached block to the driver (caller holds mu_ and the device is current).
  void release_cache() {
    // Queued work may still use blocks that were freed on the host: wait for it first.
    (void)cudaDeviceSynchronize();
    for (auto& [size, p] : free_) {
      (void)cudaFree(p);
      reserved_ -= size;
    }
    free_.clear();
    (void)cudaGetLastError();
  }

  std::mutex mu_;
  std::multimap<size_t, void*> free_;        // cached blocks: size -> pointer
  std::unordered_map<void*, size_t> live_;   // handed-out blocks: pointer -> block size
  size_t current_ = 0, peak_ = 0, reserved_ = 0;
};

// Deliberately leaked: tensors still alive at exit free into it after static destruction,
// and the driver reclaims device memory when the process ends.
DeviceAllocator& allocator(int device) {
  static auto* all = new std::array<DeviceAllocator, kMaxDevices>();
  if (device < 0 || device >= kMaxDevices) fail("cuda: device index ", device, " out of range");
  return (*all)[size_t(device)];
}

}  // namespace

void* raw_alloc(int device, size_t nbytes) { return allocator(device).allocate(device, nbytes); }

void raw_free(int device, void* p, size_t /*nbytes*/) {
  if (!p || device < 0 || device >= kMaxDevices) return;
  allocator(device).release(p);
}

void raw_copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t nbytes) {
  if (nbytes == 0) return;
  cudaStream_t s = current_stream();
  // cudaMemcpyDefault: unified addressing tells the driver which side each pointer is on.
  LMF_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, s));
  // Host memory may be reused or read as soon as we return: wait for the copy.
  if (!dst_on_device || !src_on_device) LMF_CUDA_CHECK(cudaStreamSynchronize(s));
}

void raw_zero(void* dst, size_t nbytes) {
  if (nbytes == 0) return;
  LMF_CUDA_CHECK(cudaMemsetAsync(dst, 0, nbytes, current_stream()));
}

MemoryStats raw_stats(int device) { return allocator(device).stats(); }

void raw_reset_peak(int device) { allocator(device).reset_peak(); }

void raw_synchronize(int device) {
  DeviceGuard guard(device);
  LMF_CUDA_CHECK(cudaDeviceSynchronize());
}

// 0, not an error, when the driver or a GPU is missing: CPU-only machines run this binary too.
int raw_device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

// Releases the cached (unused) blocks of `device` to the driver; used by tests and benches
// through backend/cuda/allocator.h.
void empty_cache(int device) { allocator(device).empty_cache(device); }

}  // namespace lmf::cuda
