// Hugging Face checkpoints that may be split into shards: `model.safetensors`, or
// `model.safetensors.index.json` + `model-00001-of-0000N.safetensors` ... (the layout written by
// transformers' save_pretrained / huggingface_hub.split_torch_state_dict_into_shards).
//
// Index file format: {"metadata": {"total_size": <bytes>}, "weight_map": {"<tensor>": "<shard>"}}.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lmforge/io/safetensors.h"

namespace lmf {

// All tensors of a (possibly sharded) checkpoint behind one lookup. Shard headers are parsed
// and validated at open(); data is memory-mapped and paged in on use.
class CheckpointReader {
 public:
  // `dir_or_file` is one of:
  //  - a directory holding `base` (preferred, as transformers does) or `base` + ".index.json";
  //  - a path to a .safetensors file;
  //  - a path to an index .json file (shard names are resolved beside it).
  // Throws lmf::Error naming the path for: nothing found, unreadable/invalid index JSON, a
  // missing "weight_map" object or a non-string entry, a shard path that is absolute or
  // contains "..", a missing or invalid shard file, and a name mapped to a shard that lacks it.
  // Tensors present in a shard but absent from the weight_map are ignored (the index is the
  // truth, as in transformers).
  static CheckpointReader open(const std::string& dir_or_file,
                               const std::string& base = "model.safetensors");

  // The directory or file given to open().
  const std::string& path() const { return path_; }
  bool sharded() const { return sharded_; }
  // Tensor names, sorted.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  size_t size() const { return where_.size(); }
  // Throw lmf::Error "<path>: no tensor named '<name>'" when absent.
  const SafetensorsTensorInfo& info(const std::string& name) const;
  Tensor tensor(const std::string& name) const;               // see SafetensorsFile::tensor
  const std::string& file_of(const std::string& name) const;  // path of the shard holding it
  // "__metadata__" of the first shard (transformers writes the same {"format": "pt"} in each).
  const SafetensorsMetadata& metadata() const;
  // The shard files, in index order (sorted by file name).
  std::vector<std::string> files() const;

 private:
  const SafetensorsFile& file_for(const std::string& name) const;
  std::string path_;
  bool sharded_ = false;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> where_;  // tensor name -> index into shards_
};

struct SavedCheckpoint {
  std::vector<std::string> files;  // shard file names written (relative to the directory)
  std::string index_file;          // empty when everything fit in one file
  uint64_t total_bytes = 0;        // sum of tensor data bytes ("total_size" in the index)
};

// Writes `tensors` into directory `dir` (created if missing), transformers-style:
//  - if their data fits in one shard of `max_shard_bytes`: a single `base` file, no index;
//  - else `<stem>-00001-of-0000N.safetensors` ... plus `base` + ".index.json" (json, indent 2,
//    sorted keys, trailing newline, like transformers). Tensors are packed in the given order;
//    a new shard starts when the next tensor would overflow the current one; a tensor larger
//    than `max_shard_bytes` gets a shard of its own (huggingface_hub's rule).
// Every file is written atomically, each shard gets `metadata` as its "__metadata__". Files of
// an earlier save with the same `base` that the new one does not use (a single file, an index,
// or `<stem>-NNNNN-of-NNNNN.safetensors` shards) are removed, so a reader never mixes two saves;
// a stale single file is removed before the new index is written, so a crash midway leaves a
// folder that fails to open rather than one that silently loads old weights.
// Throws lmf::Error for max_shard_bytes == 0, a `base` not ending in ".safetensors", and any
// error of save_safetensors / the filesystem (naming the file).
SavedCheckpoint save_checkpoint_sharded(const std::string& dir, const NamedTensors& tensors,
                                        uint64_t max_shard_bytes,
                                        const SafetensorsMetadata& metadata = {},
                                        const std::string& base = "model.safetensors");

}  // namespace lmf
