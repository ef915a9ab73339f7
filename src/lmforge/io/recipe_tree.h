// Internals shared by recipe.cc and recipe_override.cc: the toml++ tree behind a Recipe and
// the key-path helpers. Not part of the public API (includes toml++).
#pragma once

// toml++ 3.3's parser asserts on some malformed input it then rejects cleanly, e.g. the table
// header "[}x]" (parse_key; found by tests/fuzz/fuzz_recipe.cc): an abort in debug builds and
// __builtin_assume(false), i.e. undefined behaviour, under clang with NDEBUG. A bad recipe must
// give an error line, so those parser "assert or assume" checks are turned off; the parser's own
// error path still reports the input. (preprocessor.h is #pragma once; toml.h #undefs the macro
// at its end.)
#include <toml++/impl/preprocessor.h>
#undef TOML_ASSERT_ASSUME
#define TOML_ASSERT_ASSUME(expr) static_assert(true)
#include <toml++/toml.h>

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/io/recipe.h"

namespace lmf {

namespace recipe_detail {

struct State {
  std::string source;
  toml::table root;
  std::vector<std::string> overrides;
  std::set<std::string> used;       // canonical paths read (or marked): they and their subtrees
  std::set<std::string> requested;  // canonical paths the program asked for, present or not
};

// One step of a key path: a table key, or an array index when `index >= 0`.
struct Segment {
  std::string key;
  int64_t index = -1;
  bool is_index() const { return index >= 0; }
};

// "a.b[2].c" -> {a, b, [2], c}. Throws lmf::Error "bad key '...': <why>" on empty parts,
// unbalanced brackets or non-numeric indices. "" parses to no segments.
std::vector<Segment> parse_path(std::string_view path);
// The inverse: canonical text of a path ("a.b[2].c").
std::string join_path(const std::vector<Segment>& segs, size_t count);
// Appends a child key or index to a canonical path.
std::string child_path(const std::string& parent, const std::string& key);
std::string index_path(const std::string& parent, size_t index);

// A short description of a node for error messages: "string 'abc'", "integer 3", "float 0.5",
// "boolean true", "array [1, 2]", "table", "date 2024-01-02". Long text is cut with "...".
std::string describe(const toml::node& n);

// True for a non-empty array whose elements are all tables ([[phases]]).
bool is_array_of_tables(const toml::node& n);

// Every path in the tree under `node` (tables, arrays, values), depth first: candidates for
// "did you mean".
void collect_paths(const toml::node& node, const std::string& path, std::vector<std::string>& out);

// The tree as TOML text (floats in shortest round-trip form, sections after plain values) and as
// pretty-printed JSON (keys in TOML order). recipe_format.cc.
std::string format_toml(const toml::table& t);
std::string format_json(const toml::table& t);

}  // namespace recipe_detail
}  // namespace lmf
