// CUDA embedding gather and its deterministic scatter-add gradient (see kernel_list.inc).
//
// Forward: one block per output row (grid-stride), rows copied with the widest vector type
// (16/8/4/2 bytes) that the row size and both pointers allow. Ids outside [0, V) are not read:
// their row is zero-filled and the smallest such position is recorded with atomicMin; the host
// then reads that one 8-byte flag (a stream synchronisation) and throws the op's error. This is
// the deviation from "checked by ops" in kernel_list.inc: the check rides on the gather instead
// of a separate reduction.
//
// Backward, deterministic (no floating-point atomics): sort (id, position) pairs with CUB's
// stable radix sort, so the positions of each id are contiguous and in ascending order; then
// sum each run's gradient rows in that order (fp32), in pieces of 16 pairs joined in piece
// order (segment_sum_*_kernel), and add the sum once into dtable_acc. The same ids give
// bit-identical gradients on every run, whatever the scheduling.
#include <cub/device/device_radix_sort.cuh>

#include <climits>

#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

template <class Id, class Vec>
__global__ void gather_kernel(const Id* __restrict__ ids, const Vec* __restrict__ table, Vec* __restrict__ out,
                              int64_t n_rows, int64_t vocab, int64_t row_vecs, unsigned long long* bad_pos) {
  for (int64_t n = blockIdx.x; n < n_rows; n += gridDim.x) {
    const int64_t id = int64_t(ids[n]);
    Vec* dst = out + n * row_vecs;
    if (id < 0 || id >= vocab) {  // a zero row; flagged when the caller asked for the check
      if (threadIdx.x == 0 && bad_pos) atomicMin(bad_pos, (unsigned long long)n);
      for (int64_t c = threadIdx.x; c < row_vecs; c += blockDim.x) dst[c] = Vec{};
      continue;
    }
    const Vec* src = table + id * row_vecs;
    for (int64_t c = threadIdx.x; c < row_vecs; c += blockDim.x) dst[c] = src[c];
  }
}

// Widest of 16/8/4/2 bytes dividing the row size and both base addresses.
int vector_bytes(size_t row_bytes, const void* a, const void* b) {
  const uintptr_t bits = uintptr_t(row_bytes) | reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b);
  for (int w : {16, 8, 4}) {
    if (bits % uintptr_t(w) == 0) return w;
  }
  return 2;
}

template <class Id>
void launch_gather(const Tensor& ids, const Tensor& table, const Tensor& out, unsigned long long* bad_pos) {
  const int64_t n_rows = ids.numel(), vocab = table.size(0);
  const size_t row_bytes = size_t(table.size(1)) * dtype_size(table.dtype());
  const int w = vector_bytes(row_bytes, table.data_ptr(), out.data_ptr());
  const int64_t row_vecs = int64_t(row_bytes) / w;
  const int threads = int(row_vecs >= 256 ? 256 : ((row_vecs + 31) / 32) * 32);
  const int64_t max_blocks = int64_t(sm_count()) * 32;
  const int blocks = int(n_rows < max_blocks ? n_rows : max_blocks);
  auto go = [&](auto vec) {
    using Vec = decltype(vec);
    gather_kernel<Id, Vec><<<blocks, threads, 0, current_stream()>>>(
        ptr<const Id>(ids), ptr<const Vec>(table), ptr<Vec>(out), n_rows, vocab, row_vecs, bad_pos);
    LMF_CUDA_CHECK_LAUNCH();
  };
  switch (w) {
    case 16: go(uint4{}); break;
    case 8: go(uint2{}); break;
    case 4: go(uint32_t{}); break;
    default: go(uint16_t{}); break;
  }
}

// keys[n] = ids[n] (or `vocab` for an out-of-range id, a run that is skipped), vals[n] = n.
template <class Id>
__global__ void make_pairs_kernel(const Id* ids, uint32_t* keys, int32_t* vals, int64_t n_rows, int64_t vocab) {
  for (int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; n < n_rows; n += int64_t(gridDim.x) * blockDim.x) {
    const int64_t id = int64_t(ids[n]);
    keys[n] = (id < 0 || id >= vocab) ? uint32_t(vocab) : uint32_t(id);
    vals[n] = int32_t(n);
  }
}

