// `lmforge forward`: one forward pass of a HF model folder over ids read from a safetensors
// file, writing fp32 outputs — the parity tool against transformers (tools/fixtures, PARITY.md).
//
// Causal LMs (model_type mamba, architectures *ForCausalLM / *LMHeadModel):
//   Input:  input_ids I64 [B, T]; optional attention_mask I64 [B, T] (1 = real token, 0 = pad,
//           right or left padding). For Mamba the mask follows HF's slow path (MambaModel
//           forward_hidden_masked); pads still get logits, as in HF.
//   Output: logits F32 [B, T, V] (V = the model's vocab_size).
// Task models (models/task_registry.h: bert, roberta, xlm-roberta, ...), run unpadded:
//   Input:  input_ids, optional attention_mask and token_type_ids, all I64 [B, T].
//   Output: the head's output as HF returns it (HfModel::forward_output): `logits` F32 [B, T, V]
//           for masked LMs (pad positions 0), `logits` F32 [B, C] for sequence classifiers,
//           `last_hidden_state` F32 [B, T, H] for base models. --head picks another head than
//           the config's architectures[0] (e.g. the encoder of an MLM checkpoint).
// Compute is always fp32.
#include <cstdio>
#include <memory>

#include "lmforge/autograd/tape.h"
#include "lmforge/cli/common.h"
#include "lmforge/cli/registry.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/mamba.h"
#include "lmforge/models/registry.h"
#include "lmforge/models/task_registry.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/linear.h"

