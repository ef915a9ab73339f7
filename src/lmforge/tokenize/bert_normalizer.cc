// BertNormalizer (tokenizers `normalizers/bert.rs`): clean_text -> handle_chinese_chars ->
// strip_accents (null follows lowercase) -> lowercase, in that fixed order.
#include "lmforge/core/error.h"
#include "lmforge/tokenize/normalizer.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

namespace {

// The CJK ranges of bert.rs is_chinese_char (the sixth range starts at 2B920, unlike the
// Python BertTokenizer's 2B820).
bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text), chinese_(chinese), strip_accents_(strip_accents), lowercase_(lowercase) {}

  void apply(NormalizedString& s) const override {
    if (clean_text_) {
      s.filter([](char32_t c) { return !(c == 0 || c == 0xFFFD || is_bert_control(c)); });
      s.map([](char32_t c) -> char32_t { return c == '\t' || c == '\n' || c == '\r' || is_white_space(c) ? U' ' : c; });
    }
    if (chinese_) {
      std::vector<CharChange> dest;
      bool any = false;
      for (char32_t c : s.chars()) {
        if (is_chinese_char(c)) {
          dest.push_back({U' ', 0});
          dest.push_back({c, 1});
          dest.push_back({U' ', 1});
          any = true;
        } else {
          dest.push_back({c, 0});
        }
      }
      if (any) s.transform(dest, 0);
    }
    if (strip_accents_) {
      s.normalize_unicode(NormalForm::NFD);
      s.filter([](char32_t c) { return !is_nonspacing_mark(c); });
    }
    if (lowercase_) s.lowercase();
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

}  // namespace

std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool handle_chinese_chars,
                                                 std::optional<bool> strip_accents, bool lowercase) {
  return std::make_unique<BertNormalizer>(clean_text, handle_chinese_chars, strip_accents.value_or(lowercase), lowercase);
}

std::unique_ptr<Normalizer> bert_normalizer_from_json(const Json& j, const std::string& path) {
  std::optional<bool> strip;
  if (const Json* v = optional(j, "strip_accents")) strip = as_bool(*v, path_key(path, "strip_accents"));
  return make_bert_normalizer(get_bool_or(j, "clean_text", path, true), get_bool_or(j, "handle_chinese_chars", path, true),
                              strip, get_bool_or(j, "lowercase", path, true));
}

}  // namespace lmf::tok
