#include "lmforge/data/token_windows.h"

#include <algorithm>

#include "lmforge/core/error.h"
#include "lmforge/core/philox.h"

namespace lmf {

namespace {
constexpr uint64_t kWindowStream = 0x746f6b2d77696e64ull;  // "tok-wind"
}  // namespace

uint64_t feistel_permute(uint64_t i, uint64_t n, uint64_t key, uint64_t stream) {
  LMF_CHECK(i < n, "feistel_permute: index ", i, " outside [0, ", n, ")");
  // A balanced Feistel network on 2k bits (4^k >= n); cycle-walking maps the permutation of
  // [0, 4^k) onto [0, n): from i < n, following the cycle reaches a value < n (at worst i
  // itself), after fewer than 4 steps on average since 4^k < 4 n.
  int half = 1;
  while ((uint64_t(1) << (2 * half)) < n) half++;
  const uint64_t mask = (uint64_t(1) << half) - 1;
  const uint64_t k = key ^ kWindowStream;
  do {
    uint64_t left = i >> half, right = i & mask;
    for (uint64_t round = 0; round < 4; round++) {
      const Philox4 r = philox4x32_10(k, right, stream * 4 + round);
      const uint64_t f = ((uint64_t(r.v[0]) << 32) | r.v[1]) & mask;
      const uint64_t next_right = left ^ f;
      left = right;
      right = next_right;
    }
    i = (left << half) | right;
  } while (i >= n);
  return i;
}

TokenWindows::TokenWindows(const std::vector<std::string>& shard_prefixes, int64_t window, uint64_t seed,
                           uint64_t stream, uint64_t expect_vocab, uint64_t expect_fp,
                           const std::string& label)
    : window_(window), seed_(seed), stream_(stream), label_(label) {
  if (window < 1) fail("data: ", label, ": window length must be >= 1, got ", window);
  if (shard_prefixes.empty()) fail("data: ", label, ": no shards listed");
  doc_start_.push_back(0);
  win_cum_.push_back(0);
  for (const auto& prefix : shard_prefixes) {
    auto sh = Shard::open(prefix);
    const ShardHeader& h = sh->header();
    if (expect_vocab && h.vocab_size != expect_vocab)
      fail(prefix, ".idx: made for a vocabulary of ", h.vocab_size, " tokens but the model has ",
           expect_vocab, " (re-tokenize with the model's tokenizer)");
    if (expect_fp && h.tokenizer_fingerprint != expect_fp)
      fail(prefix, ".idx: made with another tokenizer (fingerprint ", h.tokenizer_fingerprint, ", expected ",
           expect_fp, "); re-run lmforge tokenize with this model's tokenizer");
    if (!shards_.empty() && h.eos_id != eos_id_)
      fail(prefix, ".idx: EOS id ", h.eos_id, " differs from the other shards of ", label, " (", eos_id_,
           ")");
    eos_id_ = uint32_t(h.eos_id);
    vocab_size_ = h.vocab_size;
    num_tokens_ += h.num_tokens;
    for (uint64_t d = 0; d < h.num_docs; d++) {
      const uint64_t len = sh->doc_end(d) - sh->doc_begin(d);
      const uint64_t content = len > 0 ? len - 1 : 0;  // the final EOS is not part of a window
      win_cum_.push_back(win_cum_.back() + (content + uint64_t(window) - 1) / uint64_t(window));
    }
    doc_start_.push_back(doc_start_.back() + h.num_docs);
    shards_.push_back(std::move(sh));
  }
  if (num_windows() == 0) fail("data: ", label, ": the shards hold no tokens besides document ends");
}

std::vector<int32_t> TokenWindows::window_tokens(int64_t w) const {
  LMF_CHECK(w >= 0 && w < num_windows());
  // Document d holds windows [win_cum_[d], win_cum_[d+1]).
  const uint64_t d =
      uint64_t(std::upper_bound(win_cum_.begin(), win_cum_.end(), uint64_t(w)) - win_cum_.begin()) - 1;
  const size_t s = size_t(std::upper_bound(doc_start_.begin(), doc_start_.end(), d) - doc_start_.begin()) - 1;
  const Shard& sh = *shards_[s];
  const uint64_t local = d - doc_start_[s];
  const uint64_t begin = sh.doc_begin(local), end = sh.doc_end(local);
  const uint64_t content_end = end - 1;
  const uint64_t start = begin + (uint64_t(w) - win_cum_[d]) * uint64_t(window_);
  const uint64_t stop = std::min(content_end, start + uint64_t(window_));
  if (stop == content_end && sh.tokens()[content_end] != eos_id_)
    fail(sh.prefix(), ".bin: document ", local, " does not end with the EOS id ", eos_id_,
         " (shards from lmforge tokenize always do)");
  std::vector<int32_t> out(size_t(stop - start));
  for (uint64_t i = start; i < stop; i++) {
    const uint32_t tok = sh.tokens()[i];
    if (tok >= sh.header().vocab_size)
      fail(sh.prefix(), ".bin: token ", i, " has id ", tok, " >= vocab_size ", sh.header().vocab_size);
    out[size_t(i - start)] = int32_t(tok);
  }
  return out;
}

std::vector<int32_t> TokenWindows::next() {
  const int64_t n = num_windows();
  if (index_ >= n) {
    epoch_++;
    index_ = 0;
  }
  const int64_t i = index_++;
  const int64_t w =
      shuffle_ ? int64_t(feistel_permute(uint64_t(i), uint64_t(n), seed_, stream_ ^ (uint64_t(epoch_) << 40)))
               : i;
  return window_tokens(w);
}

nlohmann::json TokenWindows::state() const { return {{"epoch", epoch_}, {"index", index_}}; }

void TokenWindows::load_state(const nlohmann::json& s) {
  try {
    const int64_t e = s.at("epoch").get<int64_t>(), i = s.at("index").get<int64_t>();
    if (e < 0 || i < 0 || i > num_windows()) fail("bad values");
    epoch_ = e;
    index_ = i;
  } catch (const std::exception& ex) {
    fail("data: ", label_, ": saved cursor ", s.dump(), " is not valid for these shards (", ex.what(), ")");
  }
}

}  // namespace lmf
