// The Qwen3.5 forward pass (spec/qwen35.md section 2), straight-line per block.
//
// Rows: the batch's tokens are laid out segment after segment, one row each.
// Matrix products run over all rows at once; attention and the delta-net
// recurrence run per segment against that segment's sequence state.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/model.h"
#include "quant/quant.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace pocket::model {

namespace {

// Grows a buffer to at least n elements (never shrinks, so steady-state
// forward calls do not allocate).
template <typename T>
T* grow(std::vector<T>& v, int64_t n) {
  if (int64_t(v.size()) < n) v.resize(size_t(n));
  return v.data();
}

// Calls fn(r) for every row r < n, split across the thread pool when there are
// enough rows for the hand-off to pay (prefill); decode rows run inline. fn
// must only call the per-row kernels (no kernel that uses the pool itself).
template <typename F>
void for_rows(int64_t n, F&& fn) {
  constexpr int64_t kRowsPerTask = 4;
  if (n <= kRowsPerTask) {
    for (int64_t r = 0; r < n; r++) fn(r);
    return;
  }
  parallel_for_chunked(
      n,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) fn(r);
      },
      kRowsPerTask);
}

}  // namespace

void Model::forward(const Batch& batch, Workspace& ws) const {
  const Config& c = config_;
  const kernels::Ops& k = kernels::ops();
  const int64_t H = c.n_embd;
  const int64_t n = batch.n_tokens();

  // Check the whole batch before changing any state.
  for (size_t s = 0; s < batch.segments.size(); s++) {
    const Segment& seg = batch.segments[s];
    if (!seg.seq) fail("forward: segment ", s, " has no sequence");
    if (seg.tokens.empty()) fail("forward: segment ", s, " has no tokens");
    for (size_t other = 0; other < s; other++)
      if (batch.segments[other].seq == seg.seq)
        fail("forward: segments ", other, " and ", s, " continue the same sequence");
    for (int32_t id : seg.tokens)
      if (id < 0 || id >= c.n_vocab)
        fail("forward: token id ", id, " out of range (vocabulary of ", c.n_vocab, ")");
  }
  for (size_t s = 0; s < batch.segments.size(); s++) {
    const Segment& seg = batch.segments[s];
    seg.seq->reserve(int64_t(seg.tokens.size()));  // throws before any state changes
  }

  // Rows of each segment, positions, and which rows want logits.
  ws.rows_.clear();
  ws.segments_.clear();
  ws.wanted_.clear();
  std::vector<int64_t>& wanted = ws.wanted_;
  int64_t* pos = grow(ws.pos_, n);
  {
    int64_t row = 0;
    for (size_t s = 0; s < batch.segments.size(); s++) {
      const Segment& seg = batch.segments[s];
      const int64_t len = int64_t(seg.tokens.size());
      ws.segments_.push_back({row, len, seg.seq->n_tokens()});
      for (int64_t t = 0; t < len; t++, row++) {
        pos[row] = seg.seq->n_tokens() + t;
        const bool want =
            seg.logits == Logits::kAll || (seg.logits == Logits::kLast && t == len - 1);
        if (want) {
          ws.rows_.push_back({int32_t(s), int32_t(t)});
          wanted.push_back(row);
        }
      }
    }
  }

  float* x = grow(ws.x, n * H);
  grow(ws.xn, n * H);
  grow(ws.out, n * H);

  // Token embeddings: row `id` of token_embd, expanded to f32.
  {
    int64_t row = 0;
    for (const Segment& seg : batch.segments)
      for (int32_t id : seg.tokens) {
        const uint8_t* src = token_embd_.data + uint64_t(id) * token_embd_.row_bytes;
        quant::dequantize_row(token_embd_.type, src, x + row * H, H);
        row++;
      }
  }

  // Each residual add is fused with the norm that reads its result: after a
  // mixer with the layer's post-norm, after an FFN with the next layer's
  // input norm (or the output norm).
  float* xn = ws.xn.data();
  float* out = ws.out.data();
  for_rows(
      n, [&](int64_t r) { k.rmsnorm(x + r * H, layers_[0].attn_norm, H, c.rms_eps, xn + r * H); });
  int64_t n_rows = n;  // rows still flowing (the last layer's FFN only needs wanted rows)
  for (size_t il = 0; il < layers_.size(); il++) {
    const Layer& L = layers_[il];

    // Mixer: x += Attention(xn) or DeltaNet(xn), xn = norm(x).
    if (L.kind == LayerKind::kAttention)
      attention_block(L, batch, ws, n);
    else
      deltanet_block(L, batch, ws, n);
    if (il + 1 == layers_.size() && int64_t(wanted.size()) < n) {
      // After the last mixer only the rows that want logits matter: keep those.
      for (size_t w = 0; w < wanted.size(); w++) {
        const int64_t src = wanted[w];
        for (int64_t i = 0; i < H; i++) x[int64_t(w) * H + i] = x[src * H + i] + out[src * H + i];
      }
      n_rows = int64_t(wanted.size());
      for_rows(n_rows,
               [&](int64_t r) { k.rmsnorm(x + r * H, L.post_norm, H, c.rms_eps, xn + r * H); });
    } else {
      for_rows(n, [&](int64_t r) {
        k.add_rmsnorm(x + r * H, out + r * H, L.post_norm, H, c.rms_eps, xn + r * H);
      });
    }

    // Feed-forward: x += FFN(xn), xn = next norm(x).
    if (c.moe)
      moe_block(L, ws, n_rows);
    else
      ffn_block(L, ws, n_rows);
    const float* next_norm = il + 1 < layers_.size() ? layers_[il + 1].attn_norm : output_norm_;
    for_rows(n_rows, [&](int64_t r) {
      k.add_rmsnorm(x + r * H, out + r * H, next_norm, H, c.rms_eps, xn + r * H);
    });
  }

  // LM head for the wanted rows (now rows 0 .. n_logits-1, already normed).
  const int64_t n_logits = int64_t(wanted.size());
  ws.n_vocab_ = c.n_vocab;
  float* logits = grow(ws.logits_, n_logits * c.n_vocab);
  k.matmul(output_, xn, n_logits, H, logits, c.n_vocab);

  for (const Segment& seg : batch.segments) seg.seq->commit(int64_t(seg.tokens.size()));
}

