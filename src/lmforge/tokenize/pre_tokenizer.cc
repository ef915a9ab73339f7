#include "lmforge/tokenize/pre_tokenizer.h"

#include <algorithm>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/byte_level.h"
#include "lmforge/tokenize/regex.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

std::vector<std::pair<size_t, size_t>> apply_split_behavior(const std::vector<MatchSpan>& spans,
                                                            SplitBehavior behavior) {
  std::vector<std::pair<size_t, size_t>> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const auto& s : spans) out.emplace_back(s.start, s.end);
      break;
    case SplitBehavior::Removed:
      for (const auto& s : spans)
        if (!s.is_match) out.emplace_back(s.start, s.end);
      break;
    case SplitBehavior::Contiguous:
      for (const auto& s : spans) {
        if (s.is_match == previous_match && !out.empty())
          out.back().second = s.end;
        else
          out.emplace_back(s.start, s.end);
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const auto& s : spans) {
        if (s.is_match && !previous_match && !out.empty())
          out.back().second = s.end;
        else
          out.emplace_back(s.start, s.end);
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty())
          out.back().first = it->start;
        else
          out.emplace_back(it->start, it->end);
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  return out;
}

std::vector<Split> split_normalized(const NormalizedString& n, const std::vector<MatchSpan>& spans,
                                    SplitBehavior behavior) {
  std::vector<Split> out;
  for (auto [b, e] : apply_split_behavior(spans, behavior)) {
    std::optional<NormalizedString> piece = n.slice({b, e});
    LMF_CHECK(piece.has_value(), "NormalizedString bad split");
    out.push_back(Split{std::move(*piece), false, {}});
  }
  return out;
}

void PreTokenizer::pre_tokenize(std::vector<PreSplit>& splits) const {
  PreTokenizedString pts;
  for (const PreSplit& s : splits) pts.splits.push_back(Split{NormalizedString(s.text, s.at_start ? 0 : 1), false, {}});
  apply(pts);
  splits.clear();
  for (const Split& s : pts.splits) splits.push_back({s.normalized.get(), s.normalized.original_shift() == 0});
}

namespace {

template <class Pred>
std::vector<MatchSpan> char_spans(std::string_view s, Pred pred) {
  std::vector<MatchSpan> out;
  for (const auto& [sp, m] : find_char_matches(s, pred)) out.push_back({sp.first, sp.second, m});
  return out;
}

// pre_tokenizers/byte_level.rs: optional prefix space, GPT-2 regex split (isolated), then every
// byte replaced by its table character (the first byte of a char replaces it, the others are
// inserted, so all of them align to the whole original char).
class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}

  void apply(PreTokenizedString& pts) const override {
    pts.split([&](size_t, NormalizedString n) {
      if (add_prefix_space_ && (n.empty() || n.get()[0] != ' ')) n.prepend(" ");
      if (!use_regex_) return std::vector<Split>{Split{std::move(n), false, {}}};
      return split_normalized(n, gpt2_regex().split_spans(n.get()), SplitBehavior::Isolated);
    });
    static const auto table = [] {
      struct T {
        char32_t v[256];
      } t{};
      for (int b = 0; b < 256; b++) t.v[b] = byte_to_char(static_cast<unsigned char>(b));
      return t;
    }();
    for (Split& s : pts.splits)
      if (!s.tokenized) s.normalized.map_bytes_to_chars(table.v);
  }

  static const Regex& gpt2_regex() {
    // openai/gpt-2 encoder.py pattern, as in byte_level.rs (contractions are lowercase only).
    static const Regex re = Regex::compile(
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "ByteLevel");
    return re;
  }

 private:
  bool add_prefix_space_, use_regex_;
};

// pre_tokenizers/split.rs.
class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex re, SplitBehavior b, bool invert) : re_(std::move(re)), behavior_(b), invert_(invert) {}

  void apply(PreTokenizedString& pts) const override {
    pts.split([&](size_t, NormalizedString n) {
      std::vector<MatchSpan> spans = re_.split_spans(n.get());
      if (invert_)
        for (auto& s : spans) s.is_match = !s.is_match;
      return split_normalized(n, spans, behavior_);
    });
  }

 private:
  Regex re_;
  SplitBehavior behavior_;
  bool invert_;
};

// pre_tokenizers/bert.rs: split on whitespace (removed), then isolate each punctuation char.
class BertPreTokenizer final : public PreTokenizer {
 public:
  void apply(PreTokenizedString& pts) const override {
    pts.split([](size_t, NormalizedString n) {
      return split_normalized(n, char_spans(n.get(), is_white_space), SplitBehavior::Removed);
    });
    pts.split([](size_t, NormalizedString n) {
      return split_normalized(n, char_spans(n.get(), is_bert_punctuation), SplitBehavior::Isolated);
    });
  }
};