// The gradient sum over the sorted (id, position) pairs, cut into pieces of kPiece pairs so any
// run length spreads over the whole GPU (a run can be the whole batch: token type 0, or one
// position id at a large batch). Pass 1: a block per piece; each thread owns columns and walks
// the piece's rows in order, flushing a running sum at every run end inside the piece:
//  - a run wholly inside the piece: added straight into dtable (its only writer);
//  - the piece's first segment, when its run began in an earlier piece: `head` partial;
//  - else its last segment, when its run goes on into the next piece: `tail` partial.
// Pass 2: a block per piece whose tail partial starts a run adds tail + the following pieces'
// head partials in piece order. Both orders are fixed: deterministic, no atomics.
constexpr int kPiece = 16;
constexpr int kSumThreads = 256;

struct PieceLayout {
  const uint32_t* keys;
  int64_t n_rows;
  uint32_t vocab;
  __device__ int64_t end(int64_t p) const { return min(n_rows, (p + 1) * kPiece); }
  // Whether the run at the start of piece p began in an earlier piece.
  __device__ bool continues_in(int64_t p) const { return p > 0 && keys[p * kPiece - 1] == keys[p * kPiece]; }
  // Whether the run at the end of piece p goes on into piece p + 1.
  __device__ bool continues_out(int64_t p) const { return end(p) < n_rows && keys[end(p) - 1] == keys[end(p)]; }
};

template <class T>
__global__ void __launch_bounds__(kSumThreads) segment_sum_pieces_kernel(PieceLayout L, const int32_t* __restrict__ pos,
                                                                         const T* __restrict__ dout,
                                                                         float* __restrict__ dtable, float* head,
                                                                         float* tail, int64_t hidden) {
  for (int64_t p = blockIdx.x; p * kPiece < L.n_rows; p += gridDim.x) {
    const int64_t j0 = p * kPiece, j1 = L.end(p);
    const bool in = L.continues_in(p), out = L.continues_out(p);
    for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) {
      float s = 0.f;
      for (int64_t j = j0; j < j1; j++) {
        s += to_f(dout[int64_t(pos[j]) * hidden + c]);
        const uint32_t id = L.keys[j];
        if (j + 1 < j1 && L.keys[j + 1] == id) continue;  // the segment goes on in this piece
        const bool first = in && L.keys[j0] == id, last = out && j + 1 == j1;
        if (first) {
          head[p * hidden + c] = s;
        } else if (last) {
          tail[p * hidden + c] = s;
        } else if (id < L.vocab) {
          dtable[int64_t(id) * hidden + c] += s;
        }
        s = 0.f;
      }
    }
  }
}

__global__ void __launch_bounds__(kSumThreads) segment_sum_join_kernel(PieceLayout L, float* __restrict__ dtable,
                                                                       const float* __restrict__ head,
                                                                       const float* __restrict__ tail,
                                                                       int64_t hidden) {
  const int64_t pieces = (L.n_rows + kPiece - 1) / kPiece;
  for (int64_t p = blockIdx.x; p < pieces; p += gridDim.x) {
    // A tail partial exists when the run at the end of p goes on and did not also fill p from
    // an earlier piece (then p's whole segment is a head partial of a run started earlier).
    if (!L.continues_out(p)) continue;
    const uint32_t id = L.keys[L.end(p) - 1];
    if (L.continues_in(p) && L.keys[p * kPiece] == id) continue;
    if (id >= L.vocab) continue;
    for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) {
      float s = tail[p * hidden + c];
      for (int64_t q = p + 1; q < pieces; q++) {
        s += head[q * hidden + c];
        if (!(L.continues_out(q) && L.keys[L.end(q) - 1] == id)) break;  // the run ends in q
      }
      dtable[int64_t(id) * hidden + c] += s;
    }
  }
}

}  // namespace

void embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out, bool check) {
  const int64_t n_rows = ids.numel();
  if (n_rows == 0 || table.size(1) == 0) return;
  cudaStream_t s = current_stream();
  if (!check) {  // the caller guarantees the ids: no flag, no synchronisation
    if (ids.dtype() == DType::i32)
      launch_gather<int32_t>(ids, table, out, nullptr);
    else
      launch_gather<int64_t>(ids, table, out, nullptr);
    return;
  }
  Tensor flag = Tensor::empty({1}, DType::i64, ids.device());
  auto* bad_pos = static_cast<unsigned long long*>(flag.data_ptr());
  LMF_CUDA_CHECK(cudaMemsetAsync(bad_pos, 0xFF, sizeof(unsigned long long), s));
  if (ids.dtype() == DType::i32)
    launch_gather<int32_t>(ids, table, out, bad_pos);
  else
    launch_gather<int64_t>(ids, table, out, bad_pos);
  unsigned long long host_pos = 0;
  LMF_CUDA_CHECK(cudaMemcpyAsync(&host_pos, bad_pos, sizeof host_pos, cudaMemcpyDeviceToHost, s));
  LMF_CUDA_CHECK(cudaStreamSynchronize(s));
  if (host_pos != ULLONG_MAX) {
    int64_t id = 0;
    const size_t es = dtype_size(ids.dtype());
    const char* p = static_cast<const char*>(ids.data_ptr()) + host_pos * es;
    if (ids.dtype() == DType::i32) {
      int32_t v = 0;
      LMF_CUDA_CHECK(cudaMemcpy(&v, p, es, cudaMemcpyDeviceToHost));
      id = v;
    } else {
      LMF_CUDA_CHECK(cudaMemcpy(&id, p, es, cudaMemcpyDeviceToHost));
    }
    fail("[embedding] id ", id, " out of range for vocabulary ", table.size(0));
  }
}

void embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dtable_acc) {
  const int64_t n_rows = ids.numel(), vocab = dtable_acc.size(0), hidden = dtable_acc.size(1);
  if (n_rows == 0 || hidden == 0) return;
  if (dtable_acc.dtype() != DType::f32)
    fail("embedding_backward: CUDA accumulates into an f32 table gradient, got ", dtype_name(dtable_acc.dtype()));
  if (n_rows > INT32_MAX || vocab >= INT32_MAX)
    fail("embedding_backward: ", n_rows, " ids / vocabulary ", vocab, " exceed the 32-bit sort keys");
  cudaStream_t s = current_stream();
  Device dev = ids.device();
  Tensor keys_in = Tensor::empty({n_rows}, DType::i32, dev), keys_out = Tensor::empty({n_rows}, DType::i32, dev);
  Tensor vals_in = Tensor::empty({n_rows}, DType::i32, dev), vals_out = Tensor::empty({n_rows}, DType::i32, dev);
  auto* kin = static_cast<uint32_t*>(keys_in.data_ptr());
  auto* kout = static_cast<uint32_t*>(keys_out.data_ptr());
  if (ids.dtype() == DType::i32)
    make_pairs_kernel<<<blocks_for(n_rows), 256, 0, s>>>(ptr<const int32_t>(ids), kin, ptr<int32_t>(vals_in), n_rows, vocab);
  else
    make_pairs_kernel<<<blocks_for(n_rows), 256, 0, s>>>(ptr<const int64_t>(ids), kin, ptr<int32_t>(vals_in), n_rows, vocab);
  LMF_CUDA_CHECK_LAUNCH();

  // Sort only the bits a key can use: keys are in [0, vocab], so end_bit = bit length of vocab.
  int end_bit = 1;
  while (end_bit < 32 && (uint64_t(1) << end_bit) <= uint64_t(vocab)) end_bit++;
  size_t temp_bytes = 0;
  LMF_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, kin, kout, ptr<int32_t>(vals_in),
                                                 ptr<int32_t>(vals_out), n_rows, 0, end_bit, s));
  Tensor temp = Tensor::empty({int64_t(temp_bytes)}, DType::u8, dev);
  LMF_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data_ptr(), temp_bytes, kin, kout, ptr<int32_t>(vals_in),
                                                 ptr<int32_t>(vals_out), n_rows, 0, end_bit, s));

  const int64_t pieces = (n_rows + kPiece - 1) / kPiece;
  const int64_t max_blocks = int64_t(sm_count()) * 8;
  const int blocks = int(pieces < max_blocks ? pieces : max_blocks);
  const int threads = int(hidden >= kSumThreads ? kSumThreads : ((hidden + 31) / 32) * 32);
  Tensor partials = Tensor::empty({2, pieces, hidden}, DType::f32, dev);
  float* head = ptr<float>(partials);
  float* tail = head + pieces * hidden;
  const PieceLayout L{kout, n_rows, uint32_t(vocab)};
  dispatch_floating(dout.dtype(), "embedding_backward", [&]<class T>() {
    segment_sum_pieces_kernel<T><<<blocks, threads, 0, s>>>(L, ptr<const int32_t>(vals_out), ptr<const T>(dout),
                                                            ptr<float>(dtable_acc), head, tail, hidden);
    LMF_CUDA_CHECK_LAUNCH();
  });
  segment_sum_join_kernel<<<blocks, threads, 0, s>>>(L, ptr<float>(dtable_acc), head, tail, hidden);
  LMF_CUDA_CHECK_LAUNCH();
}

}  // namespace lmf::cuda
