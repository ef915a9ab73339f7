// metrics.jsonl: one JSON object per logged step, appended and flushed line by line so a crash
// loses at most the line being written (DESIGN.md §7). The caller picks the fields: step,
// tokens, loss, lr, grad_norm, tokens_per_s, mfu, mem, eval_*, ...
//
// Contract
//  - Lines are compact JSON objects ending in '\n'. NaN and infinities become null (JSON has
//    none); invalid UTF-8 in strings is replaced by U+FFFD rather than throwing.
//  - A file whose last line is torn (no trailing '\n' after a crash) is repaired on open: a
//    partial record is cut, a complete one gets its '\n'; appends start on a fresh line.
//  - One writer per file (rank 0). Not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lmf {

class MetricsLog {
 public:
  // Opens `path` for appending (or empties it when `truncate`), creating parent folders.
  // Throws lmf::Error "<path>: cannot open for writing: <reason>".
  explicit MetricsLog(const std::string& path, bool truncate = false);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Appends `record` (must be a JSON object, else lmf::Error) as one line and flushes it.
  // Throws lmf::Error "<path>: write failed: <reason>" (disk full, ...).
  void write(const nlohmann::json& record);

  const std::string& path() const { return path_; }

  // Reads every record back. A torn final line is skipped; any other line that is not a JSON
  // object throws "<path>:<line>: <what is wrong>". A missing file throws.
  static std::vector<nlohmann::json> read(const std::string& path);

  // For --resume from a checkpoint at `step`: keeps only records whose "step" is <= step (and
  // records without a step), rewriting the file atomically. A missing file is left missing.
  static void truncate_after_step(const std::string& path, int64_t step);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace lmf
