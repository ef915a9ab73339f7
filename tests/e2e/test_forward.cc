// `lmforge forward`: parity with the HF fixtures (tools/fixtures/make_mamba_fixtures.py), the
// attention_mask semantics of HF's Mamba slow path on right- and left-padded batches, and one
// line errors for bad inputs.
//
// Padding invariants (HF MambaMixer.slow_forward, PARITY.md §1): u is multiplied by the mask
// before the conv and the conv output again after SiLU. At a pad u = 0, so x_proj(u) = 0 gives
// B = C = 0: the state h stays exactly 0 through leading pads (h_t = exp(A dt) h_{t-1} +
// dt B u) and contributes nothing at trailing ones; y = h C + D u = 0, so the mixer output at a
// pad is out_proj(0) = 0 (the fixtures have use_bias = false). Hence
//  - right padding: real positions equal the unpadded run (causality; the mask only touches
//    the pads after them);
//  - left padding: the first real token sees a zero state and a conv window of zeros, exactly
//    like the start of the unpadded sequence, so real positions equal the unpadded run too —
//    and WITHOUT the mask they would not (checked);
//  - every pad position's hidden state is its embedding passed unchanged through the residual
//    stream: logits = lm_head(norm_f(embedding[pad])) (checked by direct computation).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "lmforge/autograd/tape.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/models/mamba.h"
#include "lmforge/models/registry.h"
#include "lmforge/ops/embedding.h"
#include "lmforge/ops/linear.h"
#include "lmforge/ops/norm.h"
#include "test_util.h"

using namespace lmf;
using e2e::lmforge;
using e2e::shell_quote;

namespace {

constexpr int64_t kPad = 0;  // pad_token_id of the fixtures' config.json

std::string fixture(const std::string& name) { return test::source_path("tests/fixtures/" + name); }

// Runs `lmforge forward` on `inputs` (written to <dir>/<tag>_in.safetensors); returns the logits.
Tensor forward_cli(const std::string& model_dir, const NamedTensors& inputs, const std::string& dir,
                   const std::string& tag) {
  const std::string in = dir + "/" + tag + "_in.safetensors", out = dir + "/" + tag + "_out.safetensors";
  save_safetensors(in, inputs);
  auto r = lmforge("forward --model " + shell_quote(model_dir) + " --input " + shell_quote(in) + " --out " +
                   shell_quote(out) + " --device cpu");
  EXPECT_EQ(r.rc, 0) << r.out;
  if (r.rc != 0) return Tensor();
  Tensor logits = SafetensorsFile::open(out).tensor("logits");
  EXPECT_EQ(logits.dtype(), DType::f32);
  return logits;
}

// Rows [b] positions [from, from + n) of [B, T, V] logits, as a [1, n, V] copy.
Tensor positions(const Tensor& logits, int64_t b, int64_t from, int64_t n) {
  return logits.slice(0, b, b + 1).slice(1, from, from + n).contiguous();
}

// The library's Mamba on the fixture, for in-process reference runs.
struct Lib {
  LoadedCausalLM loaded;
  MambaModel* m = nullptr;
  explicit Lib(const std::string& dir) : loaded(load_causal_lm(dir, Device::cpu(), DType::f32)) {
    m = dynamic_cast<MambaModel*>(loaded.model.get());
  }
  Tensor logits(const Tensor& ids, const Tensor& mask = Tensor()) {
    autograd::NoGradGuard ng;
    return m->logits(m->forward_hidden_masked(ids, mask));
  }
};

// A padded batch from the fixture's input_ids: row 0 right-padded (8 real + 4 pads), row 1
// left-padded (3 pads + 9 real), row 2 full (row 0 of the fixture, mask all ones).
struct PaddedBatch {
  Tensor ids, mask;      // [3, 12] i64
  Tensor fixture_ids;    // [2, 12] i64
  static constexpr int64_t T = 12, kRight = 8, kLeftPads = 3;
};
PaddedBatch padded_batch(const Tensor& fixture_ids) {
  auto f = fixture_ids.to_double_vector();
  const int64_t T = PaddedBatch::T;
  std::vector<int64_t> ids(3 * T, kPad), mask(3 * T, 0);
  for (int64_t t = 0; t < PaddedBatch::kRight; t++) {
    ids[t] = int64_t(f[t]);
    mask[t] = 1;
  }
  for (int64_t t = PaddedBatch::kLeftPads; t < T; t++) {
    ids[T + t] = int64_t(f[T + t - PaddedBatch::kLeftPads]);
    mask[T + t] = 1;
  }
  for (int64_t t = 0; t < T; t++) {
    ids[2 * T + t] = int64_t(f[t]);
    mask[2 * T + t] = 1;
  }
  return {Tensor::from_vector<int64_t>(ids, {3, T}), Tensor::from_vector<int64_t>(mask, {3, T}), fixture_ids};
}

// The first n ids of fixture row b as a [1, n] batch.
Tensor prefix_ids(const Tensor& fixture_ids, int64_t b, int64_t n) {
  return fixture_ids.slice(0, b, b + 1).slice(1, 0, n).contiguous();
}

}  // namespace

