#include "lmforge/report/run_dir.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "lmforge/core/error.h"

namespace fs = std::filesystem;

namespace lmf {

RunDir RunDir::open(const std::string& path, Mode mode) {
  std::error_code ec;
  RunDir run(path);
  if (mode == Mode::resume) {
    if (!fs::is_regular_file(run.config_path(), ec))
      fail(path, ": no run to resume (config.resolved.toml not found)");
    return run;
  }
  if (fs::exists(path, ec)) {
    if (!fs::is_directory(path, ec)) fail(path, ": exists and is not a folder");
    if (!fs::is_empty(path, ec)) fail(path, ": run folder already exists and is not empty");
  }
  fs::create_directories(run.checkpoints_path(), ec);
  if (ec) fail(path, ": cannot create run folder: ", ec.message());
  return run;
}

std::string RunDir::config_path() const { return (fs::path(path_) / "config.resolved.toml").string(); }
std::string RunDir::metrics_path() const { return (fs::path(path_) / "metrics.jsonl").string(); }
std::string RunDir::checkpoints_path() const { return (fs::path(path_) / "checkpoints").string(); }
std::string RunDir::report_path() const { return (fs::path(path_) / "report.html").string(); }

std::string RunDir::checkpoint_path(int64_t step) const {
  LMF_CHECK(step >= 0, "negative checkpoint step ", step);
  char name[32];
  std::snprintf(name, sizeof(name), "step_%06lld", static_cast<long long>(step));
  return (fs::path(checkpoints_path()) / name).string();
}

std::vector<int64_t> RunDir::checkpoint_steps() const {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (auto it = fs::directory_iterator(checkpoints_path(), ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind("step_", 0) != 0 || name.size() == 5 || name.size() > 5 + 18) continue;
    if (!std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    if (!fs::is_regular_file(it->path() / "trainer_state.json")) continue;
    steps.push_back(std::stoll(name.substr(5)));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

}  // namespace lmf
