// Windows of up to `window` tokens inside the documents of a set of token shards: the unit an
// encoder (MLM) sees, one window per sequence, before the tokenizer's special tokens are added.
//
// Each document (shard format, data/shard.h: ids ending with EOS) contributes its tokens
// without the final EOS, cut into ceil(len / window) consecutive windows; the last one may be
// shorter (sequences are "up to max_length" and run unpadded). Empty documents contribute
// nothing. A window never crosses a document boundary, so no sequence attends across documents.
//
// Order: windows are visited epoch by epoch; within an epoch in a pseudo-random order given by
// a keyed Feistel permutation of [0, num_windows) (4 rounds of Philox, cycle-walking onto the
// range), keyed by (seed, stream, epoch). It needs O(1) memory and no start-up pass, so 1e8
// windows cost nothing extra, and the window at any cursor is a pure function of it: resume is
// exact. With shuffle off (evaluation) windows come in storage order.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/data/shard.h"

namespace lmf {

class TokenWindows {
 public:
  // Opens every shard. They must agree on EOS id; with expect_vocab / expect_fingerprint != 0
  // they must match those (else lmf::Error naming the shard, as PackedDataset). `label` names
  // this set in errors ("language 'fr'"). Throws if there is no window at all or window < 1.
  TokenWindows(const std::vector<std::string>& shard_prefixes, int64_t window, uint64_t seed, uint64_t stream,
               uint64_t expect_vocab, uint64_t expect_fingerprint, const std::string& label);

  // The next window's tokens (advances the cursor; a new epoch starts after the last window).
  // Throws lmf::Error naming the shard when a document does not end with EOS.
  std::vector<int32_t> next();
  // The tokens of window w in [0, num_windows()) (storage order).
  std::vector<int32_t> window_tokens(int64_t w) const;

  int64_t num_windows() const { return int64_t(win_cum_.back()); }
  uint64_t num_tokens() const { return num_tokens_; }  // all shard tokens, EOS included
  uint32_t eos_id() const { return eos_id_; }
  uint64_t vocab_size() const { return vocab_size_; }
  void set_shuffle(bool on) { shuffle_ = on; }

  // Cursor: {"epoch": e, "index": i}.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& s);  // throws lmf::Error for a malformed cursor

 private:
  std::vector<std::shared_ptr<Shard>> shards_;
  std::vector<uint64_t> doc_start_;  // [S+1] global index of each shard's first document
  std::vector<uint64_t> win_cum_;    // [D+1] windows before document d
  int64_t window_;
  uint64_t seed_, stream_;
  uint64_t num_tokens_ = 0, vocab_size_ = 0;
  uint32_t eos_id_ = 0;
  std::string label_;
  int64_t epoch_ = 0, index_ = 0;
  bool shuffle_ = true;
};

// A keyed pseudo-random permutation of [0, n): the image of i (< n). Exposed for tests.
uint64_t feistel_permute(uint64_t i, uint64_t n, uint64_t key, uint64_t stream);

}  // namespace lmf
