// The level-independent matmul driver (activation quantization, threads, cache
// chunks) and the scalar level's kernels.
#include "kernels/matmul.h"

#include <algorithm>
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

bool is_float_type(TensorType t) {
  return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16;
}

// A growing, 64-byte aligned buffer owned by the calling thread: the quantized
// activations of the current product (workers only read it).
uint8_t* act_buffer(uint64_t bytes) {
  struct Buffer {
    std::unique_ptr<uint8_t[]> storage;
    uint64_t capacity = 0;
    uint8_t* aligned = nullptr;
  };
  thread_local Buffer buf;
  if (buf.capacity < bytes) {
    const uint64_t capacity = std::max<uint64_t>(bytes, buf.capacity * 3 / 2);
    buf.storage.reset(new uint8_t[capacity + 64]);
    buf.capacity = capacity;
    const auto addr = reinterpret_cast<uintptr_t>(buf.storage.get());
    buf.aligned = buf.storage.get() + ((64 - addr % 64) % 64);
  }
  return buf.aligned;
}

void run_matmul(CpuLevel level, const Mat& w, const float* x, int64_t n_rows, int64_t x_stride,
                float* y, int64_t y_stride, bool threaded) {
  if (n_rows <= 0 || w.n_out <= 0) return;
  const MatmulKernel k = matmul_kernel(level, w.type);
  if (!k.block)
    fail("matmul: weight type ", gguf::type_name(w.type), " is not supported at CPU level ",
         cpu_level_name(level));
  const int64_t n = w.n_in;

  const uint8_t* act;
  uint64_t act_stride;
  if (k.quantize_act) {
    act_stride = k.act_row_bytes(k.act_type, n);
    uint8_t* buf = act_buffer(uint64_t(n_rows) * act_stride);
    auto quantize_rows = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++)
        k.quantize_act(k.act_type, x + r * x_stride, n, buf + uint64_t(r) * act_stride);
    };
    if (threaded && n_rows >= 8)
      parallel_for(n_rows, quantize_rows);
    else
      quantize_rows(0, n_rows);
    act = buf;
  } else {
    act = reinterpret_cast<const uint8_t*>(x);
    act_stride = uint64_t(x_stride) * 4;
  }

  const uint64_t row_footprint = k.quantize_act ? act_stride : uint64_t(n) * 4;
  const int64_t chunk_rows = std::max<int64_t>(
      4, int64_t(kActChunkBytes / std::max<uint64_t>(1, row_footprint)) & ~int64_t(3));
  auto weight_rows = [&](int64_t o0, int64_t o1) {
    for (int64_t r0 = 0; r0 < n_rows; r0 += chunk_rows) {
      const int64_t nr = std::min(chunk_rows, n_rows - r0);
      k.block(w.type, w.data + uint64_t(o0) * w.row_bytes, w.row_bytes, o1 - o0,
              act + uint64_t(r0) * act_stride, act_stride, nr, n, y + r0 * y_stride + o0, y_stride);
    }
  };
  const int64_t macs = w.n_out * n * n_rows;
  if (threaded && macs >= kMinParallelMacs)
    parallel_for_chunked(w.n_out, weight_rows, kRowGrain);
  else
    weight_rows(0, w.n_out);
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
  run_matmul(level, w, x, n_rows, x_stride, y, y_stride, /*threaded=*/true);
}

void matmul_single_thread(CpuLevel level, const Mat& w, const float* x, int64_t n_rows,
                          int64_t x_stride, float* y, int64_t y_stride) {
  run_matmul(level, w, x, n_rows, x_stride, y, y_stride, /*threaded=*/false);
}

// ---------------------------------------------------------------------------
// Scalar level: the reference arithmetic, organised like the fast levels.

namespace scalar {

namespace {

// The reference kernels' dot product (8 partial sums), so that the float path
// matches reference_ops().matmul bit for bit.
float dot8(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
  for (; i < n; i++) acc[0] += a[i] * b[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

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