// Gated full attention (spec 2.3). Input ws.xn, output ws.out, n rows.
void Model::attention_block(const Layer& L, const Batch& batch, Workspace& ws, int64_t n) const {
  const Config& c = config_;
  const kernels::Ops& k = kernels::ops();
  const AttentionWeights& w = L.attn;
  const int64_t H = c.n_embd, D = c.head_dim;
  const int64_t qg_width = 2 * c.n_head * D;  // per head: D query values, then D gate values
  const int64_t q_width = c.n_head * D;
  const int64_t kv_width = c.n_head_kv * D;

  float* qg = grow(ws.att_qg, n * qg_width);
  float* q = grow(ws.att_q, n * q_width);
  float* kk = grow(ws.att_k, n * kv_width);
  float* v = grow(ws.att_v, n * kv_width);
  float* y = grow(ws.att_y, n * q_width);

  const kernels::MatmulOut qkv[] = {{w.q, qg, qg_width}, {w.k, kk, kv_width}, {w.v, v, kv_width}};
  k.matmul_group(qkv, 3, ws.xn.data(), n, H);

  // Per-head RMSNorm of q and k, then rotary embedding on their first n_rot dims.
  kernels::RopeParams rope;
  rope.n_rot = c.n_rot;
  rope.theta = c.rope_theta;
  std::copy(c.rope_sections, c.rope_sections + 4, rope.sections);
  for_rows(n, [&](int64_t r) {
    for (int64_t j = 0; j < c.n_head; j++)
      k.rmsnorm(qg + r * qg_width + j * 2 * D, w.q_norm, D, c.rms_eps, q + r * q_width + j * D);
    for (int64_t m = 0; m < c.n_head_kv; m++) {
      float* km = kk + r * kv_width + m * D;
      k.rmsnorm(km, w.k_norm, D, c.rms_eps, km);
    }
    // Text only: the time, height and width components all equal the position.
    const int64_t p = ws.pos_[size_t(r)];
    const int64_t pos4[4] = {p, p, p, 0};
    k.rope(q + r * q_width, c.n_head, D, rope, pos4);
    k.rope(kk + r * kv_width, c.n_head_kv, D, rope, pos4);
  });

  // Per segment: append K and V to the sequence's cache, attend causally.
  kernels::AttentionShape shape{c.n_head, c.n_head_kv, D, c.attn_scale};
  for (size_t s = 0; s < ws.segments_.size(); s++) {
    const Workspace::SegmentRows& sr = ws.segments_[s];
    const kernels::KvView kv = batch.segments[s].seq->kv(L.kind_index);
    for (int64_t t = 0; t < sr.len; t++) {
      const int64_t r = sr.row0 + t;
      k.kv_store(kv, sr.pos0 + t, kk + r * kv_width, v + r * kv_width);
    }
    k.attention(shape, q + sr.row0 * q_width, q_width, sr.len, sr.pos0, kv, y + sr.row0 * q_width,
                q_width);
  }

  // Output gate: y_j *= sigmoid(gate_j), then the output projection.
  for_rows(n, [&](int64_t r) {
    for (int64_t j = 0; j < c.n_head; j++)
      k.sigmoid_mul(qg + r * qg_width + j * 2 * D + D, y + r * q_width + j * D, D);
  });
  k.matmul(w.output, y, n, q_width, ws.out.data(), H);
}

