#include "lmforge/tokenize/bpe.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <queue>
#include <shared_mutex>

#include "lmforge/core/error.h"

namespace lmf::tok {

// Word -> ids cache. HF keeps one per thread (10,000 words of < 256 bytes); a shared sharded map
// with reader locks serves all threads. It is larger (65,536 words, a few MB) because lmforge
// tokenizes whole corpora; once full it stops inserting, as HF's does. Results never depend on it.
struct Bpe::Cache {
  static constexpr size_t kShards = 16;
  static constexpr size_t kCapacity = 65536;
  static constexpr size_t kMaxWordBytes = 256;
  struct Shard {
    std::shared_mutex mu;
    std::unordered_map<std::string, std::vector<std::pair<int32_t, uint32_t>>, StringHash, std::equal_to<>> map;
  };
  std::array<Shard, kShards> shards;
  std::atomic<size_t> size{0};

  Shard& shard_of(std::string_view word) { return shards[StringHash{}(word) % kShards]; }

  bool lookup(std::string_view word, std::vector<std::pair<int32_t, uint32_t>>& out) {
    Shard& s = shard_of(word);
    std::shared_lock lock(s.mu);
    auto it = s.map.find(word);
    if (it == s.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }

  void insert(std::string_view word, const std::pair<int32_t, uint32_t>* ids, size_t n) {
    if (size.load(std::memory_order_relaxed) >= kCapacity) return;
    Shard& s = shard_of(word);
    std::unique_lock lock(s.mu);
    if (s.map.emplace(std::string(word), std::vector<std::pair<int32_t, uint32_t>>(ids, ids + n)).second)
      size.fetch_add(1, std::memory_order_relaxed);
  }
};

void build_id_table(const Vocab& vocab, const std::string& path, std::vector<std::string>& id_to_token,
                    std::vector<bool>& has_id) {
  int64_t max_id = -1;
  for (const auto& [tok, id] : vocab) max_id = std::max<int64_t>(max_id, id);
  // Ids index a dense table; refuse absurdly sparse vocabularies rather than allocate gigabytes.
  if (max_id >= static_cast<int64_t>(4 * vocab.size() + (1 << 20)))
    fail(path_key(path, "vocab"), ": ids are too sparse (max id ", max_id, " for ", vocab.size(), " entries)");
  id_to_token.assign(static_cast<size_t>(max_id + 1), std::string());
  has_id.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [tok, id] : vocab) {
    if (has_id[id])
      fail(path_key(path, "vocab"), ": id ", id, " is used by both '", id_to_token[id], "' and '", tok, "'");
    id_to_token[id] = tok;
    has_id[id] = true;
  }
}

Bpe::Bpe(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
         const std::string& path)
    : vocab_(std::move(vocab)), opt_(std::move(options)), cache_(std::make_unique<Cache>()) {
  build_id_table(vocab_, path, id_to_token_, has_id_);

  const size_t prefix_len = opt_.continuing_subword_prefix.size();
  merges_.reserve(merges.size() * 2);
  merge_list_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); rank++) {
    const auto& [a, b] = merges[rank];
    std::string where = path_index(path_key(path, "merges"), rank);
    auto ia = vocab_.find(a);
    if (ia == vocab_.end()) fail(where, ": merge part '", a, "' is not in model.vocab");
    auto ib = vocab_.find(b);
    if (ib == vocab_.end()) fail(where, ": merge part '", b, "' is not in model.vocab");
    if (b.size() < prefix_len) fail(where, ": merge part '", b, "' is shorter than continuing_subword_prefix");
    std::string merged = a + b.substr(prefix_len);
    auto im = vocab_.find(merged);
    if (im == vocab_.end()) fail(where, ": merged token '", merged, "' is not in model.vocab");
    uint64_t key = (static_cast<uint64_t>(ia->second) << 32) | static_cast<uint32_t>(ib->second);
    // HF collects the merges into a map, so a repeated pair keeps its last rank.
    merges_[key] = Merge{static_cast<int32_t>(rank), im->second};
    merge_list_.emplace_back(ia->second, ib->second);
  }

  if (opt_.unk_token) {
    auto it = vocab_.find(*opt_.unk_token);
    if (it == vocab_.end()) fail(path_key(path, "unk_token"), ": '", *opt_.unk_token, "' is not in model.vocab");
    unk_id_ = it->second;
  }
}

Bpe::~Bpe() = default;

std::optional<int32_t> Bpe::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* Bpe::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

