#include "lmforge/report/metrics_log.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/io/atomic_file.h"

namespace lmf {

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot read: ", std::strerror(errno));
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// Repairs a final line without '\n' left by a crash mid-write: a complete record gets its
// newline, a partial one is cut (read() skips it the same way).
void repair_tail(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return;
  std::string text = read_all(path);
  if (text.empty() || text.back() == '\n') return;
  size_t keep = text.rfind('\n');
  keep = keep == std::string::npos ? 0 : keep + 1;
  auto tail = nlohmann::json::parse(text.substr(keep), nullptr, false);
  if (!tail.is_discarded() && tail.is_object()) {
    std::ofstream(path, std::ios::app) << '\n';
    return;
  }
  if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0)
    fail(path, ": cannot repair torn last line: ", std::strerror(errno));
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path, bool truncate) : path_(path) {
  std::filesystem::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  if (ec) fail(path, ": cannot open for writing: cannot create folder: ", ec.message());
  if (!truncate) repair_tail(path);
  file_ = std::fopen(path.c_str(), truncate ? "w" : "a");
  if (!file_) fail(path, ": cannot open for writing: ", std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!record.is_object()) fail(path_, ": a metrics record must be a JSON object, got ", record.type_name());
  std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    fail(path_, ": write failed: ", std::strerror(errno));
}

std::vector<nlohmann::json> MetricsLog::read(const std::string& path) {
  std::string text = read_all(path);
  std::vector<nlohmann::json> out;
  size_t pos = 0;
  for (size_t line_no = 1; pos < text.size(); line_no++) {
    size_t nl = text.find('\n', pos);
    bool torn = nl == std::string::npos;
    std::string_view line(text.data() + pos, (torn ? text.size() : nl) - pos);
    pos = torn ? text.size() : nl + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      if (torn) break;  // the writer died mid-line; everything before it is good
      fail(path, ":", line_no, ": ", j.is_discarded() ? "malformed JSON" : "expected a JSON object per line");
    }
    out.push_back(std::move(j));
  }
  return out;
}

void MetricsLog::truncate_after_step(const std::string& path, int64_t step) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return;
  std::string kept;
  for (const auto& rec : read(path)) {
    auto it = rec.find("step");
    if (it != rec.end() && it->is_number() && it->get<double>() > static_cast<double>(step)) continue;
    kept += rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  write_file_atomic(path, kept);
}

}  // namespace lmf
