#include "lmforge/tokenize/wordpiece.h"

#include <fstream>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

WordPiece::WordPiece(Vocab vocab, WordPieceOptions options, const std::string& path)
    : vocab_(std::move(vocab)), opt_(std::move(options)) {
  build_id_table(vocab_, path, id_to_token_, has_id_);
  auto it = vocab_.find(opt_.unk_token);
  if (it == vocab_.end()) fail(path_key(path, "unk_token"), ": '", opt_.unk_token, "' is not in model.vocab");
  unk_id_ = it->second;
}

std::optional<int32_t> WordPiece::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* WordPiece::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void WordPiece::tokenize(std::string_view word, std::vector<Token>& out) const {
  size_t chars = 0;
  for (size_t i = 0; i < word.size(); i++)
    if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) chars++;
  if (chars > opt_.max_input_chars_per_word) {
    out.push_back(Token{unk_id_, 0, word.size(), {}});
    return;
  }
  const size_t before = out.size();
  std::string key;
  size_t start = 0;
  while (start < word.size()) {
    size_t end = word.size();
    int32_t found = -1;
    while (start < end) {
      std::string_view sub = word.substr(start, end - start);
      std::string_view lookup = sub;
      if (start > 0) {
        key.assign(opt_.continuing_subword_prefix);
        key.append(sub);
        lookup = key;
      }
      if (auto it = vocab_.find(lookup); it != vocab_.end()) {
        found = it->second;
        break;
      }
      size_t e = end;
      prev_code_point(word, e);  // drop the last char
      end = e;
    }
    if (found < 0) {  // the whole word becomes [UNK]
      out.resize(before);
      out.push_back(Token{unk_id_, 0, word.size(), {}});
      return;
    }
    out.push_back(Token{found, start, end, {}});
    start = end;
  }
}

void WordPiece::fingerprint(Fnv1a64& h) const {
  h.add_string("WordPiece");
  h.add_string(opt_.unk_token);
  h.add_string(opt_.continuing_subword_prefix);
  h.add_u64(opt_.max_input_chars_per_word);
  h.add_u64(vocab_.size());
  for (size_t id = 0; id < id_to_token_.size(); id++) {
    if (!has_id_[id]) continue;
    h.add_u64(id);
    h.add_string(id_to_token_[id]);
  }
}

std::unique_ptr<WordPiece> wordpiece_from_json(const Json& j, const std::string& path) {
  require_object(j, path);
  WordPieceOptions opt;
  opt.unk_token = get_string_or(j, "unk_token", path, opt.unk_token);
  opt.continuing_subword_prefix = get_string_or(j, "continuing_subword_prefix", path, opt.continuing_subword_prefix);
  if (const Json* m = optional(j, "max_input_chars_per_word"))
    opt.max_input_chars_per_word = static_cast<size_t>(as_id(*m, path_key(path, "max_input_chars_per_word")));
  const std::string vpath = path_key(path, "vocab");
  const Json& vj = required(j, "vocab", path);
  if (!vj.is_object()) fail(vpath, ": expected an object {token: id}, got ", json_kind(vj));
  Vocab vocab;
  vocab.reserve(vj.size());
  for (auto it = vj.begin(); it != vj.end(); ++it) vocab[it.key()] = as_id(it.value(), vpath + "['" + it.key() + "']");
  return std::make_unique<WordPiece>(std::move(vocab), std::move(opt), path);
}

Vocab read_wordpiece_vocab(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open file");
  std::ostringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  if (size_t bad = find_invalid_utf8(text); bad != std::string::npos)
    fail(path, ": not valid UTF-8 (byte offset ", bad, ")");
  Vocab vocab;
  size_t pos = 0;
  int32_t index = 0;
  // Rust BufRead::lines: split on "\n" (a trailing "\r" is part of the line, then trim_end
  // removes it with any other trailing whitespace); no final empty line.
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line(text.data() + pos, (nl == std::string::npos ? text.size() : nl) - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    size_t e = line.size();
    while (e > 0) {
      size_t k = e;
      if (!is_white_space(prev_code_point(line, k))) break;
      e = k;
    }
    vocab[std::string(line.substr(0, e))] = index++;
  }
  if (vocab.empty()) fail(path, ": empty vocabulary (expected one token per line)");
  return vocab;
}

}  // namespace lmf::tok
