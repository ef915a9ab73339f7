// Builds a Tokenizer from tokenizer.json (tokenizers `tokenizer/serialization.rs`) or from a
// GPT-2 vocab.json + merges.txt pair.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/bpe.h"
#include "lmforge/tokenize/unigram.h"
#include "lmforge/tokenize/wordpiece.h"
#include "lmforge/tokenize/json_fields.h"
#include "lmforge/tokenize/tokenizer.h"
#include "lmforge/tokenize/tokenizer_impl.h"

namespace lmf {

namespace {

using tok::Json;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open file");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail(path, ": read error");
  return ss.str();
}

Json parse_json(std::string_view text, const std::string& source) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    fail(source, ": invalid JSON: ", e.what());
  }
}

std::unique_ptr<tok::Model> model_from_json(const Json& j, const std::string& path) {
  tok::require_object(j, path);
  std::string type;
  if (const Json* t = tok::optional(j, "type"))
    type = tok::as_string(*t, tok::path_key(path, "type"));
  else if (j.contains("merges"))
    type = "BPE";  // legacy files without "type": HF tries BPE, WordPiece, WordLevel, Unigram
  else if (j.contains("vocab") && j["vocab"].is_array())
    type = "Unigram";
  else if (j.contains("continuing_subword_prefix") && j.contains("unk_token"))
    type = "WordPiece";
  else
    fail(tok::path_key(path, "type"), ": missing (and the fields match no BPE, WordPiece or Unigram model)");
  if (type == "BPE") return tok::bpe_from_json(j, path);
  if (type == "WordPiece") return tok::wordpiece_from_json(j, path);
  if (type == "Unigram") return tok::unigram_from_json(j, path);
  fail(tok::path_key(path, "type"), ": '", type, "' is not supported (supported: BPE, WordPiece, Unigram)");
}

std::vector<tok::AddedToken> added_tokens_from_json(const Json& j, const std::string& path) {
  std::vector<tok::AddedToken> out;
  if (j.is_null()) return out;
  if (!j.is_array()) fail(path, ": expected an array, got ", tok::json_kind(j));
  for (size_t i = 0; i < j.size(); i++) {
    std::string p = tok::path_index(path, i);
    tok::require_object(j[i], p);
    tok::AddedToken t;
    t.content = tok::get_string(j[i], "content", p);
    t.special = tok::get_bool_or(j[i], "special", p, false);
    t.single_word = tok::get_bool_or(j[i], "single_word", p, false);
    t.lstrip = tok::get_bool_or(j[i], "lstrip", p, false);
    t.rstrip = tok::get_bool_or(j[i], "rstrip", p, false);
    t.normalized = tok::get_bool_or(j[i], "normalized", p, !t.special);
    // "id" is validated but, as in HF, the id is recomputed from the vocab (see AddedVocabulary).
    if (const Json* id = tok::optional(j[i], "id")) tok::as_id(*id, tok::path_key(p, "id"));
    out.push_back(std::move(t));
  }
  return out;
}

const Json& member_or_null(const Json& doc, const char* key) {
  static const Json null_json;
  auto it = doc.find(key);
  return it == doc.end() ? null_json : *it;
}

uint64_t compute_fingerprint(const Tokenizer::Impl& m, const Json& doc) {
  tok::Fnv1a64 h;
  h.add_string("lmforge-tokenizer-fingerprint-v1");
  m.model->fingerprint(h);
  m.added.fingerprint(h);
  // nlohmann::json keeps object keys sorted, so dump() is canonical.
  for (const char* key : {"normalizer", "pre_tokenizer", "post_processor"}) {
    h.add_string(key);
    h.add_string(member_or_null(doc, key).dump());
  }
  return h.hash;
}

// "eos_token": "</s>" or {"content": "</s>", ...} or null.
std::optional<std::string> role_token(const Json& cfg, const char* key, const std::string& path) {
  const Json* v = tok::optional(cfg, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) return tok::get_string(*v, "content", tok::path_key(path, key));
  fail(tok::path_key(path, key), ": expected a string or {\"content\": ...}, got ", tok::json_kind(*v));
}

std::optional<int32_t> impl_token_to_id(const Tokenizer::Impl& m, std::string_view token) {
  if (auto id = m.added.token_to_id(token)) return id;
  return m.model->token_to_id(token);
}

