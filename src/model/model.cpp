// Loading: map the file, read the config, and check every tensor the forward
// pass will touch (presence, shape, type) before anything runs.
#include "model/model.h"

#include <cstdlib>
#include <utility>

#include "quant/quant.h"
#include "util/error.h"

namespace pocket::model {

Mat MoeWeights::expert_gate(int64_t e, int64_t n_ff) const {
  return merged_gate_up ? gate_up.rows(e * 2 * n_ff, n_ff) : gate.rows(e * n_ff, n_ff);
}
Mat MoeWeights::expert_up(int64_t e, int64_t n_ff) const {
  return merged_gate_up ? gate_up.rows(e * 2 * n_ff + n_ff, n_ff) : up.rows(e * n_ff, n_ff);
}
Mat MoeWeights::expert_down(int64_t e, int64_t n_embd) const {
  return down.rows(e * n_embd, n_embd);
}

namespace {

// Tensor lookup and checks, with errors naming the file and the tensor.
class TensorChecker {
 public:
  TensorChecker(const gguf::File& file, std::vector<std::vector<float>>& converted)
      : file_(file), converted_(converted) {}

  const gguf::TensorInfo& get(const std::string& name) const {
    const gguf::TensorInfo* t = file_.find_tensor(name);
    if (!t) fail(file_.path(), ": tensor ", name, " is missing");
    return *t;
  }
  bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }

  // Checks the shape {ne0, ne1, ne2} (trailing dims 1).
  void expect_shape(const gguf::TensorInfo& t, int64_t ne0, int64_t ne1, int64_t ne2 = 1) const {
    if (t.ne[0] != ne0 || t.ne[1] != ne1 || t.ne[2] != ne2 || t.ne[3] != 1)
      fail(file_.path(), ": tensor ", t.name, " has shape ", t.shape_string(), ", expected [",
           ne0, ", ", ne1, ne2 != 1 ? str(", ", ne2) : std::string(), "] from the metadata");
  }

  // A weight matrix {n_in, n_out} or a stack {n_in, n_out, n_stack} viewed
  // as n_out * n_stack rows.
  Mat matrix(const std::string& name, int64_t n_in, int64_t n_out, int64_t n_stack = 1) const {
    const gguf::TensorInfo& t = get(name);
    expect_shape(t, n_in, n_out, n_stack);
    if (!quant::can_dequantize(t.type))
      fail(file_.path(), ": tensor ", name, " has type ", gguf::type_name(t.type),
           ", which Pocket cannot compute with");
    return Mat{t.type, t.data, n_in, n_out * n_stack, t.row_bytes()};
  }

  // A small f32 vector of n values (shape {n} or {n, 1}); other float types are
  // expanded once into memory the model owns.
  const float* vec(const std::string& name, int64_t n) const { return values(get(name), n, 1); }
  // {ne0, ne1} as ne0 * ne1 f32 values.
  const float* values(const gguf::TensorInfo& t, int64_t ne0, int64_t ne1) const {
    expect_shape(t, ne0, ne1);
    if (t.type == gguf::TensorType::F32) return reinterpret_cast<const float*>(t.data);
    if (!quant::can_dequantize(t.type))
      fail(file_.path(), ": tensor ", t.name, " has type ", gguf::type_name(t.type),
           ", which Pocket cannot compute with");
    std::vector<float>& out = converted_.emplace_back(size_t(ne0 * ne1));
    for (int64_t r = 0; r < ne1; r++)
      quant::dequantize_row(t.type, t.data + uint64_t(r) * t.row_bytes(), out.data() + r * ne0, ne0);
    return out.data();
  }

 private:
  const gguf::File& file_;
  std::vector<std::vector<float>>& converted_;
};

}  // namespace

Model::Model(gguf::File file) : file_(std::move(file)) {}

std::unique_ptr<Model> Model::load(const std::string& path, FileBacking backing) {
  return from_file(gguf::File::open(path, backing));
}

std::unique_ptr<Model> Model::from_file(gguf::File file) {
  std::unique_ptr<Model> m(new Model(std::move(file)));
  m->config_ = Config::from_gguf(m->file_);
  m->load_weights();
  return m;
}

