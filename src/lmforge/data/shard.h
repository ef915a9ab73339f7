// Token shards: what `lmforge tokenize` writes and pre-training reads (DESIGN.md §6).
//
//   <name>.bin  uint32 little-endian token ids, documents back to back (each ends with EOS)
//   <name>.idx  header + document offsets:
//               magic "LMFSHRD1" | u64 version (1) | u64 num_docs | u64 num_tokens |
//               u64 vocab_size | u64 tokenizer_fingerprint | u64 eos_id |
//               (num_docs + 1) x u64 token offsets (first 0, last num_tokens)
// Readers memory-map both files and validate sizes, offsets and ids < vocab_size lazily per
// document; the fingerprint lets training refuse shards made with another tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lmf {

struct ShardHeader {
  uint64_t num_docs = 0;
  uint64_t num_tokens = 0;
  uint64_t vocab_size = 0;
  uint64_t tokenizer_fingerprint = 0;
  uint64_t eos_id = 0;
};

// Streams documents into <prefix>.bin / .idx. Files appear atomically at finish(); a writer
// destroyed before finish() leaves nothing behind.
class ShardWriter {
 public:
  ShardWriter(const std::string& prefix, uint64_t vocab_size, uint64_t tokenizer_fingerprint, uint64_t eos_id);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;
  // Appends one document (EOS is NOT added here: callers append it to the ids).
  void add_document(const std::vector<int32_t>& ids);
  void finish();
  uint64_t num_tokens() const { return num_tokens_; }
  uint64_t num_docs() const { return offsets_.size() - 1; }

 private:
  std::string prefix_, tmp_bin_;
  int fd_ = -1;
  std::vector<uint64_t> offsets_{0};
  uint64_t num_tokens_ = 0;
  ShardHeader header_;
  bool finished_ = false;
};

// A read-only view of one shard (memory-mapped).
class Shard {
 public:
  // Opens <prefix>.bin and <prefix>.idx; throws lmf::Error naming the file for a missing file,
  // bad magic/version, truncated index or a .bin size that disagrees with num_tokens.
  static std::shared_ptr<Shard> open(const std::string& prefix);
  const ShardHeader& header() const { return header_; }
  const std::string& prefix() const { return prefix_; }
  uint64_t doc_begin(uint64_t d) const { return offsets_[d]; }
  uint64_t doc_end(uint64_t d) const { return offsets_[d + 1]; }
  const uint32_t* tokens() const { return tokens_; }
  ~Shard();

 private:
  std::string prefix_;
  ShardHeader header_;
  const uint32_t* tokens_ = nullptr;
  const uint64_t* offsets_ = nullptr;
  void* bin_map_ = nullptr;
  size_t bin_size_ = 0;
  void* idx_map_ = nullptr;
  size_t idx_size_ = 0;
};

}  // namespace lmf
