// `lmforge eval`: perplexity, loss, top-1/3/10 accuracy and the by-position breakdown of a HF
// causal-LM folder on token shards (--data) or on raw text tokenized on the fly (--text).
//
// The data is read like pre-training's eval: the shards form one token stream cut into windows
// of seq_len + 1 tokens overlapping by one, in order (no shuffle), each window scored with
// document boundaries (state resets after every EOS). Position buckets count positions inside
// the document. This is exactly what `lmforge pretrain` logs as "eval" (evaluate_causal_lm).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "lmforge/cli/common.h"
#include "lmforge/cli/registry.h"
#include "lmforge/data/packed_dataset.h"
#include "lmforge/data/shard.h"
#include "lmforge/data/text_reader.h"
#include "lmforge/models/registry.h"
#include "lmforge/tokenize/tokenizer.h"
#include "lmforge/train/causal_lm_trainer.h"

namespace lmf::cli {

namespace {

struct EvalOptions {
  std::string model;
  std::vector<std::string> data, text;
  std::string tokenizer;
  TextReadOptions read;
  int64_t seq_len = 1024, batch = 8, max_batches = 0;
  std::string device = "auto", precision = "auto";
  std::string buckets = "0,16,128,1024";
  bool json = false;
};

// "0,16,128" -> {0, 16, 128}: non-negative, strictly increasing.
std::vector<int64_t> parse_buckets(const std::string& s) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(pos, end - pos);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || v < 0)
      throw UsageError("--buckets: expected comma-separated non-negative integers such as 0,16,128,1024, got '" + s + "'");
    if (!out.empty() && v <= out.back())
      throw UsageError("--buckets: bounds must increase strictly, got '" + s + "'");
    out.push_back(v);
    pos = end + 1;
  }
  return out;
}

DType precision_of(const std::string& p, Device dev) {
  if (p == "auto") return dev.is_cuda() ? DType::bf16 : DType::f32;
  if (p == "f32") return DType::f32;
  if (dev.is_cpu()) throw UsageError("--precision bf16 needs a CUDA device; use f32 on cpu");
  return DType::bf16;
}

// A folder under the system temp dir, removed (with its files) when this goes out of scope.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = (std::filesystem::temp_directory_path() /
             ("lmforge-eval-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Tokenizes the text files into one shard <dir>/text (EOS after every document, as `lmforge
// tokenize` does) and returns its prefix.
std::string tokenize_to_shard(const EvalOptions& o, const Tokenizer& tok, const std::string& dir) {
  auto eos = tok.eos_id();
  if (!eos) fail(o.tokenizer, ": the tokenizer defines no EOS token (needed between documents)");
  const std::string prefix = dir + "/text";
  ShardWriter w(prefix, uint64_t(tok.vocab_size()), tok.fingerprint(), uint64_t(*eos));
  for (const auto& path : o.text) {
    auto docs = read_documents(path, o.read);
    for (size_t i = 0; i < docs.size(); i++) {
      std::vector<int32_t> ids;
      try {
        ids = tok.encode(docs[i], /*add_special_tokens=*/false);
      } catch (const Error& e) {
        fail(path, ": document ", i, ": ", e.what());
      }
      ids.push_back(*eos);
      w.add_document(ids);
    }
  }
  w.finish();
  return prefix;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
  return buf;
}

// Refuses shards that do not fit the tokenizer (when given) or the model; returns the total
// number of tokens.
uint64_t check_shards(const std::vector<std::string>& prefixes, const Tokenizer* tok, const std::string& tok_path,
                      int64_t model_vocab, const std::string& model_dir) {
  uint64_t tokens = 0;
  for (const auto& prefix : prefixes) {
    auto sh = Shard::open(prefix);
    const ShardHeader& h = sh->header();
    if (tok && h.vocab_size != uint64_t(tok->vocab_size()))
      fail(prefix, ".idx: made for a vocabulary of ", h.vocab_size, " tokens but ", tok_path, " has ", tok->vocab_size(),
           " (re-tokenize with this tokenizer)");
    if (tok && h.tokenizer_fingerprint != tok->fingerprint())
      fail(prefix, ".idx: made with another tokenizer (fingerprint ", hex64(h.tokenizer_fingerprint), ", ", tok_path,
           " has ", tok->fingerprint_hex(), "); re-run lmforge tokenize with this tokenizer");
    if (h.vocab_size > uint64_t(model_vocab))
      fail(prefix, ".idx: token ids go up to ", h.vocab_size - 1, " but the model in ", model_dir,
           " has a vocabulary of ", model_vocab, " tokens");
    tokens += h.num_tokens;
  }
  return tokens;
}

void print_text(const EvalResult& r, const std::string& header) {
  std::printf("%s\n", header.c_str());
  std::printf("loss %.4f | perplexity %.3f | top1 %.4f | top3 %.4f | top10 %.4f | %lld tokens\n", r.loss, r.perplexity,
              r.top1, r.top3, r.top10, (long long)r.tokens);
  for (const auto& b : r.buckets) {
    const std::string to = b.to < 0 ? "inf" : std::to_string(b.to);
    std::printf("  positions [%lld, %s): loss %.4f | top1 %.4f | top3 %.4f | top10 %.4f | %lld tokens\n",
                (long long)b.from, to.c_str(), b.loss, b.top1, b.top3, b.top10, (long long)b.tokens);
  }
}

int run_eval(const EvalOptions& o) {
  if (o.data.empty() == o.text.empty()) throw UsageError("give either --data PREFIX... or --text FILE... (one of them)");
  if (o.seq_len < 1) throw UsageError("--seq-len: expected >= 1, got " + std::to_string(o.seq_len));
  if (o.batch < 1) throw UsageError("--batch: expected >= 1, got " + std::to_string(o.batch));
  if (o.max_batches < 0) throw UsageError("--max-batches: expected >= 0 (0 = all), got " + std::to_string(o.max_batches));
  const std::vector<int64_t> buckets = parse_buckets(o.buckets);
  const Device dev = parse_device(o.device);
  const DType compute = precision_of(o.precision, dev);

  std::unique_ptr<Tokenizer> tok;
  if (!o.tokenizer.empty()) tok = std::make_unique<Tokenizer>(Tokenizer::from_file(o.tokenizer));
  LoadedCausalLM l = load_causal_lm(o.model, dev, compute);
  CausalLM& model = *l.model;
  if (tok && tok->vocab_size() > model.vocab_size())
    fail(o.tokenizer, ": the tokenizer has ", tok->vocab_size(), " tokens but the model in ", o.model,
         " has a vocabulary of ", model.vocab_size());

  std::unique_ptr<TempDir> tmp;
  std::vector<std::string> prefixes = o.data;
  if (!o.text.empty()) {
    tmp = std::make_unique<TempDir>();
    prefixes = {tokenize_to_shard(o, *tok, tmp->path())};
  }
  const uint64_t tokens = check_shards(prefixes, tok.get(), o.tokenizer, model.vocab_size(), o.model);
  if (tokens < uint64_t(o.seq_len) + 1)
    fail("the evaluation data has ", tokens, " tokens, fewer than one window of --seq-len + 1 = ", o.seq_len + 1,
         " (use a smaller --seq-len)");
  PackedDataset data({MixtureComponent{"eval", prefixes, 1.0}}, o.seq_len, /*seed=*/0, 0, 0);
  data.set_shuffle(false);
  const int64_t windows = data.total_windows();
  int64_t batches = (windows + o.batch - 1) / o.batch;
  if (o.max_batches > 0) batches = std::min(batches, o.max_batches);

  EvalResult r = evaluate_causal_lm(model, data, o.batch, o.max_batches, buckets);
  if (o.json) {
    nlohmann::json j = r.to_json();
    j["model"] = o.model;
    j["architecture"] = model.architecture();
    j["data"] = o.text.empty() ? o.data : o.text;
    j["seq_len"] = o.seq_len;
    j["batch"] = o.batch;
    j["windows"] = std::min(windows, batches * o.batch);
    j["device"] = dev.str();
    j["precision"] = std::string(dtype_name(compute));
    std::printf("%s\n", j.dump().c_str());
  } else {
    char head[512];
    std::snprintf(head, sizeof head, "%s (%s) on %s, %s: %llu tokens, %lld of %lld windows of %lld tokens", o.model.c_str(),
                  model.architecture(), dev.str().c_str(), std::string(dtype_name(compute)).c_str(),
                  (unsigned long long)tokens, (long long)std::min(windows, batches * o.batch), (long long)windows,
                  (long long)o.seq_len);
    print_text(r, head);
  }
  return 0;
}

}  // namespace

