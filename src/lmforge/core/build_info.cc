#include "lmforge/core/build_info.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace lmf {

namespace {
std::string compiler_name() {
#if defined(__clang__)
  return "Clang " __clang_version__;
#elif defined(__GNUC__)
  return "GCC " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
         std::to_string(__GNUC_PATCHLEVEL__);
#else
  return "unknown compiler";
#endif
}

std::string cxx_standard() {
#if __cplusplus > 202002L
  return "C++23";
#elif __cplusplus >= 202002L
  return "C++20";
#else
  return "C++" + std::to_string(__cplusplus);
#endif
}
}  // namespace

BuildInfo build_info() {
  BuildInfo b;
  b.version = LMF_VERSION;
  b.build_type = LMF_BUILD_TYPE;
  b.compiler = compiler_name();
  b.cxx_standard = cxx_standard();
  b.cuda = LMF_WITH_CUDA;
  b.cuda_arch = LMF_CUDA_ARCH;
#ifdef LMF_WITH_CUDNN
  b.cudnn = true;
#endif
#ifdef LMF_WITH_NCCL
  b.nccl = true;
#endif
#ifdef _OPENMP
  b.openmp = true;
  b.openmp_threads = omp_get_max_threads();
#endif
  return b;
}

}  // namespace lmf
