// ops::gather_rows on CUDA against the CPU: values and the scatter-add gradient (f32, bf16),
// repeated indices and a large-ish case.
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>

#include "lmforge/ops/gather_rows.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;

TEST(OpsGatherRowsCuda, MatchesCpu) {
  for (auto [N, H, M] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{7, 5, 9}, {1000, 131, 300}, {8192, 768, 1229}}) {
    auto u = test::random_tensor({M}, DType::f64, 2, 0.f, 1.f).to_double_vector();
    std::vector<int64_t> idx(static_cast<size_t>(M));
    for (int64_t m = 0; m < M; m++)
      idx[size_t(m)] = std::min<int64_t>(N - 1, int64_t(u[size_t(m)] * double(N)));
    Tensor x = test::random_tensor({N, H}, DType::f32, 1);
    Tensor ids = Tensor::from_vector<int64_t>(idx, {M});
    auto fn = [](const std::vector<Tensor>& in) { return ops::gather_rows(in[0], in[1]); };
    for (DType dt : {DType::f32, DType::bf16}) {
      auto r = test::compare_cpu_cuda(fn, {x, ids}, dt);
      const double tol = dt == DType::f32 ? 1e-6 : 1e-2;
      EXPECT_LT(r.out_rel, tol) << N << " " << dtype_name(dt);
      EXPECT_LT(r.grad_rel[0], tol) << N << " " << dtype_name(dt);
    }
  }
}
