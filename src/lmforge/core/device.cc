#include "lmforge/core/device.h"

#include <charconv>

#include "lmforge/core/device_memory.h"
#include "lmforge/core/error.h"

namespace lmf {

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

int cuda_device_count() {
#if LMF_WITH_CUDA
  return cuda::raw_device_count();
#else
  return 0;
#endif
}

Device parse_device(std::string_view s) {
  if (s == "cpu") return Device::cpu();
  if (s == "auto") return cuda_device_count() > 0 ? Device::cuda(0) : Device::cpu();
  int index = 0;
  if (s == "cuda" || s == "gpu") {
    index = 0;
  } else if (s.rfind("cuda:", 0) == 0) {
    auto rest = s.substr(5);
    auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), index);
    if (ec != std::errc() || p != rest.data() + rest.size() || index < 0)
      fail("device '", s, "': expected cuda:N with N a GPU index");
  } else {
    fail("device '", s, "': expected cpu, cuda, cuda:N or auto");
  }
  int n = cuda_device_count();
  if (!LMF_WITH_CUDA) fail("device '", s, "': this lmforge was built without CUDA (LMF_CUDA=OFF)");
  if (index >= n) fail("device '", s, "': only ", n, " CUDA device(s) are visible");
  return Device::cuda(index);
}

}  // namespace lmf
