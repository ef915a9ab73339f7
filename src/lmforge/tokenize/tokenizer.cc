#include "lmforge/tokenize/tokenizer.h"

#include <algorithm>
#include <cstdio>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/tokenizer_impl.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf {

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

namespace {

void check_utf8(std::string_view text, const char* which) {
  if (size_t bad = tok::find_invalid_utf8(text); bad != std::string_view::npos)
    fail("Tokenizer::encode: ", which, " is not valid UTF-8 (byte offset ", bad, ")");
}

// HF encode_single_sequence + PreTokenizedString::into_encoding (byte offsets). With
// `limit`, HF's tokenize_with_limit (tokenizers >= 0.23, direction right): splits are tokenized
// in order until at least `limit` tokens exist and the later splits are dropped. That early exit
// changes which sequence longest_first sees as the longer one, so it must be reproduced.
// ids_only skips the offsets and token strings (encode() needs only the ids).
Encoding encode_single(const Tokenizer::Impl& m, std::string_view text, int32_t type_id,
                       std::optional<size_t> limit, bool ids_only) {
  tok::PreTokenizedString pts = m.added.extract_and_normalize(text, m.normalizer.get());
  if (m.pre_tokenizer) m.pre_tokenizer->apply(pts);
  Encoding e;
  size_t total = 0;
  std::vector<tok::Token> buf;
  for (size_t idx = 0; idx < pts.splits.size(); idx++) {
    const tok::Split& s = pts.splits[idx];
    const std::vector<tok::Token>* toks = &s.tokens;
    bool stop = false;
    if (!s.tokenized) {
      buf.clear();
      m.model->tokenize(s.normalized.get(), buf);
      toks = &buf;
      total += buf.size();
      stop = limit && total >= *limit;
    } else {
      total += s.tokens.size();  // added tokens count, but never stop the scan (as HF)
    }
    const size_t shift = s.normalized.original_shift();
    for (const tok::Token& t : *toks) {
      e.ids.push_back(t.id);
      if (ids_only) continue;
      std::pair<size_t, size_t> off{t.start, t.end};
      if (auto r = s.normalized.normalized_to_original({t.start, t.end})) off = {shift + r->first, shift + r->second};
      e.type_ids.push_back(type_id);
      e.special_tokens_mask.push_back(0);
      e.offsets.push_back(off);
      if (!t.value.empty()) {
        e.tokens.push_back(t.value);
      } else {
        const std::string* v = m.model->id_to_token(t.id);
        e.tokens.push_back(v ? *v : std::string());
      }
      e.word_ids.push_back(static_cast<int32_t>(idx));
      e.sequence_ids.push_back(type_id);
    }
    if (stop) break;  // the later splits are dropped
  }
  if (ids_only) {
    const size_t n = e.ids.size();
    e.type_ids.assign(n, type_id);
    e.special_tokens_mask.assign(n, 0);
    e.word_ids.assign(n, -1);
    e.sequence_ids.assign(n, type_id);
    e.offsets.assign(n, {0, 0});
    e.tokens.assign(n, std::string());
  }
  return e;
}

void truncate_to(Encoding& e, size_t n) {
  if (n >= e.ids.size()) return;
  e.ids.resize(n);
  e.type_ids.resize(n);
  e.special_tokens_mask.resize(n);
  e.offsets.resize(n);
  e.tokens.resize(n);
  e.word_ids.resize(n);
  e.sequence_ids.resize(n);
}

// utils/truncation.rs truncate_encodings (stride 0, direction right).
void truncate_encodings(Encoding& a, std::optional<Encoding>& b, size_t max_length, Truncation strategy) {
  if (max_length == 0) {
    truncate_to(a, 0);
    if (b) truncate_to(*b, 0);
    return;
  }
  const size_t total = a.size() + (b ? b->size() : 0);
  if (total <= max_length) return;
  const size_t to_remove = total - max_length;
  if (strategy == Truncation::longest_first) {
    if (!b) {
      truncate_to(a, total - to_remove);
      return;
    }
    size_t n1 = a.size(), n2 = b->size();
    const bool swap = n1 > n2;
    if (swap) std::swap(n1, n2);
    if (n1 > max_length)
      n2 = n1;
    else
      n2 = std::max(n1, max_length - n1);
    if (n1 + n2 > max_length) {
      n1 = max_length / 2;
      n2 = n1 + max_length % 2;
    }
    if (swap) std::swap(n1, n2);
    truncate_to(a, n1);
    truncate_to(*b, n2);
    return;
  }
  Encoding* target = &a;
  if (strategy == Truncation::only_second) {
    if (!b) fail("Tokenizer::encode_pair: truncation only_second needs a second sequence");
    target = &*b;
  }
  if (target->size() <= to_remove)
    fail("Tokenizer::encode_pair: the ", strategy == Truncation::only_first ? "first" : "second", " sequence (",
         target->size(), " tokens) is too short to remove ", to_remove, " tokens and fit max_length ", max_length,
         " with ", strategy == Truncation::only_first ? "only_first" : "only_second", " truncation");
  truncate_to(*target, target->size() - to_remove);
}

}  // namespace

