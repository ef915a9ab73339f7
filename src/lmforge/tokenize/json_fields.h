// Small typed accessors for tokenizer.json objects. Every error is an lmf::Error whose message
// names the JSON path ("model.merges[3]: expected a string, got number"); the caller adds the
// file name in front.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "lmforge/tokenize/regex.h"

namespace lmf::tok {

using Json = nlohmann::json;

// "a.b" / "a[3]" path building.
std::string path_key(const std::string& path, const char* key);
std::string path_index(const std::string& path, size_t index);
// "a string", "a number", ... for messages.
std::string json_kind(const Json& v);

// Throws "<path>: expected an object" unless v is an object.
void require_object(const Json& v, const std::string& path);
// The member `key`, which must exist (may be null only if allow_null).
const Json& required(const Json& obj, const char* key, const std::string& path, bool allow_null = false);
// The member `key` or nullptr when it is missing or null.
const Json* optional(const Json& obj, const char* key);

std::string as_string(const Json& v, const std::string& path);
bool as_bool(const Json& v, const std::string& path);
// A non-negative integer that fits in int32.
int32_t as_id(const Json& v, const std::string& path);

std::string get_string(const Json& obj, const char* key, const std::string& path);
std::string get_string_or(const Json& obj, const char* key, const std::string& path, const std::string& dflt);
bool get_bool_or(const Json& obj, const char* key, const std::string& path, bool dflt);

// A {"String": "..."} (literal) or {"Regex": "..."} pattern, as in Replace and Split.
Regex pattern_from_json(const Json& j, const std::string& path);

}  // namespace lmf::tok
