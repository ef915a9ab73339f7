// `lmforge encode` / `lmforge decode`: ids equal the library tokenizer's per line, the round trip
// restores multilingual text byte for byte, stdin by default, and one-line errors naming the
// input line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "lmforge/tokenize/tokenizer.h"
#include "test_util.h"

using namespace lmf;
using e2e::lmforge;
using e2e::shell_quote;

namespace {

std::string tok_path() { return test::source_path("data/tokenizers/enfr-bpe-4k/tokenizer.json"); }

const std::vector<std::string> kLines = {
    "Hello, world! How are you today?",
    "Le cœur a ses raisons que la raison ne connaît point.",
    "",
    "  leading and trailing spaces  ",
    "Grüße aus München, schöne Straße.",
    "Съешь же ещё этих мягких французских булок.",
    "東京は日本の首都です。",
    "مرحبا بالعالم",
    "emoji 🙂👍🏽 and tabs\there",
    "<|endoftext|> special in the middle <|endoftext|>",
};

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

}  // namespace

TEST(EncodeDecodeCli, IdsMatchTheLibraryAndRoundTrip) {
  const std::string dir = test::scratch_dir("encode_decode");
  Tokenizer tok = Tokenizer::from_file(tok_path());
  const std::string in = e2e::write_file(dir + "/lines.txt", joined(kLines));
  const std::string tk = " --tokenizer " + shell_quote(tok_path());

  for (bool special : {false, true}) {
    auto enc = lmforge("encode" + tk + (special ? "" : " --no-special") + " " + shell_quote(in), e2e::Capture::stdout_only);
    ASSERT_EQ(enc.rc, 0);
    auto out = e2e::lines_of(enc.out);
    ASSERT_EQ(out.size(), kLines.size()) << enc.out;
    for (size_t i = 0; i < kLines.size(); i++) {
      auto ids = nlohmann::json::parse(out[i]).get<std::vector<int32_t>>();
      EXPECT_EQ(ids, tok.encode(kLines[i], special)) << "line " << i + 1 << ": " << kLines[i];
      EXPECT_EQ(out[i].find(' '), std::string::npos) << "compact JSON: " << out[i];
    }
    EXPECT_EQ(out[2], "[]") << "an empty line encodes to an empty array";
    const std::string ids_file = e2e::write_file(dir + "/ids.jsonl", enc.out);
    auto dec = lmforge("decode" + tk + " " + shell_quote(ids_file), e2e::Capture::stdout_only);
    ASSERT_EQ(dec.rc, 0);
    EXPECT_EQ(dec.out, joined(kLines)) << "byte-level BPE restores every line exactly";
  }
  // The special token in the last line is one id (0); --skip-special drops it.
  auto last = tok.encode(kLines.back(), false);
  ASSERT_EQ(last.front(), 0);
  auto skip = lmforge("decode" + tk + " --skip-special < /dev/null", e2e::Capture::stdout_only);  // stdin
  EXPECT_EQ(skip.rc, 0);
  EXPECT_EQ(skip.out, "") << "empty input, empty output";
  const std::string last_file = e2e::write_file(dir + "/last.jsonl", nlohmann::json(last).dump() + "\n");
  auto dec = lmforge("decode --skip-special" + tk + " < " + shell_quote(last_file), e2e::Capture::stdout_only);
  ASSERT_EQ(dec.rc, 0);
  EXPECT_EQ(dec.out, " special in the middle \n");
}

TEST(EncodeDecodeCli, StdinPipesAndCrlf) {
  const std::string dir = test::scratch_dir("encode_decode_stdin");
  auto file = [&](const std::string& name, const std::string& text) {
    return shell_quote(e2e::write_file(dir + "/" + name, text));
  };
  const std::string tk = " --tokenizer " + shell_quote(tok_path());
  Tokenizer tok = Tokenizer::from_file(tok_path());
  // CRLF input: the '\r' is not part of the text; '-' names stdin explicitly.
  auto enc = lmforge("encode" + tk + " - < " + file("crlf.txt", "Bonjour\r\nhello there"), e2e::Capture::stdout_only);
  ASSERT_EQ(enc.rc, 0);
  auto out = e2e::lines_of(enc.out);
  ASSERT_EQ(out.size(), 2u) << "a last line without newline still counts: " << enc.out;
  EXPECT_EQ(nlohmann::json::parse(out[0]).get<std::vector<int32_t>>(), tok.encode("Bonjour"));
  EXPECT_EQ(nlohmann::json::parse(out[1]).get<std::vector<int32_t>>(), tok.encode("hello there"));
  // encode | decode through a pipe.
  auto rt = lmforge("encode" + tk + " < " + file("pipe.txt", "pipe à pipe\n") + " | " + shell_quote(test::lmforge_bin()) +
                        " decode" + tk,
                    e2e::Capture::stdout_only);
  ASSERT_EQ(rt.rc, 0);
  EXPECT_EQ(rt.out, "pipe à pipe\n");
  // A decoded text containing a newline is printed as is (it spans two output lines).
  auto nl = tok.encode("two\nlines", false);
  auto dec = lmforge("decode" + tk + " < " + file("nl.jsonl", nlohmann::json(nl).dump() + "\n"), e2e::Capture::stdout_only);
  ASSERT_EQ(dec.rc, 0);
  EXPECT_EQ(dec.out, "two\nlines\n");
}