// pre_tokenizers/whitespace.rs WhitespaceSplit: split on whitespace (removed).
class WhitespaceSplit final : public PreTokenizer {
 public:
  void apply(PreTokenizedString& pts) const override {
    pts.split([](size_t, NormalizedString n) {
      return split_normalized(n, char_spans(n.get(), is_white_space), SplitBehavior::Removed);
    });
  }
};

// pre_tokenizers/whitespace.rs Whitespace: keeps the matches of \w+|[^\w\s]+.
class WhitespacePreTokenizer final : public PreTokenizer {
 public:
  void apply(PreTokenizedString& pts) const override {
    static const Regex re = Regex::compile("\\w+|[^\\w\\s]+", "Whitespace");
    pts.split([](size_t, NormalizedString n) {
      std::vector<MatchSpan> spans = re.split_spans(n.get());
      for (auto& s : spans) s.is_match = !s.is_match;
      return split_normalized(n, spans, SplitBehavior::Removed);
    });
  }
};

// pre_tokenizers/punctuation.rs.
class PunctuationPreTokenizer final : public PreTokenizer {
 public:
  explicit PunctuationPreTokenizer(SplitBehavior b) : behavior_(b) {}
  void apply(PreTokenizedString& pts) const override {
    pts.split([&](size_t, NormalizedString n) {
      return split_normalized(n, char_spans(n.get(), is_bert_punctuation), behavior_);
    });
  }

 private:
  SplitBehavior behavior_;
};

// pre_tokenizers/digits.rs.
class DigitsPreTokenizer final : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void apply(PreTokenizedString& pts) const override {
    pts.split([&](size_t, NormalizedString n) {
      return split_normalized(n, char_spans(n.get(), is_numeric),
                              individual_ ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
    });
  }

 private:
  bool individual_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> s) : steps_(std::move(s)) {}
  void apply(PreTokenizedString& pts) const override {
    for (const auto& p : steps_) p->apply(pts);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

SplitBehavior parse_behavior(const std::string& s, const std::string& path) {
  if (s == "Removed") return SplitBehavior::Removed;
  if (s == "Isolated") return SplitBehavior::Isolated;
  if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (s == "Contiguous") return SplitBehavior::Contiguous;
  fail(path, ": unknown split behavior '", s,
       "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

}  // namespace

std::unique_ptr<PreTokenizer> metaspace_from_json(const Json& j, const std::string& path);

std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const Json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  require_object(j, path);
  std::string type = get_string(j, "type", path);
  if (type == "ByteLevel") {
    // The struct default of add_prefix_space is true; use_regex defaults to true when missing.
    return std::make_unique<ByteLevelPreTokenizer>(get_bool_or(j, "add_prefix_space", path, true),
                                                   get_bool_or(j, "use_regex", path, true));
  }
  if (type == "Split") {
    Regex re = pattern_from_json(required(j, "pattern", path), path_key(path, "pattern"));
    SplitBehavior b = parse_behavior(get_string(j, "behavior", path), path_key(path, "behavior"));
    return std::make_unique<SplitPreTokenizer>(std::move(re), b, get_bool_or(j, "invert", path, false));
  }
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "Whitespace") return std::make_unique<WhitespacePreTokenizer>();
  if (type == "Metaspace") return metaspace_from_json(j, path);
  if (type == "Punctuation") {
    SplitBehavior b = SplitBehavior::Isolated;
    if (optional(j, "behavior")) b = parse_behavior(get_string(j, "behavior", path), path_key(path, "behavior"));
    return std::make_unique<PunctuationPreTokenizer>(b);
  }
  if (type == "Digits") return std::make_unique<DigitsPreTokenizer>(get_bool_or(j, "individual_digits", path, false));
  if (type == "Sequence") {
    std::string p = path_key(path, "pretokenizers");
    const Json& arr = required(j, "pretokenizers", path);
    if (!arr.is_array()) fail(p, ": expected an array, got ", json_kind(arr));
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < arr.size(); i++) {
      auto s = pre_tokenizer_from_json(arr[i], path_index(p, i));
      if (s) steps.push_back(std::move(s));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  fail(path_key(path, "type"), ": '", type,
       "' is not supported (supported: ByteLevel, Split, BertPreTokenizer, Metaspace, Whitespace, WhitespaceSplit, "
       "Punctuation, Digits, Sequence)");
}

}  // namespace lmf::tok
