// The selective scan kernels (the row walkers of selective_scan_rows.cuh, the default, and the
// chunk-parallel walkers of selective_scan_chunked.cuh, LMF_SCAN_IMPL=chunked) against the CPU
// reference, outputs and every gradient (parameters included): fp32 <= 1e-5 and bf16 <= 1e-2
// relative (norm-wise, as everywhere in tests/cuda).
//  - The row walkers with every lane count G = 1, 2, 4, 8 per channel (LMF_SCAN_ROWS_G; the
//    automatic choice depends on the shape and the SM count), so every (NS, G) instantiation.
//  - Both walker shapes (one and four time rows per chunk, forced with LMF_SCAN_WALK_ROWS: the
//    automatic choice depends on the GPU's SM count) and backward segments of 1 and 3 chunks and
//    the automatic size (LMF_SCAN_SEG_CHUNKS): the carries between time rows, chunks and segments.
//  - Long sequences, L = 4096 (whole chunks) and L = 5000 (a tail of 8 steps), with many
//    documents per row. The fp32 tolerance stays 1e-5 there: the recurrence decays
//    (|exp(dt A)| < 1), so a rounding error made at step s is damped by prod a over the later
//    steps and the error of h is stationary in L, about (memory length 1 / (1 - a)) * (2^-22 of
//    the SFU exp2) ~ 1e-6 for these inputs rather than growing with L; the parameter gradients
//    are sums of per-step terms with independent roundings (relative error of the sum <= that of
//    the terms).
//  - Documents starting exactly at chunk (32), sub-chunk (8) and segment boundaries and one step
//    off them, length-1 documents, rows without any document start next to rows with many.
//  - B = 1 and B = 8, D not a multiple of 16 / 32 (20, 33, 40, 130), N = 16 / 5 / 32, with and
//    without softplus, z, D skip and dt bias.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "lmforge/core/scoped_env.h"
#include "lmforge/autograd/tape.h"
#include "lmforge/ops/mamba_ops.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::compare_cpu_cuda;
using test::random_tensor;
using test::rel_error;

namespace {

template <class... A>
std::string cat(const A&... a) {
  std::ostringstream os;
  (os << ... << a);
  return os.str();
}


double tol(DType t) { return t == DType::f32 ? 1e-5 : 1e-2; }

Tensor bf16_exact(const Tensor& t) {
  if (!t.defined() || t.dtype() != DType::f32) return t;
  Tensor h = Tensor::from_floats(t.to_float_vector(), t.shape(), DType::bf16);
  return Tensor::from_floats(h.to_float_vector(), t.shape(), DType::f32);
}

// Document ids [B, L] by row kind (b % 3):
//  0: many documents, lengths 1..max_len from a fixed LCG;
//  1: documents starting on boundaries: every odd chunk start (t % 32 == 0, which includes the
//     starts of 3-chunk segments t = 96, 288, ...), sub-chunk starts (t % 32 == 8) of every
//     third chunk, chunk ends (t % 32 == 31) of every fifth, one step past a chunk start
//     (t % 32 == 1) of every seventh, plus t % 97 == 50; ids are not monotone (they cycle 0..4);
//  2: one document (no reset at all).
Tensor many_docs(int64_t B, int64_t L, int max_len) {
  std::vector<int32_t> v(size_t(B * L), 0);
  uint32_t lcg = 12345;
  for (int64_t b = 0; b < B; b++) {
    int32_t id = 0;
    int64_t next = 0;
    for (int64_t t = 0; t < L; t++) {
      bool start = false;
      if (b % 3 == 0) {
        if (t == next) {
          lcg = lcg * 1664525u + 1013904223u;
          next = t + 1 + int64_t((lcg >> 8) % uint32_t(max_len));
          start = t > 0;
        }
      } else if (b % 3 == 1) {
        const int64_t c = t / 32, r = t % 32;
        start = t > 0 && ((r == 0 && c % 2 == 1) || (r == 8 && c % 3 == 0) || (r == 31 && c % 5 == 2) ||
                          (r == 1 && c % 7 == 3) || t % 97 == 50);
      }
      if (start) id = b % 3 == 1 ? (id + 1) % 5 : id + 1;
      v[size_t(b * L + t)] = id;
    }
  }
  return Tensor::from_vector<int32_t>(v, {B, L});
}

struct ScanCase {
  const char* name;
  int64_t B, L, D, N;
  bool z, Dskip, bias, seq, softplus;
  int max_doc = 40;  // longest document of the many-documents rows
};

// Inputs in ops::SelectiveScanArgs order: u, delta, A_log, Bm, Cm, Dskip, z, delta_bias, seq_idx.
std::vector<Tensor> scan_inputs(const ScanCase& c, uint64_t seed, bool bf16) {
  const int64_t B = c.B, L = c.L, D = c.D, N = c.N;
  const float dlo = c.softplus ? -2.f : 0.05f, dhi = c.softplus ? 1.f : 0.6f;
  std::vector<Tensor> in = {
      random_tensor({B, L, D}, DType::f32, seed + 1),
      random_tensor({B, L, D}, DType::f32, seed + 2, dlo, dhi),
      random_tensor({D, N}, DType::f32, seed + 3, -1.f, 1.f),
      random_tensor({B, L, N}, DType::f32, seed + 4),
      random_tensor({B, L, N}, DType::f32, seed + 5),
      c.Dskip ? random_tensor({D}, DType::f32, seed + 6) : Tensor(),
      c.z ? random_tensor({B, L, D}, DType::f32, seed + 7) : Tensor(),
      c.bias ? random_tensor({D}, DType::f32, seed + 8, c.softplus ? -1.f : 0.f, 0.5f) : Tensor(),
      c.seq ? many_docs(B, L, c.max_doc) : Tensor()};
  if (bf16)
    for (auto& t : in) t = bf16_exact(t);
  return in;
}

Tensor run_scan(const std::vector<Tensor>& x, bool softplus) {
  ops::SelectiveScanArgs a{x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], softplus};
  return ops::selective_scan(a);
}