TEST(ForwardCli, MatchesHfFixtures) {
  const std::string dir = test::scratch_dir("forward_parity");
  for (const char* name : {"mamba_tiny_tied", "mamba_tiny_untied"}) {
    const std::string fx = fixture(name);
    const std::string out = dir + "/" + name + ".safetensors";
    // The fixture file itself is the input: forward reads input_ids and ignores the rest.
    auto r = lmforge("forward --model " + shell_quote(fx) + " --input " + shell_quote(fx + "/expected.safetensors") +
                     " --out " + shell_quote(out) + " --device cpu");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("logits [2, 12, 64]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("lmforge: warning:"), std::string::npos) << "the ignored tensors are reported: " << r.out;
    auto exp = SafetensorsFile::open(fx + "/expected.safetensors");
    auto got = SafetensorsFile::open(out);
    EXPECT_EQ(got.names(), std::vector<std::string>{"logits"});
    Tensor logits = got.tensor("logits");
    EXPECT_EQ(logits.dtype(), DType::f32);
    EXPECT_EQ(logits.shape(), (Shape{2, 12, 64}));
    EXPECT_LT(test::rel_error(logits, exp.tensor("logits")), 1e-4) << name;
  }
}

TEST(MambaPadding, RightPaddedRealPositionsEqualUnpaddedRun) {
  const std::string fx = fixture("mamba_tiny_tied");
  auto exp = SafetensorsFile::open(fx + "/expected.safetensors");
  PaddedBatch pb = padded_batch(exp.tensor("input_ids"));
  Tensor logits = forward_cli(fx, {{"input_ids", pb.ids}, {"attention_mask", pb.mask}}, test::scratch_dir("pad_right"), "p");
  ASSERT_TRUE(logits.defined());
  ASSERT_EQ(logits.shape(), (Shape{3, 12, 64}));
  Lib lib(fx);
  Tensor unpadded = lib.logits(prefix_ids(pb.fixture_ids, 0, PaddedBatch::kRight));
  Tensor real = positions(logits, 0, 0, PaddedBatch::kRight);
  // Equal up to GEMM blocking, which may change with the batch shape (fp32 rounding only).
  EXPECT_LE(test::max_abs_diff(real, unpadded), 1e-5);
  // And HF's own values for these positions (a causal model: the first 8 logits of the fixture row).
  EXPECT_LT(test::rel_error(real, positions(exp.tensor("logits"), 0, 0, PaddedBatch::kRight)), 1e-4);
  // The full row (mask of ones) is the fixture row.
  EXPECT_LT(test::rel_error(positions(logits, 2, 0, 12), positions(exp.tensor("logits"), 0, 0, 12)), 1e-4);
}

TEST(MambaPadding, LeftPaddedRealPositionsEqualUnpaddedRunOnlyWithMask) {
  const std::string fx = fixture("mamba_tiny_tied");
  auto exp = SafetensorsFile::open(fx + "/expected.safetensors");
  PaddedBatch pb = padded_batch(exp.tensor("input_ids"));
  const std::string dir = test::scratch_dir("pad_left");
  Tensor masked = forward_cli(fx, {{"input_ids", pb.ids}, {"attention_mask", pb.mask}}, dir, "masked");
  Tensor unmasked = forward_cli(fx, {{"input_ids", pb.ids}}, dir, "unmasked");
  ASSERT_TRUE(masked.defined() && unmasked.defined());
  const int64_t n = PaddedBatch::T - PaddedBatch::kLeftPads;
  Lib lib(fx);
  Tensor unpadded = lib.logits(prefix_ids(pb.fixture_ids, 1, n));
  Tensor real = positions(masked, 1, PaddedBatch::kLeftPads, n);
  EXPECT_LE(test::max_abs_diff(real, unpadded), 1e-5);
  EXPECT_LT(test::rel_error(real, positions(exp.tensor("logits"), 1, 0, n)), 1e-4);
  // Without the mask the leading pads leak into the state: the mask is what makes this hold.
  EXPECT_GT(test::max_abs_diff(positions(unmasked, 1, PaddedBatch::kLeftPads, n), unpadded), 1e-3);
  // The binary's masked batch is the library's masked forward (same code path, same shapes).
  EXPECT_LE(test::max_abs_diff(masked, lib.logits(pb.ids, pb.mask)), 1e-6);
}

TEST(MambaPadding, PadPositionsCarryOnlyTheirEmbedding) {
  const std::string fx = fixture("mamba_tiny_tied");
  auto exp = SafetensorsFile::open(fx + "/expected.safetensors");
  PaddedBatch pb = padded_batch(exp.tensor("input_ids"));
  Tensor logits = forward_cli(fx, {{"input_ids", pb.ids}, {"attention_mask", pb.mask}}, test::scratch_dir("pad_emb"), "p");
  ASSERT_TRUE(logits.defined());
  Lib lib(fx);
  ASSERT_FALSE(lib.m->config().use_bias) << "the invariant needs out_proj without bias";
  // Direct computation: lm_head(norm_f(embedding[pad])), no mixer at all.
  Tensor direct;
  {
    autograd::NoGradGuard ng;
    ParamStore& ps = lib.m->params();
    Tensor e = ops::embedding(Tensor::from_vector<int64_t>({kPad}, {1, 1}), ps.param("backbone.embeddings.weight"));
    Tensor h = ops::rms_norm(e, ps.param("backbone.norm_f.weight"), float(lib.m->config().layer_norm_epsilon));
    direct = lib.m->logits(h);  // [1, 1, V]
  }
  ASSERT_TRUE(test::all_finite(direct));
  auto m = pb.mask.to_double_vector();
  int checked = 0;
  for (int64_t b = 0; b < 3; b++)
    for (int64_t t = 0; t < PaddedBatch::T; t++) {
      if (m[size_t(b * PaddedBatch::T + t)] != 0) continue;
      EXPECT_LE(test::max_abs_diff(positions(logits, b, t, 1), direct), 1e-5) << "row " << b << " position " << t;
      checked++;
    }
  EXPECT_EQ(checked, 4 + 3);
}

TEST(MambaPadding, MaskOfOnesIsTheUnmaskedPath) {
  const std::string fx = fixture("mamba_tiny_tied");
  Lib lib(fx);
  Tensor ids = test::random_tensor({2, 9}, DType::i64, 77, 1.f, 64.f);
  Tensor ones = Tensor::full({2, 9}, 1.0, DType::i64);
  autograd::NoGradGuard ng;
  Tensor plain = lib.m->logits(lib.m->forward_hidden(ids, Tensor(), false));
  // x * 1.0f is exact: bit-identical.
  EXPECT_EQ(test::max_abs_diff(lib.logits(ids, ones), plain), 0.0);
  EXPECT_EQ(test::max_abs_diff(lib.logits(ids, Tensor()), plain), 0.0);
  // A mask of another shape is refused by the model.
  try {
    lib.logits(ids, Tensor::full({2, 8}, 1.0, DType::i64));
    FAIL() << "expected lmf::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention_mask"), std::string::npos) << e.what();
  }
}

