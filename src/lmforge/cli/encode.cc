// `lmforge encode`: text -> token ids with a HF tokenizer.json (or a SentencePiece .model, or a
// BERT vocab.txt), one JSON line per input line (the ids `tokenizers` gives for that line,
// without its newline). --pair-sep encodes each line as a pair, --max-length truncates like HF,
// --full prints the whole encoding (type ids, special-token mask, byte offsets, tokens).
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "lmforge/cli/common.h"
#include "lmforge/cli/line_input.h"
#include "lmforge/cli/registry.h"
#include "lmforge/tokenize/tokenizer.h"

namespace lmf::cli {

namespace {

struct EncodeOptions {
  std::string tokenizer;
  std::string input = "-";
  bool no_special = false;
  std::string pair_sep;
  size_t max_length = 0;
  std::string truncation = "longest_first";
  bool full = false;
};

Truncation parse_truncation(const std::string& s) {
  if (s == "longest_first") return Truncation::longest_first;
  if (s == "only_first") return Truncation::only_first;
  if (s == "only_second") return Truncation::only_second;
  fail("--truncation: '", s, "' is not one of longest_first, only_first, only_second");
}

int run_encode(const EncodeOptions& o) {
  lmf::EncodeOptions eo;
  eo.add_special_tokens = !o.no_special;
  eo.max_length = o.max_length;
  eo.truncation = parse_truncation(o.truncation);
  const Tokenizer tok = Tokenizer::from_file(o.tokenizer);
  const std::string name = input_name(o.input);
  for_each_line(o.input, /*strip_cr=*/true, [&](std::string& line, int64_t n) {
    Encoding e;
    try {
      std::string_view first = line;
      std::optional<std::string_view> second;
      if (!o.pair_sep.empty()) {
        size_t at = line.find(o.pair_sep);
        if (at == std::string::npos) fail("no '", o.pair_sep, "' separating the two texts of the pair");
        first = std::string_view(line).substr(0, at);
        second = std::string_view(line).substr(at + o.pair_sep.size());
      }
      e = tok.encode_pair(first, second, eo);
    } catch (const Error& err) {
      fail(name, ":", n, ": ", err.what());
    }
    std::string out;
    if (o.full) {
      nlohmann::json j = {{"ids", e.ids},
                          {"type_ids", e.type_ids},
                          {"special_tokens_mask", e.special_tokens_mask},
                          {"offsets", e.offsets},
                          {"tokens", e.tokens}};
      out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      out = nlohmann::json(e.ids).dump();
    }
    out.push_back('\n');
    std::fwrite(out.data(), 1, out.size(), stdout);
  });
  return 0;
}

}  // namespace

Action setup_encode(CLI::App& app) {
  auto o = std::make_shared<EncodeOptions>();
  app.add_option("--tokenizer", o->tokenizer, "HF tokenizer.json, SentencePiece .model or BERT vocab.txt")
      ->required()
      ->check(CLI::ExistingFile)
      ->type_name("FILE");
  app.add_flag("--no-special", o->no_special, "Do not add the post-processor's special tokens (e.g. BOS, [CLS])");
  app.add_option("--pair-sep", o->pair_sep, "Encode each line as a pair: the texts before and after the first SEP")
      ->type_name("SEP");
  app.add_option("--max-length", o->max_length, "Truncate to at most N tokens, special tokens included (0: no limit)")
      ->type_name("N");
  app.add_option("--truncation", o->truncation, "Which text of a pair loses tokens first")
      ->check(CLI::IsMember({"longest_first", "only_first", "only_second"}))
      ->type_name("longest_first|only_first|only_second");
  app.add_flag("--full", o->full,
               "Print {ids, type_ids, special_tokens_mask, offsets (bytes of the line), tokens} per line");
  app.add_option("input", o->input, "Text file, one text per line (default '-': standard input)")->type_name("FILE|-");
  set_examples(app, {"lmforge encode --tokenizer data/tokenizers/enfr-bpe-4k/tokenizer.json lines.txt > ids.jsonl",
                     "echo 'Bonjour le monde' | lmforge encode --tokenizer tokenizer.json --no-special",
                     "printf 'A question?\\tThe context.\\n' | lmforge encode --tokenizer "
                     "data/tokenizers/bert-base-multilingual-cased/tokenizer.json --pair-sep $'\\t' --max-length 16 --full",
                     "lmforge encode --tokenizer tok.json lines.txt | lmforge decode --tokenizer tok.json --skip-special"});
  return [o]() { return run_encode(*o); };
}

}  // namespace lmf::cli
