// `lmforge predict`: run a fine-tuned sequence classifier (a HF folder, e.g. runs/x/best) on
// texts and write one JSON line per input: {"label", "label_id", "score", "probs"}.
//
// Input: plain text, one example per line (default), or CSV / TSV / JSONL with --text-column
// (and --text-pair-column). With --label-column the gold labels are read too and the metrics
// (accuracy, macro-F1, per class, confusion matrix) are printed on stderr (and written as JSON
// with --metrics). Inputs are encoded and batched exactly as the fine-tuner's evaluation did
// (max_length, truncation and batch size come from the folder's lmforge_finetune.json), so the
// predictions equal the trainer's.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "lmforge/cli/common.h"
#include "lmforge/cli/line_input.h"
#include "lmforge/cli/registry.h"
#include "lmforge/data/classification_batches.h"
#include "lmforge/data/labelled_reader.h"
#include "lmforge/eval/classifier_eval.h"
#include "lmforge/io/atomic_file.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/task_registry.h"
#include "lmforge/tokenize/tokenizer.h"
#include "lmforge/tokenize/unicode.h"
#include "lmforge/train/finetune_config.h"  // find_tokenizer_file

namespace lmf::cli {

namespace {

namespace fs = std::filesystem;

struct PredictOptions {
  std::string model, input = "-", output = "-", metrics;
  std::string format = "auto", text_column, text_pair_column, label_column;
  std::string tokenizer, device = "auto", truncation;
  int64_t batch = 0, max_length = 0;
  bool no_probs = false;
};

// Label names of the model's config.json (id2label in id order).
std::vector<std::string> model_label_names(const nlohmann::json& cfg, int64_t k, const std::string& src) {
  std::vector<std::string> names(static_cast<size_t>(k));
  const auto it = cfg.find("id2label");
  for (int64_t i = 0; i < k; i++) {
    const std::string key = std::to_string(i);
    if (it != cfg.end() && it->is_object() && it->contains(key) && (*it)[key].is_string())
      names[size_t(i)] = (*it)[key].get<std::string>();
    else
      fail(src, ": id2label has no name for label ", i);
  }
  return names;
}

LabelledData read_plain_lines(const std::string& path) {
  LabelledData d;
  d.source = input_name(path);
  for_each_line(path, true, [&](std::string& line, int64_t no) {
    if (size_t bad = tok::find_invalid_utf8(line); bad != std::string::npos)
      fail(d.source, ":", no, ": invalid UTF-8 (byte offset ", bad, " of the line); expected UTF-8 text");
    if (line.find_first_not_of(" \t") == std::string::npos)
      fail(d.source, ":", no, ": empty line (one text per line)");
    LabelledExample ex;
    ex.text = line;
    ex.line = no;
    d.examples.push_back(std::move(ex));
  });
  if (d.examples.empty()) fail(d.source, ": no input lines");
  return d;
}

int run_predict(const PredictOptions& o) {
  const bool table_input = !o.text_column.empty() || o.format != "auto";
  if (!o.label_column.empty() && !table_input)
    throw UsageError("--label-column needs a CSV / TSV / JSONL input: give --text-column too");
  if (!o.text_pair_column.empty() && o.text_column.empty())
    throw UsageError("--text-pair-column needs --text-column");
  if (o.batch < 0 || o.max_length < 0) throw UsageError("--batch and --max-length must be positive");
  nlohmann::json info = nlohmann::json::object();
  const std::string info_path = o.model + "/lmforge_finetune.json";
  if (fs::exists(info_path)) info = config_json::read_json_file(info_path);
  const std::string tok_path = o.tokenizer.empty() ? find_tokenizer_file(o.model) : o.tokenizer;
  if (tok_path.empty())
    fail(o.model, ": no tokenizer (tokenizer.json, *.model or vocab.txt) in this folder; give --tokenizer");
  if (!fs::is_regular_file(tok_path)) fail(tok_path, ": no tokenizer here");

  const Device dev = parse_device(o.device);
  const DType compute = dev.is_cuda() ? DType::bf16 : DType::f32;
  TaskModelRequest req;  // from_config: the folder must hold a classifier
  LoadedTaskModel lm = load_task_model(o.model, dev, compute, req);
  auto* model = dynamic_cast<SequenceClassifier*>(lm.model.get());
  if (!model) fail(o.model, ": ", lm.model->architecture(), " is not a sequence classifier");
  if (!lm.missing_tensors.empty())
    fail(o.model, ": not a fine-tuned classifier (", lm.missing_tensors.front(),
         " is missing from the checkpoint)");
  const nlohmann::json mc = model->hf_config();
  const std::vector<std::string> names = model_label_names(mc, model->num_labels(), o.model + "/config.json");
  Tokenizer tok = Tokenizer::from_file(tok_path);

  LabelledData data;
  if (table_input) {
    LabelledReadOptions ro;
    ro.format = o.format;
    ro.text_column = o.text_column.empty() ? info.value("text_column", std::string("text")) : o.text_column;
    ro.text_pair_column = o.text_pair_column;
    ro.label_column = o.label_column;
    data = read_labelled(o.input, ro);
    if (!o.label_column.empty()) assign_label_ids(data, names);
  } else {
    data = read_plain_lines(o.input);
  }
  SeqEncodeOptions eo;
  eo.max_length = o.max_length > 0 ? o.max_length : info.value("max_length", int64_t(512));
  eo.truncation = parse_truncation(
      o.truncation.empty() ? info.value("truncation", std::string("longest_first")) : o.truncation,
      "--truncation");
  std::vector<EncodedExample> ex = encode_examples(tok, data, eo);
  const int64_t batch = o.batch > 0 ? o.batch : info.value("eval_batch", int64_t(32));
  const int64_t pad = info.value("pad_id", int64_t(0));

  std::vector<std::vector<float>> logits = classifier_logits(*model, ex, batch, pad);
  std::string out;
  std::vector<int32_t> pred(ex.size()), truth(ex.size());
  for (size_t i = 0; i < ex.size(); i++) {
    const std::vector<double> p = softmax_probs(logits[i]);
    const int32_t y = argmax(logits[i]);
    pred[i] = y;
    truth[i] = ex[i].label;
    nlohmann::json j = {{"label", names[size_t(y)]}, {"label_id", y}, {"score", p[size_t(y)]}};
    if (!o.no_probs) j["probs"] = p;
    out += j.dump() + "\n";
  }
  if (o.output == "-") {
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  } else {
    write_file_atomic(o.output, out);
  }
  if (!o.label_column.empty()) {
    ClassificationReport rep = classification_report(truth, pred, model->num_labels());
    std::fprintf(stderr, "%s: accuracy %.4f | macro-F1 %.4f | %lld examples\n%s", data.source.c_str(),
                 rep.accuracy, rep.macro_f1, (long long)rep.num_examples, rep.format_table(names).c_str());
    if (!o.metrics.empty()) write_file_atomic(o.metrics, rep.to_json(names).dump(2) + "\n");
  }
  return 0;
}

}  // namespace

Action setup_predict(CLI::App& app) {
  auto o = std::make_shared<PredictOptions>();
  app.add_option("--model", o->model, "A fine-tuned classifier folder (e.g. runs/NAME/best)")
      ->required()
      ->type_name("DIR");
  app.add_option(
         "--input", o->input,
         "Input file, or - for stdin (default): one text per line, or CSV/TSV/JSONL with --text-column")
      ->type_name("FILE");
  app.add_option("-o,--output", o->output, "Write the JSON lines here instead of stdout")->type_name("FILE");
  app.add_option("--text-column", o->text_column,
                 "Read CSV / TSV / JSONL input and take the text from this column");
  app.add_option("--text-pair-column", o->text_pair_column,
                 "Second text of a pair (CSV / TSV / JSONL input)");
  app.add_option("--label-column", o->label_column,
                 "Gold labels: print accuracy, macro-F1 and the confusion matrix on stderr");
  app.add_option("--format", o->format, "Input format: auto (by extension) | csv | tsv | jsonl")
      ->check(CLI::IsMember({"auto", "csv", "tsv", "jsonl"}));
  app.add_option("--metrics", o->metrics, "With --label-column: also write the metrics as JSON here")
      ->type_name("FILE");
  app.add_option("--tokenizer", o->tokenizer, "tokenizer.json (default: the one in --model)")
      ->type_name("FILE");
  app.add_option("--batch", o->batch, "Batch size (default: the fine-tuning eval batch)");
  app.add_option("--max-length", o->max_length, "Max tokens per input (default: the fine-tuning max_length)");
  app.add_option("--truncation", o->truncation,
                 "longest_first | only_first | only_second | none (default: as fine-tuned)");
  app.add_option("--device", o->device, "cpu | cuda | cuda:N | auto");
  app.add_flag("--no-probs", o->no_probs, "Leave the per-class probabilities out of the output");
  set_examples(app, {"lmforge predict --model runs/sst2/best --input data/sst2/dev.tsv --text-column text "
                     "--label-column label > preds.jsonl",
                     "echo 'a charming and often affecting journey' | lmforge predict --model runs/sst2/best"});
  return [o]() { return run_predict(*o); };
}

}  // namespace lmf::cli
