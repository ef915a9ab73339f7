// libFuzzer target for the HF Mamba config.json parser (parse_mamba_config). Not built by CMake.
//
// Build and run from the repository root (clang with libFuzzer, ASan and UBSan):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
//     tests/fuzz/fuzz_mamba_config.cc src/lmforge/models/mamba_config.cc src/lmforge/models/config_json.cc \
//     -o build/fuzz_mamba_config
//   mkdir -p build/fuzz_corpus_cfg && cp configs/models/*.json tests/fixtures/mamba_tiny_*/config.json \
//     build/fuzz_corpus_cfg/ 2>/dev/null; ./build/fuzz_mamba_config -max_len=2048 build/fuzz_corpus_cfg
//
// What counts as a bug: any crash, sanitizer report (signed overflow included), or exception
// other than lmf::Error; an accepted config with a non-positive size, or one that does not
// survive mamba_config_to_json -> parse_mamba_config unchanged.
#include <cstdint>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"
#include "lmforge/models/mamba_config.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  try {
    lmf::MambaConfig c = lmf::parse_mamba_config(j, "fuzz.json");
    check(c.vocab_size > 0 && c.hidden_size > 0 && c.state_size > 0 && c.num_hidden_layers > 0);
    check(c.intermediate_size > 0 && c.time_step_rank > 0 && c.conv_kernel > 0);
    lmf::MambaConfig d = lmf::parse_mamba_config(lmf::mamba_config_to_json(c), "fuzz-roundtrip.json");
    check(d.vocab_size == c.vocab_size && d.hidden_size == c.hidden_size && d.state_size == c.state_size);
    check(d.intermediate_size == c.intermediate_size && d.time_step_rank == c.time_step_rank);
    check(d.num_hidden_layers == c.num_hidden_layers && d.conv_kernel == c.conv_kernel);
  } catch (const lmf::Error&) {
  }
  return 0;
}