const Bpe::Merge* Bpe::find_merge(int32_t a, int32_t b) const {
  auto it = merges_.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
  return it == merges_.end() ? nullptr : &it->second;
}

void Bpe::tokenize(std::string_view word, std::vector<Token>& out) const {
  if (word.empty()) return;
  if (opt_.ignore_merges) {
    if (auto id = token_to_id(word)) {
      out.push_back(Token{*id, 0, word.size(), {}});
      return;
    }
  }
  thread_local std::vector<std::pair<int32_t, uint32_t>> syms;
  syms.clear();
  const bool cacheable = word.size() < Cache::kMaxWordBytes;
  if (!(cacheable && cache_->lookup(word, syms))) {
    merge_word(word, syms);
    if (cacheable) cache_->insert(word, syms.data(), syms.size());
  }
  // HF Word::get_offsets: consecutive symbol lengths from 0.
  size_t pos = 0;
  for (auto [id, len] : syms) {
    out.push_back(Token{id, pos, pos + len, {}});
    pos += len;
  }
}

namespace {

struct Symbol {
  int32_t id;
  int32_t prev, next;  // linked list over the symbol array; -1 = none
  uint32_t len;        // bytes of the word covered; 0 = merged away
};

struct HeapEntry {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
};

// std::priority_queue pops the "largest": make (rank, pos) smallest the largest.
struct HeapOrder {
  bool operator()(const HeapEntry& x, const HeapEntry& y) const {
    if (x.rank != y.rank) return x.rank > y.rank;
    return x.pos > y.pos;
  }
};

void add_symbol(std::vector<Symbol>& syms, int32_t id, uint32_t len) {
  int32_t idx = static_cast<int32_t>(syms.size());
  if (idx > 0) syms.back().next = idx;
  syms.push_back({id, idx - 1, -1, len});
}

}  // namespace

