// Crash-safe file writes for everything a run leaves behind (DESIGN.md §7): a reader sees
// either the old file or the complete new one, never a torn write.
#pragma once

#include <string>
#include <string_view>

namespace lmf {

// Writes `content` to `path` atomically: a temp file in the same folder (so rename stays on one
// file system), fsync, rename over `path`, then fsync of the folder so the rename itself is
// durable. The folder must exist. Throws lmf::Error "<path>: cannot write: <reason>" on any
// failure, leaving `path` untouched and no temp file behind.
void write_file_atomic(const std::string& path, std::string_view content);

}  // namespace lmf