// Gated DeltaNet (spec 2.5). Input ws.xn, output ws.out, n rows.
void Model::deltanet_block(const Layer& L, const Batch& batch, Workspace& ws, int64_t n) const {
  const Config& c = config_;
  const kernels::Ops& k = kernels::ops();
  const DeltaNetWeights& w = L.deltanet;
  const int64_t H = c.n_embd;
  const int64_t n_k = c.ssm_n_k, n_v = c.ssm_n_v, d = c.ssm_d_state;
  const int64_t key_dim = c.ssm_key_dim(), value_dim = c.ssm_value_dim();
  const int64_t conv_dim = c.ssm_conv_dim();

  float* cin = grow(ws.dn_c, n * conv_dim);  // projected q|k|v before the conv
  float* z = grow(ws.dn_z, n * value_dim);
  float* beta = grow(ws.dn_b, n * n_v);
  float* g = grow(ws.dn_g, n * n_v);
  float* u = grow(ws.dn_u, n * conv_dim);  // after conv + SiLU: q | k | v
  float* o = grow(ws.dn_o, n * value_dim);

  const kernels::MatmulOut in_proj[] = {
      {w.qkv, cin, conv_dim}, {w.gate, z, value_dim}, {w.beta, beta, n_v}, {w.alpha, g, n_v}};
  k.matmul_group(in_proj, 4, ws.xn.data(), n, H);

  // Gates per value head: beta = sigmoid(b), log-decay g = a * softplus(alpha + dt_bias).
  k.sigmoid(beta, n * n_v);
  for (int64_t r = 0; r < n; r++)
    for (int64_t h = 0; h < n_v; h++)
      g[r * n_v + h] = w.a[h] * kernels::softplus(g[r * n_v + h] + w.dt_bias[h]);

  const kernels::DeltaNetShape shape{n_k, n_v, d, d};
  const float q_scale = float(1.0 / std::sqrt(double(d)));
  for (size_t s = 0; s < ws.segments_.size(); s++) {
    const Workspace::SegmentRows& sr = ws.segments_[s];
    SequenceMemory* seq = batch.segments[s].seq;
    if (sr.len == 1) {
      // Decode: conv, norms, delta rule and gated norm as one step (one
      // hand-off to the threads for all of it).
      kernels::DeltaNetStep step;
      step.shape = shape;
      step.conv_kernel = c.ssm_conv_kernel;
      step.conv_w = w.conv;
      step.conv_state = seq->conv_state(L.kind_index);
      step.x = cin + sr.row0 * conv_dim;
      step.u = u + sr.row0 * conv_dim;
      step.g = g + sr.row0 * n_v;
      step.beta = beta + sr.row0 * n_v;
      step.z = z + sr.row0 * value_dim;
      step.norm_w = w.norm;
      step.eps = c.rms_eps;
      step.q_scale = q_scale;
      step.state = seq->recurrent_state(L.kind_index);
      step.out = o + sr.row0 * value_dim;
      k.deltanet_step(step);
      continue;
    }
    // Causal depthwise conv with the carried inputs, then SiLU.
    k.conv1d_silu(sr.len, conv_dim, c.ssm_conv_kernel, cin + sr.row0 * conv_dim, conv_dim, w.conv,
                  seq->conv_state(L.kind_index), u + sr.row0 * conv_dim, conv_dim);
    // L2-normalise every q and k head; scale q by 1/sqrt(d_k).
    for_rows(sr.len, [&](int64_t t) {
      float* qr = u + (sr.row0 + t) * conv_dim;
      float* kr = qr + key_dim;
      for (int64_t h = 0; h < n_k; h++) {
        k.l2norm(qr + h * d, d, c.rms_eps);
        k.l2norm(kr + h * d, d, c.rms_eps);
      }
      for (int64_t i = 0; i < key_dim; i++) qr[i] *= q_scale;
    });
    // The recurrence over this segment's tokens.
    const float* q0 = u + sr.row0 * conv_dim;
    k.gated_delta_rule(shape, sr.len, q0, q0 + key_dim, conv_dim, q0 + 2 * key_dim, conv_dim,
                       g + sr.row0 * n_v, beta + sr.row0 * n_v, n_v,
                       seq->recurrent_state(L.kind_index), o + sr.row0 * value_dim, value_dim);
    // Gated RMSNorm per value head: norm(o) * w * silu(z).
    for_rows(sr.len, [&](int64_t t) {
      const int64_t r = sr.row0 + t;
      for (int64_t h = 0; h < n_v; h++)
        k.rmsnorm_silu_gate(o + r * value_dim + h * d, z + r * value_dim + h * d, w.norm, d,
                            c.rms_eps);
    });
  }

  k.matmul(w.output, o, n, value_dim, ws.out.data(), H);
}

