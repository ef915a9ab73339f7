#include "lmforge/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "lmforge/io/atomic_file.h"

namespace lmf {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; big-endian hosts would need byte swaps");

namespace {

using json = nlohmann::json;

// Same limit as huggingface/safetensors (MAX_HEADER_SIZE): refuses to allocate for a header
// that no real checkpoint has, so a corrupt length field cannot exhaust memory.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr DTypeName kReadable[] = {
    {"F32", DType::f32}, {"F64", DType::f64}, {"BF16", DType::bf16}, {"F16", DType::f16},
    {"I32", DType::i32}, {"I64", DType::i64}, {"U8", DType::u8},     {"BOOL", DType::u8},
};
// Valid safetensors dtypes that lmforge has no DType for.
constexpr const char* kUnsupported[] = {"F8_E5M2", "F8_E4M3", "F8_E8M0", "F4",
                                        "F6_E2M3", "F6_E3M2", "I8",      "I16",
                                        "U16",     "U32",     "U64",     "C64"};

// A printable, single-line, bounded excerpt of untrusted text for error messages.
std::string one_line(std::string_view s, size_t max_chars = 80) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  return out;
}

// Integer JSON value >= 0 that fits int64 (dims and offsets); nullopt-like via bool.
bool as_nonneg_int(const json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;  // negatives are number_integer, 1.5 is float
  uint64_t u = v.get<uint64_t>();
  if (u > uint64_t(std::numeric_limits<int64_t>::max())) return false;
  *out = u;
  return true;
}

// Rank used to order data like the Python writer: its Dtype enum is declared "in increasing
// alignment order" (BOOL, U8, ..., F16, BF16, I32, U32, F32, F64, I64, U64) and it writes the
// largest first, so every tensor's data starts aligned for its type.
int alignment_rank(DType t) {
  switch (t) {
    case DType::u8:
      return 0;
    case DType::f16:
      return 1;
    case DType::bf16:
      return 2;
    case DType::i32:
      return 3;
    case DType::f32:
      return 4;
    case DType::f64:
      return 5;
    case DType::i64:
      return 6;
  }
  return 0;
}

}  // namespace

std::string_view safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::bf16:
      return "BF16";
    case DType::f16:
      return "F16";
    case DType::i32:
      return "I32";
    case DType::i64:
      return "I64";
    case DType::u8:
      return "U8";
  }
  LMF_CHECK(false, "unknown DType ", int(t));
  return "";
}

// ---- reading ------------------------------------------------------------------------------------
SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.label_ = path;
  auto map = MappedFile::open(path, MappedFile::Mode::copy_on_write);
  f.bytes_ = map->size() ? map->mutable_data() : nullptr;
  f.nbytes_ = map->size();
  f.owner_ = std::move(map);
  f.parse_header();
  return f;
}

SafetensorsFile SafetensorsFile::from_bytes(std::string bytes, const std::string& label) {
  SafetensorsFile f;
  f.label_ = label;
  auto owned = std::make_shared<std::string>(std::move(bytes));
  f.bytes_ = reinterpret_cast<uint8_t*>(owned->data());
  f.nbytes_ = owned->size();
  f.owner_ = std::move(owned);
  f.parse_header();
  return f;
}

