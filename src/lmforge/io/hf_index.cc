#include "lmforge/io/hf_index.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "lmforge/io/atomic_file.h"

namespace lmf {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kExt = ".safetensors";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// A shard name from an index must stay inside the checkpoint directory.
bool safe_relative(const std::string& s) {
  if (s.empty()) return false;
  fs::path p(s);
  if (p.is_absolute()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

// "<stem>-00001-of-00003.safetensors", the huggingface_hub shard pattern.
std::string shard_name(const std::string& stem, size_t i, size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "-%05zu-of-%05zu", i, n);
  return stem + buf + std::string(kExt);
}

bool is_shard_name(const std::string& file, const std::string& stem) {
  // stem + "-" 5 digits "-of-" 5 digits + ".safetensors"
  const std::string_view mid = "-DDDDD-of-DDDDD";
  if (file.size() != stem.size() + mid.size() + kExt.size()) return false;
  if (file.compare(0, stem.size(), stem) != 0 || !ends_with(file, kExt)) return false;
  for (size_t i = 0; i < mid.size(); i++) {
    char c = file[stem.size() + i];
    if (mid[i] == 'D' ? (c < '0' || c > '9') : c != mid[i]) return false;
  }
  return true;
}

}  // namespace

// ---- reading ------------------------------------------------------------------------------------
CheckpointReader CheckpointReader::open(const std::string& dir_or_file, const std::string& base) {
  CheckpointReader r;
  r.path_ = dir_or_file;
  std::error_code ec;
  fs::path index_path;
  if (fs::is_directory(dir_or_file, ec)) {
    fs::path single = fs::path(dir_or_file) / base;
    if (is_file(single)) {
      r.shards_.push_back(SafetensorsFile::open(single.string()));
    } else {
      index_path = fs::path(dir_or_file) / (base + ".index.json");
      if (!is_file(index_path))
        fail(dir_or_file, ": no ", base, " or ", base, ".index.json in this directory");
    }
  } else if (ends_with(dir_or_file, ".json")) {
    index_path = dir_or_file;
  } else {
    r.shards_.push_back(SafetensorsFile::open(dir_or_file));  // throws "cannot open" if missing
  }

  if (index_path.empty()) {
    for (const auto& name : r.shards_[0].names()) r.where_[name] = 0;
    return r;
  }

  r.sharded_ = true;
  const std::string ip = index_path.string();
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_file(ip));
  } catch (const nlohmann::json::exception& e) {
    fail(ip, ": invalid JSON: ", e.what());
  }
  if (!index.is_object()) fail(ip, ": expected a JSON object");
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) fail(ip, ": missing object 'weight_map'");

  std::map<std::string, size_t> shard_index;  // shard file name -> index into shards_
  std::set<std::string> shard_files;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string())
      fail(ip, ": weight_map['", it.key(), "']: expected a shard file name, got ", it->type_name());
    const std::string shard = it->get<std::string>();
    if (!safe_relative(shard))
      fail(ip, ": weight_map['", it.key(), "']: shard path '", shard,
           "' must be relative and stay inside the checkpoint directory");
    shard_files.insert(shard);
  }
  // Open in file-name order so shards_ (and files()) are deterministic.
  const fs::path dir = index_path.parent_path();
  for (const auto& shard : shard_files) {
    try {
      r.shards_.push_back(SafetensorsFile::open((dir / shard).string()));
    } catch (const Error& e) {
      throw e.with_context(ip + ": shard '" + shard + "'");
    }
    shard_index[shard] = r.shards_.size() - 1;
  }
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    const std::string shard = it->get<std::string>();
    size_t k = shard_index.at(shard);
    if (!r.shards_[k].contains(it.key()))
      fail(ip, ": weight_map maps '", it.key(), "' to '", shard, "', which has no such tensor");
    r.where_[it.key()] = k;
  }
  return r;
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

const SafetensorsFile& CheckpointReader::file_for(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail(path_, ": no tensor named '", name, "'");
  return shards_[it->second];
}

const SafetensorsTensorInfo& CheckpointReader::info(const std::string& name) const {
  return file_for(name).info(name);
}

