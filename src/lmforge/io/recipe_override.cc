// `--set a.b.c=value` overrides: parse the value as TOML, check it against the key's current
// type, and replace it in the tree. See recipe.h for the rules.
#include <algorithm>
#include <cstdlib>
#include <optional>

#include "lmforge/core/suggest.h"
#include "lmforge/io/recipe.h"
#include "lmforge/io/recipe_tree.h"

namespace lmf {

using namespace recipe_detail;

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// One override being applied: carries the text for error messages.
struct Override {
  const State& st;
  std::string label;  // "--set a.b=1" as typed

  [[noreturn]] void error(const std::string& msg) const {
    throw OverrideError(st.source + ": " + label + ": " + msg);
  }
};

// The value "v" of a one-line TOML document "v = <raw>", or nullopt when `raw` is not a TOML
// value (or smuggles in more than one).
std::optional<toml::table> parse_value(std::string_view raw) {
  if (raw.find_first_of("\r\n") != std::string_view::npos) return std::nullopt;
  try {
    toml::table doc = toml::parse("v = " + std::string(raw));
    if (doc.size() != 1 || !doc.contains("v")) return std::nullopt;
    return doc;
  } catch (const toml::parse_error&) {
    return std::nullopt;
  }
}

toml::table holder_of_string(std::string s) {
  toml::table t;
  t.insert_or_assign("v", std::move(s));
  return t;
}

// "[a, b, 'c d']" -> array of strings, for string arrays typed without quotes on a shell.
std::optional<toml::table> split_string_list(std::string_view raw) {
  if (raw.size() < 2 || raw.front() != '[' || raw.back() != ']') return std::nullopt;
  std::string_view body = trim(raw.substr(1, raw.size() - 2));
  toml::array arr;
  while (!body.empty()) {
    size_t comma = body.find(',');
    std::string_view item = trim(body.substr(0, comma));
    if (item.size() >= 2 && (item.front() == '"' || item.front() == '\'') && item.back() == item.front())
      item = item.substr(1, item.size() - 2);
    arr.push_back(std::string(item));
    if (comma == std::string_view::npos) break;
    body = trim(body.substr(comma + 1));
  }
  toml::table t;
  t.insert_or_assign("v", std::move(arr));
  return t;
}

const char* expected_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean (true or false)";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "a value";
  }
}

// Converts `v` in place to the scalar type of `like` where that loses nothing (integer -> float);
// returns false when the types are incompatible.
bool coerce_scalar(toml::table& holder, const toml::node& like) {
  const toml::node& v = *holder.get("v");
  if (v.type() == like.type()) return true;
  if (like.is_floating_point() && v.is_integer()) {
    holder.insert_or_assign("v", static_cast<double>(v.as_integer()->get()));
    return true;
  }
  return false;
}

// The new value for an override of an existing value `old` (nullptr when adding a key).
toml::table convert(const Override& ov, std::string_view raw, const toml::node* old) {
  std::optional<toml::table> parsed = parse_value(raw);
  if (!old) {
    if (parsed) return std::move(*parsed);
    if (auto list = split_string_list(raw)) return std::move(*list);  // +langs=[en, fr]
    return holder_of_string(std::string(raw));
  }

  if (old->is_string()) {
    // Strings are taken verbatim unless quoted, so `--set run.name=2024` stays a string.
    if (parsed && parsed->get("v")->is_string() && (raw.front() == '"' || raw.front() == '\''))
      return std::move(*parsed);
    return holder_of_string(std::string(raw));
  }

  if (const toml::array* old_arr = old->as_array()) {
    bool strings = !old_arr->empty() && old_arr->is_homogeneous(toml::node_type::string);
    if (!parsed || !parsed->get("v")->is_array() ||
        (strings && !parsed->get("v")->as_array()->is_homogeneous(toml::node_type::string))) {
      if (auto list = split_string_list(raw); list && (strings || old_arr->empty())) return std::move(*list);
    }
    if (!parsed) ov.error("expected an array, got string '" + std::string(raw) + "'");
    toml::node& v = *parsed->get("v");
    if (!v.is_array()) ov.error("expected an array, got " + describe(v));
    // Element types follow the old array's when it had one type (ints widen to floats).
    toml::node_type elem = toml::node_type::none;
    if (!old_arr->empty() && old_arr->is_homogeneous(old_arr->front().type())) elem = old_arr->front().type();
    if (elem != toml::node_type::none) {
      toml::array& arr = *v.as_array();
      for (size_t i = 0; i < arr.size(); i++) {
        if (arr[i].type() == elem) continue;
        if (elem == toml::node_type::floating_point && arr[i].is_integer()) {
          arr.replace(arr.cbegin() + static_cast<ptrdiff_t>(i),
                      static_cast<double>(arr[i].as_integer()->get()));
          continue;
        }
        ov.error("expected " + std::string(expected_name(old_arr->front())) + " at [" + std::to_string(i) +
                 "], got " + describe(arr[i]));
      }
    }
    return std::move(*parsed);
  }

  // Scalars: number, boolean, date/time.
  if (!parsed && old->is_floating_point()) {
    // Accept C-style numbers TOML rejects (".5", "5.", "1E-3"), as users type them.
    std::string s(raw);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) {
      toml::table t;
      t.insert_or_assign("v", d);
      return t;
    }
  }
  if (!parsed)
    ov.error(std::string("expected ") + expected_name(*old) + ", got string '" + std::string(raw) + "'");
  if (!coerce_scalar(*parsed, *old))
    ov.error(std::string("expected ") + expected_name(*old) + ", got " + describe(*parsed->get("v")));
  return std::move(*parsed);
}

}  // namespace