namespace {

SafetensorsTensorInfo parse_entry(const std::string& file, const std::string& name, const json& v) {
  auto bad = [&](auto&&... what) -> std::string {
    return detail::concat(file, ": tensor '", one_line(name), "': ", what...);
  };
  if (!v.is_object()) throw Error(bad("expected an object, got ", v.type_name()));
  SafetensorsTensorInfo info;

  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) throw Error(bad("missing string field 'dtype'"));
  info.file_dtype = dt->get<std::string>();
  bool found = false;
  for (const auto& d : kReadable) {
    if (info.file_dtype == d.name) {
      info.dtype = d.dtype;
      found = true;
    }
  }
  if (!found) {
    for (const char* u : kUnsupported)
      if (info.file_dtype == u)
        throw Error(bad("unsupported dtype '", u,
                        "' (lmforge reads F32, F64, BF16, F16, I32, I64, U8, BOOL)"));
    throw Error(bad("unknown dtype '", one_line(info.file_dtype), "'"));
  }

  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) throw Error(bad("missing array field 'shape'"));
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    uint64_t dim;
    if (!as_nonneg_int(d, &dim))
      throw Error(bad("shape ", one_line(sh->dump()), " must hold non-negative integers"));
    info.shape.push_back(int64_t(dim));
    if (__builtin_mul_overflow(numel, dim, &numel) ||
        numel > uint64_t(std::numeric_limits<int64_t>::max()))
      throw Error(bad("shape ", one_line(sh->dump()), " overflows the element count"));
  }
  uint64_t want_bytes;
  if (__builtin_mul_overflow(numel, uint64_t(dtype_size(info.dtype)), &want_bytes))
    throw Error(bad("shape ", one_line(sh->dump()), " overflows the byte size"));

  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 ||
      !as_nonneg_int((*off)[0], &info.begin) || !as_nonneg_int((*off)[1], &info.end))
    throw Error(bad("'data_offsets' must be [begin, end] with non-negative integers"));
  if (info.end < info.begin)
    throw Error(bad("data_offsets [", info.begin, ", ", info.end, "] end before begin"));
  if (info.end - info.begin != want_bytes)
    throw Error(bad("data_offsets [", info.begin, ", ", info.end, "] span ", info.end - info.begin,
                    " bytes but ", info.file_dtype, " ", shape_str(info.shape), " needs ",
                    want_bytes));
  return info;
}

SafetensorsMetadata parse_metadata(const std::string& file, const json& v) {
  SafetensorsMetadata m;
  if (v.is_null()) return m;  // the Rust reader treats null as "no metadata"
  if (!v.is_object()) fail(file, ": __metadata__: expected an object, got ", v.type_name());
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->is_string())
      fail(file, ": __metadata__: value of '", one_line(it.key()), "' must be a string, got ",
           it->type_name());
    m[it.key()] = it->get<std::string>();
  }
  return m;
}

}  // namespace

void SafetensorsFile::parse_header() {
  const std::string& f = label_;
  if (nbytes_ < 8)
    fail(f, ": file is ", nbytes_, " bytes, shorter than the 8-byte header length (truncated?)");
  uint64_t n = 0;
  std::memcpy(&n, bytes_, 8);  // little-endian (static_assert above)
  if (n > kMaxHeaderBytes)
    fail(f, ": header length ", n, " exceeds the ", kMaxHeaderBytes, "-byte limit (corrupt file?)");
  if (n > nbytes_ - 8)
    fail(f, ": header length ", n, " exceeds the ", nbytes_ - 8,
         " bytes after the length field (truncated file?)");
  data_start_ = 8 + size_t(n);
  std::string_view text(reinterpret_cast<const char*>(bytes_ + 8), size_t(n));
  if (text.empty() || text[0] != '{') fail(f, ": header does not start with '{'");

  // The spec forbids duplicate names, which a plain DOM parse would silently merge.
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      auto key = parsed.get<std::string>();
      if (!seen.insert(key).second) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& e) {
    fail(f, ": invalid JSON header: ", one_line(e.what(), 200));
  }
  if (!header.is_object()) fail(f, ": header is not a JSON object");
  if (!duplicate.empty()) fail(f, ": header names '", one_line(duplicate), "' twice");

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__")
      metadata_ = parse_metadata(f, it.value());
    else
      entries_.emplace(it.key(), parse_entry(f, it.key(), it.value()));
  }

  // Offsets must tile the buffer exactly: sorted by offset, each tensor starts where the last
  // ended and the last ends at the end of the file (safetensors/src/tensor.rs: validate).
  const uint64_t buffer_bytes = nbytes_ - data_start_;
  std::vector<std::pair<const std::string*, const SafetensorsTensorInfo*>> order;
  for (const auto& [name, info] : entries_) {
    if (info.end > buffer_bytes)
      fail(f, ": tensor '", one_line(name), "': data_offsets [", info.begin, ", ", info.end,
           "] beyond the ", buffer_bytes, "-byte data buffer (truncated file?)");
    order.emplace_back(&name, &info);
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second->begin, a.second->end) < std::tie(b.second->begin, b.second->end);
  });
  uint64_t pos = 0;
  const std::string* prev = nullptr;
  for (const auto& [name, info] : order) {
    if (info->begin < pos)
      fail(f, ": tensor '", one_line(*name), "': data_offsets [", info->begin, ", ", info->end,
           "] overlap tensor '", one_line(*prev), "'");
    if (info->begin > pos)
      fail(f, ": tensor '", one_line(*name), "': data_offsets [", info->begin, ", ", info->end,
           "] leave a hole of ", info->begin - pos, " bytes before them");
    pos = info->end;
    prev = name;
  }
  if (pos != buffer_bytes)
    fail(f, ": ", buffer_bytes - pos, " bytes after the last tensor's data (the data buffer is ",
         buffer_bytes, " bytes, tensors cover ", pos, ")");
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;
}

const SafetensorsTensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(label_, ": no tensor named '", one_line(name), "'");
  return it->second;
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsTensorInfo& in = info(name);
  uint8_t* p = bytes_ + data_start_ + in.begin;
  size_t nbytes = size_t(in.end - in.begin);
  if (nbytes == 0) return Tensor::empty(in.shape, in.dtype);
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(in.dtype) == 0) {
    auto st = std::make_shared<Storage>(Device::cpu(), p, nbytes, owner_);
    return Tensor(std::move(st), in.shape, contiguous_strides(in.shape), 0, in.dtype);
  }
  // Files whose header length is not a multiple of 8 (other writers) can misalign the data;
  // a typed pointer must be aligned, so copy.
  Tensor t = Tensor::empty(in.shape, in.dtype);
  std::memcpy(t.data_ptr(), p, nbytes);
  return t;
}

// ---- writing ------------------------------------------------------------------------------------
namespace {

struct Planned {
  const std::string* name;
  const Tensor* tensor;
  uint64_t begin, end;
};

using Sink = std::function<void(const void*, size_t)>;

// Builds the padded header and the data order, then streams everything into `sink`.
void write_safetensors(const NamedTensors& tensors, const SafetensorsMetadata& metadata,
                       const std::string& where, const Sink& sink) {
  std::vector<Planned> plan;
  std::set<std::string_view> names;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__")
      fail(where, ": tensor name '__metadata__' is reserved by the safetensors format");
    if (!names.insert(name).second) fail(where, ": tensor '", one_line(name), "' given twice");
    if (!t.defined()) fail(where, ": tensor '", one_line(name), "' is undefined");
    plan.push_back({&name, &t, 0, 0});
  }
  std::sort(plan.begin(), plan.end(), [](const Planned& a, const Planned& b) {
    int ra = alignment_rank(a.tensor->dtype()), rb = alignment_rank(b.tensor->dtype());
    if (ra != rb) return ra > rb;
    return *a.name < *b.name;  // char_traits<char> compares as unsigned bytes, like Rust
  });

  // ordered_json keeps insertion order: "__metadata__" first, then entries in data order,
  // as the Rust Metadata serializer writes them.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (auto& p : plan) {
    p.begin = offset;
    p.end = offset + p.tensor->nbytes();
    offset = p.end;
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = safetensors_dtype_name(p.tensor->dtype());
    e["shape"] = p.tensor->shape();
    e["data_offsets"] = {p.begin, p.end};
    header[*p.name] = std::move(e);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": a tensor name or metadata string is not valid UTF-8 (", e.what(), ")");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-aligned, as the Python writer does

  uint64_t n = text.size();
  sink(&n, 8);
  sink(text.data(), text.size());
  for (const auto& p : plan) {
    Tensor h = p.tensor->to(Device::cpu()).contiguous();
    if (h.nbytes()) sink(h.data_ptr(), h.nbytes());
  }
}

}  // namespace

std::string serialize_safetensors(const NamedTensors& tensors,
                                  const SafetensorsMetadata& metadata) {
  std::string out;
  write_safetensors(tensors, metadata, "serialize_safetensors",
                    [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); });
  return out;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const SafetensorsMetadata& metadata) {
  AtomicFileWriter w(path);
  write_safetensors(tensors, metadata, path, [&](const void* p, size_t n) { w.write(p, n); });
  w.commit();
}

}  // namespace lmf
