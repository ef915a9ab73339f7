#include "lmforge/tokenize/normalizer.h"

#include <vector>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/regex.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

namespace {

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm f) : form_(f) {}
  void apply(NormalizedString& s) const override { s.normalize_unicode(form_); }

 private:
  NormalForm form_;
};

class Lowercase final : public Normalizer {
 public:
  void apply(NormalizedString& s) const override { s.lowercase(); }
};

// normalizers/strip.rs Strip: removes leading/trailing chars with char::is_whitespace.
class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void apply(NormalizedString& s) const override { s.lrstrip(left_, right_); }

 private:
  bool left_, right_;
};

// normalizers/strip.rs StripAccents: drops nonspacing marks (used after NFD).
class StripAccents final : public Normalizer {
 public:
  void apply(NormalizedString& s) const override {
    s.filter([](char32_t c) { return !is_nonspacing_mark(c); });
  }
};

// normalizers/replace.rs: every non-overlapping match of the pattern becomes `content`.
class Replace final : public Normalizer {
 public:
  Replace(Regex re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
  void apply(NormalizedString& s) const override { s.replace(re_, content_); }

 private:
  Regex re_;
  std::string content_;
};

// normalizers/prepend.rs: prepends `prepend` to non-empty text.
class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string p) : prepend_(std::move(p)) {}
  void apply(NormalizedString& s) const override {
    if (!s.empty()) s.prepend(prepend_);
  }

 private:
  std::string prepend_;
};

// normalizers/unicode.rs Nmt: drops some ASCII controls, maps other spaces to ' '.
class Nmt final : public Normalizer {
 public:
  void apply(NormalizedString& s) const override {
    s.filter([](char32_t c) {
      return !((c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || c == 0x8F ||
               c == 0x9F);
    });
    s.map([](char32_t c) -> char32_t {
      switch (c) {
        case 0x09:
        case 0x0A:
        case 0x0C:
        case 0x0D:
        case 0x1680:
        case 0x200B:
        case 0x200C:
        case 0x200D:
        case 0x200E:
        case 0x200F:
        case 0x2028:
        case 0x2029:
        case 0x2581:
        case 0xFEFF:
        case 0xFFFD:
          return ' ';
        default:
          return c;
      }
    });
  }
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> s) : steps_(std::move(s)) {}
  void apply(NormalizedString& s) const override {
    for (const auto& n : steps_) n->apply(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> bert_normalizer_from_json(const Json& j, const std::string& path);
std::unique_ptr<Normalizer> precompiled_from_json(const Json& j, const std::string& path);

std::unique_ptr<Normalizer> normalizer_from_json(const Json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  require_object(j, path);
  std::string type = get_string(j, "type", path);
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Nmt") return std::make_unique<Nmt>();
  if (type == "Strip")
    return std::make_unique<Strip>(get_bool_or(j, "strip_left", path, true), get_bool_or(j, "strip_right", path, true));
  if (type == "Prepend") return std::make_unique<Prepend>(get_string(j, "prepend", path));
  if (type == "Replace") {
    return std::make_unique<Replace>(pattern_from_json(required(j, "pattern", path), path_key(path, "pattern")),
                                     get_string(j, "content", path));
  }
  if (type == "BertNormalizer") return bert_normalizer_from_json(j, path);
  if (type == "Precompiled") return precompiled_from_json(j, path);
  if (type == "Sequence") {
    std::string p = path_key(path, "normalizers");
    const Json& arr = required(j, "normalizers", path);
    if (!arr.is_array()) fail(p, ": expected an array, got ", json_kind(arr));
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < arr.size(); i++) {
      auto n = normalizer_from_json(arr[i], path_index(p, i));
      if (n) steps.push_back(std::move(n));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  fail(path_key(path, "type"), ": '", type,
       "' is not supported (supported: BertNormalizer, Precompiled, NFC, NFD, NFKC, NFKD, Nmt, Lowercase, Strip, "
       "StripAccents, Replace, Prepend, Sequence)");
}

}  // namespace lmf::tok
