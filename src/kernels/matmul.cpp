// The level-independent matmul driver (activation quantization, threads, cache
// chunks) and the scalar level's kernels.
#include "kernels/matmul.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <vector>

#include "quant/blocks.h"
#include "quant/quant.h"
#include "quant/rounding.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace pocket::kernels {

namespace {

// Below this many multiply-adds a product runs on the calling thread: waking
// the pool costs more than it saves (the tiny beta/alpha projections).
constexpr int64_t kMinParallelMacs = 1 << 16;
// Activation rows are processed in chunks of about this many bytes, so that a
// chunk stays in the L2 cache while every weight row of a thread's share
// passes over it.
constexpr uint64_t kActChunkBytes = 192 * 1024;
// Weight rows per scheduling unit (a multiple of every kernel's row tile).
constexpr int64_t kRowGrain = 16;
// Decode (few activation rows): the threads claim weight rows as they go,
// each claim about 1 / (2 * threads) of the bytes still unclaimed (long
// contiguous runs first, for the memory streams), never less than this: the
// last claim of a group is what one thread may still be doing while the other
// waits, so the final claims are small (a few microseconds of work).
constexpr uint64_t kMinClaimBytes = 24 * 1024;
// From this many activation rows, each product is cut into a few claims per
// thread instead (prefill: a claim's activation chunks are re-read per claim).
constexpr int64_t kPrefillRows = 16;
constexpr int kPrefillClaimsPerThread = 4;
// Products per group handed to the threads at once (a longer group is split).
constexpr int kMaxGroup = 8;

bool is_float_type(TensorType t) {
  return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16;
}

// A growing, 64-byte aligned buffer owned by the calling thread: the quantized
// activations of the current product (workers only read it); one per
// activation format of a group.
uint8_t* act_buffer(int slot, uint64_t bytes) {
  struct Buffer {
    std::unique_ptr<uint8_t[]> storage;
    uint64_t capacity = 0;
    uint8_t* aligned = nullptr;
  };
  thread_local Buffer bufs[kMaxGroup];
  Buffer& buf = bufs[slot];
  if (buf.capacity < bytes) {
    const uint64_t capacity = std::max<uint64_t>(bytes, buf.capacity * 3 / 2);
    buf.storage.reset(new uint8_t[capacity + 64]);
    buf.capacity = capacity;
    const auto addr = reinterpret_cast<uintptr_t>(buf.storage.get());
    buf.aligned = buf.storage.get() + ((64 - addr % 64) % 64);
  }
  return buf.aligned;
}

// Runs the products of a group (at most kMaxGroup, same input rows). Each
// activation format is quantized once; the weight rows of all products are
// cut into claims that the threads take in order, so one hand-off serves the
// whole group. A product's values do not depend on the claims (every weight
// row is computed by the same kernel code whatever the split, and claims only
// depend on where they start, not on timing).
void run_matmul_group(CpuLevel level, const MatmulOut* outs, int n_outs, const float* x,
                      int64_t n_rows, int64_t x_stride, bool threaded) {
  if (n_rows <= 0) return;
  struct Entry {
    Mat w;
    float* y;
    int64_t y_stride;
    MatmulKernel k;
    const uint8_t* act;
    uint64_t act_stride;
    int64_t act_chunk_rows;  // activation rows per cache chunk
    int64_t first_row;       // its first weight row in the group's numbering
  };
  Entry e[kMaxGroup];
  int n = 0;
  int64_t macs = 0;
  for (int i = 0; i < n_outs; i++) {
    const MatmulOut& o = outs[i];
    if (o.w.n_out <= 0) continue;
    Entry& en = e[n++];
    en.w = o.w;
    en.y = o.y;
    en.y_stride = o.y_stride;
    en.k = matmul_kernel(level, o.w.type);
    if (!en.k.block)
      fail("matmul: weight type ", gguf::type_name(o.w.type), " is not supported at CPU level ",
           cpu_level_name(level));
    macs += o.w.n_out * o.w.n_in * n_rows;
  }
  if (n == 0) return;
  const bool parallel =
      threaded && macs >= kMinParallelMacs && thread_pool().size() > 1 && !ThreadPool::in_task();

  // Quantize the input once per activation format (and row length).
  for (int i = 0; i < n; i++) {
    Entry& en = e[i];
    if (!en.k.quantize_act) {
      en.act = reinterpret_cast<const uint8_t*>(x);
      en.act_stride = uint64_t(x_stride) * 4;
      continue;
    }
    en.act_stride = en.k.act_row_bytes(en.k.act_type, en.w.n_in);
    en.act = nullptr;
    for (int j = 0; j < i; j++)
      if (e[j].k.quantize_act && e[j].k.act_type == en.k.act_type && e[j].w.n_in == en.w.n_in) {
        en.act = e[j].act;
        break;
      }
    if (en.act) continue;
    uint8_t* buf = act_buffer(i, uint64_t(n_rows) * en.act_stride);
    auto quantize_rows = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++)
        en.k.quantize_act(en.k.act_type, x + r * x_stride, en.w.n_in,
                          buf + uint64_t(r) * en.act_stride);
    };
    if (parallel && n_rows >= 8)
      parallel_for(n_rows, quantize_rows);
    else
      quantize_rows(0, n_rows);
    en.act = buf;
  }

  const int n_threads = parallel ? thread_pool().size() : 1;
  // Weight rows are numbered across the group: entry i owns [first_row, first_row + n_out).
  int64_t total_rows = 0;
  for (int i = 0; i < n; i++) {
    Entry& en = e[i];
    const uint64_t row_footprint = en.k.quantize_act ? en.act_stride : uint64_t(en.w.n_in) * 4;
    en.act_chunk_rows = std::max<int64_t>(
        4, int64_t(kActChunkBytes / std::max<uint64_t>(1, row_footprint)) & ~int64_t(3));
    en.first_row = total_rows;
    total_rows += en.w.n_out;
  }
  const bool guided = parallel && n_rows < kPrefillRows;

  auto entry_of = [&](int64_t row) {
    int i = 0;
    while (i + 1 < n && e[i + 1].first_row <= row) i++;
    return i;
  };
  // Rows [g0, g1) of the group, inside one entry.
  auto run_rows = [&](int64_t g0, int64_t g1) {
    const Entry& en = e[entry_of(g0)];
    const int64_t o0 = g0 - en.first_row, o1 = g1 - en.first_row;
    for (int64_t r0 = 0; r0 < n_rows; r0 += en.act_chunk_rows) {
      const int64_t nr = std::min(en.act_chunk_rows, n_rows - r0);
      en.k.block(en.w.type, en.w.data + uint64_t(o0) * en.w.row_bytes, en.w.row_bytes, o1 - o0,
                 en.act + uint64_t(r0) * en.act_stride, en.act_stride, nr, en.w.n_in,
                 en.y + r0 * en.y_stride + o0, en.y_stride);
    }
  };
  // The size of the claim that starts at group row g (rows, a multiple of
  // kRowGrain unless the entry ends first).
  auto claim_rows = [&](int64_t g) {
    const Entry& en = e[entry_of(g)];
    const int64_t entry_end = en.first_row + en.w.n_out;
    int64_t rows;
    if (!parallel) {
      rows = entry_end - g;
    } else if (guided) {
      uint64_t left = 0;  // unclaimed bytes of the group
      for (int i = 0; i < n; i++) {
        const int64_t from = std::max(g, e[i].first_row);
        const int64_t to = e[i].first_row + e[i].w.n_out;
        if (from < to) left += uint64_t(to - from) * e[i].w.row_bytes;
      }
      const uint64_t want = std::max(kMinClaimBytes, left / uint64_t(2 * n_threads));
      rows = int64_t(want / std::max<uint64_t>(1, en.w.row_bytes));
    } else {
      rows = (en.w.n_out + n_threads * kPrefillClaimsPerThread - 1) /
             (n_threads * kPrefillClaimsPerThread);
    }
    rows = std::max(kRowGrain, (rows + kRowGrain - 1) / kRowGrain * kRowGrain);
    return std::min(rows, entry_end - g);
  };
  if (!parallel) {
    for (int64_t g = 0; g < total_rows;) {
      const int64_t len = claim_rows(g);
      run_rows(g, g + len);
      g += len;
    }
    return;
  }
  std::atomic<int64_t> next{0};
  thread_pool().run([&](int, int) {
    int64_t g = next.load(std::memory_order_relaxed);
    while (g < total_rows) {
      const int64_t len = claim_rows(g);
      if (next.compare_exchange_weak(g, g + len, std::memory_order_relaxed)) {
        run_rows(g, g + len);
        g = next.load(std::memory_order_relaxed);
      }
    }
  });
}

