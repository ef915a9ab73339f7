#include "lmforge/train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "lmforge/io/atomic_file.h"
#include "lmforge/io/hf_params.h"
#include "lmforge/models/config_json.h"

namespace fs = std::filesystem;

namespace lmf {

namespace {
std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%06lld", static_cast<long long>(step));
  return buf;
}
bool is_step_dir(const fs::path& p) {
  const std::string n = p.filename().string();
  if (n.size() < 6 || n.compare(0, 5, "step_") != 0) return false;
  return std::all_of(n.begin() + 5, n.end(), [](char c) { return c >= '0' && c <= '9'; });
}
}  // namespace

std::string save_run_checkpoint(const std::string& run_dir, int64_t step, const ParamStore& params,
                                const CheckpointPayload& payload, int keep_last) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  const fs::path final_dir = root / step_name(step);
  const fs::path tmp = root / (step_name(step) + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_hf_params(params, tmp.string(), payload.model_config, DType::f32, payload.skip);
  save_safetensors((tmp / "optimizer.safetensors").string(), payload.optimizer);
  write_file_atomic((tmp / "trainer_state.json").string(), payload.trainer_state.dump(2) + "\n");
  // Replace an older checkpoint of the same step only once the new one is complete.
  if (fs::exists(final_dir)) {
    const fs::path old = root / (step_name(step) + ".old-" + std::to_string(::getpid()));
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_dir);
  }
  if (keep_last > 0) {
    auto all = list_run_checkpoints(run_dir);
    for (size_t i = 0; i + size_t(keep_last) < all.size(); i++) fs::remove_all(all[i]);
  }
  return final_dir.string();
}

std::vector<std::string> list_run_checkpoints(const std::string& run_dir) {
  std::vector<std::string> out;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::exists(root)) return out;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && is_step_dir(e.path()) && fs::exists(e.path() / "trainer_state.json"))
      out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string latest_run_checkpoint(const std::string& run_dir) {
  auto all = list_run_checkpoints(run_dir);
  return all.empty() ? "" : all.back();
}

nlohmann::json read_trainer_state(const std::string& ckpt_dir) {
  return config_json::read_json_file(ckpt_dir + "/trainer_state.json");
}

NamedTensors read_optimizer_state(const std::string& ckpt_dir) {
  auto f = SafetensorsFile::open(ckpt_dir + "/optimizer.safetensors");
  NamedTensors out;
  for (const auto& n : f.names()) out.emplace_back(n, f.tensor(n));
  return out;
}

}  // namespace lmf
