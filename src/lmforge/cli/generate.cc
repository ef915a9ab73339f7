// `lmforge generate`: text generation with a causal LM (Mamba, through its recurrent cache:
// constant time per new token). Greedy or sampled (temperature, top-k, top-p, repetition
// penalty; HF generate semantics, eval/sampling.h), reproducible for a seed.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "lmforge/cli/common.h"
#include "lmforge/cli/registry.h"
#include "lmforge/eval/sampling.h"
#include "lmforge/models/mamba.h"
#include "lmforge/models/mamba_decoder.h"
#include "lmforge/models/mamba_step_decoder.h"
#include "lmforge/models/registry.h"
#include "lmforge/report/format.h"
#include "lmforge/tokenize/tokenizer.h"

namespace lmf::cli {

namespace {

namespace fs = std::filesystem;

struct GenerateOptions {
  std::string device = "cpu";
  std::string model, tokenizer, prompt, prompt_file, ids;
  int64_t max_new_tokens = 64;
  SamplingOptions sampling;
  uint64_t seed = 0;
  bool stop_at_eos = false, json = false, print_ids = false;
  CLI::Option *prompt_opt = nullptr, *prompt_file_opt = nullptr, *ids_opt = nullptr;
};

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// "1,2, 3" -> {1, 2, 3}; each id in [0, vocab).
std::vector<int32_t> parse_ids(const std::string& text, int64_t vocab) {
  std::vector<int32_t> ids;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b == std::string::npos) throw UsageError("--ids: expected comma-separated token ids, got an empty item in '" + text + "'");
    const std::string s = item.substr(b, e - b + 1);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size()) throw UsageError("--ids: expected comma-separated token ids, got '" + s + "'");
    if (v < 0 || v >= vocab)
      throw UsageError("--ids: token id " + s + " is outside the model's vocabulary [0, " + std::to_string(vocab) + ")");
    ids.push_back(int32_t(v));
  }
  return ids;
}

std::string join_ids(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  std::string s;
  for (const auto* v : {&a, &b})
    for (int32_t id : *v) s.append(s.empty() ? "" : ",").append(std::to_string(id));
  return s;
}

// The text the continuation adds after the prompt: decode(prompt + new) minus decode(prompt)
// when the latter is a prefix (decoders that strip a leading space or merge bytes across the
// boundary stay right), else decode(new) alone.
std::string continuation_text(const Tokenizer& tok, const std::vector<int32_t>& prompt, const std::string& decoded_prompt,
                              const std::vector<int32_t>& gen) {
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), gen.begin(), gen.end());
  std::string full = tok.decode(all);
  if (full.compare(0, decoded_prompt.size(), decoded_prompt) == 0) return full.substr(decoded_prompt.size());
  return tok.decode(gen);
}

