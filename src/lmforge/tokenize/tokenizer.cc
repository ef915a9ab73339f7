#include "lmforge/tokenize/tokenizer.h"

#include <cstdio>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/tokenizer_impl.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf {

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (size_t bad = tok::find_invalid_utf8(text); bad != std::string_view::npos)
    fail("Tokenizer::encode: input is not valid UTF-8 (byte offset ", bad, ")");
  const Impl& m = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<tok::PreSplit> splits;
  for (tok::InputPiece& piece : m.added.extract_and_normalize(text, m.normalizer.get())) {
    if (piece.id >= 0) {
      ids.push_back(piece.id);
      continue;
    }
    splits.clear();
    splits.push_back({std::move(piece.text), piece.at_start});
    if (m.pre_tokenizer) m.pre_tokenizer->pre_tokenize(splits);
    for (const tok::PreSplit& s : splits) m.model->tokenize(s.text, ids);
  }
  if (m.post_processor) m.post_processor->process(ids, add_special_tokens);
  return ids;
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

size_t Tokenizer::num_special_tokens_added() const {
  return impl_->post_processor ? impl_->post_processor->added_tokens() : 0;
}

const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace lmf
