// Where a tensor lives: the host ("cpu") or one CUDA GPU ("cuda:N").
#pragma once

#include <string>
#include <string_view>

namespace lmf {

enum class DeviceKind : uint8_t { cpu, cuda };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;

  static Device cpu() { return {DeviceKind::cpu, 0}; }
  static Device cuda(int i = 0) { return {DeviceKind::cuda, i}; }
  bool is_cpu() const { return kind == DeviceKind::cpu; }
  bool is_cuda() const { return kind == DeviceKind::cuda; }
  bool operator==(const Device&) const = default;
  std::string str() const;  // "cpu" or "cuda:N"
};

// Parses "cpu", "cuda", "cuda:N", "gpu" and "auto" ("auto" = cuda:0 when a GPU is usable, else
// cpu). Throws lmf::Error for anything else, or for cuda when this build or machine has no GPU.
Device parse_device(std::string_view s);

// Number of CUDA devices usable by this process (0 when built without CUDA or none present).
int cuda_device_count();

}  // namespace lmf