void Bpe::merge_word(std::string_view w, std::vector<std::pair<int32_t, uint32_t>>& out) const {
  std::vector<Symbol> syms;
  syms.reserve(w.size());
  bool has_unk = false;  // a pending unk symbol of unk_len bytes (fused when fuse_unk)
  uint32_t unk_len = 0;
  std::string piece;
  size_t i = 0;
  while (i < w.size()) {
    auto lead = static_cast<unsigned char>(w[i]);
    size_t clen = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    const bool is_first = i == 0, is_last = i + clen >= w.size();
    std::string_view ch = w.substr(i, clen);
    i += clen;
    std::string_view s = ch;
    if ((!is_first && !opt_.continuing_subword_prefix.empty()) || (is_last && !opt_.end_of_word_suffix.empty())) {
      piece.clear();
      if (!is_first) piece += opt_.continuing_subword_prefix;
      piece += ch;
      if (is_last) piece += opt_.end_of_word_suffix;
      s = piece;
    }
    const auto byte_len = static_cast<uint32_t>(ch.size());
    if (auto it = vocab_.find(s); it != vocab_.end()) {
      if (has_unk) {
        add_symbol(syms, *unk_id_, unk_len);
        has_unk = false;
      }
      add_symbol(syms, it->second, byte_len);
      continue;
    }
    if (opt_.byte_fallback) {
      std::vector<int32_t> bytes;
      for (unsigned char b : s) {
        char code[8];
        std::snprintf(code, sizeof(code), "<0x%02X>", b);
        auto it = vocab_.find(std::string_view(code));
        if (it == vocab_.end()) break;
        bytes.push_back(it->second);
      }
      if (bytes.size() == s.size()) {
        // HF pushes these without flushing a pending unk first; keep that order.
        for (int32_t id : bytes) add_symbol(syms, id, 1);
        continue;
      }
    }
    if (unk_id_) {
      if (has_unk && opt_.fuse_unk) {
        unk_len += byte_len;
      } else {
        if (has_unk) add_symbol(syms, *unk_id_, unk_len);
        has_unk = true;
        unk_len = byte_len;
      }
    }
    // No unk token: the char is dropped (HF behaviour).
  }
  if (has_unk) add_symbol(syms, *unk_id_, unk_len);

  std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapOrder> heap;
  for (size_t k = 0; k + 1 < syms.size(); k++)
    if (const Merge* m = find_merge(syms[k].id, syms[k + 1].id))
      heap.push({m->rank, static_cast<int32_t>(k), m->new_id});

  const auto n = static_cast<int32_t>(syms.size());
  while (!heap.empty()) {
    HeapEntry top = heap.top();
    heap.pop();
    Symbol& cur = syms[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    const int32_t next_pos = cur.next;
    const Symbol right = syms[next_pos];
    const Merge* m = find_merge(cur.id, right.id);
    if (!m || m->new_id != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    syms[next_pos].len = 0;
    if (right.next > -1 && right.next < n) syms[right.next].prev = top.pos;
    if (cur.prev >= 0)
      if (const Merge* pm = find_merge(syms[cur.prev].id, cur.id)) heap.push({pm->rank, cur.prev, pm->new_id});
    if (cur.next >= 0 && cur.next < n)
      if (const Merge* nm = find_merge(cur.id, syms[cur.next].id)) heap.push({nm->rank, top.pos, nm->new_id});
  }
  for (const Symbol& s : syms)
    if (s.len != 0) out.emplace_back(s.id, s.len);
}

void Bpe::fingerprint(Fnv1a64& h) const {
  h.add_string("BPE");
  h.add_string(opt_.unk_token.value_or(""));
  h.add_u64(opt_.unk_token.has_value());
  h.add_string(opt_.continuing_subword_prefix);
  h.add_string(opt_.end_of_word_suffix);
  h.add_u64((opt_.fuse_unk ? 1 : 0) | (opt_.byte_fallback ? 2 : 0) | (opt_.ignore_merges ? 4 : 0));
  h.add_u64(vocab_.size());
  for (size_t id = 0; id < id_to_token_.size(); id++) {
    if (!has_id_[id]) continue;
    h.add_u64(id);
    h.add_string(id_to_token_[id]);
  }
  h.add_u64(merge_list_.size());
  for (auto [a, b] : merge_list_) h.add_u64((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
}

std::unique_ptr<Bpe> bpe_from_json(const Json& j, const std::string& path) {
  require_object(j, path);
  if (const Json* d = optional(j, "dropout")) {
    if (!d->is_number()) fail(path_key(path, "dropout"), ": expected a number or null, got ", json_kind(*d));
    double p = d->get<double>();
    if (p < 0 || p > 1) fail(path_key(path, "dropout"), ": ", p, " is not in [0, 1]");
    if (p > 0) fail(path_key(path, "dropout"), ": BPE dropout ", p, " is not supported (only null or 0)");
  }
  BpeOptions opt;
  if (const Json* u = optional(j, "unk_token")) opt.unk_token = as_string(*u, path_key(path, "unk_token"));
  opt.continuing_subword_prefix = get_string_or(j, "continuing_subword_prefix", path, "");
  opt.end_of_word_suffix = get_string_or(j, "end_of_word_suffix", path, "");
  opt.fuse_unk = get_bool_or(j, "fuse_unk", path, false);
  opt.byte_fallback = get_bool_or(j, "byte_fallback", path, false);
  opt.ignore_merges = get_bool_or(j, "ignore_merges", path, false);

  const std::string vpath = path_key(path, "vocab");
  const Json& vj = required(j, "vocab", path);
  if (!vj.is_object()) fail(vpath, ": expected an object {token: id}, got ", json_kind(vj));
  Vocab vocab;
  vocab.reserve(vj.size());
  for (auto it = vj.begin(); it != vj.end(); ++it) vocab[it.key()] = as_id(it.value(), vpath + "['" + it.key() + "']");

  const std::string mpath = path_key(path, "merges");
  const Json& mj = required(j, "merges", path);
  if (!mj.is_array()) fail(mpath, ": expected an array, got ", json_kind(mj));
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(mj.size());
  for (size_t k = 0; k < mj.size(); k++) {
    const Json& m = mj[k];
    std::string where = path_index(mpath, k);
    if (m.is_string()) {
      const std::string& line = m.get_ref<const std::string&>();
      if (line.rfind("#version", 0) == 0) continue;  // HF skips a merges.txt header line
      size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
        fail(where, ": expected \"a b\" (two tokens separated by one space), got '", line, "'");
      merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2) {
      merges.emplace_back(as_string(m[0], path_index(where, 0)), as_string(m[1], path_index(where, 1)));
    } else {
      fail(where, ": expected \"a b\" or [\"a\", \"b\"], got ", m.is_array() ? m.dump() : json_kind(m));
    }
  }
  return std::make_unique<Bpe>(std::move(vocab), merges, std::move(opt), path);
}

}  // namespace lmf::tok
