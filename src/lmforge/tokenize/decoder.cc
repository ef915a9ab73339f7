#include "lmforge/tokenize/decoder.h"

#include "lmforge/core/error.h"
#include "lmforge/tokenize/byte_level.h"
#include "lmforge/tokenize/regex.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

namespace {

// byte_level.rs Decoder: a token whose chars are all in the byte table becomes those bytes,
// any other token contributes its own UTF-8 bytes; the whole is decoded lossily as UTF-8.
class ByteLevelDecoder final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string bytes;
    std::string tok_bytes;
    for (const std::string& t : tokens) {
      tok_bytes.clear();
      bool all_in_table = true;
      size_t i = 0;
      while (i < t.size()) {
        int b = char_to_byte(next_code_point(t, i));
        if (b < 0) {
          all_in_table = false;
          break;
        }
        tok_bytes.push_back(static_cast<char>(b));
      }
      bytes += all_in_table ? tok_bytes : t;
    }
    return {utf8_lossy(bytes)};
  }
};

// byte_fallback.rs: runs of "<0xHH>" tokens become bytes; a run that is not valid UTF-8 gives
// one U+FFFD per byte.
class ByteFallbackDecoder final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string run;
    size_t run_len = 0;
    auto flush = [&] {
      if (run_len == 0) return;
      if (find_invalid_utf8(run) == std::string_view::npos) {
        out.push_back(run);
      } else {
        for (size_t k = 0; k < run_len; k++) out.emplace_back("\xEF\xBF\xBD");
      }
      run.clear();
      run_len = 0;
    };
    for (std::string& t : tokens) {
      int byte = parse_byte_token(t);
      if (byte >= 0) {
        run.push_back(static_cast<char>(byte));
        run_len++;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    return out;
  }

 private:
  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static int parse_byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    return {all};
  }
};

// strip.rs: removes up to `start` leading and `stop` trailing copies of `content` per token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (std::string& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && b < e; k++) {
        size_t j = b;
        if (next_code_point(t, j) != content_) break;
        b = j;
      }
      for (size_t k = 0; k < stop_ && e > b; k++) {
        size_t j = e;
        if (prev_code_point(t, j) != content_) break;
        e = j;
      }
      t = t.substr(b, e - b);
    }
    return tokens;
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

// normalizers/replace.rs used as a decoder: per-token replacement.
class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Regex re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (std::string& t : tokens) {
      std::string out;
      size_t prev = 0;
      for (auto [s, e] : re_.find_all(t)) {
        out.append(t, prev, s - prev);
        out += content_;
        prev = e;
      }
      out.append(t, prev, std::string::npos);
      t = std::move(out);
    }
    return tokens;
  }

 private:
  Regex re_;
  std::string content_;
};

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

}  // namespace

// decoders/wordpiece.rs cleanup(): the replacements, in order, each over the whole string.
std::string wordpiece_cleanup(std::string s) {
  static const std::pair<const char*, const char*> kPairs[] = {
      {" .", "."},    {" ?", "?"},     {" !", "!"},    {" ,", ","},           {" ' ", "'"},   {" n't", "n't"},
      {" 'm", "'m"},  {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kPairs) s = replace_all(std::move(s), from, to);
  return s;
}

namespace {

// decoders/wordpiece.rs: tokens after the first lose the prefix ("##") or get a leading space;
// then the cleanup replacements per token.
class WordPieceDecoder final : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); i++) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0)
          t.erase(0, prefix_.size());
        else
          t.insert(0, 1, ' ');
      }
      if (cleanup_) t = wordpiece_cleanup(std::move(t));
    }
    return tokens;
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

// decoders/bpe.rs: the suffix becomes " " (nothing in the last token).
class BpeDecoder final : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); i++)
      if (!suffix_.empty()) tokens[i] = replace_all(std::move(tokens[i]), suffix_, i + 1 == tokens.size() ? "" : " ");
    return tokens;
  }

 private:
  std::string suffix_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> s) : steps_(std::move(s)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& d : steps_) tokens = d->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

size_t get_count(const Json& j, const char* key, const std::string& path) {
  return static_cast<size_t>(as_id(required(j, key, path), path_key(path, key)));
}

}  // namespace

std::unique_ptr<Decoder> metaspace_decoder_from_json(const Json& j, const std::string& path);

std::unique_ptr<Decoder> decoder_from_json(const Json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  require_object(j, path);
  std::string type = get_string(j, "type", path);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "WordPiece")
    return std::make_unique<WordPieceDecoder>(get_string_or(j, "prefix", path, "##"), get_bool_or(j, "cleanup", path, true));
  if (type == "Metaspace") return metaspace_decoder_from_json(j, path);
  if (type == "BPEDecoder") return std::make_unique<BpeDecoder>(get_string_or(j, "suffix", path, "</w>"));
  if (type == "Strip") {
    std::string content = get_string(j, "content", path);
    size_t i = 0;
    if (content.empty() || (next_code_point(content, i), i != content.size()))
      fail(path_key(path, "content"), ": expected a single character, got '", content, "'");
    i = 0;
    return std::make_unique<StripDecoder>(next_code_point(content, i), get_count(j, "start", path),
                                          get_count(j, "stop", path));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(pattern_from_json(required(j, "pattern", path), path_key(path, "pattern")),
                                            get_string(j, "content", path));
  }
  if (type == "Sequence") {
    std::string p = path_key(path, "decoders");
    const Json& arr = required(j, "decoders", path);
    if (!arr.is_array()) fail(p, ": expected an array, got ", json_kind(arr));
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < arr.size(); i++)
      if (auto d = decoder_from_json(arr[i], path_index(p, i))) steps.push_back(std::move(d));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  fail(path_key(path, "type"), ": '", type,
       "' is not supported (supported: ByteLevel, ByteFallback, WordPiece, Metaspace, BPEDecoder, Fuse, Strip, Replace, "
       "Sequence)");
}

}  // namespace lmf::tok
