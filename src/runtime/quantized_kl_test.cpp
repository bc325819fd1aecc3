// Copies of a golden model made by `pocket quantize` stay close to the F32
// original: mean KL divergence of the next-token distributions over every
// position of the golden prompts and their continuations (teacher forced).
// The golden tiny models are random and chaotic (golden README: 1e-6 relative
// noise moves log-probabilities by 0.1-1), so the figures are large compared with
// real models; the test pins them (about 2x the measured values) and checks that
// more precision gives less divergence.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_test_util.h"
#include "model/model.h"
#include "runtime/sequence.h"

namespace pocket::runtime {
namespace {

std::vector<double> log_softmax(const float* x, int64_t n) {
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; i++) mx = std::max(mx, double(x[i]));
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += std::exp(double(x[i]) - mx);
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) out[size_t(i)] = double(x[i]) - mx - std::log(s);
  return out;
}

// All-position logits of `ids` in one prefill call.
std::vector<std::vector<double>> all_logprobs(const model::Model& m, const std::vector<int32_t>& ids) {
  KvPool pool(m, {.kv_type = KvType::F32});
  Sequence seq(m, pool, 4096);
  model::Workspace ws;
  model::Batch batch;
  batch.segments.push_back({&seq, ids, model::Logits::kAll});
  m.forward(batch, ws);
  std::vector<std::vector<double>> out;
  for (int64_t i = 0; i < ws.n_logits(); i++) out.push_back(log_softmax(ws.logits(i), ws.n_vocab()));
  return out;
}

struct Divergence {
  double mean_kl = 0, max_kl = 0, argmax_agreement = 0;
};

Divergence measure(const std::string& stem, const std::string& type) {
  const std::string golden = std::string(POCKET_SHARED_DIR) + "/golden/";
  Divergence out;
  {
    const std::string src = golden + stem + ".gguf";
    const std::string q8 = testing::TempDir() + "/" + stem + "-" + type + ".gguf";
    auto r = test::run_pocket("quantize " + test::shell_quote(src) + " " + test::shell_quote(q8) + " " + type);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code != 0) return out;
    auto f32_model = model::Model::load(src);
    auto q8_model = model::Model::load(q8);
    std::ifstream in(golden + "model_" + stem + ".json");
    auto g = nlohmann::json::parse(in);
    double kl_sum = 0, kl_max = 0;
    int64_t n = 0, argmax_agree = 0;
    for (const auto& p : g["prompts"]) {
      std::vector<int32_t> ids = p["prompt_ids"].get<std::vector<int32_t>>();
      for (int32_t id : p["generated_ids"].get<std::vector<int32_t>>()) ids.push_back(id);
      auto a = all_logprobs(*f32_model, ids);
      auto b = all_logprobs(*q8_model, ids);
      EXPECT_EQ(a.size(), b.size());
      if (a.size() != b.size()) return out;
      for (size_t t = 0; t < a.size(); t++) {
        double kl = 0;
        size_t best_a = 0, best_b = 0;
        for (size_t v = 0; v < a[t].size(); v++) {
          kl += std::exp(a[t][v]) * (a[t][v] - b[t][v]);
          if (a[t][v] > a[t][best_a]) best_a = v;
          if (b[t][v] > b[t][best_b]) best_b = v;
        }
        kl_sum += kl;
        kl_max = std::max(kl_max, kl);
        argmax_agree += best_a == best_b;
        n++;
      }
    }
    out.mean_kl = kl_sum / double(n);
    out.max_kl = kl_max;
    out.argmax_agreement = double(argmax_agree) / double(n);
    std::printf("[ KL ] %s: %s copy vs F32 over %lld positions: mean KL %.3g, max %.3g, argmax agreement %.2f%%\n",
                stem.c_str(), type.c_str(), (long long)n, out.mean_kl, kl_max, 100.0 * out.argmax_agreement);
    std::filesystem::remove(q8);
  }
  return out;
}

TEST(QuantizedModel, CopiesStayCloseToF32) {
  Divergence dense_f16 = measure("tiny-qwen35-dense-tied-f32", "f16");
  Divergence dense_q8 = measure("tiny-qwen35-dense-tied-f32", "q8_0");
  Divergence moe_q8 = measure("tiny-qwen35moe-f32", "q8_0");
  EXPECT_LT(dense_f16.mean_kl, dense_q8.mean_kl);
  EXPECT_LT(dense_f16.mean_kl, 0.01);
  EXPECT_LT(dense_q8.mean_kl, 0.2);
  EXPECT_GT(dense_q8.argmax_agreement, 0.7);
  EXPECT_LT(moe_q8.mean_kl, 2.5);  // router choices flip on these random experts
}

}  // namespace
}  // namespace pocket::runtime
