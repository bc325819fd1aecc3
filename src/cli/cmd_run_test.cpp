// `pocket run` end to end: the binary (POCKET_BIN, set by ctest) reproduces the
// golden greedy continuations through --prompt-ids and through --chat, emits
// the --json contract, and fails with clear messages.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli_test_util.h"

namespace {

using nlohmann::json;

std::string golden(const std::string& name) { return std::string(POCKET_SHARED_DIR) + "/golden/" + name; }

using pocket::test::CommandResult;

// Runs `pocket run ARGS` (each argument quoted here), capturing stdout and stderr.
CommandResult run_pocket(const std::vector<std::string>& args) {
  std::string cmd = "run";
  for (const std::string& a : args) cmd += " " + pocket::test::shell_quote(a);
  return pocket::test::run_pocket(cmd);
}

std::vector<json> json_lines(const std::string& out) {
  std::vector<json> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(json::parse(line));
  return lines;
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); i++) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  return s;
}

class RunCommand : public ::testing::Test {
 protected:
  // The tiny model's greedy output for one prompt with `flag` set to each value in turn (each
  // run must succeed), to compare settings that must not change the tokens.
  static std::vector<std::string> greedy_outputs_with(const char* flag,
                                                      std::initializer_list<const char*> values) {
    std::vector<std::string> out;
    for (const char* v : values) {
      const CommandResult r =
          run_pocket({"-m", golden("tiny-qwen35-dense-tied-f32.gguf"), "--prompt-ids",
                      "5,17,300,42,9,1000,7,77", "-n", "12", "--temp", "0", flag, v});
      EXPECT_EQ(r.exit_code, 0) << flag << " " << v << ": " << r.err;
      out.push_back(r.out);
    }
    return out;
  }
  // Checks the JSON token lines against a golden prompt's first n steps.
  static void expect_golden(const std::vector<json>& lines, const json& prompt, size_t n, int top_k) {
    const std::vector<int32_t> gen = prompt["generated_ids"].get<std::vector<int32_t>>();
    const size_t expect_n = std::min(n, gen.size());
    ASSERT_EQ(lines.size(), expect_n + 1);
    for (size_t k = 0; k < expect_n; k++) {
      const json& t = lines[k];
      EXPECT_EQ(t["id"].get<int32_t>(), gen[k]) << "token " << k;
      EXPECT_TRUE(t["text"].is_string());
      EXPECT_NEAR(t["logprob"].get<double>(), prompt["steps"][k]["logprob"].get<double>(), 2e-3);
      ASSERT_EQ(t["top_logprobs"].size(), size_t(top_k));
      for (int j = 0; j < top_k; j++) {
        const json& g = prompt["steps"][k]["top"][size_t(j)];
        EXPECT_EQ(t["top_logprobs"][size_t(j)]["id"].get<int32_t>(), g[0].get<int32_t>());
        EXPECT_NEAR(t["top_logprobs"][size_t(j)]["logprob"].get<double>(), g[2].get<double>(), 2e-3);
      }
    }
    const json& done = lines.back();
    EXPECT_EQ(done["done"], true);
    EXPECT_EQ(done["prompt_tokens"].get<int64_t>(), prompt["n_prompt"].get<int64_t>());
    EXPECT_EQ(done["generated_tokens"].get<size_t>(), expect_n);
    EXPECT_GE(done["prefill_ms"].get<double>(), 0.0);
    EXPECT_GE(done["decode_ms"].get<double>(), 0.0);
  }
};

