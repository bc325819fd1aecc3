// Scalar reference kernels (spec/qwen35.md section 2). Clarity first: every
// kernel is the formula of the spec written as loops, in f32 unless noted.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/ops.h"
#include "quant/quant.h"
#include "util/error.h"
#include "util/fp16.h"

namespace pocket::kernels {

float silu(float x) {
  return x / (1.0f + std::exp(-x));
}
float sigmoid(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}
float softplus(float x) {
  return x > 20.0f ? x : std::log1p(std::exp(x));
}

// 8 independent partial sums: plain C++ that compilers can keep in vector
// registers, and a little more accurate than one running sum.
float dot8(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
  for (; i < n; i++) acc[0] += a[i] * b[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

namespace {

// A per-thread row buffer for expanding one quantized weight row.
float* scratch_row(int64_t n) {
  thread_local std::vector<float> buf;
  if (int64_t(buf.size()) < n) buf.resize(size_t(n));
  return buf.data();
}

void ref_matmul(const Mat& w, const float* x, int64_t n_rows, int64_t x_stride, float* y,
                int64_t y_stride) {
  const bool is_f32 = w.type == TensorType::F32;
  float* row = is_f32 ? nullptr : scratch_row(w.n_in);
  for (int64_t o = 0; o < w.n_out; o++) {
    const uint8_t* src = w.data + uint64_t(o) * w.row_bytes;
    const float* wrow;
    if (is_f32) {
      wrow = reinterpret_cast<const float*>(src);
    } else {
      quant::dequantize_row(w.type, src, row, w.n_in);
      wrow = row;
    }
    for (int64_t r = 0; r < n_rows; r++) y[r * y_stride + o] = dot8(wrow, x + r * x_stride, w.n_in);
  }
}

void ref_matmul_group(const MatmulOut* outs, int n_outs, const float* x, int64_t n_rows,
                      int64_t x_stride) {
  for (int i = 0; i < n_outs; i++)
    ref_matmul(outs[i].w, x, n_rows, x_stride, outs[i].y, outs[i].y_stride);
}

void ref_rmsnorm(const float* x, const float* w, int64_t n, float eps, float* y) {
  double sum = 0.0;  // sum of squares in double, as llama.cpp
  for (int64_t i = 0; i < n; i++) sum += double(x[i]) * double(x[i]);
  const float scale = float(1.0 / std::sqrt(sum / double(n) + double(eps)));
  for (int64_t i = 0; i < n; i++) y[i] = w ? x[i] * scale * w[i] : x[i] * scale;
}

void ref_l2norm(float* x, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) sum += double(x[i]) * double(x[i]);
  const float scale = float(1.0 / std::max(std::sqrt(sum), double(eps)));
  for (int64_t i = 0; i < n; i++) x[i] *= scale;
}

void ref_softmax(float* x, int64_t n) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; i++) max = std::max(max, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void ref_silu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = silu(x[i]);
}

void ref_sigmoid(float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = sigmoid(x[i]);
}

void ref_swiglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = silu(gate[i]) * up[i];
}

void ref_add_rmsnorm(float* x, const float* add, const float* w, int64_t n, float eps, float* y) {
  for (int64_t i = 0; i < n; i++) x[i] += add[i];
  ref_rmsnorm(x, w, n, eps, y);
}

void ref_sigmoid_mul(const float* gate, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] *= sigmoid(gate[i]);
}

void ref_rmsnorm_silu_gate(float* x, const float* z, const float* w, int64_t n, float eps) {
  ref_rmsnorm(x, w, n, eps, x);
  for (int64_t i = 0; i < n; i++) x[i] *= silu(z[i]);
}

void ref_rope(float* x, int64_t n_heads, int64_t head_dim, const RopeParams& p,
              const int64_t pos[4]) {
  const int64_t half = p.n_rot / 2;
  const int32_t* sec = p.sections;
  const int64_t sec_total = int64_t(sec[0]) + sec[1] + sec[2] + sec[3];
  for (int64_t i = 0; i < half; i++) {
    // Which position component drives pair i (IMROPE interleaving).
    const int64_t s = sec_total > 0 ? i % sec_total : i;
    int64_t which = 3;
    if (s % 3 == 0 && s < 3 * int64_t(sec[0]))
      which = 0;
    else if (s % 3 == 1 && s < 3 * int64_t(sec[1]))
      which = 1;
    else if (s % 3 == 2 && s < 3 * int64_t(sec[2]))
      which = 2;
    // The angle in double: positions reach 1e5 and beyond.
    const double freq = std::pow(double(p.theta), -2.0 * double(i) / double(p.n_rot));
    const double angle = double(pos[which]) * freq;
    const float c = float(std::cos(angle)), sn = float(std::sin(angle));
    for (int64_t h = 0; h < n_heads; h++) {
      float* v = x + h * head_dim;
      const float a = v[i], b = v[i + half];
      v[i] = a * c - b * sn;
      v[i + half] = a * sn + b * c;
    }
  }
}