Action setup_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  app.add_option("-m,--model", o->model, "HF model folder (config.json + model.safetensors)")
      ->required()
      ->check(CLI::ExistingDirectory)
      ->type_name("DIR");
  auto* data = app.add_option("--data", o->data, "Token shard prefixes (PREFIX.bin + PREFIX.idx), read as one stream")
                   ->type_name("PREFIX");
  auto* text = app.add_option("--text", o->text, "Text / JSONL files, tokenized on the fly (needs --tokenizer)")
                   ->check(CLI::ExistingFile)
                   ->type_name("FILE");
  auto* tokz = app.add_option("--tokenizer", o->tokenizer,
                              "HF tokenizer.json: tokenizes --text; with --data, refuses shards made by another tokenizer")
                   ->check(CLI::ExistingFile)
                   ->type_name("FILE");
  data->excludes(text);
  text->needs(tokz);
  app.add_option("--split", o->read.split, "Documents in --text files: paragraph | line | file")
      ->check(CLI::IsMember({"paragraph", "line", "file"}));
  app.add_option("--field", o->read.field, "JSONL field holding the text (--text)");
  app.add_option("--seq-len", o->seq_len, "Tokens per window (default 1024)");
  app.add_option("--batch", o->batch, "Windows per forward pass (default 8)");
  app.add_option("--max-batches", o->max_batches, "Stop after N batches (default 0: all windows)");
  app.add_option("--device", o->device, "cpu | cuda | cuda:N | auto (default: auto)");
  app.add_option("--precision", o->precision, "auto (bf16 on cuda, f32 on cpu) | f32 | bf16")
      ->check(CLI::IsMember({"auto", "f32", "bf16"}));
  app.add_option("--buckets", o->buckets,
                 "Lower bounds of the position-in-document buckets (default 0,16,128,1024; a single value: no breakdown)");
  app.add_flag("--json", o->json, "Print one JSON object instead of text");
  set_examples(app, {"lmforge eval --model runs/tiny/checkpoints/step_000100 --data runs/data/en-val --seq-len 256",
                     "lmforge eval -m runs/tiny/checkpoints/step_000100 --text data/text/tiny_shakespeare.txt --tokenizer data/tokenizers/enfr-bpe-4k/tokenizer.json --max-batches 20 --json",
                     "lmforge eval -m state-spaces-mamba-130m --data shards/web-val --tokenizer tokenizer.json --buckets 0,128,1024 --device cuda"});
  return [o]() { return run_eval(*o); };
}

}  // namespace lmf::cli
