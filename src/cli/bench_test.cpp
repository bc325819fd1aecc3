// `pocket bench` end to end on the tiny golden model: the JSON contract
// (llama-bench test names, one sample per repetition), the A/B rows, the
// profile's per-token split, and clear errors for bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_test_util.h"

namespace pocket {
namespace {

using nlohmann::json;
using test::run_pocket;
using test::shell_quote;

std::string tiny() {
  return shell_quote(std::string(POCKET_SHARED_DIR) + "/golden/tiny-qwen35-dense-tied-f32.gguf");
}

json bench_json(const std::string& extra) {
  auto r = run_pocket("bench -m " + tiny() + " -p 8 -n 4 -r 2 -t 2 --no-bandwidth --json " + extra);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

TEST(BenchCli, JsonHasPromptAndGenerationRates) {
  json j = bench_json("");
  ASSERT_EQ(j["results"].size(), 2u) << j.dump(1);
  EXPECT_EQ(j["results"][0]["test"], "pp8");
  EXPECT_EQ(j["results"][1]["test"], "tg4");
  for (const json& r : j["results"]) {
    EXPECT_GT(r["avg_ts"].get<double>(), 0.0);
    EXPECT_EQ(r["samples_ts"].size(), 2u);  // one per repetition
  }
  EXPECT_GT(j["decode_bytes_per_step"].get<int64_t>(), 0);
}

TEST(BenchCli, AbOptionsAddTheAlternateRow) {
  json j = bench_json("--ab-unfused --ab-strips --ab-state-4k");
  ASSERT_EQ(j["results"].size(), 3u) << j.dump(1);
  EXPECT_EQ(j["results"][1]["test"], "tg4");
  EXPECT_EQ(j["results"][2]["test"], "tg4 unfused strips 4k");
  EXPECT_EQ(j["results"][2]["samples_ts"].size(), 2u);
}

TEST(BenchCli, ProfileMatmulSplitsTheTokenTime) {
  auto r = run_pocket("bench -m " + tiny() + " -p 8 -n 4 -r 1 --no-bandwidth --profile-matmul");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("outside matmul"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("deltanet_step"), std::string::npos) << r.out;
}

TEST(BenchCli, BadInputGivesClearErrors) {
  auto missing = run_pocket("bench -m /nonexistent/model.gguf -p 8 -n 4");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("/nonexistent/model.gguf"), std::string::npos) << missing.err;
  auto bogus = run_pocket("bench -m " + tiny() + " --bogus");
  EXPECT_NE(bogus.exit_code, 0);
  EXPECT_NE(bogus.err.find("--bogus"), std::string::npos) << bogus.err;
  auto negative = run_pocket("bench -m " + tiny() + " -p -3");
  EXPECT_NE(negative.exit_code, 0);
  EXPECT_NE(negative.err.find("-p"), std::string::npos) << negative.err;
}

}  // namespace
}  // namespace pocket
