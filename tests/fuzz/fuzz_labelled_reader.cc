// libFuzzer target for the labelled-data reader (CSV / TSV / JSONL, data/labelled_reader.h).
// Not built by CMake.
//
// Build and run from the repository root (clang with libFuzzer, ASan and UBSan):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
//     tests/fuzz/fuzz_labelled_reader.cc src/lmforge/data/labelled_reader.cc src/lmforge/tokenize/unicode.cc
//     \ -lutf8proc -o build/fuzz_labelled_reader
//   mkdir -p build/fuzz_corpus_labelled && head -c 4000 data/sst2/dev.tsv >
//   build/fuzz_corpus_labelled/dev.tsv &&
//     ./build/fuzz_labelled_reader -max_len=4096 build/fuzz_corpus_labelled
//
// The first input byte picks the format and options; the rest is the file. What counts as a bug:
// any crash, sanitizer report or exception other than lmf::Error; an example with an empty text
// or label, or a line number outside the input; label ids outside the label set.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "lmforge/core/error.h"
#include "lmforge/data/labelled_reader.h"

namespace {
void check(bool ok) {
  if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string_view content(reinterpret_cast<const char*>(data + 1), size - 1);
  lmf::LabelledReadOptions o;
  static const char* formats[] = {"csv", "tsv", "jsonl"};
  o.format = formats[mode % 3];
  o.header = (mode & 4) == 0;
  o.quoting = (mode & 8) == 0;
  if (!o.header) {
    o.text_column = "0";
    o.label_column = "1";
  }
  if (mode & 16) o.text_pair_column = o.header ? "pair" : "2";
  if (mode & 32) o.label_column = "";
  const int64_t lines = 1 + std::count(content.begin(), content.end(), '\n');
  try {
    lmf::LabelledData d = lmf::parse_labelled(content, "fuzz", o);
    for (const auto& ex : d.examples) {
      check(!ex.text.empty());
      check(o.label_column.empty() || !ex.label.empty());
      check(ex.line >= 1 && ex.line <= lines);
    }
    if (!o.label_column.empty()) {
      auto names = lmf::label_names_from(d);
      lmf::assign_label_ids(d, names);
      for (const auto& ex : d.examples) check(ex.label_id >= 0 && size_t(ex.label_id) < names.size());
    }
  } catch (const lmf::Error&) {
  }
  return 0;
}
