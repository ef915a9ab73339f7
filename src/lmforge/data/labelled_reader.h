// Labelled examples for classification fine-tuning and prediction, read from CSV, TSV or JSONL.
//
//  csv / tsv: the first row is a header naming the columns (or, with header = false, columns
//             are named by their 0-based index: "0", "1", ...). Fields may be quoted with '"'
//             (RFC 4180: a field that *starts* with '"' runs to the matching '"', "" is a literal
//             quote, and may span lines); a '"' inside an unquoted field is an ordinary
//             character, as Python's csv module reads it. quoting = false turns quotes off
//             (raw GLUE-style TSV). \r\n line ends and a UTF-8 BOM are accepted.
//  jsonl:     one JSON object per line; the text columns must be strings, the label a string
//             or an integer (integers become their decimal spelling, e.g. 1 -> "1").
//
// Every problem is one lmf::Error naming the file and the line of the offending row:
//   "data/x.tsv:1: no column 'label' (columns: sentence, gold)"
//   "data/x.tsv:12: empty row"           "data/x.tsv:7: column 'text' is empty"
//   "data/x.tsv:9: invalid UTF-8 (byte offset 14 of the line); expected UTF-8 text"
//   "data/x.tsv:30: expected 2 fields, got 3"
//   "data/dev.tsv:44: label 'neutral' is not in the label set (0, 1)"
// An empty file (or a header with no rows) is an error too: training on nothing is a mistake.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmf {

struct LabelledReadOptions {
  std::string format = "auto";  // auto (by extension: .csv, .tsv/.tab, .jsonl/.json/.ndjson), csv, tsv, jsonl
  std::string text_column = "text";
  std::string text_pair_column;        // "" = single sentences
  std::string label_column = "label";  // "" = no labels (prediction input)
  bool header = true;                  // csv/tsv only
  bool quoting = true;                 // csv/tsv only
};

struct LabelledExample {
  std::string text, text_pair;  // text_pair empty when no pair column is read
  std::string label;            // as written in the file ("" when no label column is read)
  int32_t label_id = -1;        // set by assign_label_ids
  int64_t line = 0;             // 1-based line where the row starts (for messages)
};

struct LabelledData {
  std::string source;  // file path (or the name given to parse_labelled)
  std::vector<LabelledExample> examples;
};

// "csv" | "tsv" | "jsonl" for a format option and a path ("auto" looks at the extension;
// an unknown extension is an lmf::Error asking for an explicit format).
std::string resolve_labelled_format(const std::string& format, const std::string& path);

// Reads a whole file ("-" = standard input, named "<stdin>" in messages).
LabelledData read_labelled(const std::string& path, const LabelledReadOptions& options);
// Parses in-memory content; `source` names it in messages and picks the format when auto.
LabelledData parse_labelled(std::string_view content, const std::string& source,
                            const LabelledReadOptions& options);

// The label set seen in `data`, sorted: numerically when every label is an integer
// ("2" < "10"), else by byte order. Throws when data has no labels.
std::vector<std::string> label_names_from(const LabelledData& data);

// Sets every example's label_id. A label equal to a name takes that name's index; otherwise an
// integer label i with 0 <= i < names.size() takes index i (HF datasets ClassLabel: data stored
// as ids, names given in the recipe); anything else throws "<source>:<line>: label 'x' is not in
// the label set (a, b)". Names must be unique and non-empty.
void assign_label_ids(LabelledData& data, const std::vector<std::string>& names);

// Per-class example counts (label_id must be assigned).
std::vector<int64_t> label_counts(const LabelledData& data, size_t num_labels);

}  // namespace lmf
