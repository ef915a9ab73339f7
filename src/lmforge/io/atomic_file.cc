#include "lmforge/io/atomic_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "lmforge/core/error.h"

namespace lmf {

namespace {

[[noreturn]] void fail_errno(const std::string& path, const char* what, int err) {
  fail(path, ": ", what, ": ", std::strerror(err));
}

int open_retry(const char* path, int flags, mode_t mode = 0) {
  int fd;
  do fd = ::open(path, flags, mode);
  while (fd < 0 && errno == EINTR);
  return fd;
}

// Opens `path` for reading; fails cleanly for missing files and directories.
int open_for_read(const std::string& path, struct stat* st) {
  int fd = open_retry(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_errno(path, "cannot open", errno);
  if (::fstat(fd, st) != 0) {
    int e = errno;
    ::close(fd);
    fail_errno(path, "cannot stat", e);
  }
  if (S_ISDIR(st->st_mode)) {
    ::close(fd);
    fail(path, ": cannot open: is a directory");
  }
  return fd;
}

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string random_suffix() {
  // random_device gives a per-writer token so two writers of the same path in one process
  // (threads) never collide; the pid separates processes.
  std::random_device rd;
  uint64_t r = (uint64_t(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(r));
  return buf;
}

// fsync of the directory makes the rename durable (POSIX leaves it to the directory entry).
void fsync_dir(const std::string& dir, const std::string& target) {
  int dfd = open_retry(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) fail_errno(target, "cannot open parent directory for fsync", errno);
  int rc = ::fsync(dfd);
  int e = errno;
  ::close(dfd);
  // Some filesystems refuse fsync on directories (EINVAL); the rename still happened.
  if (rc != 0 && e != EINVAL && e != EROFS) fail_errno(target, "fsync of parent directory", e);
}

}  // namespace

// ---- read_file ---------------------------------------------------------------------------------
std::string read_file(const std::string& path) {
  struct stat st {};
  int fd = open_for_read(path, &st);
  std::string out;
  if (st.st_size > 0) out.reserve(size_t(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      fail_errno(path, "read error", e);
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fd);
  return out;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFileWriter w(path);
  w.write(bytes);
  w.commit();
}

// ---- AtomicFileWriter --------------------------------------------------------------------------
AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  if (path_.empty() || path_.back() == '/')
    fail("AtomicFileWriter: '", path_, "' is not a file path");
  // O_EXCL: never clobber another writer's temporary; retry with a fresh name on the rare clash.
  // Mode 0666 minus the umask, as for any newly created file.
  for (int attempt = 0; attempt < 8; attempt++) {
    temp_path_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + random_suffix();
    fd_ = open_retry(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0 || errno != EEXIST) break;
  }
  if (fd_ < 0) fail_errno(path_, "cannot create temporary file", errno);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& o) noexcept
    : path_(std::move(o.path_)),
      temp_path_(std::move(o.temp_path_)),
      fd_(o.fd_),
      bytes_written_(o.bytes_written_),
      committed_(o.committed_) {
  o.fd_ = -1;
  o.temp_path_.clear();
  o.committed_ = true;  // the moved-from writer owns nothing to clean up
}

AtomicFileWriter::~AtomicFileWriter() { abandon(); }

void AtomicFileWriter::abandon() noexcept {
  if (committed_) return;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!temp_path_.empty()) {
    ::unlink(temp_path_.c_str());
    temp_path_.clear();
  }
}

void AtomicFileWriter::write(const void* data, size_t nbytes) {
  if (committed_) fail(path_, ": write after commit");
  if (fd_ < 0) fail(path_, ": write to an abandoned writer");
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    // Linux writes at most ~2 GiB per call; loop for partial writes.
    size_t chunk = nbytes < (size_t(1) << 30) ? nbytes : (size_t(1) << 30);
    ssize_t n = ::write(fd_, p, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      abandon();
      fail_errno(path_, "write error", e);
    }
    p += n;
    nbytes -= size_t(n);
    bytes_written_ += uint64_t(n);
  }
}

void AtomicFileWriter::commit() {
  if (committed_) fail(path_, ": commit called twice");
  if (fd_ < 0) fail(path_, ": commit of an abandoned writer");
  if (::fsync(fd_) != 0) {
    int e = errno;
    abandon();
    fail_errno(path_, "fsync", e);
  }
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    int e = errno;
    abandon();
    fail_errno(path_, "close", e);
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int e = errno;
    abandon();
    fail_errno(path_, "cannot rename temporary file over target", e);
  }
  committed_ = true;
  temp_path_.clear();
  fsync_dir(parent_dir(path_), path_);
}

// ---- MappedFile --------------------------------------------------------------------------------
std::shared_ptr<MappedFile> MappedFile::open(const std::string& path, Mode mode) {
  struct stat st {};
  int fd = open_for_read(path, &st);
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->mode_ = mode;
  m->size_ = size_t(st.st_size);
  if (m->size_ > 0) {
    const bool cow = mode == Mode::copy_on_write;
    // A private writable mapping is charged against the commit limit as if every page could be
    // copied; MAP_NORESERVE skips that so a checkpoint larger than RAM + swap still maps (only
    // pages actually written need memory).
    void* p = ::mmap(nullptr, m->size_, cow ? (PROT_READ | PROT_WRITE) : PROT_READ,
                     cow ? (MAP_PRIVATE | MAP_NORESERVE) : MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      m->size_ = 0;
      fail_errno(path, "mmap", e);
    }
    m->data_ = static_cast<uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid after close
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

uint8_t* MappedFile::mutable_data() const {
  LMF_CHECK(mode_ == Mode::copy_on_write, "MappedFile ", path_, " is mapped read-only");
  return data_;
}

}  // namespace lmf
