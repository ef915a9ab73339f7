#include "lmforge/tokenize/post_processor.h"

#include <algorithm>
#include <map>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

Encoding merge_encodings(std::vector<Encoding>& parts) {
  Encoding out;
  for (Encoding& e : parts) {
    auto app = [](auto& dst, auto& src) { dst.insert(dst.end(), std::make_move_iterator(src.begin()), std::make_move_iterator(src.end())); };
    app(out.ids, e.ids);
    app(out.type_ids, e.type_ids);
    app(out.tokens, e.tokens);
    app(out.word_ids, e.word_ids);
    app(out.sequence_ids, e.sequence_ids);
    app(out.special_tokens_mask, e.special_tokens_mask);
    app(out.offsets, e.offsets);
  }
  return out;
}

Encoding PostProcessor::process(Encoding first, std::optional<Encoding> second, bool add_special_tokens) const {
  std::vector<Encoding> encs;
  encs.push_back(std::move(first));
  if (second) encs.push_back(std::move(*second));
  for (size_t i = 0; i < encs.size(); i++) {
    encs[i].type_ids.assign(encs[i].ids.size(), static_cast<int32_t>(i));
    encs[i].sequence_ids.assign(encs[i].ids.size(), static_cast<int32_t>(i));
  }
  process_encodings(encs, add_special_tokens);
  return merge_encodings(encs);
}

namespace {

// An encoding of special tokens only: offsets (0, 0), mask 1, no word, no sequence.
Encoding special_encoding(const std::vector<int32_t>& ids, const std::vector<std::string>& tokens, int32_t type_id) {
  Encoding e;
  e.ids = ids;
  e.tokens = tokens;
  e.type_ids.assign(ids.size(), type_id);
  e.word_ids.assign(ids.size(), -1);
  e.sequence_ids.assign(ids.size(), -1);
  e.special_tokens_mask.assign(ids.size(), 1);
  e.offsets.assign(ids.size(), {0, 0});
  return e;
}

// pre_tokenizers/byte_level.rs process_offsets: moves each token's offsets past its leading and
// trailing spaces ('Ġ' or whitespace chars of the token string); a single leading space of the
// first token is kept when add_prefix_space (it was added, not typed).
void trim_offsets(Encoding& e, bool add_prefix_space) {
  auto is_space = [](char32_t c) { return c == 0x120 || is_white_space(c); };
  for (size_t i = 0; i < e.ids.size(); i++) {
    const std::string& t = e.tokens[i];
    auto& off = e.offsets[i];
    size_t leading = 0, trailing = 0;
    size_t p = 0;
    while (p < t.size() && is_space(next_code_point(t, p))) leading++;
    p = t.size();
    while (p > 0 && is_space(prev_code_point(t, p))) trailing++;
    if (leading == 0 && trailing == 0) continue;
    if (leading > 0) {
      bool is_first = i == 0 || off.first == 0;
      if (is_first && add_prefix_space && leading == 1) leading = 0;
      off.first = std::min(off.first + leading, off.second);
    }
    if (trailing > 0 && off.second >= trailing) off.second = std::max(off.second - trailing, off.first);
  }
}

class ByteLevelProcessor final : public PostProcessor {
 public:
  ByteLevelProcessor(bool trim, bool add_prefix_space) : trim_(trim), add_prefix_space_(add_prefix_space) {}
  size_t added_tokens(bool) const override { return 0; }
  void process_encodings(std::vector<Encoding>& encs, bool) const override {
    if (trim_)
      for (Encoding& e : encs) trim_offsets(e, add_prefix_space_);
  }

 private:
  bool trim_, add_prefix_space_;
};

struct SpecialTok {
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;
};

// processors/template.rs: a list of pieces, each a sequence ($A / $B) or a special token, with
// its type id.
struct Piece {
  bool is_sequence = false;
  int seq = 0;  // 0 = A, 1 = B
  std::string special;
  int32_t type_id = 0;
};

class TemplateProcessor final : public PostProcessor {
 public:
  TemplateProcessor(std::vector<Piece> single, std::optional<std::vector<Piece>> pair,
                    std::map<std::string, SpecialTok> specials, std::string path)
      : single_(std::move(single)), pair_(std::move(pair)), specials_(std::move(specials)), path_(std::move(path)) {}

