#include "lmforge/tokenize/post_processor.h"

#include <map>

#include "lmforge/core/error.h"

namespace lmf::tok {

namespace {

class NoOpProcessor final : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
  size_t added_tokens() const override { return 0; }
};

// A single-sequence template: special-token ids before and after sequence A.
// Covers TemplateProcessing (processors/template.rs) and Bert/RobertaProcessing ("cls A sep").
class WrapProcessor final : public PostProcessor {
 public:
  WrapProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }
  size_t added_tokens() const override { return before_.size() + after_.size(); }

 private:
  std::vector<int32_t> before_, after_;
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> s) : steps_(std::move(s)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    for (const auto& p : steps_) p->process(ids, add_special_tokens);
  }
  size_t added_tokens() const override {
    size_t n = 0;
    for (const auto& p : steps_) n += p->added_tokens();
    return n;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// {"special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
std::map<std::string, std::vector<int32_t>> parse_special_tokens(const Json& j, const std::string& path) {
  std::map<std::string, std::vector<int32_t>> out;
  const Json* st = optional(j, "special_tokens");
  if (!st) return out;
  std::string sp = path_key(path, "special_tokens");
  require_object(*st, sp);
  for (auto it = st->begin(); it != st->end(); ++it) {
    std::string tp = sp + "['" + it.key() + "']";
    const Json& ids = required(it.value(), "ids", tp);
    if (!ids.is_array()) fail(path_key(tp, "ids"), ": expected an array, got ", json_kind(ids));
    std::vector<int32_t> v;
    for (size_t k = 0; k < ids.size(); k++) v.push_back(as_id(ids[k], path_index(path_key(tp, "ids"), k)));
    out[it.key()] = std::move(v);
  }
  return out;
}

std::unique_ptr<PostProcessor> template_from_json(const Json& j, const std::string& path) {
  auto specials = parse_special_tokens(j, path);
  std::string tp = path_key(path, "single");
  const Json& single = required(j, "single", path);
  if (!single.is_array()) fail(tp, ": expected an array of pieces, got ", json_kind(single));
  std::vector<int32_t> before, after;
  bool seen_a = false;
  for (size_t k = 0; k < single.size(); k++) {
    std::string pp = path_index(tp, k);
    const Json& piece = single[k];
    if (const Json* seq = optional(piece, "Sequence")) {
      std::string id = get_string(*seq, "id", path_key(pp, "Sequence"));
      if (id != "A")
        fail(path_key(path_key(pp, "Sequence"), "id"), ": the single template can only use sequence A, got '", id, "'");
      if (seen_a) fail(pp, ": sequence A appears twice in the single template");
      seen_a = true;
    } else if (const Json* spt = optional(piece, "SpecialToken")) {
      std::string id = get_string(*spt, "id", path_key(pp, "SpecialToken"));
      auto it = specials.find(id);
      if (it == specials.end())
        fail(pp, ": special token '", id, "' is missing from ", path_key(path, "special_tokens"));
      auto& dst = seen_a ? after : before;
      dst.insert(dst.end(), it->second.begin(), it->second.end());
    } else {
      fail(pp, ": expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  if (!seen_a) fail(tp, ": the template has no $A");
  return std::make_unique<WrapProcessor>(std::move(before), std::move(after));
}

// "cls": ["[CLS]", 101] / "sep": ["[SEP]", 102] (processors/bert.rs, roberta.rs).
int32_t token_pair_id(const Json& j, const char* key, const std::string& path) {
  std::string p = path_key(path, key);
  const Json& v = required(j, key, path);
  if (!v.is_array() || v.size() != 2) fail(p, ": expected [token, id]");
  as_string(v[0], path_index(p, 0));
  return as_id(v[1], path_index(p, 1));
}

}  // namespace

std::unique_ptr<PostProcessor> post_processor_from_json(const Json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  require_object(j, path);
  std::string type = get_string(j, "type", path);
  if (type == "ByteLevel") return std::make_unique<NoOpProcessor>();
  if (type == "TemplateProcessing") return template_from_json(j, path);
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    int32_t cls = token_pair_id(j, "cls", path), sep = token_pair_id(j, "sep", path);
    return std::make_unique<WrapProcessor>(std::vector<int32_t>{cls}, std::vector<int32_t>{sep});
  }
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
       "' is not supported yet (supported: ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, "
       "Sequence)");
}

}  // namespace lmf::tok
