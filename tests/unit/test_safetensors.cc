// Tests for io/safetensors: exact round trips for every dtype (random bytes, views, metadata),
// byte-for-byte agreement with the Python writer's layout, zero-copy reads, and one-line errors
// naming the file and the issue for each kind of malformed file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "lmforge/io/atomic_file.h"
#include "lmforge/io/safetensors.h"
#include "test_util.h"

namespace lmf {
namespace {

namespace fs = std::filesystem;

// A tensor whose every byte is random and non-zero (so a dropped or shifted byte shows).
Tensor random_bytes(const Shape& shape, DType dt, uint64_t seed) {
  Tensor t = Tensor::empty(shape, dt);
  std::mt19937_64 rng(seed);
  auto* p = static_cast<uint8_t*>(t.data_ptr());
  for (size_t i = 0; i < t.nbytes(); i++) p[i] = uint8_t(1 + rng() % 255);
  return t;
}

// The bytes of t in row-major order.
std::string bytes_of(const Tensor& t) {
  Tensor h = t.to(Device::cpu()).contiguous();
  return std::string(static_cast<const char*>(h.data_ptr()), h.nbytes());
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; i++) s[i] = char((n >> (8 * i)) & 0xff);
  return s;
}

// A raw file: length field + header + data, written to the scratch dir.
std::string write_raw(const std::string& dir, const std::string& name, const std::string& header,
                      const std::string& data) {
  std::string p = dir + "/" + name;
  write_file_atomic(p, le64(header.size()) + header + data);
  return p;
}

// Opening `path` throws lmf::Error whose message starts with the path and contains each of
// `parts`.
void expect_open_error(const std::string& path, const std::vector<std::string>& parts) {
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << path << ": expected lmf::Error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    for (const auto& part : parts) EXPECT_NE(m.find(part), std::string::npos) << m;
  }
}

constexpr DType kAllDTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                DType::i32, DType::i64, DType::u8};

TEST(Safetensors, RoundTripEveryDtypeExactBytes) {
  std::string dir = test::scratch_dir("st_roundtrip");
  NamedTensors in;
  uint64_t seed = 1;
  for (DType dt : kAllDTypes) {
    std::string base = std::string(dtype_name(dt));
    in.push_back({base + ".matrix", random_bytes({3, 5}, dt, seed++)});
    in.push_back({base + ".vec", random_bytes({7}, dt, seed++)});
    in.push_back({base + ".scalar", random_bytes({}, dt, seed++)});
    in.push_back({base + ".empty", Tensor::empty({0, 4}, dt)});
  }
  std::string p = dir + "/all.safetensors";
  save_safetensors(p, in);
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.size(), in.size());
  EXPECT_TRUE(f.metadata().empty());
  std::vector<std::string> names = f.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (const auto& [name, t] : in) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(f.contains(name));
    EXPECT_EQ(f.info(name).dtype, t.dtype());
    EXPECT_EQ(f.info(name).shape, t.shape());
    Tensor r = f.tensor(name);
    EXPECT_EQ(r.dtype(), t.dtype());
    EXPECT_EQ(r.shape(), t.shape());
    EXPECT_TRUE(r.device().is_cpu());
    EXPECT_EQ(bytes_of(r), bytes_of(t));
  }
  // In-memory serialization produces the same bytes as the file.
  EXPECT_EQ(serialize_safetensors(in), read_file(p));
}

TEST(Safetensors, MetadataRoundTripAndEmptyMetadataOmitted) {
  std::string dir = test::scratch_dir("st_metadata");
  NamedTensors in = {{"w", random_bytes({2, 2}, DType::bf16, 9)}};
  SafetensorsMetadata meta = {{"format", "pt"}, {"note", "h\xc3\xa9llo \"q\" \\ tab\t"}, {"", ""}};
  save_safetensors(dir + "/m.safetensors", in, meta);
  save_safetensors(dir + "/n.safetensors", in);
  SafetensorsFile m = SafetensorsFile::open(dir + "/m.safetensors");
  SafetensorsFile n = SafetensorsFile::open(dir + "/n.safetensors");
  EXPECT_EQ(m.metadata(), meta);
  EXPECT_TRUE(n.metadata().empty());
  EXPECT_EQ(bytes_of(m.tensor("w")), bytes_of(in[0].second));
  EXPECT_EQ(bytes_of(n.tensor("w")), bytes_of(in[0].second));
  EXPECT_EQ(read_file(dir + "/n.safetensors").find("__metadata__"), std::string::npos);
}

