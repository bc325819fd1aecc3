// `pocket info` on every golden file, and on corrupted copies of them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_test_util.h"

namespace pocket {
namespace {

using nlohmann::json;
using test::run_pocket;
using test::shell_quote;
const std::string kGolden = std::string(POCKET_SHARED_DIR) + "/golden";

// Parameter count of a qwen35 / qwen35moe model from its config (spec/qwen35.md §5.2),
// computed independently of the file's tensor table.
uint64_t expected_params(const json& c, bool moe, uint64_t n_vocab) {
  uint64_t H = c["n_embd"], L = c["n_layer"], iv = c["full_attn_interval"];
  uint64_t nh = c["n_head"], nkv = c["n_head_kv"], D = c["head_dim"];
  uint64_t nk = c["lin_k_heads"], nv = c["lin_v_heads"], dk = c["lin_head_dim"], K = c["conv_kernel"];
  uint64_t key_dim = nk * dk, value_dim = nv * dk, conv_dim = 2 * key_dim + value_dim;
  uint64_t n_attn = L / iv, n_gdn = L - n_attn;
  uint64_t attn = H * 2 * nh * D + 2 * H * nkv * D + nh * D * H + 2 * D;
  uint64_t gdn = H * conv_dim + H * value_dim + K * conv_dim + 2 * nv + 2 * H * nv + dk + value_dim * H;
  uint64_t ffn;
  if (moe) {
    uint64_t E = c["n_expert"], Ie = c["n_ff_exp"], Is = c["n_ff_shexp"];
    ffn = H * E + 3 * H * Ie * E + H + 3 * H * Is;
  } else {
    uint64_t I = c["n_ff"];
    ffn = 3 * H * I;
  }
  uint64_t per_layer_common = 2 * H + ffn;
  uint64_t total = n_vocab * H + H + n_attn * (attn + per_layer_common) + n_gdn * (gdn + per_layer_common);
  if (!c["tied"].get<bool>()) total += n_vocab * H;
  return total;
}

TEST(PocketInfo, GoldenModels) {
  json models = json::parse(std::ifstream(kGolden + "/models.json"));
  ASSERT_FALSE(models.empty());
  for (const auto& m : models) {
    std::string path = kGolden + "/" + m["file"].get<std::string>();
    auto r = run_pocket("info --json " + shell_quote(path));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json info = json::parse(r.out);
    const json& c = m["config"];
    bool moe = c["arch"] == "qwen35moe";
    EXPECT_EQ(info["architecture"], c["arch"]);
    uint64_t L = c["n_layer"], iv = c["full_attn_interval"];
    uint64_t n_attn = L / iv, n_gdn = L - n_attn;
    uint64_t tensors = n_gdn * 14 + n_attn * 11 + 2 + (c["tied"].get<bool>() ? 0 : 1);
    if (moe) tensors += L * (8 - 3);  // router, 3 expert, shared gate, 3 shared-expert tensors
    EXPECT_EQ(info["n_tensors"].get<uint64_t>(), tensors) << path;
    EXPECT_EQ(info["n_params"].get<uint64_t>(), expected_params(c, moe, m["n_vocab"])) << path;
    EXPECT_EQ(info["memory"]["attention_layers"].get<uint64_t>(), n_attn);
    EXPECT_EQ(info["memory"]["deltanet_layers"].get<uint64_t>(), n_gdn);
    // Text output names the architecture too.
    auto t = run_pocket("info " + shell_quote(path));
    ASSERT_EQ(t.exit_code, 0);
    EXPECT_NE(t.out.find("architecture:  " + c["arch"].get<std::string>()), std::string::npos);
  }
}

TEST(PocketInfo, GoldenQuantAndVocabFiles) {
  for (const auto& e : std::filesystem::directory_iterator(kGolden + "/quant")) {
    auto r = run_pocket("info --json " + shell_quote(e.path().string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json info = json::parse(r.out);
    EXPECT_EQ(info["architecture"], "golden");
    EXPECT_EQ(info["n_tensors"], 9);
    EXPECT_EQ(info["n_params"], 3 * (512 * 64 + 256 * 64 + 256 * 64));
  }
  auto r = run_pocket("info --json " + shell_quote(kGolden + "/vocab-qwen3-qwen35.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json info = json::parse(r.out);
  EXPECT_EQ(info["architecture"], "qwen35");
  EXPECT_EQ(info["n_tensors"], 0);
  EXPECT_EQ(info["metadata"]["tokenizer.ggml.tokens"]["length"], 151936);
}

TEST(PocketInfo, CorruptedCopiesFailCleanly) {
  std::string src = kGolden + "/tiny-qwen35-dense-untied-q8_0.gguf";
  std::ifstream in(src, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  std::string path = testing::TempDir() + "/pocket_info_corrupt.gguf";
  auto write = [&](const std::vector<char>& b) {
    std::ofstream(path, std::ios::binary).write(b.data(), std::streamsize(b.size()));
  };
  for (size_t cut : {size_t(0), size_t(3), size_t(20), size_t(100), size_t(5000), bytes.size() / 2}) {
    write(std::vector<char>(bytes.begin(), bytes.begin() + long(cut)));
    auto r = run_pocket("info " + shell_quote(path));
    EXPECT_EQ(r.exit_code, 1) << "cut " << cut;
    EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
  }
  auto flipped = bytes;
  uint64_t huge = 1ull << 50;
  std::memcpy(&flipped[8], &huge, 8);  // tensor count
  write(flipped);
  auto r = run_pocket("info " + shell_quote(path));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("tensor count"), std::string::npos) << r.err;
  std::filesystem::remove(path);
  r = run_pocket("info /nonexistent.gguf");
  EXPECT_EQ(r.exit_code, 1);
  r = run_pocket("info --bogus-flag x.gguf");
  EXPECT_EQ(r.exit_code, 1);
}

}  // namespace
}  // namespace pocket