void store_row(KvType type, uint8_t* dst, const float* src, int64_t n) {
  if (type == KvType::F32) {
    std::memcpy(dst, src, size_t(n) * 4);
  } else if (type == KvType::F16) {
    auto* h = reinterpret_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; i++) h[i] = f32_to_f16(src[i]);
  } else {
    quant::quantize_row(TensorType::Q8_0, src, dst, n);
  }
}

void ref_kv_store(const KvView& kv, int64_t pos, const float* k, const float* v) {
  store_row(kv.type, kv.k_row(pos), k, kv.row_elems);
  store_row(kv.type, kv.v_row(pos), v, kv.row_elems);
}

// One head's slice (values offset .. offset + n) of a cached row as f32,
// converted into buf unless stored as f32.
const float* load_head(KvType type, const uint8_t* row, int64_t offset, int64_t n, float* buf) {
  if (type == KvType::F32) return reinterpret_cast<const float*>(row) + offset;
  if (type == KvType::Q8_0) {
    quant::dequantize_row(TensorType::Q8_0, row + kv_bytes(type, offset), buf, n);
    return buf;
  }
  const auto* h = reinterpret_cast<const uint16_t*>(row) + offset;
  for (int64_t i = 0; i < n; i++) buf[i] = f16_to_f32(h[i]);
  return buf;
}

void ref_attention(const AttentionShape& s, const float* q, int64_t q_stride, int64_t n_tokens,
                   int64_t pos0, const KvView& kv, float* out, int64_t out_stride) {
  const int64_t D = s.head_dim;
  const int64_t group = s.n_head / s.n_head_kv;  // query heads per KV head
  thread_local std::vector<float> scores, head_buf;
  if (int64_t(scores.size()) < pos0 + n_tokens) scores.resize(size_t(pos0 + n_tokens));
  if (int64_t(head_buf.size()) < D) head_buf.resize(size_t(D));
  for (int64_t t = 0; t < n_tokens; t++) {
    const int64_t n_ctx = pos0 + t + 1;  // causal: positions 0 .. own position
    for (int64_t j = 0; j < s.n_head; j++) {
      const float* qj = q + t * q_stride + j * D;
      const int64_t m = j / group;
      for (int64_t p = 0; p < n_ctx; p++) {
        const float* kp = load_head(kv.type, kv.k_row(p), m * D, D, head_buf.data());
        scores[size_t(p)] = dot8(qj, kp, D) * s.scale;
      }
      ref_softmax(scores.data(), n_ctx);
      float* o = out + t * out_stride + j * D;
      std::fill(o, o + D, 0.0f);
      for (int64_t p = 0; p < n_ctx; p++) {
        const float* vp = load_head(kv.type, kv.v_row(p), m * D, D, head_buf.data());
        const float w = scores[size_t(p)];
        for (int64_t d = 0; d < D; d++) o[d] += w * vp[d];
      }
    }
  }
}

void ref_conv1d_silu(int64_t n_tokens, int64_t channels, int64_t kernel, const float* x,
                     int64_t x_stride, const float* w, float* state, float* out,
                     int64_t out_stride) {
  const int64_t n_hist = kernel - 1;
  // Input at time u (negative: from the carried state).
  auto input = [&](int64_t u, int64_t ch) {
    return u >= 0 ? x[u * x_stride + ch] : state[(u + n_hist) * channels + ch];
  };
  for (int64_t t = 0; t < n_tokens; t++) {
    for (int64_t ch = 0; ch < channels; ch++) {
      float sum = 0.0f;
      for (int64_t i = 0; i < kernel; i++) sum += w[ch * kernel + i] * input(t - n_hist + i, ch);
      out[t * out_stride + ch] = silu(sum);
    }
  }
  // The new state: the last kernel-1 raw inputs (state rows shift when the
  // segment is shorter than the history).
  for (int64_t r = 0; r < n_hist; r++) {
    const int64_t u = n_tokens - n_hist + r;
    if (u < 0) {
      std::memmove(state + r * channels, state + (u + n_hist) * channels, size_t(channels) * 4);
    } else {
      std::memcpy(state + r * channels, x + u * x_stride, size_t(channels) * 4);
    }
  }
}