TEST(Safetensors, NonContiguousViewsAreWrittenRowMajor) {
  std::string dir = test::scratch_dir("st_views");
  Tensor base = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor big = random_bytes({4, 6, 5}, DType::i64, 21);
  NamedTensors in = {
      {"t", base.transpose(0, 1)},                                 // [3, 2]
      {"col", base.slice(1, 1, 3)},                                // [2, 2] with stride 3
      {"big", big.transpose(0, 2).slice(1, 2, 5)},                 // [5, 3, 4]
      {"sel", random_bytes({3, 4}, DType::f16, 22).select(1, 2)},  // [3], stride 4
  };
  for (const auto& nt : in) ASSERT_FALSE(nt.second.is_contiguous()) << nt.first;
  save_safetensors(dir + "/v.safetensors", in);
  SafetensorsFile f = SafetensorsFile::open(dir + "/v.safetensors");
  EXPECT_EQ(f.tensor("t").to_float_vector(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(f.tensor("col").to_float_vector(), (std::vector<float>{1, 2, 4, 5}));
  for (const auto& [name, t] : in) {
    EXPECT_EQ(f.info(name).shape, t.shape()) << name;
    EXPECT_EQ(bytes_of(f.tensor(name)), bytes_of(t.clone())) << name;
  }
}

// Expected bytes worked out by hand from the format and the Python writer's rules (compact
// JSON, data order = dtype alignment then name, header padded with spaces to 8).
TEST(Safetensors, LayoutMatchesPythonWriter) {
  // One F32 [1,2,3] tensor: the header is exactly 64 bytes, so no padding.
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {1, 2, 3});
  std::string h = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(h.size(), 64u);
  EXPECT_EQ(serialize_safetensors({{"attn.0", t}}), le64(64) + h + bytes_of(t));
  // One character shorter name: 63 bytes + 1 space of padding.
  std::string h2 = R"({"attn0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(h2.size(), 63u);
  EXPECT_EQ(serialize_safetensors({{"attn0", t}}), le64(64) + h2 + " " + bytes_of(t));
  // No tensors: "{}" + 6 spaces; metadata only: 35 bytes + 5 spaces.
  EXPECT_EQ(serialize_safetensors({}), le64(8) + "{}      ");
  EXPECT_EQ(serialize_safetensors({}, {{"framework", "pt"}}),
            le64(40) + R"({"__metadata__":{"framework":"pt"}})" + "     ");
}

TEST(Safetensors, DataSortedByAlignmentThenNameAndZeroCopyAligned) {
  std::string dir = test::scratch_dir("st_order");
  NamedTensors in = {{"a", random_bytes({3}, DType::u8, 1)},
                     {"b", random_bytes({2}, DType::f32, 2)},
                     {"c", random_bytes({1}, DType::i64, 3)},
                     {"d", random_bytes({1}, DType::bf16, 4)},
                     {"e", random_bytes({1}, DType::f32, 5)}};
  save_safetensors(dir + "/o.safetensors", in);
  SafetensorsFile f = SafetensorsFile::open(dir + "/o.safetensors");
  // i64 c [0,8), f32 b [8,16), f32 e [16,20), bf16 d [20,22), u8 a [22,25).
  const std::pair<const char*, std::pair<uint64_t, uint64_t>> want[] = {
      {"c", {0, 8}}, {"b", {8, 16}}, {"e", {16, 20}}, {"d", {20, 22}}, {"a", {22, 25}}};
  for (const auto& [name, off] : want) {
    EXPECT_EQ(f.info(name).begin, off.first) << name;
    EXPECT_EQ(f.info(name).end, off.second) << name;
    Tensor r = f.tensor(name);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r.data_ptr()) % dtype_size(r.dtype()), 0u) << name;
    // Zero-copy: two reads alias the same mapped bytes.
    EXPECT_EQ(f.tensor(name).data_ptr(), r.data_ptr()) << name;
  }
}

TEST(Safetensors, TensorsOutliveTheFileAndWritesStayPrivate) {
  std::string dir = test::scratch_dir("st_lifetime");
  std::string p = dir + "/l.safetensors";
  Tensor w = random_bytes({4, 4}, DType::f32, 77);
  save_safetensors(p, {{"w", w}});
  std::string on_disk = read_file(p);
  Tensor r;
  {
    SafetensorsFile f = SafetensorsFile::open(p);
    r = f.tensor("w");
  }
  EXPECT_EQ(bytes_of(r), bytes_of(w));  // the mapping is kept alive by the tensor
  r.data<float>()[0] = 123.0f;          // copy-on-write: allowed, never reaches the file
  EXPECT_EQ(r.data<float>()[0], 123.0f);
  EXPECT_EQ(read_file(p), on_disk);
  EXPECT_EQ(bytes_of(SafetensorsFile::open(p).tensor("w")), bytes_of(w));
}

