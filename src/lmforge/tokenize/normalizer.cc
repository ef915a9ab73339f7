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
  std::string normalize(std::string_view t) const override { return normalize_unicode(t, form_); }

 private:
  NormalForm form_;
};

class Lowercase final : public Normalizer {
 public:
  std::string normalize(std::string_view t) const override { return to_lowercase(t); }
};

// normalizers/strip.rs Strip: removes leading/trailing chars with char::is_whitespace.
class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string_view t) const override {
    size_t b = 0, e = t.size();
    if (left_) {
      while (b < e) {
        size_t j = b;
        if (!is_white_space(next_code_point(t, j))) break;
        b = j;
      }
    }
    if (right_) {
      while (e > b) {
        size_t j = e;
        if (!is_white_space(prev_code_point(t, j))) break;
        e = j;
      }
    }
    return std::string(t.substr(b, e - b));
  }

 private:
  bool left_, right_;
};

// normalizers/strip.rs StripAccents: drops nonspacing marks (used after NFD).
class StripAccents final : public Normalizer {
 public:
  std::string normalize(std::string_view t) const override {
    std::string out;
    out.reserve(t.size());
    size_t i = 0;
    while (i < t.size()) {
      size_t start = i;
      char32_t cp = next_code_point(t, i);
      if (!is_nonspacing_mark(cp)) out.append(t.substr(start, i - start));
    }
    return out;
  }
};

// normalizers/replace.rs: every non-overlapping match of the pattern becomes `content`.
class Replace final : public Normalizer {
 public:
  Replace(Regex re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
  std::string normalize(std::string_view t) const override {
    std::string out;
    size_t prev = 0;
    for (auto [s, e] : re_.find_all(t)) {
      out.append(t.substr(prev, s - prev));
      out.append(content_);
      prev = e;
    }
    out.append(t.substr(prev));
    return out;
  }

 private:
  Regex re_;
  std::string content_;
};

// normalizers/prepend.rs: prepends `prepend` to non-empty text.
class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string p) : prepend_(std::move(p)) {}
  std::string normalize(std::string_view t) const override {
    return t.empty() ? std::string() : prepend_ + std::string(t);
  }

 private:
  std::string prepend_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> s) : steps_(std::move(s)) {}
  std::string normalize(std::string_view t) const override {
    std::string cur(t);
    for (const auto& n : steps_) cur = n->normalize(cur);
    return cur;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

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
  if (type == "Strip")
    return std::make_unique<Strip>(get_bool_or(j, "strip_left", path, true), get_bool_or(j, "strip_right", path, true));
  if (type == "Prepend") return std::make_unique<Prepend>(get_string(j, "prepend", path));
  if (type == "Replace") {
    return std::make_unique<Replace>(pattern_from_json(required(j, "pattern", path), path_key(path, "pattern")),
                                     get_string(j, "content", path));
  }
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
       "' is not supported yet (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, "
       "Prepend, Sequence)");
}

}  // namespace lmf::tok
