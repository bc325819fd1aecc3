// Model loading: the config read from metadata, and clear errors for files with
// a missing tensor, a missing key or inconsistent metadata (built from the
// golden models with gguf::Writer). Also the optional tensor forms: merged
// ffn_gate_up_exps and non-f32 small tensors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/model.h"
#include "runtime/sequence.h"
#include "util/error.h"
#include "util/fp16.h"

namespace pocket::model {
namespace {

std::string golden(const std::string& name) { return std::string(POCKET_SHARED_DIR) + "/golden/" + name; }

// A copy of a golden model with edits: metadata values replaced or dropped,
// tensors dropped or replaced.
struct Variant {
  using MetaEdit = std::function<std::optional<gguf::Value>(const std::string& key, const gguf::Value& v)>;
  explicit Variant(std::string source_file, MetaEdit edit = {})
      : source(std::move(source_file)), meta(std::move(edit)) {}

  std::string source;
  MetaEdit meta;
  std::function<bool(const std::string& name)> drop_tensor;
  // Replacement tensors (name, type, ne, bytes); added in place of a dropped one.
  struct Tensor {
    std::string name;
    gguf::TensorType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> bytes;
  };
  std::vector<Tensor> extra;

  std::string write(const std::string& name) const {
    const gguf::File src = gguf::File::open(golden(source));
    gguf::Writer w;
    for (const gguf::KeyValue& kv : src.metadata()) {
      std::optional<gguf::Value> v = kv.value;
      if (meta) v = meta(kv.key, kv.value);
      if (v) w.add(kv.key, *v);
    }
    for (const gguf::TensorInfo& t : src.tensors()) {
      if (drop_tensor && drop_tensor(t.name)) continue;
      std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
      w.add_tensor(t.name, t.type, ne, t.data);
    }
    for (const Tensor& t : extra) w.add_tensor(t.name, t.type, t.ne, t.bytes.data());
    const std::string path = ::testing::TempDir() + name + ".gguf";
    w.write(path);
    return path;
  }
};

// Loads the file and returns the error message ("" if it loaded).
std::string load_error(const std::string& path) {
  try {
    Model::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::function<std::optional<gguf::Value>(const std::string&, const gguf::Value&)> set_key(
    const std::string& key, std::optional<gguf::Value> value) {
  return [key, value](const std::string& k, const gguf::Value& v) -> std::optional<gguf::Value> {
    return k == key ? value : std::optional<gguf::Value>(v);
  };
}

TEST(ModelConfig, MatchesModelsJson) {
  std::ifstream in(golden("models.json"));
  const nlohmann::json models = nlohmann::json::parse(in);
  for (const nlohmann::json& m : models) {
    SCOPED_TRACE(m["file"].get<std::string>());
    const auto model = Model::load(golden(m["file"]));
    const Config& c = model->config();
    const nlohmann::json& j = m["config"];
    EXPECT_EQ(c.arch, j["arch"]);
    EXPECT_EQ(c.n_vocab, m["n_vocab"].get<int64_t>());
    EXPECT_EQ(c.n_embd, j["n_embd"].get<int64_t>());
    EXPECT_EQ(c.n_layer, j["n_layer"].get<int64_t>());
    EXPECT_EQ(c.full_attention_interval, j["full_attn_interval"].get<int64_t>());
    EXPECT_EQ(c.n_head, j["n_head"].get<int64_t>());
    EXPECT_EQ(c.n_head_kv, j["n_head_kv"].get<int64_t>());
    EXPECT_EQ(c.head_dim, j["head_dim"].get<int64_t>());
    EXPECT_EQ(c.n_rot, j["n_rot"].get<int64_t>());
    for (int i = 0; i < 4; i++) EXPECT_EQ(c.rope_sections[i], j["rope_sections"][size_t(i)].get<int32_t>());
    EXPECT_FLOAT_EQ(c.rope_theta, j["rope_theta"].get<float>());
    EXPECT_FLOAT_EQ(c.rms_eps, j["rms_eps"].get<float>());
    EXPECT_FLOAT_EQ(c.attn_scale, float(1.0 / std::sqrt(double(c.head_dim))));
    EXPECT_EQ(c.n_ctx_train, j["ctx_len"].get<int64_t>());
    EXPECT_EQ(c.ssm_n_k, j["lin_k_heads"].get<int64_t>());
    EXPECT_EQ(c.ssm_n_v, j["lin_v_heads"].get<int64_t>());
    EXPECT_EQ(c.ssm_d_state, j["lin_head_dim"].get<int64_t>());
    EXPECT_EQ(c.ssm_conv_kernel, j["conv_kernel"].get<int64_t>());
    EXPECT_EQ(c.tied_output, j["tied"].get<bool>());
    if (c.moe) {
      EXPECT_EQ(c.n_expert, j["n_expert"].get<int64_t>());
      EXPECT_EQ(c.n_expert_used, j["n_expert_used"].get<int64_t>());
      EXPECT_EQ(c.n_ff_exp, j["n_ff_exp"].get<int64_t>());
      EXPECT_EQ(c.n_ff_shexp, j["n_ff_shexp"].get<int64_t>());
    } else {
      EXPECT_EQ(c.n_ff, j["n_ff"].get<int64_t>());
    }
    ASSERT_EQ(c.layers.size(), m["layer_types"].size());
    for (size_t i = 0; i < c.layers.size(); i++)
      EXPECT_EQ(c.layers[i] == LayerKind::kAttention, m["layer_types"][i] == "full_attention") << i;
  }
}

TEST(ModelLoad, MissingTensorNamesFileAndTensor) {
  Variant v{"tiny-qwen35-dense-tied-f32.gguf"};
  v.drop_tensor = [](const std::string& n) { return n == "blk.1.ssm_a"; };
  const std::string path = v.write("missing_ssm_a");
  const std::string err = load_error(path);
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find("blk.1.ssm_a"), std::string::npos) << err;
  EXPECT_NE(err.find("missing"), std::string::npos) << err;

  Variant w{"tiny-qwen35moe-f32.gguf"};
  w.drop_tensor = [](const std::string& n) { return n == "blk.3.ffn_up_exps.weight"; };
  EXPECT_NE(load_error(w.write("missing_up_exps")).find("blk.3.ffn_up_exps.weight"), std::string::npos);
}

TEST(ModelLoad, MissingKeyIsNamed) {
  Variant v{"tiny-qwen35-dense-tied-f32.gguf", set_key("qwen35.ssm.state_size", std::nullopt)};
  const std::string err = load_error(v.write("missing_state_size"));
  EXPECT_NE(err.find("qwen35.ssm.state_size"), std::string::npos) << err;

  Variant m{"tiny-qwen35moe-f32.gguf", set_key("qwen35moe.expert_used_count", std::nullopt)};
  EXPECT_NE(load_error(m.write("missing_used")).find("qwen35moe.expert_used_count"), std::string::npos);
}

TEST(ModelLoad, InconsistentMetadataIsReported) {
  struct Case {
    std::string key;
    gguf::Value value;
    std::string expect;  // text the message must contain
  };
  const std::vector<Case> cases = {
      {"qwen35.embedding_length", gguf::Value::u32(64), "token_embd.weight"},
      {"qwen35.ssm.inner_size", gguf::Value::u32(100), "qwen35.ssm.inner_size"},
      {"qwen35.ssm.time_step_rank", gguf::Value::u32(3), "qwen35.ssm.time_step_rank"},
      {"qwen35.attention.head_count_kv", gguf::Value::u32(3), "qwen35.attention.head_count_kv"},
      {"qwen35.rope.dimension_sections", gguf::Value::i32s({3, 3, 3, 0}), "qwen35.rope.dimension_sections"},
      {"qwen35.attention.key_length", gguf::Value::u32(32), "attention.key_length 32"},
      {"qwen35.rope.dimension_count", gguf::Value::u32(18), "qwen35.rope.dimension_sections"},
      {"qwen35.ssm.state_size", gguf::Value::u32(16), "qwen35.ssm.inner_size"},
      {"qwen35.ssm.group_count", gguf::Value::u32(4), "blk.0.attn_qkv.weight"},
      {"qwen35.feed_forward_length", gguf::Value::u32(256), "ffn_gate.weight"},
      {"qwen35.block_count", gguf::Value::u32(7), "belongs to layer 7"},
      {"qwen35.block_count", gguf::Value::u32(9), "blk.8.attn_norm.weight"},
      {"qwen35.full_attention_interval", gguf::Value::u32(3), "blk.2.attn_q.weight"},
      {"general.architecture", gguf::Value::string("llama"), "general.architecture"},
  };
  for (size_t i = 0; i < cases.size(); i++) {
    const Case& c = cases[i];
    Variant v{"tiny-qwen35-dense-untied-q8_0.gguf", set_key(c.key, c.value)};
    const std::string path = v.write("inconsistent_" + std::to_string(i));
    const std::string err = load_error(path);
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.key << ": " << err;
    EXPECT_NE(err.find(path), std::string::npos) << c.key << ": " << err;
  }
}

// Logits of the last token of a short prompt.
std::vector<float> last_logits(const Model& m, const std::vector<int32_t>& prompt) {
  runtime::KvPool pool(m, {.kv_type = runtime::KvType::F32});
  runtime::Sequence seq(m, pool, 64);
  Workspace ws;
  Batch b;
  b.segments.push_back({&seq, prompt, Logits::kLast});
  m.forward(b, ws);
  return std::vector<float>(ws.logits(0), ws.logits(0) + m.config().n_vocab);
}

TEST(ModelLoad, MergedGateUpExpertsGiveTheSameLogits) {
  const std::string stem = "tiny-qwen35moe-f32.gguf";
  const auto original = Model::load(golden(stem));
  const Config& c = original->config();
  Variant v{stem};
  v.drop_tensor = [](const std::string& n) {
    return n.find("ffn_gate_exps") != std::string::npos || n.find("ffn_up_exps") != std::string::npos;
  };
  const gguf::File src = gguf::File::open(golden(stem));
  const int64_t H = c.n_embd, I = c.n_ff_exp, E = c.n_expert;
  for (int64_t il = 0; il < c.n_layer; il++) {
    const std::string p = "blk." + std::to_string(il) + ".";
    const auto* gate = reinterpret_cast<const float*>(src.tensor(p + "ffn_gate_exps.weight").data);
    const auto* up = reinterpret_cast<const float*>(src.tensor(p + "ffn_up_exps.weight").data);
    std::vector<float> merged;
    for (int64_t e = 0; e < E; e++) {  // per expert: its gate rows, then its up rows
      merged.insert(merged.end(), gate + e * I * H, gate + (e + 1) * I * H);
      merged.insert(merged.end(), up + e * I * H, up + (e + 1) * I * H);
    }
    std::vector<uint8_t> bytes(merged.size() * 4);
    std::memcpy(bytes.data(), merged.data(), bytes.size());
    v.extra.push_back({p + "ffn_gate_up_exps.weight", gguf::TensorType::F32, {H, 2 * I, E}, bytes});
  }
  const auto model = Model::load(v.write("merged_gate_up"));
  EXPECT_TRUE(model->layers()[0].moe.merged_gate_up);
  const std::vector<int32_t> prompt = {5, 17, 300, 1999, 42, 7};
  EXPECT_EQ(last_logits(*model, prompt), last_logits(*original, prompt));
}

TEST(ModelLoad, SmallTensorsAndMatricesInF16) {
  // Norms, conv kernel and a projection stored as F16: the loader expands the
  // small ones, the matmul expands the matrix rows; results stay close.
  const std::string stem = "tiny-qwen35-dense-tied-f32.gguf";
  const gguf::File src = gguf::File::open(golden(stem));
  const std::vector<std::string> names = {"blk.0.attn_norm.weight", "blk.0.ssm_conv1d.weight",
                                          "blk.3.attn_q_norm.weight", "blk.0.attn_qkv.weight",
                                          "blk.3.attn_output.weight"};
  Variant v{stem};
  v.drop_tensor = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  for (const std::string& n : names) {
    const gguf::TensorInfo& t = src.tensor(n);
    const auto* f = reinterpret_cast<const float*>(t.data);
    std::vector<uint8_t> bytes(t.n_elements * 2);
    for (uint64_t i = 0; i < t.n_elements; i++) {
      const uint16_t h = f32_to_f16(f[i]);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
    v.extra.push_back({n, gguf::TensorType::F16, std::vector<int64_t>(t.ne, t.ne + t.n_dims), bytes});
  }
  const auto f16 = Model::load(v.write("f16_parts"));
  const auto f32 = Model::load(golden(stem));
  EXPECT_EQ(f16->layers()[0].deltanet.qkv.type, gguf::TensorType::F16);
  const std::vector<int32_t> prompt = {1, 2, 3, 500, 600};
  const std::vector<float> a = last_logits(*f16, prompt), b = last_logits(*f32, prompt);
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); i++) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  EXPECT_GT(worst, 0.0);
  EXPECT_LT(worst, 0.05);
}

}  // namespace
}  // namespace pocket::model