TEST_F(RunCommand, PromptIdsReproduceGoldenGreedy) {
  for (const char* stem : {"tiny-qwen35-dense-tied-f32", "tiny-qwen35moe-f32"}) {
    std::ifstream in(golden(std::string("model_") + stem + ".json"));
    const json g = json::parse(in);
    for (const json& prompt : g["prompts"]) {
      const std::string name = prompt["name"];
      if (name != "random_len1" && name != "random_len17" && name != "random_len200") continue;
      const CommandResult r = run_pocket({"-m", golden(g["model_file"]), "--prompt-ids",
                                      join_ids(prompt["prompt_ids"].get<std::vector<int32_t>>()), "--json",
                                      "-n", "8", "--top-logprobs", "3"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      SCOPED_TRACE(std::string(stem) + " " + name);
      expect_golden(json_lines(r.out), prompt, 8, 3);
    }
  }
}

TEST_F(RunCommand, ChatPromptGoesThroughTemplateAndTokenizer) {
  std::ifstream in(golden("model_tiny-qwen35-dense-tied-f32.json"));
  const json g = json::parse(in);
  for (const json& prompt : g["prompts"]) {
    if (prompt["name"] != "chat_user") continue;
    const json& req = prompt["chat_request"];
    ASSERT_EQ(req["messages"].size(), 1u);
    ASSERT_FALSE(req.contains("enable_thinking"));
    const CommandResult r = run_pocket({"-m", golden(g["model_file"]), "--chat", "-p",
                                    req["messages"][0]["content"].get<std::string>(), "--json", "-n", "6"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_golden(json_lines(r.out), prompt, 6, 5);
  }
}

TEST_F(RunCommand, ChatOptionsChangeThePrompt) {
  const auto prompt_tokens = [](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"-m", golden("tiny-qwen35-dense-tied-f32.gguf"), "--chat", "-p", "Hi",
                                     "--json", "-n", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CommandResult r = run_pocket(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json_lines(r.out).back()["prompt_tokens"].get<int>() : -1;
  };
  const int plain = prompt_tokens({});
  const int think = prompt_tokens({"--think"});
  const int no_think = prompt_tokens({"--no-think"});
  const int with_system = prompt_tokens({"--no-think", "--system", "You are terse."});
  EXPECT_EQ(plain, think);  // the template thinks unless told otherwise
  EXPECT_GT(no_think, think);  // adds an empty <think></think> block
  EXPECT_GT(with_system, no_think);
}

TEST_F(RunCommand, TextModeStreamsAndReportsTimings) {
  const CommandResult r = run_pocket({"-m", golden("tiny-qwen35-dense-untied-q8_0.gguf"), "-p", "Hello world",
                                  "-n", "5", "--temp", "0.8", "--top-k", "40", "--top-p", "0.9",
                                  "--seed", "3", "--repeat-penalty", "1.1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
  // Same seed, same text.
  const CommandResult again = run_pocket({"-m", golden("tiny-qwen35-dense-untied-q8_0.gguf"), "-p", "Hello world",
                                      "-n", "5", "--temp", "0.8", "--top-k", "40", "--top-p", "0.9",
                                      "--seed", "3", "--repeat-penalty", "1.1"});
  EXPECT_EQ(again.out, r.out);
}

TEST_F(RunCommand, ClearErrors) {
  CommandResult r = run_pocket({"-m", "/nonexistent/model.gguf", "-p", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/model.gguf"), std::string::npos) << r.err;

  r = run_pocket({"-m", golden("tiny-qwen35-dense-tied-f32.gguf"), "--prompt-ids", "1,2,3,4,5", "--ctx", "4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("context length"), std::string::npos) << r.err;

  r = run_pocket({"-m", golden("tiny-qwen35-dense-tied-f32.gguf"), "--prompt-ids", "1,99999"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("99999"), std::string::npos) << r.err;

  r = run_pocket({"-m", golden("tiny-qwen35-dense-tied-f32.gguf"), "--prompt-ids", "1", "--bogus"});
  EXPECT_EQ(r.exit_code, 1);
}

TEST_F(RunCommand, KvTypeQ8_0GeneratesLikeF16AndBadNamesAreRejected) {
  const std::vector<std::string> out = greedy_outputs_with("--kv-type", {"f32", "f16", "q8_0"});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FALSE(out[0].empty());
  EXPECT_EQ(out[1], out[0]);
  EXPECT_EQ(out[2], out[0]);  // greedy tokens of the tiny model survive int8 K/V

  const CommandResult r = run_pocket(
      {"-m", golden("tiny-qwen35-dense-tied-f32.gguf"), "--prompt-ids", "1", "--kv-type", "q4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--kv-type must be f32, f16 or q8_0, got 'q4'"), std::string::npos) << r.err;
}

// The weights copied (plain or onto huge pages) give the mapped file's tokens.
TEST_F(RunCommand, WeightsBackingsGenerateTheSameTokens) {
  const std::vector<std::string> out = greedy_outputs_with("--weights", {"map", "copy", "hugepages"});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FALSE(out[0].empty());
  EXPECT_EQ(out[1], out[0]);
  EXPECT_EQ(out[2], out[0]);

  const CommandResult r = run_pocket(
      {"-m", golden("tiny-qwen35-dense-tied-f32.gguf"), "--prompt-ids", "1", "--weights", "huge"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--weights must be map, copy or hugepages, got 'huge'"), std::string::npos)
      << r.err;
}

TEST_F(RunCommand, StopsAtTheContextLength) {
  const CommandResult r = run_pocket({"-m", golden("tiny-qwen35-dense-tied-f32.gguf"), "--prompt-ids", "1,2,3",
                                  "--ctx", "6", "-n", "10", "--json", "--top-logprobs", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<json> lines = json_lines(r.out);
  // Positions 3, 4, 5 take the first three generated tokens; the fourth is
  // sampled from position 5's logits and is the last.
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines.back()["generated_tokens"].get<int>(), 4);
  EXPECT_NE(r.err.find("context length"), std::string::npos) << r.err;
}

}  // namespace
