// `lmforge version`: what was compiled in and what this process sees.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "lmforge/cli/common.h"
#include "lmforge/cli/registry.h"
#include "lmforge/core/build_info.h"
#include "lmforge/core/device.h"

namespace lmf::cli {

namespace {

struct VersionOptions {
  bool json = false;
};

// GPU count, or the reason it could not be read (a broken driver must not make `version` fail:
// it is the command people run to diagnose exactly that).
std::pair<int, std::string> gpus_seen() {
  try {
    return {cuda_device_count(), ""};
  } catch (const std::exception& e) {
    return {0, e.what()};
  }
}

int run_version(const VersionOptions& opt) {
  BuildInfo b = build_info();
  auto [gpus, gpu_error] = gpus_seen();
  if (opt.json) {
    nlohmann::ordered_json j = {{"version", b.version},
                                {"build_type", b.build_type},
                                {"compiler", b.compiler},
                                {"cxx_standard", b.cxx_standard},
                                {"cuda", b.cuda},
                                {"cuda_arch", b.cuda_arch},
                                {"cudnn", b.cudnn},
                                {"nccl", b.nccl},
                                {"gpus", gpus},
                                {"openmp", b.openmp},
                                {"openmp_threads", b.openmp_threads}};
    if (!gpu_error.empty()) j["gpu_error"] = gpu_error;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::string cuda = b.cuda ? "on (sm_" + b.cuda_arch + ")" : "off (built with LMF_CUDA=OFF)";
  std::string gpu_line = std::to_string(gpus) + (gpu_error.empty() ? "" : " (" + gpu_error + ")");
  std::printf("lmforge %s\n", b.version.c_str());
  std::printf("  build type      %s\n", b.build_type.c_str());
  std::printf("  compiler        %s (%s)\n", b.compiler.c_str(), b.cxx_standard.c_str());
  std::printf("  CUDA            %s\n", cuda.c_str());
  std::printf("  cuDNN           %s\n", b.cudnn ? "yes" : "no");
  std::printf("  NCCL            %s\n", b.nccl ? "yes" : "no");
  std::printf("  GPUs visible    %s\n", gpu_line.c_str());
  std::printf("  OpenMP threads  %d%s\n", b.openmp_threads, b.openmp ? "" : " (OpenMP off)");
  return 0;
}

}  // namespace

Action setup_version(CLI::App& app) {
  auto opt = std::make_shared<VersionOptions>();
  app.add_flag("--json", opt->json, "Print the same information as one JSON object");
  set_examples(app, {"lmforge version", "lmforge version --json"});
  return [opt] { return run_version(*opt); };
}

}  // namespace lmf::cli