namespace lmf::cli {

namespace {

struct ForwardOptions {
  std::string model, input, out;
  std::string device = "auto";
  std::string head = "config";
};

// Causal LMs go through models/registry.h, everything else through the task registry (whose
// error names the supported task model types).
bool is_causal_folder(const std::string& model_dir) {
  const std::string src = model_dir + "/config.json";
  nlohmann::json j = config_json::read_json_file(src);
  if (!j.is_object()) fail(src, ": expected a JSON object");
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  const std::string type = config_json::get_string(j, src, "model_type", "");
  auto ends_with = [&](const std::string& suffix) {
    return arch.size() >= suffix.size() && arch.compare(arch.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return type == "mamba" || ends_with("ForCausalLM") || ends_with("LMHeadModel") || (arch.empty() && type.empty());
}

TaskHead parse_head(const std::string& h) {
  if (h == "config") return TaskHead::from_config;
  if (h == "base") return TaskHead::base;
  if (h == "masked_lm") return TaskHead::masked_lm;
  if (h == "sequence_classification") return TaskHead::sequence_classification;
  throw UsageError("--head: expected config, base, masked_lm or sequence_classification, got '" + h + "'");
}

// The [B, T] int64 tensor `name` of `in` (throws naming the file and tensor otherwise).
Tensor read_ids_like(const SafetensorsFile& in, const std::string& name) {
  const auto& info = in.info(name);
  if (info.dtype != DType::i64)
    fail(in.path(), ": ", name, ": expected dtype I64, got ", info.file_dtype);
  if (info.shape.size() != 2)
    fail(in.path(), ": ", name, ": expected rank 2 [batch, length], got shape ", shape_str(info.shape));
  if (info.shape[0] < 1 || info.shape[1] < 1)
    fail(in.path(), ": ", name, ": batch and length must be >= 1, got shape ", shape_str(info.shape));
  return in.tensor(name);
}

// Checks ids in [0, vocab) and mask values in {0, 1}, naming the first offending element.
void check_values(const SafetensorsFile& in, const Tensor& ids, const Tensor& mask, int64_t vocab,
                  const std::string& model_dir) {
  const int64_t T = ids.size(1);
  const int64_t* p = ids.data<int64_t>();
  for (int64_t i = 0; i < ids.numel(); i++)
    if (p[i] < 0 || p[i] >= vocab)
      fail(in.path(), ": input_ids[", i / T, ", ", i % T, "] = ", p[i], " is out of range for the vocabulary of ",
           vocab, " tokens of ", model_dir);
  if (!mask.defined()) return;
  const int64_t* m = mask.data<int64_t>();
  for (int64_t i = 0; i < mask.numel(); i++)
    if (m[i] != 0 && m[i] != 1)
      fail(in.path(), ": attention_mask[", i / T, ", ", i % T, "] = ", m[i], ": expected 0 (padding) or 1 (token)");
}

// input_ids, and attention_mask / token_type_ids when present (same shape), from `in`.
struct ForwardInputs {
  Tensor ids, mask, token_types;
};

ForwardInputs read_inputs(const SafetensorsFile& in, const std::string& path, bool allow_token_types) {
  if (!in.contains("input_ids"))
    fail(path, ": no tensor named 'input_ids' (expected I64 [batch, length], optionally with attention_mask)");
  ForwardInputs f;
  f.ids = read_ids_like(in, "input_ids");
  auto same_shape = [&](const char* name) {
    Tensor t = read_ids_like(in, name);
    if (t.shape() != f.ids.shape())
      fail(path, ": ", name, " has shape ", shape_str(t.shape()), " but input_ids has ", shape_str(f.ids.shape()),
           " (they must match)");
    return t;
  };
  if (in.contains("attention_mask")) f.mask = same_shape("attention_mask");
  if (allow_token_types && in.contains("token_type_ids")) f.token_types = same_shape("token_type_ids");
  // Fixture files carry expected outputs beside the inputs: one warning, not one per tensor.
  std::vector<std::string> ignored;
  for (const auto& n : in.names())
    if (n != "input_ids" && n != "attention_mask" && !(allow_token_types && n == "token_type_ids")) ignored.push_back(n);
  if (!ignored.empty())
    warn(path + ": ignoring " + std::to_string(ignored.size()) + " other tensor(s), e.g. '" + ignored.front() + "'");
  return f;
}

int run_causal(const ForwardOptions& o, Device dev) {
  auto in = SafetensorsFile::open(o.input);
  ForwardInputs f = read_inputs(in, o.input, /*allow_token_types=*/false);
  const Tensor& ids = f.ids;
  const Tensor& mask = f.mask;

  LoadedCausalLM l = load_causal_lm(o.model, dev, DType::f32);
  CausalLM& model = *l.model;
  if (!l.unused_tensors.empty())
    warn(o.model + ": " + std::to_string(l.unused_tensors.size()) + " checkpoint tensor(s) not used by " +
         model.architecture() + ", e.g. '" + l.unused_tensors.front() + "'");
  check_values(in, ids, mask, model.vocab_size(), o.model);

  autograd::NoGradGuard no_grad;
  Tensor ids_dev = ids.to(dev);
  Tensor hidden;
  if (auto* mamba = dynamic_cast<MambaModel*>(&model)) {
    hidden = mamba->forward_hidden_masked(ids_dev, mask.defined() ? mask.to(dev) : Tensor());
  } else {
    if (mask.defined())
      fail(o.input, ": attention_mask is not supported for ", model.architecture(), " yet (remove it to run unpadded)");
    hidden = model.forward_hidden(ids_dev, Tensor(), false);
  }
  // HF: lm_head(hidden.to(lm_head.dtype)).float().
  Tensor W = model.lm_head_weight();
  Tensor logits = ops::cast(ops::linear(ops::cast(hidden, W.dtype()), W, Tensor()), DType::f32);
  save_safetensors(o.out, {{"logits", logits.to(Device::cpu())}}, {{"format", "pt"}});
  std::printf("%s: logits %s f32 (%s on %s%s)\n", o.out.c_str(), shape_str(logits.shape()).c_str(),
              model.architecture(), dev.str().c_str(), mask.defined() ? ", with attention_mask" : "");
  return 0;
}

int run_task(const ForwardOptions& o, Device dev) {
  auto in = SafetensorsFile::open(o.input);
  ForwardInputs f = read_inputs(in, o.input, /*allow_token_types=*/true);
  TaskModelRequest req;
  req.head = parse_head(o.head);
  LoadedTaskModel l = load_task_model(o.model, dev, DType::f32, req);
  HfModel& model = *l.model;
  if (!l.unused_tensors.empty())
    warn(o.model + ": " + std::to_string(l.unused_tensors.size()) + " checkpoint tensor(s) not used by " +
         model.architecture() + ", e.g. '" + l.unused_tensors.front() + "'");
  if (!l.missing_tensors.empty())
    warn(o.model + ": " + std::to_string(l.missing_tensors.size()) + " tensor(s) of " + model.architecture() +
         " are not in the checkpoint and were newly initialized (their outputs are random), e.g. '" +
         l.missing_tensors.front() + "'");
  const nlohmann::json cfg = model.hf_config();
  check_values(in, f.ids, f.mask, config_json::get_int(cfg, o.model + "/config.json", "vocab_size", 0, true), o.model);

  autograd::NoGradGuard no_grad;
  TokenBatch batch{f.ids, f.mask, f.token_types};
  Tensor out;
  try {
    out = model.forward_output(batch, {}).to(Device::cpu());
  } catch (const Error& e) {
    throw e.with_context(o.input);  // e.g. "[bert] token_type_id 2 is outside [0, 2)": name the file
  }
  const char* name = out.dim() == 3 && dynamic_cast<MaskedLM*>(&model) == nullptr ? "last_hidden_state" : "logits";
  save_safetensors(o.out, {{name, out}}, {{"format", "pt"}});
  std::printf("%s: %s %s f32 (%s on %s%s%s)\n", o.out.c_str(), name, shape_str(out.shape()).c_str(),
              model.architecture(), dev.str().c_str(), f.mask.defined() ? ", with attention_mask" : "",
              f.token_types.defined() ? ", with token_type_ids" : "");
  return 0;
}

int run_forward(const ForwardOptions& o) {
  const Device dev = parse_device(o.device);
  if (is_causal_folder(o.model)) {
    if (o.head != "config") throw UsageError("--head applies to task models (bert, ...), not to causal LMs");
    return run_causal(o, dev);
  }
  return run_task(o, dev);
}

}  // namespace

Action setup_forward(CLI::App& app) {
  auto o = std::make_shared<ForwardOptions>();
  app.add_option("-m,--model", o->model, "HF model folder (config.json + model.safetensors)")
      ->required()
      ->check(CLI::ExistingDirectory)
      ->type_name("DIR");
  app.add_option("-i,--input", o->input,
                 "safetensors with input_ids I64 [B, T], optional attention_mask (and token_type_ids) I64 [B, T]")
      ->required()
      ->check(CLI::ExistingFile)
      ->type_name("FILE");
  app.add_option("-o,--out", o->out,
                 "Output safetensors: logits F32 [B, T, V] (causal / masked LM), logits F32 [B, C] (classifier) or "
                 "last_hidden_state F32 [B, T, H] (base model)")
      ->required()
      ->type_name("FILE");
  app.add_option("--device", o->device, "cpu | cuda | cuda:N | auto (default: auto)");
  app.add_option("--head", o->head,
                 "task models: config (architectures[0]) | base | masked_lm | sequence_classification (default: config)");
  set_examples(app, {"lmforge forward --model tests/fixtures/mamba_tiny_tied --input tests/fixtures/mamba_tiny_tied/expected.safetensors --out /tmp/logits.safetensors",
                     "lmforge forward -m runs/tiny/checkpoints/step_000100 -i batch.safetensors -o logits.safetensors --device cuda",
                     "lmforge forward --model tests/fixtures/bert_mlm --input tests/fixtures/bert_mlm/expected.safetensors --out /tmp/mlm.safetensors",
                     "lmforge forward --model tests/fixtures/bert_mlm --head base -i tests/fixtures/bert_mlm/expected.safetensors -o /tmp/h.safetensors"});
  return [o]() { return run_forward(*o); };
}

}  // namespace lmf::cli
