#include "lmforge/tokenize/json_fields.h"

#include "lmforge/core/error.h"

namespace lmf::tok {

std::string path_key(const std::string& path, const char* key) {
  return path.empty() ? std::string(key) : path + "." + key;
}

std::string path_index(const std::string& path, size_t index) { return path + "[" + std::to_string(index) + "]"; }

std::string json_kind(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a float";
    default:
      return "an unsupported value";
  }
}

void require_object(const Json& v, const std::string& path) {
  if (!v.is_object()) fail(path, ": expected an object, got ", json_kind(v));
}

const Json& required(const Json& obj, const char* key, const std::string& path, bool allow_null) {
  require_object(obj, path);
  auto it = obj.find(key);
  if (it == obj.end()) fail(path_key(path, key), ": missing");
  if (it->is_null() && !allow_null) fail(path_key(path, key), ": expected a value, got null");
  return *it;
}

const Json* optional(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string as_string(const Json& v, const std::string& path) {
  if (!v.is_string()) fail(path, ": expected a string, got ", json_kind(v));
  return v.get<std::string>();
}

bool as_bool(const Json& v, const std::string& path) {
  if (!v.is_boolean()) fail(path, ": expected a boolean, got ", json_kind(v));
  return v.get<bool>();
}

int32_t as_id(const Json& v, const std::string& path) {
  if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
    uint64_t x = v.get<uint64_t>();
    if (x <= static_cast<uint64_t>(INT32_MAX)) return static_cast<int32_t>(x);
    fail(path, ": id ", x, " does not fit in int32");
  }
  fail(path, ": expected a non-negative integer id, got ", v.is_number() ? v.dump() : json_kind(v));
}

std::string get_string(const Json& obj, const char* key, const std::string& path) {
  return as_string(required(obj, key, path), path_key(path, key));
}

std::string get_string_or(const Json& obj, const char* key, const std::string& path, const std::string& dflt) {
  const Json* v = optional(obj, key);
  return v ? as_string(*v, path_key(path, key)) : dflt;
}

bool get_bool_or(const Json& obj, const char* key, const std::string& path, bool dflt) {
  const Json* v = optional(obj, key);
  return v ? as_bool(*v, path_key(path, key)) : dflt;
}

Regex pattern_from_json(const Json& j, const std::string& path) {
  require_object(j, path);
  if (const Json* s = optional(j, "String")) return Regex::literal(as_string(*s, path_key(path, "String")), path);
  if (const Json* r = optional(j, "Regex")) return Regex::compile(as_string(*r, path_key(path, "Regex")), path);
  fail(path, ": expected {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace lmf::tok
