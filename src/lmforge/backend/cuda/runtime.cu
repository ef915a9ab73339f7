// CUDA runtime basics shared by every backend file: error reporting, the per-device stream,
// the multiprocessor count and device selection (declared in cuda_common.h / kernels.h).
#include <array>
#include <mutex>

#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {
// Enough for any single host; indices beyond it are rejected with an lmf::Error.
constexpr int kMaxDevices = 64;

struct DeviceState {
  std::once_flag stream_once, sm_once;
  cudaStream_t stream = nullptr;
  int sm_count = 0;
  std::once_flag counters_once;
  unsigned int* counters = nullptr;
};
std::array<DeviceState, kMaxDevices> g_devices;

int current_device_index() {
  int d = 0;
  LMF_CUDA_CHECK(cudaGetDevice(&d));
  if (d < 0 || d >= kMaxDevices) fail("cuda: device index ", d, " exceeds the supported ", kMaxDevices);
  return d;
}
}  // namespace

void throw_cuda_error(cudaError_t e, const char* what, const char* file, int line) {
  // Clear the sticky "last error" for non-fatal errors so the next check does not repeat it.
  (void)cudaGetLastError();
  fail("CUDA error at ", file, ":", line, ": ", what, ": ", cudaGetErrorString(e));
}

// One stream per device shared by all host threads: every lmforge kernel, copy and caching-
// allocator reuse is ordered on it, which is what makes reusing a freed block immediately safe.
// Non-blocking so it does not serialise against the legacy default stream other libraries use.
cudaStream_t current_stream() {
  int d = current_device_index();
  DeviceState& s = g_devices[size_t(d)];
  std::call_once(s.stream_once, [&] { LMF_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking)); });
  return s.stream;
}

int sm_count() {
  int d = current_device_index();
  DeviceState& s = g_devices[size_t(d)];
  std::call_once(s.sm_once, [&] { LMF_CUDA_CHECK(cudaDeviceGetAttribute(&s.sm_count, cudaDevAttrMultiProcessorCount, d)); });
  return s.sm_count;
}

unsigned int* reduce_counters() {
  int d = current_device_index();
  DeviceState& s = g_devices[size_t(d)];
  std::call_once(s.counters_once, [&] {
    LMF_CUDA_CHECK(cudaMalloc(&s.counters, kReduceCounters * sizeof(unsigned int)));
    LMF_CUDA_CHECK(cudaMemsetAsync(s.counters, 0, kReduceCounters * sizeof(unsigned int), current_stream()));
  });
  return s.counters;
}

void set_device(int index) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    n = 0;
  }
  if (index < 0 || index >= n || index >= kMaxDevices)
    fail("cuda::set_device: device ", index, " requested but ", n, " CUDA device(s) are visible");
  LMF_CUDA_CHECK(cudaSetDevice(index));
}

size_t device_total_bytes(int index) {
  // Asked once per device (the cross-entropy asks every step): the figure never changes.
  static std::array<std::once_flag, kMaxDevices> once;
  static std::array<size_t, kMaxDevices> total;
  if (index < 0 || index >= kMaxDevices) fail("cuda: device index ", index, " exceeds the supported ", kMaxDevices);
  std::call_once(once[size_t(index)], [&] {
    int prev = 0;
    LMF_CUDA_CHECK(cudaGetDevice(&prev));
    if (prev != index) set_device(index);
    size_t free_b = 0;
    LMF_CUDA_CHECK(cudaMemGetInfo(&free_b, &total[size_t(index)]));
    if (prev != index) LMF_CUDA_CHECK(cudaSetDevice(prev));
  });
  return total[size_t(index)];
}

}  // namespace lmf::cuda
