#include "lmforge/tokenize/unigram.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "lmforge/core/error.h"

namespace lmf::tok {

Unigram::Unigram(std::vector<std::pair<std::string, double>> pieces, std::optional<int32_t> unk_id,
                 bool byte_fallback, const std::string& path)
    : pieces_(std::move(pieces)), unk_id_(unk_id), byte_fallback_(byte_fallback) {
  if (unk_id_) {
    if (pieces_.empty()) fail(path_key(path, "vocab"), ": empty vocabulary");
    if (static_cast<size_t>(*unk_id_) >= pieces_.size())
      fail(path_key(path, "unk_id"), ": ", *unk_id_, " is outside the vocabulary (", pieces_.size(), " pieces)");
  }
  min_score_ = std::numeric_limits<double>::infinity();
  trie_.emplace_back();
  token_to_id_.reserve(pieces_.size());
  for (size_t id = 0; id < pieces_.size(); id++) {
    const auto& [piece, score] = pieces_[id];
    token_to_id_[piece] = static_cast<int32_t>(id);  // a repeated piece keeps its last id (HF)
    min_score_ = std::min(min_score_, score);
    int32_t node = 0;
    for (unsigned char b : piece) {
      auto& next = trie_[node].next;
      auto it = std::lower_bound(next.begin(), next.end(), b, [](const auto& e, unsigned char v) { return e.first < v; });
      if (it != next.end() && it->first == b) {
        node = it->second;
      } else {
        auto child = static_cast<int32_t>(trie_.size());
        next.insert(it, {b, child});
        trie_.emplace_back();  // may reallocate; `next` is not used after this
        node = child;
      }
    }
    if (!piece.empty()) trie_[node].id = static_cast<int32_t>(id);
  }
}

template <class F>
void Unigram::common_prefixes(std::string_view s, size_t pos, F f) const {
  int32_t node = 0;
  for (size_t i = pos; i < s.size(); i++) {
    auto b = static_cast<unsigned char>(s[i]);
    const auto& next = trie_[node].next;
    auto it = std::lower_bound(next.begin(), next.end(), b, [](const auto& e, unsigned char v) { return e.first < v; });
    if (it == next.end() || it->first != b) return;
    node = it->second;
    if (trie_[node].id >= 0) f(i + 1 - pos, trie_[node].id);
  }
}

std::vector<std::string> Unigram::encode(std::string_view s) const {
  std::vector<std::string> results;
  if (s.empty()) return results;
  struct Best {
    int32_t id = 0;
    double score = 0;
    bool set = false;
    size_t start = 0;
  };
  const double unk_score = min_score_ - 10.0;  // K_UNK_PENALTY
  std::vector<Best> best(s.size() + 1);
  size_t start = 0;
  while (start < s.size()) {
    const double till_here = best[start].score;
    auto lead = static_cast<unsigned char>(s[start]);
    const size_t mblen = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    bool has_single = false;
    common_prefixes(s, start, [&](size_t len, int32_t id) {
      // The trie keeps the last id of a repeated piece, like HF's token_to_ids map.
      const double cand = pieces_[id].second + till_here;
      Best& t = best[start + len];
      if (!t.set || cand > t.score) t = Best{id, cand, true, start};
      if (len == mblen) has_single = true;
    });
    if (!has_single) {
      if (!unk_id_) fail("Unigram: no piece for the character at byte ", start, " and the model has no unk_id");
      const double cand = unk_score + till_here;
      Best& t = best[start + mblen];
      if (!t.set || cand > t.score) t = Best{*unk_id_, cand, true, start};
    }
    start += mblen;
  }
  // Backtrack, fusing consecutive unk pieces.
  size_t end = s.size();
  std::vector<std::string_view> rev;
  size_t unk_begin = std::string::npos, unk_end = 0;
  auto flush_unk = [&] {
    if (unk_begin != std::string::npos) rev.push_back(s.substr(unk_begin, unk_end - unk_begin));
    unk_begin = std::string::npos;
  };
  while (end > 0) {
    const Best& n = best[end];
    LMF_CHECK(n.set, "Unigram lattice has no path to byte ", end);
    if (unk_id_ && n.id == *unk_id_) {
      if (unk_begin == std::string::npos) unk_end = end;
      unk_begin = n.start;
    } else {
      flush_unk();
      rev.push_back(s.substr(n.start, end - n.start));
    }
    end = n.start;
  }
  flush_unk();
  results.reserve(rev.size());
  for (auto it = rev.rbegin(); it != rev.rend(); ++it) results.emplace_back(*it);
  return results;
}

void Unigram::tokenize(std::string_view word, std::vector<Token>& out) const {
  size_t offset = 0;
  for (const std::string& piece : encode(word)) {
    const size_t len = piece.size();
    auto it = token_to_id_.find(std::string_view(piece));
    if (it != token_to_id_.end()) {
      out.push_back(Token{it->second, offset, offset + len, {}});
      offset += len;
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (unsigned char b : piece) {
        char code[8];
        std::snprintf(code, sizeof(code), "<0x%02X>", b);
        auto bt = token_to_id_.find(std::string_view(code));
        if (bt == token_to_id_.end()) break;
        bytes.push_back(bt->second);
      }
      if (bytes.size() == piece.size()) {
        for (int32_t id : bytes) out.push_back(Token{id, offset, offset + len, {}});
        offset += len;
        continue;
      }
    }
    if (!unk_id_) fail("Unigram: '", piece, "' is not in the vocabulary and the model has no unk_id");
    out.push_back(Token{*unk_id_, offset, offset + len, piece});  // HF keeps the text as the token
    offset += len;
  }
}

std::optional<int32_t> Unigram::token_to_id(std::string_view token) const {
  auto it = token_to_id_.find(token);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

const std::string* Unigram::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return nullptr;
  return &pieces_[id].first;
}

void Unigram::fingerprint(Fnv1a64& h) const {
  h.add_string("Unigram");
  h.add_u64(unk_id_ ? static_cast<uint64_t>(*unk_id_) + 1 : 0);
  h.add_u64(byte_fallback_ ? 1 : 0);
  h.add_u64(pieces_.size());
  for (const auto& [piece, score] : pieces_) {
    h.add_string(piece);
    uint64_t bits;
    static_assert(sizeof(bits) == sizeof(score));
    std::memcpy(&bits, &score, sizeof(bits));
    h.add_u64(bits);
  }
}

std::unique_ptr<Unigram> unigram_from_json(const Json& j, const std::string& path) {
  require_object(j, path);
  std::optional<int32_t> unk;
  if (const Json* u = optional(j, "unk_id")) unk = as_id(*u, path_key(path, "unk_id"));
  const bool bf = get_bool_or(j, "byte_fallback", path, false);
  const std::string vpath = path_key(path, "vocab");
  const Json& vj = required(j, "vocab", path);
  if (!vj.is_array()) fail(vpath, ": expected an array of [piece, score], got ", json_kind(vj));
  std::vector<std::pair<std::string, double>> pieces;
  pieces.reserve(vj.size());
  for (size_t i = 0; i < vj.size(); i++) {
    const Json& e = vj[i];
    std::string p = path_index(vpath, i);
    if (!e.is_array() || e.size() != 2) fail(p, ": expected [piece, score], got ", e.is_array() ? e.dump() : json_kind(e));
    if (!e[1].is_number()) fail(path_index(p, 1), ": expected a number (the score), got ", json_kind(e[1]));
    pieces.emplace_back(as_string(e[0], path_index(p, 0)), e[1].get<double>());
  }
  return std::make_unique<Unigram>(std::move(pieces), unk, bf, path);
}

}  // namespace lmf::tok
