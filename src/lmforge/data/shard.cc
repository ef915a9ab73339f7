#include "lmforge/data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "lmforge/core/error.h"

namespace lmf {

namespace {
constexpr char kMagic[8] = {'L', 'M', 'F', 'S', 'H', 'R', 'D', '1'};
constexpr uint64_t kVersion = 1;
constexpr size_t kHeaderBytes = 8 + 7 * 8;

void write_all(int fd, const void* p, size_t n, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail(path, ": write failed: ", std::strerror(errno));
    }
    c += w;
    n -= size_t(w);
  }
}

std::string tmp_name(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

void fsync_and_close(int fd, const std::string& path) {
  if (::fsync(fd) != 0) fail(path, ": fsync failed: ", std::strerror(errno));
  ::close(fd);
}

void* map_file(const std::string& path, size_t* size) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, ": cannot stat: ", std::strerror(errno));
  }
  *size = size_t(st.st_size);
  if (*size == 0) {
    ::close(fd);
    return nullptr;
  }
  void* p = ::mmap(nullptr, *size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) fail(path, ": mmap failed: ", std::strerror(errno));
  return p;
}
}  // namespace

ShardWriter::ShardWriter(const std::string& prefix, uint64_t vocab_size, uint64_t fingerprint, uint64_t eos_id)
    : prefix_(prefix) {
  header_.vocab_size = vocab_size;
  header_.tokenizer_fingerprint = fingerprint;
  header_.eos_id = eos_id;
  if (vocab_size == 0 || vocab_size > (1ull << 32)) fail(prefix, ": vocab_size ", vocab_size, " out of range");
  tmp_bin_ = tmp_name(prefix + ".bin");
  fd_ = ::open(tmp_bin_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd_ < 0) fail(prefix, ".bin: cannot create: ", std::strerror(errno));
}

ShardWriter::~ShardWriter() {
  if (!finished_) {
    if (fd_ >= 0) ::close(fd_);
    std::remove(tmp_bin_.c_str());
  }
}

void ShardWriter::add_document(const std::vector<int32_t>& ids) {
  std::vector<uint32_t> u(ids.size());
  for (size_t i = 0; i < ids.size(); i++) {
    if (ids[i] < 0 || uint64_t(ids[i]) >= header_.vocab_size)
      fail(prefix_, ": token id ", ids[i], " out of range for vocabulary ", header_.vocab_size);
    u[i] = uint32_t(ids[i]);
  }
  write_all(fd_, u.data(), u.size() * 4, tmp_bin_);
  num_tokens_ += u.size();
  offsets_.push_back(num_tokens_);
}

void ShardWriter::finish() {
  if (finished_) return;
  fsync_and_close(fd_, tmp_bin_);
  fd_ = -1;
  header_.num_docs = offsets_.size() - 1;
  header_.num_tokens = num_tokens_;
  const std::string idx = prefix_ + ".idx", tmp_idx = tmp_name(idx);
  int fd = ::open(tmp_idx.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail(idx, ": cannot create: ", std::strerror(errno));
  uint64_t fields[7] = {kVersion, header_.num_docs, header_.num_tokens, header_.vocab_size,
                        header_.tokenizer_fingerprint, header_.eos_id, 0};
  write_all(fd, kMagic, 8, idx);
  write_all(fd, fields, 6 * 8, idx);
  write_all(fd, &fields[6], 8, idx);  // reserved
  write_all(fd, offsets_.data(), offsets_.size() * 8, idx);
  fsync_and_close(fd, tmp_idx);
  // .bin first: a reader never sees a new .idx pointing into an old .bin.
  if (std::rename(tmp_bin_.c_str(), (prefix_ + ".bin").c_str()) != 0)
    fail(prefix_, ".bin: rename failed: ", std::strerror(errno));
  if (std::rename(tmp_idx.c_str(), idx.c_str()) != 0) fail(idx, ": rename failed: ", std::strerror(errno));
  finished_ = true;
}

std::shared_ptr<Shard> Shard::open(const std::string& prefix) {
  auto s = std::shared_ptr<Shard>(new Shard());
  s->prefix_ = prefix;
  const std::string idx = prefix + ".idx", bin = prefix + ".bin";
  s->idx_map_ = map_file(idx, &s->idx_size_);
  if (s->idx_size_ < kHeaderBytes || std::memcmp(s->idx_map_, kMagic, 8) != 0)
    fail(idx, ": not an lmforge shard index (bad magic or truncated header)");
  const uint64_t* f = reinterpret_cast<const uint64_t*>(static_cast<const char*>(s->idx_map_) + 8);
  if (f[0] != kVersion) fail(idx, ": unsupported shard version ", f[0], " (expected ", kVersion, ")");
  s->header_ = ShardHeader{f[1], f[2], f[3], f[4], f[5]};
  const uint64_t nd = s->header_.num_docs;
  if (nd > (s->idx_size_ - kHeaderBytes) / 8 || s->idx_size_ != kHeaderBytes + (nd + 1) * 8)
    fail(idx, ": truncated or oversized document table (", nd, " documents declared)");
  s->offsets_ = f + 7;
  if (s->offsets_[0] != 0 || s->offsets_[nd] != s->header_.num_tokens)
    fail(idx, ": document offsets do not span 0..", s->header_.num_tokens);
  for (uint64_t d = 0; d < nd; d++)
    if (s->offsets_[d + 1] < s->offsets_[d]) fail(idx, ": document offsets decrease at document ", d);
  s->bin_map_ = map_file(bin, &s->bin_size_);
  // Compared without num_tokens * 4, which wraps for a forged count (2^62 would "match" 0 bytes).
  if (s->bin_size_ % 4 != 0 || s->bin_size_ / 4 != s->header_.num_tokens)
    fail(bin, ": size ", s->bin_size_, " bytes does not match ", s->header_.num_tokens, " tokens in ", idx);
  s->tokens_ = static_cast<const uint32_t*>(s->bin_map_);
  return s;
}

Shard::~Shard() {
  if (bin_map_) ::munmap(bin_map_, bin_size_);
  if (idx_map_) ::munmap(idx_map_, idx_size_);
}

}  // namespace lmf
