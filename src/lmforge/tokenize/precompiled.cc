#include "lmforge/core/error.h"
#include "lmforge/tokenize/normalizer.h"

namespace lmf::tok {
std::unique_ptr<Normalizer> precompiled_from_json(const Json&, const std::string& path) {
  fail(path_key(path, "type"), ": 'Precompiled' is not supported yet");
}
}  // namespace lmf::tok
