#include "lmforge/io/recipe.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "lmforge/core/suggest.h"
#include "lmforge/io/atomic_file.h"
#include "lmforge/io/recipe_tree.h"

namespace lmf {

using namespace recipe_detail;

// ---- key paths ---------------------------------------------------------------------------

namespace recipe_detail {

std::vector<Segment> parse_path(std::string_view path) {
  std::vector<Segment> segs;
  auto bad = [&](const char* why) { fail("bad key '", path, "': ", why); };
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string_view::npos) bad("missing ']'");
      std::string_view digits = path.substr(i + 1, close - i - 1);
      if (digits.empty() || digits.size() > 9 ||
          !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
        bad("an array index must be a non-negative integer");
      if (segs.empty()) bad("an index must follow a key");
      segs.push_back({"", std::stoll(std::string(digits))});
      i = close + 1;
      if (i < path.size() && path[i] != '.' && path[i] != '[') bad("expected '.' or '[' after ']'");
      if (i < path.size() && path[i] == '.') {
        i++;
        if (i == path.size()) bad("empty part");
      }
      continue;
    }
    size_t end = path.find_first_of(".[]", i);
    if (end == std::string_view::npos) end = path.size();
    if (end == i) bad("empty part");
    if (end < path.size() && path[end] == ']') bad("unexpected ']'");
    segs.push_back({std::string(path.substr(i, end - i)), -1});
    i = end;
    if (i < path.size() && path[i] == '.') {
      i++;
      if (i == path.size()) bad("empty part");
    }
  }
  return segs;
}

std::string join_path(const std::vector<Segment>& segs, size_t count) {
  std::string out;
  for (size_t i = 0; i < count && i < segs.size(); i++)
    out = segs[i].is_index() ? index_path(out, static_cast<size_t>(segs[i].index))
                             : child_path(out, segs[i].key);
  return out;
}

std::string child_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string index_path(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::string describe(const toml::node& n) {
  auto cut = [](std::string s, size_t max) { return s.size() > max ? s.substr(0, max) + "..." : s; };
  std::ostringstream os;
  switch (n.type()) {
    case toml::node_type::string:
      return "string '" + cut(std::string(*n.as_string()), 40) + "'";
    case toml::node_type::integer:
      return "integer " + std::to_string(n.as_integer()->get());
    case toml::node_type::floating_point:
      os << "float " << n.as_floating_point()->get();
      return os.str();
    case toml::node_type::boolean:
      return n.as_boolean()->get() ? "boolean true" : "boolean false";
    case toml::node_type::array:
      os << *n.as_array();
      return "array " + cut(os.str(), 40);
    case toml::node_type::table:
      return "table";
    case toml::node_type::date:
      os << "date " << *n.as_date();
      return os.str();
    case toml::node_type::time:
      os << "time " << *n.as_time();
      return os.str();
    case toml::node_type::date_time:
      os << "date-time " << *n.as_date_time();
      return os.str();
    default:
      return "nothing";
  }
}

bool is_array_of_tables(const toml::node& n) {
  const toml::array* a = n.as_array();
  return a && !a->empty() && a->is_array_of_tables();
}

void collect_paths(const toml::node& node, const std::string& path, std::vector<std::string>& out) {
  if (!path.empty()) out.push_back(path);
  if (const toml::table* t = node.as_table()) {
    for (auto&& [k, v] : *t) collect_paths(v, child_path(path, std::string(k.str())), out);
  } else if (is_array_of_tables(node)) {
    const toml::array& a = *node.as_array();
    for (size_t i = 0; i < a.size(); i++) collect_paths(a[i], index_path(path, i), out);
  }
}

}  // namespace recipe_detail

// ---- loading ----------------------------------------------------------------------------

