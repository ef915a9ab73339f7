// `lmforge forward` on the `bert` family's HF fixtures (tools/fixtures/make_bert_fixtures.py):
// the binary loads task models through the task registry and writes the head's output as HF
// returns it — MLM logits [B, T, V] with pad rows 0, classifier logits [B, C], or the base
// model's last_hidden_state [B, T, H] with --head base — and fails with one line on bad input.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_runner.h"
#include "lmforge/io/safetensors.h"
#include "test_util.h"

using namespace lmf;
using e2e::lmforge;
using e2e::shell_quote;

namespace {

std::string fixture(const std::string& name) { return test::source_path("tests/fixtures/" + name); }

// Runs forward on the fixture with its own expected.safetensors as the input; returns the output file.
SafetensorsFile run_fixture(const std::string& name, const std::string& extra, std::string* log = nullptr) {
  const std::string dir = test::scratch_dir("forward_bert_" + name);
  const std::string out = dir + "/out.safetensors";
  auto r = lmforge("forward --model " + shell_quote(fixture(name)) + " --input " +
                   shell_quote(fixture(name) + "/expected.safetensors") + " --out " + shell_quote(out) +
                   " --device cpu " + extra);
  EXPECT_EQ(r.rc, 0) << r.out;
  if (log) *log = r.out;
  return SafetensorsFile::open(out);
}

// Values of [B, T, X] at positions where mask == want.
std::vector<double> at_mask(const Tensor& x, const Tensor& mask, int64_t want) {
  const auto v = x.to_double_vector();
  const auto m = mask.to_double_vector();
  const size_t X = size_t(x.size(2));
  std::vector<double> out;
  for (size_t i = 0; i < m.size(); i++)
    if (int64_t(m[i]) == want) out.insert(out.end(), v.begin() + long(i * X), v.begin() + long((i + 1) * X));
  return out;
}

}  // namespace

TEST(ForwardBert, MaskedLMLogitsMatchTransformers) {
  for (const char* name : {"bert_mlm", "bert_xlmr_mlm"}) {
    std::string log;
    auto out = run_fixture(name, "", &log);
    auto exp = SafetensorsFile::open(fixture(name) + "/expected.safetensors");
    Tensor logits = out.tensor("logits"), mask = exp.tensor("attention_mask");
    ASSERT_EQ(logits.dtype(), DType::f32);
    ASSERT_EQ(logits.shape(), exp.tensor("logits").shape());
    EXPECT_LT(test::rel_error(at_mask(logits, mask, 1), at_mask(exp.tensor("logits"), mask, 1)), 1e-4)
        << name;
    for (double v : at_mask(logits, mask, 0)) ASSERT_EQ(v, 0.0) << name;
    EXPECT_NE(log.find("ForMaskedLM on cpu, with attention_mask, with token_type_ids"), std::string::npos)
        << log;
    EXPECT_NE(log.find("warning:"), std::string::npos)
        << "the fixture's expected tensors are ignored with a warning";
  }
}

TEST(ForwardBert, ClassifierLogitsMatchTransformers) {
  for (const char* name : {"bert_cls", "bert_xlmr_cls"}) {
    auto out = run_fixture(name, "");
    auto exp = SafetensorsFile::open(fixture(name) + "/expected.safetensors");
    ASSERT_EQ(out.tensor("logits").shape(), (Shape{4, 3}));
    EXPECT_LT(test::rel_error(out.tensor("logits"), exp.tensor("logits")), 1e-4) << name;
  }
}

TEST(ForwardBert, HeadBaseWritesTheLastHiddenState) {
  std::string log;
  auto out = run_fixture("bert_mlm", "--head base", &log);
  auto exp = SafetensorsFile::open(fixture("bert_mlm") + "/expected.safetensors");
  ASSERT_TRUE(out.contains("last_hidden_state"));
  Tensor h = out.tensor("last_hidden_state"), mask = exp.tensor("attention_mask");
  EXPECT_LT(test::rel_error(at_mask(h, mask, 1), at_mask(exp.tensor("hidden"), mask, 1)), 1e-4);
  // The MLM checkpoint has no pooler: reported as newly initialized.
  EXPECT_NE(log.find("newly initialized"), std::string::npos) << log;
  EXPECT_NE(log.find("BertModel on cpu"), std::string::npos) << log;
}

TEST(ForwardBert, BadInputsAreOneLineErrors) {
  const std::string dir = test::scratch_dir("forward_bert_bad");
  const std::string model = shell_quote(fixture("bert_mlm")), out = shell_quote(dir + "/out.safetensors");
  auto run_on = [&](const std::string& tag, const NamedTensors& ts, const std::string& extra = "") {
    const std::string in = dir + "/" + tag + ".safetensors";
    save_safetensors(in, ts);
    return "forward --model " + model + " --input " + shell_quote(in) + " --out " + out + " --device cpu " +
           extra;
  };
  Tensor ids = Tensor::from_vector<int64_t>({2, 5, 9, 3, 2, 7, 3, 0}, {2, 4});
  Tensor mask = Tensor::from_vector<int64_t>({1, 1, 1, 1, 1, 1, 1, 0}, {2, 4});
  e2e::expect_one_line_error(
      run_on("types_shape",
             {{"input_ids", ids}, {"token_type_ids", Tensor::from_vector<int64_t>({0, 0, 1}, {1, 3})}}),
      1, {"token_type_ids has shape [1, 3]", "[2, 4]"});
  e2e::expect_one_line_error(
      run_on("types_value",
             {{"input_ids", ids},
              {"attention_mask", mask},
              {"token_type_ids", Tensor::from_vector<int64_t>({0, 0, 2, 0, 0, 0, 0, 0}, {2, 4})}}),
      1, {"types_value.safetensors", "token_type_id 2 is outside [0, type_vocab_size = 2)"});
  e2e::expect_one_line_error(
      run_on("ids_range", {{"input_ids", Tensor::from_vector<int64_t>({2, 99, 3, 0}, {1, 4})}}), 1,
      {"input_ids[0, 1] = 99", "vocabulary of 99 tokens"});
  e2e::expect_one_line_error(run_on("too_long", {{"input_ids", Tensor::full({1, 65}, 5.0, DType::i64)}}), 1,
                             {"too_long.safetensors", "beyond max_position_embeddings 64"});
  e2e::expect_one_line_error(run_on("bad_head", {{"input_ids", ids}}, "--head tokens"), 2,
                             {"--head", "tokens"});
  // A classifier head on the MLM checkpoint: the new head is random, which the user is told.
  auto r = lmforge(
      run_on("as_cls", {{"input_ids", ids}, {"attention_mask", mask}}, "--head sequence_classification"));
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("4 tensor(s) of BertForSequenceClassification are not in the checkpoint"),
            std::string::npos)
      << r.out;
  // An unknown model_type names the supported task models.
  const std::string t5 = dir + "/t5";
  std::filesystem::create_directories(t5);
  e2e::write_file(t5 + "/config.json",
                  R"({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]})");
  e2e::expect_one_line_error("forward --model " + shell_quote(t5) + " --input " +
                                 shell_quote(dir + "/as_cls.safetensors") + " --out " + out + " --device cpu",
                             1, {"'t5' is not a task model lmforge supports", "bert, roberta, xlm-roberta"});
}