  size_t added_tokens(bool is_pair) const override {
    if (is_pair && !pair_) return 0;
    size_t n = 0;
    for (const Piece& p : is_pair ? *pair_ : single_)
      if (!p.is_sequence) n += specials_.at(p.special).ids.size();
    return n;
  }

  void process_encodings(std::vector<Encoding>& encs, bool add_special_tokens) const override {
    if (encs.size() == 2 && !pair_) fail(path_, ": this tokenizer has no pair template, so it cannot encode a pair");
    const std::vector<Piece>& tpl = encs.size() == 2 ? *pair_ : single_;
    std::vector<Encoding> out;
    for (const Piece& p : tpl) {
      if (p.is_sequence) {
        if (static_cast<size_t>(p.seq) >= encs.size())
          fail(path_, ": the template uses $B but only one sequence was given");
        Encoding e = encs[p.seq];
        e.type_ids.assign(e.ids.size(), p.type_id);
        e.sequence_ids.assign(e.ids.size(), p.seq);
        out.push_back(std::move(e));
      } else if (add_special_tokens) {
        const SpecialTok& st = specials_.at(p.special);
        out.push_back(special_encoding(st.ids, st.tokens, p.type_id));
      }
    }
    encs = std::move(out);
  }

 private:
  std::vector<Piece> single_;
  std::optional<std::vector<Piece>> pair_;
  std::map<std::string, SpecialTok> specials_;
  std::string path_;
};

// processors/bert.rs (roberta=false) and processors/roberta.rs (roberta=true).
class ClsSepProcessor final : public PostProcessor {
 public:
  ClsSepProcessor(std::pair<std::string, int32_t> cls, std::pair<std::string, int32_t> sep, bool roberta,
                  bool trim, bool add_prefix_space)
      : cls_(std::move(cls)), sep_(std::move(sep)), roberta_(roberta), trim_(trim), add_prefix_space_(add_prefix_space) {}

  size_t added_tokens(bool is_pair) const override { return is_pair ? (roberta_ ? 4 : 3) : 2; }

  void process_encodings(std::vector<Encoding>& encs, bool add_special_tokens) const override {
    if (roberta_) {
      if (trim_)
        for (Encoding& e : encs) trim_offsets(e, add_prefix_space_);
      for (Encoding& e : encs) e.type_ids.assign(e.ids.size(), 0);  // RoBERTa: every type id is 0
    }
    if (!add_special_tokens) return;
    std::vector<Encoding> out;
    for (size_t i = 0; i < encs.size(); i++) {
      const int32_t tid = roberta_ ? 0 : static_cast<int32_t>(i);
      if (i == 0 || roberta_) out.push_back(special_encoding({i == 0 ? cls_.second : sep_.second},
                                                             {i == 0 ? cls_.first : sep_.first}, tid));
      out.push_back(std::move(encs[i]));
      out.push_back(special_encoding({sep_.second}, {sep_.first}, tid));
    }
    encs = std::move(out);
  }

