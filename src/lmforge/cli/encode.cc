// `lmforge encode`: text -> token ids with a HF tokenizer.json, one JSON array per input line
// (the ids `tokenizers` gives for that line, without its newline).
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
};

int run_encode(const EncodeOptions& o) {
  const Tokenizer tok = Tokenizer::from_file(o.tokenizer);
  const std::string name = input_name(o.input);
  for_each_line(o.input, /*strip_cr=*/true, [&](std::string& line, int64_t n) {
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(line, /*add_special_tokens=*/!o.no_special);
    } catch (const Error& e) {
      fail(name, ":", n, ": ", e.what());
    }
    std::string out = nlohmann::json(ids).dump();
    out.push_back('\n');
    std::fwrite(out.data(), 1, out.size(), stdout);
  });
  return 0;
}

}  // namespace

Action setup_encode(CLI::App& app) {
  auto o = std::make_shared<EncodeOptions>();
  app.add_option("--tokenizer", o->tokenizer, "HF tokenizer.json")->required()->check(CLI::ExistingFile)->type_name("FILE");
  app.add_flag("--no-special", o->no_special, "Do not add the post-processor's special tokens (e.g. BOS)");
  app.add_option("input", o->input, "Text file, one text per line (default '-': standard input)")->type_name("FILE|-");
  set_examples(app, {"lmforge encode --tokenizer data/tokenizers/enfr-bpe-4k/tokenizer.json lines.txt > ids.jsonl",
                     "echo 'Bonjour le monde' | lmforge encode --tokenizer tokenizer.json --no-special",
                     "lmforge encode --tokenizer tok.json lines.txt | lmforge decode --tokenizer tok.json --skip-special"});
  return [o]() { return run_encode(*o); };
}

}  // namespace lmf::cli
