#include "lmforge/data/labelled_reader.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// Refuses invalid UTF-8 up front, naming the line and the byte offset inside it.
void check_utf8(std::string_view content, const std::string& source) {
  const size_t bad = tok::find_invalid_utf8(content);
  if (bad == std::string_view::npos) return;
  const int64_t line =
      1 + std::count(content.begin(), content.begin() + static_cast<std::ptrdiff_t>(bad), '\n');
  const size_t line_start = content.rfind('\n', bad == 0 ? 0 : bad - 1);
  const size_t col = line_start == std::string_view::npos || bad == 0 ? bad : bad - line_start - 1;
  fail(source, ":", line, ": invalid UTF-8 (byte offset ", col, " of the line); expected UTF-8 text");
}

struct Record {
  std::vector<std::string> fields;
  int64_t line = 0;
};

// Splits delimited text into records (see the header for the quoting rules).
std::vector<Record> split_delimited(std::string_view s, char sep, bool quoting, const std::string& source) {
  std::vector<Record> out;
  size_t i = 0;
  int64_t line = 1;
  const size_t n = s.size();
  while (i < n) {
    Record rec;
    rec.line = line;
    // A blank line: an error unless only blank lines follow (a trailing newline or two).
    {
      size_t e = s.find('\n', i);
      std::string_view row = s.substr(i, e == std::string_view::npos ? n - i : e - i);
      if (is_blank(row)) {
        if (is_blank(s.substr(i))) break;
        fail(source, ":", line, ": empty row");
      }
    }
    while (true) {  // one field per iteration
      std::string field;
      if (quoting && i < n && s[i] == '"') {
        const int64_t open_line = line;
        ++i;
        while (true) {
          if (i >= n) fail(source, ":", open_line, ": unterminated quoted field (no closing '\"')");
          if (s[i] == '"') {
            if (i + 1 < n && s[i + 1] == '"') {
              field.push_back('"');
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (s[i] == '\n') ++line;
          field.push_back(s[i++]);
        }
        if (i < n && s[i] == '\r' && (i + 1 == n || s[i + 1] == '\n')) ++i;
        if (i < n && s[i] != sep && s[i] != '\n')
          fail(source, ":", line, ": unexpected character '", s[i],
               "' after a closing quote (expected the separator or the end of the row)");
      } else {
        while (i < n && s[i] != sep && s[i] != '\n') field.push_back(s[i++]);
        if (!field.empty() && field.back() == '\r' && (i == n || s[i] == '\n')) field.pop_back();
      }
      rec.fields.push_back(std::move(field));
      if (i < n && s[i] == sep) {
        ++i;
        continue;
      }
      if (i < n) {  // '\n'
        ++i;
        ++line;
      }
      break;
    }
    out.push_back(std::move(rec));
  }
  return out;
}

struct Columns {
  int text = -1, pair = -1, label = -1;
};

int find_column(const std::vector<std::string>& names, const std::string& want, const std::string& source,
                int64_t line, const char* role) {
  for (size_t c = 0; c < names.size(); c++)
    if (names[c] == want) return static_cast<int>(c);
  fail(source, ":", line, ": no ", role, " column '", want, "' (columns: ", join(names), ")");
}

void set_field(LabelledExample& ex, std::string value, const std::string& column, int which,
               const std::string& source) {
  if (is_blank(value)) fail(source, ":", ex.line, ": column '", column, "' is empty");
  if (which == 0)
    ex.text = std::move(value);
  else if (which == 1)
    ex.text_pair = std::move(value);
  else
    ex.label = std::move(value);
}

LabelledData parse_delimited(std::string_view content, const std::string& source, char sep,
                             const LabelledReadOptions& o) {
  std::vector<Record> recs = split_delimited(content, sep, o.quoting, source);
  LabelledData d;
  d.source = source;
  if (recs.empty()) fail(source, ": no rows (the file is empty)");
  std::vector<std::string> names;
  size_t first = 0;
  if (o.header) {
    names = recs[0].fields;
    first = 1;
    std::set<std::string> seen;
    for (const auto& nm : names)
      if (!seen.insert(nm).second)
        fail(source, ":", recs[0].line, ": column '", nm, "' appears twice in the header");
  } else {
    for (size_t c = 0; c < recs[0].fields.size(); c++) names.push_back(std::to_string(c));
  }
  const int64_t hl = recs[0].line;
  Columns col;
  col.text = find_column(names, o.text_column, source, hl, "text");
  if (!o.text_pair_column.empty()) col.pair = find_column(names, o.text_pair_column, source, hl, "text pair");
  if (!o.label_column.empty()) col.label = find_column(names, o.label_column, source, hl, "label");
  if (recs.size() <= first) fail(source, ": no rows after the header");
  for (size_t r = first; r < recs.size(); r++) {
    Record& rec = recs[r];
    if (rec.fields.size() != names.size())
      fail(source, ":", rec.line, ": expected ", names.size(), " fields, got ", rec.fields.size(),
           sep == '\t' ? " (fields are separated by tabs)"
                       : " (fields are separated by commas; quote fields that contain one)");
    LabelledExample ex;
    ex.line = rec.line;
    set_field(ex, std::move(rec.fields[size_t(col.text)]), o.text_column, 0, source);
    if (col.pair >= 0) set_field(ex, std::move(rec.fields[size_t(col.pair)]), o.text_pair_column, 1, source);
    if (col.label >= 0) set_field(ex, std::move(rec.fields[size_t(col.label)]), o.label_column, 2, source);
    d.examples.push_back(std::move(ex));
  }
  return d;
}

std::string json_text(const nlohmann::json& obj, const std::string& column, const std::string& source,
                      int64_t line, bool allow_int) {
  auto it = obj.find(column);
  if (it == obj.end()) fail(source, ":", line, ": no column '", column, "' in this object");
  if (it->is_string()) return it->get<std::string>();
  if (allow_int && it->is_number_integer()) return std::to_string(it->get<int64_t>());
  fail(source, ":", line, ": column '", column, "': expected a string", allow_int ? " or an integer" : "",
       ", got ", it->type_name());
}

LabelledData parse_jsonl(std::string_view content, const std::string& source, const LabelledReadOptions& o) {
  LabelledData d;
  d.source = source;
  size_t i = 0;
  int64_t line = 0;
  while (i < content.size()) {
    size_t e = content.find('\n', i);
    if (e == std::string_view::npos) e = content.size();
    std::string_view row = content.substr(i, e - i);
    ++line;
    if (is_blank(row)) {
      if (is_blank(content.substr(i))) break;
      fail(source, ":", line, ": empty row");
    }
    nlohmann::json obj;
    try {
      obj = nlohmann::json::parse(row);
    } catch (const nlohmann::json::exception& ex) {
      fail(source, ":", line, ": invalid JSON: ", ex.what());
    }
    if (!obj.is_object()) fail(source, ":", line, ": expected a JSON object, got ", obj.type_name());
    LabelledExample ex;
    ex.line = line;
    set_field(ex, json_text(obj, o.text_column, source, line, false), o.text_column, 0, source);
    if (!o.text_pair_column.empty())
      set_field(ex, json_text(obj, o.text_pair_column, source, line, false), o.text_pair_column, 1, source);
    if (!o.label_column.empty())
      set_field(ex, json_text(obj, o.label_column, source, line, true), o.label_column, 2, source);
    d.examples.push_back(std::move(ex));
    i = e + 1;
  }
  if (d.examples.empty()) fail(source, ": no rows (the file is empty)");
  return d;
}

bool parse_int(const std::string& s, int64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

}  // namespace

std::string resolve_labelled_format(const std::string& format, const std::string& path) {
  if (format == "csv" || format == "tsv" || format == "jsonl") return format;
  if (format != "auto") fail("format: expected one of auto, csv, tsv, jsonl, got '", format, "'");
  if (ends_with(path, ".csv")) return "csv";
  if (ends_with(path, ".tsv") || ends_with(path, ".tab")) return "tsv";
  if (ends_with(path, ".jsonl") || ends_with(path, ".json") || ends_with(path, ".ndjson")) return "jsonl";
  fail(path, ": cannot tell the format from the file name; give it explicitly (csv, tsv or jsonl)");
}

LabelledData parse_labelled(std::string_view content, const std::string& source,
                            const LabelledReadOptions& o) {
  const std::string fmt = resolve_labelled_format(o.format, source);
  if (o.text_column.empty()) fail(source, ": the text column name is empty");
  if (content.size() >= 3 && static_cast<unsigned char>(content[0]) == 0xEF &&
      static_cast<unsigned char>(content[1]) == 0xBB && static_cast<unsigned char>(content[2]) == 0xBF)
    content.remove_prefix(3);
  check_utf8(content, source);
  if (content.find('\0') != std::string_view::npos) fail(source, ": contains NUL bytes; expected text");
  if (fmt == "jsonl") return parse_jsonl(content, source, o);
  return parse_delimited(content, source, fmt == "csv" ? ',' : '\t', o);
}

LabelledData read_labelled(const std::string& path, const LabelledReadOptions& o) {
  std::string content;
  if (path == "-") {
    content.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) fail("<stdin>: read failed");
    LabelledReadOptions o2 = o;
    if (o2.format == "auto") fail("<stdin>: give the input format explicitly (csv, tsv or jsonl)");
    return parse_labelled(content, "<stdin>", o2);
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open (does the file exist?)");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail(path, ": read failed");
  return parse_labelled(ss.str(), path, o);
}

std::vector<std::string> label_names_from(const LabelledData& d) {
  std::set<std::string> seen;
  for (const auto& ex : d.examples) seen.insert(ex.label);
  if (seen.empty() || (seen.size() == 1 && seen.begin()->empty()))
    fail(d.source, ": no labels to build the label set from");
  std::vector<std::string> names(seen.begin(), seen.end());
  bool all_int = true;
  int64_t v = 0;
  for (const auto& n : names) all_int = all_int && parse_int(n, v);
  if (all_int)
    std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
      int64_t x = 0, y = 0;
      parse_int(a, x);
      parse_int(b, y);
      return x < y;
    });
  return names;
}