Tensor CheckpointReader::tensor(const std::string& name) const {
  return file_for(name).tensor(name);
}

const std::string& CheckpointReader::file_of(const std::string& name) const {
  return file_for(name).path();
}

const SafetensorsMetadata& CheckpointReader::metadata() const {
  static const SafetensorsMetadata kEmpty;
  return shards_.empty() ? kEmpty : shards_[0].metadata();
}

std::vector<std::string> CheckpointReader::files() const {
  std::vector<std::string> out;
  for (const auto& s : shards_) out.push_back(s.path());
  return out;
}

// ---- writing ------------------------------------------------------------------------------------
namespace {

void remove_file(const fs::path& p) {
  std::error_code ec;
  fs::remove(p, ec);
  if (ec) fail(p.string(), ": cannot remove stale checkpoint file: ", ec.message());
}

// Removes `<stem>-NNNNN-of-NNNNN.safetensors` files in `dir` that are not in `keep`.
void remove_stale_shards(const fs::path& dir, const std::string& stem,
                         const std::set<std::string>& keep) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (is_shard_name(name, stem) && !keep.count(name)) stale.push_back(entry.path());
  }
  if (ec) fail(dir.string(), ": cannot list directory: ", ec.message());
  for (const auto& p : stale) remove_file(p);
}

}  // namespace

SavedCheckpoint save_checkpoint_sharded(const std::string& dir, const NamedTensors& tensors,
                                        uint64_t max_shard_bytes,
                                        const SafetensorsMetadata& metadata,
                                        const std::string& base) {
  if (max_shard_bytes == 0) fail("save_checkpoint_sharded: ", dir, ": max_shard_bytes must be > 0");
  if (!ends_with(base, kExt) || base.size() == kExt.size() || base.find('/') != std::string::npos)
    fail("save_checkpoint_sharded: ", dir, ": base '", base, "' must be a file name ending in ",
         kExt);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create directory: ", ec.message());
  const fs::path d(dir);
  const std::string stem = base.substr(0, base.size() - kExt.size());
  const fs::path single = d / base, index_path = d / (base + ".index.json");

  // Packing rule of huggingface_hub split_state_dict_into_shards_factory.
  std::vector<NamedTensors> shards;
  NamedTensors current;
  uint64_t current_bytes = 0;
  SavedCheckpoint out;
  std::set<std::string_view> seen;
  for (const auto& nt : tensors) {
    // Checked before anything is written, so a bad call leaves the directory as it was.
    if (!nt.second.defined()) fail(dir, ": tensor '", nt.first, "' is undefined");
    if (!seen.insert(nt.first).second) fail(dir, ": tensor '", nt.first, "' given twice");
    if (nt.first == "__metadata__") fail(dir, ": tensor name '__metadata__' is reserved");
    uint64_t b = nt.second.nbytes();
    out.total_bytes += b;
    if (b > max_shard_bytes) {
      shards.push_back({nt});
      continue;
    }
    if (current_bytes + b > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(nt);
    current_bytes += b;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));

  if (shards.size() == 1) {
    save_safetensors(single.string(), shards[0], metadata);
    out.files = {base};
    if (is_file(index_path)) remove_file(index_path);
    remove_stale_shards(d, stem, {});
    return out;
  }

  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < shards.size(); i++) {
    std::string name = shard_name(stem, i + 1, shards.size());
    for (const auto& nt : shards[i]) weight_map[nt.first] = name;
    save_safetensors((d / name).string(), shards[i], metadata);
    out.files.push_back(name);
  }
  if (is_file(single)) remove_file(single);
  nlohmann::json index = {{"metadata", {{"total_size", out.total_bytes}}},
                          {"weight_map", std::move(weight_map)}};
  // json.dumps(index, indent=2, sort_keys=True) + "\n" in transformers; ensure_ascii like Python.
  write_file_atomic(index_path.string(), index.dump(2, ' ', true) + "\n");
  out.index_file = index_path.filename().string();
  remove_stale_shards(d, stem, std::set<std::string>(out.files.begin(), out.files.end()));
  return out;
}

}  // namespace lmf
