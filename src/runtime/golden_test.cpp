// The forward pass against the golden tiny models (golden/README.md section 2):
// prefill (steps[0], all-position logits, full last-prompt logits) and decode
// (steps[1..], teacher-forced along the golden continuation), f32 KV cache.
// For the Q8_0 model the exact path (weights expanded to f32, f32 activations)
// is compared with steps_dequantized_f32.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/fast_ops.h"
#include "model/model.h"
#include "runtime/sequence.h"

namespace pocket::runtime {
namespace {

using nlohmann::json;

constexpr double kTolerance = 2e-3;  // golden README: acceptance bar for logprobs

std::string golden_path(const std::string& name) {
  return std::string(POCKET_SHARED_DIR) + "/golden/" + name;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

// log-softmax in double of n raw logits.
std::vector<double> log_softmax(const float* logits, int64_t n) {
  double max = -INFINITY;
  for (int64_t i = 0; i < n; i++) max = std::max(max, double(logits[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) sum += std::exp(double(logits[i]) - max);
  const double log_z = max + std::log(sum);
  std::vector<double> out(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; i++) out[size_t(i)] = double(logits[i]) - log_z;
  return out;
}

struct Errors {
  double logprob = 0.0;  // max |logprob - golden| over every compared entry
  double logit = 0.0;
  int64_t entries = 0;
  int64_t argmax_mismatch = 0;
};

// Compares one distribution with a golden `top` list of [id, logit, logprob],
// sorted by logit (the first is the golden argmax).
void compare_top(const float* logits, int64_t n_vocab, const json& top, Errors& err,
                 const std::string& where) {
  const std::vector<double> lp = log_softmax(logits, n_vocab);
  for (const json& e : top) {
    const int32_t id = e[0].get<int32_t>();
    ASSERT_GE(id, 0);
    ASSERT_LT(id, n_vocab);
    const double d_logit = std::abs(double(logits[id]) - e[1].get<double>());
    const double d_lp = std::abs(lp[size_t(id)] - e[2].get<double>());
    err.logit = std::max(err.logit, d_logit);
    err.logprob = std::max(err.logprob, d_lp);
    err.entries++;
    EXPECT_LT(d_lp, kTolerance) << where << ": token " << id;
  }
  // The argmax must agree unless the golden top-1/top-2 gap is within tolerance.
  int64_t best = 0;
  for (int64_t i = 1; i < n_vocab; i++)
    if (logits[i] > logits[best]) best = i;
  const int64_t golden_best = top[0][0].get<int64_t>();
  const double gap = top.size() > 1 ? top[0][2].get<double>() - top[1][2].get<double>() : 1.0;
  if (best != golden_best) {
    err.argmax_mismatch++;
    EXPECT_LT(gap, kTolerance) << where << ": argmax " << best << ", golden " << golden_best;
  }
}

// Installs a kernel table for one test and restores the previous one.
class OpsScope {
 public:
  explicit OpsScope(const kernels::Ops& table) : saved_(kernels::ops()) { kernels::set_ops(table); }
  ~OpsScope() { kernels::set_ops(saved_); }

 private:
  const kernels::Ops& saved_;
};

// A fast table on a model with quantized matrices multiplies by 8-bit
// activations, the scheme the reference's own `steps` were made with (README
// section 2). The quantized products of every level take the reference's f32
// steps as well (quant/vec_dot.cpp; the golden models' rows are shorter than
// the 8 blocks from which the AVX2 prefill kernel sums per block), so the residual stream, and with it the
// logits, are the reference's bit for bit until some other op (attention, the
// delta rule, a norm; none of them claims bit identity) differs in a last bit
// right where an activation quant sits on its rounding boundary. From there
// the run drifts by 0.1-1 in log-probability, as the README says of any exact
// implementation of the scheme. Teacher-forced, the steps before that are
// identical (top-10 log-probabilities within 2e-7; the JSON's rounding is
// 5e-8), measured on this golden set per prompt (len1, len5, len17, len64,
// len200, len513, chat_user, chat_multiturn):
//   scalar: 17, 32, 11, 32, 0, 0, 0, 32 steps (124 of 256; the 200- and
//           513-token prefills and chat_user's, at prompt position 24 in the
//           delta rule, already contain such a flip);
//   avx2:   17, 32, 22, 32, 0, 0, 32, 0 steps (135 of 256).
// With the old f32 order of the scalar dot product (f32(sumi)·dw·da, one
// running sum) no step of any prompt was identical and steps[0] of the longer
// prompts was already off by 0.03-0.5 (3 argmax flips in the first 4 steps).
// The same test of identity settles the rest of the scheme: the reference
// quantizes the activations of every Q8_0 matrix (also output and ssm_alpha /
// ssm_beta: with f32 activations there, no step is identical) with id =
// 127/amax from the f32 amax (1/fp16(d): none identical); a single f32 or f64
// running sum over blocks gives none identical either.
// Checked here: at least a quarter of all steps identical, and where steps[0]
// is, the full last-prompt logits too (both golden ones are: 0 of 2007 differ).
// The README's loose check still holds on the first 4 steps of every prompt:
// greedy tokens identical and log-probabilities within 0.25, where two values
// each within 0.25 may swap only when less than 0.5 apart.
void check_quantized_activation_path(const std::string& stem) {
  constexpr double kLooseTolerance = 0.25;
  constexpr double kIdentical = 2e-7;  // identical logits, up to the JSON's rounding
  const json golden = read_json(golden_path("model_" + stem + ".json"));
  std::unique_ptr<model::Model> model =
      model::Model::load(golden_path(golden["model_file"].get<std::string>()));
  const int64_t V = model->config().n_vocab;
  KvPool pool(*model, {.kv_type = KvType::F32});
  model::Workspace ws;
  double worst_first4 = 0.0;
  int64_t identical_steps = 0, total_steps = 0;
  std::string per_prompt;
  for (const json& prompt : golden["prompts"]) {
    const std::string name = prompt["name"].get<std::string>();
    const std::vector<int32_t> ids = prompt["prompt_ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> gen = prompt["generated_ids"].get<std::vector<int32_t>>();
    const json& steps = prompt["steps"];
    Sequence seq(*model, pool, 1024);
    bool still_identical = true;
    int64_t leading = 0;
    for (size_t k = 0; k < gen.size(); k++) {
      model::Batch batch;
      if (k == 0) {
        batch.segments.push_back({&seq, ids, model::Logits::kLast});
      } else {
        batch.segments.push_back(
            {&seq, std::span<const int32_t>(&gen[k - 1], 1), model::Logits::kLast});
      }
      model->forward(batch, ws);
      const float* logits = ws.logits(0);
      const std::vector<double> lp = log_softmax(logits, V);
      const json& top = steps[k]["top"];
      double top_err = 0.0;
      for (const json& e : top)
        top_err = std::max(top_err, std::abs(lp[e[0].get<size_t>()] - e[2].get<double>()));
      still_identical = still_identical && top_err < kIdentical;
      if (still_identical) leading++;
      if (k == 0 && still_identical && prompt.contains("last_prompt_logits")) {
        const std::vector<float> ref = prompt["last_prompt_logits"].get<std::vector<float>>();
        ASSERT_EQ(int64_t(ref.size()), V);
        int64_t differ = 0;
        for (int64_t i = 0; i < V; i++) differ += logits[i] != ref[size_t(i)];
        EXPECT_EQ(differ, 0) << name << ": last-prompt logits not bit-identical";
      }
      if (k >= 4) continue;
      int64_t best = 0;
      for (int64_t i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
      const double gap = top[0][2].get<double>() - top[1][2].get<double>();
      if (best != gen[k]) {
        EXPECT_LT(gap, 2 * kLooseTolerance) << name << " step " << k << ": argmax " << best;
      }
      const double d = std::abs(lp[size_t(gen[k])] - steps[k]["logprob"].get<double>());
      worst_first4 = std::max(worst_first4, d);
      EXPECT_LT(d, kLooseTolerance) << name << " step " << k;
    }
    identical_steps += leading;
    total_steps += int64_t(gen.size());
    per_prompt += (per_prompt.empty() ? "" : ", ") + std::to_string(leading);
  }
  EXPECT_GE(4 * identical_steps, total_steps)
      << "identical leading steps per prompt: " << per_prompt;
  std::printf(
      "[golden %s, %s kernels, 8-bit activations] identical leading steps %lld of %lld (%s); "
      "first 4 steps: max |dlogprob| %.3g\n",
      stem.c_str(), kernels::ops().name, (long long)identical_steps, (long long)total_steps,
      per_prompt.c_str(), worst_first4);
}

class GoldenModel : public ::testing::TestWithParam<std::string> {};

void check_exact_path(const std::string& stem);

TEST_P(GoldenModel, PrefillAndDecodeMatch) {
  check_exact_path(GetParam());
}

// The fast table of this machine's CPU level (POCKET_CPU_LEVEL lowers it, so
// CI runs this once per level): chunked delta rule, blocked attention, fused
// element-wise kernels, threads.
TEST_P(GoldenModel, FastKernelsMatch) {
  OpsScope scope(kernels::best_ops());
  const json golden = read_json(golden_path("model_" + GetParam() + ".json"));
  if (golden["model"]["weight_type"].get<std::string>() == "f32")
    check_exact_path(GetParam());
  else
    check_quantized_activation_path(GetParam());
}

void check_exact_path(const std::string& stem) {
  const json golden = read_json(golden_path("model_" + stem + ".json"));
  std::unique_ptr<model::Model> model =
      model::Model::load(golden_path(golden["model_file"].get<std::string>()));
  const int64_t V = model->config().n_vocab;
  ASSERT_EQ(V, golden["model"]["n_vocab"].get<int64_t>());

  KvPool pool(*model, {.kv_type = KvType::F32});
  model::Workspace ws;
  Errors prefill_err, positions_err, decode_err;
  double full_logits_err = 0.0;

  for (const json& prompt : golden["prompts"]) {
    const std::string name = prompt["name"].get<std::string>();
    const std::vector<int32_t> ids = prompt["prompt_ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> gen = prompt["generated_ids"].get<std::vector<int32_t>>();
    // The exact path matches the reference's dequantized re-scoring for Q8_0.
    // Only the steps were re-scored that way: the all-position and full-logit
    // goldens of a quantized model come from its quantized-activation path,
    // which this path does not claim to match (README section 2).
    const bool dequantized = prompt.contains("steps_dequantized_f32");
    const json& steps = dequantized ? prompt["steps_dequantized_f32"] : prompt["steps"];
    ASSERT_EQ(steps.size(), gen.size());

    Sequence seq(*model, pool, 1024);
    // Prefill: the whole prompt in one call, logits at every position when the
    // golden has them.
    const bool all_positions = prompt.contains("prompt_positions_top5") && !dequantized;
    model::Batch batch;
    batch.segments.push_back(
        {&seq, ids, all_positions ? model::Logits::kAll : model::Logits::kLast});
    model->forward(batch, ws);
    ASSERT_EQ(ws.n_logits(), all_positions ? int64_t(ids.size()) : 1);
    const float* last = ws.logits(ws.n_logits() - 1);
    compare_top(last, V, steps[0]["top"], prefill_err, name + " step 0");
    if (all_positions) {
      const json& pos = prompt["prompt_positions_top5"];
      ASSERT_EQ(pos.size(), ids.size());
      for (size_t i = 0; i < ids.size(); i++)
        compare_top(ws.logits(int64_t(i)), V, pos[i], positions_err,
                    name + " position " + std::to_string(i));
    }
    if (prompt.contains("last_prompt_logits") && !dequantized) {
      const std::vector<float> ref = prompt["last_prompt_logits"].get<std::vector<float>>();
      ASSERT_EQ(int64_t(ref.size()), V);
      for (int64_t i = 0; i < V; i++)
        full_logits_err = std::max(full_logits_err, double(std::abs(last[i] - ref[size_t(i)])));
    }

    // Decode, teacher-forced along the golden continuation.
    for (size_t k = 1; k < gen.size(); k++) {
      const int32_t token = gen[k - 1];
      model::Batch step;
      step.segments.push_back({&seq, std::span<const int32_t>(&token, 1), model::Logits::kLast});
      model->forward(step, ws);
      compare_top(ws.logits(0), V, steps[k]["top"], decode_err,
                  name + " step " + std::to_string(k));
    }
    EXPECT_EQ(seq.n_tokens(), int64_t(ids.size() + gen.size() - 1));
  }

  EXPECT_LT(full_logits_err, kTolerance);
  std::printf(
      "[golden %s, %s kernels] max |dlogprob|: prefill %.3g, prompt positions %.3g, decode %.3g; "
      "max |dlogit| %.3g (full last-prompt logits %.3g); %lld entries, %lld argmax differences\n",
      stem.c_str(), kernels::ops().name, prefill_err.logprob, positions_err.logprob,
      decode_err.logprob, std::max({prefill_err.logit, positions_err.logit, decode_err.logit}),
      full_logits_err,
      (long long)(prefill_err.entries + positions_err.entries + decode_err.entries),
      (long long)(prefill_err.argmax_mismatch + positions_err.argmax_mismatch +
                  decode_err.argmax_mismatch));
  ::testing::Test::RecordProperty(
      "max_abs_logprob_diff",
      std::to_string(std::max({prefill_err.logprob, positions_err.logprob, decode_err.logprob})));
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenModel,
                         ::testing::Values("tiny-qwen35-dense-tied-f32",
                                           "tiny-qwen35-dense-untied-q8_0", "tiny-qwen35moe-f32"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

}  // namespace
}  // namespace pocket::runtime