void run_matmul_groups(CpuLevel level, const MatmulOut* outs, int n_outs, const float* x,
                       int64_t n_rows, int64_t x_stride, bool threaded) {
  for (int i = 0; i < n_outs; i += kMaxGroup)
    run_matmul_group(level, outs + i, std::min(kMaxGroup, n_outs - i), x, n_rows, x_stride,
                     threaded);
}

}  // namespace

void quantize_act_blocks(TensorType act_type, const float* x, int64_t n, uint8_t* dst) {
  if (act_type != TensorType::Q8_0 && act_type != TensorType::Q8_1) {
    quant::quantize_row(act_type, x, dst, n);
    return;
  }
  const bool with_sum = act_type == TensorType::Q8_1;
  const int64_t block_bytes = with_sum ? 36 : 34;
  for (int64_t b = 0; b < n / 32; b++, x += 32) {
    uint8_t* blk = dst + b * block_bytes;
    float amax = 0.0f;
    for (int e = 0; e < 32; e++) amax = std::max(amax, std::fabs(x[e]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    auto* qs = reinterpret_cast<int8_t*>(blk + (with_sum ? 4 : 2));
    int sum = 0;
    for (int e = 0; e < 32; e++) {
      qs[e] = int8_t(quant::clamp_to(quant::nearest_int(x[e] * id), -127, 127));
      sum += qs[e];
    }
    quant::store_f16(blk, d);
    if (with_sum) quant::store_f16(blk + 2, float(sum) * d);
  }
}

MatmulKernel matmul_kernel(CpuLevel level, TensorType weight_type) {
  if (level >= CpuLevel::kAvx2 && machine_cpu_level() >= CpuLevel::kAvx2) {
    MatmulKernel k = avx2::kernel_for(weight_type);
    if (k.block) return k;
  }
  return scalar::kernel_for(weight_type);
}

void matmul_at_level(CpuLevel level, const Mat& w, const float* x, int64_t n_rows, int64_t x_stride,
                     float* y, int64_t y_stride) {
  const MatmulOut out{w, y, y_stride};
  run_matmul_group(level, &out, 1, x, n_rows, x_stride, /*threaded=*/true);
}

void matmul_group_at_level(CpuLevel level, const MatmulOut* outs, int n_outs, const float* x,
                           int64_t n_rows, int64_t x_stride) {
  run_matmul_groups(level, outs, n_outs, x, n_rows, x_stride, /*threaded=*/true);
}

void matmul_single_thread(CpuLevel level, const Mat& w, const float* x, int64_t n_rows,
                          int64_t x_stride, float* y, int64_t y_stride) {
  const MatmulOut out{w, y, y_stride};
  run_matmul_group(level, &out, 1, x, n_rows, x_stride, /*threaded=*/false);
}

// ---------------------------------------------------------------------------
// Scalar level: the reference arithmetic, organised like the fast levels.

namespace scalar {

namespace {

float* scratch_row(int64_t n) {
  thread_local std::vector<float> buf;
  if (int64_t(buf.size()) < n) buf.resize(size_t(n));
  return buf.data();
}

void float_block(TensorType type, const uint8_t* w, uint64_t w_row_bytes, int64_t n_out,
                 const uint8_t* act, uint64_t act_stride, int64_t n_act, int64_t n, float* y,
                 int64_t y_stride) {
  float* row = type == TensorType::F32 ? nullptr : scratch_row(n);
  for (int64_t o = 0; o < n_out; o++) {
    const uint8_t* src = w + uint64_t(o) * w_row_bytes;
    const float* wrow = reinterpret_cast<const float*>(src);
    if (row) {
      quant::dequantize_row(type, src, row, n);
      wrow = row;
    }
    // The reference's dot product, so that this path matches it bit for bit.
    for (int64_t r = 0; r < n_act; r++)
      y[r * y_stride + o] =
          dot8(wrow, reinterpret_cast<const float*>(act + uint64_t(r) * act_stride), n);
  }
}

uint64_t block_act_row_bytes(TensorType act_type, int64_t n) {
  return gguf::row_bytes(act_type, uint64_t(n));
}

void block_quantize_act(TensorType act_type, const float* x, int64_t n, uint8_t* row) {
  if (act_type == TensorType::Q8_0 || act_type == TensorType::Q8_1)
    quantize_act_blocks(act_type, x, n, row);
  else
    quant::quantize_row(act_type, x, row, n);
}

void integer_block(TensorType type, const uint8_t* w, uint64_t w_row_bytes, int64_t n_out,
                   const uint8_t* act, uint64_t act_stride, int64_t n_act, int64_t n, float* y,
                   int64_t y_stride) {
  for (int64_t o = 0; o < n_out; o++)
    for (int64_t r = 0; r < n_act; r++)
      y[r * y_stride + o] =
          quant::vec_dot(type, w + uint64_t(o) * w_row_bytes, act + uint64_t(r) * act_stride, n);
}

}  // namespace

MatmulKernel kernel_for(TensorType weight_type) {
  MatmulKernel k;
  if (is_float_type(weight_type)) {
    k.act_type = weight_type;
    k.block = float_block;
    return k;
  }
  switch (weight_type) {
    case TensorType::Q4_0:
    case TensorType::Q4_1:
    case TensorType::Q5_0:
    case TensorType::Q5_1:
    case TensorType::Q8_0:
    case TensorType::Q2_K:
    case TensorType::Q3_K:
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
    case TensorType::IQ4_NL:
    case TensorType::IQ4_XS:
      k.act_type = quant::activation_type(weight_type);
      k.act_row_bytes = block_act_row_bytes;
      k.quantize_act = block_quantize_act;
      k.block = integer_block;
      return k;
    default:
      return k;
  }
}

}  // namespace scalar

}  // namespace pocket::kernels