// HF's own logits for a padded batch, from tools/fixtures/make_mamba_padding_fixture.py (run on
// the GPU machine: bash tools/device_fixtures.sh).
TEST(MambaPadding, MatchesHfWhenFixturePresent) {
  const std::string fx = fixture("mamba_tiny_tied");
  const std::string padded = fx + "/padded.safetensors";
  if (!std::filesystem::exists(padded))
    FAIL() << padded << " is missing: generate it with python3 tools/fixtures/make_mamba_padding_fixture.py "
           << "(needs torch + transformers; e.g. bash tools/device_fixtures.sh on the GPU machine)";
  auto ref = SafetensorsFile::open(padded);
  ASSERT_TRUE(ref.contains("input_ids") && ref.contains("attention_mask") && ref.contains("logits"));
  const std::string out = test::scratch_dir("pad_hf") + "/out.safetensors";
  auto r = lmforge("forward --model " + shell_quote(fx) + " --input " + shell_quote(padded) + " --out " +
                   shell_quote(out) + " --device cpu");
  ASSERT_EQ(r.rc, 0) << r.out;
  Tensor logits = SafetensorsFile::open(out).tensor("logits");
  Tensor hf = ref.tensor("logits");
  ASSERT_EQ(logits.shape(), hf.shape());
  EXPECT_LT(test::rel_error(logits, hf), 1e-4);
  // Pads included, but also the real positions alone (they are what users read).
  auto mask = ref.tensor("attention_mask").to_double_vector();
  const int64_t T = hf.size(1);
  for (int64_t b = 0; b < hf.size(0); b++)
    for (int64_t t = 0; t < T; t++) {
      if (mask[size_t(b * T + t)] == 0) continue;
      EXPECT_LT(test::rel_error(positions(logits, b, t, 1), positions(hf, b, t, 1)), 1e-4) << b << "," << t;
    }
}

