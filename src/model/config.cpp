#include "model/config.h"

#include <cmath>

#include "gguf/gguf.h"
#include "util/error.h"

namespace pocket::model {

int64_t Config::n_attention_layers() const {
  int64_t n = 0;
  for (LayerKind k : layers) n += k == LayerKind::kAttention;
  return n;
}

int64_t Config::n_deltanet_layers() const { return int64_t(layers.size()) - n_attention_layers(); }

namespace {

// Metadata access with the architecture prefix and error messages that name
// the file and the key.
struct Meta {
  const gguf::File& file;
  std::string arch;

  std::string key(const std::string& k) const { return arch + "." + k; }
  bool has(const std::string& k) const { return file.has(key(k)); }

  // A required positive integer.
  int64_t count(const std::string& k) const {
    const uint32_t v = file.get_u32(key(k));
    if (v == 0) fail(file.path(), ": metadata ", key(k), " must be positive, found 0");
    return v;
  }
  int64_t count_or(const std::string& k, int64_t dflt) const {
    return has(k) ? int64_t(file.get_u32(key(k))) : dflt;
  }
  [[noreturn]] void bad(const std::string& k, const std::string& what) const {
    fail(file.path(), ": metadata ", key(k), ": ", what);
  }
};

}  // namespace

Config Config::from_gguf(const gguf::File& file) {
  Config c;
  c.arch = file.architecture();
  if (c.arch != "qwen35" && c.arch != "qwen35moe")
    fail(file.path(), ": general.architecture is '", c.arch,
         "', expected 'qwen35' or 'qwen35moe'");
  c.moe = c.arch == "qwen35moe";
  const Meta m{file, c.arch};

  const int64_t block_count = m.count("block_count");
  const int64_t n_nextn = m.count_or("nextn_predict_layers", 0);
  if (n_nextn >= block_count)
    m.bad("nextn_predict_layers", str(n_nextn, " leaves no main layers (block_count ", block_count, ")"));
  c.n_layer = block_count - n_nextn;
  c.n_embd = m.count("embedding_length");
  c.n_ctx_train = m.count("context_length");
  c.rms_eps = file.get_f32(m.key("attention.layer_norm_rms_epsilon"));
  if (!(c.rms_eps > 0.0f && c.rms_eps < 1.0f))
    m.bad("attention.layer_norm_rms_epsilon", str("must be in (0, 1), found ", c.rms_eps));

  // Layer pattern: layer i is full attention iff (i + 1) % interval == 0.
  c.full_attention_interval = m.count_or("full_attention_interval", 4);
  if (c.full_attention_interval <= 0) m.bad("full_attention_interval", "must be positive");
  for (int64_t i = 0; i < c.n_layer; i++)
    c.layers.push_back((i + 1) % c.full_attention_interval == 0 ? LayerKind::kAttention
                                                                 : LayerKind::kDeltaNet);

  if (c.n_attention_layers() > 0) {
    c.n_head = m.count("attention.head_count");
    c.n_head_kv = m.count("attention.head_count_kv");
    if (c.n_head % c.n_head_kv != 0)
      m.bad("attention.head_count_kv",
            str(c.n_head_kv, " does not divide attention.head_count ", c.n_head));
    c.head_dim = m.count("attention.key_length");
    const int64_t value_length = m.count_or("attention.value_length", c.head_dim);
    if (value_length != c.head_dim)
      m.bad("attention.value_length",
            str(value_length, " differs from attention.key_length ", c.head_dim,
                " (not supported)"));
    c.n_rot = m.count("rope.dimension_count");
    if (c.n_rot % 2 != 0 || c.n_rot > c.head_dim)
      m.bad("rope.dimension_count",
            str(c.n_rot, " must be even and at most the head size ", c.head_dim));
    c.rope_theta = file.get_f32(m.key("rope.freq_base"));
    if (!(c.rope_theta > 1.0f)) m.bad("rope.freq_base", str("must be > 1, found ", c.rope_theta));
    const std::vector<int64_t> sections = file.get_array(m.key("rope.dimension_sections")).as_ints();
    if (sections.empty() || sections.size() > 4)
      m.bad("rope.dimension_sections", str("expected 1 to 4 values, found ", sections.size()));
    int64_t total = 0;
    for (size_t i = 0; i < sections.size(); i++) {
      if (sections[i] < 0 || sections[i] > c.n_rot)
        m.bad("rope.dimension_sections", str("value ", sections[i], " out of range"));
      c.rope_sections[i] = int32_t(sections[i]);
      total += sections[i];
    }
    if (total != c.n_rot / 2)
      m.bad("rope.dimension_sections",
            str("sum ", total, " differs from rope.dimension_count / 2 = ", c.n_rot / 2));
    c.attn_scale = m.has("attention.scale") ? file.get_f32(m.key("attention.scale"))
                                            : float(1.0 / std::sqrt(double(c.head_dim)));
  }

  if (c.n_deltanet_layers() > 0) {
    c.ssm_conv_kernel = m.count("ssm.conv_kernel");
    c.ssm_d_state = m.count("ssm.state_size");
    c.ssm_n_k = m.count("ssm.group_count");
    c.ssm_n_v = m.count("ssm.time_step_rank");
    if (c.ssm_n_v % c.ssm_n_k != 0)
      m.bad("ssm.time_step_rank",
            str(c.ssm_n_v, " value heads is not a multiple of ssm.group_count ", c.ssm_n_k));
    const int64_t inner = m.count("ssm.inner_size");
    if (inner != c.ssm_value_dim())
      m.bad("ssm.inner_size", str(inner, " differs from ssm.time_step_rank * ssm.state_size = ",
                                  c.ssm_value_dim()));
  }

  if (c.moe) {
    c.n_expert = m.count("expert_count");
    c.n_expert_used = m.count("expert_used_count");
    if (c.n_expert_used > c.n_expert)
      m.bad("expert_used_count", str(c.n_expert_used, " exceeds expert_count ", c.n_expert));
    c.n_ff_exp = m.count("expert_feed_forward_length");
    c.n_ff_shexp = m.count_or("expert_shared_feed_forward_length", 0);
  } else {
    c.n_ff = m.count("feed_forward_length");
  }

  const gguf::TensorInfo* embd = file.find_tensor("token_embd.weight");
  if (!embd) fail(file.path(), ": tensor token_embd.weight is missing");
  c.n_vocab = embd->ne[1];
  c.tied_output = file.find_tensor("output.weight") == nullptr;
  return c;
}

std::string Config::summary() const {
  std::string s = str(arch, ": ", n_layer, " layers (", n_attention_layers(), " attention, ",
                      n_deltanet_layers(), " delta-net), H=", n_embd, ", vocab ", n_vocab);
  if (n_attention_layers() > 0)
    s += str(", heads ", n_head, "/", n_head_kv, "x", head_dim, ", rope ", n_rot);
  if (n_deltanet_layers() > 0)
    s += str(", ssm k/v heads ", ssm_n_k, "/", ssm_n_v, "x", ssm_d_state);
  if (moe)
    s += str(", experts ", n_expert_used, "/", n_expert, "x", n_ff_exp, " shared ", n_ff_shexp);
  else
    s += str(", ffn ", n_ff);
  return s;
}

}  // namespace pocket::model