TEST(EncodeDecodeCli, BadInputFailsWithOneLineNamingTheLine) {
  const std::string dir = test::scratch_dir("encode_decode_bad");
  const std::string tk = " --tokenizer " + shell_quote(tok_path());
  // Output is streamed: lines before the bad one are on stdout, the error is one line on stderr.
  auto expect_error_after = [&](const std::string& args, const std::vector<std::string>& needles,
                                const std::string& stdout_before) {
    auto err = lmforge(args, e2e::Capture::stderr_only);
    EXPECT_EQ(err.rc, 1) << args << "\n" << err.out;
    auto lines = e2e::lines_of(err.out);
    ASSERT_EQ(lines.size(), 1u) << args << "\n" << err.out;
    EXPECT_EQ(lines[0].rfind("lmforge: error: ", 0), 0u) << lines[0];
    for (const auto& n : needles) EXPECT_NE(lines[0].find(n), std::string::npos) << "'" << n << "' not in: " << lines[0];
    EXPECT_EQ(lmforge(args, e2e::Capture::stdout_only).out, stdout_before) << args;
  };
  auto decode_lines = [&](const std::string& name, const std::string& text) {
    return "decode" + tk + " " + shell_quote(e2e::write_file(dir + "/" + name, text));
  };
  expect_error_after(decode_lines("syntax", "[3, 4]\n[1, 2\n"), {"syntax:2:", "malformed JSON"}, "#$\n");
  expect_error_after(decode_lines("blank", "[3]\n\n[4]\n"), {"blank:2:", "malformed JSON"}, "#\n");
  e2e::expect_one_line_error(decode_lines("object", "{\"ids\": [1]}\n"), 1, {"object:1:", "expected a JSON array", "an object"});
  e2e::expect_one_line_error(decode_lines("string", "[1, \"2\"]\n"), 1, {"string:1:", "element 1", "integer"});
  e2e::expect_one_line_error(decode_lines("float", "[1.5]\n"), 1, {"float:1:", "element 0", "integer"});
  expect_error_after(decode_lines("range", "[3]\n[4]\n[3, 4096]\n"), {"range:3:", "token id 4096", "out of range", "0..4095"},
                     "#\n$\n");
  e2e::expect_one_line_error(decode_lines("negative", "[-1]\n"), 1, {"negative:1:", "token id -1", "out of range"});
  e2e::expect_one_line_error(decode_lines("huge", "[18446744073709551615]\n"), 1, {"huge:1:", "out of range"});
  e2e::expect_one_line_error("decode" + tk + " < " + shell_quote(e2e::write_file(dir + "/stdin_bad", "[1, x]\n")), 1,
                             {"<stdin>:1:", "malformed JSON"});
  // Invalid UTF-8 on line 2 of the encoder's input.
  Tokenizer tok = Tokenizer::from_file(tok_path());
  expect_error_after("encode" + tk + " " + shell_quote(e2e::write_file(dir + "/bad_utf8", "ok\nbad \xff byte\n")),
                     {"bad_utf8:2:", "UTF-8"}, nlohmann::json(tok.encode("ok")).dump() + "\n");
  e2e::expect_one_line_error("encode" + tk + " " + shell_quote(e2e::write_file(dir + "/bad_utf8_first", "\xc3(\n")), 1,
                             {"bad_utf8_first:1:", "UTF-8"});
  e2e::expect_one_line_error("encode" + tk + " " + shell_quote(dir + "/does_not_exist"), 1, {"does_not_exist", "cannot open"});
  e2e::expect_one_line_error("encode " + shell_quote(dir + "/syntax"), 2, {"--tokenizer"});
  e2e::expect_one_line_error("decode --tokenizer " + shell_quote(dir + "/nope.json"), 2, {"nope.json"});
}