void assign_label_ids(LabelledData& d, const std::vector<std::string>& names) {
  if (names.empty()) fail(d.source, ": the label set is empty");
  std::map<std::string, int32_t> index;
  for (size_t k = 0; k < names.size(); k++) {
    if (names[k].empty()) fail("label names: name ", k, " is empty");
    if (!index.emplace(names[k], static_cast<int32_t>(k)).second)
      fail("label names: '", names[k], "' appears twice");
  }
  for (auto& ex : d.examples) {
    auto it = index.find(ex.label);
    if (it != index.end()) {
      ex.label_id = it->second;
      continue;
    }
    int64_t v = 0;
    if (parse_int(ex.label, v) && v >= 0 && v < static_cast<int64_t>(names.size())) {
      ex.label_id = static_cast<int32_t>(v);
      continue;
    }
    fail(d.source, ":", ex.line, ": label '", ex.label, "' is not in the label set (", join(names), ")");
  }
}

std::vector<int64_t> label_counts(const LabelledData& d, size_t k) {
  std::vector<int64_t> c(k, 0);
  for (const auto& ex : d.examples) {
    LMF_CHECK(ex.label_id >= 0 && size_t(ex.label_id) < k, "label ids not assigned");
    c[size_t(ex.label_id)]++;
  }
  return c;
}

}  // namespace lmf