namespace {

// Walks `segs` from `root`. Returns nullptr when a step is absent (missing key, index past the
// end); throws when a step goes through something that is not a table/array.
const toml::node* walk(const State& st, const std::vector<Segment>& segs) {
  const toml::node* node = &st.root;
  for (size_t i = 0; i < segs.size(); i++) {
    if (segs[i].is_index()) {
      const toml::array* a = node->as_array();
      if (!a) fail(st.source, ": ", join_path(segs, i), ": expected an array, got ", describe(*node));
      if (static_cast<size_t>(segs[i].index) >= a->size()) return nullptr;
      node = a->get(static_cast<size_t>(segs[i].index));
    } else {
      const toml::table* t = node->as_table();
      if (!t) fail(st.source, ": ", join_path(segs, i), ": expected a table, got ", describe(*node));
      node = t->get(segs[i].key);
      if (!node) return nullptr;
    }
  }
  return node;
}

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, ": cannot read: is a folder, expected a TOML file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot read: ", std::strerror(errno));
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) fail(path, ": cannot read: I/O error");
  return os.str();
}

}  // namespace

Recipe::Recipe() : state_(std::make_shared<State>()) { state_->source = "<empty>"; }

Recipe::Recipe(std::shared_ptr<State> state, std::string prefix)
    : state_(std::move(state)), prefix_(std::move(prefix)) {}

Recipe Recipe::load(const std::string& path) { return parse(read_text_file(path), path); }

Recipe Recipe::parse(std::string_view text, const std::string& source_name) {
  Recipe r;
  r.state_->source = source_name;
  try {
    r.state_->root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    std::string msg(e.description());
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    fail(source_name, ":", b.line, ":", b.column, ": ", msg);
  }
  return r;
}

const std::string& Recipe::source() const { return state_->source; }
const std::vector<std::string>& Recipe::overrides() const { return state_->overrides; }

std::string Recipe::full_key(std::string_view key) const {
  if (prefix_.empty()) return std::string(key);
  if (key.empty()) return prefix_;
  return key.front() == '[' ? prefix_ + std::string(key) : prefix_ + "." + std::string(key);
}

void Recipe::fail_at(std::string_view key, std::string_view message) const {
  fail(state_->source, ": ", full_key(key), ": ", message);
}

// ---- typed reads --------------------------------------------------------------------------

namespace {

// Finds the node for a read, recording the request; nullptr when absent.
const toml::node* lookup_for_read(State& st, const std::string& full) {
  auto segs = parse_path(full);
  std::string canon = join_path(segs, segs.size());
  st.requested.insert(canon);
  const toml::node* n = walk(st, segs);
  if (n) st.used.insert(canon);
  return n;
}

[[noreturn]] void type_error(const State& st, const std::string& key, const char* expected,
                             const toml::node& got) {
  fail(st.source, ": ", key, ": expected ", expected, ", got ", describe(got));
}

template <class Elem, class Convert>
std::vector<Elem> read_array(const State& st, const std::string& key, const toml::node& n,
                             const char* expected, Convert convert) {
  const toml::array* a = n.as_array();
  if (!a) type_error(st, key, expected, n);
  std::vector<Elem> out;
  out.reserve(a->size());
  for (size_t i = 0; i < a->size(); i++) {
    std::optional<Elem> v = convert(*a->get(i));
    if (!v)
      fail(st.source, ": ", key, ": expected ", expected, ", got ", describe(*a->get(i)), " at [", i, "]");
    out.push_back(*v);
  }
  return out;
}

std::optional<double> as_number(const toml::node& n) {
  if (auto f = n.as_floating_point()) return f->get();
  if (auto i = n.as_integer()) return static_cast<double>(i->get());
  return std::nullopt;
}

}  // namespace

void Recipe::read(std::string_view key, std::optional<bool>& out) const {
  std::string k = full_key(key);
  const toml::node* n = lookup_for_read(*state_, k);
  if (!n) return;
  if (!n->is_boolean()) type_error(*state_, k, "a boolean (true or false)", *n);
  out = n->as_boolean()->get();
}