int run_generate(const GenerateOptions& o) {
  const int sources = int(o.prompt_opt->count() > 0) + int(o.prompt_file_opt->count() > 0) + int(o.ids_opt->count() > 0);
  if (sources == 0) throw UsageError("no prompt: give --prompt TEXT, --prompt-file FILE or --ids LIST");
  if (sources > 1) throw UsageError("--prompt, --prompt-file and --ids are exclusive: give one of them");
  if (o.max_new_tokens < 0) throw UsageError("--max-new-tokens: expected an integer >= 0, got " + std::to_string(o.max_new_tokens));
  try {
    validate_sampling(o.sampling);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }

  // The model: a HF folder, loaded on the host (the decoder runs there; mamba_decoder.h).
  if (!fs::is_directory(o.model)) fail("--model ", o.model, ": no such directory");
  const std::string cfg_path = (fs::path(o.model) / "config.json").string();
  if (!fs::exists(cfg_path)) fail(cfg_path, ": not found (--model must be a Hugging Face model folder with config.json and weights)");
  // cpu: the host fp32 decoder; cuda: the weights stay on the GPU in bf16 and each token runs
  // the decode-step kernels (models/mamba_step_decoder.h).
  const Device dev = parse_device(o.device);
  LoadedCausalLM loaded = load_causal_lm(o.model, dev, dev.is_cuda() ? DType::bf16 : DType::f32);
  auto* mamba = dynamic_cast<MambaModel*>(loaded.model.get());
  if (!mamba) fail(cfg_path, ": generate supports MambaForCausalLM only, got ", loaded.model->architecture());
  const int64_t vocab = mamba->vocab_size();

  // The tokenizer: --tokenizer, else DIR/tokenizer.json when present, else none (ids only).
  std::string tok_path = o.tokenizer;
  if (tok_path.empty() && fs::exists(fs::path(o.model) / "tokenizer.json")) tok_path = (fs::path(o.model) / "tokenizer.json").string();
  std::optional<Tokenizer> tok;
  if (!tok_path.empty()) {
    tok.emplace(Tokenizer::from_file(tok_path));
    if (tok->vocab_size() > vocab)
      fail(tok_path, ": the tokenizer has ", tok->vocab_size(), " tokens but the model in ", o.model, " has a vocabulary of ",
           vocab, " (they do not belong together)");
  }

  std::string prompt_text;
  std::vector<int32_t> prompt_ids;
  if (o.ids_opt->count()) {
    prompt_ids = parse_ids(o.ids, vocab);
  } else {
    prompt_text = o.prompt_opt->count() ? o.prompt : read_text_file(o.prompt_file);
    if (prompt_text.empty())
      throw UsageError(o.prompt_opt->count() ? std::string("--prompt: empty prompt (nothing to continue)")
                                             : o.prompt_file + ": empty prompt file (nothing to continue)");
    if (!tok) throw UsageError("a text prompt needs --tokenizer (or DIR/tokenizer.json), or give token ids with --ids");
    prompt_ids = tok->encode(prompt_text, /*add_special_tokens=*/true);
  }
  if (prompt_ids.empty()) throw UsageError("empty prompt: no token ids to continue");
  if (tok && o.ids_opt->count()) prompt_text = tok->decode(prompt_ids);

  std::optional<int32_t> eos;
  if (o.stop_at_eos) eos = tok && tok->eos_id() ? *tok->eos_id() : int32_t(mamba->config().eos_token_id);

  const bool text_out = tok && !o.json && !o.print_ids;
  const std::string decoded_prompt = tok ? tok->decode(prompt_ids) : std::string();
  if (text_out) {
    std::fputs(prompt_text.c_str(), stdout);
    std::fflush(stdout);
  }

  using Clock = std::chrono::steady_clock;
  std::optional<MambaDecoder> host_decoder;
  std::optional<MambaStepDecoder> device_decoder;
  if (dev.is_cuda()) device_decoder.emplace(*mamba, 1);
  else host_decoder.emplace(*mamba, 1);
  auto prefill = [&](const std::vector<int32_t>& ids) {
    return device_decoder ? device_decoder->prefill(ids, int64_t(ids.size())) : host_decoder->prefill(ids, int64_t(ids.size()));
  };
  auto step = [&](int32_t id) { return device_decoder ? device_decoder->step({id}) : host_decoder->step({id}); };
  Sampler sampler(o.sampling, o.seed);
  const auto t0 = Clock::now();
  Tensor logits = prefill(prompt_ids);
  const auto t1 = Clock::now();
  std::vector<int32_t> history = prompt_ids, gen;
  std::string printed;  // streamed continuation text so far
  bool stopped_at_eos = false;
  for (int64_t i = 0; i < o.max_new_tokens; i++) {
    const int32_t id = sampler.next(logits.data<float>(), vocab, history);
    history.push_back(id);
    if (eos && id == *eos) {
      stopped_at_eos = true;
      gen.push_back(id);
      break;
    }
    gen.push_back(id);
    if (text_out) {
      // Print what the new token adds, holding back a trailing partial UTF-8 character (U+FFFD).
      std::string text = continuation_text(*tok, prompt_ids, decoded_prompt, gen);
      const bool partial = text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
      if (!partial && text.compare(0, printed.size(), printed) == 0 && text.size() > printed.size()) {
        std::fputs(text.c_str() + printed.size(), stdout);
        std::fflush(stdout);
        printed = text;
      }
    }
    if (i + 1 < o.max_new_tokens) logits = step(id);
  }
  const auto t2 = Clock::now();
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count();
  const double tokens_per_s = decode_s > 0 ? double(gen.size()) / decode_s : 0.0;

  std::vector<int32_t> text_ids = gen;  // the completion text leaves out the final EOS
  if (stopped_at_eos) text_ids.pop_back();
  const std::string completion = tok ? continuation_text(*tok, prompt_ids, decoded_prompt, text_ids) : std::string();
  if (o.json) {
    nlohmann::json j{{"prompt", prompt_text},
                     {"completion", completion},
                     {"prompt_ids", prompt_ids},
                     {"ids", gen},
                     {"tokens_per_s", tokens_per_s},
                     {"stop_reason", stopped_at_eos ? "eos" : "max_new_tokens"}};
    std::printf("%s\n", j.dump().c_str());
  } else if (text_out) {
    if (completion.compare(0, printed.size(), printed) == 0) std::fputs(completion.c_str() + printed.size(), stdout);
    std::fputs("\n", stdout);
  } else {
    std::printf("%s\n", join_ids(prompt_ids, gen).c_str());
  }
  std::fflush(stdout);
  std::fprintf(stderr, "generate: %zu prompt tokens in %.3f s, %zu new tokens in %.3f s (%s)%s\n", prompt_ids.size(),
               prefill_s, gen.size(), decode_s, format_rate(tokens_per_s).c_str(), stopped_at_eos ? ", stopped at EOS" : "");
  return 0;
}

}  // namespace

