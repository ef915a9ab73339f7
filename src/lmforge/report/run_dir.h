// The folder one run writes (DESIGN.md §7):
//   runs/<name>/
//     config.resolved.toml        the recipe after --set, written once at start (atomic)
//     metrics.jsonl               one JSON object per log step (MetricsLog)
//     checkpoints/step_000100/    model.safetensors, config.json, optimizer.safetensors,
//                                 trainer_state.json
//     report.html
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lmf {

class RunDir {
 public:
  enum class Mode {
    fresh,   // the folder must not exist or be empty; it is created
    resume,  // the folder must exist and hold config.resolved.toml
  };
  // Opens (and for `fresh` creates, with checkpoints/) the run folder at `path`.
  // Throws lmf::Error "<path>: run folder already exists and is not empty" (fresh) or
  // "<path>: no run to resume (config.resolved.toml not found)" (resume).
  static RunDir open(const std::string& path, Mode mode);

  const std::string& path() const { return path_; }
  std::string config_path() const;                  // <run>/config.resolved.toml
  std::string metrics_path() const;                 // <run>/metrics.jsonl
  std::string checkpoints_path() const;             // <run>/checkpoints
  std::string checkpoint_path(int64_t step) const;  // <run>/checkpoints/step_000100 (6+ digits)
  std::string report_path() const;                  // <run>/report.html

  // Steps of the checkpoint folders present (step_N with N a number), ascending. A folder
  // counts only when it holds trainer_state.json, the file a checkpoint writes last.
  std::vector<int64_t> checkpoint_steps() const;

 private:
  explicit RunDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace lmf
