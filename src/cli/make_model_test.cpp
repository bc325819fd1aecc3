// `pocket make-model`: every preset shape and type mix writes a valid file that
// `pocket info` reads back with the expected parameter count and types.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/cli_test_util.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

namespace pocket {
namespace {

using nlohmann::json;
using test::run_pocket;

std::string tmp(const std::string& name) { return testing::TempDir() + "/" + name; }

TEST(MakeModel, TinyEveryType) {
  for (const char* type : {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"}) {
    std::string path = tmp(std::string("mm_tiny_") + type + ".gguf");
    auto r = run_pocket(std::string("make-model --preset tiny --type ") + type + " --seed 7 -o " + path);
    ASSERT_EQ(r.exit_code, 0) << type << ": " << r.err;
    auto f = gguf::File::open(path);
    EXPECT_EQ(f.architecture(), "qwen35");
    EXPECT_EQ(f.get_u32("qwen35.block_count"), 8u);
    EXPECT_FALSE(f.get_string("tokenizer.chat_template").empty());
    // Tied embedding: no output.weight; 6 GDN layers x 14 + 2 attention x 11 + 2.
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
    EXPECT_EQ(f.tensors().size(), 108u);
    const auto& norm = f.tensor("blk.0.attn_norm.weight");
    EXPECT_EQ(norm.type, gguf::TensorType::F32);
    const float* w = reinterpret_cast<const float*>(norm.data);
    for (int i = 0; i < norm.ne[0]; i++) {
      EXPECT_GE(w[i], 0.9f);
      EXPECT_LE(w[i], 1.1f);
    }
    const float* a = reinterpret_cast<const float*>(f.tensor("blk.0.ssm_a").data);
    EXPECT_LE(a[0], -1.0f);
    EXPECT_GE(a[0], -8.0f);
    // Matrices have the mix's types and decode to finite values of sane scale.
    const auto& qkv = f.tensor("blk.0.attn_qkv.weight");
    std::vector<float> row(size_t(qkv.ne[0]));
    quant::dequantize_row(qkv.type, qkv.data, row.data(), qkv.ne[0]);
    double ss = 0;
    for (float v : row) {
      ASSERT_TRUE(std::isfinite(v));
      ss += double(v) * v;
    }
    double rms = std::sqrt(ss / double(row.size()));
    EXPECT_GT(rms, 0.3 / std::sqrt(256.0)) << type;
    EXPECT_LT(rms, 3.0 / std::sqrt(256.0)) << type;
    std::filesystem::remove(path);
  }
}

TEST(MakeModel, DeterministicForASeedAndThreadCount) {
  std::string a = tmp("mm_a.gguf"), b = tmp("mm_b.gguf"), c = tmp("mm_c.gguf");
  ASSERT_EQ(run_pocket("make-model --preset tiny --type q4_k_m --seed 3 -t 1 -o " + a).exit_code, 0);
  ASSERT_EQ(run_pocket("make-model --preset tiny --type q4_k_m --seed 3 -t 2 -o " + b).exit_code, 0);
  ASSERT_EQ(run_pocket("make-model --preset tiny --type q4_k_m --seed 4 -t 2 -o " + c).exit_code, 0);
  auto read = [](const std::string& p) {
    auto f = gguf::File::open(p);
    const auto& t = f.tensor("blk.3.attn_q.weight");
    return std::vector<uint8_t>(t.data, t.data + t.n_bytes);
  };
  EXPECT_EQ(read(a), read(b));
  EXPECT_NE(read(a), read(c));
  for (auto& p : {a, b, c}) std::filesystem::remove(p);
}

TEST(MakeModel, MoePresetAndErrors) {
  std::string path = tmp("mm_moe.gguf");
  auto r = run_pocket("make-model --preset tiny-moe --type q8_0 -o " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = gguf::File::open(path);
  EXPECT_EQ(f.architecture(), "qwen35moe");
  EXPECT_EQ(f.tensor("blk.0.ffn_gate_exps.weight").ne[2], 8);
  EXPECT_EQ(f.get_u32("qwen35moe.expert_used_count"), 2u);
  std::filesystem::remove(path);
  EXPECT_EQ(run_pocket("make-model --preset huge -o " + path).exit_code, 1);
  EXPECT_EQ(run_pocket("make-model --preset tiny --type q3_x -o " + path).exit_code, 1);
  EXPECT_EQ(run_pocket("make-model --preset tiny").exit_code, 1);
}

}  // namespace
}  // namespace pocket