 private:
  std::pair<std::string, int32_t> cls_, sep_;
  bool roberta_, trim_, add_prefix_space_;
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> s) : steps_(std::move(s)) {}
  size_t added_tokens(bool is_pair) const override {
    size_t n = 0;
    for (const auto& p : steps_) n += p->added_tokens(is_pair);
    return n;
  }
  void process_encodings(std::vector<Encoding>& encs, bool add_special_tokens) const override {
    for (const auto& p : steps_) p->process_encodings(encs, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// {"special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
std::map<std::string, SpecialTok> parse_special_tokens(const Json& j, const std::string& path) {
  std::map<std::string, SpecialTok> out;
  const Json* st = optional(j, "special_tokens");
  if (!st) return out;
  std::string sp = path_key(path, "special_tokens");
  require_object(*st, sp);
  for (auto it = st->begin(); it != st->end(); ++it) {
    std::string tp = sp + "['" + it.key() + "']";
    const Json& ids = required(it.value(), "ids", tp);
    if (!ids.is_array()) fail(path_key(tp, "ids"), ": expected an array, got ", json_kind(ids));
    SpecialTok t;
    for (size_t k = 0; k < ids.size(); k++) t.ids.push_back(as_id(ids[k], path_index(path_key(tp, "ids"), k)));
    if (const Json* toks = optional(it.value(), "tokens")) {
      if (!toks->is_array()) fail(path_key(tp, "tokens"), ": expected an array, got ", json_kind(*toks));
      for (size_t k = 0; k < toks->size(); k++)
        t.tokens.push_back(as_string((*toks)[k], path_index(path_key(tp, "tokens"), k)));
    }
    if (t.tokens.size() != t.ids.size())
      fail(tp, ": 'ids' has ", t.ids.size(), " entries but 'tokens' has ", t.tokens.size());
    out[it.key()] = std::move(t);
  }
  return out;
}

std::vector<Piece> parse_template(const Json& arr, const std::string& tp, const std::map<std::string, SpecialTok>& specials,
                                  const std::string& path, bool pair) {
  if (!arr.is_array()) fail(tp, ": expected an array of pieces, got ", json_kind(arr));
  std::vector<Piece> out;
  for (size_t k = 0; k < arr.size(); k++) {
    std::string pp = path_index(tp, k);
    const Json& piece = arr[k];
    Piece p;
    if (const Json* seq = optional(piece, "Sequence")) {
      std::string sp = path_key(pp, "Sequence");
      std::string id = get_string(*seq, "id", sp);
      if (id != "A" && id != "B") fail(path_key(sp, "id"), ": expected 'A' or 'B', got '", id, "'");
      if (id == "B" && !pair) fail(path_key(sp, "id"), ": the single template can only use sequence A");
      p.is_sequence = true;
      p.seq = id == "A" ? 0 : 1;
      if (const Json* t = optional(*seq, "type_id")) p.type_id = as_id(*t, path_key(sp, "type_id"));
    } else if (const Json* spt = optional(piece, "SpecialToken")) {
      std::string sp = path_key(pp, "SpecialToken");
      p.special = get_string(*spt, "id", sp);
      if (!specials.count(p.special))
        fail(pp, ": special token '", p.special, "' is missing from ", path_key(path, "special_tokens"));
      if (const Json* t = optional(*spt, "type_id")) p.type_id = as_id(*t, path_key(sp, "type_id"));
    } else {
      fail(pp, ": expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
    out.push_back(std::move(p));
  }
  return out;  // like HF, a template need not use $A / $B
}

std::unique_ptr<PostProcessor> template_from_json(const Json& j, const std::string& path) {
  auto specials = parse_special_tokens(j, path);
  auto single = parse_template(required(j, "single", path), path_key(path, "single"), specials, path, false);
  std::optional<std::vector<Piece>> pair;
  if (const Json* pj = optional(j, "pair")) pair = parse_template(*pj, path_key(path, "pair"), specials, path, true);
  return std::make_unique<TemplateProcessor>(std::move(single), std::move(pair), std::move(specials), path);
}

// "cls": ["[CLS]", 101] / "sep": ["[SEP]", 102] (processors/bert.rs, roberta.rs).
std::pair<std::string, int32_t> token_pair(const Json& j, const char* key, const std::string& path) {
  std::string p = path_key(path, key);
  const Json& v = required(j, key, path);
  if (!v.is_array() || v.size() != 2) fail(p, ": expected [token, id]");
  return {as_string(v[0], path_index(p, 0)), as_id(v[1], path_index(p, 1))};
}

}  // namespace

std::unique_ptr<PostProcessor> post_processor_from_json(const Json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  require_object(j, path);
  std::string type = get_string(j, "type", path);
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelProcessor>(get_bool_or(j, "trim_offsets", path, true),
                                                get_bool_or(j, "add_prefix_space", path, true));
  if (type == "TemplateProcessing") return template_from_json(j, path);
  if (type == "BertProcessing")
    return std::make_unique<ClsSepProcessor>(token_pair(j, "cls", path), token_pair(j, "sep", path), false, false, false);
  if (type == "RobertaProcessing")
    return std::make_unique<ClsSepProcessor>(token_pair(j, "cls", path), token_pair(j, "sep", path), true,
                                             get_bool_or(j, "trim_offsets", path, true),
                                             get_bool_or(j, "add_prefix_space", path, true));
  if (type == "Sequence") {
    std::string p = path_key(path, "processors");
    const Json& arr = required(j, "processors", path);
    if (!arr.is_array()) fail(p, ": expected an array, got ", json_kind(arr));
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < arr.size(); i++)
      if (auto s = post_processor_from_json(arr[i], path_index(p, i))) steps.push_back(std::move(s));
    return std::make_unique<SequenceProcessor>(std::move(steps));
  }
  fail(path_key(path, "type"), ": '", type,
       "' is not supported (supported: ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, Sequence)");
}

}  // namespace lmf::tok
