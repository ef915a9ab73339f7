#include "lmforge/io/hf_params.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "lmforge/backend/kernels.h"
#include "lmforge/io/atomic_file.h"
#include "lmforge/io/hf_index.h"
#include "lmforge/io/safetensors.h"

namespace lmf {

std::vector<std::string> load_hf_params(ParamStore& store, const std::string& dir,
                                        const std::vector<std::string>& optional,
                                        const std::map<std::string, std::string>& renames,
                                        std::vector<std::string>* missing) {
  CheckpointReader ck = CheckpointReader::open(dir);
  // Our name -> the checkpoint's name.
  std::map<std::string, std::string> source;
  for (const auto& n : ck.names()) {
    // Every matching rename applies once, in map order; "^x" matches only a leading x.
    std::string ours = n;
    for (const auto& [from, to] : renames) {
      if (!from.empty() && from[0] == '^') {
        if (ours.compare(0, from.size() - 1, from, 1) == 0) ours.replace(0, from.size() - 1, to);
        continue;
      }
      auto pos = ours.find(from);
      if (pos != std::string::npos) ours.replace(pos, from.size(), to);
    }
    source[ours] = n;
  }
  std::set<std::string> used;
  for (const auto& spec : store.specs()) {
    auto it = source.find(spec.name);
    if (it == source.end()) {
      if (std::find(optional.begin(), optional.end(), spec.name) != optional.end()) {
        if (missing) missing->push_back(spec.name);
        continue;
      }
      fail(dir, ": tensor '", spec.name, "' is missing from the checkpoint");
    }
    const auto& info = ck.info(it->second);
    if (shape_numel(info.shape) != shape_numel(spec.shape) ||
        (info.shape != spec.shape && !(spec.shape.size() == 3 && spec.shape[1] == 1 && info.shape.size() == 2)))
      fail(dir, ": tensor '", it->second, "' has shape ", shape_str(info.shape), ", the config expects ",
           shape_str(spec.shape));
    if (!is_floating(info.dtype))
      fail(dir, ": tensor '", it->second, "' has dtype ", dtype_name(info.dtype), ", expected a floating type");
    Tensor src = ck.tensor(it->second);
    Tensor f32 = Tensor::empty(spec.shape, DType::f32);
    cpu::cast(src.contiguous().view(spec.shape), f32);
    store.master(spec.name).copy_from(f32.to(store.device()));
    used.insert(it->second);
  }
  store.sync_compute();
  std::vector<std::string> unused;
  for (const auto& n : ck.names())
    if (!used.count(n)) unused.push_back(n);
  return unused;
}

void save_hf_params(const ParamStore& store, const std::string& dir, const nlohmann::json& config, DType dtype,
                    const std::vector<std::string>& skip) {
  if (dtype != DType::f32 && dtype != DType::bf16 && dtype != DType::f16)
    fail("save_hf_params: dtype must be f32, bf16 or f16, got ", dtype_name(dtype));
  std::filesystem::create_directories(dir);
  NamedTensors tensors;
  for (const auto& spec : store.specs()) {
    if (std::find(skip.begin(), skip.end(), spec.name) != skip.end()) continue;
    Tensor m = store.master(spec.name).to(Device::cpu());
    if (dtype != DType::f32) {
      Tensor c = Tensor::empty(m.shape(), dtype);
      cpu::cast(m, c);
      m = c;
    }
    tensors.emplace_back(spec.name, m);
  }
  save_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  nlohmann::json cfg = config;
  cfg["torch_dtype"] = dtype == DType::f32 ? "float32" : dtype == DType::bf16 ? "bfloat16" : "float16";
  write_file_atomic(dir + "/config.json", cfg.dump(2) + "\n");
}

}  // namespace lmf