TEST(Safetensors, ReadsFilesFromOtherWriters) {
  std::string dir = test::scratch_dir("st_foreign");
  // Unpadded 63-byte header puts the F32 data at an odd address: read by copy, values intact.
  // Also: keys in any order, BOOL, tensors listed out of offset order, whitespace in JSON.
  float vals[2] = {1.5f, -2.25f};
  std::string data(reinterpret_cast<const char*>(vals), 8);
  data += std::string("\x01\x00\x01", 3);
  std::string h = R"({"m":{"shape":[3],"data_offsets":[8,11],"dtype":"BOOL"}, )"
                  R"("x":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}})";
  ASSERT_NE(h.size() % 4, 0u);
  std::string p = write_raw(dir, "foreign.safetensors", h, data);
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.tensor("x").to_float_vector(), (std::vector<float>{1.5f, -2.25f}));
  EXPECT_EQ(f.info("m").dtype, DType::u8);
  EXPECT_EQ(f.info("m").file_dtype, "BOOL");
  EXPECT_EQ(f.tensor("m").to_float_vector(), (std::vector<float>{1, 0, 1}));
  // Metadata null is "no metadata", like the Rust reader.
  std::string q = write_raw(dir, "nullmeta.safetensors", R"({"__metadata__":null})", "");
  EXPECT_TRUE(SafetensorsFile::open(q).metadata().empty());
}

TEST(Safetensors, FromBytesParsesInMemory) {
  Tensor t = random_bytes({2, 3}, DType::i32, 5);
  SafetensorsFile f = SafetensorsFile::from_bytes(serialize_safetensors({{"t", t}}), "buf");
  EXPECT_EQ(f.path(), "buf");
  EXPECT_EQ(bytes_of(f.tensor("t")), bytes_of(t));
  try {
    f.tensor("missing");
    FAIL() << "expected lmf::Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "buf: no tensor named 'missing'");
  }
}

// ---- malformed files -------------------------------------------------------------------------
class SafetensorsBadInput : public ::testing::Test {
 protected:
  void SetUp() override { dir = test::scratch_dir("st_bad"); }
  std::string raw(const std::string& name, const std::string& header, const std::string& data) {
    return write_raw(dir, name, header, data);
  }
  std::string dir;
};

TEST_F(SafetensorsBadInput, MissingFile) {
  expect_open_error(dir + "/absent.safetensors", {"cannot open: No such file or directory"});
}

TEST_F(SafetensorsBadInput, TruncatedFile) {
  std::string good = serialize_safetensors({{"w", random_bytes({16}, DType::f32, 3)}});
  std::string p = dir + "/trunc.safetensors";
  write_file_atomic(p, good.substr(0, good.size() - 5));
  expect_open_error(p, {"tensor 'w'", "beyond the 59-byte data buffer", "truncated"});
  write_file_atomic(p, good.substr(0, 5));
  expect_open_error(p, {"shorter than the 8-byte header length"});
  write_file_atomic(p, good.substr(0, 20));  // cut inside the header
  expect_open_error(p, {"header length", "exceeds", "truncated"});
}

TEST_F(SafetensorsBadInput, HeaderLengthBeyondFile) {
  std::string p = dir + "/len.safetensors";
  write_file_atomic(p, le64(1000) + "{}");
  expect_open_error(p, {"header length 1000 exceeds the 2 bytes after the length field"});
}

TEST_F(SafetensorsBadInput, OversizedHeader) {
  std::string p = dir + "/huge.safetensors";
  write_file_atomic(p, le64(200'000'000) + "{}");
  expect_open_error(p, {"header length 200000000 exceeds the 100000000-byte limit"});
  write_file_atomic(p, le64(~uint64_t(0)) + "{}");
  expect_open_error(p, {"exceeds the 100000000-byte limit"});
}

TEST_F(SafetensorsBadInput, InvalidJson) {
  expect_open_error(raw("j1.safetensors", R"({"w":{"dtype":"F32",)", ""), {"invalid JSON header"});
  expect_open_error(raw("j2.safetensors", "{\"w\xff\":{}}", ""), {"invalid JSON header"});
  expect_open_error(raw("j3.safetensors", "[1,2]", ""), {"header does not start with '{'"});
  expect_open_error(raw("j4.safetensors", "", ""), {"header does not start with '{'"});
}