void Recipe::apply_overrides(const std::vector<std::string>& assignments) {
  for (const auto& a : assignments) apply_override(a);
}

void Recipe::apply_override(std::string_view assignment) {
  State& st = *state_;
  Override ov{st, "--set " + std::string(assignment)};
  std::string_view text = trim(assignment);
  bool add = !text.empty() && text.front() == '+';
  if (add) text.remove_prefix(1);
  size_t eq = text.find('=');
  if (eq == std::string_view::npos) ov.error("expected key=value");
  std::string_view key = trim(text.substr(0, eq));
  std::string_view raw = trim(text.substr(eq + 1));
  if (key.empty()) ov.error("expected key=value (the key is empty)");
  if (raw.empty()) ov.error("missing value (write \"\" for an empty string)");

  std::vector<Segment> segs;
  try {
    segs = parse_path(full_key(key));
  } catch (const Error& e) {
    ov.error(e.what());
  }
  std::string canon = join_path(segs, segs.size());
  auto unknown = [&]() {
    std::vector<std::string> paths;
    collect_paths(st.root, "", paths);
    std::string hint = did_you_mean(canon, paths);
    if (hint.empty()) hint = " (to add it, write --set +" + std::string(key) + "=...)";
    ov.error("unknown key '" + canon + "'" + hint);
  };

  // Walk to the parent, creating tables on the way when adding.
  toml::node* parent = &st.root;
  for (size_t i = 0; i + 1 < segs.size(); i++) {
    std::string here = join_path(segs, i + 1);
    if (segs[i].is_index()) {
      toml::array* a = parent->as_array();
      if (!a) ov.error("'" + join_path(segs, i) + "' is " + describe(*parent) + ", not an array");
      if (static_cast<size_t>(segs[i].index) >= a->size())
        ov.error("'" + here + "': index out of range (the array has " + std::to_string(a->size()) +
                 " elements)");
      parent = a->get(static_cast<size_t>(segs[i].index));
    } else {
      toml::table* t = parent->as_table();
      if (!t) ov.error("'" + join_path(segs, i) + "' is " + describe(*parent) + ", not a table");
      toml::node* next = t->get(segs[i].key);
      if (!next) {
        if (!add) unknown();
        next = t->insert_or_assign(segs[i].key, toml::table{}).first->second.as_table();
      }
      parent = next;
    }
  }

  const Segment& last = segs.back();
  toml::node* old = nullptr;
  if (last.is_index()) {
    toml::array* a = parent->as_array();
    if (!a) ov.error("'" + join_path(segs, segs.size() - 1) + "' is " + describe(*parent) + ", not an array");
    if (static_cast<size_t>(last.index) >= a->size())
      ov.error("'" + canon + "': index out of range (the array has " + std::to_string(a->size()) +
               " elements)");
    old = a->get(static_cast<size_t>(last.index));
  } else {
    toml::table* t = parent->as_table();
    if (!t) ov.error("'" + join_path(segs, segs.size() - 1) + "' is " + describe(*parent) + ", not a table");
    old = t->get(last.key);
    if (!old && !add) unknown();
  }
  if (old && (old->is_table() || is_array_of_tables(*old))) {
    std::vector<std::string> paths;
    collect_paths(*old, canon, paths);
    // The first leaf under it makes a concrete example.
    std::string example = canon + ".<key>";
    for (size_t i = 1; i < paths.size(); i++) {
      if (i + 1 == paths.size() || paths[i + 1].rfind(paths[i], 0) != 0) {
        example = paths[i];
        break;
      }
    }
    ov.error("'" + canon + "' is a table; set one of its keys instead, e.g. '" + example + "=...'");
  }

  toml::table holder = convert(ov, raw, old);
  toml::node& value = *holder.get("v");
  if (last.is_index()) {
    toml::array& a = *parent->as_array();
    a.replace(a.cbegin() + static_cast<ptrdiff_t>(last.index), std::move(value));
  } else {
    parent->as_table()->insert_or_assign(last.key, std::move(value));
  }
  st.overrides.emplace_back(assignment);
}

}  // namespace lmf
