#include "lmforge/models/config_json.h"

#include <cmath>
#include <fstream>
#include <limits>
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
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    fail(src, ": ", key, ": ", v.get<uint64_t>(), " is out of range for a 64-bit integer");
  if (v.is_number_integer()) return v.get<int64_t>();
  // A float such as 64.0 is accepted when it is an integer; the range test comes first because
  // converting an out-of-range double to int64_t is undefined behaviour.
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d >= -0x1p63 && d < 0x1p63 && d == std::trunc(d)) return int64_t(d);
  }
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
