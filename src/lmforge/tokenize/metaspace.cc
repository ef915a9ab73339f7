// Metaspace pre-tokenizer and decoder (tokenizers `pre_tokenizers/metaspace.rs`), used by
// SentencePiece-converted tokenizers (XLM-R, T5, Llama-2): spaces become the replacement char
// (U+2581 '▁' by default), which is prepended per prepend_scheme and split before.
#include "lmforge/core/error.h"
#include "lmforge/tokenize/decoder.h"
#include "lmforge/tokenize/pre_tokenizer.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

namespace {

enum class PrependScheme { Always, First, Never };

struct MetaspaceConfig {
  char32_t replacement = 0x2581;
  std::string str_rep = "\xE2\x96\x81";
  PrependScheme scheme = PrependScheme::Always;
  bool split = true;
};

MetaspaceConfig metaspace_config(const Json& j, const std::string& path) {
  MetaspaceConfig c;
  std::string rep = get_string(j, "replacement", path);
  size_t i = 0;
  if (rep.empty() || (next_code_point(rep, i), i != rep.size()))
    fail(path_key(path, "replacement"), ": expected a single character, got '", rep, "'");
  i = 0;
  c.replacement = next_code_point(rep, i);
  c.str_rep = rep;
  // The serde default of prepend_scheme is "always".
  std::string scheme = get_string_or(j, "prepend_scheme", path, "always");
  if (scheme == "always")
    c.scheme = PrependScheme::Always;
  else if (scheme == "first")
    c.scheme = PrependScheme::First;
  else if (scheme == "never")
    c.scheme = PrependScheme::Never;
  else
    fail(path_key(path, "prepend_scheme"), ": '", scheme, "' is not one of always, first, never");
  // Legacy files: add_prefix_space false must come with prepend_scheme never (HF refuses the rest).
  if (const Json* aps = optional(j, "add_prefix_space")) {
    if (!as_bool(*aps, path_key(path, "add_prefix_space"))) {
      if (c.scheme != PrependScheme::Never)
        fail(path_key(path, "add_prefix_space"), ": false does not match prepend_scheme '", scheme, "'");
      c.scheme = PrependScheme::Never;
    }
  }
  c.split = get_bool_or(j, "split", path, true);
  return c;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  explicit MetaspacePreTokenizer(MetaspaceConfig c) : c_(std::move(c)) {}
  void apply(PreTokenizedString& pts) const override {
    pts.split([&](size_t, NormalizedString n) {
      n.replace(U' ', c_.str_rep);
      const bool prepend = c_.scheme == PrependScheme::Always ||
                           (c_.scheme == PrependScheme::First && n.offsets_original().first == 0);
      if (prepend && !starts_with(n.get(), c_.str_rep)) n.prepend(c_.str_rep);
      if (!c_.split) return std::vector<Split>{Split{std::move(n), false, {}}};
      std::vector<MatchSpan> spans;
      for (const auto& [sp, m] : find_char_matches(n.get(), [&](char32_t ch) { return ch == c_.replacement; }))
        spans.push_back({sp.first, sp.second, m});
      return split_normalized(n, spans, SplitBehavior::MergedWithNext);
    });
  }

 private:
  MetaspaceConfig c_;
};

// Decoder: the replacement becomes ' ', except that every one in token 0 is dropped unless the
// prepend scheme is never.
class MetaspaceDecoder final : public Decoder {
 public:
  explicit MetaspaceDecoder(MetaspaceConfig c) : c_(std::move(c)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t t = 0; t < tokens.size(); t++) {
      const std::string& in = tokens[t];
      std::string out;
      out.reserve(in.size());
      size_t i = 0;
      while (i < in.size()) {
        size_t b = i;
        char32_t c = next_code_point(in, i);
        if (c == c_.replacement) {
          if (!(t == 0 && c_.scheme != PrependScheme::Never)) out.push_back(' ');
        } else {
          out.append(in, b, i - b);
        }
      }
      tokens[t] = std::move(out);
    }
    return tokens;
  }

 private:
  MetaspaceConfig c_;
};

}  // namespace

std::unique_ptr<PreTokenizer> metaspace_from_json(const Json& j, const std::string& path) {
  return std::make_unique<MetaspacePreTokenizer>(metaspace_config(j, path));
}

std::unique_ptr<Decoder> metaspace_decoder_from_json(const Json& j, const std::string& path) {
  return std::make_unique<MetaspaceDecoder>(metaspace_config(j, path));
}

}  // namespace lmf::tok
