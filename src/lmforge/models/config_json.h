// Typed, validated reads of HF config.json fields. Every error names the file and the key.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lmf::config_json {

int64_t get_int(const nlohmann::json& j, const std::string& src, const char* key, int64_t def, bool required = false);
double get_double(const nlohmann::json& j, const std::string& src, const char* key, double def, bool required = false);
bool get_bool(const nlohmann::json& j, const std::string& src, const char* key, bool def);
std::string get_string(const nlohmann::json& j, const std::string& src, const char* key, const std::string& def);
void require_positive(const std::string& src, const char* key, int64_t v);
// Reads and parses a JSON file; errors name the file.
nlohmann::json read_json_file(const std::string& path);

}  // namespace lmf::config_json
