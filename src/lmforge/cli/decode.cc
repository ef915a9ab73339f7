// `lmforge decode`: token ids -> text with a HF tokenizer.json. Each input line is one JSON
// array of ids; each is printed as its decoded text followed by '\n'. The text is printed
// exactly as decoded: a decoded text that itself contains newlines spans several output lines.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "lmforge/cli/common.h"
#include "lmforge/cli/line_input.h"
#include "lmforge/cli/registry.h"
#include "lmforge/tokenize/tokenizer.h"

namespace lmf::cli {

namespace {

struct DecodeOptions {
  std::string tokenizer;
  std::string input = "-";
  bool skip_special = false;
};

const char* json_kind(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::array: return "an array";
    default: return "a number";
  }
}

// The ids of one input line; throws naming `where` ("file:line") for anything but an array of
// integers in [0, vocab).
std::vector<int32_t> parse_ids(const std::string& line, const std::string& where, int32_t vocab) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    fail(where, ": malformed JSON at byte ", e.byte, " (expected an array of token ids such as [12, 345])");
  }
  if (!j.is_array()) fail(where, ": expected a JSON array of token ids, got ", json_kind(j));
  std::vector<int32_t> ids;
  ids.reserve(j.size());
  for (size_t i = 0; i < j.size(); i++) {
    const auto& v = j[i];
    if (!v.is_number_integer())
      fail(where, ": element ", i, " is ", json_kind(v), " (", v.dump(), "), expected an integer token id");
    // Unsigned values above INT64_MAX read as negative here and are refused like any negative id.
    const int64_t id = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX) ? -1 : v.get<int64_t>();
    if (id < 0 || id >= vocab)
      fail(where, ": token id ", v.dump(), " (element ", i, ") is out of range: the tokenizer has ids 0..", vocab - 1);
    ids.push_back(int32_t(id));
  }
  return ids;
}

int run_decode(const DecodeOptions& o) {
  const Tokenizer tok = Tokenizer::from_file(o.tokenizer);
  const std::string name = input_name(o.input);
  const int32_t vocab = tok.vocab_size();
  for_each_line(o.input, /*strip_cr=*/false, [&](std::string& line, int64_t n) {
    const std::string where = name + ":" + std::to_string(n);
    std::string text = tok.decode(parse_ids(line, where, vocab), o.skip_special);
    text.push_back('\n');
    std::fwrite(text.data(), 1, text.size(), stdout);
  });
  return 0;
}

}  // namespace

Action setup_decode(CLI::App& app) {
  auto o = std::make_shared<DecodeOptions>();
  app.add_option("--tokenizer", o->tokenizer, "HF tokenizer.json, SentencePiece .model or BERT vocab.txt")->required()->check(CLI::ExistingFile)->type_name("FILE");
  app.add_flag("--skip-special", o->skip_special, "Drop special tokens (BOS, EOS, padding, ...) from the text");
  app.add_option("input", o->input, "One JSON array of ids per line (default '-': standard input)")->type_name("FILE|-");
  set_examples(app, {"lmforge decode --tokenizer data/tokenizers/enfr-bpe-4k/tokenizer.json --skip-special ids.jsonl > texts.txt",
                     "echo '[412, 1290, 88]' | lmforge decode --tokenizer tokenizer.json"});
  return [o]() { return run_decode(*o); };
}

}  // namespace lmf::cli
