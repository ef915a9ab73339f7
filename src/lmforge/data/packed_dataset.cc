#include "lmforge/data/packed_dataset.h"

#include <numeric>

#include "lmforge/core/error.h"
#include "lmforge/core/philox.h"

namespace lmf {

PackedDataset::PackedDataset(std::vector<MixtureComponent> components, int64_t seq_len, uint64_t seed,
                             uint64_t expect_vocab, uint64_t expect_fp)
    : seq_len_(seq_len), seed_(seed) {
  if (seq_len < 1) fail("data: seq_len must be >= 1, got ", seq_len);
  if (components.empty()) fail("data: no data sources given");
  bool have_eos = false;
  for (auto& spec : components) {
    if (!(spec.weight > 0)) fail("data: source '", spec.name, "': weight must be > 0, got ", spec.weight);
    if (spec.shard_prefixes.empty()) fail("data: source '", spec.name, "': no shards listed");
    Component c;
    c.spec = spec;
    for (const auto& prefix : spec.shard_prefixes) {
      auto sh = Shard::open(prefix);
      const auto& h = sh->header();
      if (expect_vocab && h.vocab_size != expect_vocab)
        fail(prefix, ".idx: made for a vocabulary of ", h.vocab_size, " tokens but the model has ", expect_vocab,
             " (re-tokenize with the model's tokenizer)");
      if (expect_fp && h.tokenizer_fingerprint != expect_fp)
        fail(prefix, ".idx: made with another tokenizer (fingerprint ", h.tokenizer_fingerprint, ", expected ",
             expect_fp, "); re-run lmforge tokenize with this model's tokenizer");
      if (have_eos && h.eos_id != eos_id_) fail(prefix, ".idx: EOS id ", h.eos_id, " differs from other shards (", eos_id_, ")");
      eos_id_ = uint32_t(h.eos_id);
      have_eos = true;
      c.shard_start.push_back(c.num_tokens);
      c.num_tokens += h.num_tokens;
      c.shards.push_back(std::move(sh));
    }
    if (c.num_tokens < uint64_t(seq_len) + 1)
      fail("data: source '", spec.name, "' has ", c.num_tokens, " tokens, fewer than one sequence of ", seq_len + 1);
    comps_.push_back(std::move(c));
  }
}

int64_t PackedDataset::windows(size_t c) const { return int64_t((comps_[c].num_tokens - 1) / uint64_t(seq_len_)); }

int64_t PackedDataset::total_windows() const {
  int64_t n = 0;
  for (size_t c = 0; c < comps_.size(); c++) n += windows(c);
  return n;
}

uint32_t PackedDataset::token_at(const Component& c, uint64_t i) const {
  // Shards are few: a linear search from the back is fine.
  size_t s = c.shards.size() - 1;
  while (c.shard_start[s] > i) s--;
  return c.shards[s]->tokens()[i - c.shard_start[s]];
}

int64_t PackedDataset::pick_component(int64_t sample) const {
  if (comps_.size() == 1) return 0;
  double total = 0;
  for (const auto& c : comps_) total += c.spec.weight;
  double u = philox_uniform(seed_, 0x6d6978ull /*"mix"*/, uint64_t(sample)) * total;
  for (size_t k = 0; k < comps_.size(); k++) {
    u -= comps_[k].spec.weight;
    if (u < 0) return int64_t(k);
  }
  return int64_t(comps_.size() - 1);
}

int64_t PackedDataset::next_window(Component& c) {
  const int64_t n = int64_t((c.num_tokens - 1) / uint64_t(seq_len_));
  if (c.index >= n) {
    c.epoch++;
    c.index = 0;
  }
  if (!shuffle_) return c.index++;
  if (c.order_epoch != c.epoch) {
    // Fisher-Yates driven by the Philox stream of (seed, component, epoch).
    c.order.resize(size_t(n));
    std::iota(c.order.begin(), c.order.end(), 0);
    const size_t comp = size_t(&c - comps_.data());
    const uint64_t off = (uint64_t(comp) << 40) ^ uint64_t(c.epoch) ^ 0x5e0000000000ull;
    for (int64_t i = n - 1; i > 0; i--) {
      int64_t j = int64_t(philox_uniform(seed_, off, uint64_t(i)) * double(i + 1));
      if (j > i) j = i;
      std::swap(c.order[size_t(i)], c.order[size_t(j)]);
    }
    c.order_epoch = c.epoch;
  }
  return c.order[size_t(c.index++)];
}

void PackedDataset::fill_row(const Component& c, int64_t window, int64_t row, PackedBatch& b) const {
  const uint64_t start = uint64_t(window) * uint64_t(seq_len_);
  int32_t* ids = b.input_ids.data<int32_t>() + row * seq_len_;
  int32_t* tg = b.targets.data<int32_t>() + row * seq_len_;
  int32_t* sq = b.seq_idx.data<int32_t>() + row * seq_len_;
  int32_t* ps = b.positions.data<int32_t>() + row * seq_len_;
  int32_t doc = 0, pos = 0;
  for (int64_t t = 0; t < seq_len_; t++) {
    uint32_t tok = token_at(c, start + uint64_t(t));
    ids[t] = int32_t(tok);
    tg[t] = int32_t(token_at(c, start + uint64_t(t) + 1));
    sq[t] = doc;
    ps[t] = pos++;
    if (tok == eos_id_) {  // the next token starts a new document
      doc++;
      pos = 0;
    }
  }
}

PackedBatch PackedDataset::next(int64_t batch) {
  if (batch < 1) fail("data: batch size must be >= 1, got ", batch);
  PackedBatch b;
  for (Tensor* t : {&b.input_ids, &b.targets, &b.seq_idx, &b.positions}) *t = Tensor::empty({batch, seq_len_}, DType::i32);
  for (int64_t r = 0; r < batch; r++) {
    int64_t k;
    if (shuffle_) {
      k = pick_component(sample_);
    } else {  // evaluation: exhaust components in order
      k = 0;
      while (k + 1 < int64_t(comps_.size()) && comps_[size_t(k)].epoch > 0) k++;
    }
    Component& c = comps_[size_t(k)];
    fill_row(c, next_window(c), r, b);
    sample_++;
  }
  return b;
}

nlohmann::json PackedDataset::state() const {
  nlohmann::json j;
  j["sample"] = sample_;
  j["components"] = nlohmann::json::array();
  for (const auto& c : comps_) j["components"].push_back({{"name", c.spec.name}, {"epoch", c.epoch}, {"index", c.index}});
  return j;
}

void PackedDataset::load_state(const nlohmann::json& s) {
  if (!s.contains("components") || s["components"].size() != comps_.size())
    fail("data: saved cursor has a different number of sources than the current data config");
  sample_ = s.at("sample").get<int64_t>();
  for (size_t k = 0; k < comps_.size(); k++) {
    comps_[k].epoch = s["components"][k].at("epoch").get<int64_t>();
    comps_[k].index = s["components"][k].at("index").get<int64_t>();
  }
}

}  // namespace lmf
