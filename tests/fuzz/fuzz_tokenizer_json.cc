// libFuzzer target for the tokenizer.json loader (Tokenizer::from_json_string) and encode/decode of
// the loaded tokenizer. Not built by CMake.
//
// Build and run from the repository root (clang with libFuzzer, ASan and UBSan):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
//     tests/fuzz/fuzz_tokenizer_json.cc src/lmforge/tokenize/*.cc src/lmforge/core/suggest.cc \
//     -lutf8proc -lpcre2-8 -o build/fuzz_tokenizer_json
//   mkdir -p build/fuzz_corpus_tok && cp tests/fixtures/tokenizer/*.json build/fuzz_corpus_tok/ &&
//     ./build/fuzz_tokenizer_json -max_len=8192 build/fuzz_corpus_tok
//
// What counts as a bug: any crash, sanitizer report, hang, or exception other than lmf::Error;
// an accepted tokenizer that gives an id outside [0, vocab_size()) or cannot decode its own ids.
#include <cstdint>
#include <string>
#include <string_view>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/tokenizer.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    lmf::Tokenizer tok = lmf::Tokenizer::from_json_string(text, "fuzz.json");
    (void)tok.fingerprint();
    for (bool special : {false, true}) {
      std::vector<int32_t> ids = tok.encode("Hello wörld, l'été 2024!\n  x", special);
      for (int32_t id : ids) check(id >= 0 && id < tok.vocab_size());
      (void)tok.decode(ids, false);
      (void)tok.decode(ids, true);
    }
  } catch (const lmf::Error&) {
  }
  return 0;
}
