// safetensors: reading (memory-mapped, validated) and writing (atomic) of tensor files.
//
// Format (https://huggingface.co/docs/safetensors, huggingface/safetensors README "Format"):
//   8 bytes   N, little-endian uint64: the header length
//   N bytes   UTF-8 JSON object {"<name>": {"dtype": "F32", "shape": [2, 3],
//             "data_offsets": [begin, end]}, ..., optional "__metadata__": {"<str>": "<str>"}},
//             starting with '{', possibly padded with trailing spaces
//   rest      the byte buffer; offsets are relative to its start, little-endian, row-major.
//
// Reading validates everything the reference implementation (safetensors/src/tensor.rs)
// validates, with one-line lmf::Error messages naming the file and, when it applies, the tensor:
// file shorter than 8 bytes, N > 100'000'000 or N beyond the end of the file, invalid
// UTF-8/JSON, header not an object, duplicate names, entries that are not objects, missing or
// mistyped fields, unknown or unsupported dtypes, negative/non-integer dims, numel*size
// overflowing, end < begin, end - begin != numel * dtype size, offsets that overlap, leave holes
// or do not cover the buffer exactly (the spec forbids holes so files cannot be polyglots), and
// "__metadata__" that is not a {string: string} object.
//
// Dtypes: F32 F64 BF16 F16 I32 I64 U8 map to lmf::DType; BOOL reads as u8 (0/1 bytes). The other
// safetensors dtypes (F8_*, F4, F6_*, I8, I16, U16, U32, U64, C64) are rejected with
// "unsupported dtype" naming the tensor.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf {

using SafetensorsMetadata = std::map<std::string, std::string>;

struct SafetensorsTensorInfo {
  DType dtype = DType::f32;
  Shape shape;
  std::string file_dtype;  // the dtype string in the file: "F32", "BOOL", ...
  uint64_t begin = 0;      // data_offsets, relative to the start of the byte buffer
  uint64_t end = 0;
};

// One parsed safetensors file. open() reads and validates only the header; tensor data is paged
// in from the memory map when a tensor is touched. Cheap to copy (shares the mapping).
class SafetensorsFile {
 public:
  // Maps `path` and validates the header. Throws lmf::Error "<path>: <issue>" (see top).
  static SafetensorsFile open(const std::string& path);
  // Parses an in-memory file (tests, fuzzing, network buffers). `label` names it in errors.
  static SafetensorsFile from_bytes(std::string bytes, const std::string& label = "<memory>");

  const std::string& path() const { return label_; }
  // Tensor names, sorted (byte order), without "__metadata__".
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  size_t size() const { return entries_.size(); }
  // Throws lmf::Error "<path>: no tensor named '<name>'" when absent.
  const SafetensorsTensorInfo& info(const std::string& name) const;
  // The tensor on the cpu, contiguous. Zero-copy: it aliases the mapping (which it keeps alive)
  // when the data is aligned for its dtype, otherwise it is a copy. Writes to it never reach
  // the file (private copy-on-write mapping). Throws like info().
  Tensor tensor(const std::string& name) const;
  // The "__metadata__" object; empty when the file has none.
  const SafetensorsMetadata& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  void parse_header();

  std::string label_;
  std::shared_ptr<void> owner_;  // MappedFile or std::string holding the bytes
  uint8_t* bytes_ = nullptr;     // whole file
  size_t nbytes_ = 0;
  size_t data_start_ = 0;  // 8 + N
  std::map<std::string, SafetensorsTensorInfo> entries_;
  SafetensorsMetadata metadata_;
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// The file bytes for `tensors` (any device, any strides: copied to host and made contiguous),
// laid out as huggingface/safetensors lays them out, so our files match the Python writer's
// byte for byte: data sorted by dtype alignment (largest first) then name, so every tensor
// starts aligned; header is compact JSON with "__metadata__" first (omitted when `metadata` is
// empty), entries in data order, padded with spaces to a multiple of 8.
// Throws lmf::Error naming the tensor for duplicate names, the reserved name "__metadata__",
// names or metadata that are not valid UTF-8, and undefined tensors.
std::string serialize_safetensors(const NamedTensors& tensors,
                                  const SafetensorsMetadata& metadata = {});

// Writes the same bytes to `path` atomically (AtomicFileWriter), streaming one tensor at a time
// (only one host copy of one tensor alive at once). On error the old `path` is untouched.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const SafetensorsMetadata& metadata = {});

// "F32" <-> DType::f32 etc. (writer side; u8 is written as "U8").
std::string_view safetensors_dtype_name(DType t);

}  // namespace lmf
