// `lmforge forward`: one forward pass of a HF causal-LM folder over ids read from a safetensors
// file, writing fp32 logits — the parity tool against transformers (tools/fixtures, PARITY.md).
//
// Input:  input_ids I64 [B, T]; optional attention_mask I64 [B, T] (1 = real token, 0 = pad,
//         right or left padding). For Mamba the mask follows HF's slow path (MambaModel
//         forward_hidden_masked); pads still get logits, as in HF.
// Output: logits F32 [B, T, V] (V = the model's vocab_size). Compute is always fp32.
#include <cstdio>
#include <memory>

#include "lmforge/autograd/tape.h"
#include "lmforge/cli/common.h"
#include "lmforge/cli/registry.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/mamba.h"
#include "lmforge/models/registry.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/linear.h"

namespace lmf::cli {

namespace {

struct ForwardOptions {
  std::string model, input, out;
  std::string device = "auto";
};

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

int run_forward(const ForwardOptions& o) {
  const Device dev = parse_device(o.device);
  auto in = SafetensorsFile::open(o.input);
  if (!in.contains("input_ids"))
    fail(o.input, ": no tensor named 'input_ids' (expected I64 [batch, length], optionally with attention_mask)");
  Tensor ids = read_ids_like(in, "input_ids");
  Tensor mask;
  if (in.contains("attention_mask")) {
    mask = read_ids_like(in, "attention_mask");
    if (mask.shape() != ids.shape())
      fail(o.input, ": attention_mask has shape ", shape_str(mask.shape()), " but input_ids has ",
           shape_str(ids.shape()), " (they must match)");
  }
  // Fixture files carry expected outputs beside the inputs: one warning, not one per tensor.
  std::vector<std::string> ignored;
  for (const auto& n : in.names())
    if (n != "input_ids" && n != "attention_mask") ignored.push_back(n);
  if (!ignored.empty())
    warn(o.input + ": ignoring " + std::to_string(ignored.size()) + " other tensor(s), e.g. '" + ignored.front() + "'");

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

}  // namespace

Action setup_forward(CLI::App& app) {
  auto o = std::make_shared<ForwardOptions>();
  app.add_option("-m,--model", o->model, "HF model folder (config.json + model.safetensors)")
      ->required()
      ->check(CLI::ExistingDirectory)
      ->type_name("DIR");
  app.add_option("-i,--input", o->input, "safetensors with input_ids I64 [B, T] and optional attention_mask I64 [B, T]")
      ->required()
      ->check(CLI::ExistingFile)
      ->type_name("FILE");
  app.add_option("-o,--out", o->out, "Output safetensors: logits F32 [B, T, V]")->required()->type_name("FILE");
  app.add_option("--device", o->device, "cpu | cuda | cuda:N | auto (default: auto)");
  set_examples(app, {"lmforge forward --model tests/fixtures/mamba_tiny_tied --input tests/fixtures/mamba_tiny_tied/expected.safetensors --out /tmp/logits.safetensors",
                     "lmforge forward -m runs/tiny/checkpoints/step_000100 -i batch.safetensors -o logits.safetensors --device cuda"});
  return [o]() { return run_forward(*o); };
}

}  // namespace lmf::cli
