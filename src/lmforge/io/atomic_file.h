// Whole-file reads, crash-safe writes and read-only memory maps.
//
// Why atomic writes: a run killed mid-save (OOM, preemption, Ctrl-C) must never leave a
// half-written checkpoint where a good one used to be. Every writer here writes a temporary file
// `<path>.tmp.<pid>.<random>` in the target's directory (same filesystem, so rename is atomic),
// fsyncs it, renames it over the target and fsyncs the directory so the rename itself survives a
// power loss. Readers therefore see either the old file or the complete new one.
//
// Contract
//  - All errors are lmf::Error with one line "<path>: <what>: <strerror>", e.g.
//    "runs/x/model.safetensors: cannot open: No such file or directory".
//  - POSIX only (open/fsync/rename/mmap).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace lmf {

// Reads the whole file into a string (binary-safe). Throws lmf::Error when the file cannot be
// opened or read, or is a directory.
std::string read_file(const std::string& path);

// Replaces `path` with exactly `bytes`, atomically (see above). The parent directory must exist.
// On error the previous content of `path` (if any) is untouched and no temporary file remains.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Streaming atomic writer for files too large to build in memory (checkpoints, shards).
//
//   AtomicFileWriter w("out.safetensors");
//   w.write(header); w.write(data, n);
//   w.commit();            // only now does "out.safetensors" change
//
// If commit() is never reached (an exception, an early return), the destructor removes the
// temporary file and the target keeps its old content. Not copyable; movable.
class AtomicFileWriter {
 public:
  // Creates the temporary file next to `path`. Throws lmf::Error if it cannot be created
  // (missing directory, no permission).
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Appends bytes. Throws lmf::Error on a write error (disk full...); the writer is then
  // abandoned (later writes/commit throw) and the temporary file is removed.
  void write(const void* data, size_t nbytes);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }

  // fsync, rename over the target, fsync the directory. Throws lmf::Error on failure, in which
  // case the target is untouched and the temporary file removed. Calling it twice throws.
  void commit();
  // Removes the temporary file now; the target is untouched. No-op after commit().
  void abandon() noexcept;

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  uint64_t bytes_written() const { return bytes_written_; }
  bool committed() const { return committed_; }

 private:
  std::string path_, temp_path_;
  int fd_ = -1;
  uint64_t bytes_written_ = 0;
  bool committed_ = false;
};

// A file mapped into memory (mmap), unmapped when the last shared_ptr to it goes away. Used for
// checkpoint reads: pages are loaded on first touch, and tensors can alias the mapping (hold a
// shared_ptr<MappedFile> as their Storage keep_alive).
//
// The mapping is private: with Mode::copy_on_write the pages are writable, but writes stay in
// this process and never reach the file (so a tensor aliasing the map may be modified in place).
// With Mode::read_only a write through data() faults. Because our writers replace files by
// rename, an existing mapping keeps seeing the old content; truncating a mapped file in place
// (not something lmforge does) would make later reads fault (SIGBUS).
class MappedFile {
 public:
  enum class Mode { read_only, copy_on_write };
  // Maps the whole file. An empty file gives size() == 0 and data() == nullptr. Throws
  // lmf::Error when it cannot be opened, is a directory, or mmap fails.
  static std::shared_ptr<MappedFile> open(const std::string& path, Mode mode = Mode::read_only);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  // Writable pointer; only valid for Mode::copy_on_write (LMF_CHECK otherwise).
  uint8_t* mutable_data() const;
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  Mode mode_ = Mode::read_only;
};

}  // namespace lmf
