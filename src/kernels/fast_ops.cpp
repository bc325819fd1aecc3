#include "kernels/fast_ops.h"

#include "kernels/fast_kernels.h"
#include "kernels/matmul.h"

namespace pocket::kernels {

namespace {

// Levels that have a table of their own.
CpuLevel table_level(CpuLevel level) {
  if (level > machine_cpu_level()) level = machine_cpu_level();
  return level >= CpuLevel::kAvx2 ? CpuLevel::kAvx2 : CpuLevel::kScalar;
}

void matmul_scalar(const Mat& w, const float* x, int64_t n_rows, int64_t x_stride, float* y,
                   int64_t y_stride) {
  matmul_at_level(CpuLevel::kScalar, w, x, n_rows, x_stride, y, y_stride);
}

void matmul_avx2(const Mat& w, const float* x, int64_t n_rows, int64_t x_stride, float* y,
                 int64_t y_stride) {
  matmul_at_level(CpuLevel::kAvx2, w, x, n_rows, x_stride, y, y_stride);
}

void matmul_group_scalar(const MatmulOut* outs, int n_outs, const float* x, int64_t n_rows,
                         int64_t x_stride) {
  matmul_group_at_level(CpuLevel::kScalar, outs, n_outs, x, n_rows, x_stride);
}

void matmul_group_avx2(const MatmulOut* outs, int n_outs, const float* x, int64_t n_rows,
                       int64_t x_stride) {
  matmul_group_at_level(CpuLevel::kAvx2, outs, n_outs, x, n_rows, x_stride);
}

Ops make_table(const char* name, decltype(Ops::matmul) matmul,
               decltype(Ops::matmul_group) matmul_group) {
  Ops t = reference_ops();
  t.name = name;
  t.matmul = matmul;
  t.matmul_group = matmul_group;
  return t;
}

}  // namespace

const Ops& ops_for_level(CpuLevel level) {
  static const Ops scalar = make_table("scalar", matmul_scalar, matmul_group_scalar);
  static const Ops avx2 = [] {
    Ops t = make_table("avx2", matmul_avx2, matmul_group_avx2);
    t.gated_delta_rule = avx2::gated_delta_rule;
    t.attention = avx2::attention;
    t.rmsnorm = avx2::rmsnorm;
    t.l2norm = avx2::l2norm;
    t.silu = avx2::silu;
    t.sigmoid = avx2::sigmoid;
    t.swiglu = avx2::swiglu;
    t.add_rmsnorm = avx2::add_rmsnorm;
    t.sigmoid_mul = avx2::sigmoid_mul;
    t.rmsnorm_silu_gate = avx2::rmsnorm_silu_gate;
    t.conv1d_silu = avx2::conv1d_silu;
    t.deltanet_step = avx2::deltanet_step;
    return t;
  }();
  return table_level(level) == CpuLevel::kAvx2 ? avx2 : scalar;
}

const Ops& best_ops() {
  return ops_for_level(cpu_level());
}

void use_best_ops() {
  set_ops(best_ops());
}

std::vector<CpuLevel> available_levels() {
  std::vector<CpuLevel> out{CpuLevel::kScalar};
  if (machine_cpu_level() >= CpuLevel::kAvx2) out.push_back(CpuLevel::kAvx2);
  return out;
}

}  // namespace pocket::kernels
