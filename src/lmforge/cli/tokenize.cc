// `lmforge tokenize`: text / JSONL -> memory-mapped token shards (.bin + .idx), EOS after every
// document, multi-threaded, with progress. A held-out fraction can go to a separate shard.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>

#include "lmforge/cli/common.h"
#include "lmforge/cli/registry.h"
#include "lmforge/data/shard.h"
#include "lmforge/data/text_reader.h"
#include "lmforge/report/progress.h"
#include "lmforge/tokenize/tokenizer.h"

namespace lmf::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::vector<std::string> inputs;
  std::string output;
  TextReadOptions read;
  double holdout = 0;
  int threads = 0;
};

int run_tokenize(const TokenizeOptions& o) {
  Tokenizer tok = Tokenizer::from_file(o.tokenizer);
  auto eos = tok.eos_id();
  // BERT-style WordPiece tokenizers define no EOS: [SEP] ends a document there (as in BERT's own
  // pre-training data); MLM pre-training strips it before adding [CLS] ... [SEP] per sequence.
  if (!eos) eos = tok.token_to_id("[SEP]");
  if (!eos) fail(o.tokenizer, ": the tokenizer defines no EOS token (needed between documents)");
  if (o.holdout < 0 || o.holdout >= 1) throw UsageError("--holdout: expected a fraction in [0, 1), got " + std::to_string(o.holdout));
  std::vector<std::string> docs;
  for (const auto& in : o.inputs) {
    auto d = read_documents(in, o.read);
    docs.insert(docs.end(), std::make_move_iterator(d.begin()), std::make_move_iterator(d.end()));
  }
  const int nthreads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::vector<int32_t>> ids(docs.size());
  std::atomic<size_t> next{0}, done{0};
  std::atomic<bool> failed{false};
  std::string error;
  std::vector<std::thread> pool;
  for (int t = 0; t < nthreads; t++)
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < docs.size() && !failed;) {
        try {
          ids[i] = tok.encode(docs[i], /*add_special_tokens=*/false);
          ids[i].push_back(*eos);
        } catch (const std::exception& e) {
          if (!failed.exchange(true)) error = "document " + std::to_string(i) + ": " + e.what();
        }
        done++;
      }
    });
  ProgressOptions po;
  po.label = "tokenize";
  po.total_steps = int64_t(docs.size());
  Progress progress(po);
  auto report = [&] {
    ProgressUpdate u;
    u.step = int64_t(done.load());
    progress.update(u);
  };
  while (done < docs.size() && !failed) {
    report();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& th : pool) th.join();
  report();
  progress.finish();
  if (failed) fail(o.inputs.size() == 1 ? o.inputs[0] : std::string("input"), ": ", error);
  // Every k-th document goes to the held-out shard (deterministic, spread over the input).
  const size_t every = o.holdout > 0 ? std::max<size_t>(2, size_t(1.0 / o.holdout + 0.5)) : 0;
  ShardWriter train(o.output, uint64_t(tok.vocab_size()), tok.fingerprint(), uint64_t(*eos));
  std::unique_ptr<ShardWriter> val;
  if (every) val = std::make_unique<ShardWriter>(o.output + "-val", uint64_t(tok.vocab_size()), tok.fingerprint(), uint64_t(*eos));
  for (size_t i = 0; i < ids.size(); i++) ((every && i % every == every - 1) ? *val : train).add_document(ids[i]);
  train.finish();
  if (val) val->finish();
  std::printf("%s: %llu documents, %llu tokens (vocab %d, tokenizer %s)\n", o.output.c_str(),
              (unsigned long long)train.num_docs(), (unsigned long long)train.num_tokens(), tok.vocab_size(),
              tok.fingerprint_hex().c_str());
  if (val)
    std::printf("%s-val: %llu documents, %llu tokens\n", o.output.c_str(), (unsigned long long)val->num_docs(),
                (unsigned long long)val->num_tokens());
  return 0;
}

}  // namespace

Action setup_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  app.add_option("--tokenizer", o->tokenizer, "HF tokenizer.json")->required()->check(CLI::ExistingFile);
  app.add_option("inputs", o->inputs, "Text or JSONL files")->required()->check(CLI::ExistingFile);
  app.add_option("-o,--output", o->output, "Output prefix: writes PREFIX.bin and PREFIX.idx")->required();
  app.add_option("--format", o->read.format, "auto | text | jsonl")->check(CLI::IsMember({"auto", "text", "jsonl"}));
  app.add_option("--split", o->read.split, "Documents in text files: paragraph | line | file")
      ->check(CLI::IsMember({"paragraph", "line", "file"}));
  app.add_option("--field", o->read.field, "JSONL field holding the text");
  app.add_option("--holdout", o->holdout, "Fraction of documents written to PREFIX-val (evaluation)");
  app.add_option("--threads", o->threads, "Encoding threads (default: all cores)");
  set_examples(app, {"lmforge tokenize --tokenizer data/tokenizers/enfr-bpe-4k/tokenizer.json data/text/tiny_shakespeare.txt -o runs/data/en --holdout 0.02",
                     "lmforge tokenize --tokenizer tok.json corpus.jsonl --field content -o shards/web"});
  return [o]() { return run_tokenize(*o); };
}

}  // namespace lmf::cli