void check_case(const ScanCase& c, DType dt, uint64_t seed, const std::string& where) {
  auto ins = scan_inputs(c, seed, dt == DType::bf16);
  auto r = compare_cpu_cuda([&](const std::vector<Tensor>& x) { return run_scan(x, c.softplus); }, ins, dt);
  const std::string what = cat(c.name, " ", dtype_name(dt), " ", where);
  EXPECT_LT(r.out_rel, tol(dt)) << what << " output";
  const char* names[] = {"du", "ddelta", "dA_log", "dBm", "dCm", "dD", "dz", "ddelta_bias", "seq_idx"};
  for (size_t i = 0; i < r.grad_rel.size(); i++) EXPECT_LT(r.grad_rel[i], tol(dt)) << what << " " << names[i];
}

}  // namespace

TEST(CudaMambaScan, WalkerShapesAndSegments) {
  const std::vector<ScanCase> cases = {
      {"B1 tails", 1, 300, 40, 16, true, true, true, true, true},
      {"B8 docs", 8, 200, 48, 16, true, true, true, true, true},
      {"N5 no softplus", 2, 150, 33, 5, true, false, true, true, false},
      {"N32 bare", 1, 140, 20, 32, false, false, false, true, true},
      {"D130 no z", 3, 170, 130, 16, false, true, true, true, true, 12},
  };
  const char* rows[] = {"1", "4"};
  const char* segs[] = {"1", "3", nullptr};
  ScopedEnv gi("LMF_SCAN_IMPL", "chunked");
  for (const char* w : rows) {
    ScopedEnv gw("LMF_SCAN_WALK_ROWS", w);
    for (const char* s : segs) {
      ScopedEnv gs("LMF_SCAN_SEG_CHUNKS", s);
      for (DType dt : {DType::f32, DType::bf16})
        for (const auto& c : cases) check_case(c, dt, 100, cat("rows ", w, " seg ", s ? s : "auto"));
    }
  }
}

TEST(CudaMambaScan, RowWalkerLanesAndSegments) {
  const std::vector<ScanCase> cases = {
      {"B1 tails", 1, 300, 40, 16, true, true, true, true, true},
      {"B8 docs", 8, 200, 48, 16, true, true, true, true, true},
      {"N5 no softplus", 2, 150, 33, 5, true, false, true, true, false},
      {"N8", 2, 130, 70, 8, true, true, true, true, true, 9},
      {"N32 bare", 1, 140, 20, 32, false, false, false, true, true},
      {"N32 docs", 2, 97, 36, 32, true, true, true, true, true, 7},
      {"D130 no z", 3, 170, 130, 16, false, true, true, true, true, 12},
  };
  ScopedEnv gi("LMF_SCAN_IMPL", "rows");
  for (const char* g : {"1", "2", "4", "8"}) {
    ScopedEnv gg("LMF_SCAN_ROWS_G", g);
    for (const char* s : {"1", "3"}) {
      ScopedEnv gs("LMF_SCAN_SEG_CHUNKS", s);
      for (DType dt : {DType::f32, DType::bf16})
        for (const auto& c : cases) check_case(c, dt, 110, cat("rows G ", g, " seg ", s));
    }
  }
}

