#include "lmforge/tokenize/pre_tokenizer.h"

#include <algorithm>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/byte_level.h"
#include "lmforge/tokenize/regex.h"

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

namespace {

void push_nonempty(std::vector<PreSplit>& out, std::string text, bool at_start) {
  if (!text.empty()) out.push_back({std::move(text), at_start});
}

// pre_tokenizers/byte_level.rs: optional prefix space, GPT-2 regex split (isolated), then every
// byte replaced by its table character.
class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}

  void pre_tokenize(std::vector<PreSplit>& splits) const override {
    std::vector<PreSplit> out;
    out.reserve(splits.size() * 4);
    for (auto& sp : splits) {
      std::string text = std::move(sp.text);
      if (add_prefix_space_ && !text.empty() && text[0] != ' ') text.insert(0, 1, ' ');
      if (!use_regex_) {
        push_nonempty(out, bytes_to_unicode(text), sp.at_start);
        continue;
      }
      std::string_view tv(text);
      for (const auto& s : gpt2_regex().split_spans(tv))
        push_nonempty(out, bytes_to_unicode(tv.substr(s.start, s.end - s.start)), sp.at_start && s.start == 0);
    }
    splits = std::move(out);
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

  void pre_tokenize(std::vector<PreSplit>& splits) const override {
    std::vector<PreSplit> out;
    out.reserve(splits.size() * 4);
    for (auto& sp : splits) {
      std::vector<MatchSpan> spans = re_.split_spans(sp.text);
      if (invert_)
        for (auto& s : spans) s.is_match = !s.is_match;
      for (auto [b, e] : apply_split_behavior(spans, behavior_))
        push_nonempty(out, sp.text.substr(b, e - b), sp.at_start && b == 0);
    }
    splits = std::move(out);
  }

 private:
  Regex re_;
  SplitBehavior behavior_;
  bool invert_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> s) : steps_(std::move(s)) {}
  void pre_tokenize(std::vector<PreSplit>& splits) const override {
    for (const auto& p : steps_) p->pre_tokenize(splits);
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
  fail(path_key(path, "type"), ": '", type, "' is not supported yet (supported: ByteLevel, Split, Sequence)");
}

}  // namespace lmf::tok
