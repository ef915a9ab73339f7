// What this binary was built with and what it sees at run time (for `lmforge version`, bug
// reports and the header of run reports).
#pragma once

#include <string>

namespace lmf {

struct BuildInfo {
  std::string version;       // project version, e.g. "0.1.0"
  std::string build_type;    // CMake build type, e.g. "Release"
  std::string compiler;      // e.g. "GCC 12.2.0"
  std::string cxx_standard;  // e.g. "C++20"
  bool cuda = false;         // CUDA backend compiled in
  std::string cuda_arch;     // CMAKE_CUDA_ARCHITECTURES, e.g. "90"; "" without CUDA
  bool cudnn = false;        // cuDNN linked (fused attention)
  bool nccl = false;         // NCCL linked (multi-GPU)
  bool openmp = false;       // OpenMP enabled for the CPU backend
  int openmp_threads = 1;    // threads an OpenMP region would use now (OMP_NUM_THREADS, cores)
};

// Never throws.
BuildInfo build_info();

}  // namespace lmf
