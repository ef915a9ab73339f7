#include "lmforge/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "lmforge/core/error.h"

namespace lmf {
namespace {

[[noreturn]] void fail_write(const std::string& path, const std::string& what, int err) {
  fail(path, ": cannot write: ", what, " (", std::strerror(err), ")");
}

// write(2) may write fewer bytes than asked; loop until done, retrying EINTR.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view content) {
  static std::atomic<unsigned> counter{0};
  std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  // Unique per process and call, so concurrent writers (ranks, threads) never share a temp file.
  // (Built with append: GCC 12 warns falsely (-Wrestrict) on a chain of operator+ here.)
  std::string name = ".";
  name.append(target.filename().string()).append(".tmp.").append(std::to_string(::getpid()));
  name.append(".").append(std::to_string(counter++));
  std::string tmp = (dir / name).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_write(path, "cannot create temp file " + tmp, errno);
  if (!write_all(fd, content) || ::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail_write(path, "writing " + tmp, err);
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail_write(path, "closing " + tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail_write(path, "renaming " + tmp, err);
  }
  // Durability of the rename needs the directory entry flushed too; failure here is not fatal
  // for correctness of the content, but we report it like any other write error.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int rc = ::fsync(dfd);
    int err = errno;
    ::close(dfd);
    if (rc != 0 && err != EINVAL) fail_write(path, "syncing folder " + dir.string(), err);
  }
}

}  // namespace lmf