Encoding Tokenizer::encode_pair(std::string_view first, std::optional<std::string_view> second,
                                const EncodeOptions& options) const {
  return encode_impl(first, second, options, /*ids_only=*/false);
}

Encoding Tokenizer::encode_impl(std::string_view first, std::optional<std::string_view> second,
                                const EncodeOptions& options, bool ids_only) const {
  check_utf8(first, second ? "the first sequence" : "input");
  if (second) check_utf8(*second, "the second sequence");
  const Impl& m = *impl_;
  const bool truncate = options.max_length > 0 && options.truncation != Truncation::none;
  std::optional<size_t> limit_a, limit_b;
  if (truncate) {
    limit_b = options.max_length;
    if (options.truncation != Truncation::only_second) limit_a = options.max_length;
  }
  Encoding a = encode_single(m, first, 0, limit_a, ids_only);
  std::optional<Encoding> b;
  if (second) b = encode_single(m, *second, 1, limit_b, ids_only);

  if (truncate) {
    size_t max_length = options.max_length;
    const size_t added = m.post_processor ? m.post_processor->added_tokens(b.has_value()) : 0;
    if (options.add_special_tokens && added > 0) {
      if (max_length < added)
        fail("Tokenizer::encode_pair: max_length ", max_length, " is smaller than the ", added,
             " special tokens the post-processor adds");
      max_length -= added;
    }
    truncate_encodings(a, b, max_length, options.truncation);
  }

  if (m.post_processor) return m.post_processor->process(std::move(a), std::move(b), options.add_special_tokens);
  std::vector<Encoding> parts;
  parts.push_back(std::move(a));
  if (b) parts.push_back(std::move(*b));
  return tok::merge_encodings(parts);
}

Encoding Tokenizer::encode_full(std::string_view text, const EncodeOptions& options) const {
  return encode_pair(text, std::nullopt, options);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  EncodeOptions o;
  o.add_special_tokens = add_special_tokens;
  return encode_impl(text, std::nullopt, o, /*ids_only=*/true).ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0) fail("Tokenizer::decode: negative id ", id);
    const std::string* t = m.added.decode_form(id);
    if (!t) t = m.model->id_to_token(id);
    if (!t) continue;  // HF skips ids it has no token for
    if (skip_special_tokens && m.added.is_special(*t)) continue;
    tokens.push_back(*t);
  }
  std::string out;
  if (m.decoder) {
    for (const std::string& s : m.decoder->decode_chain(std::move(tokens))) out += s;
  } else {
    for (size_t i = 0; i < tokens.size(); i++) {
      if (i) out += ' ';
      out += tokens[i];
    }
  }
  return out;
}

int32_t Tokenizer::vocab_size() const { return std::max(impl_->model->max_id(), impl_->added.max_id()) + 1; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = impl_->added.token_to_id(token)) return id;
  return impl_->model->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  const std::string* t = impl_->added.decode_form(id);
  if (!t) t = impl_->model->id_to_token(id);
  if (!t) return std::nullopt;
  return *t;
}

bool Tokenizer::is_special(int32_t id) const {
  const tok::AddedToken* t = impl_->added.token(id);
  return t && t->special;
}

std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad; }
std::optional<int32_t> Tokenizer::mask_id() const { return impl_->mask; }

namespace {
void check_role_id(const Tokenizer& t, std::optional<int32_t> id, const char* role) {
  if (id && (*id < 0 || *id >= t.vocab_size()))
    fail("Tokenizer::set_", role, "_id: id ", *id, " is outside [0, ", t.vocab_size(), ")");
}
}  // namespace

void Tokenizer::set_eos_id(std::optional<int32_t> id) {
  check_role_id(*this, id, "eos");
  impl_->eos = id;
}
void Tokenizer::set_bos_id(std::optional<int32_t> id) {
  check_role_id(*this, id, "bos");
  impl_->bos = id;
}
void Tokenizer::set_pad_id(std::optional<int32_t> id) {
  check_role_id(*this, id, "pad");
  impl_->pad = id;
}

uint64_t Tokenizer::fingerprint() const { return impl_->fingerprint; }

std::string Tokenizer::fingerprint_hex() const {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(impl_->fingerprint));
  return buf;
}

std::string Tokenizer::model_type() const { return impl_->model->type(); }

size_t Tokenizer::num_special_tokens_added(bool is_pair) const {
  return impl_->post_processor ? impl_->post_processor->added_tokens(is_pair) : 0;
}

const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace lmf
