// libFuzzer target for the TOML recipe parser (Recipe::parse) and the override path. Not built by
// CMake.
//
// Build and run from the repository root (clang with libFuzzer, ASan and UBSan):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -DTOML_HEADER_ONLY=1 -Isrc \
//     -DLMF_VERSION=\"fuzz\" tests/fuzz/fuzz_recipe.cc src/lmforge/io/recipe*.cc src/lmforge/io/atomic_file.cc \
//     src/lmforge/core/suggest.cc -o build/fuzz_recipe
//   mkdir -p build/fuzz_corpus_recipe && cp configs/*.toml build/fuzz_corpus_recipe/ &&
//     ./build/fuzz_recipe -max_len=4096 build/fuzz_corpus_recipe
//
// What counts as a bug: any crash, sanitizer report, or exception other than lmf::Error (a
// malformed recipe must give a clean lmf::Error); a recipe that parses but whose resolved text
// does not parse again to the same resolved text.
#include <cstdint>
#include <string>
#include <string_view>

#include "lmforge/core/error.h"
#include "lmforge/io/recipe.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    lmf::Recipe r = lmf::Recipe::parse(text, "fuzz.toml");
    // Typed reads of the keys every command uses must fail cleanly whatever their type.
    for (const char* key : {"run.dir", "train.max_steps", "optimizer.lr", "optimizer.betas", "data.phases"}) {
      try {
        (void)r.has(key);
        (void)r.get<std::string>(key, "");
      } catch (const lmf::Error&) {
      }
      try {
        (void)r.get<int64_t>(key, 0);
      } catch (const lmf::Error&) {
      }
      try {
        (void)r.get<double>(key, 0.0);
      } catch (const lmf::Error&) {
      }
      try {
        (void)r.get<std::vector<double>>(key, {});
      } catch (const lmf::Error&) {
      }
      try {
        for (const lmf::Recipe& t : r.tables(key)) (void)t.get<std::string>("name", "");
      } catch (const lmf::Error&) {
      }
    }
    (void)r.unused_keys();
    // Round trip: the resolved text must parse and resolve to itself.
    const std::string once = r.to_toml();
    lmf::Recipe again = lmf::Recipe::parse(once, "fuzz-resolved.toml");
    check(again.to_toml() == once);
  } catch (const lmf::Error&) {
  }
  return 0;
}
