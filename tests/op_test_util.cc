#include "op_test_util.h"

#include <cmath>
#include <sstream>

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/elementwise.h"
#include "test_util.h"

namespace lmf::test {

namespace ag = autograd;

Tensor to_f64(const Tensor& t) {
  if (t.dtype() != DType::f32) return t;
  auto v = t.to_double_vector();
  return Tensor::from_vector<double>(v, t.shape());
}

namespace {
double weighted_sum(const Tensor& out, const std::vector<double>& r) {
  auto v = out.to_double_vector();
  double s = 0;
  for (size_t i = 0; i < v.size(); i++) s += v[i] * r[i];
  return s;
}
}  // namespace

GradCheckResult gradcheck(const OpFn& fn, const std::vector<Tensor>& inputs_in, double h,
                          const std::vector<bool>& differentiable) {
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < inputs_in.size(); i++) {
    Tensor t = inputs_in[i].defined() ? inputs_in[i].clone() : Tensor();
    bool diff = t.defined() && is_floating(t.dtype()) && (differentiable.empty() || differentiable[i]);
    if (diff) ag::set_requires_grad(t, true);
    inputs.push_back(t);
  }
  Tensor out = fn(inputs);
  std::vector<double> r;
  {
    Tensor rt = random_tensor(out.shape(), DType::f64, 99, -1.f, 1.f);
    r = rt.to_double_vector();
  }
  // Analytic: backward with upstream gradient R.
  ag::backward(out, Tensor::from_vector<double>(r, out.shape()));
  GradCheckResult res;
  for (size_t i = 0; i < inputs.size(); i++) {
    if (!ag::requires_grad(inputs[i])) continue;
    Tensor g = ag::grad(inputs[i]);
    std::vector<double> ga = g.defined() ? g.to_double_vector() : std::vector<double>(inputs[i].numel(), 0.0);
    Tensor probe = ag::detach(inputs[i]);
    double* p = probe.data<double>();
    std::vector<Tensor> args;
    for (auto& t : inputs) args.push_back(t.defined() ? ag::detach(t) : t);
    for (int64_t k = 0; k < probe.numel(); k++) {
      double orig = p[k];
      double f1, f0;
      {
        ag::NoGradGuard ng;
        p[k] = orig + h;
        f1 = weighted_sum(fn(args), r);
        p[k] = orig - h;
        f0 = weighted_sum(fn(args), r);
        p[k] = orig;
      }
      double num = (f1 - f0) / (2 * h);
      double err = std::fabs(ga[k] - num) / std::max(std::fabs(ga[k]) + std::fabs(num), 1e-3);
      if (!std::isfinite(ga[k])) err = INFINITY;
      if (err > res.max_rel_error) {
        res.max_rel_error = err;
        std::ostringstream os;
        os << "input " << i << " element " << k << ": analytic " << ga[k] << " numeric " << num;
        res.worst = os.str();
      }
    }
  }
  return res;
}

DeviceCompare compare_cpu_cuda(const OpFn& fn, const std::vector<Tensor>& cpu_inputs, DType cuda_dtype,
                               bool check_grads) {
  auto run = [&](Device dev, DType fdt, std::vector<Tensor>& ins) {
    ins.clear();
    for (const auto& t : cpu_inputs) {
      if (!t.defined()) {
        ins.push_back(t);
        continue;
      }
      Tensor x = is_floating(t.dtype()) ? Tensor::from_floats(t.to_float_vector(), t.shape(), fdt, dev) : t.to(dev);
      if (check_grads && is_floating(t.dtype())) ag::set_requires_grad(x, true);
      ins.push_back(x);
    }
    Tensor out = fn(ins);
    if (check_grads && ag::requires_grad(out)) {
      // The same R on both devices: values representable in cuda_dtype, so neither side's
      // upstream gradient is rounded differently from the other's.
      auto rv = random_tensor(out.shape(), cuda_dtype, 99, -1.f, 1.f).to_float_vector();
      Tensor r = Tensor::from_floats(rv, out.shape(), out.dtype(), dev);
      ag::backward(out, r);
    }
    return out;
  };
  std::vector<Tensor> ci, gi;
  Tensor co = run(Device::cpu(), DType::f32, ci);
  Tensor go = run(Device::cuda(0), cuda_dtype, gi);
  DeviceCompare res;
  res.out_rel = rel_error(go, co);
  for (size_t i = 0; i < ci.size(); i++) {
    double e = 0;
    if (check_grads && ci[i].defined() && ag::requires_grad(ci[i])) {
      Tensor a = ag::grad(gi[i]), b = ag::grad(ci[i]);
      e = (a.defined() && b.defined()) ? rel_error(a, b) : (a.defined() == b.defined() ? 0 : INFINITY);
    }
    res.grad_rel.push_back(e);
  }
  return res;
}

}  // namespace lmf::test