// eos/bos/pad: tokenizer_config.json / special_tokens_map.json in `dir` (if not empty), else the
// first well-known special added token present (GPT-2/NeoX use <|endoftext|> for bos and eos).
void resolve_roles(Tokenizer::Impl& m, const std::string& dir) {
  struct Role {
    const char* key;
    std::optional<int32_t>* slot;
    std::vector<const char*> known;
  };
  std::vector<Role> roles = {
      {"eos_token", &m.eos, {"<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"}},
      {"bos_token", &m.bos, {"<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>"}},
      {"pad_token", &m.pad, {"<pad>", "<|padding|>", "[PAD]", "<|pad|>"}},
      {"mask_token", &m.mask, {"[MASK]", "<mask>"}},
  };
  std::vector<bool> decided(roles.size(), false);
  if (!dir.empty()) {
    for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
      std::string path = (std::filesystem::path(dir) / name).string();
      if (!std::filesystem::exists(path)) continue;
      Json cfg = parse_json(read_file(path), path);
      if (!cfg.is_object()) fail(path, ": expected a JSON object, got ", tok::json_kind(cfg));
      for (size_t r = 0; r < roles.size(); r++) {
        if (decided[r] || !cfg.contains(roles[r].key)) continue;
        decided[r] = true;
        std::optional<std::string> token;
        try {
          token = role_token(cfg, roles[r].key, "");
        } catch (const Error& e) {
          throw e.with_context(path);
        }
        if (!token) continue;
        *roles[r].slot = impl_token_to_id(m, *token);
        if (!*roles[r].slot) fail(path, ": ", roles[r].key, ": token '", *token, "' is not in the vocabulary");
      }
    }
  }
  for (size_t r = 0; r < roles.size(); r++) {
    if (decided[r]) continue;
    for (const char* known : roles[r].known) {
      auto id = m.added.token_to_id(known);
      if (id && m.added.token(*id)->special) {
        *roles[r].slot = id;
        break;
      }
    }
  }
}

// Builds the parts from a parsed tokenizer.json. Errors carry the field path, and the caller
// prefixes the source.
std::unique_ptr<Tokenizer::Impl> build_impl(const Json& doc, const std::string& source) {
  tok::require_object(doc, "(top level)");
  if (const Json* v = tok::optional(doc, "version")) {
    std::string version = tok::as_string(*v, "version");
    if (version != "1.0") fail("version: unsupported tokenizer.json version '", version, "' (expected 1.0)");
  }
  auto m = std::make_unique<Tokenizer::Impl>();
  m->source = source;
  m->normalizer = tok::normalizer_from_json(member_or_null(doc, "normalizer"), "normalizer");
  m->pre_tokenizer = tok::pre_tokenizer_from_json(member_or_null(doc, "pre_tokenizer"), "pre_tokenizer");
  m->model = model_from_json(tok::required(doc, "model", ""), "model");
  m->post_processor = tok::post_processor_from_json(member_or_null(doc, "post_processor"), "post_processor");
  m->decoder = tok::decoder_from_json(member_or_null(doc, "decoder"), "decoder");
  m->added.add_tokens(added_tokens_from_json(member_or_null(doc, "added_tokens"), "added_tokens"), *m->model,
                      m->normalizer.get());
  m->fingerprint = compute_fingerprint(*m, doc);
  return m;
}

std::unique_ptr<Tokenizer::Impl> build_with_context(const Json& doc, const std::string& source) {
  try {
    return build_impl(doc, source);
  } catch (const Error& e) {
    throw e.with_context(source);
  }
}

}  // namespace

Tokenizer Tokenizer::from_json_string(std::string_view json_text, const std::string& source) {
  auto m = build_with_context(parse_json(json_text, source), source);
  resolve_roles(*m, "");
  return Tokenizer(std::move(m));
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  const auto ext = std::filesystem::path(path).extension();
  if (ext == ".model") return from_sentencepiece_file(path);
  if (ext == ".txt") {
    // A BERT vocab.txt: lowercase as tokenizer_config.json's do_lower_case says (transformers'
    // BertTokenizer default, true, when there is none).
    bool lowercase = true;
    std::string cfg = (std::filesystem::path(path).parent_path() / "tokenizer_config.json").string();
    if (std::filesystem::exists(cfg)) {
      Json c = parse_json(read_file(cfg), cfg);
      if (c.is_object() && c.contains("do_lower_case")) {
        try {
          lowercase = tok::as_bool(c["do_lower_case"], "do_lower_case");
        } catch (const Error& e) {
          throw e.with_context(cfg);
        }
      }
    }
    return from_wordpiece_vocab(path, lowercase);
  }
  auto m = build_with_context(parse_json(read_file(path), path), path);
  std::string dir = std::filesystem::path(path).parent_path().string();
  resolve_roles(*m, dir.empty() ? "." : dir);
  return Tokenizer(std::move(m));
}

