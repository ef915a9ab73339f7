// Packed causal-LM batches from token shards, with weighted mixtures and an exact cursor.
//
// Each mixture component is a list of shards read as one token stream, cut into windows of
// seq_len + 1 tokens that overlap by one (so every token is a target exactly once per epoch).
// Windows are visited in a Philox-shuffled order per (seed, component, epoch). For every
// sample the component is drawn with probability ∝ weight from the Philox stream at the
// global sample index, so a batch is a pure function of (seed, cursor): resume is exact.
//
// A batch row carries: input_ids = window[0:L], targets = window[1:L+1], seq_idx (document
// index inside the row, +1 after every EOS, so state resets at each document start), and
// positions (0-based position within the document — Mambaoutai's tanh(pos/10) weighting).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/core/tensor.h"
#include "lmforge/data/shard.h"

namespace lmf {

struct MixtureComponent {
  std::string name;
  std::vector<std::string> shard_prefixes;
  double weight = 1.0;
};

struct PackedBatch {
  Tensor input_ids;  // [B, L] i32 (cpu)
  Tensor targets;    // [B, L] i32 (cpu)
  Tensor seq_idx;    // [B, L] i32 (cpu)
  Tensor positions;  // [B, L] i32 (cpu)
  int64_t num_tokens() const { return input_ids.numel(); }
};

class PackedDataset {
 public:
  // Opens every shard; checks they share the vocab size / tokenizer fingerprint given (0 = do
  // not check) and that each component has at least one full window. Throws lmf::Error naming
  // the shard otherwise.
  PackedDataset(std::vector<MixtureComponent> components, int64_t seq_len, uint64_t seed,
                uint64_t expect_vocab_size, uint64_t expect_fingerprint);

  // The next `batch` samples (advances the cursor). shuffle=false walks windows in order
  // (evaluation); then the mixture is visited component by component.
  PackedBatch next(int64_t batch);
  // Number of windows per epoch of component c.
  int64_t windows(size_t c) const;
  int64_t total_windows() const;
  uint32_t eos_id() const { return eos_id_; }
  void set_shuffle(bool on) { shuffle_ = on; }

  // The cursor, for checkpoints: {"sample": n, "components": [{"epoch": e, "index": i}, ...]}.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& s);  // throws on a mismatched component count

 private:
  struct Component {
    MixtureComponent spec;
    std::vector<std::shared_ptr<Shard>> shards;
    std::vector<uint64_t> shard_start;  // global token offset of each shard
    uint64_t num_tokens = 0;
    int64_t epoch = 0, index = 0;
    std::vector<int64_t> order;  // permutation of windows for `epoch`
    int64_t order_epoch = -1;
  };
  uint32_t token_at(const Component& c, uint64_t i) const;
  int64_t pick_component(int64_t sample) const;
  int64_t next_window(Component& c);
  void fill_row(const Component& c, int64_t window, int64_t row, PackedBatch& b) const;

  std::vector<Component> comps_;
  int64_t seq_len_;
  uint64_t seed_;
  int64_t sample_ = 0;
  uint32_t eos_id_ = 0;
  bool shuffle_ = true;
};

}  // namespace lmf
