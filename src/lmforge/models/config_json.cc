#include "lmforge/models/config_json.h"

#include <fstream>
#include <sstream>

#include "lmforge/core/error.h"

namespace lmf::config_json {

using nlohmann::json;

namespace {
std::string got(const json& v) {
  std::string s = v.dump();
  return std::string(v.type_name()) + " " + (s.size() > 40 ? s.substr(0, 40) + "..." : s);
}
}  // namespace

int64_t get_int(const json& j, const std::string& src, const char* key, int64_t def, bool required) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) fail(src, ": ", key, ": missing (expected an integer)");
    return def;
  }
  const json& v = j[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && v.get<double>() == double(int64_t(v.get<double>()))) return int64_t(v.get<double>());
  fail(src, ": ", key, ": expected an integer, got ", got(v));
}

double get_double(const json& j, const std::string& src, const char* key, double def, bool required) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) fail(src, ": ", key, ": missing (expected a number)");
    return def;
  }
  const json& v = j[key];
  if (!v.is_number()) fail(src, ": ", key, ": expected a number, got ", got(v));
  return v.get<double>();
}

bool get_bool(const json& j, const std::string& src, const char* key, bool def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_boolean()) fail(src, ": ", key, ": expected true or false, got ", got(j[key]));
  return j[key].get<bool>();
}

std::string get_string(const json& j, const std::string& src, const char* key, const std::string& def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_string()) fail(src, ": ", key, ": expected a string, got ", got(j[key]));
  return j[key].get<std::string>();
}

void require_positive(const std::string& src, const char* key, int64_t v) {
  if (v <= 0) fail(src, ": ", key, ": expected a positive integer, got ", v);
}

json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
}

}  // namespace lmf::config_json
