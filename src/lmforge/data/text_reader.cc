#include "lmforge/data/text_reader.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"
#include "lmforge/io/atomic_file.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf {

namespace {
bool ends_with(const std::string& s, const char* suf) {
  std::string t(suf);
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

std::string trim_copy(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\n");
  return s.substr(b, e - b + 1);
}
}  // namespace

std::vector<std::string> read_documents(const std::string& path, const TextReadOptions& opt) {
  std::string raw = read_file(path);
  if (raw.empty()) fail(path, ": file is empty");
  if (raw.find('\0') != std::string::npos) fail(path, ": looks binary (contains NUL bytes); expected UTF-8 text");
  // Checked here, before any tokenizing starts, so the error names the file and line (the
  // tokenizer would only name a document number, after progress output).
  if (size_t bad = tok::find_invalid_utf8(raw); bad != std::string::npos)
    fail(path, ":", 1 + std::count(raw.begin(), raw.begin() + std::ptrdiff_t(bad), '\n'),
         ": invalid UTF-8 (byte offset ", bad, "); expected UTF-8 text");
  // Normalise line endings and drop a UTF-8 BOM.
  std::string text;
  text.reserve(raw.size());
  size_t start = raw.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  for (size_t i = start; i < raw.size(); i++)
    if (!(raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n')) text.push_back(raw[i]);
  std::string format = opt.format;
  if (format == "auto") format = (ends_with(path, ".jsonl") || ends_with(path, ".json")) ? "jsonl" : "text";
  std::vector<std::string> docs;
  if (format == "jsonl") {
    size_t line_no = 0, pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? text.size() : nl + 1;
      line_no++;
      if (trim_copy(line).empty()) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        fail(path, ":", line_no, ": invalid JSON: ", e.what());
      }
      if (!j.is_object() || !j.contains(opt.field) || !j[opt.field].is_string())
        fail(path, ":", line_no, ": expected an object with a string field '", opt.field, "'");
      docs.push_back(j[opt.field].get<std::string>());
    }
  } else if (format == "text") {
    if (opt.split == "file") {
      docs.push_back(text);
    } else if (opt.split == "line" || opt.split == "paragraph") {
      const std::string sep = opt.split == "line" ? "\n" : "\n\n";
      size_t pos = 0;
      while (pos <= text.size()) {
        size_t e = text.find(sep, pos);
        std::string d = text.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
        if (!trim_copy(d).empty()) docs.push_back(opt.split == "line" ? d : trim_copy(d));
        if (e == std::string::npos) break;
        pos = e + sep.size();
      }
    } else {
      fail("tokenize: --split: expected file, paragraph or line, got '", opt.split, "'");
    }
  } else {
    fail("tokenize: --format: expected auto, text or jsonl, got '", format, "'");
  }
  if (docs.empty()) fail(path, ": no documents found (only whitespace?)");
  return docs;
}

}  // namespace lmf