Tokenizer Tokenizer::from_gpt2_files(const std::string& vocab_json, const std::string& merges_txt) {
  Json vocab = parse_json(read_file(vocab_json), vocab_json);
  if (!vocab.is_object()) fail(vocab_json, ": expected a JSON object {token: id}, got ", tok::json_kind(vocab));

  // merges.txt: Rust BufRead::lines semantics (strips "\n" / "\r\n"; no final empty line).
  std::string text = read_file(merges_txt);
  Json merges = Json::array();
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    line_no++;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("#version", 0) == 0) continue;
    size_t sp = line.find(' ');
    if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
      fail(merges_txt, ":", line_no, ": expected \"a b\" (two tokens separated by one space), got '", line, "'");
    merges.push_back(line);
  }

  // What the hub gpt2 tokenizer.json holds.
  Json doc = {
      {"version", "1.0"},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"vocab", std::move(vocab)},
        {"merges", std::move(merges)}}},
      {"added_tokens", Json::array()},
  };
  const Json& v = doc["model"]["vocab"];
  if (auto it = v.find("<|endoftext|>"); it != v.end()) {
    doc["added_tokens"].push_back({{"id", *it},
                                   {"content", "<|endoftext|>"},
                                   {"single_word", false},
                                   {"lstrip", false},
                                   {"rstrip", false},
                                   {"normalized", true},
                                   {"special", true}});
  }
  auto m = build_with_context(doc, vocab_json + " + " + merges_txt);
  resolve_roles(*m, "");
  return Tokenizer(std::move(m));
}

Tokenizer Tokenizer::from_wordpiece_vocab(const std::string& vocab_txt, bool lowercase) {
  tok::Vocab vocab = tok::read_wordpiece_vocab(vocab_txt);
  Json vj = Json::object();
  for (const auto& [token, id] : vocab) vj[token] = id;
  auto id_of = [&](const char* t) -> int32_t {
    auto it = vocab.find(std::string_view(t));
    if (it == vocab.end()) fail(vocab_txt, ": the BERT special token '", t, "' is not in the vocabulary");
    return it->second;
  };
  const int32_t cls = id_of("[CLS]"), sep = id_of("[SEP]");
  id_of("[UNK]");
  auto special = [](const char* t, int32_t id) {
    return Json{{"SpecialToken", {{"id", t}, {"type_id", id}}}};
  };
  auto seq = [](const char* id, int32_t type_id) { return Json{{"Sequence", {{"id", id}, {"type_id", type_id}}}}; };
  // What transformers' BertConverter builds (convert_slow_tokenizer.py).
  Json doc = {
      {"version", "1.0"},
      {"normalizer",
       {{"type", "BertNormalizer"},
        {"clean_text", true},
        {"handle_chinese_chars", true},
        {"strip_accents", nullptr},
        {"lowercase", lowercase}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {special("[CLS]", 0), seq("A", 0), special("[SEP]", 0)}},
        {"pair", {special("[CLS]", 0), seq("A", 0), special("[SEP]", 0), seq("B", 1), special("[SEP]", 1)}},
        {"special_tokens",
         {{"[CLS]", {{"id", "[CLS]"}, {"ids", {cls}}, {"tokens", {"[CLS]"}}}},
          {"[SEP]", {{"id", "[SEP]"}, {"ids", {sep}}, {"tokens", {"[SEP]"}}}}}}}},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
      {"model",
       {{"type", "WordPiece"},
        {"unk_token", "[UNK]"},
        {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", 100},
        {"vocab", std::move(vj)}}},
      {"added_tokens", Json::array()},
  };
  for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    auto it = vocab.find(std::string_view(t));
    if (it == vocab.end()) continue;
    doc["added_tokens"].push_back({{"id", it->second},
                                   {"content", t},
                                   {"single_word", false},
                                   {"lstrip", false},
                                   {"rstrip", false},
                                   {"normalized", false},
                                   {"special", true}});
  }
  auto m = build_with_context(doc, vocab_txt);
  resolve_roles(*m, "");
  return Tokenizer(std::move(m));
}

}  // namespace lmf