TEST(CudaMambaScan, LongSequencesManyDocuments) {
  const std::vector<ScanCase> cases = {
      {"L4096", 2, 4096, 64, 16, true, true, true, true, true, 300},
      {"L5000 B1", 1, 5000, 40, 16, true, true, true, true, true, 60},
      {"L5000 B3 no softplus", 3, 5000, 24, 16, true, true, false, true, false, 500},
  };
  struct Env {
    const char* impl;
    const char* rows;  // LMF_SCAN_WALK_ROWS (chunked) or LMF_SCAN_ROWS_G (rows)
    const char* seg;
  };
  for (const Env e : {Env{nullptr, nullptr, nullptr}, Env{"chunked", "1", "5"}, Env{"chunked", "4", "16"},
                      Env{"rows", "1", "5"}, Env{"rows", "8", "16"}}) {
    ScopedEnv gi("LMF_SCAN_IMPL", e.impl);
    const bool rows_impl = e.impl && std::string(e.impl) == "rows";
    ScopedEnv gw("LMF_SCAN_WALK_ROWS", rows_impl ? nullptr : e.rows);
    ScopedEnv gg("LMF_SCAN_ROWS_G", rows_impl ? e.rows : nullptr);
    ScopedEnv gs("LMF_SCAN_SEG_CHUNKS", e.seg);
    for (DType dt : {DType::f32, DType::bf16})
      for (const auto& c : cases)
        check_case(c, dt, 200,
                   cat(e.impl ? e.impl : "auto", " rows/G ", e.rows ? e.rows : "auto", " seg ",
                       e.seg ? e.seg : "auto"));
  }
}

TEST(CudaMambaScan, LongSequenceWithoutDocuments) {
  // No reset anywhere: the carries cross every time row, chunk and segment boundary.
  ScopedEnv gs("LMF_SCAN_SEG_CHUNKS", "7");
  {
    ScopedEnv gi("LMF_SCAN_IMPL", "chunked");
    for (const char* w : {"1", "4"}) {
      ScopedEnv gw("LMF_SCAN_WALK_ROWS", w);
      check_case({"L4096 one document", 1, 4096, 36, 16, true, true, true, false, true}, DType::f32, 300,
                 cat("chunked rows ", w));
    }
  }
  ScopedEnv gi("LMF_SCAN_IMPL", "rows");
  for (const char* g : {"1", "4", "8"}) {
    ScopedEnv gg("LMF_SCAN_ROWS_G", g);
    check_case({"L4096 one document", 1, 4096, 36, 16, true, true, true, false, true}, DType::f32, 300,
               cat("rows G ", g));
  }
}

TEST(CudaMambaScan, FinalStateEveryWalker) {
  // final_state comes from the thread's registers (one row, row walkers) or from the fold (four
  // rows).
  ScanCase c{"fs", 3, 777, 40, 16, true, true, true, true, true, 50};
  auto ins = scan_inputs(c, 400, false);
  ops::SelectiveScanArgs a{ins[0], ins[1], ins[2], ins[3], ins[4], ins[5], ins[6], ins[7], ins[8], true};
  Tensor fs_cpu;
  Tensor out_cpu = ops::selective_scan_with_state(a, &fs_cpu);
  ops::SelectiveScanArgs g = a;
  for (Tensor* t : {&g.u, &g.delta, &g.A_log, &g.Bm, &g.Cm, &g.Dskip, &g.z, &g.delta_bias, &g.seq_idx})
    if (t->defined()) *t = t->to(Device::cuda(0));
  struct Env {
    const char* impl;
    const char* var;
    const char* value;
  };
  for (const Env e : {Env{"chunked", "LMF_SCAN_WALK_ROWS", "1"}, Env{"chunked", "LMF_SCAN_WALK_ROWS", "4"},
                      Env{"rows", "LMF_SCAN_ROWS_G", "1"}, Env{"rows", "LMF_SCAN_ROWS_G", "2"},
                      Env{"rows", "LMF_SCAN_ROWS_G", "4"}, Env{"rows", "LMF_SCAN_ROWS_G", "8"}}) {
    ScopedEnv gi("LMF_SCAN_IMPL", e.impl);
    ScopedEnv gw(e.var, e.value);
    Tensor fs_gpu;
    Tensor out_gpu = ops::selective_scan_with_state(g, &fs_gpu);
    EXPECT_LT(rel_error(out_gpu, out_cpu), 1e-5) << e.impl << " " << e.var << "=" << e.value;
    EXPECT_LT(rel_error(fs_gpu, fs_cpu), 1e-5) << e.impl << " " << e.var << "=" << e.value;
  }
}

