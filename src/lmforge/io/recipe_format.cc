// Writing a recipe tree back out as TOML and JSON. Own TOML writer because toml++ prints floats
// with max_digits10 (3e-4 becomes 0.00029999999999999997): a resolved recipe is read by humans,
// so floats are written in their shortest round-trip form (std::to_chars) instead.
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/io/recipe_tree.h"

namespace lmf::recipe_detail {

namespace {

std::string format_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, res.ptr);
  // "3e-04" -> "3e-4": drop the exponent's leading zeros (both are valid TOML; this reads better).
  if (size_t e = s.find('e'); e != std::string::npos) {
    size_t digits = e + 1 + (e + 1 < s.size() && (s[e + 1] == '-' || s[e + 1] == '+'));
    while (digits + 1 < s.size() && s[digits] == '0') s.erase(digits, 1);
  }
  // TOML needs a '.' or an exponent to read the value back as a float.
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string format_key(std::string_view k) {
  bool bare = !k.empty();
  for (char c : k)
    bare = bare && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-');
  return bare ? std::string(k) : quote(k);
}

std::string inline_value(const toml::node& n);

std::string inline_table(const toml::table& t) {
  std::string out = "{";
  bool first = true;
  for (auto&& [k, v] : t) {
    out += first ? " " : ", ";
    first = false;
    out += format_key(k.str()) + " = " + inline_value(v);
  }
  return out + (first ? "}" : " }");
}

std::string inline_value(const toml::node& n) {
  std::ostringstream os;
  switch (n.type()) {
    case toml::node_type::string:
      return quote(n.as_string()->get());
    case toml::node_type::integer:
      return std::to_string(n.as_integer()->get());
    case toml::node_type::floating_point:
      return format_float(n.as_floating_point()->get());
    case toml::node_type::boolean:
      return n.as_boolean()->get() ? "true" : "false";
    case toml::node_type::date:
      os << *n.as_date();
      return os.str();
    case toml::node_type::time:
      os << *n.as_time();
      return os.str();
    case toml::node_type::date_time:
      os << *n.as_date_time();
      return os.str();
    case toml::node_type::table:
      return inline_table(*n.as_table());
    case toml::node_type::array: {
      std::string out = "[";
      const toml::array& a = *n.as_array();
      for (size_t i = 0; i < a.size(); i++) out += (i ? ", " : "") + inline_value(a[i]);
      return out + "]";
    }
    default:
      return "\"\"";
  }
}

// Emits `t` under the header `path` (root when empty): its plain values first, then its
// sub-tables and arrays of tables as [path.key] / [[path.key]] sections.
void emit_table(const toml::table& t, const std::string& path, bool array_elem, std::string& out) {
  bool has_plain = false;
  for (auto&& [k, v] : t) has_plain = has_plain || !(v.is_table() || is_array_of_tables(v));
  if (!path.empty() && (has_plain || t.empty() || array_elem)) {
    if (!out.empty()) out += "\n";
    out += array_elem ? "[[" + path + "]]\n" : "[" + path + "]\n";
  }
  for (auto&& [k, v] : t)
    if (!(v.is_table() || is_array_of_tables(v))) out += format_key(k.str()) + " = " + inline_value(v) + "\n";
  for (auto&& [k, v] : t) {
    std::string sub = path.empty() ? format_key(k.str()) : path + "." + format_key(k.str());
    if (const toml::table* st = v.as_table()) {
      emit_table(*st, sub, false, out);
    } else if (is_array_of_tables(v)) {
      for (const toml::node& e : *v.as_array()) emit_table(*e.as_table(), sub, true, out);
    }
  }
}

}  // namespace

std::string format_toml(const toml::table& t) {
  std::string out;
  emit_table(t, "", false, out);
  return out;
}

nlohmann::ordered_json to_json_value(const toml::node& n) {
  std::ostringstream os;
  switch (n.type()) {
    case toml::node_type::string:
      return n.as_string()->get();
    case toml::node_type::integer:
      return n.as_integer()->get();
    case toml::node_type::floating_point:
      return n.as_floating_point()->get();
    case toml::node_type::boolean:
      return n.as_boolean()->get();
    case toml::node_type::date:
      os << *n.as_date();
      return os.str();
    case toml::node_type::time:
      os << *n.as_time();
      return os.str();
    case toml::node_type::date_time:
      os << *n.as_date_time();
      return os.str();
    case toml::node_type::table: {
      nlohmann::ordered_json j = nlohmann::ordered_json::object();
      for (auto&& [k, v] : *n.as_table()) j[std::string(k.str())] = to_json_value(v);
      return j;
    }
    case toml::node_type::array: {
      nlohmann::ordered_json j = nlohmann::ordered_json::array();
      for (const toml::node& e : *n.as_array()) j.push_back(to_json_value(e));
      return j;
    }
    default:
      return nullptr;
  }
}

std::string format_json(const toml::table& t) { return to_json_value(t).dump(2) + "\n"; }

}  // namespace lmf::recipe_detail