Action setup_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  o->sampling.temperature = 0.8;
  o->sampling.top_k = 50;
  o->sampling.top_p = 0.95;
  app.add_option("--model", o->model, "Hugging Face model folder (config.json + safetensors)")->required();
  app.add_option("--device", o->device, "cpu (host fp32 decoder) | cuda | cuda:N (bf16 weights on the GPU)")->capture_default_str();
  app.add_option("--tokenizer", o->tokenizer, "HF tokenizer.json (default: DIR/tokenizer.json when present)");
  o->prompt_opt = app.add_option("--prompt", o->prompt, "Prompt text");
  o->prompt_file_opt = app.add_option("--prompt-file", o->prompt_file, "Read the prompt text from a file (verbatim)");
  o->ids_opt = app.add_option("--ids", o->ids, "Prompt as token ids, comma-separated: \"1,2,3\" (no tokenizer needed)");
  app.add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate")->capture_default_str();
  app.add_option("--temperature", o->sampling.temperature, "Sampling temperature (0 = greedy)")->capture_default_str();
  app.add_option("--top-k", o->sampling.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
  app.add_option("--top-p", o->sampling.top_p, "Nucleus: smallest set with probability >= p (1 = off)")->capture_default_str();
  app.add_option("--repetition-penalty", o->sampling.repetition_penalty, "HF repetition penalty (1 = off)")->capture_default_str();
  app.add_flag("--greedy", o->sampling.greedy, "Always take the most likely token");
  app.add_option("--seed", o->seed, "Sampling seed: the same seed gives the same text")->capture_default_str();
  app.add_flag("--stop-at-eos", o->stop_at_eos, "Stop after the EOS token (tokenizer's, else config.json eos_token_id)");
  app.add_flag("--json", o->json, "Print one JSON object: prompt, completion, prompt_ids, ids, tokens_per_s, stop_reason");
  app.add_flag("--print-ids", o->print_ids, "Print prompt + new token ids (comma-separated) instead of text");
  set_examples(app, {"lmforge generate --model runs/tiny/checkpoints/step_001000 --tokenizer data/tokenizers/enfr-bpe-4k/tokenizer.json --prompt \"Once upon a time\"",
                     "lmforge generate --model models/mamba-130m-hf --prompt-file p.txt --greedy --max-new-tokens 200 --stop-at-eos",
                     "lmforge generate --model tests/fixtures/mamba_tiny_tied --ids 1,2,3 --greedy --print-ids"});
  return [o]() { return run_generate(*o); };
}

}  // namespace lmf::cli
