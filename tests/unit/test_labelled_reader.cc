// data/labelled_reader: CSV/TSV (quoting, CRLF, BOM, no header), JSONL, label sets, and one
// clear error (file:line) per kind of bad row.
#include <gtest/gtest.h>

#include "lmforge/core/error.h"
#include "lmforge/data/labelled_reader.h"

using namespace lmf;

namespace {

LabelledReadOptions opts(const std::string& text = "text", const std::string& label = "label",
                         const std::string& pair = "") {
  LabelledReadOptions o;
  o.text_column = text;
  o.label_column = label;
  o.text_pair_column = pair;
  return o;
}

// The error message of parsing `content` (named `source`), or "" when it parses.
std::string error_of(const std::string& content, const std::string& source,
                     const LabelledReadOptions& o = opts()) {
  try {
    parse_labelled(content, source, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(LabelledReader, TsvWithHeaderAnyColumnOrder) {
  LabelledData d = parse_labelled("id\tlabel\ttext\n7\tpos\tgreat film \nx\tneg\tdull\r\n", "a.tsv", opts());
  ASSERT_EQ(d.examples.size(), 2u);
  EXPECT_EQ(d.examples[0].text, "great film ");
  EXPECT_EQ(d.examples[0].label, "pos");
  EXPECT_EQ(d.examples[0].line, 2);
  EXPECT_EQ(d.examples[1].text, "dull");  // \r of the CRLF line end removed
  EXPECT_EQ(d.examples[1].label, "neg");
  EXPECT_EQ(d.examples[1].line, 3);
}

TEST(LabelledReader, CsvQuotingRules) {
  // Quoted separator, doubled quote, a quoted newline (the next row's line number moves on),
  // and a quote inside an unquoted field kept as is.
  const std::string csv =
      "\xEF\xBB\xBFtext,label\n"
      "\"hello, world\",1\n"
      "\"she said \"\"no\"\"\",0\n"
      "\"two\nlines\",1\n"
      "5\" screen,0\n";
  LabelledData d = parse_labelled(csv, "b.csv", opts());
  ASSERT_EQ(d.examples.size(), 4u);
  EXPECT_EQ(d.examples[0].text, "hello, world");
  EXPECT_EQ(d.examples[1].text, "she said \"no\"");
  EXPECT_EQ(d.examples[2].text, "two\nlines");
  EXPECT_EQ(d.examples[2].line, 4);
  EXPECT_EQ(d.examples[3].text, "5\" screen");
  EXPECT_EQ(d.examples[3].line, 6);
  // quoting = false reads quotes literally (GLUE-style raw TSV).
  LabelledReadOptions raw = opts();
  raw.quoting = false;
  LabelledData t = parse_labelled("text\tlabel\n\"quoted\" start\t1\n", "c.tsv", raw);
  EXPECT_EQ(t.examples[0].text, "\"quoted\" start");
}

TEST(LabelledReader, PairsNoHeaderAndJsonl) {
  LabelledReadOptions o = opts("0", "2", "1");
  o.header = false;
  LabelledData d = parse_labelled("a premise\ta hypothesis\tentailment\n", "n.tsv", o);
  ASSERT_EQ(d.examples.size(), 1u);
  EXPECT_EQ(d.examples[0].text, "a premise");
  EXPECT_EQ(d.examples[0].text_pair, "a hypothesis");
  EXPECT_EQ(d.examples[0].label, "entailment");

  LabelledData j =
      parse_labelled("{\"sentence\": \"good\", \"y\": 1}\n{\"sentence\": \"bad\", \"y\": \"neg\"}\n\n",
                     "d.jsonl", opts("sentence", "y"));
  ASSERT_EQ(j.examples.size(), 2u);
  EXPECT_EQ(j.examples[0].label, "1");  // integers become their decimal spelling
  EXPECT_EQ(j.examples[1].label, "neg");
  EXPECT_EQ(j.examples[1].line, 2);

  // Prediction input: no label column needed.
  LabelledData p = parse_labelled("text\nfoo\n", "p.csv", opts("text", ""));
  EXPECT_EQ(p.examples[0].label, "");
}

TEST(LabelledReader, LabelSetsAndIds) {
  LabelledData d = parse_labelled("text\tlabel\na\t10\nb\t2\nc\t2\nd\t0\n", "e.tsv", opts());
  // Integer labels sort numerically, not as strings.
  EXPECT_EQ(label_names_from(d), (std::vector<std::string>{"0", "2", "10"}));
  assign_label_ids(d, label_names_from(d));
  EXPECT_EQ(d.examples[0].label_id, 2);
  EXPECT_EQ(d.examples[1].label_id, 1);
  EXPECT_EQ(label_counts(d, 3), (std::vector<int64_t>{1, 2, 1}));

  LabelledData s = parse_labelled("text,label\nx,pos\ny,neg\nz,neutral\n", "f.csv", opts());
  EXPECT_EQ(label_names_from(s), (std::vector<std::string>{"neg", "neutral", "pos"}));

  // Given names: a name matches first; an integer stored label is an index (ClassLabel).
  LabelledData g = parse_labelled("text\tlabel\nx\t1\ny\tnegative\n", "g.tsv", opts());
  assign_label_ids(g, {"negative", "positive"});
  EXPECT_EQ(g.examples[0].label_id, 1);
  EXPECT_EQ(g.examples[1].label_id, 0);
}

TEST(LabelledReader, OneClearErrorPerBadRow) {
  struct Case {
    std::string content, source, needle;
  };
  const std::vector<Case> cases = {
      {"sentence\tgold\nx\t1\n", "h.tsv", "h.tsv:1: no text column 'text' (columns: sentence, gold)"},
      {"text\tgold\nx\t1\n", "h.tsv", "h.tsv:1: no label column 'label' (columns: text, gold)"},
      {"text\tlabel\na\t1\n\nb\t0\n", "i.tsv", "i.tsv:3: empty row"},
      {"text\tlabel\na\t1\n \t0\n", "j.tsv", "j.tsv:3: column 'text' is empty"},
      {"text\tlabel\na\t1\nb\t\n", "j.tsv", "j.tsv:3: column 'label' is empty"},
      {"text\tlabel\nok\t1\nbad \xC3\x28\t0\n", "k.tsv",
       "k.tsv:3: invalid UTF-8 (byte offset 4 of the line)"},
      {"text\tlabel\na\t1\tx\n", "l.tsv", "l.tsv:2: expected 2 fields, got 3"},
      {"text,label\n\"open,1\n", "m.csv", "m.csv:2: unterminated quoted field"},
      {"text,label\n\"a\"b,1\n", "m.csv", "m.csv:2: unexpected character 'b' after a closing quote"},
      {"{\"text\": \"a\", \"label\": 1}\n{\"text\": 3, \"label\": 1}\n", "n.jsonl",
       "n.jsonl:2: column 'text': expected a string, got number"},
      {"{\"text\": \"a\"}\n", "n.jsonl", "n.jsonl:1: no column 'label' in this object"},
      {"{\"text\": \"a\", \"label\": 1}\n{oops\n", "n.jsonl", "n.jsonl:2: invalid JSON"},
      {"", "o.tsv", "o.tsv: no rows"},
      {"text\tlabel\n", "o.tsv", "o.tsv: no rows after the header"},
      {"text\ttext\na\tb\n", "p.tsv", "p.tsv:1: column 'text' appears twice"},
  };
  for (const auto& c : cases) {
    const std::string msg = error_of(c.content, c.source);
    EXPECT_NE(msg.find(c.needle), std::string::npos) << "got: '" << msg << "'\nexpected: " << c.needle;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  // Label outside the set, with file:line.
  LabelledData d = parse_labelled("text\tlabel\na\t0\nb\tneutral\n", "q.tsv", opts());
  try {
    assign_label_ids(d, {"0", "1"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q.tsv:3: label 'neutral' is not in the label set (0, 1)"),
              std::string::npos)
        << e.what();
  }
  // An integer outside [0, k) is not an index either.
  LabelledData d2 = parse_labelled("text\tlabel\na\t2\n", "r.tsv", opts());
  EXPECT_THROW(assign_label_ids(d2, {"neg", "pos"}), Error);
  EXPECT_THROW(resolve_labelled_format("auto", "data.txt"), Error);
  EXPECT_EQ(resolve_labelled_format("auto", "x.ndjson"), "jsonl");
  EXPECT_THROW(read_labelled("/nonexistent/file.tsv", opts()), Error);
}