void ref_gated_delta_rule(const DeltaNetShape& s, int64_t n_tokens, const float* q, const float* k,
                          int64_t qk_stride, const float* v, int64_t v_stride, const float* g,
                          const float* beta, int64_t gb_stride, float* state, float* out,
                          int64_t out_stride) {
  const int64_t dk = s.d_k, dv = s.d_v;
  thread_local std::vector<float> m;
  if (int64_t(m.size()) < dv) m.resize(size_t(dv));
  for (int64_t t = 0; t < n_tokens; t++) {
    for (int64_t h = 0; h < s.n_v; h++) {
      const int64_t kh = h % s.n_k;  // tiled GGUF head order
      const float* qh = q + t * qk_stride + kh * dk;
      const float* kh_vec = k + t * qk_stride + kh * dk;
      const float* vh = v + t * v_stride + h * dv;
      const float decay = std::exp(g[t * gb_stride + h]);
      const float b = beta[t * gb_stride + h];
      float* S = state + h * dk * dv;  // S[i][j], i over d_k, j over d_v
      // S <- exp(g) S;  m = S^T k
      std::fill(m.begin(), m.begin() + dv, 0.0f);
      for (int64_t i = 0; i < dk; i++) {
        float* Si = S + i * dv;
        for (int64_t j = 0; j < dv; j++) {
          Si[j] *= decay;
          m[size_t(j)] += Si[j] * kh_vec[i];
        }
      }
      // delta = beta (v - m);  S += k delta^T
      for (int64_t j = 0; j < dv; j++) m[size_t(j)] = b * (vh[j] - m[size_t(j)]);
      for (int64_t i = 0; i < dk; i++) {
        float* Si = S + i * dv;
        for (int64_t j = 0; j < dv; j++) Si[j] += kh_vec[i] * m[size_t(j)];
      }
      // o = S^T q
      float* o = out + t * out_stride + h * dv;
      std::fill(o, o + dv, 0.0f);
      for (int64_t i = 0; i < dk; i++) {
        const float* Si = S + i * dv;
        for (int64_t j = 0; j < dv; j++) o[j] += Si[j] * qh[i];
      }
    }
  }
}

void ref_deltanet_step(const DeltaNetStep& step);

const Ops kReference = {
    "reference",     ref_matmul,           ref_matmul_group,
    ref_rmsnorm,     ref_l2norm,           ref_softmax,
    ref_silu,        ref_sigmoid,          ref_swiglu,
    ref_add_rmsnorm, ref_sigmoid_mul,      ref_rmsnorm_silu_gate,
    ref_rope,        ref_kv_store,         ref_attention,
    ref_conv1d_silu, ref_gated_delta_rule, ref_deltanet_step,
};

void ref_deltanet_step(const DeltaNetStep& step) {
  deltanet_step_unfused(kReference, step);
}

const Ops* g_active = &kReference;

}  // namespace

void deltanet_step_unfused(const Ops& t, const DeltaNetStep& st) {
  const DeltaNetShape& s = st.shape;
  const int64_t key_dim = s.n_k * s.d_k;
  const int64_t conv_dim = 2 * key_dim + s.n_v * s.d_v;
  t.conv1d_silu(1, conv_dim, st.conv_kernel, st.x, conv_dim, st.conv_w, st.conv_state, st.u,
                conv_dim);
  float* q = st.u;
  float* k = st.u + key_dim;
  for (int64_t h = 0; h < s.n_k; h++) {
    t.l2norm(q + h * s.d_k, s.d_k, st.eps);
    t.l2norm(k + h * s.d_k, s.d_k, st.eps);
  }
  for (int64_t i = 0; i < key_dim; i++) q[i] *= st.q_scale;
  t.gated_delta_rule(s, 1, q, k, conv_dim, st.u + 2 * key_dim, conv_dim, st.g, st.beta, s.n_v,
                     st.state, st.out, s.n_v * s.d_v);
  for (int64_t h = 0; h < s.n_v; h++)
    t.rmsnorm_silu_gate(st.out + h * s.d_v, st.z + h * s.d_v, st.norm_w, s.d_v, st.eps);
}

const Ops& reference_ops() {
  return kReference;
}
const Ops& ops() {
  return *g_active;
}
void set_ops(const Ops& table) {
  g_active = &table;
}

}  // namespace pocket::kernels
