// Tests for io/atomic_file: read_file errors, atomic replacement, abandoned writers leaving the
// old file intact with no temporary left behind, and MappedFile.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "lmforge/io/atomic_file.h"
#include "test_util.h"

namespace lmf {
namespace {

namespace fs = std::filesystem;

// Every file in `dir` (names only), to prove no "*.tmp.*" file is left behind.
std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Bytes with NULs and high bytes, to prove binary safety.
std::string binary_blob(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (size_t i = 0; i < n; i++) {
    x = x * 1664525u + 1013904223u;  // LCG (Numerical Recipes)
    s[i] = char(x >> 24);
  }
  s[0] = '\0';
  return s;
}

TEST(AtomicFile, ReadMissingFileNamesPathAndReason) {
  std::string dir = test::scratch_dir("atomic_missing");
  std::string p = dir + "/nope.bin";
  try {
    read_file(p);
    FAIL() << "expected lmf::Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), p + ": cannot open: No such file or directory");
  }
}

TEST(AtomicFile, ReadDirectoryFails) {
  std::string dir = test::scratch_dir("atomic_readdir");
  try {
    read_file(dir);
    FAIL() << "expected lmf::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + ": cannot open: is a directory"), std::string::npos)
        << e.what();
  }
}

TEST(AtomicFile, WriteThenReadBinaryRoundTrip) {
  std::string dir = test::scratch_dir("atomic_roundtrip");
  std::string p = dir + "/blob.bin";
  std::string data = binary_blob(200'003, 7);
  write_file_atomic(p, data);
  EXPECT_EQ(read_file(p), data);
  // Replacing with shorter content truncates (a fresh file, not an overwrite in place).
  write_file_atomic(p, "short");
  EXPECT_EQ(read_file(p), "short");
  write_file_atomic(p, "");
  EXPECT_EQ(read_file(p), "");
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"blob.bin"});
}

TEST(AtomicFile, AbandonedWriterLeavesOldFileAndNoTemp) {
  std::string dir = test::scratch_dir("atomic_abandon");
  std::string p = dir + "/ckpt.bin";
  write_file_atomic(p, "old content");
  std::string temp;
  {
    AtomicFileWriter w(p);
    temp = w.temp_path();
    EXPECT_EQ(temp.rfind(p + ".tmp." + std::to_string(::getpid()) + ".", 0), 0u) << temp;
    w.write(binary_blob(100'000, 3));
    EXPECT_TRUE(fs::exists(temp));
    EXPECT_EQ(w.bytes_written(), 100'000u);
    EXPECT_EQ(read_file(p), "old content");  // nothing visible before commit
  }                                          // destroyed without commit()
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(read_file(p), "old content");
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"ckpt.bin"});
}

TEST(AtomicFile, ExceptionDuringWriteLeavesOldFile) {
  std::string dir = test::scratch_dir("atomic_throw");
  std::string p = dir + "/state.json";
  write_file_atomic(p, "{\"step\": 1}");
  auto save = [&] {
    AtomicFileWriter w(p);
    w.write("{\"step\": ");
    throw std::runtime_error("simulated crash while serializing");
  };
  EXPECT_THROW(save(), std::runtime_error);
  EXPECT_EQ(read_file(p), "{\"step\": 1}");
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"state.json"});
}

TEST(AtomicFile, CommitReplacesAndMoveKeepsOwnership) {
  std::string dir = test::scratch_dir("atomic_commit");
  std::string p = dir + "/a.txt";
  write_file_atomic(p, "v1");
  AtomicFileWriter a(p);
  a.write("v2-");
  AtomicFileWriter b(std::move(a));  // the moved-to writer owns the temporary now
  b.write("done");
  b.commit();
  EXPECT_TRUE(b.committed());
  EXPECT_EQ(read_file(p), "v2-done");
  EXPECT_THROW(b.commit(), Error);
  EXPECT_THROW(b.write("x"), Error);
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"a.txt"});
}

TEST(AtomicFile, ExplicitAbandonThenWriteThrows) {
  std::string dir = test::scratch_dir("atomic_explicit");
  std::string p = dir + "/x";
  AtomicFileWriter w(p);
  w.write("abc");
  w.abandon();
  EXPECT_THROW(w.write("d"), Error);
  EXPECT_THROW(w.commit(), Error);
  EXPECT_FALSE(fs::exists(p));
  EXPECT_TRUE(list_dir(dir).empty());
}

TEST(AtomicFile, MissingDirectoryFailsWithPath) {
  std::string dir = test::scratch_dir("atomic_nodir");
  std::string p = dir + "/missing/sub/file.bin";
  try {
    write_file_atomic(p, "x");
    FAIL() << "expected lmf::Error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(p + ": cannot create temporary file: No such file or directory"),
              std::string::npos)
        << m;
  }
}

TEST(MappedFile, MapsContentAndOutlivesItsPath) {
  std::string dir = test::scratch_dir("mapped");
  std::string p = dir + "/m.bin";
  std::string data = binary_blob(70'001, 11);
  write_file_atomic(p, data);
  auto m = MappedFile::open(p);
  ASSERT_EQ(m->size(), data.size());
  EXPECT_EQ(std::memcmp(m->data(), data.data(), data.size()), 0);
  EXPECT_EQ(m->path(), p);
  // Atomic replacement gives a new inode: the existing mapping still sees the old bytes.
  write_file_atomic(p, "replaced");
  EXPECT_EQ(std::memcmp(m->data(), data.data(), data.size()), 0);
  EXPECT_THROW(m->mutable_data(), Error);  // read-only mapping
}

TEST(MappedFile, CopyOnWriteNeverReachesTheFile) {
  std::string dir = test::scratch_dir("mapped_cow");
  std::string p = dir + "/m.bin";
  write_file_atomic(p, "abcdef");
  {
    auto m = MappedFile::open(p, MappedFile::Mode::copy_on_write);
    m->mutable_data()[0] = 'Z';
    EXPECT_EQ(m->data()[0], 'Z');
  }
  EXPECT_EQ(read_file(p), "abcdef");
}

TEST(MappedFile, EmptyAndMissingFiles) {
  std::string dir = test::scratch_dir("mapped_empty");
  std::string p = dir + "/empty";
  write_file_atomic(p, "");
  auto m = MappedFile::open(p);
  EXPECT_EQ(m->size(), 0u);
  EXPECT_EQ(m->data(), nullptr);
  try {
    MappedFile::open(dir + "/absent");
    FAIL() << "expected lmf::Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/absent: cannot open: No such file or directory");
  }
}

}  // namespace
}  // namespace lmf
