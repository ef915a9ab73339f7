// libFuzzer target for the safetensors reader (SafetensorsFile::from_bytes). Not built by CMake.
//
// Build and run from the repository root (clang with libFuzzer, ASan and UBSan):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -DLMF_WITH_CUDA=0 -Isrc \
//     tests/fuzz/fuzz_safetensors.cc src/lmforge/io/safetensors.cc src/lmforge/io/atomic_file.cc \
//     src/lmforge/core/{tensor,dtype,device,device_memory}.cc -o build/fuzz_safetensors
//   mkdir -p build/fuzz_corpus && ./build/fuzz_safetensors -max_len=4096 build/fuzz_corpus
//
// What counts as a bug: any crash, sanitizer report, or exception other than lmf::Error (a
// malformed file must give a clean lmf::Error), and a file that parses but does not survive a
// write/read round trip with identical names, dtypes, shapes, bytes and metadata.
#include <cstdint>
#include <cstring>
#include <string>

#include "lmforge/core/error.h"
#include "lmforge/io/safetensors.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

std::string bytes_of(const lmf::Tensor& t) {
  return std::string(static_cast<const char*>(t.data_ptr()), t.nbytes());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lmf::SafetensorsFile f = [&] {
    try {
      return lmf::SafetensorsFile::from_bytes(
          std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    } catch (const lmf::Error&) {
      return lmf::SafetensorsFile::from_bytes(std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
    }
  }();

  // Every accepted tensor must be readable in full (ASan catches reads past the buffer).
  lmf::NamedTensors all;
  for (const auto& name : f.names()) {
    const auto& info = f.info(name);
    lmf::Tensor t = f.tensor(name);
    check(t.shape() == info.shape && t.dtype() == info.dtype);
    check(t.nbytes() == info.end - info.begin);
    volatile uint8_t sink = 0;
    const auto* p = static_cast<const uint8_t*>(t.nbytes() ? t.data_ptr() : nullptr);
    for (size_t i = 0; i < t.nbytes(); i++) sink = sink ^ p[i];
    all.emplace_back(name, t);
  }

  // Round trip: what we accept, we must be able to write and read back identically.
  lmf::SafetensorsFile g = lmf::SafetensorsFile::from_bytes(
      lmf::serialize_safetensors(all, f.metadata()), "fuzz-roundtrip");
  check(g.names() == f.names());
  check(g.metadata() == f.metadata());
  for (const auto& [name, t] : all) {
    lmf::Tensor u = g.tensor(name);
    check(u.dtype() == t.dtype() && u.shape() == t.shape());
    check(u.nbytes() == 0 || bytes_of(u) == bytes_of(t));
  }
  return 0;
}