void Model::load_weights() {
  const Config& c = config_;
  const TensorChecker t(file_, converted_);
  const int64_t H = c.n_embd;

  token_embd_ = t.matrix("token_embd.weight", H, c.n_vocab);
  output_norm_ = t.vec("output_norm.weight", H);
  output_ = c.tied_output ? token_embd_ : t.matrix("output.weight", H, c.n_vocab);

  // No tensor may belong to a layer the metadata does not have.
  const int64_t block_count = file_.get_u32(c.arch + ".block_count");
  for (const gguf::TensorInfo& info : file_.tensors()) {
    if (info.name.rfind("blk.", 0) != 0) continue;
    const long n = std::strtol(info.name.c_str() + 4, nullptr, 10);
    if (n < 0 || n >= block_count)
      fail(file_.path(), ": tensor ", info.name, " belongs to layer ", n, " but ", c.arch,
           ".block_count is ", block_count);
  }

  int64_t n_attn = 0, n_deltanet = 0;
  for (int64_t il = 0; il < c.n_layer; il++) {
    const std::string p = str("blk.", il, ".");
    Layer L;
    L.kind = c.layers[size_t(il)];
    L.attn_norm = t.vec(p + "attn_norm.weight", H);
    L.post_norm = t.vec(p + "post_attention_norm.weight", H);

    if (L.kind == LayerKind::kAttention) {
      L.kind_index = n_attn++;
      const int64_t D = c.head_dim;
      AttentionWeights& a = L.attn;
      a.q = t.matrix(p + "attn_q.weight", H, 2 * c.n_head * D);
      a.k = t.matrix(p + "attn_k.weight", H, c.n_head_kv * D);
      a.v = t.matrix(p + "attn_v.weight", H, c.n_head_kv * D);
      a.output = t.matrix(p + "attn_output.weight", c.n_head * D, H);
      a.q_norm = t.vec(p + "attn_q_norm.weight", D);
      a.k_norm = t.vec(p + "attn_k_norm.weight", D);
    } else {
      L.kind_index = n_deltanet++;
      DeltaNetWeights& d = L.deltanet;
      d.qkv = t.matrix(p + "attn_qkv.weight", H, c.ssm_conv_dim());
      d.gate = t.matrix(p + "attn_gate.weight", H, c.ssm_value_dim());
      d.beta = t.matrix(p + "ssm_beta.weight", H, c.ssm_n_v);
      d.alpha = t.matrix(p + "ssm_alpha.weight", H, c.ssm_n_v);
      d.output = t.matrix(p + "ssm_out.weight", c.ssm_value_dim(), H);
      d.conv = t.values(t.get(p + "ssm_conv1d.weight"), c.ssm_conv_kernel, c.ssm_conv_dim());
      d.dt_bias = t.vec(p + "ssm_dt.bias", c.ssm_n_v);
      d.a = t.vec(p + "ssm_a", c.ssm_n_v);
      d.norm = t.vec(p + "ssm_norm.weight", c.ssm_d_state);
    }

    if (!c.moe) {
      L.ffn.gate = t.matrix(p + "ffn_gate.weight", H, c.n_ff);
      L.ffn.up = t.matrix(p + "ffn_up.weight", H, c.n_ff);
      L.ffn.down = t.matrix(p + "ffn_down.weight", c.n_ff, H);
    } else {
      MoeWeights& m = L.moe;
      const int64_t E = c.n_expert, I = c.n_ff_exp;
      m.router = t.matrix(p + "ffn_gate_inp.weight", H, E);
      m.merged_gate_up = t.has(p + "ffn_gate_up_exps.weight");
      if (m.merged_gate_up) {
        m.gate_up = t.matrix(p + "ffn_gate_up_exps.weight", H, 2 * I, E);
      } else {
        m.gate = t.matrix(p + "ffn_gate_exps.weight", H, I, E);
        m.up = t.matrix(p + "ffn_up_exps.weight", H, I, E);
      }
      m.down = t.matrix(p + "ffn_down_exps.weight", I, H, E);
      if (c.n_ff_shexp > 0) {
        m.shared_gate = t.matrix(p + "ffn_gate_shexp.weight", H, c.n_ff_shexp);
        m.shared_up = t.matrix(p + "ffn_up_shexp.weight", H, c.n_ff_shexp);
        m.shared_down = t.matrix(p + "ffn_down_shexp.weight", c.n_ff_shexp, H);
        m.shared_scale = t.matrix(p + "ffn_gate_inp_shexp.weight", H, 1);
      }
    }
    layers_.push_back(L);
  }
}

uint64_t Model::weight_bytes() const {
  uint64_t n = 0;
  for (const gguf::TensorInfo& t : file_.tensors()) n += t.n_bytes;
  return n;
}

}  // namespace pocket::model
