#include "cli/type_mix.h"

#include <thread>
#include <vector>

namespace pocket::cli {

using gguf::TensorType;

namespace {

const TypeMix kMixes[] = {
    {"f32", TensorType::F32, TensorType::F32, TensorType::F32, TensorType::F32, 0},
    {"f16", TensorType::F16, TensorType::F16, TensorType::F16, TensorType::F16, 1},
    {"bf16", TensorType::BF16, TensorType::BF16, TensorType::BF16, TensorType::BF16, 32},
    {"q8_0", TensorType::Q8_0, TensorType::Q8_0, TensorType::Q8_0, TensorType::Q8_0, 7},
    {"q4_0", TensorType::Q4_0, TensorType::Q6_K, TensorType::Q4_0, TensorType::Q4_0, 2},
    {"q4_k_m", TensorType::Q4_K, TensorType::Q6_K, TensorType::Q4_K, TensorType::Q6_K, 15},
    {"q5_k_m", TensorType::Q5_K, TensorType::Q6_K, TensorType::Q5_K, TensorType::Q6_K, 17},
    {"q6_k", TensorType::Q6_K, TensorType::Q6_K, TensorType::Q6_K, TensorType::Q6_K, 18},
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool more_bits_layer(uint32_t i, uint32_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i >= n / 8 && (i - n / 8) % 3 == 2);
}

TensorType fit_type(TensorType t, int64_t ne0) {
  auto tr = gguf::type_traits(t);
  if (ne0 % tr->block_size == 0) return t;
  if (ne0 % 32 == 0) return TensorType::Q8_0;
  return TensorType::F32;
}

}  // namespace

const TypeMix* find_type_mix(const std::string& name) {
  for (const auto& m : kMixes)
    if (name == m.name) return &m;
  return nullptr;
}

std::string type_mix_names() {
  std::string out;
  for (const auto& m : kMixes) out += std::string(out.empty() ? "" : ", ") + m.name;
  return out;
}

TensorType choose_tensor_type(const TypeMix& mix, const std::string& name, int64_t ne0, uint32_t n_layer,
                              bool tied) {
  for (const char* keep : {"norm.weight", "ssm_conv1d.weight", "ssm_a", "ssm_dt.bias", "ssm_alpha.weight",
                           "ssm_beta.weight", "ffn_gate_inp.weight", "ffn_gate_inp_shexp.weight"})
    if (ends_with(name, keep)) return TensorType::F32;
  if (name == "token_embd.weight") return fit_type(tied ? mix.head : mix.embd, ne0);
  if (name == "output.weight") return fit_type(mix.head, ne0);
  if (name.rfind("blk.", 0) == 0) {
    uint32_t layer = uint32_t(std::strtoul(name.c_str() + 4, nullptr, 10));
    for (const char* more : {".attn_v.weight", ".attn_qkv.weight", ".ffn_down.weight", ".ffn_down_exps.weight",
                             ".ffn_down_shexp.weight"})
      if (ends_with(name, more) && more_bits_layer(layer, n_layer)) return fit_type(mix.more_bits, ne0);
  }
  return fit_type(mix.base, ne0);
}

void parallel_ranges(int64_t n, int threads, const std::function<void(int64_t, int64_t)>& fn) {
  if (threads <= 1 || n < 2 * threads) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> pool;
  for (int k = 0; k < threads; k++) pool.emplace_back(fn, n * k / threads, n * (k + 1) / threads);
  for (auto& t : pool) t.join();
}

}  // namespace pocket::cli
