// Documents from raw text and JSONL files, for `lmforge tokenize` and `lmforge eval --text`.
//
//  text:  split = "file" (one document per file), "paragraph" (blank-line separated, the
//         default), or "line" (one per non-empty line). \r\n is read as \n.
//  jsonl: one JSON object per line; `field` (default "text") holds the document string.
// Errors name the file (and line): missing/empty files, binary content (NUL bytes), invalid
// UTF-8, invalid JSON, a missing or non-string field.
#pragma once

#include <string>
#include <vector>

namespace lmf {

struct TextReadOptions {
  std::string format = "auto";  // auto (by extension: .jsonl/.json -> jsonl), text, jsonl
  std::string split = "paragraph";
  std::string field = "text";
};

std::vector<std::string> read_documents(const std::string& path, const TextReadOptions& opt);

}  // namespace lmf