TEST(CudaMambaScan, WalkerShapesAgree) {
  // Every walker and any segment size compute the same function; their roundings differ only in
  // the order of a few products and sums (fold vs sequential, y over lanes), far below 1e-6.
  ScanCase c{"agree", 2, 1000, 48, 16, true, true, true, true, true, 100};
  auto ins = scan_inputs(c, 500, false);
  std::vector<std::vector<std::vector<double>>> res;  // [variant][output, gradients of inputs 0..7]
  // Variants: chunked with 1 / 4 time rows, rows with G = 1 / 4 / 8 lanes per channel.
  struct Env {
    const char* impl;
    const char* var;
    const char* value;
  };
  for (const Env e : {Env{"chunked", "LMF_SCAN_WALK_ROWS", "1"}, Env{"chunked", "LMF_SCAN_WALK_ROWS", "4"},
                      Env{"rows", "LMF_SCAN_ROWS_G", "1"}, Env{"rows", "LMF_SCAN_ROWS_G", "4"},
                      Env{"rows", "LMF_SCAN_ROWS_G", "8"}}) {
    for (const char* s : {"1", "4"}) {
      ScopedEnv gi("LMF_SCAN_IMPL", e.impl);
      ScopedEnv gw(e.var, e.value);
      ScopedEnv gs("LMF_SCAN_SEG_CHUNKS", s);
      std::vector<Tensor> x;
      for (const auto& t : ins) x.push_back(t.defined() ? t.to(Device::cuda(0)) : t);
      for (int j = 0; j < 8; j++) autograd::set_requires_grad(x[size_t(j)], true);
      Tensor out = run_scan(x, true);
      autograd::backward(out, random_tensor(out.shape(), DType::f32, 501, -1.f, 1.f, Device::cuda(0)));
      std::vector<std::vector<double>> all = {out.to_double_vector()};
      for (int j = 0; j < 8; j++) all.push_back(autograd::grad(x[size_t(j)]).to_double_vector());
      res.push_back(all);
    }
  }
  for (size_t k = 1; k < res.size(); k++)
    for (size_t i = 0; i < res[0].size(); i++)
      EXPECT_LT(rel_error(res[k][i], res[0][i]), 1e-6) << "variant " << k << " tensor " << i;
}

TEST(CudaMambaScan, ElementwiseFastPaths) {
  // The element-wise phases take a two-channels-per-thread path without bounds checks for whole
  // tiles (32 channels present, D a multiple of the 16-byte vector, whole 32-step chunks / 8-step
  // sub-chunks) and the checked path otherwise, in the same launch: D = 72 has two whole tiles and
  // a tail of 8 channels, L = 203 / 100 end in partial chunks and sub-chunks. N = 8, 16, 32 are
  // unpadded (vector B / C conversion), N = 4 and 12 padded (checked conversion). Every lane count.
  const std::vector<ScanCase> cases = {
      {"whole tiles", 2, 256, 96, 16, true, true, true, true, true, 20},
      {"mixed tiles", 3, 203, 72, 16, true, true, true, true, true},
      {"no z no D no bias", 2, 128, 64, 16, false, false, false, true, true},
      {"no softplus N8", 2, 96, 64, 8, true, true, true, true, false},
      {"N32", 1, 100, 64, 32, true, true, true, true, true},
      {"N4", 2, 100, 64, 4, true, true, true, false, true},
      {"N12", 2, 64, 64, 12, true, false, true, true, true, 9},
  };
  ScopedEnv gi("LMF_SCAN_IMPL", "rows");
  for (const char* g : {"1", "2", "4", "8"}) {
    ScopedEnv gg("LMF_SCAN_ROWS_G", g);
    for (DType dt : {DType::f32, DType::bf16})
      for (const auto& c : cases) check_case(c, dt, 600, cat("rows G ", g));
  }
  ScopedEnv gc("LMF_SCAN_IMPL", "chunked");
  for (DType dt : {DType::f32, DType::bf16})
    for (const auto& c : cases) check_case(c, dt, 610, "chunked");
}

