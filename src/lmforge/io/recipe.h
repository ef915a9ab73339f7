// Recipes: TOML run configurations (configs/*.toml) with `--set a.b=value` overrides and typed,
// validated access. Every run writes the fully resolved recipe (config.resolved.toml).
//
// Keys are dotted paths with optional array indices: "optimizer.lr", "phases[1].steps",
// "data.langs[0]". (TOML keys that themselves contain '.', '[' or ']' cannot be addressed.)
//
// Contract
//  - Errors are lmf::Error with one line naming the source and the key:
//      "configs/x.toml: optimizer.lr: expected a number, got string 'abc'"
//      "configs/x.toml:12:5: <toml++ parser message>"        (malformed TOML)
//    A bad override throws lmf::OverrideError (a usage error; the CLI exits 2):
//      "--set optimizer.lrr=1: unknown key 'optimizer.lrr' (did you mean 'optimizer.lr'?)"
//  - Typed reads (get/require/find) accept: bool, int (range-checked), int64_t, double (an
//    integer in the file is accepted and widened), std::string, and std::vector of std::string,
//    double or int64_t. No implicit conversion between strings and numbers or booleans.
//  - A Recipe is a cheap handle: copies and views (table(), tables()) share one tree and one
//    record of which keys were read. Not thread-safe; read it on one thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "lmforge/core/error.h"

namespace lmf {

// A malformed or invalid `--set` override: the user typed it, so it is a usage error.
class OverrideError : public Error {
 public:
  using Error::Error;
};

template <class T>
inline constexpr bool is_recipe_value_v =
    std::is_same_v<T, bool> || std::is_same_v<T, int> || std::is_same_v<T, int64_t> ||
    std::is_same_v<T, double> || std::is_same_v<T, std::string> ||
    std::is_same_v<T, std::vector<std::string>> || std::is_same_v<T, std::vector<double>> ||
    std::is_same_v<T, std::vector<int64_t>>;

namespace recipe_detail {
struct State;  // the toml++ tree and usage record (recipe_tree.h)
}

class Recipe {
 public:
  // An empty recipe named "<empty>" (every get() returns its fallback).
  Recipe();

  // Reads and parses a TOML file. Throws lmf::Error "<path>: cannot read: <reason>" or
  // "<path>:<line>:<col>: <message>" for malformed TOML.
  static Recipe load(const std::string& path);
  // Parses TOML text; `source_name` is used in every error message (e.g. a file path).
  static Recipe parse(std::string_view text, const std::string& source_name);

  // Applies one override "a.b.c=value". The value is parsed as a TOML value (number, bool,
  // quoted string, array, date); for a string key the raw text is taken as the string unless
  // it is quoted; for an array of strings "[a,b]" may be written without quotes.
  // The key must exist and keep its type (an integer may be given for a float key);
  // "+a.b.c=value" adds a key that does not exist yet (parent tables are created).
  // Throws lmf::OverrideError naming the override and the key.
  void apply_override(std::string_view assignment);
  void apply_overrides(const std::vector<std::string>& assignments);

  // Where this recipe came from (file path or name given to parse()).
  const std::string& source() const;
  // The overrides applied so far, in order, as typed.
  const std::vector<std::string>& overrides() const;
  // "" for the root, else the path of this view ("model", "phases[1]").
  const std::string& prefix() const { return prefix_; }

  // True when the key exists (a value or a table). Does not count as a read.
  bool has(std::string_view key) const;

  // Typed reads. get() returns `fallback` when the key is absent; require() throws
  // "<source>: <key>: missing required key"; find() returns nullopt when absent.
  // All throw "<source>: <key>: expected <type>, got <what>" on a type mismatch, and
  // "<source>: <parent>: expected a table, got ..." when a path goes through a non-table.
  template <class T>
  std::optional<T> find(std::string_view key) const {
    static_assert(is_recipe_value_v<T>, "Recipe: unsupported value type");
    std::optional<T> out;
    read(key, out);
    return out;
  }
  template <class T>
  T get(std::string_view key, const T& fallback) const {
    auto v = find<T>(key);
    return v ? std::move(*v) : fallback;
  }
  template <class T>
  T require(std::string_view key) const {
    auto v = find<T>(key);
    if (!v) fail_at(key, "missing required key");
    return std::move(*v);
  }
  // String keys restricted to a set of choices: throws "...: expected one of a|b|c, got 'x'".
  std::string require_choice(std::string_view key, std::initializer_list<std::string_view> choices) const;
  std::string get_choice(std::string_view key, std::string_view fallback,
                         std::initializer_list<std::string_view> choices) const;

  // A view of the sub-table at `key` (keys relative to it). Throws when absent or not a table.
  Recipe table(std::string_view key) const;
  // Views of each table in the array of tables at `key` (e.g. [[phases]]); empty when absent.
  // Throws when `key` is not an array of tables.
  std::vector<Recipe> tables(std::string_view key) const;
  // The direct child keys of this view (or of the table at `key`), sorted.
  std::vector<std::string> keys(std::string_view key = "") const;

  // Throws "<source>: <full key>: <message>" — for a command's own validation of a value
  // ("must be > 0") so its errors look like the recipe's.
  [[noreturn]] void fail_at(std::string_view key, std::string_view message) const;

  // Marks a key (and everything under it) as read, for subtrees consumed wholesale.
  void mark_used(std::string_view key) const;
  // Full paths of the values present in the tree that no read has touched (sorted).
  std::vector<std::string> unused_keys() const;
  // Throws lmf::Error naming every unused key, each with a "did you mean" among the keys the
  // program asked for (present or not): "configs/x.toml: unknown key 'optimizer.lrr' (did you
  // mean 'optimizer.lr'?)". Call after all reads to refuse typos.
  void reject_unused() const;
  // The same text, one entry per unused key, for warnings (empty when all were read).
  std::vector<std::string> unused_key_messages() const;

  // The resolved tree (this view's table) as TOML / as JSON text.
  std::string to_toml() const;
  std::string to_json() const;
  // to_toml() of the whole tree, preceded by comments naming the source and the overrides:
  // the content of a run's config.resolved.toml.
  std::string resolved_text() const;
  // Writes resolved_text() atomically (temp file, fsync, rename). Throws lmf::Error when it
  // cannot.
  void write_resolved(const std::string& path) const;

 private:
  using State = recipe_detail::State;
  Recipe(std::shared_ptr<State> state, std::string prefix);
  std::string full_key(std::string_view key) const;
  // One overload per supported type; each leaves `out` empty when the key is absent.
  void read(std::string_view key, std::optional<bool>& out) const;
  void read(std::string_view key, std::optional<int>& out) const;
  void read(std::string_view key, std::optional<int64_t>& out) const;
  void read(std::string_view key, std::optional<double>& out) const;
  void read(std::string_view key, std::optional<std::string>& out) const;
  void read(std::string_view key, std::optional<std::vector<std::string>>& out) const;
  void read(std::string_view key, std::optional<std::vector<double>>& out) const;
  void read(std::string_view key, std::optional<std::vector<int64_t>>& out) const;

  std::shared_ptr<State> state_;
  std::string prefix_;
};

}  // namespace lmf