void Recipe::read(std::string_view key, std::optional<int64_t>& out) const {
  std::string k = full_key(key);
  const toml::node* n = lookup_for_read(*state_, k);
  if (!n) return;
  if (!n->is_integer()) type_error(*state_, k, "an integer", *n);
  out = n->as_integer()->get();
}

void Recipe::read(std::string_view key, std::optional<int>& out) const {
  std::optional<int64_t> v;
  read(key, v);
  if (!v) return;
  if (*v < std::numeric_limits<int>::min() || *v > std::numeric_limits<int>::max())
    fail_at(key, "expected a 32-bit integer, got integer " + std::to_string(*v));
  out = static_cast<int>(*v);
}

void Recipe::read(std::string_view key, std::optional<double>& out) const {
  std::string k = full_key(key);
  const toml::node* n = lookup_for_read(*state_, k);
  if (!n) return;
  out = as_number(*n);
  if (!out) type_error(*state_, k, "a number", *n);
}

void Recipe::read(std::string_view key, std::optional<std::string>& out) const {
  std::string k = full_key(key);
  const toml::node* n = lookup_for_read(*state_, k);
  if (!n) return;
  if (!n->is_string()) type_error(*state_, k, "a string", *n);
  out = std::string(n->as_string()->get());
}

void Recipe::read(std::string_view key, std::optional<std::vector<std::string>>& out) const {
  std::string k = full_key(key);
  const toml::node* n = lookup_for_read(*state_, k);
  if (!n) return;
  out = read_array<std::string>(*state_, k, *n, "an array of strings", [](const toml::node& e) {
    return e.is_string() ? std::optional<std::string>(e.as_string()->get()) : std::nullopt;
  });
}

void Recipe::read(std::string_view key, std::optional<std::vector<double>>& out) const {
  std::string k = full_key(key);
  const toml::node* n = lookup_for_read(*state_, k);
  if (!n) return;
  out = read_array<double>(*state_, k, *n, "an array of numbers", as_number);
}

void Recipe::read(std::string_view key, std::optional<std::vector<int64_t>>& out) const {
  std::string k = full_key(key);
  const toml::node* n = lookup_for_read(*state_, k);
  if (!n) return;
  out = read_array<int64_t>(*state_, k, *n, "an array of integers", [](const toml::node& e) {
    return e.is_integer() ? std::optional<int64_t>(e.as_integer()->get()) : std::nullopt;
  });
}

namespace {
std::string join_choices(std::initializer_list<std::string_view> choices) {
  std::string s;
  for (auto c : choices) {
    if (!s.empty()) s += '|';
    s += c;
  }
  return s;
}
}  // namespace

std::string Recipe::require_choice(std::string_view key,
                                   std::initializer_list<std::string_view> choices) const {
  std::string v = require<std::string>(key);
  if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
    std::vector<std::string> names(choices.begin(), choices.end());
    fail_at(key, "expected one of " + join_choices(choices) + ", got '" + v + "'" + did_you_mean(v, names));
  }
  return v;
}

std::string Recipe::get_choice(std::string_view key, std::string_view fallback,
                               std::initializer_list<std::string_view> choices) const {
  if (!find<std::string>(key)) return std::string(fallback);
  return require_choice(key, choices);
}

bool Recipe::has(std::string_view key) const {
  auto segs = parse_path(full_key(key));
  state_->requested.insert(join_path(segs, segs.size()));
  return walk(*state_, segs) != nullptr;
}

// ---- views ----------------------------------------------------------------------------------

Recipe Recipe::table(std::string_view key) const {
  std::string k = full_key(key);
  auto segs = parse_path(k);
  std::string canon = join_path(segs, segs.size());
  state_->requested.insert(canon);
  const toml::node* n = walk(*state_, segs);
  if (!n) fail(state_->source, ": ", canon, ": missing required table");
  if (!n->is_table()) type_error(*state_, canon, "a table", *n);
  return Recipe(state_, canon);
}