TEST(CudaMambaScan, ParameterGradientsDeterministicManyRows) {
  // dA_log, dD, ddelta_bias are sums of B * nseg per-block partial rows in a fixed order (rows
  // split over 16 residues, columns over blocks): 6 * 35 = 210 rows (not a multiple of 16), 96
  // channels x (16 + 2) partial columns over several blocks. Bitwise equal over runs, and right.
  ScopedEnv gs("LMF_SCAN_SEG_CHUNKS", "1");
  ScanCase c{"det rows", 6, 1100, 96, 16, true, true, true, true, true, 60};
  check_case(c, DType::f32, 700, "seg 1");
  auto ins = scan_inputs(c, 710, false);
  std::vector<std::vector<float>> runs[2];
  for (int rep = 0; rep < 2; rep++) {
    std::vector<Tensor> x;
    for (const auto& t : ins) x.push_back(t.defined() ? t.to(Device::cuda(0)) : t);
    for (int j : {2, 5, 7}) autograd::set_requires_grad(x[size_t(j)], true);
    Tensor out = run_scan(x, true);
    autograd::backward(out, random_tensor(out.shape(), DType::f32, 711, -1.f, 1.f, Device::cuda(0)));
    for (int j : {2, 5, 7}) runs[rep].push_back(autograd::grad(x[size_t(j)]).to_float_vector());
  }
  EXPECT_EQ(runs[0][0], runs[1][0]) << "dA_log";
  EXPECT_EQ(runs[0][1], runs[1][1]) << "dD";
  EXPECT_EQ(runs[0][2], runs[1][2]) << "ddelta_bias";
}

TEST(CudaMambaScan, SoftplusTails) {
  // The fast paths' softplus (max(x, 0) + w p(w), w = e^-|x|) over its whole range: delta in
  // [-30, 25] (plus the dt bias) covers log1p(w) for w from e^-30 to 1, both signs, and the
  // PyTorch threshold (softplus(x) = x and softplus'(x) = 1 past 20).
  ScanCase c{"softplus tails", 2, 160, 64, 16, true, true, true, true, true, 30};
  ScopedEnv gi("LMF_SCAN_IMPL", "rows");
  for (DType dt : {DType::f32, DType::bf16}) {
    auto ins = scan_inputs(c, 800, dt == DType::bf16);
    ins[1] = random_tensor({c.B, c.L, c.D}, DType::f32, 801, -30.f, 25.f);
    if (dt == DType::bf16) ins[1] = bf16_exact(ins[1]);
    auto r = compare_cpu_cuda([&](const std::vector<Tensor>& x) { return run_scan(x, true); }, ins, dt);
    EXPECT_LT(r.out_rel, tol(dt)) << dtype_name(dt) << " output";
    for (size_t i = 0; i < r.grad_rel.size(); i++) EXPECT_LT(r.grad_rel[i], tol(dt)) << dtype_name(dt) << " grad " << i;
  }
}

TEST(CudaMambaScan, GradientPassDependentLaunch) {
  // The gradient pass and the finalize start with programmatic dependent launch (their prologue
  // overlaps the previous kernel's tail; they wait in griddepcontrol.wait before reading its
  // outputs); LMF_SCAN_PDL=0 launches them plainly. Both preparations (the row walker signals the
  // gradient pass; the chunk walker does not), segments of 2 / 5 chunks and the automatic size,
  // whole and partial tiles (D = 72), a partial last chunk and sub-chunk (L = 301), documents.
  const std::vector<ScanCase> cases = {
      {"mixed tiles docs", 2, 301, 72, 16, true, true, true, true, true, 8},
      {"no z N8", 2, 256, 64, 8, false, true, true, true, true, 20},
      {"N32", 1, 200, 64, 32, true, true, true, false, true},
  };
  for (const char* impl : {"rows", "chunked"}) {
    ScopedEnv gi("LMF_SCAN_IMPL", impl);
    for (const char* pdl : {"0", "1"}) {
      ScopedEnv gp("LMF_SCAN_PDL", pdl);
      const char* segs[] = {"2", "5", nullptr};
      for (const char* s : segs) {
        ScopedEnv gs("LMF_SCAN_SEG_CHUNKS", s);
        for (DType dt : {DType::f32, DType::bf16})
          for (const auto& c : cases) check_case(c, dt, 950, cat(impl, " pdl ", pdl, " seg ", s ? s : "auto"));
      }
    }
  }
}
