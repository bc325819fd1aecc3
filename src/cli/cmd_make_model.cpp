// `pocket make-model --preset P [--type T] [--seed S] [--tokenizer tokenizer.json]
//                     [--template FILE.jinja] -o FILE.gguf`
// Writes a random-weight Qwen3.5 model with the real tensor names, shapes and
// metadata keys (spec/qwen35.md §5), for benchmarks and tests. Weights are drawn
// so a forward pass gives non-degenerate logits: norm weights near 1, decay and
// step parameters in the real models' ranges, matrices scaled by 1/sqrt(fan-in).
// Tensor data is generated and quantized row block by row block while the file
// is written, on all cores, deterministic for a seed whatever the thread count.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "cli/builtin_template.h"
#include "cli/commands.h"
#include "cli/model_vocab.h"
#include "cli/type_mix.h"
#include "gguf/gguf.h"
#include "quant/quant.h"
#include "util/error.h"

namespace pocket::cli {

namespace {

using gguf::TensorType;
using gguf::Value;

struct Preset {
  const char* name;
  const char* arch;  // qwen35 or qwen35moe
  uint32_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_rot;
  int32_t sections[4];
  uint32_t lin_k_heads, lin_v_heads, lin_head_dim;
  uint32_t n_ff;                       // dense
  uint32_t n_expert, n_expert_used, n_ff_exp, n_ff_shexp;  // moe
  bool tied;
  uint32_t n_vocab;  // embedding rows; 0 = the tokenizer's size
};

// Real dimensions from spec/qwen35.md §1.2; "tiny" presets keep every matrix
// dimension a multiple of 256 so that every block type applies.
const Preset kPresets[] = {
    {"tiny", "qwen35", 256, 8, 4, 2, 64, 16, {3, 3, 2, 0}, 2, 4, 64, 512, 0, 0, 0, 0, true, 0},
    {"tiny-moe", "qwen35moe", 256, 8, 4, 2, 64, 16, {3, 3, 2, 0}, 2, 4, 64, 0, 8, 2, 256, 512, true, 0},
    {"0.8b", "qwen35", 1024, 24, 8, 2, 256, 64, {11, 11, 10, 0}, 16, 16, 128, 3584, 0, 0, 0, 0, true, 248320},
    {"2b", "qwen35", 2048, 24, 8, 2, 256, 64, {11, 11, 10, 0}, 16, 16, 128, 6144, 0, 0, 0, 0, true, 248320},
    {"4b", "qwen35", 2560, 32, 16, 4, 256, 64, {11, 11, 10, 0}, 16, 32, 128, 9216, 0, 0, 0, 0, true, 248320},
    {"9b", "qwen35", 4096, 32, 16, 4, 256, 64, {11, 11, 10, 0}, 16, 32, 128, 12288, 0, 0, 0, 0, false, 248320},
};

// How a tensor's values are drawn.
enum class Init { kNormal, kNormWeight, kSsmA, kDtBias, kConv };

struct TensorPlan {
  std::string name;
  std::vector<int64_t> ne;
  TensorType type;
  Init init;
  float std;  // kNormal
};

// --- deterministic random numbers: a hash of (seed, tensor, element index) ---

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

inline float uniform01(uint64_t h) { return float(h >> 40) * (1.0f / 16777216.0f); }

// Approximately standard normal: Irwin-Hall sum of four 16-bit uniforms, rescaled.
inline float approx_normal(uint64_t h) {
  float s = float(h & 0xFFFF) + float((h >> 16) & 0xFFFF) + float((h >> 32) & 0xFFFF) + float(h >> 48);
  return (s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

float draw(const TensorPlan& t, uint64_t key, uint64_t index) {
  uint64_t h = mix64(key + index * 0x9E3779B97F4A7C15ull);
  switch (t.init) {
    case Init::kNormal: return approx_normal(h) * t.std;
    case Init::kNormWeight: return 1.0f + 0.1f * (2.0f * uniform01(h) - 1.0f);
    case Init::kSsmA: return -(1.0f + 7.0f * uniform01(h));  // -exp(A_log) in [-8, -1]
    case Init::kDtBias: {
      float dt = 0.005f + 0.195f * uniform01(h);  // softplus(dt_bias) in [0.005, 0.2]
      return std::log(std::expm1(dt));
    }
    case Init::kConv: return approx_normal(h) * 0.5f;
  }
  return 0;
}

std::vector<TensorPlan> plan_tensors(const Preset& p, const TypeMix& mix, uint32_t n_vocab) {
  std::vector<TensorPlan> out;
  const int64_t H = p.n_embd;
  const int64_t key_dim = int64_t(p.lin_k_heads) * p.lin_head_dim;
  const int64_t value_dim = int64_t(p.lin_v_heads) * p.lin_head_dim;
  const int64_t conv_dim = 2 * key_dim + value_dim;
  const bool moe = std::string(p.arch) == "qwen35moe";
  auto type_of = [&](const std::string& name, int64_t ne0) {
    return choose_tensor_type(mix, name, ne0, p.n_layer, p.tied);
  };
  auto mat = [&](std::string name, int64_t in, int64_t rows, float scale = 1.0f, int64_t experts = 0) {
    std::vector<int64_t> ne = {in, rows};
    if (experts) ne.push_back(experts);
    TensorType t = type_of(name, in);
    out.push_back({std::move(name), ne, t, Init::kNormal, scale / std::sqrt(float(in))});
  };
  auto vec = [&](std::string name, std::vector<int64_t> ne, Init init) {
    out.push_back({std::move(name), std::move(ne), TensorType::F32, init, 0});
  };
  // Embedding rows have norm ~2.5, so tied logits (embedding . normed hidden) have a spread of a few units.
  out.push_back({"token_embd.weight", {H, n_vocab}, type_of("token_embd.weight", H), Init::kNormal,
                 2.5f / std::sqrt(float(H))});
  vec("output_norm.weight", {H}, Init::kNormWeight);
  if (!p.tied) mat("output.weight", H, n_vocab, 2.5f);
  for (uint32_t i = 0; i < p.n_layer; i++) {
    const std::string b = "blk." + std::to_string(i) + ".";
    const bool attn = (i + 1) % 4 == 0;
    vec(b + "attn_norm.weight", {H}, Init::kNormWeight);
    vec(b + "post_attention_norm.weight", {H}, Init::kNormWeight);
    if (attn) {
      const int64_t q = int64_t(p.n_head) * p.head_dim, kv = int64_t(p.n_head_kv) * p.head_dim;
      mat(b + "attn_q.weight", H, 2 * q);
      mat(b + "attn_k.weight", H, kv);
      mat(b + "attn_v.weight", H, kv);
      mat(b + "attn_output.weight", q, H, 0.5f);
      vec(b + "attn_q_norm.weight", {p.head_dim}, Init::kNormWeight);
      vec(b + "attn_k_norm.weight", {p.head_dim}, Init::kNormWeight);
    } else {
      mat(b + "attn_qkv.weight", H, conv_dim);
      mat(b + "attn_gate.weight", H, value_dim);
      vec(b + "ssm_conv1d.weight", {4, conv_dim}, Init::kConv);
      vec(b + "ssm_dt.bias", {p.lin_v_heads}, Init::kDtBias);
      vec(b + "ssm_a", {p.lin_v_heads}, Init::kSsmA);
      out.push_back({b + "ssm_beta.weight", {H, p.lin_v_heads}, TensorType::F32, Init::kNormal, 1.0f / std::sqrt(float(H))});
      out.push_back({b + "ssm_alpha.weight", {H, p.lin_v_heads}, TensorType::F32, Init::kNormal, 1.0f / std::sqrt(float(H))});
      vec(b + "ssm_norm.weight", {p.lin_head_dim}, Init::kNormWeight);
      mat(b + "ssm_out.weight", value_dim, H, 0.5f);
    }
    if (moe) {
      out.push_back({b + "ffn_gate_inp.weight", {H, p.n_expert}, TensorType::F32, Init::kNormal, 1.0f / std::sqrt(float(H))});
      mat(b + "ffn_gate_exps.weight", H, p.n_ff_exp, 1.0f, p.n_expert);
      mat(b + "ffn_up_exps.weight", H, p.n_ff_exp, 1.0f, p.n_expert);
      mat(b + "ffn_down_exps.weight", p.n_ff_exp, H, 0.5f, p.n_expert);
      out.push_back({b + "ffn_gate_inp_shexp.weight", {H}, TensorType::F32, Init::kNormal, 1.0f / std::sqrt(float(H))});
      mat(b + "ffn_gate_shexp.weight", H, p.n_ff_shexp);
      mat(b + "ffn_up_shexp.weight", H, p.n_ff_shexp);
      mat(b + "ffn_down_shexp.weight", p.n_ff_shexp, H, 0.5f);
    } else {
      mat(b + "ffn_gate.weight", H, p.n_ff);
      mat(b + "ffn_up.weight", H, p.n_ff);
      mat(b + "ffn_down.weight", p.n_ff, H, 0.5f);
    }
  }
  return out;
}

// Generates rows [r0, r1) of a tensor into dst (its storage type), in parallel.
void generate_rows(const TensorPlan& t, uint64_t seed, int64_t r0, int64_t r1, uint8_t* dst, int n_threads) {
  const int64_t ne0 = t.ne[0];
  const uint64_t row_bytes = gguf::row_bytes(t.type, uint64_t(ne0));
  const uint64_t key = mix64(seed ^ name_hash(t.name));
  auto work = [&](int64_t a, int64_t b) {
    std::vector<float> row(static_cast<size_t>(ne0));
    for (int64_t r = a; r < b; r++) {
      for (int64_t i = 0; i < ne0; i++) row[size_t(i)] = draw(t, key, uint64_t(r) * uint64_t(ne0) + uint64_t(i));
      quant::quantize_row(t.type, row.data(), dst + uint64_t(r - r0) * row_bytes, ne0);
    }
  };
  parallel_ranges(r1 - r0, n_threads, [&](int64_t a, int64_t b) { work(r0 + a, r0 + b); });
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void print_help() {
  std::printf(
      "usage: pocket make-model --preset P [--type T] [--seed S] [--tokenizer tokenizer.json]\n"
      "                         [--template FILE.jinja] [-t THREADS] -o FILE.gguf\n"
      "  Writes a random-weight Qwen3.5 model with the real tensor names, shapes and metadata.\n"
      "  presets: tiny, tiny-moe (qwen35moe), 0.8b, 2b, 4b, 9b (dimensions of spec/qwen35.md)\n"
      "  types:   f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k (default q8_0)\n"
      "           _m mixes: LM head / tied embedding Q6_K; attn_v, attn_qkv and ffn_down Q6_K on\n"
      "           the first and last eighth of the layers and every third layer between; other\n"
      "           matrices in the base type; norms, conv, ssm_a/dt/alpha/beta and routers F32.\n"
      "  tokenizer: a Hugging Face tokenizer.json, else a byte-level vocabulary (256 bytes +\n"
      "           the Qwen3.5 special tokens). Embedding rows: the preset's vocabulary size\n"
      "           (248320 for the real sizes), padded with unused [PAD] entries.\n"
      "  template: the Jinja chat template to store; default: the tokenizer's own, else a\n"
      "           Qwen3.5-format template built into Pocket.\n");
}

}  // namespace

int cmd_make_model(int argc, char** argv) {
  Args args(argc, argv);
  if (args.flag("--help", "-h")) {
    print_help();
    return 0;
  }
  std::string preset_name = args.value_or("--preset", "");
  std::string type_name = args.value_or("--type", "q8_0");
  uint64_t seed = uint64_t(args.int_or("--seed", 42));
  auto tokenizer_path = args.value("--tokenizer");
  auto template_path = args.value("--template");
  int threads = int(args.int_or("-t", int(std::max(1u, std::thread::hardware_concurrency()))));
  auto out_path = args.value("-o", "--output");
  args.finish();
  if (!out_path) fail("missing -o FILE.gguf");

  const Preset* preset = nullptr;
  for (const auto& p : kPresets)
    if (preset_name == p.name) preset = &p;
  if (!preset) {
    std::string names;
    for (const auto& p : kPresets) names += std::string(names.empty() ? "" : ", ") + p.name;
    fail("unknown --preset '", preset_name, "' (choose one of ", names, ")");
  }
  const TypeMix* mix = find_type_mix(type_name);
  if (!mix) fail("unknown --type '", type_name, "' (choose one of ", type_mix_names(), ")");

  ModelVocab vocab = tokenizer_path ? vocab_from_tokenizer_json(*tokenizer_path) : byte_level_vocab();
  const uint32_t n_vocab = std::max<uint32_t>(preset->n_vocab, uint32_t(vocab.tokens.size()));
  pad_vocab(vocab, n_vocab);
  std::string chat_template = template_path ? read_text_file(*template_path)
                              : !vocab.chat_template.empty() ? vocab.chat_template
                                                             : std::string(kBuiltinQwen35Template);

  const std::string a = preset->arch;
  const bool moe = a == "qwen35moe";
  gguf::Writer w;
  w.add("general.architecture", Value::string(a));
  w.add("general.type", Value::string("model"));
  w.add("general.name", Value::string(str("pocket-random-", preset->name, "-", mix->name)));
  w.add("general.file_type", Value::u32(mix->file_type));
  w.add("general.quantization_version", Value::u32(2));
  w.add(a + ".block_count", Value::u32(preset->n_layer));
  w.add(a + ".context_length", Value::u32(262144));
  w.add(a + ".embedding_length", Value::u32(preset->n_embd));
  if (!moe) w.add(a + ".feed_forward_length", Value::u32(preset->n_ff));
  w.add(a + ".attention.head_count", Value::u32(preset->n_head));
  w.add(a + ".attention.head_count_kv", Value::u32(preset->n_head_kv));
  w.add(a + ".attention.key_length", Value::u32(preset->head_dim));
  w.add(a + ".attention.value_length", Value::u32(preset->head_dim));
  w.add(a + ".attention.layer_norm_rms_epsilon", Value::f32(1e-6f));
  w.add(a + ".rope.freq_base", Value::f32(1e7f));
  w.add(a + ".rope.dimension_count", Value::u32(preset->n_rot));
  w.add(a + ".rope.dimension_sections",
        Value::i32s({preset->sections[0], preset->sections[1], preset->sections[2], preset->sections[3]}));
  w.add(a + ".full_attention_interval", Value::u32(4));
  w.add(a + ".ssm.conv_kernel", Value::u32(4));
  w.add(a + ".ssm.state_size", Value::u32(preset->lin_head_dim));
  w.add(a + ".ssm.group_count", Value::u32(preset->lin_k_heads));
  w.add(a + ".ssm.time_step_rank", Value::u32(preset->lin_v_heads));
  w.add(a + ".ssm.inner_size", Value::u32(preset->lin_v_heads * preset->lin_head_dim));
  if (moe) {
    w.add(a + ".expert_count", Value::u32(preset->n_expert));
    w.add(a + ".expert_used_count", Value::u32(preset->n_expert_used));
    w.add(a + ".expert_feed_forward_length", Value::u32(preset->n_ff_exp));
    w.add(a + ".expert_shared_feed_forward_length", Value::u32(preset->n_ff_shexp));
  }
  add_vocab_metadata(w, vocab);
  w.add("tokenizer.chat_template", Value::string(chat_template));

  std::vector<TensorPlan> plan = plan_tensors(*preset, *mix, n_vocab);
  uint64_t total_bytes = 0, n_params = 0;
  for (const auto& t : plan) {
    const int64_t rows = t.ne.size() > 1 ? t.ne[1] * (t.ne.size() > 2 ? t.ne[2] : 1) : 1;
    const uint64_t row_bytes = gguf::row_bytes(t.type, uint64_t(t.ne[0]));
    total_bytes += row_bytes * uint64_t(rows);
    n_params += uint64_t(t.ne[0]) * uint64_t(rows);
    w.add_tensor(t.name, t.type, t.ne, [&t, seed, rows, row_bytes, threads](const gguf::Writer::Sink& sink) {
      // Generate in chunks of about 8 MiB so memory stays small for any model size.
      const int64_t chunk = std::max<int64_t>(1, int64_t((8u << 20) / std::max<uint64_t>(row_bytes, 1)));
      std::vector<uint8_t> buf;
      for (int64_t r = 0; r < rows; r += chunk) {
        int64_t r1 = std::min(rows, r + chunk);
        buf.resize(uint64_t(r1 - r) * row_bytes);
        generate_rows(t, seed, r, r1, buf.data(), threads);
        sink(buf.data(), buf.size());
      }
    });
  }
  auto t0 = std::chrono::steady_clock::now();
  w.write(*out_path);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "wrote %s: %s %s, %zu tensors, %.3f B parameters, %.1f MiB of tensor data in %.1f s\n",
               out_path->c_str(), preset->name, mix->name, plan.size(), double(n_params) / 1e9,
               double(total_bytes) / (1 << 20), secs);
  return 0;
}

}  // namespace pocket::cli