// Dense SwiGLU (spec 2.6). Input ws.xn, output ws.out, n rows.
void Model::ffn_block(const Layer& L, Workspace& ws, int64_t n) const {
  const kernels::Ops& k = kernels::ops();
  const int64_t H = config_.n_embd, F = config_.n_ff;
  float* gate = grow(ws.ff_gate, n * F);
  float* up = grow(ws.ff_up, n * F);
  const kernels::MatmulOut gate_up[] = {{L.ffn.gate, gate, F}, {L.ffn.up, up, F}};
  k.matmul_group(gate_up, 2, ws.xn.data(), n, H);
  k.swiglu(gate, up, gate, n * F);
  k.matmul(L.ffn.down, gate, n, F, ws.out.data(), H);
}

// Mixture of experts with a shared expert (spec 2.7). Input ws.xn, output ws.out.
void Model::moe_block(const Layer& L, Workspace& ws, int64_t n) const {
  const Config& c = config_;
  const kernels::Ops& k = kernels::ops();
  const MoeWeights& w = L.moe;
  const int64_t H = c.n_embd, E = c.n_expert, K = c.n_expert_used, I = c.n_ff_exp;
  const float* xn = ws.xn.data();
  float* out = ws.out.data();

  // Router: softmax over all experts, top-k by probability (ties: lower index),
  // selected weights renormalised to sum to 1.
  float* probs = grow(ws.moe_probs, n * E);
  int32_t* chosen = grow(ws.moe_expert, n * K);
  float* weight = grow(ws.moe_weight, n * K);
  k.matmul(w.router, xn, n, H, probs, E);
  for (int64_t r = 0; r < n; r++) {
    float* p = probs + r * E;
    k.softmax(p, E);
    float sum = 0.0f;
    for (int64_t j = 0; j < K; j++) {
      int64_t best = -1;
      for (int64_t e = 0; e < E; e++) {
        bool taken = false;
        for (int64_t i = 0; i < j; i++) taken |= chosen[r * K + i] == e;
        if (!taken && (best < 0 || p[e] > p[best])) best = e;
      }
      chosen[r * K + j] = int32_t(best);
      weight[r * K + j] = p[best];
      sum += p[best];
    }
    sum = std::max(sum, 6.1035e-5f);  // as llama.cpp, guards a zero sum
    for (int64_t j = 0; j < K; j++) weight[r * K + j] /= sum;
  }

  std::fill(out, out + n * H, 0.0f);

  // Routed experts: gather each expert's rows, run its SwiGLU over them at once,
  // scatter the weighted results back.
  int32_t* rows = grow(ws.moe_rows, n);
  float* ex = grow(ws.moe_x, n * H);
  float* eg = grow(ws.moe_gate, n * I);
  float* eu = grow(ws.moe_up, n * I);
  float* eo = grow(ws.moe_out, n * H);
  for (int64_t e = 0; e < E; e++) {
    int64_t m = 0;
    for (int64_t r = 0; r < n; r++)
      for (int64_t j = 0; j < K; j++)
        if (chosen[r * K + j] == e) {
          rows[m] = int32_t(r * K + j);  // row and slot
          std::memcpy(ex + m * H, xn + r * H, size_t(H) * 4);
          m++;
        }
    if (m == 0) continue;
    const kernels::MatmulOut expert_gate_up[] = {{w.expert_gate(e, I), eg, I},
                                                 {w.expert_up(e, I), eu, I}};
    k.matmul_group(expert_gate_up, 2, ex, m, H);
    k.swiglu(eg, eu, eg, m * I);
    k.matmul(w.expert_down(e, H), eg, m, I, eo, H);
    for (int64_t i = 0; i < m; i++) {
      const int64_t r = rows[i] / K;
      const float wt = weight[rows[i]];
      for (int64_t d = 0; d < H; d++) out[r * H + d] += wt * eo[i * H + d];
    }
  }

  // Shared expert, scaled by sigmoid(w_sg . x) per row.
  if (c.n_ff_shexp > 0) {
    const int64_t S = c.n_ff_shexp;
    float* sg = grow(ws.ff_gate, n * S);
    float* su = grow(ws.ff_up, n * S);
    float* scale = grow(ws.moe_shared_scale, n);
    float* so = grow(ws.moe_out, n * H);
    const kernels::MatmulOut shared_gate_up[] = {{w.shared_gate, sg, S}, {w.shared_up, su, S}};
    k.matmul_group(shared_gate_up, 2, xn, n, H);
    k.swiglu(sg, su, sg, n * S);
    k.matmul(w.shared_down, sg, n, S, so, H);
    k.matmul(w.shared_scale, xn, n, H, scale, 1);
    for (int64_t r = 0; r < n; r++) {
      const float s = kernels::sigmoid(scale[r]);
      for (int64_t d = 0; d < H; d++) out[r * H + d] += s * so[r * H + d];
    }
  }
}

}  // namespace pocket::model