TEST_F(SafetensorsBadInput, NonObjectEntriesAndFields) {
  expect_open_error(raw("e1.safetensors", R"({"w":3})", ""),
                    {"tensor 'w'", "expected an object, got number"});
  expect_open_error(raw("e2.safetensors", R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "abcd"),
                    {"tensor 'w'", "missing string field 'dtype'"});
  expect_open_error(raw("e3.safetensors", R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "abcd"),
                    {"tensor 'w'", "missing array field 'shape'"});
  expect_open_error(raw("e4.safetensors", R"({"w":{"dtype":"F32","shape":[1]}})", "abcd"),
                    {"tensor 'w'", "'data_offsets' must be [begin, end]"});
  expect_open_error(raw("e5.safetensors", R"({"__metadata__":{"a":1}})", ""),
                    {"__metadata__", "value of 'a' must be a string"});
  expect_open_error(raw("e6.safetensors", R"({"__metadata__":[]})", ""),
                    {"__metadata__: expected an object"});
  expect_open_error(
      raw("e7.safetensors",
          R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
          R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
          "ab"),
      {"names 'w' twice"});
}

TEST_F(SafetensorsBadInput, WrongDtypeString) {
  expect_open_error(
      raw("d1.safetensors", R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", "abcd"),
      {"tensor 'w'", "unknown dtype 'F33'"});
  expect_open_error(
      raw("d2.safetensors", R"({"q":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}})", "abcd"),
      {"tensor 'q'", "unsupported dtype 'I8'"});
  expect_open_error(raw("d3.safetensors",
                        R"({"f8":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", "abcd"),
                    {"tensor 'f8'", "unsupported dtype 'F8_E4M3'"});
}

TEST_F(SafetensorsBadInput, BadShapes) {
  expect_open_error(
      raw("s1.safetensors", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"),
      {"tensor 'w'", "shape [-1] must hold non-negative integers"});
  expect_open_error(
      raw("s2.safetensors", R"({"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", "abcd"),
      {"tensor 'w'", "non-negative integers"});
  expect_open_error(
      raw("s3.safetensors",
          R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})", "abcd"),
      {"tensor 'w'", "overflows the element count"});
  expect_open_error(
      raw("s4.safetensors",
          R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}})", "abcd"),
      {"tensor 'w'", "overflows the byte size"});
}

TEST_F(SafetensorsBadInput, OffsetsOutOfRange) {
  expect_open_error(
      raw("o1.safetensors", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "abcd"),
      {"tensor 'w'", "data_offsets [0, 8] beyond the 4-byte data buffer"});
  expect_open_error(
      raw("o2.safetensors", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "abcd"),
      {"tensor 'w'", "end before begin"});
  expect_open_error(
      raw("o3.safetensors", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})", "abcd"),
      {"tensor 'w'", "'data_offsets' must be [begin, end]"});
}

TEST_F(SafetensorsBadInput, OffsetsInconsistentWithShape) {
  expect_open_error(raw("i1.safetensors",
                        R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "abcdefgh"),
                    {"tensor 'w'", "span 8 bytes but F32 [3] needs 12"});
  expect_open_error(
      raw("i2.safetensors",
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
          "abcdefgh"),
      {"overlap tensor 'a'"});
  expect_open_error(
      raw("i3.safetensors", R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", "abcd"),
      {"tensor 'a'", "hole of 2 bytes"});
  expect_open_error(
      raw("i4.safetensors", R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "abcd"),
      {"2 bytes after the last tensor's data"});
}

TEST(SafetensorsWrite, BadArgumentsThrowAndKeepOldFile) {
  std::string dir = test::scratch_dir("st_write_bad");
  std::string p = dir + "/keep.safetensors";
  Tensor a = random_bytes({2}, DType::f32, 1);
  save_safetensors(p, {{"a", a}});
  std::string before = read_file(p);
  auto expect_fail = [&](const NamedTensors& in, const std::string& part) {
    try {
      save_safetensors(p, in);
      ADD_FAILURE() << "expected lmf::Error for " << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p + ": "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_fail({{"a", a}, {"a", a}}, "tensor 'a' given twice");
  expect_fail({{"__metadata__", a}}, "reserved");
  expect_fail({{"u", Tensor()}}, "tensor 'u' is undefined");
  expect_fail({{"bad\xff", a}}, "not valid UTF-8");
  EXPECT_EQ(read_file(p), before);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"keep.safetensors"});
}

}  // namespace
}  // namespace lmf