std::vector<Recipe> Recipe::tables(std::string_view key) const {
  std::string k = full_key(key);
  auto segs = parse_path(k);
  std::string canon = join_path(segs, segs.size());
  state_->requested.insert(canon);
  const toml::node* n = walk(*state_, segs);
  std::vector<Recipe> out;
  if (!n) return out;
  const toml::array* a = n->as_array();
  if (!a || !(a->empty() || a->is_array_of_tables()))
    type_error(*state_, canon, "an array of tables ([[...]])", *n);
  for (size_t i = 0; i < a->size(); i++) out.push_back(Recipe(state_, index_path(canon, i)));
  return out;
}

std::vector<std::string> Recipe::keys(std::string_view key) const {
  std::string k = full_key(key);
  auto segs = parse_path(k);
  const toml::node* n = walk(*state_, segs);
  std::vector<std::string> out;
  if (!n) return out;
  const toml::table* t = n->as_table();
  if (!t) type_error(*state_, join_path(segs, segs.size()), "a table", *n);
  for (auto&& [name, v] : *t) {
    (void)v;
    out.emplace_back(name.str());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- usage tracking ----------------------------------------------------------------------

void Recipe::mark_used(std::string_view key) const {
  auto segs = parse_path(full_key(key));
  state_->used.insert(join_path(segs, segs.size()));
}

namespace {
void collect_unused(const State& st, const toml::node& node, const std::string& path, bool covered,
                    std::vector<std::string>& out) {
  covered = covered || st.used.count(path) > 0;
  if (const toml::table* t = node.as_table(); t && !t->empty()) {
    for (auto&& [k, v] : *t) collect_unused(st, v, child_path(path, std::string(k.str())), covered, out);
  } else if (is_array_of_tables(node)) {
    const toml::array& a = *node.as_array();
    for (size_t i = 0; i < a.size(); i++) collect_unused(st, a[i], index_path(path, i), covered, out);
  } else if (!covered && !path.empty()) {
    out.push_back(path);
  }
}
}  // namespace

std::vector<std::string> Recipe::unused_keys() const {
  std::vector<std::string> out;
  collect_unused(*state_, state_->root, "", false, out);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Recipe::unused_key_messages() const {
  // Suggest among keys the program asked for but the recipe lacks: the usual typo pattern.
  std::vector<std::string> wanted;
  for (const auto& r : state_->requested) {
    auto segs = parse_path(r);
    if (!walk(*state_, segs)) wanted.push_back(r);
  }
  std::vector<std::string> out;
  for (const auto& k : unused_keys())
    out.push_back(state_->source + ": unused key '" + k + "'" + did_you_mean(k, wanted));
  return out;
}

void Recipe::reject_unused() const {
  auto msgs = unused_key_messages();
  if (msgs.empty()) return;
  std::string all = msgs.front();
  for (size_t i = 1; i < msgs.size(); i++) all += "; " + msgs[i].substr(state_->source.size() + 2);
  fail(all);
}

// ---- output -----------------------------------------------------------------------------------

namespace {
const toml::table& view_table(const State& st, const std::string& prefix) {
  const toml::node* n = walk(st, parse_path(prefix));
  LMF_CHECK(n && n->is_table(), "recipe view '", prefix, "' no longer names a table");
  return *n->as_table();
}
}  // namespace

std::string Recipe::to_toml() const { return format_toml(view_table(*state_, prefix_)); }

std::string Recipe::to_json() const { return format_json(view_table(*state_, prefix_)); }

std::string Recipe::resolved_text() const {
  std::ostringstream os;
  os << "# Resolved recipe written by lmforge " << LMF_VERSION << "\n";
  os << "# source: " << state_->source << "\n";
  for (std::string o : state_->overrides) {
    std::replace(o.begin(), o.end(), '\n', ' ');  // keep each override a single comment line
    os << "# --set " << o << "\n";
  }
  os << "\n" << format_toml(state_->root);
  return os.str();
}

void Recipe::write_resolved(const std::string& path) const { write_file_atomic(path, resolved_text()); }

}  // namespace lmf
