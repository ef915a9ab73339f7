// libFuzzer target for the token-shard reader (Shard::open). Not built by CMake.
//
// The input is split in two: the first 8 bytes give the length n of the .idx part (mod size),
// the next n bytes are PREFIX.idx and the rest PREFIX.bin, both written to a temp folder.
//
// Build and run from the repository root (clang with libFuzzer, ASan and UBSan):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
//     tests/fuzz/fuzz_shard_idx.cc src/lmforge/data/shard.cc -o build/fuzz_shard_idx
//   mkdir -p build/fuzz_corpus_shard && ./build/fuzz_shard_idx -max_len=4096 build/fuzz_corpus_shard
//
// What counts as a bug: any crash, sanitizer report, or exception other than lmf::Error; a shard
// that opens but whose header or document table disagrees with what it promises (offsets that
// do not span 0..num_tokens, or that decrease, or a .bin shorter than num_tokens ids).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "lmforge/core/error.h"
#include "lmforge/data/shard.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

const std::string& prefix() {
  static const std::string p = [] {
    char tmpl[] = "/tmp/lmf_fuzz_shard_XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    check(d != nullptr);
    return std::string(d) + "/s";
  }();
  return p;
}

void write(const std::string& path, const uint8_t* data, size_t n) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), std::streamsize(n));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t idx_len = size;
  if (size >= 8) {
    uint64_t n;
    std::memcpy(&n, data, 8);
    data += 8;
    size -= 8;
    idx_len = size ? size_t(n % (size + 1)) : 0;
  }
  write(prefix() + ".idx", data, idx_len);
  write(prefix() + ".bin", data + idx_len, size - idx_len);

  std::shared_ptr<lmf::Shard> s;
  try {
    s = lmf::Shard::open(prefix());
  } catch (const lmf::Error&) {
    return 0;
  }
  const lmf::ShardHeader& h = s->header();
  check(h.num_tokens <= (size - idx_len) / 4);  // no product: num_tokens * 4 can wrap
  if (h.num_docs > 0) check(s->doc_begin(0) == 0);
  volatile uint32_t sink = 0;
  for (uint64_t d = 0; d < h.num_docs; d++) {
    check(s->doc_begin(d) <= s->doc_end(d) && s->doc_end(d) <= h.num_tokens);
    for (uint64_t i = s->doc_begin(d); i < s->doc_end(d); i++) sink = sink ^ s->tokens()[i];
  }
  if (h.num_docs > 0) check(s->doc_end(h.num_docs - 1) == h.num_tokens);
  return 0;
}