TEST(ForwardCli, BadInputsFailWithOneLine) {
  const std::string dir = test::scratch_dir("forward_bad");
  const std::string fx = fixture("mamba_tiny_tied");
  const std::string out = shell_quote(dir + "/out.safetensors");
  auto run_on = [&](const std::string& tag, const NamedTensors& t) {
    const std::string in = dir + "/" + tag + ".safetensors";
    save_safetensors(in, t);
    return "forward --model " + shell_quote(fx) + " --input " + shell_quote(in) + " --out " + out + " --device cpu";
  };
  Tensor ids = test::random_tensor({2, 5}, DType::i64, 3, 1.f, 64.f);
  e2e::expect_one_line_error(run_on("missing", {{"tokens", ids}}), 1, {"missing.safetensors", "no tensor named 'input_ids'"});
  e2e::expect_one_line_error(run_on("i32", {{"input_ids", test::random_tensor({2, 5}, DType::i32, 3, 1.f, 64.f)}}), 1,
                             {"input_ids", "expected dtype I64, got I32"});
  e2e::expect_one_line_error(run_on("f32", {{"input_ids", test::random_tensor({2, 5}, DType::f32, 3)}}), 1,
                             {"input_ids", "expected dtype I64, got F32"});
  e2e::expect_one_line_error(run_on("rank1", {{"input_ids", test::random_tensor({5}, DType::i64, 3, 1.f, 64.f)}}), 1,
                             {"input_ids", "expected rank 2", "[5]"});
  e2e::expect_one_line_error(run_on("range", {{"input_ids", Tensor::from_vector<int64_t>({1, 2, 64, 3}, {2, 2})}}), 1,
                             {"input_ids[1, 0] = 64", "out of range", "64 tokens"});
  e2e::expect_one_line_error(run_on("negative", {{"input_ids", Tensor::from_vector<int64_t>({1, -1}, {1, 2})}}), 1,
                             {"input_ids[0, 1] = -1", "out of range"});
  e2e::expect_one_line_error(
      run_on("mask_shape", {{"input_ids", ids}, {"attention_mask", Tensor::full({2, 4}, 1.0, DType::i64)}}), 1,
      {"attention_mask has shape [2, 4]", "[2, 5]"});
  e2e::expect_one_line_error(
      run_on("mask_dtype", {{"input_ids", ids}, {"attention_mask", Tensor::full({2, 5}, 1.0, DType::f32)}}), 1,
      {"attention_mask", "expected dtype I64, got F32"});
  e2e::expect_one_line_error(
      run_on("mask_value", {{"input_ids", ids}, {"attention_mask", Tensor::from_vector<int64_t>({1, 1, 1, 2, 1, 1, 1, 1, 1, 1}, {2, 5})}}),
      1, {"attention_mask[0, 3] = 2", "expected 0 (padding) or 1"});
  // Unsupported architecture: the fixture folder with another config.json (BERT is a task
  // model now: tests/e2e/test_forward_bert.cc).
  const std::string gpt2 = dir + "/gpt2";
  std::filesystem::create_directories(gpt2);
  std::filesystem::copy_file(fx + "/model.safetensors", gpt2 + "/model.safetensors");
  nlohmann::json cfg = nlohmann::json::parse(e2e::read_file(fx + "/config.json"));
  cfg["architectures"] = {"GPT2LMHeadModel"};
  cfg["model_type"] = "gpt2";
  e2e::write_file(gpt2 + "/config.json", cfg.dump());
  e2e::expect_one_line_error("forward --model " + shell_quote(gpt2) + " --input " +
                                 shell_quote(e2e::write_file(dir + "/ids_only.safetensors", serialize_safetensors({{"input_ids", ids}}))) +
                                 " --out " + out + " --device cpu",
                             1, {"GPT2LMHeadModel", "not a causal LM lmforge supports"});
  // A file that is not safetensors, and usage errors (exit 2).
  e2e::write_file(dir + "/junk.safetensors", "not a safetensors file");
  e2e::expect_one_line_error("forward --model " + shell_quote(fx) + " --input " + shell_quote(dir + "/junk.safetensors") +
                                 " --out " + out,
                             1, {"junk.safetensors"});
  e2e::expect_one_line_error("forward --model " + shell_quote(dir + "/nope") + " --input x --out " + out, 2, {"--model"});
  e2e::expect_one_line_error("forward --model " + shell_quote(fx) + " --input " + shell_quote(fx + "/expected.safetensors"),
                             2, {"--out"});
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.safetensors")) << "no output after a failure";
}
