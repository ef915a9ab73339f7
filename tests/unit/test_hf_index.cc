// Tests for io/hf_index: sharded checkpoint round trips (transformers layout), the shard packing
// rule, cleanup of stale files from earlier saves, and errors for broken indexes.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "lmforge/io/atomic_file.h"
#include "lmforge/io/hf_index.h"
#include "test_util.h"

namespace lmf {
namespace {

namespace fs = std::filesystem;

Tensor random_bytes(const Shape& shape, DType dt, uint64_t seed) {
  Tensor t = Tensor::empty(shape, dt);
  std::mt19937_64 rng(seed);
  auto* p = static_cast<uint8_t*>(t.data_ptr());
  for (size_t i = 0; i < t.nbytes(); i++) p[i] = uint8_t(1 + rng() % 255);
  return t;
}

std::string bytes_of(const Tensor& t) {
  Tensor h = t.contiguous();
  return std::string(static_cast<const char*>(h.data_ptr()), h.nbytes());
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected lmf::Error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    for (const auto& part : parts) EXPECT_NE(m.find(part), std::string::npos) << m;
  }
}

// Sizes 400, 240, 400, 1200, 80, 8 bytes with a 700-byte limit. Packing (in order):
//   emb 400 -> shard A (400); l0 240 -> A (640); l1 400 -> overflow, A closed, B (400);
//   big 1200 > limit -> own shard C, B stays open; norm 80 -> B (480); step 8 -> B (488).
// Shards in creation order: A, C, B -> files 00001 (emb, l0), 00002 (big), 00003 (l1, norm,
// step).
NamedTensors sample_tensors() {
  return {{"model.emb.weight", random_bytes({10, 10}, DType::f32, 1)},
          {"model.layers.0.w", random_bytes({6, 20}, DType::bf16, 2)},
          {"model.layers.1.w", random_bytes({50}, DType::f64, 3)},
          {"model.big", random_bytes({300}, DType::i32, 4)},
          {"model.norm", random_bytes({20}, DType::f32, 5)},
          {"step", random_bytes({1}, DType::i64, 6)}};
}

TEST(HfIndex, ShardedRoundTrip) {
  std::string dir = test::scratch_dir("hf_sharded");
  NamedTensors in = sample_tensors();
  SavedCheckpoint saved = save_checkpoint_sharded(dir, in, 700, {{"format", "pt"}});
  std::vector<std::string> want_files = {"model-00001-of-00003.safetensors",
                                         "model-00002-of-00003.safetensors",
                                         "model-00003-of-00003.safetensors"};
  EXPECT_EQ(saved.files, want_files);
  EXPECT_EQ(saved.index_file, "model.safetensors.index.json");
  EXPECT_EQ(saved.total_bytes, 400u + 240 + 400 + 1200 + 80 + 8);

  auto index = nlohmann::json::parse(read_file(dir + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), 2328u);
  EXPECT_EQ(index["weight_map"]["model.emb.weight"], want_files[0]);
  EXPECT_EQ(index["weight_map"]["model.layers.0.w"], want_files[0]);
  EXPECT_EQ(index["weight_map"]["model.big"], want_files[1]);
  EXPECT_EQ(index["weight_map"]["model.layers.1.w"], want_files[2]);
  EXPECT_EQ(index["weight_map"]["model.norm"], want_files[2]);
  EXPECT_EQ(index["weight_map"]["step"], want_files[2]);
  EXPECT_EQ(index["weight_map"].size(), 6u);

  CheckpointReader r = CheckpointReader::open(dir);
  EXPECT_TRUE(r.sharded());
  EXPECT_EQ(r.size(), in.size());
  EXPECT_EQ(r.metadata(), (SafetensorsMetadata{{"format", "pt"}}));
  EXPECT_EQ(r.files().size(), 3u);
  for (const auto& [name, t] : in) {
    SCOPED_TRACE(name);
    EXPECT_EQ(r.info(name).dtype, t.dtype());
    EXPECT_EQ(r.info(name).shape, t.shape());
    EXPECT_EQ(bytes_of(r.tensor(name)), bytes_of(t));
    EXPECT_EQ(fs::path(r.file_of(name)).filename().string(),
              index["weight_map"][name].get<std::string>());
  }
  // The same checkpoint through the index path directly.
  CheckpointReader r2 = CheckpointReader::open(dir + "/model.safetensors.index.json");
  EXPECT_EQ(r2.names(), r.names());
  EXPECT_EQ(bytes_of(r2.tensor("model.big")), bytes_of(in[3].second));
  expect_error([&] { r.tensor("nope"); }, {dir, "no tensor named 'nope'"});
}

TEST(HfIndex, SingleFileWhenItFitsAndFilePath) {
  std::string dir = test::scratch_dir("hf_single");
  NamedTensors in = sample_tensors();
  SavedCheckpoint saved = save_checkpoint_sharded(dir, in, 1'000'000);
  EXPECT_EQ(saved.files, std::vector<std::string>{"model.safetensors"});
  EXPECT_TRUE(saved.index_file.empty());
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"model.safetensors"});
  for (const std::string& p : {dir, dir + "/model.safetensors"}) {
    CheckpointReader r = CheckpointReader::open(p);
    EXPECT_FALSE(r.sharded());
    EXPECT_EQ(r.size(), in.size());
    for (const auto& [name, t] : in) EXPECT_EQ(bytes_of(r.tensor(name)), bytes_of(t)) << name;
  }
}

