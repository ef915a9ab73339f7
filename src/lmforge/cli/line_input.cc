#include "lmforge/cli/line_input.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include "lmforge/core/error.h"

namespace lmf::cli {

namespace {
bool is_stdin(const std::string& path) { return path.empty() || path == "-"; }
}  // namespace

std::string input_name(const std::string& path) { return is_stdin(path) ? "<stdin>" : path; }

void for_each_line(const std::string& path, bool strip_cr, const std::function<void(std::string&, int64_t)>& fn) {
  std::ifstream file;
  if (!is_stdin(path)) {
    file.open(path, std::ios::binary);
    if (!file) fail(path, ": cannot open: ", std::strerror(errno));
  }
  std::istream& in = is_stdin(path) ? std::cin : file;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    n++;
    if (strip_cr && !line.empty() && line.back() == '\r') line.pop_back();
    fn(line, n);
  }
  if (in.bad()) fail(input_name(path), ": read failed after line ", n);
}

}  // namespace lmf::cli
