// The fast kernel tables: the reference table (kernels/ops.h) with the kernels
// that have a faster version replaced, one table per CPU level.
//
//   scalar: matmul threaded, integer dot products of quant::vec_dot on
//           quantized activations (float weights: the reference arithmetic);
//           everything else the reference.
//   (every level: matmul_group runs several products of one input in one
//   hand-off to the threads, kernels/matmul.h)
//   avx2:   AVX2/FMA/F16C matmul for every weight type (kernels/matmul.h), and
//           gated_delta_rule (chunked for prefill), attention (blocked, online
//           softmax), rmsnorm, l2norm,
//           silu, sigmoid, swiglu, add_rmsnorm, sigmoid_mul, rmsnorm_silu_gate,
//           conv1d_silu (kernels/fast_kernels.h);
//           softmax, rope, kv_store stay the reference.
//   avx512: no table of its own yet (uses avx2).
//
// Usage, at program start (pocket run / bench / serve):
//   pocket::set_thread_count(threads);           // util/thread_pool.h, optional
//   pocket::kernels::use_best_ops();             // = set_ops(best_ops())
//
// reference_ops() stays available for fidelity tests (exact f32 activations).
// With quantized weights the fast matmul quantizes activations to 8 bits
// (spec/gguf.md §8), so its results differ from the reference by that noise.
#pragma once

#include <vector>

#include "kernels/ops.h"
#include "util/cpu_features.h"

namespace pocket::kernels {

// The table of a CPU level; a level above the machine's is clamped to it, and a
// level with no table of its own uses the next lower one (avx512 -> avx2 today).
const Ops& ops_for_level(CpuLevel level);
// ops_for_level(cpu_level()): the machine's best, lowered by POCKET_CPU_LEVEL.
const Ops& best_ops();
// set_ops(best_ops()).
void use_best_ops();

// The levels whose tables exist on this machine, lowest first (for tests).
std::vector<CpuLevel> available_levels();

}  // namespace pocket::kernels