TEST(HfIndex, ResavingRemovesStaleFilesOfTheOtherLayout) {
  std::string dir = test::scratch_dir("hf_resave");
  NamedTensors in = sample_tensors();
  save_checkpoint_sharded(dir, in, 1'000'000);  // single
  // An unrelated file must survive, and so must files of another base name.
  write_file_atomic(dir + "/config.json", "{}");
  save_checkpoint_sharded(dir, {{"o", random_bytes({4}, DType::f32, 9)}}, 100, {},
                          "optimizer.safetensors");
  NamedTensors in2 = sample_tensors();
  in2[0].second = random_bytes({10, 10}, DType::f32, 100);  // new weights
  save_checkpoint_sharded(dir, in2, 700);  // sharded over single: model.safetensors must go
  EXPECT_EQ(list_dir(dir),
            (std::vector<std::string>{"config.json", "model-00001-of-00003.safetensors",
                                      "model-00002-of-00003.safetensors",
                                      "model-00003-of-00003.safetensors",
                                      "model.safetensors.index.json", "optimizer.safetensors"}));
  EXPECT_EQ(bytes_of(CheckpointReader::open(dir).tensor("model.emb.weight")),
            bytes_of(in2[0].second));
  // Two shards now: the old 00003 (and the old -of-00003 names) are stale.
  save_checkpoint_sharded(dir, in2, 1300);
  EXPECT_EQ(list_dir(dir),
            (std::vector<std::string>{"config.json", "model-00001-of-00002.safetensors",
                                      "model-00002-of-00002.safetensors",
                                      "model.safetensors.index.json", "optimizer.safetensors"}));
  // Back to one file: index and shards go.
  save_checkpoint_sharded(dir, in, 1'000'000);
  EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"config.json", "model.safetensors",
                                                     "optimizer.safetensors"}));
  EXPECT_EQ(bytes_of(CheckpointReader::open(dir).tensor("model.emb.weight")),
            bytes_of(in[0].second));
}

TEST(HfIndex, BrokenCheckpointsFailWithUsefulMessages) {
  std::string dir = test::scratch_dir("hf_broken");
  expect_error([&] { CheckpointReader::open(dir); },
               {dir, "no model.safetensors or model.safetensors.index.json"});
  expect_error([&] { CheckpointReader::open(dir + "/absent.safetensors"); },
               {dir + "/absent.safetensors: cannot open: No such file or directory"});

  save_checkpoint_sharded(dir, sample_tensors(), 700);
  const std::string ip = dir + "/model.safetensors.index.json";
  std::string good_index = read_file(ip);

  fs::remove(dir + "/model-00002-of-00003.safetensors");
  expect_error([&] { CheckpointReader::open(dir); },
               {ip, "shard 'model-00002-of-00003.safetensors'", "No such file or directory"});

  auto with_map = [&](nlohmann::json wm) {
    auto j = nlohmann::json::parse(good_index);
    j["weight_map"] = std::move(wm);
    write_file_atomic(ip, j.dump());
  };
  with_map({{"ghost", "model-00001-of-00003.safetensors"}});
  expect_error(
      [&] { CheckpointReader::open(dir); },
      {ip, "maps 'ghost' to 'model-00001-of-00003.safetensors', which has no such tensor"});
  with_map({{"x", "../model-00001-of-00003.safetensors"}});
  expect_error([&] { CheckpointReader::open(dir); }, {ip, "weight_map['x']", "must be relative"});
  with_map({{"x", 3}});
  expect_error([&] { CheckpointReader::open(dir); },
               {ip, "weight_map['x']: expected a shard file name"});
  write_file_atomic(ip, "{\"metadata\": {}}");
  expect_error([&] { CheckpointReader::open(dir); }, {ip, "missing object 'weight_map'"});
  write_file_atomic(ip, "{\"weight_map\": ");
  expect_error([&] { CheckpointReader::open(dir); }, {ip, "invalid JSON"});
}

TEST(HfIndex, WriterRejectsBadArgumentsBeforeWriting) {
  std::string dir = test::scratch_dir("hf_write_bad");
  Tensor a = random_bytes({100}, DType::f32, 1);
  expect_error([&] { save_checkpoint_sharded(dir, {{"a", a}}, 0); }, {"max_shard_bytes"});
  expect_error(
      [&] {
        save_checkpoint_sharded(dir, {{"a", a}}, 10, {}, "model.bin");
      },
      {"must be a file name ending in .safetensors"});
  expect_error(
      [&] {
        save_checkpoint_sharded(dir, {{"a", a}, {"b", a}, {"a", a}}, 400);
      },
      {"tensor 'a' given twice"});
  EXPECT_TRUE(list_dir(dir).empty());
}

}  // namespace
}  // namespace lmf
