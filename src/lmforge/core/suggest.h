// "Did you mean ...?" for user-typed names (recipe keys, subcommands, choices).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace lmf {

// Levenshtein distance (insert, delete, substitute: cost 1 each) between two byte strings.
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, or "" when none is close enough to be a plausible typo:
// distance <= max(1, |word| / 3). Ties go to the earlier candidate.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" when closest_match finds one, else "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace lmf
