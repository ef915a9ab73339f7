// Line-by-line input for the filter commands (encode, decode): a file or standard input ("-").
#pragma once

#include <functional>
#include <string>

namespace lmf::cli {

// Calls fn(line, line_number) for every line of `path` ("-" or empty: stdin), numbered from 1,
// without its '\n'. A file that does not end with '\n' still yields its last line; an empty
// input yields nothing. `strip_cr` also drops one trailing '\r' (CRLF files).
// Throws lmf::Error "<path>: cannot open: <reason>" / "<path>: read failed"; exceptions from fn
// pass through.
void for_each_line(const std::string& path, bool strip_cr, const std::function<void(std::string&, int64_t)>& fn);

// How `path` is named in messages: the path itself, or "<stdin>".
std::string input_name(const std::string& path);

}  // namespace lmf::cli
