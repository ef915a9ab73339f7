// Chunk sizes of the fused cross-entropy kernels (backend/*/cross_entropy).
//
// The kernels process the logits h W^T in tiles of `rows` rows x `vocab` vocabulary entries, so
// their scratch memory is bounded by rows * vocab * 4 bytes whatever N and V are. Each backend
// picks defaults (cpu: 128 x 4096; cuda: see backend/cuda/cross_entropy.cu). The kernel
// signatures in kernel_list.inc carry no chunk sizes, so an override travels through this
// thread-local setting: the ops layer sets it from CrossEntropyOptions around its kernel calls
// (tests use it to put chunk boundaries inside small problems, benchmarks to tune).
//
// Contract: values <= 0 mean "backend default"; the setting belongs to the calling thread.
// Defined in backend/cpu/cross_entropy.cc (always built).
#pragma once

#include <cstdint>

namespace lmf {

struct CrossEntropyChunks {
  int64_t rows = 0;   // rows of h per tile (0 = default)
  int64_t vocab = 0;  // vocabulary entries per tile (0 = default)
};

void set_cross_entropy_chunks(CrossEntropyChunks c);
CrossEntropyChunks cross_entropy_chunks();

// Sets the override for the current scope and restores the previous one on exit.
class CrossEntropyChunksGuard {
 public:
  explicit CrossEntropyChunksGuard(CrossEntropyChunks c) : prev_(cross_entropy_chunks()) {
    set_cross_entropy_chunks(c);
  }
  ~CrossEntropyChunksGuard() { set_cross_entropy_chunks(prev_); }
  CrossEntropyChunksGuard(const CrossEntropyChunksGuard&) = delete;
  CrossEntropyChunksGuard& operator=(const CrossEntropyChunksGuard&) = delete;

 private:
  CrossEntropyChunks prev_;
};

}  // namespace lmf
